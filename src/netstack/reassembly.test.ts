/**
 * The reassembler against the RFCs it follows: RFC 791 §3.2 and RFC 8200 §4.5 for
 * the rules, RFC 5722 for overlaps, and the limits a stack needs against floods
 * (a byte cap with oldest-first eviction, a per-datagram bound, timeouts).
 * Constants are restated here on purpose, not imported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reassembler } from './reassembly.js';
import type { IpInfo } from '../wire/ip.js';
import { SeededRng } from '../util/rng.js';

const SRC4 = new Uint8Array([10, 0, 0, 2]);
const DST4 = new Uint8Array([10, 0, 0, 1]);
const SRC6 = new Uint8Array(16).fill(0xfd, 0, 1).fill(2, 15);
const DST6 = new Uint8Array(16).fill(0xfd, 0, 1).fill(1, 15);

/** A parsed fragment as the IP layer hands it over (no extension headers beyond the Fragment header for IPv6). */
function frag(version: 4 | 6, id: number, offset: number, payload: Uint8Array, more: boolean, src?: Uint8Array): IpInfo {
  const headerEnd = version === 4 ? 20 : 48;
  return {
    version,
    src: src ?? (version === 4 ? SRC4 : SRC6),
    dst: version === 4 ? DST4 : DST6,
    protocol: 17,
    ttl: 64,
    payload,
    headerLen: headerEnd,
    fragment: { offset, more, id, headerEnd },
  };
}

