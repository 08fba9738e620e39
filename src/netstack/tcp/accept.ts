/**
 * The passive side: listeners and their accept queues, initial sequence numbers per
 * RFC 6528, and SYN cookies (RFC 4987 §3.6) once a listener's SYN queue is full, or once
 * the peer a SYN comes from holds its share of that queue (TcpOptions.maxSynQueuePerPeer).
 */
import type { Instant } from '../../util/time.js';
import type { IpAddr } from '../../util/ip.js';
import { mac } from '../../crypto/hash.js';
import { ACK, putU32, RST, SYN, seqAdd, type TcpSegmentInfo } from '../../wire/tcp.js';
import { addressKey, type PeerKey, type TcpConnection, type TcpListener } from '../types.js';
import { DEFAULT_MSS, IP4_TCP, IP6_TCP, OUR_WSCALE, synQueueShare } from './constants.js';
import { Conn, newId } from './conn.js';
import { queueSyn, sendRst, sendSyn } from './output.js';
import type { TcpLayer } from './layer.js';

export class Listener implements TcpListener {
  readonly id = newId();
  readonly queue: Conn[] = [];
  notified = false;
  closed = false;
  /** Half-open connections one peer may hold in this SYN queue (TcpOptions.maxSynQueuePerPeer). */
  readonly synShare: number;
  /**
   * The SYN queue: connections in SYN-RECEIVED that this listener made, each with the peer it
   * is charged to (kept, not recomputed, so a peer whose AllowedIPs change meanwhile still
   * gets back exactly what it was charged). At most `backlog` entries.
   */
  private readonly embryos = new Map<Conn, PeerKey>();
  /** Entries of `embryos` per peer; a peer with none has no entry, so this stays within `backlog` too. */
  private readonly synPerPeer = new Map<PeerKey, number>();
  constructor(
    readonly layer: TcpLayer,
    readonly addr: IpAddr | undefined,
    readonly port: number,
    readonly backlog: number,
  ) {
    this.synShare = synQueueShare(backlog, layer.opts.maxSynQueuePerPeer);
  }
  /** Connections in the SYN queue now. */
  get synQueue(): number {
    return this.embryos.size;
  }
  /** Half-open connections that the peer `key` holds in this SYN queue now. */
  synQueueOf(key: PeerKey): number {
    return this.synPerPeer.get(key) ?? 0;
  }
  /** A connection entering SYN-RECEIVED through this listener, charged to `peer`. */
  synJoin(c: Conn, peer: PeerKey): void {
    this.embryos.set(c, peer);
    this.synPerPeer.set(peer, this.synQueueOf(peer) + 1);
  }
  /** A connection leaving the SYN queue (established, reset, timed out); a no-op if it is not in it. */
  synLeave(c: Conn): void {
    const peer = this.embryos.get(c);
    if (peer === undefined) return;
    this.embryos.delete(c);
    const n = this.synQueueOf(peer) - 1;
    if (n <= 0) this.synPerPeer.delete(peer);
    else this.synPerPeer.set(peer, n);
  }
  accept(): TcpConnection | undefined {
    const c = this.queue.shift();
    if (!c) this.notified = false;
    if (c) c.accepted = true;
    return c;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeListener(this.layer, this);
  }
}

function closeListener(t: TcpLayer, l: Listener): void {
  const list = t.listeners.get(l.port);
  if (list) {
    const i = list.indexOf(l);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) t.listeners.delete(l.port);
  }
  // Connections nobody accepted are reset, as the kernel does on close(listen fd).
  for (const c of l.queue.splice(0)) {
    sendRst(t, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
    t.destroy(c, undefined);
  }
}

/** RFC 6528: ISN = M + F(4-tuple, secret), M a 4 µs clock. */
export function isn(t: TcpLayer, now: Instant, c: { localAddr: IpAddr; localPort: number; remoteAddr: IpAddr; remotePort: number }): number {
  const ports = new Uint8Array(4);
  ports[0] = c.localPort >> 8;
  ports[1] = c.localPort & 0xff;
  ports[2] = c.remotePort >> 8;
  ports[3] = c.remotePort & 0xff;
  const h = mac(t.secret, c.localAddr, c.remoteAddr, ports);
  const f = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
  return (f + Math.floor(now * 250)) >>> 0;
}

/**
 * A segment for a listener (RFC 9293 §3.10.7.2). Returns the connection a SYN-cookie ACK
 * just established, which the caller hands the segment's data to; undefined otherwise.
 */
