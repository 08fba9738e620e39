/**
 * UDP codec (RFC 768; RFC 8200 §8.1 for IPv6's mandatory checksum), on unaligned
 * buffers, with a checksum computed by hand and verified with util/checksum.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { finishChecksum, pseudoHeaderSum, sumBytes } from '../util/checksum.js';
import { parseUdp, writeUdp, udpSrcPort, udpDstPort, UDP_HEADER_LEN, MAX_UDP_PAYLOAD } from './udp.js';

const V4A = new Uint8Array([192, 0, 2, 1]);
const V4B = new Uint8Array([192, 0, 2, 2]);
const V6A = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
const V6B = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);

/** `n` bytes at byte offset 1 of their ArrayBuffer. */
function unaligned(n: number): Uint8Array {
  return new Uint8Array(n + 1).subarray(1);
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

test('constants restated: an 8-byte header, 65535 - 20 - 8 bytes of IPv4 payload', () => {
  assert.equal(UDP_HEADER_LEN, 8);
  assert.equal(MAX_UDP_PAYLOAD, 65507);
});

test('a hand-made IPv4 vector: 1234 -> 53, "abc", checksum 0xb26a', () => {
  const u = unaligned(11);
  writeUdp(u, V4A, V4B, 1234, 53, ascii('abc'));
  // Pseudo-header c000 0201 c000 0202 0011 000b plus the datagram, folded and complemented by hand.
  assert.deepEqual(Array.from(u), [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0b, 0xb2, 0x6a, 0x61, 0x62, 0x63]);
  assert.equal(finishChecksum(pseudoHeaderSum(V4A, V4B, 17, u.length) + sumBytes(u)), 0);
});

test('round trip over IPv4 and IPv6, on unaligned buffers, payload a view', () => {
  for (const [src, dst] of [
    [V4A, V4B],
    [V6A, V6B],
  ] as const) {
    for (const len of [0, 1, 7, 100, 1400]) {
      const data = new Uint8Array(len).map((_, i) => (i * 13 + 5) & 0xff);
      const u = unaligned(UDP_HEADER_LEN + len);
      writeUdp(u, src, dst, 40000 + len, 443, data);
      assert.equal(udpSrcPort(u), 40000 + len);
      assert.equal(udpDstPort(u), 443);
      assert.equal(finishChecksum(pseudoHeaderSum(src, dst, 17, u.length) + sumBytes(u)), 0, 'checksum verified with util/checksum');
      const r = parseUdp(u, src, dst);
      assert.ok(typeof r !== 'string', String(r));
      assert.equal(r.srcPort, 40000 + len);
      assert.equal(r.dstPort, 443);
      assert.deepEqual(r.payload, data);
      assert.equal(r.payload.buffer, u.buffer, 'no copy');
    }
  }
});

test('a computed checksum of zero is sent as 0xffff (RFC 768)', () => {
  // Find a payload whose checksum computes to zero: two bytes chosen to make the sum 0xffff.
  const probe = unaligned(10);
  writeUdp(probe, V4A, V4B, 1, 2, new Uint8Array(2));
  const ck = (probe[6]! << 8) | probe[7]!; // the complement of the sum with a zero payload
  const data = new Uint8Array([ck >> 8, ck & 0xff]); // adds ck to the sum: it becomes 0xffff, which complements to 0
  const u = unaligned(10);
  writeUdp(u, V4A, V4B, 1, 2, data);
  assert.equal((u[6]! << 8) | u[7]!, 0xffff);
  assert.ok(typeof parseUdp(u, V4A, V4B) !== 'string', 'all ones verifies as zero');
});

test('IPv4 checksum 0 means none; IPv6 requires it (RFC 8200 §8.1)', () => {
  const u = unaligned(11);
  writeUdp(u, V4A, V4B, 1234, 53, ascii('abc'));
  u[6] = u[7] = 0;
  assert.ok(typeof parseUdp(u, V4A, V4B) !== 'string');
  const u6 = unaligned(11);
  writeUdp(u6, V6A, V6B, 1234, 53, ascii('abc'));
  u6[6] = u6[7] = 0;
  assert.equal(parseUdp(u6, V6A, V6B), 'checksum');
});

test('invalid: short, length field outside the packet, bad checksum; IP padding ignored', () => {
  assert.equal(parseUdp(unaligned(7), V4A, V4B), 'short');
  const u = unaligned(11);
  writeUdp(u, V4A, V4B, 1234, 53, ascii('abc'));
  assert.equal(parseUdp(u.subarray(0, 10), V4A, V4B), 'length', 'the length field says 11');
  const small = u.slice();
  small[4] = 0;
  small[5] = 7;
  assert.equal(parseUdp(small, V4A, V4B), 'length');
  const flipped = u.slice();
  flipped[9]! ^= 0x10;
  assert.equal(parseUdp(flipped, V4A, V4B), 'checksum');
  assert.equal(parseUdp(u, V4A, V4B.map((b, i) => (i === 3 ? 3 : b))), 'checksum', 'the pseudo-header is covered');
  const padded = new Uint8Array(1 + 14).subarray(1);
  padded.set(u);
  padded.fill(0xaa, 11);
  const r = parseUdp(padded, V4A, V4B);
  assert.ok(typeof r !== 'string');
  assert.deepEqual(Array.from(r.payload), [0x61, 0x62, 0x63]);
});
