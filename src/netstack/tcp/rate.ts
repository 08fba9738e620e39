/**
 * Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation, "the draft" below):
 * how fast the network delivered data, sampled on every ACK, for BBR's bandwidth model.
 *
 * The draft keeps per-packet state (P.delivered, P.delivered_time, P.first_sent_time,
 * P.is_app_limited, P.send_time) on each skb. Allocating an object per segment on the hot
 * path is what DESIGN §7 rules out, so the records live in parallel typed arrays used as a
 * ring of slots in sequence order: new data is always sent at SND.MAX, so appending keeps
 * the ring sorted, the cumulative ACK pops from the head, and a SACK block or a
 * retransmission finds its slots by binary search. The arrays are made on the first send
 * (an idle connection holds none) and grow by doubling.
 *
 * The same slots are RACK's per-segment state (RFC 8985 §6.1: Segment.xmit_ts is the send
 * time, Segment.end_seq the slot's end, Segment.retransmitted and Segment.lost are flags), so
 * one record per segment serves both the rate samples and loss detection (rack.ts). They are
 * kept for every connection that negotiated SACK, which RACK-TLP requires (RFC 8985 §4), and
 * for BBR. What is RACK's here is bookkeeping over the slots: which segments an ACK newly
 * delivers (and the newest of them that is no retransmission ambiguity, §6.2 step 2), whether
 * one arrived below RACK.fack (step 3), and the walk that marks segments lost by time (step 5).
 *
 * Times are the caller's `now` in milliseconds (fractional where the clock is), rates in
 * bytes per millisecond. Sequence numbers compare modulo 2^32 (RFC 9293 §3.4).
 */
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from '../../wire/tcp.js';

/**
 * A floor, in ms, on the span over which a rate is believed: on paths whose minimum RTT is
 * below it, a sample is capped by the rate averaged over at least this long. The draft's
 * only floor is min_rtt (§3.3), which assumes ACK arrival times are exact. An event loop
 * stamps a whole batch of ACKs (those that queued in the socket while it was busy) with one
 * `now`; on a sub-millisecond path (loopback, a LAN, a tunnel endpoint on the same host)
 * a sample then spans one batch and can read several times the real rate (measured:
 * 0.9-1.8 Gbit/s samples on a 300-600 Mbit/s tunnel, and BBR paced itself into loss).
 * Averaging over a few batches removes that; on longer paths the draft's sample stands.
 */
export const EVENT_LOOP_SPAN_MS = 8;
const CHECKPOINTS = 8;
/** Shared by every sampler that has sent nothing yet, so an idle connection costs no arrays. */
const NONE = new Float64Array(0);
const NO_FLAGS = new Uint8Array(0);
const APP_LIMITED = 1;
const SACKED = 2;
const RETRANSMITTED = 4;
/** RFC 8985 §6.1 Segment.lost: marked lost and not sent again since. */
const LOST = 8;

/** One rate sample (the draft §3.1 "rs"); a single object per connection, refilled per ACK. */
export class RateSample {
  /** Bytes delivered over the interval (rs.delivered); 0 with no valid sample. */
  delivered = 0;
  /** The interval in ms (rs.interval = max(send_elapsed, ack_elapsed), §3.3); -1 when invalid. */
  interval = -1;
  /** delivered / interval, bytes per ms; 0 when the sample is invalid. */
  deliveryRate = 0;
  /** Whether the newest packet acknowledged was sent while the application had nothing to send (§3.4). */
  isAppLimited = false;
  /** C.delivered when the newest packet acknowledged was sent (rs.prior_delivered). */
  priorDelivered = 0;
  /** RTT of the newest packet acknowledged that was never retransmitted (Karn); -1 when none. */
  rtt = -1;
  /** Bytes newly acknowledged or SACKed by this ACK. */
  newlyDelivered = 0;
  /** Bytes declared lost (retransmitted) while the newest packet delivered was in flight (rs.lost). */
  lost = 0;
  /** Bytes outstanding when the newest packet delivered was sent, itself included (rs.tx_in_flight). */
  txInFlight = 0;
}

