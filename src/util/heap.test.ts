import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MinHeap } from './heap.js';
import { SeededRng, randomInt } from './rng.js';

test('MinHeap pops in deadline order, against a sorted array, through random pushes and pops', () => {
  const rng = new SeededRng(7);
  const h = new MinHeap<{ at: number; id: number }>();
  const naive: { at: number; id: number }[] = [];
  for (let i = 0; i < 5000; i++) {
    if (naive.length > 0 && randomInt(rng, 3) === 0) {
      naive.sort((a, b) => a.at - b.at);
      const want = naive.shift()!;
      const got = h.pop()!;
      assert.equal(got.at, want.at, `pop ${i}`);
    } else {
      const e = { at: randomInt(rng, 1000), id: i };
      h.push(e);
      naive.push(e);
    }
    assert.equal(h.size, naive.length);
    if (naive.length) assert.equal(h.top!.at, Math.min(...naive.map((e) => e.at)));
  }
  h.clear();
  assert.equal(h.size, 0);
  assert.equal(h.pop(), undefined);
});