function counter(): { count: (w: string) => void; stats: Record<string, number> } {
  const stats: Record<string, number> = {};
  return { stats, count: (w) => void (stats[w] = (stats[w] ?? 0) + 1) };
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test('a flood of incomplete datagrams stays under the byte cap, evicts oldest first, and counts evictions', () => {
  const cap = 256 * 1024;
  const c = counter();
  const r = new Reassembler({ maxBytes: cap, count: c.count });
  const FLOOD = 2000;
  for (let id = 1; id <= FLOOD; id++) {
    // First halves only: each one waits for a tail that never comes.
    assert.equal(r.add(id, new Uint8Array(0), frag(4, id, 0, bytes(1024, id), true)), undefined);
    assert.ok(r.bytesHeld <= cap, `after ${id} datagrams: ${r.bytesHeld} bytes held, cap ${cap}`);
  }
  // Every datagram held is charged at least its 1024 payload bytes, so at most cap/1024 remain.
  assert.ok(r.datagrams <= cap / 1024, `${r.datagrams} held`);
  assert.ok(r.datagrams > 0);
  assert.equal(c.stats['ip.reassembly.evicted'], FLOOD - r.datagrams);
  // The survivors are the newest: the tail of the newest completes it, the oldest tail completes nothing.
  const oldTail = r.add(FLOOD + 1, new Uint8Array(0), frag(4, 1, 1024, bytes(10, 0), false));
  assert.equal(oldTail, undefined, 'datagram 1 was evicted, its tail starts a new one');
  const newest = r.add(FLOOD + 2, new Uint8Array(0), frag(4, FLOOD, 1024, bytes(10, 0), false));
  assert.ok(newest, 'the newest datagram was kept');
  assert.deepEqual(newest.payload.subarray(0, 1024), bytes(1024, FLOOD));
});

test('a complete datagram gets through while a flood keeps the reassembler at its cap', () => {
  const cap = 64 * 1024;
  const r = new Reassembler({ maxBytes: cap });
  let now = 0;
  let floodId = 1;
  const flood = (n: number): void => {
    for (let k = 0; k < n; k++) r.add(now++, new Uint8Array(0), frag(6, 0x10000 + floodId++, 0, bytes(1232, k), true));
  };
  flood(200); // full already
  for (let round = 0; round < 20; round++) {
    const data = bytes(4000, round);
    const parts = [0, 1232, 2464, 3696].map((off, i, all) => frag(6, 7 + round, off, data.subarray(off, all[i + 1] ?? data.length), i < all.length - 1));
    let got: IpInfo | undefined | null;
    for (const p of parts.reverse()) {
      flood(3); // attacker fragments between ours
      got = r.add(now++, new Uint8Array(0), p);
    }
    assert.ok(got, `round ${round}: reassembled despite the flood`);
    assert.deepEqual(got.payload, data);
    assert.ok(r.bytesHeld <= cap);
  }
});

test('incomplete datagrams time out (IPv4 30 s, IPv6 60 s) and free their memory', () => {
  const c = counter();
  const r = new Reassembler({ count: c.count });
  r.add(1000, new Uint8Array(0), frag(4, 1, 0, bytes(800, 1), true));
  r.add(2000, new Uint8Array(0), frag(6, 1, 0, bytes(800, 2), true));
  assert.ok(r.bytesHeld >= 1600);
  assert.equal(r.pollTimeout()?.at, 1000 + 30_000, 'IPv4: Linux ipfrag_time, above RFC 791 §3.2 lower bound of 15 s');
  r.expire(30_999);
  assert.equal(r.datagrams, 2, 'nothing expires early');
  r.expire(31_000);
  assert.equal(r.datagrams, 1);
  assert.equal(r.pollTimeout()?.at, 2000 + 60_000, 'IPv6: RFC 8200 §4.5');
  r.expire(62_000);
  assert.equal(r.datagrams, 0);
  assert.equal(r.bytesHeld, 0);
  assert.equal(r.pollTimeout(), undefined);
  assert.equal(c.stats['ip.reassembly.timeout'], 2);
});

test('a fragment arriving after the deadline does not complete the stale datagram, even before the timer ran', () => {
  const r = new Reassembler();
  r.add(0, new Uint8Array(0), frag(4, 5, 0, bytes(16, 1), true));
  // No expire() call: the driver's timer is late.
  assert.equal(r.add(30_000, new Uint8Array(0), frag(4, 5, 16, bytes(8, 2), false)), undefined);
  assert.equal(r.datagrams, 1, 'the tail starts a fresh datagram');
});

test('IPv6 overlap drops the whole datagram, including fragments not yet received (RFC 5722 §3)', () => {
  const c = counter();
  const r = new Reassembler({ count: c.count });
  const data = bytes(48, 3);
  assert.equal(r.add(0, new Uint8Array(0), frag(6, 9, 0, data.subarray(0, 24), true)), undefined);
  const before = r.bytesHeld;
  assert.equal(r.add(0, new Uint8Array(0), frag(6, 9, 16, data.subarray(16, 32), true)), null, 'overlap');
  assert.equal(c.stats['ip.reassembly.overlap'], 1);
  assert.ok(r.bytesHeld <= before - 24, `the fragment held was freed (${before} -> ${r.bytesHeld} bytes; a tombstone remains)`);
  // The rest, even in a shape that would now complete, is discarded.
  assert.equal(r.add(1, new Uint8Array(0), frag(6, 9, 24, data.subarray(24), false)), null);
  assert.equal(r.add(2, new Uint8Array(0), frag(6, 9, 0, data.subarray(0, 24), true)), null);
  assert.equal(c.stats['ip.reassembly.afterOverlap'], 2);
  // After the reassembly timeout the identification may be used again.
  r.expire(60_000);
  assert.equal(r.datagrams, 0);
  assert.equal(r.add(60_001, new Uint8Array(0), frag(6, 9, 24, data.subarray(24), false)), undefined);
  assert.deepEqual(r.add(60_002, new Uint8Array(0), frag(6, 9, 0, data.subarray(0, 24), true))?.payload, data);
});

test('IPv4 overlap drops what is held but a clean retransmission with the same ID reassembles', () => {
  const r = new Reassembler();
  const data = bytes(48, 4);
  r.add(0, new Uint8Array(0), frag(4, 3, 0, data.subarray(0, 24), true));
  assert.equal(r.add(0, new Uint8Array(0), frag(4, 3, 8, data.subarray(8, 16), true)), null);
  assert.equal(r.bytesHeld, 0);
  r.add(1, new Uint8Array(0), frag(4, 3, 0, data.subarray(0, 24), true));
  assert.deepEqual(r.add(1, new Uint8Array(0), frag(4, 3, 24, data.subarray(24), false))?.payload, data);
});

test('per-datagram limits: 65535 bytes of packet, 256 fragments, 8-byte multiples', () => {
  const c = counter();
  const r = new Reassembler({ count: c.count });
  // IPv4: 20-byte header + offset 65512 + 8 bytes = 65540 > 65535 (RFC 791 §3.1 total length).
  assert.equal(r.add(0, new Uint8Array(0), frag(4, 1, 65512, bytes(8, 0), false)), null);
  // 65515 bytes of payload still fit a 20-byte header.
  assert.equal(r.add(0, new Uint8Array(0), frag(4, 2, 65504, bytes(11, 0), false)), undefined);
  // IPv6: the Payload Length excludes the fixed header and the Fragment header (RFC 8200 §4.5).
  assert.equal(r.add(0, new Uint8Array(0), frag(6, 1, 65528, bytes(7, 0), false)), undefined);
  assert.equal(r.add(0, new Uint8Array(0), frag(6, 2, 65528, bytes(8, 0), false)), null);
  assert.equal(c.stats['ip.reassembly.tooLarge'], 2);
  // A fragment with more to come must carry a multiple of 8 bytes.
  assert.equal(r.add(0, new Uint8Array(0), frag(4, 3, 0, bytes(12, 0), true)), null);
  assert.equal(c.stats['ip.reassembly.badLength'], 1);
  // 8-byte fragments: the 257th drops the datagram.
  for (let k = 0; k < 256; k++) assert.equal(r.add(0, new Uint8Array(0), frag(4, 4, 8 + k * 8, bytes(8, k), true)), undefined);
  assert.equal(r.add(0, new Uint8Array(0), frag(4, 4, 8 * 300, bytes(8, 0), true)), null);
  assert.equal(c.stats['ip.reassembly.tooManyFragments'], 1);
  assert.equal(r.add(0, new Uint8Array(0), frag(4, 4, 0, bytes(8, 0), true)), undefined, 'the datagram is gone: this starts a new one');
});

test('datagrams differing in source, protocol or ID are kept apart', () => {
  const r = new Reassembler();
  const other = new Uint8Array([10, 0, 0, 3]);
  r.add(0, new Uint8Array(0), frag(4, 1, 0, bytes(8, 1), true));
  r.add(0, new Uint8Array(0), frag(4, 1, 0, bytes(8, 2), true, other));
  const tcp = { ...frag(4, 1, 0, bytes(8, 3), true), protocol: 6 };
  r.add(0, new Uint8Array(0), tcp);
  assert.equal(r.datagrams, 3);
  const got = r.add(0, new Uint8Array(0), frag(4, 1, 8, bytes(4, 9), false, other));
  assert.deepEqual(got?.payload.subarray(0, 8), bytes(8, 2));
});

/**
 * A naive model of the rules: a byte map per datagram. Accept iff every fragment
 * either repeats an earlier one exactly or touches no byte already held, and the
 * bytes then cover [0, end) exactly; otherwise nothing is delivered.
 */
function naive(frags: { off: number; data: Uint8Array; more: boolean }[]): Uint8Array | null {
  const held = new Map<number, number>();
  const seen: string[] = [];
  let end = -1;
  for (const f of frags) {
    const k = `${f.off}:${f.data.length}`;
    if (seen.includes(k)) continue;
    for (let i = 0; i < f.data.length; i++) if (held.has(f.off + i)) return null;
    if (!f.more) {
      if (end >= 0 && end !== f.off + f.data.length) return null;
      end = f.off + f.data.length;
    }
    for (const [o] of held) if (end >= 0 && o >= end) return null;
    if (end >= 0 && f.off + f.data.length > end) return null;
    seen.push(k);
    f.data.forEach((b, i) => held.set(f.off + i, b));
    if (end >= 0 && held.size === end) {
      const out = new Uint8Array(end);
      for (const [o, b] of held) out[o] = b;
      return out;
    }
  }
  return null;
}

test('random fragmentations with duplicates and stray overlaps agree with a naive byte-map model', () => {
  const rng = new SeededRng(2024);
  let delivered = 0;
  let dropped = 0;
  for (let trial = 0; trial < 500; trial++) {
    const data = new Uint8Array(8 + (rng.nextU32() % 2000));
    rng.fill(data);
    const frags: { off: number; data: Uint8Array; more: boolean }[] = [];
    for (let off = 0; off < data.length; ) {
      const end = Math.min(data.length, off + 8 * (1 + (rng.nextU32() % 30)));
      frags.push({ off, data: data.subarray(off, end), more: end < data.length });
      off = end;
    }
    const list = [...frags];
    for (const f of frags) if (rng.nextU32() % 5 === 0) list.push(f);
    if (rng.nextU32() % 3 === 0) {
      const off = 8 * (rng.nextU32() % Math.ceil(data.length / 8));
      const len = 8 * (1 + (rng.nextU32() % 4));
      const junk = new Uint8Array(len);
      rng.fill(junk);
      list.push({ off, data: junk, more: true });
    }
    for (let k = list.length - 1; k > 0; k--) {
      const j = rng.nextU32() % (k + 1);
      [list[k], list[j]] = [list[j]!, list[k]!];
    }
    const expected = naive(list);
    const r = new Reassembler();
    let got: Uint8Array | null = null;
    for (const f of list) {
      const out = r.add(0, new Uint8Array(0), frag(6, trial, f.off, f.data, f.more));
      if (out) {
        got = out.payload;
        break;
      }
    }
    assert.deepEqual(got, expected, `trial ${trial}`);
    if (got) delivered++;
    else dropped++;
  }
  assert.ok(delivered > 100 && dropped > 20, `${delivered} delivered, ${dropped} dropped: both paths exercised`);
});
