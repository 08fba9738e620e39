/**
 * ByteRing against a plain array of bytes (DESIGN §6): random pushes, takes, consumes and
 * copies that wrap around the end of the buffer and make it grow, up to its maximum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteRing } from './ring.js';
import { SeededRng } from '../../util/rng.js';

// 50: a ring that never leaves its smallest (on-heap, copied by hand) buffer, wrapping often.
for (const max of [50, 20_000, 100_000]) {
  test(`matches a naive byte array (max ${max})`, () => {
    const rng = new SeededRng(max);
    const rand = (n: number): number => Math.floor(rng.nextFloat() * n);
    const r = new ByteRing(max);
    let model: number[] = [];
    let next = 0;
    let grew = 0;
    for (let step = 0; step < 3000; step++) {
      const op = rand(5);
      if (op <= 1) {
        const n = rand(9000);
        const data = new Uint8Array(n);
        for (let i = 0; i < n; i++) data[i] = (next + i) & 0xff;
        const cap = r.capacity;
        const took = r.push(data);
        assert.equal(took, Math.min(n, max - model.length), 'takes what fits');
        for (let i = 0; i < took; i++) model.push(data[i]!);
        next += took;
        if (r.capacity > cap) grew++;
        assert.ok(r.capacity <= Math.max(max, 1024), 'never beyond its maximum');
      } else if (op === 2) {
        const n = rand(model.length + 10);
        const out = r.take(n);
        assert.deepEqual([...out], model.slice(0, n));
        model = model.slice(Math.min(n, model.length));
      } else if (op === 3) {
        const n = rand(model.length + 10);
        r.consume(n);
        model = model.slice(Math.min(n, model.length));
      } else {
        const from = rand(model.length + 1);
        const n = rand(model.length - from + 1);
        const out = new Uint8Array(n + 3);
        r.copyOut(from, n, out, 3);
        assert.deepEqual([...out.subarray(3)], model.slice(from, from + n));
      }
      assert.equal(r.length, model.length);
      assert.equal(r.space, max - model.length);
      if (model.length === 0 && rand(4) === 0) {
        r.release();
        assert.equal(r.capacity, 0, 'an empty ring frees its memory');
      }
    }
    assert.ok(grew > 0, 'the ring grew');
  });
}

test('starts empty, grows by doubling from 64 bytes, and release() keeps data', () => {
  const r = new ByteRing(1 << 20);
  assert.equal(r.capacity, 0);
  r.push(new Uint8Array(10));
  assert.equal(r.capacity, 64, 'a small first push takes the smallest buffer');
  r.push(new Uint8Array(90));
  assert.equal(r.capacity, 128, 'the next power of two that holds the content');
  r.push(new Uint8Array(1000));
  assert.equal(r.capacity, 2048, 'then doubles');
  r.push(new Uint8Array(20 * 1024));
  assert.equal(r.capacity, 32 * 1024, 'doubling until the content fits');
  r.release(); // not empty: kept
  assert.equal(r.length, 1100 + 20 * 1024);
  assert.equal(r.capacity, 32 * 1024);
});
