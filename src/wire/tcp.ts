/**
 * TCP header (RFC 9293 §3.1) and options: MSS (§3.7.1), window scale and
 * timestamps (RFC 7323), SACK-permitted and SACK blocks (RFC 2018).
 */
import { finishChecksum, pseudoHeaderSum, sumBytes } from '../util/checksum.js';
import { PROTO_TCP } from './ip.js';

export const TCP_HEADER_LEN = 20;
export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;

const OPT_EOL = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WSCALE = 3;
const OPT_SACK_OK = 4;
const OPT_SACK = 5;
const OPT_TIMESTAMP = 8;

export interface TcpSegmentInfo {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  headerLen: number;
  /** Options present (undefined when absent). */
  mss: number | undefined;
  wscale: number | undefined;
  sackOk: boolean;
  tsVal: number | undefined;
  tsEcr: number;
  /** SACK blocks as [left, right) pairs, flattened. */
  sack: number[] | undefined;
}

export const u32 = (d: Uint8Array, o: number): number => ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
export function putU32(d: Uint8Array, o: number, v: number): void {
  d[o] = (v >>> 24) & 0xff;
  d[o + 1] = (v >>> 16) & 0xff;
  d[o + 2] = (v >>> 8) & 0xff;
  d[o + 3] = v & 0xff;
}

/**
 * Accessors for fields of a header whose first 14 bytes are known to be there (a quoted
 * header in an ICMP error carries at least 8, RFC 792; a full header 20): views, no parse.
 */
export const tcpSrcPort = (s: Uint8Array): number => (s[0]! << 8) | s[1]!;
export const tcpDstPort = (s: Uint8Array): number => (s[2]! << 8) | s[3]!;
export const tcpSeq = (s: Uint8Array): number => u32(s, 4);
export const tcpFlags = (s: Uint8Array): number => s[13]! & 0x3f;

/**
 * Writes the fixed header (RFC 9293 §3.1) at b[off, off + 20). `headerLen` is the
 * header's length with its options (a multiple of 4, 20 to 60), written as the data
 * offset; the options themselves go after it (writeOptions, writeSynOptions). The
 * checksum is written as zero: fillTcpChecksum sums the whole segment once it is
 * complete. Positional arguments, not a record: it runs once per segment sent.
 */
export function writeTcpHeader(b: Uint8Array, off: number, srcPort: number, dstPort: number, seq: number, ack: number, flags: number, window: number, headerLen = TCP_HEADER_LEN, urgent = 0): void {
  b[off] = srcPort >> 8;
  b[off + 1] = srcPort & 0xff;
  b[off + 2] = dstPort >> 8;
  b[off + 3] = dstPort & 0xff;
  putU32(b, off + 4, seq);
  putU32(b, off + 8, ack);
  b[off + 12] = (headerLen >> 2) << 4;
  b[off + 13] = flags;
  b[off + 14] = window >> 8;
  b[off + 15] = window & 0xff;
  b[off + 16] = 0;
  b[off + 17] = 0;
  b[off + 18] = urgent >> 8;
  b[off + 19] = urgent & 0xff;
}

/** Fills the checksum of a whole segment (header, options, payload) over the IPv4 or IPv6 pseudo-header (RFC 9293 §3.1). */
export function fillTcpChecksum(seg: Uint8Array, src: Uint8Array, dst: Uint8Array): void {
  seg[16] = seg[17] = 0;
  const ck = finishChecksum(pseudoHeaderSum(src, dst, PROTO_TCP, seg.length) + sumBytes(seg));
  seg[16] = ck >> 8;
  seg[17] = ck & 0xff;
}