export function listenArrives(t: TcpLayer, now: Instant, l: Listener, src: IpAddr, dst: IpAddr, h: TcpSegmentInfo): Conn | undefined {
  const f = h.flags;
  if (f & RST) return undefined; // §3.10.7.2
  if (f & ACK) {
    // Perhaps the last ACK of a SYN-cookie handshake (RFC 4987 §3.6).
    if (!(f & SYN)) {
      const c = cookieEstablish(t, now, l, src, dst, h);
      if (c === null) return undefined; // a valid cookie from a peer at its cap: dropped, counted
      if (c) return c;
    }
    sendRst(t, dst, src, h.dstPort, h.srcPort, h.ack, 0, false);
    return undefined;
  }
  if (!(f & SYN)) {
    t.drop('drop.listenNoSyn', undefined, h, src, dst);
    return undefined;
  }
  if (l.queue.length >= l.backlog) {
    t.drop('drop.acceptQueueFull', undefined, h, src, dst);
    return undefined;
  }
  // One peer may not hold more than its share of connections (TcpOptions.maxConnectionsPerPeer):
  // its SYN goes unanswered, not even with a cookie, so it costs nothing; the client's SYN
  // retransmissions (RFC 9293 §3.8.1) get in once one of its connections is gone.
  const peer = t.peerKey(src);
  if (!t.peerHasRoom(peer)) {
    t.drop('drop.connectionsPerPeer', undefined, h, src, dst);
    return undefined;
  }
  if (l.synQueue >= l.backlog) {
    sendSynCookie(t, now, src, dst, h);
    return undefined;
  }
  // The queue has room, but this peer holds its share of it: a cookie for it alone, so a peer
  // flooding SYNs (spoofing source ports or addresses within its AllowedIPs) cannot push every
  // other peer onto cookies, which lose window scaling and SACK (RFC 4987 §3.6).
  if (l.synQueueOf(peer) >= l.synShare) {
    t.count('synCookiesPerPeer');
    sendSynCookie(t, now, src, dst, h);
    return undefined;
  }
  const c = openPassive(t, now, src, dst, h, l, peer);
  t.holdPeerSlot(c, peer);
  return undefined;
}

/**
 * A connection in SYN-RECEIVED from a SYN, its SYN-ACK sent (RFC 9293 §3.10.7.2). With a
 * listener it joins the SYN queue, charged to `peer`, and then the accept queue; without one (a gateway flow
 * accepted for any destination) it reports 'tcp-connected' like an active open.
 */
export function openPassive(t: TcpLayer, now: Instant, src: IpAddr, dst: IpAddr, h: TcpSegmentInfo, l: Listener | undefined, peer?: PeerKey): Conn {
  const c = new Conn(t, dst.slice(), h.dstPort, src.slice(), h.srcPort);
  c.listener = l;
  c.passive = true;
  acceptSynOptions(t, c, h);
  c.irs = h.seq;
  c.rcvNxt = seqAdd(h.seq, 1);
  c.iss = isn(t, now, c);
  c.una = c.iss;
  c.nxt = seqAdd(c.iss, 1);
  c.sndMax = c.nxt;
  c.recoverSeq = c.iss;
  c.sndWnd = h.window; // not scaled in a SYN
  c.wl1 = h.seq;
  c.wl2 = c.iss;
  c.state = 'SYN-RECEIVED';
  c.lastActivity = now;
  c.rtt.rto = t.rttMemory.initialRto(addressKey(src), now);
  if (l) l.synJoin(c, peer ?? t.peerKey(src));
  t.conns.set(c.key, c);
  sendSyn(t, now, c, true);
  return c;
}

/** The options of a SYN or SYN-ACK (RFC 9293 §3.7.1 MSS, RFC 7323 window scale and timestamps, RFC 2018 SACK-permitted). */
export function acceptSynOptions(t: TcpLayer, c: Conn, h: TcpSegmentInfo): void {
  c.peerMss = h.mss && h.mss > 0 ? h.mss : DEFAULT_MSS; // RFC 9293 §3.7.1 default; MSS 0 is treated as absent
  c.mss = Math.max(64, Math.min(c.mss, c.peerMss));
  c.cc = c.newCongestionControl();
  if (h.wscale !== undefined) {
    c.wscaleOk = true;
    c.sndScale = h.wscale;
    c.rcvScale = OUR_WSCALE;
  }
  c.sackOk = h.sackOk;
  if (h.tsVal !== undefined) {
    c.tsOk = true;
    c.tsRecent = h.tsVal;
  }
}

