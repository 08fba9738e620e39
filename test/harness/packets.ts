/**
 * Packet builders and checkers for tests, in the style of gVisor's checker package:
 * a test states what a segment must look like and gets one precise message otherwise.
 */
import assert from 'node:assert/strict';
import { pseudoHeaderSum, sumBytes, finishChecksum } from '../../src/util/checksum.js';
import type { IpAddr } from '../../src/util/ip.js';

// ---- TCP (appended by the TCP engineer) ----------------------------------------------

/** RFC 9293 §3.1 control bits, restated here so the checker does not trust the codec. */
export const TCP_FLAG = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;
export type TcpFlagName = keyof typeof TCP_FLAG;

export interface TcpExpect {
  /** Exactly these flags, e.g. ['SYN', 'ACK'] (PSH is ignored unless listed in `exactFlags`). */
  flags?: TcpFlagName[];
  /** When true, PSH must match too. */
  exactFlags?: boolean;
  seq?: number;
  ack?: number;
  /** The raw 16-bit window field (unscaled). */
  window?: number;
  srcPort?: number;
  dstPort?: number;
  payloadLength?: number;
  /** When given with `dst`, the checksum over the pseudo-header must verify (RFC 9293 §3.1). */
  src?: IpAddr;
  dst?: IpAddr;
}

/** Reads the fixed TCP header straight from the bytes (big-endian, RFC 9293 §3.1). */
export function tcpFields(seg: Uint8Array): { srcPort: number; dstPort: number; seq: number; ack: number; dataOffset: number; flags: number; window: number; payloadLength: number } {
  assert.ok(seg.length >= 20, `TCP segment of ${seg.length} bytes is shorter than 20`);
  const dv = new DataView(seg.buffer, seg.byteOffset, seg.byteLength);
  const dataOffset = (seg[12]! >> 4) * 4;
  return {
    srcPort: dv.getUint16(0),
    dstPort: dv.getUint16(2),
    seq: dv.getUint32(4),
    ack: dv.getUint32(8),
    dataOffset,
    flags: seg[13]! & 0x3f,
    window: dv.getUint16(14),
    payloadLength: seg.length - dataOffset,
  };
}

function flagString(f: number): string {
  const names = (Object.keys(TCP_FLAG) as TcpFlagName[]).filter((n) => f & TCP_FLAG[n]);
  return names.length ? names.join('|') : '(none)';
}

/** Asserts a TCP segment's header fields. */
export function expectTcp(seg: Uint8Array | undefined, e: TcpExpect): void {
  assert.ok(seg, 'expected a TCP segment, got none');
  const h = tcpFields(seg);
  assert.ok(h.dataOffset >= 20 && h.dataOffset <= seg.length, `bad data offset ${h.dataOffset}`);
  if (e.flags) {
    let want = 0;
    for (const n of e.flags) want |= TCP_FLAG[n];
    const mask = e.exactFlags ? 0x3f : 0x3f & ~TCP_FLAG.PSH;
    assert.equal(flagString(h.flags & mask), flagString(want & mask), 'TCP flags');
  }
  if (e.seq !== undefined) assert.equal(h.seq, e.seq >>> 0, 'TCP seq');
  if (e.ack !== undefined) assert.equal(h.ack, e.ack >>> 0, 'TCP ack');
  if (e.window !== undefined) assert.equal(h.window, e.window, 'TCP window');
  if (e.srcPort !== undefined) assert.equal(h.srcPort, e.srcPort, 'TCP source port');
  if (e.dstPort !== undefined) assert.equal(h.dstPort, e.dstPort, 'TCP destination port');
  if (e.payloadLength !== undefined) assert.equal(h.payloadLength, e.payloadLength, 'TCP payload length');
  if (e.src && e.dst) assert.equal(finishChecksum(pseudoHeaderSum(e.src, e.dst, 6, seg.length) + sumBytes(seg)), 0, 'TCP checksum');
}

export interface TcpBuild {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack?: number;
  flags: TcpFlagName[];
  window?: number;
  /** Raw option bytes; padded with EOL to a multiple of 4. */
  options?: number[];
  payload?: Uint8Array;
  /** Overrides the data offset field (in bytes) to build malformed headers. */
  dataOffset?: number;
  /** Leave the checksum wrong. */
  badChecksum?: boolean;
}

