/**
 * The send side: what goes out when (flush: RFC 6675 §5 hole filling, congestion and
 * send windows, Nagle per RFC 896 and sender SWS avoidance per RFC 9293 §3.8.6.2.1),
 * ACK processing (RFC 9293 §3.10.7.4 fifth check, RFC 5681 duplicate ACKs, RFC 6582
 * partial ACKs), the send window update, zero-window probes (RFC 9293 §3.8.6.1) and
 * keepalives (RFC 1122 §4.2.3.6).
 */
import type { Instant } from '../../util/time.js';
import { ACK, FIN, PSH, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, type TcpSegmentInfo } from '../../wire/tcp.js';
import { DUP_THRESH, MAX_RTO, NEVER } from './constants.js';
import { canSend, type Conn } from './conn.js';
import { emitSegment, sendRst, sendSyn, tsVal } from './output.js';
import { isDsack } from './sack.js';
import { armRetransmitTimer, enterRecovery, exitRecovery, onDsack, onRackLoss, prrUpdate, resendLost, resendUna, restartRto, startRto, stopRto, tlpLossResponse } from './recovery.js';
import { rackDetectLoss, rackRecoveryExit, rackUpdate, tlpOnAck } from './rack.js';
import type { TcpLayer } from './layer.js';
import { sendQuantum } from './bbr.js';
import { challengeAck } from './input.js';

/**
 * Pacing: the sender may run ahead of the pacing schedule by one send quantum (bbr.ts
 * sendQuantum: about 1 ms at the pacing rate, 2 segments to 64 KiB). So the 'pace'
 * deadline fires at most about once per millisecond per connection, never once per segment.
 */
function paceSlack(rate: number, mss: number): number {
  return sendQuantum(rate, mss) / rate;
}

/** True (and the 'pace' deadline armed) when the schedule is more than a quantum ahead of now. */
function paceHold(t: TcpLayer, now: Instant, c: Conn, slack: number): boolean {
  if (c.paceNext <= now + slack) return false;
  // Wake when the schedule has caught up with the clock, so the next release is a whole quantum.
  if (c.timers.pace !== c.paceNext) t.timers.arm(c, 'pace', c.paceNext);
  return true;
}

/**
 * `len` bytes went out at `rate`. A sender that fell behind (a late timer, an idle spell)
 * makes up at most one quantum, so pacing never turns into a line-rate burst.
 */
function paceSent(c: Conn, now: Instant, len: number, rate: number, slack: number): void {
  c.paceNext = Math.max(c.paceNext, now - slack) + len / rate;
}

