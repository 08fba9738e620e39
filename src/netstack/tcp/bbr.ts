/**
 * BBR congestion control: a model of the path (its bottleneck bandwidth and its round-trip
 * propagation time) built from delivery-rate samples (rate.ts), and a sender that paces at
 * that bandwidth and keeps about one bandwidth-delay product (BDP) in flight.
 *
 * Which BBR. This follows BBRv1 (Cardwell et al., "BBR: Congestion-Based Congestion
 * Control", ACM Queue 2016; draft-cardwell-iccrg-bbr-congestion-control-00, and the
 * state machine as draft-ietf-ccwg-bbr names it: Startup, Drain, ProbeBW, ProbeRTT),
 * with pieces of draft-ietf-ccwg-bbr (BBRv3) where they are cheap and only help:
 * ProbeRTT keeps half a BDP instead of four segments (BBRProbeRTTCwndGain), the startup
 * pacing gain is 4·ln 2 ≈ 2.77 (BBRStartupPacingGain), and the window holds the ACK
 * aggregation estimate (BBR.extra_acked). The reason for v1's loss
 * response over v3's: wgnet runs over mobile, Wi-Fi and long-haul tunnel paths where
 * loss is mostly random, not a sign of a full queue. BBRv3 treats a round with more than
 * 2 % loss (BBRLossThresh) as congestion: it leaves Startup, and in ProbeBW it caps
 * inflight_hi and cuts bw_lo/inflight_lo by BBRBeta = 0.7 on every lossy round, so at
 * 3-5 % random loss it settles far below the link rate (the regime where issue 14 wants
 * kernel BBR's figures, and the kernel's tcp_bbr is v1). v1 answers loss only with
 * packet conservation during recovery and a restore afterwards, so random loss costs
 * the retransmitted bytes and little else. The price is v1's known unfairness to
 * loss-based flows on shallow buffers; the README says so.
 *
 * An event loop is not a kernel: ACKs are read in batches that share one timestamp, and
 * no timer is finer than about a millisecond. So the pacer releases a send quantum of
 * about 1 ms at a time, ProbeBW phases last at least EVENT_LOOP_SPAN_MS, and on paths
 * shorter than that the rate samples are capped by an average over it (rate.ts).
 *
 * Sans-IO: every decision comes from `now` and the samples; the only randomness (the
 * ProbeBW phase to start in) comes from the caller's Rng.
 */
import type { Instant } from '../../util/time.js';
import type { CcState, CongestionControl } from './congestion.js';
import { EVENT_LOOP_SPAN_MS, type RateSample, type RateSampler } from './rate.js';

export type BbrState = 'Startup' | 'Drain' | 'ProbeBW' | 'ProbeRTT';

/** Startup pacing gain, 4·ln 2 (draft-ietf-ccwg-bbr BBRStartupPacingGain: the smallest gain that still doubles the delivery rate per round). */
export const STARTUP_PACING_GAIN = 4 * Math.LN2;
/** Startup cwnd gain (draft-ietf-ccwg-bbr BBRStartupCwndGain; v1 used 2/ln 2). */
export const STARTUP_CWND_GAIN = 2;
/** Drain pacing gain: the inverse of v1's high gain 2/ln 2, so one round drains Startup's queue (v1 BBRCheckFullPipe). */
export const DRAIN_PACING_GAIN = Math.LN2 / 2;
/** ProbeBW cwnd gain: two BDPs absorb delayed and stretched ACKs (v1 BBREnterProbeBW). */
export const CWND_GAIN = 2;
/** ProbeBW's eight phases of pacing gain, each about one min_rtt long (v1 "ProbeBW"). */
export const PROBE_BW_GAINS = [1.25, 0.75, 1, 1, 1, 1, 1, 1] as const;
/** The bandwidth filter spans this many round trips (v1 BtlBwFilterLen). */
export const BW_FILTER_ROUNDS = 10;
/** The min_rtt filter spans 10 s (v1 RTpropFilterLen); ProbeRTT runs when it expires. */
export const MIN_RTT_FILTER_MS = 10_000;
/** ProbeRTT holds its small window this long, and at least one round (v1 ProbeRTTDuration). */
export const PROBE_RTT_DURATION_MS = 200;
/** ProbeRTT's window as a share of the BDP (draft-ietf-ccwg-bbr BBRProbeRTTCwndGain). */
export const PROBE_RTT_CWND_GAIN = 0.5;
/** Startup ends after 3 rounds without 25 % bandwidth growth (v1 BBRCheckFullPipe). */
export const FULL_BW_GROWTH = 1.25;
export const FULL_BW_ROUNDS = 3;
/** The smallest window: four segments, so delayed ACKs keep flowing (v1 BBRMinPipeCwnd). */
export const MIN_PIPE_SEGMENTS = 4;
/**
 * draft-ietf-ccwg-bbr BBRLossThresh and BBRBeta: inflight is "too high" when more than 2 %
 * of what was in flight while a packet travelled was lost; the bound it sets is at least
 * 0.7 of the model's inflight.
 */