export class RateSampler {
  // Connection state (the draft §3.1 "C").
  /** Bytes delivered so far, cumulatively ACKed or SACKed (C.delivered). */
  delivered = 0;
  /** When C.delivered last changed (C.delivered_time). */
  deliveredTime = 0;
  /** Send time of the newest packet delivered (C.first_sent_time): the start of the next send interval. */
  firstSentTime = 0;
  /**
   * Bytes retransmitted so far (C.lost in draft-ietf-ccwg-bbr): a retransmission is the
   * sender's verdict that the earlier copy was lost (fast recovery, RACK, RTO alike).
   */
  lost = 0;
  /** Nonzero: C.delivered at which the application-limited period ends (C.app_limited, §3.4). */
  appLimited = 0;
  /** The smallest RTT any sample showed, ms; Infinity before the first (precise, unlike the ms timestamps). */
  minRtt = Infinity;
  readonly rs = new RateSample();
  /**
   * RACK.reo_wnd (RFC 8985 §6.2 step 4) as the last loss check used it, ms, once the path
   * has shown reordering (RACK.reordering_seen), else 0: how long past RACK.rtt a segment
   * the path holds back stays undelivered before it is judged lost. rack.ts writes it on
   * every check; BBR sizes its window by it (bbr.ts targetCwnd).
   */
  reoWnd = 0;

  // RACK-TLP's view of the slots (RFC 8985 §6.1-6.2; rack.ts holds the connection state).
  /** Bytes of slots marked lost and not yet sent again: RFC 6675's pipe leaves them out. */
  lostBytes = 0;
  /** Slots SACKed (RACK.segs_sacked). */
  sackedSegs = 0;
  /** RACK.fack: the highest end of any segment delivered so far; valid once fackSet. */
  fack = 0;
  private fackSet = false;
  /**
   * Per ACK (beginAck to the end of processing): the newest segment it delivered that is no
   * retransmission ambiguity (RFC 8985 §6.2 step 2; ackXmit -Infinity when none), and whether
   * a never-retransmitted segment below RACK.fack was delivered (step 3).
   */
  ackXmit = -Infinity;
  ackEnd = 0;
  ackReordered = false;
  /** Set by detectLoss: bytes it marked lost, whether any was a retransmission, and the latest such one's send time. */
  newlyLost = 0;
  lostRetransmit = false;
  lostRetransmitSent = -Infinity;
  /** The next send is a tail loss probe (RFC 8985 §7.3): a retransmission that is no verdict of loss. */
  probing = false;
  private ackEcr = -1;
  private ackMinRtt = Infinity;
  private ackFack = 0;
  private ackFackSet = false;

  // The slot ring: slot i (physical (head + i) % cap) covers [start, start + len).
  private cap = 0;
  private head = 0;
  private count = 0;
  private start: Float64Array = NONE;
  private len: Float64Array = NONE;
  private sentTime: Float64Array = NONE;
  private pDelivered: Float64Array = NONE;
  private pDeliveredTime: Float64Array = NONE;
  private pFirstSent: Float64Array = NONE;
  private pLost: Float64Array = NONE;
  private pTxInFlight: Float64Array = NONE;
  private flags: Uint8Array = NO_FLAGS;
  // The sample being built (UpdateRateSample, §3.3).
  private hasData = false;
  private priorTime = 0;
  private sendElapsed = 0;
  private ackElapsed = 0;
  private newestSent = 0;
  /** Outstanding bytes for the segment being stamped (onSend). */
  private sendInFlight = 0;
  // Checkpoints of (C.delivered_time, C.delivered) for the span rate (EVENT_LOOP_SPAN_MS).
  private readonly cpTime = new Float64Array(CHECKPOINTS);
  private readonly cpDelivered = new Float64Array(CHECKPOINTS);
  private cpHead = 0;
  private cpCount = 0;

  /**
   * `samples`: whether delivery-rate samples are wanted (BBR). Without them (RACK alone, for
   * CUBIC and NewReno) a record is a segment's range, send time and flags, and delivering it
   * counts bytes only: the per-packet rate state (the draft's P.delivered and the rest) is
   * neither stored nor read.
   */
  constructor(readonly samples = true) {}

  /** Records in flight (tests, memory checks). */
  get slots(): number {
    return this.count;
  }