/** Builds a TCP segment at an odd byte offset with a correct checksum for src/dst. */
export function buildTcp(src: IpAddr, dst: IpAddr, b: TcpBuild): Uint8Array {
  const opts = [...(b.options ?? [])];
  while (opts.length % 4) opts.push(0);
  const hl = 20 + opts.length;
  const pl = b.payload?.length ?? 0;
  const s = new Uint8Array(1 + hl + pl).subarray(1);
  const dv = new DataView(s.buffer, s.byteOffset, s.byteLength);
  dv.setUint16(0, b.srcPort);
  dv.setUint16(2, b.dstPort);
  dv.setUint32(4, b.seq >>> 0);
  dv.setUint32(8, (b.ack ?? 0) >>> 0);
  s[12] = ((b.dataOffset ?? hl) / 4) << 4;
  let f = 0;
  for (const n of b.flags) f |= TCP_FLAG[n];
  s[13] = f;
  dv.setUint16(14, b.window ?? 65535);
  s.set(opts, 20);
  if (b.payload) s.set(b.payload, hl);
  let c = finishChecksum(pseudoHeaderSum(src, dst, 6, s.length) + sumBytes(s));
  if (b.badChecksum) c ^= 0x5555;
  dv.setUint16(16, c);
  return s;
}

// ---- IP, UDP, ICMP (netstack engineer) -------------------------------------------------

/** IANA protocol numbers used by the checkers. */
export const PROTO = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

function writeU16(p: Uint8Array, off: number, v: number): void {
  p[off] = (v >> 8) & 0xff;
  p[off + 1] = v & 0xff;
}

/** An IPv4 packet (RFC 791 §3.1, no options) around `payload`, at an odd byte offset. */
export function buildIPv4(src: IpAddr, dst: IpAddr, proto: number, payload: Uint8Array, o: { ttl?: number; id?: number; badChecksum?: boolean } = {}): Uint8Array {
  const p = new Uint8Array(1 + 20 + payload.length).subarray(1);
  p[0] = 0x45;
  writeU16(p, 2, p.length);
  writeU16(p, 4, o.id ?? 1);
  p[8] = o.ttl ?? 64;
  p[9] = proto;
  p.set(src, 12);
  p.set(dst, 16);
  let c = finishChecksum(sumBytes(p.subarray(0, 20)));
  if (o.badChecksum) c ^= 0x0101;
  writeU16(p, 10, c);
  p.set(payload, 20);
  return p;
}

/** An IPv6 packet (RFC 8200 §3, no extension headers) around `payload`, at an odd byte offset. */
export function buildIPv6(src: IpAddr, dst: IpAddr, nextHeader: number, payload: Uint8Array, o: { hopLimit?: number } = {}): Uint8Array {
  const p = new Uint8Array(1 + 40 + payload.length).subarray(1);
  p[0] = 0x60;
  writeU16(p, 4, payload.length);
  p[6] = nextHeader;
  p[7] = o.hopLimit ?? 64;
  p.set(src, 8);
  p.set(dst, 24);
  p.set(payload, 40);
  return p;
}

/** A UDP datagram (RFC 768) with its checksum over the pseudo-header of src/dst. */
export function buildUdp(src: IpAddr, dst: IpAddr, sport: number, dport: number, payload: Uint8Array, o: { badChecksum?: boolean } = {}): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  writeU16(u, 0, sport);
  writeU16(u, 2, dport);
  writeU16(u, 4, u.length);
  u.set(payload, 8);
  let c = finishChecksum(pseudoHeaderSum(src, dst, PROTO.UDP, u.length) + sumBytes(u));
  if (c === 0) c = 0xffff; // RFC 768: computed zero is transmitted as all ones
  if (o.badChecksum) c ^= 0x0101;
  writeU16(u, 6, c);
  return u;
}

/** An ICMP (RFC 792) or, when src/dst are IPv6, ICMPv6 (RFC 4443 §4.1) echo request. */
export function buildIcmpEcho(src: IpAddr, dst: IpAddr, id: number, seq: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const v6 = src.length === 16;
  const m = new Uint8Array(8 + data.length);
  m[0] = v6 ? 128 : 8;
  writeU16(m, 4, id);
  writeU16(m, 6, seq);
  m.set(data, 8);
  const pseudo = v6 ? pseudoHeaderSum(src, dst, PROTO.ICMPV6, m.length) : 0;
  writeU16(m, 2, finishChecksum(pseudo + sumBytes(m)));
  return v6 ? buildIPv6(src, dst, PROTO.ICMPV6, m) : buildIPv4(src, dst, PROTO.ICMP, m);
}