export const LOSS_THRESH = 0.02;
export const BETA = 0.7;
/**
 * ...and at least this many segments were lost, as v3 asks of Startup's loss exit
 * (BBRStartupFullLossCnt = 6). On a short path the flight is a few dozen segments, and
 * one random loss among them reads as 3-5 %: measured on loopback through wireguard-go at
 * 3 % random loss, the bound without this count held uploads to 114-236 Mbit/s, with it
 * 257-586; an overflowing queue loses far more than six at once and still trips it.
 */
export const LOSS_MIN_SEGMENTS = 6;
/** Pace 1 % below the estimate so a queue made by probing drains (Linux's and v3's pacing margin). */
export const PACING_MARGIN = 0.01;

const MAX_CWND = 64 * 1024 * 1024;

/**
 * The send quantum: what the pacer releases at once, about 1 ms at the pacing rate, at
 * least two segments, at most 64 KiB (v1 "send quantum", as Linux's TSO autosizing). An
 * event-loop stack has no finer timer than about a millisecond, so a smaller quantum would
 * make the timer, not the model, set the rate.
 */
export const SEND_QUANTUM_MS = 1;
export const SEND_QUANTUM_MAX = 64 * 1024;
export function sendQuantum(rate: number, mss: number): number {
  return Math.max(2 * mss, Math.min(SEND_QUANTUM_MAX, rate * SEND_QUANTUM_MS));
}

export class Bbr implements CongestionControl {
  readonly name = 'bbr';
  cwnd: number;
  /** Unused by BBR; kept huge so the shared code's slow-start tests never see "congestion avoidance". */
  ssthresh = MAX_CWND;
  state: BbrState = 'Startup';
  pacingGain = STARTUP_PACING_GAIN;
  cwndGain = STARTUP_CWND_GAIN;
  /** Bytes per ms; 0 until the first RTT or sample gives a rate. */
  pacing = 0;
  // Round counting (v1 BBRUpdateRound): a round ends when a packet sent after its start is delivered.
  roundCount = 0;
  roundStart = false;
  private nextRoundDelivered = 0;
  // The max-bandwidth filter: the largest sample per round for the last BW_FILTER_ROUNDS rounds.
  // Its rounds are counted at most one per EVENT_LOOP_SPAN_MS (bwEpoch): see updateBw.
  private bwEpoch = 0;
  private bwEpochAt = -Infinity;
  private readonly bwByRound = new Float64Array(BW_FILTER_ROUNDS);
  private readonly bwRoundOf = new Float64Array(BW_FILTER_ROUNDS).fill(-1);
  /** The windowed max of the filter, bytes per ms (BBR.max_bw / BtlBw). */
  maxBw = 0;
  // The min-RTT filter (v1 BBR.RTprop, here min_rtt as draft-ietf-ccwg-bbr names it).
  minRtt = Infinity;
  minRttStamp = 0;
  /**
   * ACK aggregation (draft-ietf-ccwg-bbr BBRUpdateACKAggregation, BBR.extra_acked): how far
   * ACKs ran ahead of max_bw, as a windowed max over BW_FILTER_ROUNDS rounds. A userspace
   * stack sees ACKs in batches (one event-loop turn, one UDP read burst), so without this
   * the window is too small to keep sending between batches.
   */
  extraAcked = 0;
  private readonly extraByRound = new Float64Array(BW_FILTER_ROUNDS);
  private readonly extraRoundOf = new Float64Array(BW_FILTER_ROUNDS).fill(-1);
  private ackEpochStart = 0;
  private ackEpochAcked = 0;
  /**
   * The loss-based bound on inflight (draft-ietf-ccwg-bbr BBR.inflight_hi), set in ProbeBW
   * when a rate sample shows loss above LOSS_THRESH; Infinity when none. See onRateSample.
   */
  inflightHi = Infinity;
  private probeUpBytes = 0;
  // Startup's full-pipe detector.
  fullBwReached = false;
  private fullBw = 0;
  private fullBwCount = 0;
  // ProbeBW.
  cycleIndex = 0;
  private cycleStamp = 0;
  private lossInCycle = false;
  // ProbeRTT.
  private probeRttDoneStamp = 0;
  private probeRttRoundDone = false;
  private priorCwnd = 0;
  // Loss response (v1 BBRModulateCwndForRecovery: packet conservation).
  private inLossRecovery = false;
  private packetConservation = false;
  /** RACK.reo_wnd from the sampler (rate.ts reoWnd), ms: see targetCwnd. */
  reoWnd = 0;
  /** After a timeout: C.delivered at which what was outstanding is delivered and the old window returns. */
  private rtoRestoreAt = -1;