  /**
   * A segment [seq, seq + len) goes out (the draft §3.2 "Upon transmitting a data packet").
   * `inFlight` is the bytes outstanding before it: when nothing is, the send and ACK
   * intervals restart now, so an idle period is not counted as delivery time.
   */
  onSend(now: number, seq: number, len: number, inFlight: number, sndMax: number): void {
    if (len <= 0) return;
    if (inFlight === 0) this.firstSentTime = this.deliveredTime = now;
    this.sendInFlight = inFlight + len;
    if (seqGe(seq, sndMax) || this.count === 0 || seqGe(seq, this.endOf(this.count - 1))) {
      // A one-byte zero-window probe (RFC 9293 §3.8.6.1) is recorded beyond SND.MAX without
      // moving it; what is sent there next replaces that record.
      if (this.count > 0 && seqGt(this.endOf(this.count - 1), seq)) this.truncate(seq);
      this.append(now, seq, len);
      return;
    }
    // A retransmission: every slot it covers takes the new send state (the draft sends the
    // same per-packet fields again for a retransmitted packet; RFC 8985 §6.1 records the new
    // xmit_ts, sets Segment.retransmitted and clears Segment.lost). Our segments are cut from
    // the same byte stream at the same MSS, so a retransmission lines up with the originals.
    const end = seqAdd(seq, len);
    const last = this.endOf(this.count - 1);
    let i = this.find(seq);
    if (i > 0 && seqGt(this.endOf(i - 1), seq)) i--;
    for (; i < this.count; i++) {
      const p = this.phys(i);
      if (!seqLt(this.start[p]!, end)) break;
      const f = this.flags[p]!;
      // C.lost counts a segment once, when it is found lost (markLost); a resend without that
      // verdict (after a timeout's rewind, without SACK) is the verdict. A probe is neither.
      if ((f & LOST) !== 0) this.lostBytes -= this.len[p]!;
      else if (!this.probing) this.lost += this.len[p]!;
      this.stamp(p, now);
      this.flags[p] = (f & ~(APP_LIMITED | LOST)) | RETRANSMITTED | (this.appLimited !== 0 ? APP_LIMITED : 0);
    }
    this.probing = false;
    // A segment reaching past everything recorded (a probe grown into a full segment) records the rest.
    if (seqGt(end, last)) this.append(now, last, seqDiff(end, last));
  }

  /**
   * Starts the sample for one ACK (rs reset; §3.3 "Upon receiving ACK"). `tsEcr` is the
   * ACK's timestamp echo (-1 without timestamps) and `minRtt` RACK.min_RTT: what RFC 8985
   * §6.2 step 2 needs to tell whether a retransmitted segment's ACK answers that retransmission.
   */
  beginAck(tsEcr = -1, minRtt = Infinity): void {
    this.hasData = false;
    this.ackXmit = -Infinity;
    this.ackReordered = false;
    this.ackEcr = tsEcr;
    this.ackMinRtt = minRtt;
    this.ackFack = this.fack;
    this.ackFackSet = this.fackSet;
    const rs = this.rs;
    rs.newlyDelivered = 0;
    rs.rtt = -1;
    rs.lost = 0;
    rs.txInFlight = 0;
  }

  /**
   * The SACK blocks of an ACK (from index `from`: 2 skips a D-SACK block), read against the
   * scoreboard's ranges before they are merged in: only what no earlier SACK covered is new.
   * Each newly SACKed slot is visited once, however often a block is repeated.
   */
  sackBlocks(now: number, blocks: number[], from: number, ranges: number[], una: number, sndMax: number): void {
    if (this.count === 0) return;
    for (let i = from; i + 1 < blocks.length; i += 2) {
      let l = blocks[i]!;
      const r = blocks[i + 1]!;
      if (!seqLt(l, r) || seqGt(r, sndMax) || seqLe(r, una)) continue; // as the scoreboard ignores it
      if (seqLt(l, una)) l = una;
      // The parts of [l, r) outside every range already held.
      for (let j = 0; j + 1 < ranges.length && seqLt(l, r); j += 2) {
        const rl = ranges[j]!;
        const rr = ranges[j + 1]!;
        if (seqLe(rr, l)) continue;
        if (seqGe(rl, r)) break;
        if (seqLt(l, rl)) this.sacked(now, l, rl);
        l = rr;
      }
      if (seqLt(l, r)) this.sacked(now, l, r);
    }
  }

  /** Newly SACKed bytes [l, r): the slots wholly inside are delivered. */
  sacked(now: number, l: number, r: number): void {
    let i = this.find(l);
    for (; i < this.count; i++) {
      const p = this.phys(i);
      const s = this.start[p]!;
      if (!seqLe(seqAdd(s, this.len[p]!), r)) break;
      const f = this.flags[p]!;
      if ((f & SACKED) === 0) {
        // The original arrived after all: it is not to be sent again.
        if ((f & LOST) !== 0) this.lostBytes -= this.len[p]!;
        this.flags[p] = (f & ~LOST) | SACKED;
        this.sackedSegs++;
        this.deliver(now, p, true);
      }
    }
  }

