/**
 * Congestion control behind one interface: NewReno (RFC 5681, RFC 6582),
 * CUBIC (RFC 9438, the default) and BBR (bbr.ts). Windows are in bytes; `mss` is the
 * sender MSS. The window never goes below one segment nor above `maxCwnd`, and is never NaN.
 */
import type { Instant } from '../../util/time.js';
import type { RateSample, RateSampler } from './rate.js';
import { Bbr } from './bbr.js';

export type CongestionControlName = 'bbr' | 'cubic' | 'newreno';

export interface CongestionControl {
  readonly name: string;
  cwnd: number;
  ssthresh: number;
  /** New data acknowledged (outside recovery). */
  onAck(now: Instant, acked: number, rtt: number, inFlight: number): void;
  /**
   * Fast retransmit: enter recovery (RFC 5681 §3.2 step 2 / RFC 9438 §4.6). `inFlight` is
   * what is outstanding, `pipe` what RFC 6675 counts in the network, `delivered` the rate
   * sampler's C.delivered (both only for BBR).
   */
  onLoss(now: Instant, inFlight: number, pipe?: number, delivered?: number): void;
  /** Retransmission timeout: back to one segment (RFC 5681 §3.1). */
  onTimeout(now: Instant, inFlight: number, delivered?: number): void;
  /** Recovery ended with everything outstanding at its start acknowledged (RFC 6582 §3.2 step 3). */
  onRecoveryExit(): void;
  /** The rate to pace at, bytes per ms; 0 for none. `srtt` in ms, 0 before the first sample. */
  pacingRate(srtt: number): number;
  /** Model-based controllers (BBR) take a delivery-rate sample (rate.ts) on every ACK that delivers data. */
  onRateSample?(now: Instant, rs: RateSample, sampler: RateSampler, inFlight: number, srtt: number): void;
  /**
   * Loss-based controllers leave the sending in fast recovery to PRR (RFC 6937): its state,
   * which recovery.ts feeds. Absent for BBR, whose recovery is its own (bbr.ts).
   */
  readonly prr?: Prr;
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

/**
 * Proportional Rate Reduction (RFC 6937 §3, the PRR-SSRB variant §6 recommends): how much a
 * loss-based sender may send on each ACK in fast recovery. While more is in flight than the
 * new window (ssthresh), it sends ssthresh / RecoverFS of what the ACKs report delivered, so
 * the flight comes down to ssthresh evenly over the recovery's round trip instead of
 * waiting in silence for half of it and then sending what the window allows (RFC 6675's
 * pipe rule). Once the flight is below ssthresh (a burst of losses), it grows back by at most
 * one segment more than is delivered per ACK (the slow-start reduction bound), not in one
 * burst. Byte counts; the proportional part is counted in whole segments, as the RFC's
 * examples count, since a sender of full segments cannot send a fraction of one.
 */
export class Prr {
  /** prr_delivered: bytes the receiver reported delivered since recovery began. */
  delivered = 0;
  /** prr_out: bytes sent since recovery began, retransmitted or new (output.ts counts them). */
  out = 0;
  /** RecoverFS: the flight (SND.NXT - SND.UNA) when recovery began. */
  recoverFs = 1;
  /** The last sndcnt, and prr_out when it was reckoned: what of it is still unsent. */
  private sndcnt = 0;
  private outThen = 0;

  /** Recovery begins (RFC 6937 §3 "at the beginning of recovery"). */
  start(recoverFs: number): void {
    this.delivered = 0;
    this.out = 0;
    this.recoverFs = Math.max(1, recoverFs);
    this.sndcnt = 0;
    this.outThen = 0;
  }

  /**
   * An ACK in recovery reported `deliveredData` bytes delivered (RFC 6937 §3 DeliveredData);
   * `pipe` is RFC 6675's pipe after it. Returns sndcnt: the bytes that may be sent now.
   * Nothing sent yet in this recovery: at least one segment, the fast retransmit (RFC 6675 §5
   * step 4.3), which the proportional share of a first small delivery could round away.
   * An ACK that delivered nothing (a window update, a D-SACK) grants nothing new.
   */
  onAck(deliveredData: number, pipe: number, ssthresh: number, mss: number): number {
    if (deliveredData <= 0 && this.out > 0) return this.unsent();
    this.delivered += Math.max(0, deliveredData);
    let sndcnt: number;
    if (pipe > ssthresh) {
      sndcnt = Math.ceil((this.delivered * ssthresh) / this.recoverFs / mss) * mss - this.out;
    } else {
      const limit = Math.max(this.delivered - this.out, deliveredData) + mss;
      sndcnt = Math.min(ssthresh - pipe, limit);
    }
    if (this.out === 0) sndcnt = Math.max(sndcnt, mss);
    this.sndcnt = Math.max(0, sndcnt);
    this.outThen = this.out;
    return this.sndcnt;
  }

  /** What of the last sndcnt has not been sent yet. */
  unsent(): number {
    return Math.max(0, this.sndcnt - (this.out - this.outThen));
  }
}

/**
 * Pacing for the loss-based controllers, as Linux paces them (tcp_update_pacing_rate):
 * twice cwnd per SRTT in slow start, so the window can still double each round, and
 * 1.2× after. 0 (no pacing) until there is an RTT, or when pacing is off (PACE_LOSS_BASED).
 */
function lossBasedPacing(cwnd: number, ssthresh: number, srtt: number): number {
  if (!PACE_LOSS_BASED || !(srtt > 0)) return 0;
  return ((cwnd < ssthresh ? 2 : 1.2) * cwnd) / srtt;
}
/** Measured (bench/tcp.ts and the simulator), not assumed: see the commit that set it. */
export let PACE_LOSS_BASED = false;
/** For benchmarks and tests: pace CUBIC and NewReno or not. */
export function setLossBasedPacing(on: boolean): void {
  PACE_LOSS_BASED = on;
}

export class NewReno implements CongestionControl {
  readonly name = 'newreno';
  readonly prr = new Prr();
  cwnd: number;
  ssthresh = MAX_CWND;
  private acc = 0;
  onRecoveryExit(): void {
    this.cwnd = this.ssthresh;
  }
  pacingRate(srtt: number): number {
    return lossBasedPacing(this.cwnd, this.ssthresh, srtt);
  }
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
  readonly prr = new Prr();
  cwnd: number;
  ssthresh = MAX_CWND;
  private wMax = 0; // segments
  private k = 0; // seconds
  private epoch = -1;
  private wEst = 0; // segments, the Reno-friendly estimate (§4.3)
  onRecoveryExit(): void {
    this.cwnd = this.ssthresh;
  }
  pacingRate(srtt: number): number {
    return lossBasedPacing(this.cwnd, this.ssthresh, srtt);
  }
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

export function createCongestionControl(name: CongestionControlName, mss: number, rand?: () => number): CongestionControl {
  switch (name) {
    case 'newreno':
      return new NewReno(mss);
    case 'bbr':
      return new Bbr(mss, rand);
    default:
      return new Cubic(mss);
  }
}
