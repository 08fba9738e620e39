import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addRange, covers, findRange, rangeBytes, trimBelow } from './ranges.js';

test('ranges merge when they overlap or touch, and stay sorted', () => {
  const l: number[] = [];
  addRange(l, 100, 200);
  addRange(l, 300, 400);
  addRange(l, 0, 50);
  assert.deepEqual(l, [0, 50, 100, 200, 300, 400]);
  addRange(l, 200, 250); // touches the second
  assert.deepEqual(l, [0, 50, 100, 250, 300, 400]);
  addRange(l, 40, 310); // spans three
  assert.deepEqual(l, [0, 400]);
  assert.equal(rangeBytes(l), 400);
});

test('lookups, trimming and sequence wrap-around', () => {
  const base = 0xffffff00;
  const l: number[] = [];
  addRange(l, base, (base + 0x80) >>> 0);
  addRange(l, (base + 0x100) >>> 0, (base + 0x180) >>> 0); // past 2^32: 0x0 .. 0x80
  assert.deepEqual(l, [base, 0xffffff80, 0, 0x80]);
  assert.equal(findRange(l, 0xffffff10), 0);
  assert.equal(findRange(l, 0x10), 2);
  assert.equal(findRange(l, 0xffffffa0), -1);
  assert.ok(covers(l, 0x10, 0x80));
  assert.ok(!covers(l, 0xffffff70, 0x10), 'a hole in between');
  trimBelow(l, 0xffffff40);
  assert.deepEqual(l, [0xffffff40, 0xffffff80, 0, 0x80]);
  trimBelow(l, 0x20);
  assert.deepEqual(l, [0x20, 0x80]);
  trimBelow(l, 0x80);
  assert.deepEqual(l, []);
});