function ipText(a: Uint8Array): string {
  return a.length === 4 ? [...a].join('.') : [...a].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Asserts an IP packet's version, addresses, protocol and TTL; returns its payload. */
export function expectIp(pkt: Uint8Array | undefined, e: { src?: IpAddr; dst?: IpAddr; proto?: number; ttl?: number }): Uint8Array {
  assert.ok(pkt, 'expected an IP packet, got none');
  const v = pkt[0]! >> 4;
  assert.ok(v === 4 || v === 6, `IP version ${v}`);
  if (v === 4) {
    const hl = (pkt[0]! & 0x0f) * 4;
    assert.ok(hl >= 20 && pkt.length >= hl, `IHL ${hl}`);
    assert.equal((pkt[2]! << 8) | pkt[3]!, pkt.length, 'IPv4 total length');
    assert.equal(finishChecksum(sumBytes(pkt.subarray(0, hl))), 0, 'IPv4 header checksum');
    if (e.src) assert.equal(ipText(pkt.subarray(12, 16)), ipText(e.src), 'IPv4 source');
    if (e.dst) assert.equal(ipText(pkt.subarray(16, 20)), ipText(e.dst), 'IPv4 destination');
    if (e.proto !== undefined) assert.equal(pkt[9], e.proto, 'IPv4 protocol');
    if (e.ttl !== undefined) assert.equal(pkt[8], e.ttl, 'IPv4 TTL');
    return pkt.subarray(hl);
  }
  assert.ok(pkt.length >= 40, 'IPv6 header');
  assert.equal((pkt[4]! << 8) | pkt[5]!, pkt.length - 40, 'IPv6 payload length');
  if (e.src) assert.equal(ipText(pkt.subarray(8, 24)), ipText(e.src), 'IPv6 source');
  if (e.dst) assert.equal(ipText(pkt.subarray(24, 40)), ipText(e.dst), 'IPv6 destination');
  if (e.proto !== undefined) assert.equal(pkt[6], e.proto, 'IPv6 next header');
  if (e.ttl !== undefined) assert.equal(pkt[7], e.ttl, 'IPv6 hop limit');
  return pkt.subarray(40);
}

/** Asserts a UDP datagram's ports, length, checksum and payload. */
export function expectUdp(u: Uint8Array, src: IpAddr, dst: IpAddr, e: { srcPort?: number; dstPort?: number; payload?: Uint8Array }): void {
  assert.ok(u.length >= 8, 'UDP header');
  assert.equal((u[4]! << 8) | u[5]!, u.length, 'UDP length');
  const c = (u[6]! << 8) | u[7]!;
  if (c !== 0 || src.length === 16) assert.equal(finishChecksum(pseudoHeaderSum(src, dst, PROTO.UDP, u.length) + sumBytes(u)), 0, 'UDP checksum');
  if (e.srcPort !== undefined) assert.equal((u[0]! << 8) | u[1]!, e.srcPort, 'UDP source port');
  if (e.dstPort !== undefined) assert.equal((u[2]! << 8) | u[3]!, e.dstPort, 'UDP destination port');
  if (e.payload) assert.deepEqual([...u.subarray(8)], [...e.payload], 'UDP payload');
}

/** Asserts an ICMP/ICMPv6 message's type, code and checksum (pseudo-header for ICMPv6, RFC 4443 §2.3). */
export function expectIcmp(m: Uint8Array, src: IpAddr, dst: IpAddr, e: { type: number; code?: number }): void {
  assert.ok(m.length >= 8, 'ICMP header');
  assert.equal(m[0], e.type, 'ICMP type');
  if (e.code !== undefined) assert.equal(m[1], e.code, 'ICMP code');
  const pseudo = src.length === 16 ? pseudoHeaderSum(src, dst, PROTO.ICMPV6, m.length) : 0;
  assert.equal(finishChecksum(pseudo + sumBytes(m)), 0, 'ICMP checksum');
}
