/**
 * RACK's loss marking (RFC 8985 §6.2 step 5) in the send records (rate.ts) against a naive
 * reference that reads the RFC's pseudocode literally: every segment not yet delivered,
 * sent before the RACK segment, is lost once RACK.rtt + reo_wnd has passed since it was
 * sent; the reordering timer is due at the earliest such time still ahead. The records
 * walk only the holes between SACKed ranges and stop early; this checks they find the same
 * segments and the same deadline, over random sends, resends, SACKs and cumulative ACKs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateSampler } from './rate.js';
import { Rack, reoWnd } from './rack.js';
import type { Conn } from './conn.js';
import { SeededRng } from '../../util/rng.js';

const MSS = 1000;

interface Seg {
  start: number;
  end: number;
  xmit: number;
  sacked: boolean;
  lost: boolean;
}

/** RACK_sent_after (RFC 8985 §6.2), restated. */
function sentAfter(t1: number, e1: number, t2: number, e2: number): boolean {
  return t1 > t2 || (t1 === t2 && e1 > e2);
}

/** The RFC's RACK_detect_loss over all segments, marking `lost`; returns the earliest pending deadline. */
function naiveDetect(segs: Seg[], now: number, rXmit: number, rEnd: number, lostAfter: number): number {
  let earliest = Infinity;
  for (const s of segs) {
    if (s.sacked || s.lost) continue;
    if (!sentAfter(rXmit, rEnd, s.xmit, s.end)) continue;
    const at = s.xmit + lostAfter;
    if (at <= now) s.lost = true;
    else earliest = Math.min(earliest, at);
  }
  return earliest;
}

/** The scoreboard's ranges for the model: SACKed segments merged, flattened [l0, r0, ...]. */
function ranges(segs: Seg[]): number[] {
  const out: number[] = [];
  for (const s of segs) {
    if (!s.sacked) continue;
    if (out.length > 0 && out[out.length - 1] === s.start) out[out.length - 1] = s.end;
    else out.push(s.start, s.end);
  }
  return out;
}

function lostStarts(r: RateSampler, from: number, nxt: number): number[] {
  const out: number[] = [];
  for (let s = r.nextLost(from, nxt); s >= 0; s = r.nextLost(s + 1, nxt)) out.push(s);
  return out;
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`the walk over the holes marks what the RFC's loop marks (seed ${seed})`, () => {
    const rng = new SeededRng(seed);
    const rand = (n: number): number => Math.floor(rng.nextFloat() * n);
    const r = new RateSampler(false);
    let segs: Seg[] = [];
    let now = 0;
    let una = 0;
    let sndMax = 0;
    // The newest delivered segment (the RACK segment), as rack.ts keeps it.
    let rXmit = -Infinity;
    let rEnd = 0;
    const deliver = (s: Seg): void => {
      if (sentAfter(s.xmit, s.end, rXmit, rEnd)) {
        rXmit = s.xmit;
        rEnd = s.end;
      }
    };
    for (let step = 0; step < 3000; step++) {
      now += rand(4) * 0.5;
      const op = rand(10);
      if (op <= 2 || segs.length === 0) {
        // New data: a few segments at SND.MAX, all at this instant.
        for (let n = 1 + rand(4); n > 0; n--) {
          r.onSend(now, sndMax, MSS, sndMax - una, sndMax);
          segs.push({ start: sndMax, end: sndMax + MSS, xmit: now, sacked: false, lost: false });
          sndMax += MSS;
        }
      } else if (op === 3) {
        // A resend of a segment still outstanding (lost-marked or not): new send time.
        const s = segs[rand(segs.length)]!;
        if (!s.sacked) {
          r.onSend(now, s.start, MSS, sndMax - una, sndMax);
          s.xmit = now;
          s.lost = false;
        }
      } else if (op <= 6) {
        // A SACK for one segment.
        const s = segs[rand(segs.length)]!;
        if (!s.sacked) {
          r.beginAck();
          r.sackBlocks(now, [s.start, s.end], 0, ranges(segs), una, sndMax);
          s.sacked = true;
          s.lost = false;
          deliver(s);
        }
      } else if (op === 7) {
        // A cumulative ACK over the first few segments.
        const n = 1 + rand(Math.min(3, segs.length));
        r.beginAck();
        una = segs[n - 1]!.end;
        r.acked(now, una);
        for (const s of segs.slice(0, n)) if (!s.sacked) deliver(s);
        segs = segs.slice(n);
      } else {
        const lostAfter = rand(12) * 0.5;
        const want = naiveDetect(segs, now, rXmit, rEnd, lostAfter);
        const got = r.detectLoss(now, rXmit, rEnd, lostAfter, sndMax, ranges(segs));
        assert.equal(got, want, `step ${step}: the earliest deadline`);
        assert.deepEqual(lostStarts(r, una, sndMax), segs.filter((s) => s.lost).map((s) => s.start), `step ${step}: the lost segments`);
        assert.equal(r.lostBytes, segs.filter((s) => s.lost).length * MSS, `step ${step}: lost bytes`);
      }
    }
  });
}

test('RACK.reo_wnd (RFC 8985 §6.2 step 4): min_RTT / 4 per step, bounded by SRTT; past it only on a sub-ms path for a loss-based sender', () => {
  const conn = (minRtt: number, srtt: number, mult: number, ccSamples = false): Conn =>
    ({ inRecovery: false, rtoRecovery: false, ccSamples, rate: { sackedSegs: 0 }, rtt: { sampled: true, minRtt, srtt }, rack: Object.assign(new Rack(), { reoWndMult: mult, reorderingSeen: true }) }) as unknown as Conn;
  // A 20 ms path: 5 ms per step, at most SRTT, however many D-SACK rounds widened it.
  assert.equal(reoWnd(conn(20, 22, 1)), 5);
  assert.equal(reoWnd(conn(20, 22, 3)), 15);
  assert.equal(reoWnd(conn(20, 22, 40)), 22);
  // A 0.4 ms path (1 ms timestamps: taken as 1 ms, so 0.25 ms per step): SRTT (0.8, taken as
  // 1 ms) bounds the base window; once D-SACKs have widened it, a quarter of the 200 ms RTO floor.
  assert.equal(reoWnd(conn(0.4, 0.8, 1)), 0.25);
  assert.equal(reoWnd(conn(0.4, 0.8, 20)), 5);
  assert.equal(reoWnd(conn(0.4, 0.8, 1000)), 200 / 4);
  // BBR on the same path keeps the SRTT bound.
  assert.equal(reoWnd(conn(0.4, 0.8, 20, true)), 1);
});
