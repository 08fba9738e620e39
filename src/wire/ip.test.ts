/**
 * IPv4 header writing and its checksum (RFC 791, RFC 1071), on unaligned buffers, checked
 * against the generic checksum of util/checksum.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum } from '../util/checksum.js';
import { ipv4HeaderChecksum, parseIPv4, writeIPv4Header } from './ip.js';

function unaligned(n: number): Uint8Array {
  return new Uint8Array(n + 3).subarray(3);
}

test('IPv4 header checksum: the unrolled 20-byte sum equals the generic one, and a written header verifies', () => {
  let x = 11;
  const rnd = (): number => (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  for (let k = 0; k < 5000; k++) {
    const h = unaligned(20).map(() => (k < 10 ? 0xff : rnd()));
    assert.equal(ipv4HeaderChecksum(h), checksum(h, 0, 20));
    const p = unaligned(20 + 8);
    writeIPv4Header(p, h.subarray(12, 16), h.subarray(16, 20), h[9]!, 8, (h[4]! << 8) | h[5]!, h[8]!);
    assert.equal(checksum(p, 0, 20), 0);
    assert.equal(ipv4HeaderChecksum(p), 0);
    assert.deepEqual(Array.from(p.subarray(12, 20)), Array.from(h.subarray(12, 20)));
  }
});

test('parseIPv4 refuses a header whose checksum does not hold, with and without options', () => {
  for (const ihl of [5, 6]) {
    const p = unaligned(ihl * 4 + 4);
    writeIPv4Header(p, Uint8Array.of(10, 0, 0, 1), Uint8Array.of(10, 0, 0, 2), 1, 4 + (ihl - 5) * 4, 9);
    if (ihl === 6) {
      // Widen to a 24-byte header (one all-zero option word) and sum it again.
      p[0] = 0x46;
      p[10] = p[11] = 0;
      const c = checksum(p, 0, 24);
      p[10] = c >> 8;
      p[11] = c & 0xff;
    }
    assert.equal(typeof parseIPv4(p), 'object');
    p[8]! ^= 1;
    assert.equal(parseIPv4(p), 'checksum');
  }
});
