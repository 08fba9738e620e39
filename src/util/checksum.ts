/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement
 * sum of 16-bit words. Sums are kept unfolded in a JS number (safe far beyond any
 * packet size) and folded once at the end.
 */

/** Adds the bytes of `b[start, end)` as big-endian 16-bit words to `sum`. */
export function sumBytes(b: Uint8Array, start = 0, end = b.length, sum = 0): number {
  const off = b.byteOffset + start;
  // Short runs (addresses) and odd offsets take the byte loop; the rest is summed four
  // bytes at a time, about three times faster on full-size segments.
  if (end - start < 32 || (off & 1) !== 0) return sumWords(b, start, end, sum);
  let i = start;
  if ((off & 2) !== 0) {
    sum += (b[i]! << 8) | b[i + 1]!;
    i += 2;
  }
  const words = (end - i) >>> 2;
  const u = new Uint32Array(b.buffer, b.byteOffset + i, words);
  let acc = 0;
  for (let k = 0; k < words; k++) acc += u[k]!;
  // The ones' complement sum does not depend on byte order (RFC 1071 §2(B)): sum the
  // native words, fold to 16 bits, and swap the two bytes back on little-endian hosts.
  let x = (acc % 0x10000) + Math.floor(acc / 0x10000);
  while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
  if (LITTLE_ENDIAN) x = ((x & 0xff) << 8) | (x >>> 8);
  return sumWords(b, i + words * 4, end, sum + x);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function sumWords(b: Uint8Array, start: number, end: number, sum: number): number {
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
