/**
 * RACK-TLP loss detection (RFC 8985): the connection's RACK and TLP state and the steps
 * that read it. A segment is lost when one sent after it was delivered and a reordering
 * window has passed since (RACK, §6), and a tail that draws no ACK is probed after about
 * two round trips instead of waiting for the retransmission timeout (TLP, §7).
 *
 * The per-segment state (§6.1: xmit_ts, end_seq, retransmitted, lost) lives in the send
 * records of rate.ts, which the delivery-rate sampler already kept per segment; the walk
 * over them is there too. This file keeps the per-connection variables, decides, and arms
 * the one 'reo' timer (timers.ts) for the earliest segment still waiting to be judged.
 * recovery.ts acts on what is found (fast recovery, the probe, the RTO).
 *
 * RACK-TLP runs on connections that negotiated SACK, as §4 requires; without SACK the
 * sender keeps RFC 5681's three duplicate ACKs and RFC 6582's partial ACKs (snd.ts).
 * Sans-IO: every decision comes from `now` and the stored deadlines.
 */
import type { Instant } from '../../util/time.js';
import { seqDiff, seqGe, seqGt, seqLt } from '../../wire/tcp.js';
import { DUP_THRESH, MIN_RTO, NEVER } from './constants.js';
import type { Conn } from './conn.js';
import type { TcpLayer } from './layer.js';

/** §6.2 step 4: the reordering window returns to its base after this many recoveries without a D-SACK. */
export const REO_WND_PERSIST = 16;
/**
 * A floor on the probe timeout. SRTT comes from millisecond timestamps (RFC 7323 §5.4) and
 * the event loop's timers are about as coarse, so on a sub-millisecond path 2 × SRTT would
 * probe before a receiver has even read the segments (Linux adds two ticks for the same reason).
 */
export const PTO_FLOOR_MS = 10;
/**
 * RTT samples (RFC 6298, RFC 7323: the ones RACK.min_RTT and SRTT are made of, §6.2 step 1)
 * come from our millisecond timestamp clock, and read 0 on a sub-millisecond path; the
 * reordering window takes them as at least this, so it never vanishes where RACK keeps one.
 */
const RTT_GRANULARITY_MS = 1;

export class Rack {
  // RFC 8985 §6.1, per connection.
  /** RACK.xmit_ts and RACK.end_seq: the most recently sent segment known delivered; -Infinity before any. */
  xmitTs = -Infinity;
  endSeq = 0;
  /** RACK.rtt: the RTT of that segment, measured when it was delivered. (RACK.min_RTT is rtt.ts minRtt.) */
  rtt = 0;
  /** RACK.reordering_seen. */
  reorderingSeen = false;
  /** RACK.reo_wnd_mult and RACK.reo_wnd_persist (§6.2 step 4). */
  reoWndMult = 1;
  reoWndPersist = 0;
  /** RACK.dsack_round: SND.NXT when the window last grew; inactive (None) when dsackRoundOn is false. */
  dsackRound = 0;
  dsackRoundOn = false;
  /** This ACK widened the window: leaving recovery on it does not count toward the decay. */
  grew = false;
  // RFC 8985 §7.1, TLP. An episode lasts from a probe until its ACK tells what happened.
  /** TLP.end_seq: SND.NXT after the probe; the episode is open while tlpOn. */
  tlpEnd = 0;
  tlpOn = false;
  /** TLP.is_retrans: the probe resent data rather than sending new data. */
  tlpRetrans = false;
  /** When the probe went out. */
  tlpSent = 0;
}

/** RACK_sent_after (§6.2): t1 later than t2, or the same instant and a higher sequence. */
export function sentAfter(t1: number, seq1: number, t2: number, seq2: number): boolean {
  return t1 > t2 || (t1 === t2 && seqGt(seq1, seq2));
}

/**
 * RACK.reo_wnd (§6.2 step 4). Zero while no reordering was seen and the sender is in
 * recovery or DupThresh segments are SACKed: RACK then acts as fast as the DupThresh rule
 * it replaces. Otherwise a quarter of the minimum RTT per step of reo_wnd_mult, bounded by
 * SRTT (reoWndCap).
 */
export function reoWnd(c: Conn): number {
  const r = c.rack;
  if (!r.reorderingSeen && (c.inRecovery || c.rtoRecovery || c.rate.sackedSegs >= DUP_THRESH)) return 0;
  if (!c.rtt.sampled) return 0; // no RTT estimate yet (§3.3.2: start from zero then)
  return Math.min((r.reoWndMult * Math.max(c.rtt.minRtt, RTT_GRANULARITY_MS)) / 4, reoWndCap(c));
}

