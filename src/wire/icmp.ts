/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) messages as the netstack reads and writes them:
 * echo request and reply, destination unreachable, packet too big, time exceeded, the
 * quoted packet an error carries, and the two checksums (ICMPv4 over the message alone,
 * ICMPv6 over the pseudo-header too). The family is told by the address length, 4 or 16.
 */
import { finishChecksum, pseudoHeaderSum, sumBytes } from '../util/checksum.js';
import { IPV4_HEADER_LEN, IPV6_HEADER_LEN, PROTO_ICMPV6 } from './ip.js';

/** Type, code, checksum and the 4 bytes every message has (RFC 792; RFC 4443 §2.1). */
export const ICMP_HEADER_LEN = 8;

export const ICMP4_ECHO_REPLY = 0;
export const ICMP4_UNREACHABLE = 3;
export const ICMP4_ECHO_REQUEST = 8;
export const ICMP4_TIME_EXCEEDED = 11;
export const ICMP6_UNREACHABLE = 1;
export const ICMP6_PACKET_TOO_BIG = 2;
export const ICMP6_TIME_EXCEEDED = 3;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;

/**
 * How much of an offending packet an error quotes: as much as keeps the error within the
 * minimum MTU: 576 - 20 - 8 for IPv4 (RFC 1812 §4.3.2.3), 1280 - 40 - 8 for IPv6 (RFC 4443 §2.4(c)).
 */
export const MAX_QUOTE_V4 = 548;
export const MAX_QUOTE_V6 = 1232;

/** ICMP errors that concern a socket (RFC 1122 §3.2.2.1; for TCP, RFC 9293 §3.9.1.4 and RFC 5927). */
export type IcmpErrorKind = 'unreachable-port' | 'unreachable-host' | 'unreachable-net' | 'unreachable-admin' | 'packet-too-big' | 'time-exceeded';

/** Why a packet is refused with destination unreachable. */
export type UnreachableKind = 'port' | 'host' | 'admin';

/** Destination-unreachable codes per refusal (RFC 792: 3/1/13, RFC 1812 §5.2.7.1; RFC 4443 §3.1: 4/3/1). */
const UNREACH4: Record<UnreachableKind, number> = { port: 3, host: 1, admin: 13 };
const UNREACH6: Record<UnreachableKind, number> = { port: 4, host: 3, admin: 1 };

export const icmpType = (m: Uint8Array): number => m[0]!;
export const icmpCode = (m: Uint8Array): number => m[1]!;
/** Identifier and sequence number of an echo request or reply (RFC 792; RFC 4443 §4.1). */
export const echoId = (m: Uint8Array): number => (m[4]! << 8) | m[5]!;
export const echoSeq = (m: Uint8Array): number => (m[6]! << 8) | m[7]!;

/** The echo type for a family: request or reply. */
export function echoType(v6: boolean, reply: boolean): number {
  return v6 ? (reply ? ICMP6_ECHO_REPLY : ICMP6_ECHO_REQUEST) : reply ? ICMP4_ECHO_REPLY : ICMP4_ECHO_REQUEST;
}

/**
 * Messages up to this size are summed here 16 bits at a time: util/checksum's faster loop for
 * long runs makes a Uint32Array view per call, which for a ping (64 bytes) costs twice the sum
 * itself (57 ns against 18, measured), three times per round trip.
 */
const SMALL_MESSAGE = 128;

/** The unfolded RFC 1071 sum of a short message (even or odd length). */
function sumSmall(m: Uint8Array): number {
  let sum = 0;
  const even = m.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (m[i]! << 8) | m[i + 1]!;
  if (even !== m.length) sum += m[even]! << 8;
  return sum;
}

/** The message's checksum: RFC 792 over the message, RFC 4443 §2.3 with the pseudo-header. */
function icmpChecksum(m: Uint8Array, src: Uint8Array, dst: Uint8Array): number {
  const body = m.length <= SMALL_MESSAGE ? sumSmall(m) : sumBytes(m);
  return finishChecksum(src.length === 4 ? body : pseudoHeaderSum(src, dst, PROTO_ICMPV6, m.length) + body);
}

