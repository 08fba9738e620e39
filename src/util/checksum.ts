/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement
 * sum of 16-bit words. Sums are kept unfolded in a JS number (safe far beyond any
 * packet size) and folded once at the end.
 */

/** Adds the bytes of `b[start, end)` as big-endian 16-bit words to `sum`. */
export function sumBytes(b: Uint8Array, start = 0, end = b.length, sum = 0): number {
  let i = start;
  const last = end - 1;
  for (; i < last; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i === last) sum += b[i]! << 8; // odd length: pad with a zero byte
  return sum;
}

/** Folds a running sum to 16 bits and complements it. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

export function checksum(b: Uint8Array, start = 0, end = b.length): number {
  return finishChecksum(sumBytes(b, start, end));
}

/**
 * Sum of the TCP/UDP pseudo-header: RFC 9293 §3.1 (IPv4) and RFC 8200 §8.1 (IPv6).
 * `src` and `dst` are 4 or 16 bytes; `length` is the transport segment length.
 */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): number {
  let sum = sumBytes(src) + sumBytes(dst) + protocol;
  if (src.length === 4) sum += length;
  else sum += Math.floor(length / 0x10000) + (length & 0xffff);
  return sum;
}
