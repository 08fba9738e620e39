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