/**
 * How far D-SACKs may widen the reordering window past SRTT on a path faster than the probe
 * timer's floor (reoWndCap): a quarter of the lowest RTO, so that a segment waiting it out is
 * still judged long before the retransmission timer could fire.
 */
export const REO_WND_FAST_PATH_MAX = MIN_RTO / 4;

/**
 * The bound on RACK.reo_wnd: SRTT (§6.2 step 4), except on a path whose minimum RTT is below
 * PTO_FLOOR_MS once D-SACKs have widened the window (reo_wnd_mult above 1): then
 * REO_WND_FAST_PATH_MAX. (The minimum RTT, not SRTT, tells the path: the late
 * segments' own RTT samples raise SRTT.)
 *
 * SRTT bounds the window so that RACK never waits for a late segment much longer than a
 * round trip, about as long as a tail loss probe would (§7.2, 2 × SRTT). On a path whose SRTT
 * is below a millisecond but whose relay holds reordered segments for several (a WireGuard
 * peer on the same host or LAN behind a busy forwarder), that bound is smaller than the
 * reordering it must cover: each late segment is resent and D-SACKed, the window cannot grow
 * past SRTT, and it happens again for every late segment, each time a fast recovery and a
 * window cut for CUBIC or NewReno. The D-SACKs prove the segments were late, not lost; how
 * late, the growth finds, up to REO_WND_FAST_PATH_MAX (a bound at the probe floor,
 * PTO_FLOOR_MS, still resent every segment held 20 ms). The growth itself stays the RFC's (a step of min_RTT / 4 per round trip that sees a D-SACK, back
 * to the base after REO_WND_PERSIST recoveries without one), so a path that only loses never
 * leaves the SRTT bound. Measured in the simulator (0.5 ms RTT, 100 Mbit/s, 5 % of data
 * segments held 5 ms by a relay, tcp-sim.test.ts): CUBIC from 334 retransmissions for 336
 * held segments at 57 Mbit/s to 102 for 325 at 71.
 *
 * Only on paths faster than PTO_FLOOR_MS: where SRTT is a round trip the probe timer follows,
 * the RFC's bound stands (on the 20 ms simulator rows it made no difference either way).
 *
 * BBR too, now that its window holds what the reordering window keeps waiting (bbr.ts
 * targetCwnd adds max_bw × reo_wnd). Without that term the late segments filled a window of
 * about two BDPs (a few segments at 0.5 ms) and waiting was slower than resending (91 -> 73
 * Mbit/s in the test above); with it that test resends 65 of 325 held segments instead of all
 * at 88 Mbit/s, and on the tcp-cc bench's path in the simulator (0.4 ms, 400 Mbit/s, 3 %
 * loss, 25 % of datagrams held 5 ms both ways) 67-69 Mbit/s with about 7,000 D-SACKed
 * retransmissions per 32 MB became 309-317 with about 500.
 * (Linux bounds the window by SRTT on every path.)
 */
export function reoWndCap(c: Conn): number {
  const srtt = Math.max(c.rtt.srtt, RTT_GRANULARITY_MS);
  if (c.rack.reoWndMult > 1 && c.rtt.minRtt < PTO_FLOOR_MS) return Math.max(srtt, REO_WND_FAST_PATH_MAX);
  return srtt;
}

/**
 * §6.2 steps 2-3 for one ACK, from what the send records saw it deliver (rate.ts deliver):
 * RACK.rtt, the RACK segment, and RACK.reordering_seen. (Step 1, RACK.min_RTT, is the
 * windowed minimum rtt.ts keeps of the RFC 6298 / RFC 7323 samples.)
 */
export function rackUpdate(t: TcpLayer, now: Instant, c: Conn): void {
  const s = c.rate;
  const r = c.rack;
  if (s.ackXmit !== -Infinity) {
    r.rtt = now - s.ackXmit;
    if (sentAfter(s.ackXmit, s.ackEnd, r.xmitTs, r.endSeq)) {
      r.xmitTs = s.ackXmit;
      r.endSeq = s.ackEnd;
    }
  }
  if (s.ackReordered && !r.reorderingSeen) {
    r.reorderingSeen = true;
    t.count('reorderingSeen');
  }
  // Step 4: a D-SACK round ends once SND.UNA passes what had been sent when it began.
  if (r.dsackRoundOn && seqGe(c.una, r.dsackRound)) r.dsackRoundOn = false;
}

