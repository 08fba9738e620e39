/**
 * The soak's CI version (issue 18; the long one is `npm run bench -- soak`, 1 GB each way):
 * 50 MB each way at once over one connection whose outer datagrams cross a seeded relay
 * with 2 % loss each way and 10 % reordering. Every byte is checked as it arrives (runSoak
 * rejects on the first wrong one), and memory must not grow with the bytes moved.
 *
 * Bounds, from runs on this 2-core machine (1 GB each way: RSS 111 -> 149 -> 146 MB, heap
 * after GC 13.4 -> 14.9 MB): the V8 heap after a full GC grows by less than 16 MB; RSS grows
 * by less than 48 MB over the second half (the rings and buffers of the connection are all
 * in use by the middle); the peak stays within 160 MB of the start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak } from '../../bench/soak.js';

const MB = 1024 * 1024;

test('soak: 50 MB each way through 2 % loss + 10 % reordering, byte-exact, memory flat', { timeout: 120_000 }, async (t) => {
  const r = await runSoak({ bytes: 50 * MB, loss: 0.02, reorder: 0.1, holdMs: 3, seed: 7 });
  const f = (x: number): string => x.toFixed(1);
  t.diagnostic(`${f(r.seconds)} s, ${f(r.mbitUp)} Mbit/s each way; RSS ${f(r.rss.start)} -> ${f(r.rss.middle)} -> ${f(r.rss.end)} MB (peak ${f(r.rss.peak)}); heap ${f(r.heap.start)} -> ${f(r.heap.end)} MB; relay dropped ${r.relay.dropped} of ${r.relay.dropped + r.relay.relayed}; ${JSON.stringify(r.tcp)}`);
  // The path was as lossy as asked: ~2 % of datagrams each way.
  const share = r.relay.dropped / (r.relay.dropped + r.relay.relayed);
  assert.ok(share > 0.015 && share < 0.025, `the relay dropped ${(share * 100).toFixed(2)} %`);
  assert.ok((r.tcp.fastRetransmits ?? 0) + (r.tcp.lostRetransmits ?? 0) > 0, 'losses were recovered by retransmission');
  assert.ok(r.heap.end - r.heap.start < 16, `heap after GC grew ${f(r.heap.end - r.heap.start)} MB`);
  assert.ok(r.rss.end - r.rss.middle < 48, `RSS grew ${f(r.rss.end - r.rss.middle)} MB over the second half`);
  assert.ok(r.rss.peak - r.rss.start < 160, `RSS peaked ${f(r.rss.peak - r.rss.start)} MB above the start`);
});
