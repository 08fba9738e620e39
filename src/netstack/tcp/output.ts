/**
 * Segment building: every segment TCP sends is made here, with headroom for the IP and
 * WireGuard headers (DESIGN §3), checksummed (RFC 9293 §3.1) and queued on the layer.
 * Options per RFC 7323 (timestamps, window scale), RFC 2018 (SACK) and RFC 9293 §3.7.1 (MSS).
 */
import type { Instant } from '../../util/time.js';
import type { IpAddr } from '../../util/ip.js';
import { allocPacket, PACKET_HEADROOM, WG_TAILROOM } from '../../util/bytes.js';
import { ACK, fillTcpChecksum, optionsLength, RST, seqDiff, SYN, TCP_HEADER_LEN, writeOptions, writeSynOptions, writeTcpHeader } from '../../wire/tcp.js';
import { OUR_WSCALE } from './constants.js';
import { sackBlocks } from './rcv.js';
import type { Conn } from './conn.js';
import type { TcpLayer } from './layer.js';

/** Our timestamp clock (RFC 7323 §5.4): milliseconds, modulo 2^32. */
export function tsVal(now: Instant): number {
  return Math.floor(now) >>> 0;
}

/** Builds and queues one segment. `data` bytes come from the send ring at `dataOff` from una. */
export function emitSegment(t: TcpLayer, now: Instant, c: Conn, flags: number, seq: number, dataOff: number, len: number): void {
  const ts = c.tsOk ? { val: tsVal(now), ecr: c.tsRecent } : undefined;
  const sack = c.sackOk && (c.ooo.length > 0 || c.dsackPending) && (flags & ACK) !== 0 ? sackBlocks(c) : undefined;
  const optLen = optionsLength(ts !== undefined, sack ? sack.length / 2 : 0);
  const hl = TCP_HEADER_LEN + optLen;
  const seg = allocPacket(hl + len, PACKET_HEADROOM, WG_TAILROOM);
  const wnd = Math.min(c.rcvWindow() >>> c.rcvScale, 0xffff);
  c.lastAdvertised = wnd << c.rcvScale;
  writeTcpHeader(seg, 0, c.localPort, c.remotePort, seq, flags & ACK ? c.rcvNxt : 0, flags, wnd, hl);
  writeOptions(seg, TCP_HEADER_LEN, ts, sack);
  if (len > 0) {
    c.sbuf.copyOut(dataOff, len, seg, hl);
    if (c.sampling) c.rate.onSend(now, seq, len, seqDiff(c.sndMax, c.una), c.sndMax);
    if (c.inRecovery && c.cc.prr !== undefined) c.cc.prr.out += len; // prr_out (RFC 6937 §3)
  }
  checksumAndQueue(t, c.localAddr, c.remoteAddr, seg);
  if (flags & ACK) {
    c.ackNow = false;
    c.segsSinceAck = 0;
    t.timers.cancel(c, 'delack');
  }
  t.count('txSegments');
}

function checksumAndQueue(t: TcpLayer, src: IpAddr, dst: IpAddr, seg: Uint8Array): void {
  fillTcpChecksum(seg, src, dst);
  t.out.push({ src, dst, segment: seg });
}

export function sendSyn(t: TcpLayer, now: Instant, c: Conn, synAck: boolean): void {
  const ts = (synAck ? c.tsOk : true) ? { val: tsVal(now), ecr: synAck ? c.tsRecent : 0 } : undefined;
  const wscale = (synAck ? c.wscaleOk : true) ? OUR_WSCALE : undefined;
  // RFC 7323 §2.2: the window in a SYN is never scaled.
  const wnd = Math.min(c.rcvWindow(), 0xffff);
  queueSyn(t, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.iss, synAck ? c.rcvNxt : undefined, wnd, c.mss, wscale, synAck ? c.sackOk : true, ts);
  t.timers.arm(c, 'rto', now + c.rtt.rto);
}

/** Builds and queues a SYN (ack undefined) or SYN-ACK; no connection state is touched. */
export function queueSyn(t: TcpLayer, src: IpAddr, dst: IpAddr, sport: number, dport: number, iss: number, ack: number | undefined, wnd: number, mss: number, wscale: number | undefined, sack: boolean, ts: { val: number; ecr: number } | undefined): void {
  const opts = new Uint8Array(40);
  const olen = writeSynOptions(opts, 0, mss, wscale, sack, ts);
  const hl = TCP_HEADER_LEN + olen;
  const seg = allocPacket(hl, PACKET_HEADROOM, WG_TAILROOM);
  writeTcpHeader(seg, 0, sport, dport, iss, ack ?? 0, ack === undefined ? SYN : SYN | ACK, wnd, hl);
  seg.set(opts.subarray(0, olen), TCP_HEADER_LEN);
  checksumAndQueue(t, src, dst, seg);
}

/** RST for a segment that has no connection (RFC 9293 §3.10.7.1), or to abort one. */
export function sendRst(t: TcpLayer, src: IpAddr, dst: IpAddr, sport: number, dport: number, seq: number, ack: number, withAck: boolean): void {
  const seg = allocPacket(TCP_HEADER_LEN, PACKET_HEADROOM, WG_TAILROOM);
  writeTcpHeader(seg, 0, sport, dport, seq, withAck ? ack : 0, withAck ? RST | ACK : RST, 0);
  checksumAndQueue(t, src.slice(), dst.slice(), seg);
  t.count('txRst');
}