/**
 * §6.2 step 4: a D-SACK widens the reordering window by one step per round trip that sees
 * one, and keeps it for REO_WND_PERSIST recoveries. The D-SACK of a tail loss probe says
 * only that the probe was redundant (§7.4), not that the path reorders (Linux skips it too).
 *
 * It also counts as reordering seen (RACK.reordering_seen). Step 3 sees reordering only in
 * segments never retransmitted, but once no reordering is seen the window is zero with
 * DupThresh segments SACKed: every late segment is then resent before it arrives, and a
 * D-SACK for the resent copy is the only sign the path gives. Without this the window could
 * never open on a path that reorders by more than a few segments (Linux too takes a D-SACK
 * of a retransmission as reordering).
 */
export function rackOnDsack(t: TcpLayer, c: Conn, left: number, right: number): void {
  const r = c.rack;
  if (r.tlpOn && r.tlpRetrans && right === r.tlpEnd) return;
  // The retransmission was spurious: its bytes were not lost (rate.ts dsacked). A probe's
  // D-SACK, above, was never counted as a loss.
  c.rate.dsacked(seqDiff(right, left));
  if (!r.reorderingSeen) {
    r.reorderingSeen = true;
    t.count('reorderingSeen');
  }
  if (r.dsackRoundOn && seqGe(c.una, r.dsackRound)) r.dsackRoundOn = false;
  if (r.dsackRoundOn) return;
  r.dsackRoundOn = true;
  r.dsackRound = c.sndMax;
  r.reoWndMult++;
  r.reoWndPersist = REO_WND_PERSIST;
  r.grew = true;
}

/**
 * §6.2 step 4: leaving fast or RTO recovery ("else", on an ACK that did not widen the
 * window); after REO_WND_PERSIST of them without a D-SACK the window returns to its base.
 */
export function rackRecoveryExit(c: Conn): void {
  if (!c.sackOk) return;
  const r = c.rack;
  if (r.grew) return;
  if (--r.reoWndPersist <= 0) {
    r.reoWndPersist = 0;
    r.reoWndMult = 1;
  }
}

/**
 * §6.2 step 5, RACK_detect_loss_and_arm_timer: marks what is lost by now and arms the
 * reordering timer. True if anything was newly marked (c.rate.newlyLost bytes).
 *
 * The RFC arms the timer for the latest deadline among the segments still waiting; this
 * arms it for the earliest, so each segment is marked when its own window ends rather
 * than with the last of its flight. The timer runs the same step and re-arms itself for
 * the next one. It is one deadline per connection: it is only moved earlier here, and a
 * wake-up that finds nothing due re-arms it (timers.ts keeps a moved deadline's old entry
 * as garbage, so an ACK does not pay a heap push to move it later).
 */
export function rackDetectLoss(t: TcpLayer, now: Instant, c: Conn): boolean {
  const r = c.rack;
  const s = c.rate;
  if (r.xmitTs === -Infinity || seqDiff(c.nxt, c.una) <= 0) {
    s.newlyLost = 0;
    t.timers.cancel(c, 'reo');
    return false;
  }
  const wnd = reoWnd(c);
  s.reoWnd = r.reorderingSeen ? wnd : 0;
  const at = s.detectLoss(now, r.xmitTs, r.endSeq, r.rtt + wnd, c.nxt, c.sack.ranges);
  if (at === Infinity) t.timers.cancel(c, 'reo');
  else if (at < c.timers.reo) t.timers.arm(c, 'reo', at);
  return s.newlyLost > 0;
}

/**
 * §6.3 on a retransmission timeout: the first outstanding segment is lost, the others only
 * if sent at least RACK.rtt + RACK.reo_wnd ago; the rest may still arrive. (Call with the
 * connection already in RTO recovery, so the window is the one of §6.2 step 4 for it.)
 */
export function rackMarkLossesOnRto(now: Instant, c: Conn): void {
  c.rate.markLostOnRto(now, c.rack.rtt + reoWnd(c), c.nxt);
}

