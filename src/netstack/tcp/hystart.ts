/**
 * HyStart++ (RFC 9406) delay-increase detection: leave slow start when the
 * round's minimum RTT rises clearly above the previous round's, i.e. when a
 * queue starts to build, instead of doubling until the bottleneck's queue
 * overflows and a whole window's worth of segments is lost at once.
 *
 * Simplification (documented deviation): on detection we go straight to
 * congestion avoidance (ssthresh = cwnd), as Linux's original HyStart does,
 * rather than through the Conservative Slow Start phase of RFC 9406 §4.2.
 * Sequence numbers compare modulo 2^32 (RFC 9293 §3.4).
 */
import { seqGe } from '../../wire/tcp.js';

/** RFC 9406 §4.3 constants (ms and counts). */
export const MIN_RTT_THRESH = 4;
export const MAX_RTT_THRESH = 16;
export const MIN_RTT_DIVISOR = 8;
export const N_RTT_SAMPLE = 8;

export class HyStart {
  private lastRoundMinRtt = Infinity;
  private currentRoundMinRtt = Infinity;
  private rttSampleCount = 0;
  private windowEnd = 0;
  private started = false;

  /**
   * One ACK while in slow start: `ack` is SEG.ACK, `sndMax` the highest sequence
   * sent, `rtt` this ACK's RTT sample in ms (negative when there is none).
   * Returns true when slow start should end now.
   */
  onAck(ack: number, sndMax: number, rtt: number): boolean {
    // §4.2: a round ends when the ACK passes the highest sequence sent at its start.
    if (!this.started || seqGe(ack, this.windowEnd)) {
      this.started = true;
      this.lastRoundMinRtt = this.currentRoundMinRtt;
      this.currentRoundMinRtt = Infinity;
      this.rttSampleCount = 0;
      this.windowEnd = sndMax;
    }
    if (!(rtt >= 0)) return false;
    if (rtt < this.currentRoundMinRtt) this.currentRoundMinRtt = rtt;
    this.rttSampleCount++;
    if (this.rttSampleCount < N_RTT_SAMPLE || this.lastRoundMinRtt === Infinity || this.currentRoundMinRtt === Infinity) return false;
    const thresh = Math.max(MIN_RTT_THRESH, Math.min(this.lastRoundMinRtt / MIN_RTT_DIVISOR, MAX_RTT_THRESH));
    return this.currentRoundMinRtt >= this.lastRoundMinRtt + thresh;
  }
}
