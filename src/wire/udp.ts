/**
 * UDP (RFC 768): the 8-byte header, its length field and its checksum over the IPv4
 * or IPv6 pseudo-header (RFC 768; RFC 8200 §8.1).
 */
import { finishChecksum, pseudoHeaderSum, sumBytes } from '../util/checksum.js';
import { PROTO_UDP } from './ip.js';

export const UDP_HEADER_LEN = 8;
/** The largest payload an IPv4 datagram can carry: 65535 - 20 (IPv4) - 8 (UDP). */
export const MAX_UDP_PAYLOAD = 65507;

/** A datagram that passed parseUdp: the ports and a view of the payload (no copy). */
export interface UdpInfo {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

export type UdpParseError = 'short' | 'length' | 'checksum';

export const udpSrcPort = (u: Uint8Array): number => (u[0]! << 8) | u[1]!;
export const udpDstPort = (u: Uint8Array): number => (u[2]! << 8) | u[3]!;

/**
 * Validates a datagram that arrived in an IP packet from `src` to `dst` (4 or 16 bytes):
 * the length field must fit what the IP layer delivered (bytes past it are IP padding and
 * ignored), and the checksum must hold, except that IPv4 allows none (0, RFC 768) while
 * IPv6 requires it (RFC 8200 §8.1).
 */
export function parseUdp(u: Uint8Array, src: Uint8Array, dst: Uint8Array): UdpInfo | UdpParseError {
  if (u.length < UDP_HEADER_LEN) return 'short';
  const ulen = (u[4]! << 8) | u[5]!;
  if (ulen < UDP_HEADER_LEN || ulen > u.length) return 'length';
  const ck = (u[6]! << 8) | u[7]!;
  if (ck !== 0 || src.length === 16) {
    if (finishChecksum(pseudoHeaderSum(src, dst, PROTO_UDP, ulen) + sumBytes(u, 0, ulen)) !== 0) return 'checksum';
  }
  return { srcPort: udpSrcPort(u), dstPort: udpDstPort(u), payload: u.subarray(UDP_HEADER_LEN, ulen) };
}

/**
 * Writes a whole datagram into `u` (exactly UDP_HEADER_LEN + payload.length bytes): header,
 * payload and checksum, always computed (RFC 8200 §8.1 needs it for IPv6; for IPv4 it costs
 * one pass over bytes just copied). A computed zero is sent as all ones (RFC 768).
 */
export function writeUdp(u: Uint8Array, src: Uint8Array, dst: Uint8Array, srcPort: number, dstPort: number, payload: Uint8Array): void {
  const ulen = UDP_HEADER_LEN + payload.length;
  u[0] = srcPort >> 8;
  u[1] = srcPort & 0xff;
  u[2] = dstPort >> 8;
  u[3] = dstPort & 0xff;
  u[4] = ulen >> 8;
  u[5] = ulen & 0xff;
  u[6] = u[7] = 0;
  u.set(payload, UDP_HEADER_LEN);
  let c = finishChecksum(pseudoHeaderSum(src, dst, PROTO_UDP, ulen) + sumBytes(u, 0, ulen));
  if (c === 0) c = 0xffff;
  u[6] = c >> 8;
  u[7] = c & 0xff;
}
