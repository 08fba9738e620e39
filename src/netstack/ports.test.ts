/**
 * The ephemeral port picker (RFC 6056 §3.3.1, algorithm 1) against what the RFC asks:
 * ports from the dynamic range (RFC 6335 §6), never one in use, a search that wraps past
 * the end of the range, spread starts, and a report when the range is exhausted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRng, type Rng } from '../util/rng.js';
import { pickEphemeralPort } from './ports.js';

/** An Rng that always gives the same 32-bit value (little-endian, as randomU32 reads it). */
function fixed(v: number): Rng {
  return { fill: (b) => b.forEach((_, i) => (b[i] = (v >>> (8 * (i % 4))) & 0xff)) };
}

test('within 49152-65535 and spread over it', () => {
  const rng = new SeededRng(1);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const p = pickEphemeralPort(rng, () => false)!;
    assert.ok(p >= 49152 && p <= 65535, String(p));
    seen.add(p);
  }
  // 2000 uniform draws from 16384 ports give about 16384 × (1 - e^(-2000/16384)) ≈ 1882 distinct.
  assert.ok(seen.size > 1800, `random starts, ${seen.size} distinct of 2000`);
});

test('never a port in use: the next free one after the start', () => {
  const used = new Set<number>();
  const rng = new SeededRng(7);
  for (let i = 0; i < 5000; i++) {
    const p = pickEphemeralPort(rng, (q) => used.has(q))!;
    assert.ok(!used.has(p));
    used.add(p);
  }
  // With the start fixed at the range's first port and it taken, the next one is chosen.
  assert.equal(pickEphemeralPort(fixed(0), (q) => q === 49152), 49153);
});

test('the search wraps from the top of the range to its bottom', () => {
  // randomInt(rng, 16384) of 16383 starts at 65535; 65535 is taken, so 49152 comes next.
  assert.equal(pickEphemeralPort(fixed(16383), (q) => q === 65535), 49152);
  // A small range: start at its last port, everything from there to the end taken.
  const inUse = (q: number): boolean => q >= 1003 || q === 1000;
  assert.equal(pickEphemeralPort(fixed(3), inUse, 1000, 4), 1001);
});

test('exhausted: undefined after trying every port once', () => {
  let calls = 0;
  const r = pickEphemeralPort(new SeededRng(3), () => (calls++, true));
  assert.equal(r, undefined);
  assert.equal(calls, 65536 - 49152);
  const tried = new Set<number>();
  assert.equal(pickEphemeralPort(new SeededRng(4), (q) => (tried.add(q), true), 2000, 10), undefined);
  assert.deepEqual([...tried].sort((a, b) => a - b), [2000, 2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009]);
});