  /** The cumulative ACK moved to `una`: slots below it are delivered (once) and dropped. */
  acked(now: number, una: number): void {
    while (this.count > 0) {
      const p = this.head;
      if (!seqLe(seqAdd(this.start[p]!, this.len[p]!), una)) break;
      const f = this.flags[p]!;
      if ((f & SACKED) === 0) this.deliver(now, p, false);
      else this.sackedSegs--;
      if ((f & LOST) !== 0) this.lostBytes -= this.len[p]!;
      this.head = this.head + 1 === this.cap ? 0 : this.head + 1;
      this.count--;
    }
  }

  /**
   * Finishes the sample (GenerateRateSample, §3.3). False when there is none: nothing was
   * delivered, or the interval is shorter than the minimum RTT, which only ACK compression
   * or a stretched ACK can produce and which would overestimate the rate.
   */
  endAck(): boolean {
    const rs = this.rs;
    // §3.4: the application-limited period ends once its last packet is delivered.
    if (this.appLimited !== 0 && this.delivered > this.appLimited) this.appLimited = 0;
    rs.deliveryRate = 0;
    rs.interval = -1;
    rs.delivered = 0;
    if (!this.hasData || this.priorTime === 0) return false;
    rs.interval = Math.max(this.sendElapsed, this.ackElapsed);
    rs.delivered = this.delivered - rs.priorDelivered;
    if (rs.rtt >= 0 && rs.rtt < this.minRtt) this.minRtt = rs.rtt;
    this.checkpoint();
    if (!(rs.interval >= this.minRtt) || rs.interval <= 0) {
      rs.interval = -1;
      return false;
    }
    rs.deliveryRate = rs.delivered / rs.interval;
    if (this.minRtt < EVENT_LOOP_SPAN_MS) {
      const avg = this.spanRate();
      if (avg >= 0 && avg < rs.deliveryRate) rs.deliveryRate = avg;
    }
    return true;
  }

  /** Records (deliveredTime, delivered) every quarter span, in a ring of CHECKPOINTS. */
  private checkpoint(): void {
    const last = (this.cpHead + CHECKPOINTS - 1) % CHECKPOINTS;
    if (this.cpCount > 0 && this.deliveredTime - this.cpTime[last]! < EVENT_LOOP_SPAN_MS / 4) return;
    this.cpTime[this.cpHead] = this.deliveredTime;
    this.cpDelivered[this.cpHead] = this.delivered;
    this.cpHead = (this.cpHead + 1) % CHECKPOINTS;
    if (this.cpCount < CHECKPOINTS) this.cpCount++;
  }

  /** Bytes per ms delivered since the newest checkpoint at least EVENT_LOOP_SPAN_MS old; -1 if none is. */
  private spanRate(): number {
    for (let k = 1; k <= this.cpCount; k++) {
      const i = (this.cpHead + CHECKPOINTS - k) % CHECKPOINTS;
      const dt = this.deliveredTime - this.cpTime[i]!;
      if (dt >= EVENT_LOOP_SPAN_MS) return (this.delivered - this.cpDelivered[i]!) / dt;
    }
    return -1;
  }

  /**
   * §3.4 "Detecting application-limited phases": called when the sender found nothing
   * more to send while the congestion window had room. Samples taken until what is in
   * flight now is delivered cannot show the path's rate, only the application's.
   */
  markAppLimited(inFlight: number): void {
    this.appLimited = Math.max(this.delivered + inFlight, 1);
  }

  /**
   * A D-SACK (RFC 2883) reported `bytes` that arrived twice: the retransmission was spurious,
   * the original only late, so they were never lost and leave C.lost again. Otherwise every
   * segment a reordering path holds back past the reordering window counts as a loss in the
   * rate samples of everything in flight with it (rs.lost), and BBR reads a path that only
   * reorders as one that drops (bbr.ts checkInflightTooHigh). This is the per-segment form of
   * what draft-ietf-ccwg-bbr and Linux do when a whole recovery proves spurious: undo the
   * loss response (recovery.ts onDsack undoes the window for that case).
   */
  dsacked(bytes: number): void {
    this.lost = Math.max(0, this.lost - bytes);
  }