  constructor(
    private readonly mss: number,
    /** A uniform number in [0, 1) from the caller's Rng: which ProbeBW phase to start in. */
    private readonly rand: () => number = () => 0,
  ) {
    this.cwnd = Math.min(10 * mss, Math.max(2 * mss, 14600)); // RFC 6928 initial window
  }

  /** The BDP at `gain`, bytes: gain × max_bw × min_rtt (v1 BBRInflight), or the initial window with no model yet. */
  inflight(gain: number): number {
    if (this.minRtt === Infinity || this.maxBw === 0) return Math.min(10 * this.mss, Math.max(2 * this.mss, 14600));
    return gain * this.maxBw * this.minRtt;
  }

  onAck(): void {
    // Everything BBR needs arrives with the rate sample (onRateSample).
  }

  /** Per ACK that delivered data (v1 BBRUpdateOnACK): model, state machine, then controls. */
  onRateSample(now: Instant, rs: RateSample, sampler: RateSampler, inFlight: number, srtt: number): void {
    if (this.rtoRestoreAt >= 0 && sampler.delivered >= this.rtoRestoreAt) {
      this.rtoRestoreAt = -1;
      this.onRecoveryExit();
    }
    this.reoWnd = sampler.reoWnd;
    this.updateRound(rs, sampler);
    this.updateBw(now, rs);
    this.updateAckAggregation(now, rs);
    this.checkInflightTooHigh(rs);
    this.checkCyclePhase(now, inFlight + rs.newlyDelivered);
    this.checkFullPipe(rs);
    this.checkDrain(now, inFlight);
    this.updateMinRtt(now, rs, sampler, inFlight);
    this.setPacingRate(srtt);
    this.setCwnd(rs, inFlight, sampler);
  }

  private updateRound(rs: RateSample, sampler: RateSampler): void {
    this.roundStart = false;
    if (rs.newlyDelivered > 0 && rs.priorDelivered >= this.nextRoundDelivered) {
      this.nextRoundDelivered = sampler.delivered;
      this.roundCount++;
      this.roundStart = true;
      this.packetConservation = false;
    }
  }