/** Sends what the windows allow: retransmissions first in recovery, then new data, then FIN, then a bare ACK if owed. */
export function flush(t: TcpLayer, now: Instant, c: Conn): void {
  if (c.state === 'SYN-SENT' || c.state === 'LISTEN' || c.state === 'CLOSED') return;
  if (c.state === 'SYN-RECEIVED') {
    if (c.ackNow) sendSyn(t, now, c, true);
    c.ackNow = false;
    return;
  }
  let sent = false;
  let newData = false;
  const mss = Math.max(64, c.effMss);
  const cwnd = c.cc.cwnd;
  // Pacing (bbr.ts; CUBIC and NewReno when PACE_LOSS_BASED): 0 means unpaced.
  // Never slower than two segments per SRTT (or per ms): a model built from a trickle of
  // application-limited samples must not hold a connection's next burst for seconds.
  let rate = c.cc.pacingRate(c.rtt.srtt);
  if (rate > 0) rate = Math.max(rate, (2 * mss) / Math.max(c.rtt.srtt, 1));
  const slack = rate > 0 ? paceSlack(rate, mss) : 0;
  // RFC 6675 §5 step (C): resend what is lost first, lowest first (NextSeg rule 1, with
  // RACK's per-segment verdict as IsLost, RFC 8985 §6.2). A resent segment is in flight
  // again, so the pipe grows as they go.
  if (c.sackOk && c.hasRecords && c.rate.lostBytes > 0) {
    let from = c.una;
    for (let guard = 0; guard < 256 && c.pipe() < cwnd; guard++) {
      if (rate > 0 && paceHold(t, now, c, slack)) break;
      const end = resendLost(t, now, c, from);
      if (end < 0) break;
      if (rate > 0) paceSent(c, now, c.rate.lostLen, rate, slack);
      from = end;
      sent = true;
    }
  }
  const dataEnd = seqAdd(c.una, c.sbuf.length); // sequence after the last queued byte
  for (;;) {
    // After a timeout, what the receiver SACKed is not sent again.
    if (c.sack.ranges.length > 0) c.nxt = c.sack.skipSacked(c.nxt);
    const unsent = seqDiff(dataEnd, c.nxt);
    if (unsent <= 0) {
      // Nothing left to send with room in the window: the application is the limit, and
      // rate samples until this flight is delivered say so (rate draft §3.4).
      if (c.ccSamples) {
        const p = c.pipe();
        if (p < cwnd) c.rate.markAppLimited(p);
      }
      break;
    }
    const inflight = c.pipe();
    const wndEdge = seqAdd(c.una, c.sndWnd);
    const wndLeft = seqDiff(wndEdge, c.nxt);
    const cwndLeft = cwnd - inflight;
    const len = Math.min(mss, unsent, wndLeft, Math.max(0, cwndLeft));
    if (len <= 0) {
      if (c.sndWnd === 0 && seqDiff(c.nxt, c.una) === 0 && c.timers.persist === NEVER) {
        c.persistBackoff = 0;
        t.timers.arm(c, 'persist', now + c.rtt.rto);
      }
      break;
    }
    // Nagle (RFC 896) and sender SWS avoidance: hold a small segment while data is in flight.
    if (len < mss && len < unsent) break; // window-limited small segment: wait for more window
    if (len < mss && !c.noDelay && seqDiff(c.nxt, c.una) > 0) break;
    if (rate > 0 && paceHold(t, now, c, slack)) break;
    const seq = c.nxt;
    const isLast = len === unsent;
    emitSegment(t, now, c, ACK | (isLast ? PSH : 0), seq, seqDiff(seq, c.una), len);
    if (rate > 0) paceSent(c, now, len, rate, slack);
    if (c.rtt.timedSeq < 0 && !c.tsOk && seqGe(seq, c.sndMax)) c.rtt.time(seq, now);
    c.nxt = seqAdd(c.nxt, len);
    if (seqGt(c.nxt, c.sndMax)) {
      c.sndMax = c.nxt;
      newData = true;
    }
    sent = true;
  }
  // RFC 8985 §7.2: new data (re)starts the probe timer (and in fast recovery, where a probe
  // waits for the last retransmission, so does a retransmission); RFC 6298 §5.1 starts the RTO.
  if (newData || (sent && c.inRecovery)) {
    c.ptoFrom = now;
    if (c.rtoAt !== NEVER) armRetransmitTimer(t, c);
  }
  if (sent) startRto(t, now, c);
  // FIN once everything queued is sent (RFC 9293 §3.10.4).
  if (c.finQueued && !c.finSent && seqDiff(dataEnd, c.nxt) <= 0) {
    emitSegment(t, now, c, FIN | ACK, c.nxt, 0, 0);
    c.finSent = true;
    c.nxt = seqAdd(c.nxt, 1);
    if (seqGt(c.nxt, c.sndMax)) c.sndMax = c.nxt;
    if (c.state === 'ESTABLISHED') c.state = 'FIN-WAIT-1';
    else if (c.state === 'CLOSE-WAIT') c.state = 'LAST-ACK';
    startRto(t, now, c);
    sent = true;
  }
  if (!sent && c.ackNow) emitSegment(t, now, c, ACK, c.nxt, 0, 0);
}

/**
 * ACK processing in synchronized states. False if the segment is to be dropped. `disordered`:
 * an ACK that arrived after a newer one (input.ts disorderedAck); its window is not applied.
 */