  /** Forgets the records (the connection is gone or everything was acknowledged after a reset). */
  clear(): void {
    this.count = 0;
    this.head = 0;
    this.lostBytes = 0;
    this.sackedSegs = 0;
  }

  // --- RACK (RFC 8985) over the slots ----------------------------------------------

  /**
   * RFC 8985 §6.2 step 5, RACK_detect_loss: every segment below `nxt` not yet delivered nor
   * marked, sent before the RACK segment (xmit `rXmit`, end `rEnd`), is lost once `lostAfter`
   * (RACK.rtt + RACK.reo_wnd) has passed since it was sent. Returns the earliest time at which
   * a segment still waiting would be lost (Infinity when none): rack.ts arms the one reordering
   * timer there. newlyLost and lostRetransmit say what was marked.
   *
   * The walk visits only the holes between the SACKed ranges (`ranges`, the scoreboard), and
   * stops at the first segment never retransmitted that is not lost yet: new data is sent in
   * sequence order, so every segment above it was sent no earlier (a retransmission is sent
   * later than its original), is no candidate either and expires no sooner. So an ACK in a
   * loss-free flight costs one slot, and one in recovery the segments still in the holes.
   */
  detectLoss(now: number, rXmit: number, rEnd: number, lostAfter: number, nxt: number, ranges: number[]): number {
    this.newlyLost = 0;
    this.lostRetransmit = false;
    this.lostRetransmitSent = -Infinity;
    let earliest = Infinity;
    let k = 0;
    for (let i = 0; i < this.count; ) {
      const p = this.phys(i);
      const s = this.start[p]!;
      if (!seqLt(s, nxt)) break;
      // Inside a SACKed range: jump to the first slot past it.
      while (k < ranges.length && seqLe(ranges[k + 1]!, s)) k += 2;
      if (k < ranges.length && seqGe(s, ranges[k]!)) {
        const j = this.find(ranges[k + 1]!);
        i = j > i ? j : i + 1;
        k += 2;
        continue;
      }
      const f = this.flags[p]!;
      i++;
      if ((f & (SACKED | LOST)) !== 0) continue;
      const st = this.sentTime[p]!;
      // RACK_sent_after(RACK.xmit_ts, RACK.end_seq, Segment.xmit_ts, Segment.end_seq)
      if (rXmit > st || (rXmit === st && seqGt(rEnd, seqAdd(s, this.len[p]!)))) {
        const at = st + lostAfter;
        if (at <= now) {
          this.markLost(p);
          if ((f & RETRANSMITTED) !== 0) {
            this.lostRetransmit = true;
            if (st > this.lostRetransmitSent) this.lostRetransmitSent = st;
          }
          continue;
        }
        if (at < earliest) earliest = at;
      }
      if ((f & RETRANSMITTED) === 0) break;
    }
    return earliest;
  }

  /**
   * RFC 8985 §6.3, on a retransmission timeout: the first segment not yet delivered is lost
   * (it was sent an RTO ago), and every other one sent at least `lostAfter` (RACK.rtt +
   * RACK.reo_wnd) ago. Segments sent more recently stay in flight.
   */
  markLostOnRto(now: number, lostAfter: number, nxt: number): void {
    this.newlyLost = 0;
    this.lostRetransmit = false;
    let first = true;
    for (let i = 0; i < this.count; i++) {
      const p = this.phys(i);
      if (!seqLt(this.start[p]!, nxt)) break;
      const f = this.flags[p]!;
      if ((f & SACKED) !== 0) continue;
      if ((f & LOST) === 0 && (first || this.sentTime[p]! + lostAfter <= now)) this.markLost(p);
      first = false;
    }
  }

  /**
   * The lowest slot marked lost that starts at or above `from` and below `nxt`: its start,
   * and its length in lostLen; -1 when there is none (RFC 6675 NextSeg rule 1 with RACK's
   * Segment.lost as IsLost, RFC 8985 §6.2).
   */
  nextLost(from: number, nxt: number): number {
    if (this.lostBytes <= 0 || this.count === 0) return -1;
    let i = this.find(from);
    if (i > 0 && seqGt(this.endOf(i - 1), from)) i--;
    for (; i < this.count; i++) {
      const p = this.phys(i);
      const s = this.start[p]!;
      if (!seqLt(s, nxt)) break;
      if ((this.flags[p]! & LOST) !== 0 && seqGe(s, from)) {
        this.lostLen = this.len[p]!;
        return s;
      }
    }
    return -1;
  }
  /** The length of the slot nextLost or lastInFlight found (or resendLost sent). */
  lostLen = 0;