  /**
   * The windowed max filter (v1 BBRUpdateBtlBw): a sample counts unless it is application-limited
   * and below the current estimate, since an idle application says nothing about the path.
   *
   * v1's filter spans 10 rounds so that it outlives a ProbeBW cycle (8 phases of one round):
   * the bandwidth a probe found is kept until the next probe. Here a phase lasts at least
   * EVENT_LOOP_SPAN_MS (checkCyclePhase), so on a sub-millisecond path a cycle is 64 ms and
   * more than a hundred rounds; counted in rounds, the filter forgot a probe's result within
   * a phase, and any dip (a reordered burst, a retransmission) ratcheted the estimate down
   * with nothing to bring it back. Its rounds are therefore counted at most once per
   * EVENT_LOOP_SPAN_MS, so it spans at least 10 phases again; on paths longer than that a
   * round is a round. Measured in a simulator of the tcp-cc bench's relay (0.4 ms RTT,
   * 400 Mbit/s, 25 % held back 5 ms, 3 % loss): 19-20 Mbit/s before, 151-188 after; 1 %
   * loss + 10 % held: 171 -> 319-325; lossless and 1-3 % loss without reordering 366-382 either way.
   */
  private updateBw(now: Instant, rs: RateSample): void {
    if (this.roundStart && now - this.bwEpochAt >= EVENT_LOOP_SPAN_MS) {
      this.bwEpoch++;
      this.bwEpochAt = now;
    }
    if (!(rs.deliveryRate > 0)) return;
    if (rs.isAppLimited && rs.deliveryRate < this.maxBw) return;
    const r = this.bwEpoch;
    const slot = r % BW_FILTER_ROUNDS;
    if (this.bwRoundOf[slot] !== r) {
      this.bwRoundOf[slot] = r;
      this.bwByRound[slot] = rs.deliveryRate;
    } else if (rs.deliveryRate > this.bwByRound[slot]!) this.bwByRound[slot] = rs.deliveryRate;
    let m = 0;
    for (let i = 0; i < BW_FILTER_ROUNDS; i++) {
      if (this.bwRoundOf[i]! > r - BW_FILTER_ROUNDS && this.bwByRound[i]! > m) m = this.bwByRound[i]!;
    }
    this.maxBw = m;
  }

  /**
   * BBR.extra_acked (draft-ietf-ccwg-bbr BBRUpdateACKAggregation): data ACKed beyond what
   * max_bw explains since the current aggregation epoch began; a new epoch starts whenever
   * ACKs fall back to (or below) the expected rate. Capped at cwnd, filtered by max.
   */
  private updateAckAggregation(now: Instant, rs: RateSample): void {
    if (rs.newlyDelivered <= 0 || this.maxBw === 0) return;
    let expected = this.maxBw * (now - this.ackEpochStart);
    if (this.ackEpochAcked <= expected) {
      this.ackEpochAcked = 0;
      this.ackEpochStart = now;
      expected = 0;
    }
    this.ackEpochAcked += rs.newlyDelivered;
    const extra = Math.min(this.ackEpochAcked - expected, this.cwnd);
    const r = this.roundCount;
    const slot = r % BW_FILTER_ROUNDS;
    if (this.extraRoundOf[slot] !== r) {
      this.extraRoundOf[slot] = r;
      this.extraByRound[slot] = extra;
    } else if (extra > this.extraByRound[slot]!) this.extraByRound[slot] = extra;
    let m = 0;
    for (let i = 0; i < BW_FILTER_ROUNDS; i++) {
      if (this.extraRoundOf[i]! > r - BW_FILTER_ROUNDS && this.extraByRound[i]! > m) m = this.extraByRound[i]!;
    }
    this.extraAcked = m;
  }