/**
 * §7.2: a probe may be scheduled while the connection is open (not in fast or RTO
 * recovery) and nothing is SACKed (RACK.segs_sacked = 0: RACK's timer covers that case),
 * with no probe outstanding and data in flight.
 *
 * Also once our FIN is sent (FIN-WAIT-1, CLOSING, LAST-ACK): §7 does not stop at the FIN,
 * and a short connection's last data segment and FIN are its whole tail, with nothing sent
 * after them whose SACK could show them lost (§6.2). Without a probe each such loss costs an
 * RTO: measured behind a wireguard-go peer that drops datagrams at its full receive buffer
 * (bench/connrate.ts, 100 clients), every round's p99 sat at the 200 ms floor. The probe is
 * then the last data segment with the FIN, or the FIN alone (recovery.ts sendProbe).
 *
 * And one case §7.2 leaves to fast recovery, where fast recovery is stuck: nothing is
 * marked lost and waiting, and RACK has no segment to time (its timer is idle), yet data is
 * in flight. Then every segment still unaccounted for was sent after the newest one
 * delivered, typically the retransmission of the last hole, and nothing sent later can be
 * delivered to show it lost (§6.2 needs that). Without a probe that costs an RTO (200 ms at
 * least), measured in the simulator at the end of most transfers at 5 % loss; with it, about
 * 2 × SRTT. The probe is an ordinary TLP (§7.3, §7.4); its repair counts as a lost
 * retransmission (recovery.ts tlpLossResponse).
 */
export function tlpEligible(c: Conn): boolean {
  if (!c.sackOk || !c.hasRecords || c.rack.tlpOn || c.rtoRecovery || seqDiff(c.sndMax, c.una) <= 0) return false;
  if (c.state === 'ESTABLISHED' || c.state === 'CLOSE-WAIT') {
    if (c.sbuf.length === 0) return false;
  } else if (!(c.finSent && (c.state === 'FIN-WAIT-1' || c.state === 'CLOSING' || c.state === 'LAST-ACK'))) return false;
  const s = c.rate;
  if (c.inRecovery) return s.lostBytes === 0 && c.timers.reo === NEVER && c.pipe() > 0;
  return s.sackedSegs === 0;
}

/**
 * §7.2 TLP_calc_PTO, from the last time the probe timer was (re)started (c.ptoFrom): 2 × SRTT,
 * plus TLP.max_ack_delay when one segment is in flight (its ACK may be delayed), 1 s without
 * an SRTT. NEVER when no probe may be sent now. The caller bounds it by the RTO's expiry.
 *
 * TLP.max_ack_delay is the peer's longest ACK delay if the sender knows it, else the worst
 * case, 200 ms. We take the delayed-ACK time this stack uses itself (layer option
 * delayedAckMs, 40 ms, Linux's TCP_DELACK_MIN): measured in the simulator, a lone lost last
 * segment then costs about 2 SRTT + 40 ms instead of an RTO (the 200 ms case caps at the
 * RTO's expiry), and a probe sent too early to a slower peer costs one segment and a D-SACK
 * (§7.4.2 case 1: no window cut).
 */
export function ptoDeadline(t: TcpLayer, c: Conn): number {
  if (c.ptoFrom === NEVER || !tlpEligible(c)) return NEVER;
  let pto = ptoLowerBound(c);
  if (c.rtt.srtt > 0 && seqDiff(c.sndMax, c.una) <= c.effMss) pto += t.opts.delayedAckMs;
  return c.ptoFrom + pto;
}

/** The PTO without its one-segment allowance: no probe can be due before ptoFrom plus this. */
export function ptoLowerBound(c: Conn): number {
  const srtt = c.rtt.srtt;
  return srtt > 0 ? Math.max(2 * srtt, PTO_FLOOR_MS) : 1000;
}

/**
 * §7.4.2 TLP_process_ack, before the cumulative ACK moves SND.UNA. `priorUna` is SND.UNA
 * before this ACK, `dsackRight` the right edge of its D-SACK block (-1 without one), `sack`
 * whether it carried SACK blocks. True when the probe repaired a loss: the original or its
 * ACK was lost, so the caller answers as to any loss (§7.4.2 "invoke congestion control").
 */
export function tlpOnAck(c: Conn, ack: number, priorUna: number, dsackRight: number, sack: boolean): boolean {
  const r = c.rack;
  if (!r.tlpOn) return false;
  // A D-SACK for the probe: the original had arrived, the probe was the duplicate (case 1).
  if (r.tlpRetrans && dsackRight === r.tlpEnd) {
    r.tlpOn = false;
    return false;
  }
  if (seqLt(ack, r.tlpEnd)) return false;
  if (!r.tlpRetrans) {
    r.tlpOn = false; // new data as the probe: RACK judges its ACK like any other
    return false;
  }
  if (seqGt(ack, r.tlpEnd)) {
    r.tlpOn = false; // acknowledged beyond the probe with no D-SACK for it: it repaired a loss
    return true;
  }
  // Exactly up to the probe: a duplicate ACK without SACK blocks means both copies arrived
  // (case 2); otherwise wait, a D-SACK or an ACK beyond the probe will tell.
  if (ack === priorUna && !sack) r.tlpOn = false;
  return false;
}
