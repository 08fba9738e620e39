/** HyStart++ delay detection (RFC 9406 §4.2, §4.3), constants restated from the RFC. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HyStart } from './hystart.js';

/**
 * Feeds one round of `n` ACKs in [start, end) with RTT `rtt`, the sender having sent up
 * to `end` when the round began (so the next round starts at the ACK of `end`). True on exit.
 */
function round(h: HyStart, start: number, end: number, n: number, rtt: number): boolean {
  let exit = false;
  for (let i = 0; i < n; i++) exit = h.onAck((start + Math.floor(((end - start) * i) / n)) >>> 0, end >>> 0, rtt) || exit;
  return exit;
}

test('a steady RTT never ends slow start', () => {
  const h = new HyStart();
  let seq = 1000;
  for (let r = 0; r < 10; r++, seq += 10_000) assert.equal(round(h, seq, seq + 10_000, 20, 20), false);
});

test('a rise of at least max(4 ms, minRTT/8) after 8 samples ends it (RTT 20 ms: threshold 4 ms)', () => {
  const h = new HyStart();
  assert.equal(round(h, 0, 10_000, 20, 20), false);
  assert.equal(round(h, 10_000, 20_000, 20, 23), false); // +3 ms < 4 ms
  assert.equal(round(h, 20_000, 30_000, 20, 27.5), true); // +4.5 over the last round's 23
});

test('the threshold is clamped to 16 ms for long paths (RTT 200 ms: 25 → 16)', () => {
  const h = new HyStart();
  round(h, 0, 10_000, 20, 200);
  assert.equal(round(h, 10_000, 20_000, 20, 215), false);
  const g = new HyStart();
  round(g, 0, 10_000, 20, 200);
  assert.equal(round(g, 10_000, 20_000, 20, 216), true);
});

test('fewer than 8 samples in a round decide nothing; works across the 2^32 wrap', () => {
  const h = new HyStart();
  const base = 0xffff0000;
  round(h, base, base + 20_000, 20, 20);
  assert.equal(round(h, base + 20_000, base + 0x20000, 7, 100), false);
  const g = new HyStart();
  round(g, base, base + 20_000, 20, 20);
  assert.equal(round(g, base + 20_000, base + 0x20000, 8, 100), true);
});