  /**
   * The one piece of BBRv3's loss response taken here (draft-ietf-ccwg-bbr
   * BBRHandleInflightTooHigh, BBRProbeInflightHiUpward), and only in ProbeBW: when the
   * losses while a packet was in flight exceed LOSS_THRESH of what was in flight,
   * inflight_hi = max(tx_in_flight, BETA × min(BDP, cwnd)). Random loss sets it near the
   * inflight the flow already runs at (tx_in_flight), so the rate holds; a queue that
   * overflows (a shallow buffer, or a peer's socket on loopback) caps the window at the
   * level where it did. Each probing phase then raises the bound by 1, 2, 4... segments
   * per round. v3's other loss responses (bw_lo, inflight_lo, Startup's loss exit) cut the
   * rate on random loss and are left out (see the header).
   */
  private checkInflightTooHigh(rs: RateSample): void {
    if (this.state !== 'ProbeBW') return;
    if (rs.txInFlight > 0 && !rs.isAppLimited && rs.lost > LOSS_THRESH * rs.txInFlight && rs.lost >= LOSS_MIN_SEGMENTS * this.mss) {
      this.inflightHi = Math.max(rs.txInFlight, BETA * Math.min(this.inflight(1), this.cwnd), MIN_PIPE_SEGMENTS * this.mss);
      this.lossInCycle = true;
      this.probeUpBytes = 0;
      return;
    }
    if (this.pacingGain > 1 && this.roundStart && this.inflightHi !== Infinity) {
      this.probeUpBytes = this.probeUpBytes === 0 ? this.mss : 2 * this.probeUpBytes;
      this.inflightHi += this.probeUpBytes;
    }
  }

  /** Startup's exit test, once per round (v1 BBRCheckFullPipe): three rounds without 25 % growth mean the pipe is full. */
  private checkFullPipe(rs: RateSample): void {
    if (this.fullBwReached || !this.roundStart || rs.isAppLimited) return;
    if (this.maxBw >= this.fullBw * FULL_BW_GROWTH) {
      this.fullBw = this.maxBw;
      this.fullBwCount = 0;
      return;
    }
    if (++this.fullBwCount >= FULL_BW_ROUNDS) this.fullBwReached = true;
  }

  /** Startup → Drain when the pipe is full; Drain → ProbeBW once the queue it made is gone (v1 BBRCheckDrain). */
  private checkDrain(now: Instant, inFlight: number): void {
    if (this.state === 'Startup' && this.fullBwReached) {
      this.state = 'Drain';
      this.pacingGain = DRAIN_PACING_GAIN;
      this.cwndGain = STARTUP_CWND_GAIN;
    }
    if (this.state === 'Drain' && inFlight <= this.inflight(1)) this.enterProbeBw(now);
  }

  /**
   * ProbeBW (v1 "ProbeBW"): start in a random phase other than the draining 0.75 one, so flows
   * sharing a bottleneck do not probe in step.
   */
  private enterProbeBw(now: Instant): void {
    this.state = 'ProbeBW';
    this.cwndGain = CWND_GAIN;
    const r = Math.floor(this.rand() * (PROBE_BW_GAINS.length - 1));
    this.cycleIndex = r === 0 ? 0 : r + 1; // any phase but index 1
    this.cycleStamp = now;
    this.lossInCycle = false;
    this.pacingGain = PROBE_BW_GAINS[this.cycleIndex]!;
  }

  /**
   * Phase advance (v1 BBRIsNextCyclePhase): a phase lasts one min_rtt; the probing
   * phase also waits until inflight reached 1.25 BDP (or loss showed the limit), and the
   * draining phase ends early once inflight is down to one BDP.
   */
  private checkCyclePhase(now: Instant, priorInFlight: number): void {
    if (this.state !== 'ProbeBW') return;
    // A phase spans at least the sampler's averaging span (rate.ts EVENT_LOOP_SPAN_MS), or on a
    // sub-millisecond path a probe would be over before any sample could show its effect.
    const full = now - this.cycleStamp > Math.max(this.minRtt, EVENT_LOOP_SPAN_MS);
    const g = this.pacingGain;
    let next: boolean;
    if (g > 1) next = full && (this.lossInCycle || priorInFlight >= this.inflight(g));
    else if (g < 1) next = full || priorInFlight <= this.inflight(1);
    else next = full;
    if (!next) return;
    this.cycleIndex = (this.cycleIndex + 1) % PROBE_BW_GAINS.length;
    this.cycleStamp = now;
    this.lossInCycle = false;
    this.probeUpBytes = 0;
    this.pacingGain = PROBE_BW_GAINS[this.cycleIndex]!;
  }