export function processAck(t: TcpLayer, now: Instant, c: Conn, h: TcpSegmentInfo, disordered = false): boolean {
  const ack = h.ack;
  if (seqGt(ack, c.sndMax)) {
    // Acks data never sent (RFC 9293 §3.10.7.4; RFC 5961 §5 for the lower bound): an ACK back,
    // throttled (RFC 5961 §7), or two desynchronized ends trade ACKs for ever (found by test/fuzz).
    t.drop('drop.ackUnsent', c, h);
    challengeAck(t, now, c);
    return false;
  }
  const win = h.window << c.sndScale;
  const sackedBefore = c.sack.bytes;
  // RACK-TLP (RFC 8985) needs SACK (§4) and judges the send records (conn.ts sampling),
  // which exist once the connection has sent data.
  const rack = c.sackOk && c.hasRecords;
  if (c.sampling) c.rate.beginAck(c.tsOk && h.tsEcr !== undefined ? h.tsEcr : -1, c.rtt.minRtt);
  let dsackRight = -1;
  if (rack) c.rack.grew = false;
  if (c.sackOk && h.sack) {
    const b = h.sack;
    const dsack = isDsack(b, ack);
    if (dsack) {
      dsackRight = b[1]!;
      onDsack(t, c, b[0]!, dsackRight);
    }
    // Newly SACKed segments are delivered (rate draft §3.3, RFC 8985 §6.2): read against the
    // scoreboard before it takes them.
    if (c.sampling) c.rate.sackBlocks(now, b, dsack ? 2 : 0, c.sack.ranges, c.una, c.sndMax);
    if (!c.sack.update(b, c.una, c.sndMax)) t.drop('drop.sackRanges', c, h);
  }
  const priorUna = c.una;
  // RFC 8985 §7.4: what the ACK says of an outstanding tail loss probe (before SND.UNA moves).
  if (rack && tlpOnAck(c, ack, priorUna, dsackRight, h.sack !== undefined)) tlpLossResponse(t, now, c);
  // RFC 6937 §3 DeliveredData, for PRR: SND.UNA's advance plus the change in SACKed bytes
  // (added below). Without SACK, each duplicate ACK stands for one segment delivered, and the
  // ACK that advances SND.UNA for what it covers less the segments those already stood for.
  let delivered = 0;
  if (seqGt(ack, c.una)) {
    const acked = seqDiff(ack, c.una);
    delivered = c.sackOk ? acked : Math.max(0, acked - c.dupAcks * c.effMss);
    // Our FIN takes one sequence number but no byte of the ring.
    const ringAcked = Math.min(acked, c.sbuf.length);
    c.sbuf.consume(ringAcked);
    if (c.sbuf.length === 0) t.armTrim(c, now);
    c.una = ack;
    if (c.sampling) c.rate.acked(now, ack);
    if (seqLt(c.nxt, c.una)) c.nxt = c.una;
    c.retries = 0;
    c.persistBackoff = 0;
    c.sack.prune(c.una);
    // RTT sample: timestamps (RFC 7323 §4) or one timed segment (Karn's rule).
    if (c.tsOk && h.tsEcr !== 0) c.rtt.sample(Math.max(0, tsVal(now) - h.tsEcr), now);
    else c.rtt.acked(ack, now);
    if (c.inRecovery) {
      if (seqGe(ack, c.recoverSeq)) exitRecovery(c); // RFC 6582 §3.2 step 3: full acknowledgment
      else if (!c.sackOk && seqLe(c.rexmitNext, c.una)) {
        // A partial ACK without SACK (RFC 6582 §3.2 step 5): the segment at una is lost too;
        // resend it now. With SACK, RACK says what is lost: a partial ACK that only reflects
        // delayed ACKs or reordering is no proof.
        resendUna(t, now, c);
      }
    } else {
      if (!c.ccSamples && c.cc.cwnd < c.cc.ssthresh && c.hystart.onAck(ack, c.sndMax, c.rtt.lastRtt)) {
        c.cc.ssthresh = c.cc.cwnd;
        t.count('hystartExits');
      }
      c.rtt.lastRtt = -1;
      c.cc.onAck(now, acked, c.rtt.srtt, seqDiff(c.sndMax, c.una));
    }
    if (c.rtoRecovery && seqGe(ack, c.recoverSeq)) {
      c.rtoRecovery = false;
      rackRecoveryExit(c);
    }
    c.dupAcks = 0;
    // RFC 6298 §5.2-5.3: stop the timer when all is acknowledged, else restart it (with the
    // probe timer, RFC 8985 §7.2). Without SACK, RFC 6582 §4 "impatient": in recovery only the
    // first partial ACK restarts it, so a long run of losses beyond what one retransmission per
    // RTT repairs ends in a timeout. With SACK, RACK finds every lost segment at once.
    if (seqDiff(c.sndMax, c.una) === 0) stopRto(t, c);
    else if (c.sackOk || !c.inRecovery || c.partialAcks++ === 0) restartRto(t, now, c);
    if (c.wantWritable && c.sbuf.space > 0 && canSend(c.state)) {
      c.wantWritable = false;
      t.emit({ type: 'tcp-writable', conn: c });
    }
    t.markDirty(c);
  } else if (ack === c.una && seqDiff(c.sndMax, c.una) > 0 && (c.sackOk ? c.sack.bytes > sackedBefore : win === c.sndWnd)) {
    // A duplicate ACK (RFC 5681 §2); with SACK, one that SACKs new data (RFC 6675 §2
    // "DupAck"), whatever its window (a receiver that autotunes its buffer changes the window
    // in every ACK); an ACK for a duplicate segment, carrying only a D-SACK, is no sign of loss.
    c.dupAcks++;
    if (!c.sackOk) delivered = c.effMss;
    // Without SACK, RFC 5681 §3.2: the third duplicate ACK means loss, unless a recovery of
    // this flight is still under way (RFC 6582 §3.2 step 1). With SACK, RACK decides below.
    if (!c.sackOk && !c.inRecovery && c.dupAcks >= DUP_THRESH && seqGe(c.una, c.recoverSeq)) enterRecovery(t, now, c);
    t.markDirty(c);
  }
  if (rack) {
    // RFC 8985 §6.2: the RACK segment, RTT and reordering from what this ACK delivered, then
    // every outstanding segment judged by time (step 5), the reordering timer armed for the rest.
    rackUpdate(t, now, c);
    if (rackDetectLoss(t, now, c)) onRackLoss(t, now, c);
    // Whether a probe may go changes with what this ACK did (RFC 8985 §7.2): the timer is
    // moved earlier if so (a later deadline is found when the earlier one wakes).
    armRetransmitTimer(t, c);
  }
  // Fast recovery of a loss-based controller: PRR sets what may be sent now (recovery.ts).
  if (c.inRecovery && c.cc.prr !== undefined) {
    if (c.sackOk) delivered += c.sack.bytes - sackedBefore; // net of what SND.UNA's advance pruned
    prrUpdate(c, delivered);
    t.markDirty(c);
  }
  // A model-based controller sees every ACK that delivered data, in recovery too (BBR).
  if (c.ccSamples && c.rate.rs.newlyDelivered > 0) {
    c.rate.endAck();
    c.cc.onRateSample!(now, c.rate.rs, c.rate, c.pipe(), c.rtt.srtt);
    t.markDirty(c);
  }
  // Send window update (RFC 9293 §3.10.7.4, fifth check).
  if (!disordered && (seqLt(c.wl1, h.seq) || (c.wl1 === h.seq && seqLe(c.wl2, ack)))) {
    const opened = win > c.sndWnd;
    c.sndWnd = win;
    c.wl1 = h.seq;
    c.wl2 = ack;
    if (opened) {
      t.timers.cancel(c, 'persist');
      t.markDirty(c);
    }
  }
  // Our FIN acknowledged?
  if (c.finSent && ack === c.sndMax && seqDiff(c.sndMax, c.una) === 0) {
    switch (c.state) {
      case 'FIN-WAIT-1':
        c.state = 'FIN-WAIT-2';
        break;
      case 'CLOSING':
        t.enterTimeWait(now, c);
        break;
      case 'LAST-ACK':
        t.destroy(c, undefined);
        return false;
      default:
        break;
    }
  }
  return true;
}

export function onPersist(t: TcpLayer, now: Instant, c: Conn): void {
  if (c.sndWnd > 0 || c.sbuf.length === 0 || !canSend(c.state)) return;
  // A one-byte probe beyond the window (RFC 9293 §3.8.6.1).
  emitSegment(t, now, c, ACK, c.una, 0, 1);
  c.persistBackoff = Math.min(c.persistBackoff + 1, 10);
  t.timers.arm(c, 'persist', now + Math.min(MAX_RTO, c.rtt.rto * 2 ** c.persistBackoff));
}

export function onKeepalive(t: TcpLayer, now: Instant, c: Conn): void {
  if (c.keepaliveMs === 0 || c.state !== 'ESTABLISHED') return;
  if (c.keepaliveSent >= t.opts.keepaliveProbes) {
    sendRst(t, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
    return t.destroy(c, 'ETIMEDOUT');
  }
  // RFC 1122 §4.2.3.6: a segment with SEG.SEQ = SND.NXT - 1 makes the peer answer with an ACK.
  emitSegment(t, now, c, ACK, seqAdd(c.nxt, -1), 0, 0);
  c.keepaliveSent++;
  t.timers.arm(c, 'keepalive', now + t.opts.keepaliveIntervalMs);
}
