/**
 * Sets of sequence ranges, kept flattened as [l0, r0, l1, r1, ...]: sorted, disjoint and
 * never adjacent, compared in 32-bit sequence space (RFC 9293 §3.4). The sender's SACK
 * scoreboard (RFC 6675) and the receiver's out-of-order map (RFC 2018 blocks) are both
 * such sets; they hold a range per hole, so a few entries, and are changed in place.
 */
import { seqGe, seqGt, seqLe, seqLt, seqDiff } from '../../wire/tcp.js';

/** Adds [l, r), merging every range it touches or overlaps. */
export function addRange(list: number[], l: number, r: number): void {
  let i = 0;
  while (i < list.length && seqLt(list[i + 1]!, l)) i += 2;
  let j = i;
  let nl = l;
  let nr = r;
  while (j < list.length && seqLe(list[j]!, nr)) {
    if (seqLt(list[j]!, nl)) nl = list[j]!;
    if (seqGt(list[j + 1]!, nr)) nr = list[j + 1]!;
    j += 2;
  }
  list.splice(i, j - i, nl, nr);
}

/** Drops everything below `x`. */
export function trimBelow(list: number[], x: number): void {
  let k = 0;
  while (k < list.length && seqLe(list[k + 1]!, x)) k += 2;
  if (k > 0) list.splice(0, k);
  if (list.length > 0 && seqLt(list[0]!, x)) list[0] = x;
}

/** The index of the range holding sequence `x`, or -1. */
export function findRange(list: number[], x: number): number {
  for (let j = 0; j < list.length; j += 2) {
    if (seqLt(x, list[j]!)) return -1;
    if (seqLt(x, list[j + 1]!)) return j;
  }
  return -1;
}

/** Whether one range holds all of [l, r). */
export function covers(list: number[], l: number, r: number): boolean {
  const j = findRange(list, l);
  return j >= 0 && seqGe(list[j + 1]!, r);
}

/** The bytes in all ranges. */
export function rangeBytes(list: number[]): number {
  let n = 0;
  for (let j = 0; j < list.length; j += 2) n += seqDiff(list[j + 1]!, list[j]!);
  return n;
}