  /**
   * The min-RTT filter and ProbeRTT (v1 BBRUpdateRTprop, BBRCheckProbeRTT): when no sample has been at or
   * below min_rtt for 10 s, drain to a small window for 200 ms and a round so the
   * propagation delay can be seen again without this flow's own queue.
   */
  private updateMinRtt(now: Instant, rs: RateSample, sampler: RateSampler, inFlight: number): void {
    const expired = now > this.minRttStamp + MIN_RTT_FILTER_MS;
    if (rs.rtt >= 0 && (rs.rtt <= this.minRtt || expired)) {
      this.minRtt = rs.rtt;
      this.minRttStamp = now;
    }
    if (expired && this.state !== 'ProbeRTT' && this.minRtt !== Infinity) {
      this.state = 'ProbeRTT';
      this.pacingGain = 1;
      this.cwndGain = 1;
      this.saveCwnd();
      this.probeRttDoneStamp = 0;
    }
    if (this.state !== 'ProbeRTT') return;
    // Samples while the window is held down show ProbeRTT's rate, not the path's (rate draft §3.4).
    sampler.markAppLimited(inFlight);
    if (this.probeRttDoneStamp === 0 && inFlight <= this.probeRttCwnd()) {
      this.probeRttDoneStamp = now + PROBE_RTT_DURATION_MS;
      this.probeRttRoundDone = false;
      this.nextRoundDelivered = sampler.delivered;
    } else if (this.probeRttDoneStamp !== 0) {
      if (this.roundStart) this.probeRttRoundDone = true;
      if (this.probeRttRoundDone && now >= this.probeRttDoneStamp) {
        this.minRttStamp = now;
        this.cwnd = Math.max(this.cwnd, this.priorCwnd);
        if (this.fullBwReached) this.enterProbeBw(now);
        else {
          this.state = 'Startup';
          this.pacingGain = STARTUP_PACING_GAIN;
          this.cwndGain = STARTUP_CWND_GAIN;
        }
      }
    }
  }

  private probeRttCwnd(): number {
    return Math.max(MIN_PIPE_SEGMENTS * this.mss, this.inflight(PROBE_RTT_CWND_GAIN));
  }

  /**
   * pacing_rate = pacing_gain × max_bw × (1 - margin) (v1 BBRSetPacingRateWithGain). Until Startup has filled
   * the pipe the rate only rises, and before any sample it comes from the initial window
   * over SRTT (or 1 ms), as BBRInitPacingRate does.
   */
  private setPacingRate(srtt: number): void {
    let rate: number;
    if (this.maxBw > 0) rate = this.pacingGain * this.maxBw * (1 - PACING_MARGIN);
    else rate = (this.pacingGain * this.cwnd) / (srtt > 0 ? srtt : 1);
    if (this.fullBwReached || rate > this.pacing) this.pacing = rate;
  }

  /**
   * cwnd (v1 BBRSetCwnd): grow by what each ACK delivered toward the target, never below
   * four segments. The target is cwnd_gain × BDP, plus the ACK aggregation estimate once
   * the pipe is full (draft-ietf-ccwg-bbr adds extra_acked to the BDP), plus three segments
   * for delayed ACKs. Linux's v1 adds three TSO bursts instead (BBRQuantizationBudget);
   * measured here, three send quanta (up to 192 KiB) overran wireguard-go's socket buffer
   * on loopback (9 % of datagrams dropped, against 5 % without them and 0.2 % for CUBIC)
   * and a 200-packet queue in Startup, for no gain on longer paths.
   * During the first round of a recovery, packet conservation: no more in flight than
   * was, plus what this ACK delivered (v1 BBRModulateCwndForRecovery).
   *
   * Plus max_bw × RACK.reo_wnd (reorderAllowance): what is sent while a late segment is
   * still waiting out the reordering window. BBR's inflight model is bw × min_rtt, but a
   * segment the path holds back stays in flight for min_rtt plus its delay, and RACK (RFC
   * 8985 §6.2) only stops counting it once reo_wnd has passed; at the pacing rate that is
   * up to bw × reo_wnd more in flight than the model. On a sub-millisecond path with
   * segments held 5 ms, two BDPs are a few segments, the held ones filled them and the
   * sender stalled until RACK gave up on them; Linux's v1 has room there from its
   * quantization budget (three 1 ms bursts at the pacing rate, tcp_bbr.c), which this
   * stack leaves out (above). The term is 0 until the path shows reordering (rack.ts
   * reoWnd) and grows only as D-SACKs prove the window too small.
   */
  targetCwnd(): number {
    return this.inflight(this.cwndGain) + (this.fullBwReached ? this.extraAcked : 0) + 3 * this.mss + this.reorderAllowance();
  }

