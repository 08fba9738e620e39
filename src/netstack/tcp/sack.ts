/**
 * The sender's SACK scoreboard (RFC 6675 §3, §4): what the receiver reported holding
 * above the cumulative ACK, as sorted ranges (ranges.ts). RFC 6675's IsLost rule, "a
 * hole with more than (DupThresh - 1) × SMSS bytes SACKed above it has left the
 * network", is written once here (lostEdge) and used by both pipe and NextSeg.
 */
import { seqDiff, seqGe, seqGt, seqLe, seqLt } from '../../wire/tcp.js';
import { DUP_THRESH, MAX_RANGES } from './constants.js';
import { addRange, rangeBytes, trimBelow } from './ranges.js';

export class Scoreboard {
  /** SACKed ranges above una, flattened [l0, r0, l1, r1, ...]. */
  ranges: number[] = [];
  /** Bytes the ranges cover. */
  bytes = 0;
  /** The length of the range nextSeg last found (a field, so the hot path allocates nothing). */
  segLen = 0;

  /**
   * Adds the SACK blocks of an ACK. Blocks not inside what was sent are ignored (RFC 2018,
   * RFC 6675 §4). False if some were dropped because the scoreboard is full (MAX_RANGES).
   */
  update(blocks: number[], una: number, sndMax: number): boolean {
    const b = this.ranges;
    let ok = true;
    for (let i = 0; i + 1 < blocks.length; i += 2) {
      const l = blocks[i]!;
      const r = blocks[i + 1]!;
      // Ignore blocks that are not inside what we sent (RFC 2018, RFC 6675 §4).
      if (!seqLt(l, r) || seqGt(r, sndMax) || seqLe(r, una)) continue;
      if (b.length >= 2 * MAX_RANGES) {
        ok = false;
        break;
      }
      addRange(b, seqLt(l, una) ? una : l, r);
    }
    this.bytes = rangeBytes(b);
    return ok;
  }

  /** Forgets what the cumulative ACK now covers. */
  prune(una: number): void {
    if (this.ranges.length === 0) return;
    trimBelow(this.ranges, una);
    this.bytes = rangeBytes(this.ranges);
  }

  /**
   * RFC 6675 §4 IsLost, for every hole at once: the left edge of the highest range with
   * more than (DupThresh - 1) × SMSS bytes SACKed from it up. Every un-SACKed byte below
   * it is lost; none above is. `una` when no hole is lost yet.
   */
  lostEdge(una: number, mss: number): number {
    const b = this.ranges;
    let above = 0;
    for (let j = b.length - 2; j >= 0; j -= 2) {
      above += seqDiff(b[j + 1]!, b[j]!);
      if (above > (DUP_THRESH - 1) * mss) return b[j]!;
    }
    return una;
  }

  /**
   * RFC 6675's pipe, simplified: bytes sent up to `nxt` and neither acknowledged
   * nor SACKed. After a timeout `nxt` rewinds to `una`, so what was in flight
   * before it no longer counts (RFC 6675 §5.1).
   */
  pipe(una: number, nxt: number, rexmitNext: number, inRecovery: boolean, mss: number): number {
    const blocks = this.ranges;
    let sackedBelow = 0;
    for (let j = 0; j < blocks.length; j += 2) {
      const l = blocks[j]!;
      if (seqGe(l, nxt)) break;
      const r = blocks[j + 1]!;
      sackedBelow += seqDiff(seqLt(r, nxt) ? r : nxt, l);
    }
    let pipe = seqDiff(nxt, una) - sackedBelow;
    if (inRecovery && blocks.length > 0) {
      // RFC 6675 §4 IsLost: a hole with more than (DupThresh - 1) × SMSS bytes SACKed above
      // it has left the network; it counts again only once retransmitted (below HighRxt,
      // here rexmitNext). Without this, a burst that loses half the window leaves pipe
      // above cwnd and recovery sends nothing until the RTO.
      let lostEdge = this.lostEdge(una, mss);
      if (seqGt(lostEdge, nxt)) lostEdge = nxt;
      const from = seqGt(rexmitNext, una) ? rexmitNext : una;
      if (seqLt(from, lostEdge)) {
        // Unsacked bytes in [from, lostEdge).
        let lost = seqDiff(lostEdge, from);
        for (let j = 0; j < blocks.length; j += 2) {
          const l = seqLt(blocks[j]!, from) ? from : blocks[j]!;
          const r = seqLt(blocks[j + 1]!, lostEdge) ? blocks[j + 1]! : lostEdge;
          if (seqLt(l, r)) lost -= seqDiff(r, l);
        }
        pipe -= Math.max(0, lost);
      }
    }
    return Math.max(0, pipe);
  }

  /**
   * The next un-SACKed, not yet retransmitted range below the highest SACK that counts as
   * lost (RFC 6675 NextSeg rule 1): its start, its length (at most `segMax`) in segLen;
   * -1 when there is none.
   */
  nextSeg(una: number, rexmitNext: number, mss: number, segMax: number): number {
    let seq = seqGt(rexmitNext, una) ? rexmitNext : una;
    const b = this.ranges;
    for (let i = 0; i < b.length; i += 2) {
      const l = b[i]!;
      const r = b[i + 1]!;
      if (seqLt(seq, l)) {
        // IsLost(seq) (RFC 6675 §4): everything SACKed from this block up lies above it, so the
        // hole is lost when this block is at or below the edge.
        if (!seqLe(l, this.lostEdge(una, mss))) return -1;
        const len = Math.min(segMax, seqDiff(l, seq));
        if (len <= 0) return -1;
        this.segLen = len;
        return seq;
      }
      if (seqLt(seq, r)) seq = r;
    }
    return -1;
  }

  /** `nxt` moved past any range it lies in: after a timeout, what the receiver SACKed is not sent again. */
  skipSacked(nxt: number): number {
    const b = this.ranges;
    for (let j = 0; j < b.length; j += 2) {
      if (seqGe(nxt, b[j]!) && seqLt(nxt, b[j + 1]!)) nxt = b[j + 1]!;
    }
    return nxt;
  }
}

/**
 * RFC 2883 §4: the first SACK block of an ACK reports a duplicate (D-SACK) when it lies
 * at or below the cumulative ACK, or within one of the later blocks (a duplicate of
 * out-of-order data).
 */
export function isDsack(b: number[], ack: number): boolean {
  if (b.length < 2) return false;
  if (seqLe(b[1]!, ack)) return true;
  for (let j = 2; j + 1 < b.length; j += 2) if (seqGe(b[0]!, b[j]!) && seqLe(b[1]!, b[j + 1]!)) return true;
  return false;
}
