/** The counter helpers (DESIGN §6): typed names, counted in place. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { increment, zeroCounters, type Counters } from './counters.js';

test('increment: a name appears once counted and adds up', () => {
  const c: Counters<'a' | 'b.c'> = {};
  assert.deepEqual(c, {});
  increment(c, 'a');
  increment(c, 'a');
  increment(c, 'b.c', 5);
  assert.deepEqual(c, { a: 2, 'b.c': 5 });
  // @ts-expect-error a name outside the union does not compile
  increment(c, 'd');
});

test('zeroCounters: every name at 0, in list order', () => {
  const names = ['x', 'y', 'drop.z'] as const;
  const c = zeroCounters(names);
  assert.deepEqual(Object.entries(c), [
    ['x', 0],
    ['y', 0],
    ['drop.z', 0],
  ]);
  c.x++;
  assert.equal(c.x, 1);
  // @ts-expect-error only listed names
  assert.equal(c.w, undefined);
});
