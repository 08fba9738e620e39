/**
 * The RTT estimator of RFC 6298 with Karn's rule (RFC 6298 §3): at most one segment
 * is timed at a time, and a retransmission discards the timing, since its ACK cannot
 * tell which transmission it answers. Timestamps (RFC 7323 §4) give samples for any
 * segment, retransmitted or not, because the echo names the transmission.
 */
import { seqGe, seqGt, seqLt } from '../../wire/tcp.js';
import { INITIAL_RTO, MAX_RTO, MIN_RTO } from './constants.js';
import type { PeerKey } from '../types.js';

/** Samples above this are taken as bogus (a wrapped or forged echo) and ignored. */
const MAX_SAMPLE_MS = 120_000;
/**
 * RFC 8985 §6.2 step 1 wants the minimum RTT windowed, so it follows a move to a longer
 * path; the window is Linux's tcp_min_rtt_wlen default, 300 s.
 */
export const MIN_RTT_WINDOW_MS = 300_000;

export class RttEstimator {
  /** Smoothed RTT and its variance in ms; srtt 0 until the first sample. */
  srtt = 0;
  rttvar = 0;
  rto = INITIAL_RTO;
  /**
   * The smallest sample of the last MIN_RTT_WINDOW_MS or so (RACK.min_RTT, RFC 8985 §6.2):
   * it bounds the reordering window and tells a retransmission's ACK from the original's.
   * 0 when none. A minimum older than the window gives way to the next sample.
   */
  minRtt = 0;
  private minRttAt = 0;
  /** Whether any sample was taken (srtt and minRtt may be 0 after one, on a sub-ms path). */
  sampled = false;
  /** The last sample, for HyStart (RFC 9406); -1 when none since it was read. */
  lastRtt = -1;
  /** The timed segment's sequence number (-1: none) and when it was sent. */
  timedSeq = -1;
  timedAt = 0;

  /** Starts timing the segment at `seq` if none is being timed. */
  time(seq: number, now: number): void {
    if (this.timedSeq >= 0) return;
    this.timedSeq = seq;
    this.timedAt = now;
  }

  /** Karn: the timed segment (or one before it) was sent again; its ACK gives no sample. */
  discard(): void {
    this.timedSeq = -1;
  }

  /** Karn (RFC 6298 §3): [seq, end) was sent again; if it holds the timed segment, its timing is void. */
  resent(seq: number, end: number): void {
    if (this.timedSeq >= 0 && seqGe(this.timedSeq, seq) && seqLt(this.timedSeq, end)) this.timedSeq = -1;
  }

  /** An ACK up to `ack`: a sample if it covers the timed segment. */
  acked(ack: number, now: number): void {
    if (this.timedSeq >= 0 && seqGt(ack, this.timedSeq)) {
      this.sample(now - this.timedAt, now);
      this.timedSeq = -1;
    }
  }

  /** RFC 6298 §2; `now` dates the sample for the windowed minimum. */
  sample(ms: number, now = 0): void {
    if (!(ms >= 0) || ms > MAX_SAMPLE_MS) return;
    this.lastRtt = ms;
    // The first sample, told by `sampled` and not by a zero: on a sub-ms path a sample may
    // round to 0 ms, and the next one must then be smoothed and compared with it, not take over.
    const first = !this.sampled;
    this.sampled = true;
    if (first || ms < this.minRtt || now - this.minRttAt > MIN_RTT_WINDOW_MS) {
      this.minRtt = ms;
      this.minRttAt = now;
    }
    if (first) {
      this.srtt = ms;
      this.rttvar = ms / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - ms);
      this.srtt = 0.875 * this.srtt + 0.125 * ms;
    }
    this.rto = Math.min(MAX_RTO, Math.max(MIN_RTO, this.srtt + Math.max(1, 4 * this.rttvar)));
  }

  /** RFC 6298 §5.5: double the RTO after a timeout, up to the maximum. */
  backoff(): void {
    this.rto = Math.min(MAX_RTO, this.rto * 2);
  }
}

/** How long a host's remembered RTT seeds new connections (RFC 9040 §8: "a few minutes"). */
export const RTT_MEMORY_MS = 600_000;
/** Hosts remembered; past it the least recently stored is forgotten. */
const RTT_MEMORY_HOSTS = 4096;

/**
 * Temporal sharing of the RTT between connections to the same host (RFC 9040 §4.2, §5):
 * a connection that ends leaves its smoothed RTT and variance, and a new connection to that
 * host within RTT_MEMORY_MS times its SYN or SYN-ACK from them instead of the blind 1 s of
 * RFC 6298 §2.1. A lost SYN-ACK then costs a few RTTs, not a second (with many short
 * connections through one lossy receiver, that second was most of the tail latency). Only
 * the handshake's timer is seeded: the connection's own samples still start its estimator
 * (§5 allows more; this is the part that pays, with none of the risk of a stale srtt
 * steering RACK or BBR). Linux keeps the same in tcp_metrics.
 */
export class RttMemory {
  private readonly hosts = new Map<PeerKey, { srtt: number; rttvar: number; at: number }>();

  /** A connection to `host` ends; `at` is its last activity. */
  remember(host: PeerKey, rtt: RttEstimator, at: number): void {
    if (!rtt.sampled) return;
    this.hosts.delete(host); // re-inserted last: Map order is the eviction order
    if (this.hosts.size >= RTT_MEMORY_HOSTS) this.hosts.delete(this.hosts.keys().next().value!);
    this.hosts.set(host, { srtt: rtt.srtt, rttvar: rtt.rttvar, at });
  }

  /** The handshake RTO for a new connection to `host` at `now`: from memory, else RFC 6298's 1 s. */
  initialRto(host: PeerKey, now: number): number {
    const m = this.hosts.get(host);
    if (!m) return INITIAL_RTO;
    if (now - m.at > RTT_MEMORY_MS) {
      this.hosts.delete(host);
      return INITIAL_RTO;
    }
    return Math.min(INITIAL_RTO, Math.max(MIN_RTO, m.srtt + Math.max(1, 4 * m.rttvar)));
  }

  get size(): number {
    return this.hosts.size;
  }
}
