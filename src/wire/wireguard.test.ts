import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messageType, readU32, writeU32, readU64, writeU64 } from './wireguard.js';

// Sizes restated from the whitepaper §5.4.2–§5.4.6, not imported.
const SIZES: Record<number, number> = { 1: 148, 2: 92, 3: 64 };

function unaligned(len: number): Uint8Array {
  // byteOffset 3 so no field lands on a natural alignment.
  return new Uint8Array(new ArrayBuffer(len + 7), 3, len);
}

test('messageType accepts exact handshake sizes and rejects ±1, on unaligned views', () => {
  for (const [t, size] of Object.entries(SIZES)) {
    for (const len of [size - 1, size, size + 1]) {
      const d = unaligned(len);
      d[0] = Number(t);
      assert.equal(messageType(d), len === size ? Number(t) : undefined, `type ${t} len ${len}`);
    }
  }
  for (let len = 0; len < 40; len++) {
    const d = unaligned(len);
    if (len > 0) d[0] = 4;
    assert.equal(messageType(d), len >= 32 ? 4 : undefined, `transport len ${len}`);
  }
});

test('messageType rejects unknown types and nonzero reserved bytes', () => {
  for (let t = 0; t < 256; t++) {
    const d = unaligned(148);
    d[0] = t;
    const want = t === 1 ? 1 : t === 4 ? 4 : undefined;
    assert.equal(messageType(d), want, `type ${t}`);
  }
  for (const i of [1, 2, 3]) {
    const d = unaligned(148);
    d[0] = 1;
    d[i] = 1;
    assert.equal(messageType(d), undefined);
  }
});

test('integers are little-endian (whitepaper §5.4)', () => {
  const d = unaligned(16);
  writeU32(d, 1, 0x04030201);
  assert.deepEqual([...d.subarray(1, 5)], [1, 2, 3, 4]);
  assert.equal(readU32(d, 1), 0x04030201);
  writeU64(d, 5, 2 ** 40 + 0x0102);
  assert.deepEqual([...d.subarray(5, 13)], [2, 1, 0, 0, 0, 1, 0, 0]);
  assert.equal(readU64(d, 5), 2 ** 40 + 0x0102);
});