/** A SYN-ACK whose ISN encodes what we need, so a full SYN queue holds no state (RFC 4987 §3.6). */
function cookieIsn(t: TcpLayer, now: Instant, src: IpAddr, dst: IpAddr, sport: number, dport: number, irs: number, mssIdx: number, slot?: number): number {
  const s = slot ?? Math.floor(now / 64_000) & 31;
  const b = new Uint8Array(9);
  b[0] = sport >> 8;
  b[1] = sport & 0xff;
  b[2] = dport >> 8;
  b[3] = dport & 0xff;
  putU32(b, 4, irs);
  b[8] = s;
  const hv = mac(t.secret, src, dst, b);
  const h24 = (hv[0]! << 16) | (hv[1]! << 8) | hv[2]!;
  return ((s << 27) | (mssIdx << 24) | h24) >>> 0;
}

/** The MSS values a cookie can encode (3 bits): common path MSSs, each the largest not above the peer's. */
const COOKIE_MSS = [536, 1200, 1220, 1360, 1380, 1400, 1440, 1460];

function sendSynCookie(t: TcpLayer, now: Instant, src: IpAddr, dst: IpAddr, h: TcpSegmentInfo): void {
  t.count('synCookiesSent');
  const peerMss = h.mss && h.mss > 0 ? h.mss : DEFAULT_MSS;
  let idx = 0;
  for (let i = 0; i < COOKIE_MSS.length; i++) if (COOKIE_MSS[i]! <= peerMss) idx = i;
  const iss = cookieIsn(t, now, src, dst, h.srcPort, h.dstPort, h.seq, idx);
  // Stateless by design: no Conn, no timer. The SYN-ACK carries only MSS (no window
  // scaling, SACK or timestamps can be remembered); a lost one is the client's to resend.
  const mss = Math.min(t.opts.mtu - (dst.length === 4 ? IP4_TCP : IP6_TCP), COOKIE_MSS[idx]!);
  const wnd = Math.min(t.opts.recvBufferMax, 0xffff);
  queueSyn(t, dst.slice(), src.slice(), h.dstPort, h.srcPort, iss, seqAdd(h.seq, 1), wnd, mss, undefined, false, undefined);
}

/**
 * The connection a valid cookie in an ACK stands for, or undefined (no valid cookie, or no room
 * in the accept queue: answered with RST by the caller). null: a valid cookie from a peer at its
 * connection cap, dropped silently, so the client's retransmission of this ACK (within the
 * cookie's ~2 minutes) still gets in once the peer has room again.
 */
function cookieEstablish(t: TcpLayer, now: Instant, l: Listener, src: IpAddr, dst: IpAddr, h: TcpSegmentInfo): Conn | undefined | null {
  const iss = (h.ack - 1) >>> 0;
  const slot = iss >>> 27;
  const cur = Math.floor(now / 64_000) & 31;
  if (slot !== cur && slot !== ((cur + 31) & 31)) return undefined; // older than ~2 minutes
  const idx = (iss >>> 24) & 7;
  const irs = (h.seq - 1) >>> 0;
  if (cookieIsn(t, now, src, dst, h.srcPort, h.dstPort, irs, idx, slot) !== iss) return undefined;
  if (l.queue.length >= l.backlog) return undefined;
  const peer = t.peerKey(src);
  if (!t.peerHasRoom(peer)) {
    t.drop('drop.connectionsPerPeer', undefined, h, src, dst);
    return null;
  }
  const c = new Conn(t, dst.slice(), h.dstPort, src.slice(), h.srcPort);
  c.listener = l;
  t.holdPeerSlot(c, peer);
  c.iss = iss;
  c.una = h.ack;
  c.nxt = h.ack;
  c.sndMax = h.ack;
  c.recoverSeq = h.ack;
  c.irs = irs;
  c.rcvNxt = h.seq;
  c.mss = Math.min(c.mss, COOKIE_MSS[idx]!);
  c.cc = c.newCongestionControl();
  c.sndWnd = h.window; // no window scaling without state (RFC 4987 §3.6)
  c.wl1 = h.seq;
  c.wl2 = h.ack;
  c.state = 'ESTABLISHED';
  c.lastActivity = now;
  t.conns.set(c.key, c);
  t.count('synCookiesAccepted');
  enqueueAccept(t, l, c);
  return c;
}

export function enqueueAccept(t: TcpLayer, l: Listener, c: Conn): void {
  l.queue.push(c);
  if (!l.notified) {
    l.notified = true;
    t.emit({ type: 'tcp-accept', listener: l });
  }
}
