/**
 * The timer heap against a naive scan of every owner's deadlines (DESIGN §6): random
 * arm, move, cancel and cancelAll, with due owners collected and handled as the layer
 * does (their expired deadlines cancelled).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noTimers, TimerHeap, type Timer, type TimerSet } from './timers.js';
import { SeededRng } from '../../util/rng.js';

const KINDS: Timer[] = ['rto', 'delack', 'persist', 'keepalive', 'timewait', 'trim', 'reo', 'pace'];

interface Owner {
  id: number;
  timers: TimerSet;
}

function naiveMin(owners: Owner[]): number {
  let m = Infinity;
  for (const o of owners) for (const k of KINDS) m = Math.min(m, o.timers[k]);
  return m;
}

function naiveDue(owners: Owner[], now: number): Set<Owner> {
  const s = new Set<Owner>();
  for (const o of owners) for (const k of KINDS) if (o.timers[k] <= now) s.add(o);
  return s;
}

for (const seed of [1, 2, 3]) {
  test(`the heap agrees with a naive scan (seed ${seed})`, () => {
    const rng = new SeededRng(seed);
    const rand = (n: number): number => Math.floor(rng.nextFloat() * n);
    const owners: Owner[] = Array.from({ length: 40 }, (_, id) => ({ id, timers: noTimers() }));
    const h = new TimerHeap<Owner>();
    let now = 0;
    for (let step = 0; step < 20_000; step++) {
      const o = owners[rand(owners.length)]!;
      const k = KINDS[rand(KINDS.length)]!;
      const op = rand(10);
      if (op < 6) h.arm(o, k, now + 1 + rand(1000)); // arm or move
      else if (op < 8) h.cancel(o, k);
      else if (op < 9) h.arm(o, k, Infinity);
      else h.cancelAll(o);
      const e = h.peek();
      const min = naiveMin(owners);
      assert.equal(e === undefined ? Infinity : e.at, min, `step ${step}: earliest deadline`);
      if (step % 7 === 0) {
        now += rand(300);
        const due = new Set<Owner>();
        h.collectDue(now, due);
        assert.deepEqual([...due].map((x) => x.id).sort((a, b) => a - b), [...naiveDue(owners, now)].map((x) => x.id).sort((a, b) => a - b), `step ${step}: due at ${now}`);
        // As the layer does: every expired deadline of a due owner is handled (cancelled).
        for (const d of due) for (const kk of KINDS) if (d.timers[kk] <= now) h.cancel(d, kk);
      }
    }
  });
}

test('moving one deadline many times keeps the heap bounded (stale entries are rebuilt away)', () => {
  const h = new TimerHeap<Owner>();
  const o: Owner = { id: 0, timers: noTimers() };
  for (let i = 0; i < 100_000; i++) h.arm(o, 'rto', 1000 + i);
  assert.ok(h.size <= 1025, `${h.size} entries for one live deadline`);
  assert.equal(h.peek()!.at, 1000 + 99_999);
  h.cancelAll(o);
  assert.equal(h.peek(), undefined);
});
