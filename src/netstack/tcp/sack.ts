/**
 * The sender's SACK scoreboard (RFC 6675 §3, §4): what the receiver reported holding
 * above the cumulative ACK, as sorted ranges (ranges.ts). Which holes are lost is RACK's
 * verdict per segment (RFC 8985 §6.2, rack.ts and the send records in rate.ts), which
 * replaces RFC 6675's IsLost rule ("DupThresh segments SACKed above a hole"): RACK with a
 * zero reordering window before any reordering is seen acts as fast and also judges
 * retransmissions and the last segments of a flight.
 */
import { seqDiff, seqGe, seqGt, seqLe, seqLt } from '../../wire/tcp.js';
import { MAX_RANGES } from './constants.js';
import { addRange, rangeBytes, trimBelow } from './ranges.js';

export class Scoreboard {
  /** SACKed ranges above una, flattened [l0, r0, l1, r1, ...]. */
  ranges: number[] = [];
  /** Bytes the ranges cover. */
  bytes = 0;

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

  /** SACKed bytes below `nxt` (the pipe, RFC 6675 §4, leaves them out). */
  sackedBelow(nxt: number): number {
    const blocks = this.ranges;
    let n = 0;
    for (let j = 0; j < blocks.length; j += 2) {
      const l = blocks[j]!;
      if (seqGe(l, nxt)) break;
      const r = blocks[j + 1]!;
      n += seqDiff(seqLt(r, nxt) ? r : nxt, l);
    }
    return n;
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
