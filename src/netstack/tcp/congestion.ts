/**
 * Congestion control behind one interface: NewReno (RFC 5681, RFC 6582) and
 * CUBIC (RFC 9438, the default). Windows are in bytes; `mss` is the sender MSS.
 * The window never goes below one segment nor above `maxCwnd`, and is never NaN.
 */
import type { Instant } from '../../util/time.js';

export interface CongestionControl {
  readonly name: string;
  cwnd: number;
  ssthresh: number;
  /** New data acknowledged (outside recovery). */
  onAck(now: Instant, acked: number, rtt: number, inFlight: number): void;
  /** Fast retransmit: enter recovery (RFC 5681 §3.2 step 2 / RFC 9438 §4.6). */
  onLoss(now: Instant, inFlight: number): void;
  /** Retransmission timeout: back to one segment (RFC 5681 §3.1). */
  onTimeout(now: Instant, inFlight: number): void;
  /** The state to return to if the loss about to be signalled proves spurious. */
  save(): CcState;
  /** A recovery was spurious (RFC 3708, DSACK): the reduction is undone (RFC 4015 §3.2). */
  undo(s: CcState): void;
}

export interface CcState {
  cwnd: number;
  ssthresh: number;
  wMax: number;
}

const MAX_CWND = 64 * 1024 * 1024;

export class NewReno implements CongestionControl {
  readonly name = 'newreno';
  cwnd: number;
  ssthresh = MAX_CWND;
  private acc = 0;
  constructor(private readonly mss: number) {
    this.cwnd = Math.min(10 * mss, Math.max(2 * mss, 14600)); // RFC 6928 initial window
  }
  onAck(_now: Instant, acked: number): void {
    if (this.cwnd < this.ssthresh) this.cwnd += Math.min(acked, 2 * this.mss); // RFC 3465 ABC, L = 2
    else {
      this.acc += acked;
      if (this.acc >= this.cwnd) {
        this.acc -= this.cwnd;
        this.cwnd += this.mss;
      }
    }
    this.cwnd = Math.min(this.cwnd, MAX_CWND);
  }
  onLoss(_now: Instant, inFlight: number): void {
    // RFC 5681 (4): FlightSize / 2. With SACK, what is outstanding can exceed cwnd (SACKed data
    // above holes), and halving that would leave the window uncut; never more than cwnd / 2.
    this.ssthresh = Math.max(Math.floor(Math.min(inFlight, this.cwnd) / 2), 2 * this.mss);
    this.cwnd = this.ssthresh;
    this.acc = 0;
  }
  onTimeout(_now: Instant, inFlight: number): void {
    this.ssthresh = Math.max(Math.floor(Math.min(inFlight, this.cwnd) / 2), 2 * this.mss);
    this.cwnd = this.mss;
    this.acc = 0;
  }
  save(): CcState {
    return { cwnd: this.cwnd, ssthresh: this.ssthresh, wMax: 0 };
  }
  undo(s: CcState): void {
    this.cwnd = Math.max(this.cwnd, s.cwnd);
    this.ssthresh = Math.max(this.ssthresh, s.ssthresh);
  }
}

/** RFC 9438 constants. */
const C = 0.4;
const BETA = 0.7;

export class Cubic implements CongestionControl {
  readonly name = 'cubic';
  cwnd: number;
  ssthresh = MAX_CWND;
  private wMax = 0; // segments
  private k = 0; // seconds
  private epoch = -1;
  private wEst = 0; // segments, the Reno-friendly estimate (§4.3)
  constructor(private readonly mss: number) {
    this.cwnd = Math.min(10 * mss, Math.max(2 * mss, 14600));
  }
  onAck(now: Instant, acked: number, rtt: number): void {
    if (this.cwnd < this.ssthresh) {
      this.cwnd = Math.min(this.cwnd + Math.min(acked, 2 * this.mss), MAX_CWND);
      return;
    }
    const seg = this.cwnd / this.mss;
    if (this.epoch < 0) {
      this.epoch = now;
      if (this.wMax <= seg) {
        this.k = 0;
        this.wMax = seg;
      } else this.k = Math.cbrt((this.wMax * (1 - BETA)) / C);
      this.wEst = seg;
    }
    const t = (now - this.epoch + Math.max(rtt, 1)) / 1000;
    const target = C * (t - this.k) ** 3 + this.wMax;
    // §4.3: the Reno-friendly region grows by 3(1-β)/(1+β) segments per RTT.
    this.wEst += ((3 * (1 - BETA)) / (1 + BETA)) * (acked / this.mss / seg);
    const goal = Math.max(target, this.wEst);
    if (goal > seg) {
      const inc = Math.min(goal - seg, seg * 0.5) / seg; // at most 1.5× per RTT (§4.4)
      this.cwnd += inc * acked;
    } else this.cwnd += (acked * this.mss) / (100 * this.cwnd);
    this.cwnd = Math.min(Math.max(this.cwnd, this.mss), MAX_CWND);
  }
  onLoss(_now: Instant, inFlight: number): void {
    const seg = this.cwnd / this.mss;
    // §4.7 fast convergence.
    this.wMax = seg < this.wMax ? (seg * (1 + BETA)) / 2 : seg;
    this.ssthresh = Math.max(Math.floor(this.cwnd * BETA), 2 * this.mss); // §4.6: from cwnd, not flight
    this.cwnd = this.ssthresh;
    this.epoch = -1;
  }
  onTimeout(now: Instant, inFlight: number): void {
    this.onLoss(now, inFlight);
    this.cwnd = this.mss;
  }
  save(): CcState {
    return { cwnd: this.cwnd, ssthresh: this.ssthresh, wMax: this.wMax };
  }
  undo(s: CcState): void {
    this.cwnd = Math.max(this.cwnd, s.cwnd);
    this.ssthresh = Math.max(this.ssthresh, s.ssthresh);
    this.wMax = Math.max(this.wMax, s.wMax);
    this.epoch = -1; // a new epoch from the restored window
  }
}

export function createCongestionControl(name: 'cubic' | 'newreno', mss: number): CongestionControl {
  return name === 'newreno' ? new NewReno(mss) : new Cubic(mss);
}