  /**
   * The start of the highest slot below `nxt` still in flight (neither SACKed nor marked
   * lost), its length in lostLen; -1 with none. What a tail loss probe resends (RFC 8985 §7.3).
   */
  lastInFlight(nxt: number): number {
    for (let i = this.count - 1; i >= 0; i--) {
      const p = this.phys(i);
      const s = this.start[p]!;
      if (!seqLt(s, nxt) || (this.flags[p]! & (SACKED | LOST)) !== 0) continue;
      this.lostLen = this.len[p]!;
      return s;
    }
    return -1;
  }

  /** Bytes marked lost below `nxt` (the pipe after SND.NXT was rewound below SND.MAX). */
  lostBelow(nxt: number): number {
    if (this.lostBytes <= 0) return 0;
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      const p = this.phys(i);
      if (!seqLt(this.start[p]!, nxt)) break;
      if ((this.flags[p]! & LOST) !== 0) n += this.len[p]!;
    }
    return n;
  }

  /** Forgets every lost mark: after a timeout rewinds SND.NXT, everything from it is sent again anyway. */
  clearLost(): void {
    if (this.lostBytes === 0) return;
    for (let i = 0; i < this.count; i++) {
      const p = this.phys(i);
      this.flags[p] = this.flags[p]! & ~LOST;
    }
    this.lostBytes = 0;
  }

  /** RFC 8985 §6.2 step 5 "Segment.lost = TRUE"; C.lost counts the bytes (draft-ietf-ccwg-bbr). */
  private markLost(p: number): void {
    this.flags[p] = this.flags[p]! | LOST;
    const len = this.len[p]!;
    this.lostBytes += len;
    this.newlyLost += len;
    this.lost += len;
  }

  /** Drops the records at or above `seq` and cuts the one that reaches past it. */
  private truncate(seq: number): void {
    while (this.count > 0) {
      const p = this.phys(this.count - 1);
      const s = this.start[p]!;
      if (seqLt(s, seq)) {
        if (seqGt(seqAdd(s, this.len[p]!), seq)) {
          if ((this.flags[p]! & LOST) !== 0) this.lostBytes -= seqDiff(seqAdd(s, this.len[p]!), seq);
          this.len[p] = seqDiff(seq, s);
        }
        return;
      }
      const f = this.flags[p]!;
      if ((f & SACKED) !== 0) this.sackedSegs--;
      if ((f & LOST) !== 0) this.lostBytes -= this.len[p]!;
      this.count--;
    }
  }

  /** Frees the arrays when nothing is in flight (the layer's 'trim' timer). */
  release(): void {
    if (this.count !== 0) return;
    this.cap = 0;
    this.head = 0;
    this.start = this.len = this.sentTime = this.pDelivered = this.pDeliveredTime = this.pFirstSent = this.pLost = this.pTxInFlight = NONE;
    this.flags = NO_FLAGS;
  }

  // --- internals -------------------------------------------------------------------

  /** UpdateRateSample(P) (§3.3) for the packet in slot `p`, newly delivered; and RACK's steps 2-3 for it. */
  private deliver(now: number, p: number, sacked: boolean): void {
    const rs = this.rs;
    const len = this.len[p]!;
    const f = this.flags[p]!;
    const sent = this.sentTime[p]!;
    const end = seqAdd(this.start[p]!, len);
    // RFC 8985 §6.2 step 2: a retransmitted segment counts only if the ACK answers that
    // retransmission: it came at least RACK.min_RTT after it, and the timestamp echo is not
    // older than it (the echo is our millisecond clock, output.ts tsVal). The echo says
    // which copy arrived only for the cumulative ACK: for data above a hole the receiver
    // echoes the last in-order segment's timestamp (RFC 7323 §4.3), older than any segment
    // SACKed, so for a SACK the RTT check alone decides (as Linux's tcp_rack_advance does).
    if ((f & RETRANSMITTED) === 0 || (now - sent >= this.ackMinRtt && (sacked || this.ackEcr < 0 || !seqLt(this.ackEcr, Math.floor(sent) >>> 0)))) {
      if (sent > this.ackXmit || (sent === this.ackXmit && seqGt(end, this.ackEnd))) {
        this.ackXmit = sent;
        this.ackEnd = end;
      }
    }
    // Step 3: a never-retransmitted segment delivered below RACK.fack arrived out of order.
    // The step takes an ACK's segments in ascending order, so each is compared with RACK.fack
    // as it was before this ACK (ackFack); SACK blocks come newest first, not in order.
    if (this.ackFackSet && seqLt(end, this.ackFack) && (f & RETRANSMITTED) === 0) this.ackReordered = true;
    if (!this.fackSet || seqGt(end, this.fack)) {
      this.fackSet = true;
      this.fack = end;
    }
    this.delivered += len;
    this.deliveredTime = now;
    rs.newlyDelivered += len;
    if (!this.samples) return;
    // The most recently sent packet decides the sample (§3.3 IsNewestPacket): it spans the
    // latest send interval. Slots are visited in sequence order, so a tie goes to the higher one.
    const st = sent;
    if (!this.hasData || st >= this.newestSent) {
      this.hasData = true;
      this.newestSent = st;
      rs.priorDelivered = this.pDelivered[p]!;
      this.priorTime = this.pDeliveredTime[p]!;
      rs.isAppLimited = (this.flags[p]! & APP_LIMITED) !== 0;
      this.sendElapsed = this.sentTime[p]! - this.pFirstSent[p]!;
      rs.lost = Math.max(0, this.lost - this.pLost[p]!); // below 0 once D-SACKs took back more than was marked since (dsacked)
      rs.txInFlight = this.pTxInFlight[p]!;
      this.ackElapsed = now - this.priorTime;
      this.firstSentTime = this.sentTime[p]!;
      rs.rtt = (this.flags[p]! & RETRANSMITTED) === 0 ? now - this.sentTime[p]! : -1;
    }
  }

  private stamp(p: number, now: number): void {
    this.sentTime[p] = now;
    if (!this.samples) return;
    this.pDelivered[p] = this.delivered;
    // A zero delivered time (nothing delivered yet on a fresh connection) is made nonzero so
    // "prior_time == 0" keeps meaning "no sample" (§3.3) even at now = 0 in a simulation.
    this.pDeliveredTime[p] = this.deliveredTime || Number.MIN_VALUE;
    this.pFirstSent[p] = this.firstSentTime;
    this.pLost[p] = this.lost;
    this.pTxInFlight[p] = this.sendInFlight;
  }

  private append(now: number, seq: number, len: number): void {
    if (this.count === this.cap) this.grow();
    const p = this.phys(this.count);
    this.count++;
    this.start[p] = seq;
    this.len[p] = len;
    this.flags[p] = this.appLimited !== 0 ? APP_LIMITED : 0;
    this.stamp(p, now);
  }

  private grow(): void {
    // From 8 records: 64 B per array, which V8 keeps on its own heap (no malloc), so a short
    // connection's eight arrays cost no off-heap chunk; a stream doubles its way up.
    const cap = Math.max(8, this.cap * 2);
    const take = (a: Float64Array): Float64Array => {
      const b = new Float64Array(cap);
      for (let i = 0; i < this.count; i++) b[i] = a[this.phys(i)]!;
      return b;
    };
    const f = new Uint8Array(cap);
    for (let i = 0; i < this.count; i++) f[i] = this.flags[this.phys(i)]!;
    this.start = take(this.start);
    this.len = take(this.len);
    this.sentTime = take(this.sentTime);
    if (this.samples) {
      this.pDelivered = take(this.pDelivered);
      this.pDeliveredTime = take(this.pDeliveredTime);
      this.pFirstSent = take(this.pFirstSent);
      this.pLost = take(this.pLost);
      this.pTxInFlight = take(this.pTxInFlight);
    }
    this.flags = f;
    this.head = 0;
    this.cap = cap;
  }

  private phys(i: number): number {
    const p = this.head + i;
    return p >= this.cap ? p - this.cap : p;
  }

  private endOf(i: number): number {
    const p = this.phys(i);
    return seqAdd(this.start[p]!, this.len[p]!);
  }

  /** The first logical slot whose start is at or above `seq` (count when none). */
  private find(seq: number): number {
    let lo = 0;
    let hi = this.count;
    const base = this.count > 0 ? this.start[this.head]! : 0;
    const want = seqDiff(seq, base);
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seqDiff(this.start[this.phys(mid)]!, base) < want) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
