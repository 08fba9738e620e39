import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, finishChecksum, sumBytes } from './checksum.js';

/** RFC 1071 the slow, obvious way: big-endian 16-bit words, a zero pad byte, carries folded at every step. */
function reference(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) {
    s += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  return ~s & 0xffff;
}

test('RFC 1071 §3 example: the words 0001 f203 f4f5 f6f7 sum to ddf2', () => {
  const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
  assert.equal(checksum(b), ~0xddf2 & 0xffff);
});

test('the word-at-a-time sum equals the byte loop at every alignment and length', () => {
  const backing = new Uint8Array(4096);
  let x = 12345;
  for (let i = 0; i < backing.length; i++) backing[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  for (const fill of [undefined, 0xff]) {
    if (fill !== undefined) backing.fill(fill);
    for (let off = 0; off < 8; off++) {
      for (const len of [0, 1, 2, 3, 31, 32, 33, 34, 35, 63, 64, 200, 1379, 1380, 1500, 4000]) {
        const b = backing.subarray(off, off + len);
        assert.equal(checksum(b), reference(b), `offset ${off}, length ${len}`);
        // A sub-range at an odd and an even start inside the view.
        if (len > 40) {
          for (const start of [1, 2, 3]) assert.equal(finishChecksum(sumBytes(b, start, len - 1)), reference(b.subarray(start, len - 1)), `offset ${off}+${start}`);
        }
      }
    }
  }
});