/** Whether a received message's checksum holds (a message shorter than its header never does). */
export function icmpChecksumOk(m: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean {
  if (m.length < ICMP_HEADER_LEN) return false;
  return icmpChecksum(m, src, dst) === 0;
}

/**
 * Turns a copy of an echo request whose checksum held (the message at p[off..]) into its reply,
 * in place: the type becomes the reply's and the checksum is updated for that one word (RFC 1624
 * eqn. 3) instead of summed again over the whole message. Identifier, sequence, data and code
 * stay (RFC 792; RFC 4443 §4.2). Also right for ICMPv6: the reply's pseudo-header holds the same
 * two addresses, swapped, and the same length, so its sum does not change. As the request's sum
 * was not all zeros, the result is the same checksum a full computation gives.
 */
export function echoRequestToReply(p: Uint8Array, v6: boolean, off = 0): void {
  const before = (p[off]! << 8) | p[off + 1]!;
  p[off] = v6 ? ICMP6_ECHO_REPLY : ICMP4_ECHO_REPLY;
  const after = (p[off]! << 8) | p[off + 1]!;
  let sum = (~((p[off + 2]! << 8) | p[off + 3]!) & 0xffff) + (~before & 0xffff) + after;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  p[off + 2] = c >> 8;
  p[off + 3] = c & 0xff;
}

/** Fills the checksum of a complete message: RFC 792 over the message, RFC 4443 §2.3 with the pseudo-header. */
export function fillIcmpChecksum(m: Uint8Array, src: Uint8Array, dst: Uint8Array): void {
  m[2] = m[3] = 0;
  const c = icmpChecksum(m, src, dst);
  m[2] = c >> 8;
  m[3] = c & 0xff;
}

/**
 * Writes an echo request or reply (`type` from echoType) into `m`, exactly
 * ICMP_HEADER_LEN + data.length bytes; the checksum is left for fillIcmpChecksum.
 * `code` is 0 (RFC 792, RFC 4443 §4) unless a reply keeps its request's, as Linux does.
 */
export function writeEcho(m: Uint8Array, type: number, id: number, seq: number, data: Uint8Array, code = 0): void {
  m[0] = type;
  m[1] = code;
  m[2] = m[3] = 0;
  m[4] = id >> 8;
  m[5] = id & 0xff;
  m[6] = seq >> 8;
  m[7] = seq & 0xff;
  m.set(data, ICMP_HEADER_LEN);
}

/**
 * Writes destination unreachable quoting `quote` (the start of the offending packet, cut to
 * MAX_QUOTE_*) into `m`, exactly ICMP_HEADER_LEN + quote.length bytes; the 4 bytes after the
 * checksum are unused and zero. The checksum is left for fillIcmpChecksum.
 */
export function writeUnreachable(m: Uint8Array, v6: boolean, kind: UnreachableKind, quote: Uint8Array): void {
  m.fill(0, 0, ICMP_HEADER_LEN);
  m[0] = v6 ? ICMP6_UNREACHABLE : ICMP4_UNREACHABLE;
  m[1] = v6 ? UNREACH6[kind] : UNREACH4[kind];
  m.set(quote, ICMP_HEADER_LEN);
}

/**
 * What an error message says about the socket whose packet it quotes, or undefined if the
 * message is not an error we act on: ICMPv4 types 3 and 11 (RFC 792; codes per RFC 1122
 * §3.2.2.1 and RFC 1812 §5.2.7.1), ICMPv6 types 1-3 (RFC 4443 §3).
 */
export function icmpErrorKind(m: Uint8Array, v6: boolean): IcmpErrorKind | undefined {
  const type = m[0]!;
  const code = m[1]!;
  if (v6) {
    if (type === ICMP6_PACKET_TOO_BIG) return 'packet-too-big';
    if (type === ICMP6_TIME_EXCEEDED) return 'time-exceeded';
    if (type !== ICMP6_UNREACHABLE) return undefined;
    return code === 4 ? 'unreachable-port' : code === 1 ? 'unreachable-admin' : 'unreachable-host';
  }
  if (type === ICMP4_TIME_EXCEEDED) return 'time-exceeded';
  if (type !== ICMP4_UNREACHABLE) return undefined;
  // Code 4 is "fragmentation needed and DF set", RFC 1191's packet too big.
  return code === 3 ? 'unreachable-port' : code === 4 ? 'packet-too-big' : code === 0 || code === 6 ? 'unreachable-net' : code === 13 ? 'unreachable-admin' : 'unreachable-host';
}

/** The next-hop MTU of a packet-too-big: 16 bits in ICMPv4 (RFC 1191 §4), 32 in ICMPv6 (RFC 4443 §3.2). */
export function packetTooBigMtu(m: Uint8Array, v6: boolean): number {
  return v6 ? ((m[4]! << 24) | (m[5]! << 16) | (m[6]! << 8) | m[7]!) >>> 0 : (m[6]! << 8) | m[7]!;
}

/** The header of the packet an error quotes: views into it; `transport` starts at its transport header. */
export interface QuotedPacket {
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  transport: Uint8Array;
}

/**
 * Reads the IP header an error quotes (the error's body after ICMP_HEADER_LEN). Undefined
 * unless it is a whole IPv4 or IPv6 header followed by the 8 transport bytes an error must
 * carry (RFC 792). An IPv6 quote is read as if it had no extension headers.
 */
export function parseQuoted(q: Uint8Array): QuotedPacket | undefined {
  const v = q.length > 0 ? q[0]! >> 4 : 0;
  let off: number, protocol: number, src: Uint8Array, dst: Uint8Array;
  if (v === 4 && q.length >= IPV4_HEADER_LEN) {
    off = (q[0]! & 0xf) * 4;
    protocol = q[9]!;
    src = q.subarray(12, 16);
    dst = q.subarray(16, 20);
  } else if (v === 6 && q.length >= IPV6_HEADER_LEN) {
    off = IPV6_HEADER_LEN;
    protocol = q[6]!;
    src = q.subarray(8, 24);
    dst = q.subarray(24, 40);
  } else return undefined;
  if (q.length < off + 8) return undefined;
  return { src, dst, protocol, transport: q.subarray(off) };
}
