/**
 * IPv4 (RFC 791) and IPv6 (RFC 8200) headers: field offsets, validation of what
 * arrives, and writing headers in place in front of a payload.
 */
import { checksum } from '../util/checksum.js';

export const IPV4_HEADER_LEN = 20;
export const IPV6_HEADER_LEN = 40;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
export const DEFAULT_TTL = 64;

/** What the IP layer learned from a valid header. Views into the packet; no copies. */
export interface IpInfo {
  version: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  ttl: number;
  /** The transport payload (after all IPv6 extension headers). */
  payload: Uint8Array;
  /** IPv4 header length or 40 + extension headers. */
  headerLen: number;
  /** Fragment info: offset in bytes, more-fragments, identification; undefined when not a fragment. */
  fragment: { offset: number; more: boolean; id: number; headerEnd: number } | undefined;
}

export type IpParseError = 'short' | 'version' | 'header-length' | 'total-length' | 'checksum' | 'ext-headers';

/** Validates an IPv4 header; lengths are checked here once (DESIGN §3). */
export function parseIPv4(p: Uint8Array): IpInfo | IpParseError {
  if (p.length < IPV4_HEADER_LEN) return 'short';
  if (p[0]! >> 4 !== 4) return 'version';
  const ihl = (p[0]! & 0x0f) * 4;
  if (ihl < IPV4_HEADER_LEN || ihl > p.length) return 'header-length';
  const total = (p[2]! << 8) | p[3]!;
  if (total < ihl || total > p.length) return 'total-length';
  if ((ihl === IPV4_HEADER_LEN ? ipv4HeaderChecksum(p) : checksum(p, 0, ihl)) !== 0) return 'checksum';
  const flags = p[6]! >> 5;
  const offset = (((p[6]! & 0x1f) << 8) | p[7]!) * 8;
  const more = (flags & 1) !== 0;
  return {
    version: 4,
    src: p.subarray(12, 16),
    dst: p.subarray(16, 20),
    protocol: p[9]!,
    ttl: p[8]!,
    payload: p.subarray(ihl, total),
    headerLen: ihl,
    fragment: more || offset > 0 ? { offset, more, id: (p[4]! << 8) | p[5]!, headerEnd: ihl } : undefined,
  };
}

const EXT_HOP_BY_HOP = 0;
const EXT_ROUTING = 43;
const EXT_FRAGMENT = 44;
const EXT_DEST_OPTS = 60;
const EXT_NONE = 59;
/** A bound on the extension-header walk, so a crafted chain costs little. */
const MAX_EXT_HEADERS = 8;

/** Validates an IPv6 header and walks its extension headers to the upper layer. */
export function parseIPv6(p: Uint8Array): IpInfo | IpParseError {
  if (p.length < IPV6_HEADER_LEN) return 'short';
  if (p[0]! >> 4 !== 6) return 'version';
  const plen = (p[4]! << 8) | p[5]!;
  const end = IPV6_HEADER_LEN + plen;
  if (end > p.length) return 'total-length';
  let next = p[6]!;
  let off = IPV6_HEADER_LEN;
  let fragment: IpInfo['fragment'];
  for (let n = 0; ; n++) {
    if (next === EXT_HOP_BY_HOP || next === EXT_ROUTING || next === EXT_DEST_OPTS) {
      if (n >= MAX_EXT_HEADERS || off + 8 > end) return 'ext-headers';
      const len = (p[off + 1]! + 1) * 8;
      if (off + len > end) return 'ext-headers';
      next = p[off]!;
      off += len;
    } else if (next === EXT_FRAGMENT) {
      if (n >= MAX_EXT_HEADERS || off + 8 > end) return 'ext-headers';
      const fo = ((p[off + 2]! << 8) | p[off + 3]!) & 0xfff8;
      const more = (p[off + 3]! & 1) !== 0;
      const id = ((p[off + 4]! << 24) | (p[off + 5]! << 16) | (p[off + 6]! << 8) | p[off + 7]!) >>> 0;
      fragment = more || fo > 0 ? { offset: fo, more, id, headerEnd: off + 8 } : undefined;
      next = p[off]!;
      off += 8;
      if (fragment) break; // the rest belongs to the reassembled datagram
    } else break;
  }
  if (next === EXT_NONE) next = EXT_NONE;
  return {
    version: 6,
    src: p.subarray(8, 24),
    dst: p.subarray(24, 40),
    protocol: next,
    ttl: p[7]!,
    payload: p.subarray(off, end),
    headerLen: off,
    fragment,
  };
}

/** Writes an IPv4 header at p[0..20) for a payload of `payloadLen` bytes (no options, DF set). */
export function writeIPv4Header(p: Uint8Array, src: Uint8Array, dst: Uint8Array, protocol: number, payloadLen: number, id: number, ttl = DEFAULT_TTL): void {
  const total = IPV4_HEADER_LEN + payloadLen;
  p[0] = 0x45;
  p[1] = 0;
  p[2] = total >> 8;
  p[3] = total & 0xff;
  p[4] = (id >> 8) & 0xff;
  p[5] = id & 0xff;
  p[6] = 0x40; // DF: path MTU discovery (RFC 1191)
  p[7] = 0;
  p[8] = ttl;
  p[9] = protocol;
  p[10] = 0;
  p[11] = 0;
  // Byte stores: set() of a 4-byte array costs more than the rest of the header.
  p[12] = src[0]!;
  p[13] = src[1]!;
  p[14] = src[2]!;
  p[15] = src[3]!;
  p[16] = dst[0]!;
  p[17] = dst[1]!;
  p[18] = dst[2]!;
  p[19] = dst[3]!;
  const c = ipv4HeaderChecksum(p);
  p[10] = c >> 8;
  p[11] = c & 0xff;
}

/**
 * The RFC 1071 checksum of an option-less IPv4 header, p[0..20): ten words, unrolled. Every
 * packet in and out has one such header, and at this size the generic loop (util/checksum)
 * costs several times more. Over a header whose checksum field holds, the result is 0.
 */
export function ipv4HeaderChecksum(p: Uint8Array): number {
  let s =
    ((p[0]! << 8) | p[1]!) +
    ((p[2]! << 8) | p[3]!) +
    ((p[4]! << 8) | p[5]!) +
    ((p[6]! << 8) | p[7]!) +
    ((p[8]! << 8) | p[9]!) +
    ((p[10]! << 8) | p[11]!) +
    ((p[12]! << 8) | p[13]!) +
    ((p[14]! << 8) | p[15]!) +
    ((p[16]! << 8) | p[17]!) +
    ((p[18]! << 8) | p[19]!);
  // At most 10 × 0xffff: two folds bring it to 16 bits.
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Writes an IPv6 header at p[0..40). */
export function writeIPv6Header(p: Uint8Array, src: Uint8Array, dst: Uint8Array, nextHeader: number, payloadLen: number, hopLimit = DEFAULT_TTL): void {
  p[0] = 0x60;
  p[1] = 0;
  p[2] = 0;
  p[3] = 0;
  p[4] = payloadLen >> 8;
  p[5] = payloadLen & 0xff;
  p[6] = nextHeader;
  p[7] = hopLimit;
  p.set(src, 8);
  p.set(dst, 24);
}
