/**
 * The peer timer heap against a naive reference (a scan of every owner's deadlines), and
 * its size bounded by the peers, not by how often deadlines move.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEVER, noPeerTimers, PEER_TIMERS, PeerTimerHeap, type PeerTimed, type PeerTimer } from './timers.js';
import { SeededRng } from '../util/rng.js';

class Owner implements PeerTimed {
  readonly timers = noPeerTimers();
  readonly queued = noPeerTimers();
  constructor(readonly id: number) {}
}

function naiveNext(owners: Iterable<Owner>): number {
  let at = NEVER;
  for (const o of owners) for (const t of PEER_TIMERS) at = Math.min(at, o.timers[t]);
  return at;
}

test('random arms, moves and cancels: next() and collectDue() agree with a scan of all deadlines', () => {
  const rng = new SeededRng(7);
  const owners = new Map<number, Owner>();
  for (let i = 0; i < 200; i++) owners.set(i, new Owner(i));
  const heap = new PeerTimerHeap<Owner>(owners);
  let now = 0;
  for (let step = 0; step < 20_000; step++) {
    const o = owners.get(rng.nextU32() % 200)!;
    const t = PEER_TIMERS[rng.nextU32() % PEER_TIMERS.length] as PeerTimer;
    const r = rng.nextFloat();
    if (r < 0.5) heap.arm(o, t, now + 1 + Math.floor(rng.nextFloat() * 1000));
    else if (r < 0.7) heap.cancel(o, t);
    else if (r < 0.72) heap.cancelAll(o);
    else if (r < 0.9) {
      assert.equal(heap.next(), naiveNext(owners.values()), `step ${step}`);
    } else {
      now += Math.floor(rng.nextFloat() * 300);
      const due = new Set<Owner>();
      heap.collectDue(now, due);
      const expected = [...owners.values()].filter((x) => PEER_TIMERS.some((k) => x.timers[k] <= now));
      assert.deepEqual([...due].map((x) => x.id).sort((a, b) => a - b), expected.map((x) => x.id).sort((a, b) => a - b), `step ${step}`);
      // The caller turns every due timer off or re-arms it.
      for (const x of due) for (const k of PEER_TIMERS) if (x.timers[k] <= now) heap.arm(x, k, rng.nextFloat() < 0.5 ? NEVER : now + 1 + Math.floor(rng.nextFloat() * 500));
    }
  }
});

test('a deadline that moves later on every packet costs no heap entry per packet', () => {
  const owners = new Map<number, Owner>([[0, new Owner(0)]]);
  const heap = new PeerTimerHeap<Owner>(owners);
  const o = owners.get(0)!;
  for (let now = 0; now < 100_000; now++) heap.arm(o, 'persistentKeepalive', now + 25_000);
  assert.equal(heap.size, 1);
  // The one entry is at the first deadline; peeking moves it to the real one.
  assert.equal(heap.next(), 99_999 + 25_000);
  assert.equal(heap.size, 1);
});

test('entries left by removed owners and moved deadlines stay bounded by the owners', () => {
  const owners = new Map<number, Owner>();
  const heap = new PeerTimerHeap<Owner>(owners);
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 1000; i++) {
      const o = new Owner(round * 1000 + i);
      owners.set(i, o); // replaces the previous round's owner: its entries are stale
      // Each arm moves the deadline earlier: a new entry every time.
      for (let k = 10; k > 0; k--) heap.arm(o, 'retransmitHandshake', 1_000_000 + k);
    }
  }
  assert.ok(heap.size <= 8 * 5 * owners.size + 10 * 1000, `${heap.size} entries for ${owners.size} owners`);
  assert.equal(heap.next(), 1_000_001);
});