  /** max_bw × RACK.reo_wnd, bytes: see targetCwnd. */
  reorderAllowance(): number {
    return this.maxBw * this.reoWnd;
  }

  private setCwnd(rs: RateSample, inFlight: number, sampler: RateSampler): void {
    const acked = rs.newlyDelivered;
    if (acked > 0) {
      const target = this.targetCwnd();
      let cwnd = this.cwnd;
      if (this.packetConservation) cwnd = Math.max(cwnd, inFlight + acked);
      else if (this.fullBwReached) cwnd = Math.min(cwnd + acked, target);
      else if (cwnd < target || sampler.delivered < 10 * this.mss) cwnd += acked;
      this.cwnd = cwnd;
    }
    this.cwnd = Math.min(Math.max(this.cwnd, MIN_PIPE_SEGMENTS * this.mss), MAX_CWND, this.inflightHi);
    if (this.state === 'ProbeRTT') this.cwnd = Math.min(this.cwnd, this.probeRttCwnd());
  }

  private saveCwnd(): void {
    // In recovery or ProbeRTT the window is already cut: keep the larger one from before.
    this.priorCwnd = this.inLossRecovery || this.state === 'ProbeRTT' ? Math.max(this.priorCwnd, this.cwnd) : this.cwnd;
  }

  /**
   * Fast recovery begins (v1 BBRModulateCwndForRecovery): remember the window, and for one round allow only
   * what is still in flight plus what ACKs deliver. BBR does not cut its model: a random
   * loss costs a retransmission, not the rate. In ProbeBW's probing phase the loss also
   * ends the probe (the 1.25 phase's "or losses" test).
   */
  onLoss(_now: Instant, _inFlight: number, pipe = 0, delivered = 0): void {
    this.saveCwnd();
    this.inLossRecovery = true;
    this.packetConservation = true;
    // Conservation lasts one round: until a packet sent from now on is delivered.
    this.nextRoundDelivered = delivered;
    this.lossInCycle = true;
    this.cwnd = Math.max(pipe, MIN_PIPE_SEGMENTS * this.mss);
  }

  /** Recovery is over: the window from before it comes back (v1 BBRRestoreCwnd). */
  onRecoveryExit(): void {
    if (!this.inLossRecovery) return;
    this.inLossRecovery = false;
    this.packetConservation = false;
    this.cwnd = Math.max(this.cwnd, this.priorCwnd);
  }

  /**
   * A retransmission timeout: one segment, growing by what is delivered back toward the
   * model's target (Linux's BBR after an RTO); the window from before is restored when the
   * timed-out data has been delivered.
   */
  onTimeout(_now: Instant, inFlight: number, delivered = 0): void {
    this.saveCwnd();
    this.inLossRecovery = true;
    this.packetConservation = false;
    this.rtoRestoreAt = delivered + inFlight;
    this.cwnd = this.mss;
    this.lossInCycle = true;
  }

  save(): CcState {
    return { cwnd: this.inLossRecovery ? Math.max(this.priorCwnd, this.cwnd) : this.cwnd, ssthresh: this.ssthresh, wMax: 0 };
  }

  /** A spurious recovery (RFC 4015): back to the window from before it. */
  undo(s: CcState): void {
    this.inLossRecovery = false;
    this.packetConservation = false;
    this.cwnd = Math.max(this.cwnd, s.cwnd);
  }

  pacingRate(): number {
    return this.pacing;
  }
}