/** Whether a received segment's checksum is right: the sum over pseudo-header and segment folds to zero. */
export function tcpChecksumOk(seg: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean {
  return finishChecksum(pseudoHeaderSum(src, dst, PROTO_TCP, seg.length) + sumBytes(seg)) === 0;
}

/**
 * Parses the header and options; undefined if the data offset or an option
 * length is impossible (such a segment is dropped, never answered).
 */
export function parseTcp(s: Uint8Array): TcpSegmentInfo | undefined {
  if (s.length < TCP_HEADER_LEN) return undefined;
  const headerLen = (s[12]! >> 4) * 4;
  if (headerLen < TCP_HEADER_LEN || headerLen > s.length) return undefined;
  const info: TcpSegmentInfo = {
    srcPort: (s[0]! << 8) | s[1]!,
    dstPort: (s[2]! << 8) | s[3]!,
    seq: u32(s, 4),
    ack: u32(s, 8),
    flags: s[13]! & 0x3f,
    window: (s[14]! << 8) | s[15]!,
    headerLen,
    mss: undefined,
    wscale: undefined,
    sackOk: false,
    tsVal: undefined,
    tsEcr: 0,
    sack: undefined,
  };
  let i = TCP_HEADER_LEN;
  while (i < headerLen) {
    const kind = s[i]!;
    if (kind === OPT_EOL) break;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= headerLen) return undefined;
    const len = s[i + 1]!;
    if (len < 2 || i + len > headerLen) return undefined;
    switch (kind) {
      case OPT_MSS:
        if (len !== 4) return undefined;
        info.mss = (s[i + 2]! << 8) | s[i + 3]!;
        break;
      case OPT_WSCALE:
        if (len !== 3) return undefined;
        info.wscale = Math.min(s[i + 2]!, 14); // RFC 7323 §2.3: larger values are treated as 14
        break;
      case OPT_SACK_OK:
        if (len !== 2) return undefined;
        info.sackOk = true;
        break;
      case OPT_SACK: {
        if ((len - 2) % 8 !== 0) return undefined;
        const blocks: number[] = [];
        for (let b = i + 2; b < i + len; b += 8) blocks.push(u32(s, b), u32(s, b + 4));
        info.sack = blocks;
        break;
      }
      case OPT_TIMESTAMP:
        if (len !== 10) return undefined;
        info.tsVal = u32(s, i + 2);
        info.tsEcr = u32(s, i + 6);
        break;
      default:
        break; // unknown options are skipped (RFC 9293 §3.2)
    }
    i += len;
  }
  return info;
}

/** Options we put on a SYN or SYN-ACK; returns the bytes written (a multiple of 4). */
export function writeSynOptions(o: Uint8Array, off: number, mss: number, wscale: number | undefined, sackOk: boolean, ts: { val: number; ecr: number } | undefined): number {
  let i = off;
  o[i++] = OPT_MSS;
  o[i++] = 4;
  o[i++] = mss >> 8;
  o[i++] = mss & 0xff;
  if (wscale !== undefined) {
    o[i++] = OPT_NOP;
    o[i++] = OPT_WSCALE;
    o[i++] = 3;
    o[i++] = wscale;
  }
  if (sackOk && !ts) {
    o[i++] = OPT_NOP;
    o[i++] = OPT_NOP;
    o[i++] = OPT_SACK_OK;
    o[i++] = 2;
  }
  if (ts) {
    o[i++] = sackOk ? OPT_SACK_OK : OPT_NOP;
    o[i++] = sackOk ? 2 : OPT_NOP;
    o[i++] = OPT_TIMESTAMP;
    o[i++] = 10;
    putU32(o, i, ts.val);
    putU32(o, i + 4, ts.ecr);
    i += 8;
  }
  return i - off;
}

/** Timestamps (12 bytes with padding) and up to `maxBlocks` SACK blocks on a data/ACK segment. */
export function writeOptions(o: Uint8Array, off: number, ts: { val: number; ecr: number } | undefined, sack: number[] | undefined): number {
  let i = off;
  if (ts) {
    o[i++] = OPT_NOP;
    o[i++] = OPT_NOP;
    o[i++] = OPT_TIMESTAMP;
    o[i++] = 10;
    putU32(o, i, ts.val);
    putU32(o, i + 4, ts.ecr);
    i += 8;
  }
  if (sack && sack.length > 0) {
    o[i++] = OPT_NOP;
    o[i++] = OPT_NOP;
    o[i++] = OPT_SACK;
    o[i++] = 2 + sack.length * 4;
    for (const v of sack) {
      putU32(o, i, v);
      i += 4;
    }
  }
  return i - off;
}

/** Length of the options writeOptions would write. */
export function optionsLength(ts: boolean, sackBlocks: number): number {
  return (ts ? 12 : 0) + (sackBlocks > 0 ? 4 + sackBlocks * 8 : 0);
}

/** Sequence number arithmetic modulo 2^32 (RFC 9293 §3.4). */
export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
export const seqGe = (a: number, b: number): boolean => ((a - b) | 0) >= 0;
export const seqAdd = (a: number, n: number): number => (a + n) >>> 0;
export const seqDiff = (a: number, b: number): number => (a - b) | 0;
