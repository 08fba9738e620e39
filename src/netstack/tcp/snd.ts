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
import { armRto, enterRecovery, headLost, noteRetransmit, onDsack, reoWnd, resendHead, resendUna, watchHead } from './recovery.js';
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
  const mss = Math.max(64, c.effMss);
  const cwnd = c.cc.cwnd;
  // Pacing (bbr.ts; CUBIC and NewReno when PACE_LOSS_BASED): 0 means unpaced.
  // Never slower than two segments per SRTT (or per ms): a model built from a trickle of
  // application-limited samples must not hold a connection's next burst for seconds.
  let rate = c.cc.pacingRate(c.rtt.srtt);
  if (rate > 0) rate = Math.max(rate, (2 * mss) / Math.max(c.rtt.srtt, 1));
  const slack = rate > 0 ? paceSlack(rate, mss) : 0;
  // RFC 6675 §5 step (C): fill holes below the highest SACKed sequence first.
  if (c.inRecovery && c.sack.ranges.length > 0) {
    // Retransmissions count toward the pipe until acknowledged (RFC 6675 §4 "HighRxt").
    // pipe() counts what lies below rexmitNext as in flight again, so it grows as we resend.
    for (let guard = 0; guard < 256 && c.pipe() < cwnd; guard++) {
      const seq = c.sack.nextSeg(c.una, c.rexmitNext, c.mss, mss);
      if (seq < 0) break;
      if (rate > 0 && paceHold(t, now, c, slack)) break;
      const len = c.sack.segLen;
      emitSegment(t, now, c, ACK, seq, seqDiff(seq, c.una), len);
      if (rate > 0) paceSent(c, now, len, rate, slack);
      c.rexmitNext = seqAdd(seq, len);
      noteRetransmit(t, now, c, seq);
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
      if (c.sampling) {
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
    if (seqGt(c.nxt, c.sndMax)) c.sndMax = c.nxt;
    if (c.timers.rto === NEVER) armRto(t, now, c);
    sent = true;
  }
  // FIN once everything queued is sent (RFC 9293 §3.10.4).
  if (c.finQueued && !c.finSent && seqDiff(dataEnd, c.nxt) <= 0) {
    emitSegment(t, now, c, FIN | ACK, c.nxt, 0, 0);
    c.finSent = true;
    c.nxt = seqAdd(c.nxt, 1);
    if (seqGt(c.nxt, c.sndMax)) c.sndMax = c.nxt;
    if (c.state === 'ESTABLISHED') c.state = 'FIN-WAIT-1';
    else if (c.state === 'CLOSE-WAIT') c.state = 'LAST-ACK';
    if (c.timers.rto === NEVER) t.timers.arm(c, 'rto', now + c.rtt.rto);
    sent = true;
  }
  if (!sent && c.ackNow) emitSegment(t, now, c, ACK, c.nxt, 0, 0);
}

/** ACK processing in synchronized states. False if the segment is to be dropped. */
export function processAck(t: TcpLayer, now: Instant, c: Conn, h: TcpSegmentInfo): boolean {
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
  if (c.sampling) c.rate.beginAck();
  if (c.sackOk && h.sack) {
    const b = h.sack;
    const dsack = isDsack(b, ack);
    if (dsack) onDsack(t, c, b[0]!);
    // Newly SACKed segments are delivered (rate draft §3.3): read against the scoreboard before it takes them.
    if (c.sampling) c.rate.sackBlocks(now, b, dsack ? 2 : 0, c.sack.ranges, c.una, c.sndMax);
    if (!c.sack.update(b, c.una, c.sndMax)) t.drop('drop.sackRanges', c, h);
  }
  if (c.inRecovery && ack === c.una && c.headSeq === c.una && headLost(now, c)) resendHead(t, now, c);
  if (seqGt(ack, c.una)) {
    // A hole that filled without a retransmission was reordering, not loss (RFC 8985 §6.2).
    if (c.holeSince !== NEVER && !c.inRecovery && !c.reorderSeen) {
      c.reorderSeen = true;
      t.count('reorderingSeen');
    }
    const acked = seqDiff(ack, c.una);
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
    // The SACKs above the next hole came no later than those above this one.
    if (c.sack.ranges.length === 0) {
      c.holeSince = NEVER;
      t.timers.cancel(c, 'reo');
    }
    // RTT sample: timestamps (RFC 7323 §4) or one timed segment (Karn's rule).
    if (c.tsOk && h.tsEcr !== 0) c.rtt.sample(Math.max(0, tsVal(now) - h.tsEcr));
    else c.rtt.acked(ack, now);
    if (c.inRecovery) {
      if (seqGe(ack, c.recoverSeq)) {
        c.inRecovery = false; // RFC 6582 §3.2 step 3: full acknowledgment
        c.cc.onRecoveryExit();
      } else if (c.sackOk && seqGt(c.rexmitNext, c.una) && c.headSeq !== c.una) {
        // The new head was retransmitted already: watch it as above, from what is sent now.
        watchHead(t, now, c);
      } else if (!c.sackOk && seqLe(c.rexmitNext, c.una)) {
        // A partial ACK (RFC 6582 §3.2 step 5): the segment at una is lost too; resend it now.
        // With SACK the scoreboard says what is lost (flush, RFC 6675 NextSeg): a partial ACK
        // that only reflects delayed ACKs or reordering is no proof, and resending on it sent
        // duplicates of segments still in flight.
        resendUna(t, now, c);
      }
    } else {
      if (!c.sampling && c.cc.cwnd < c.cc.ssthresh && c.hystart.onAck(ack, c.sndMax, c.rtt.lastRtt)) {
        c.cc.ssthresh = c.cc.cwnd;
        t.count('hystartExits');
      }
      c.rtt.lastRtt = -1;
      c.cc.onAck(now, acked, c.rtt.srtt, seqDiff(c.sndMax, c.una));
    }
    c.dupAcks = 0;
    c.tlpDone = false; // new data acknowledged: the next tail may be probed again
    // RFC 6582 §4 "impatient": in recovery only the first partial ACK re-arms the timer, so a
    // long run of losses beyond the SACKed data ends in a timeout instead of one segment per RTT.
    if (!c.inRecovery) {
      if (seqDiff(c.sndMax, c.una) > 0) armRto(t, now, c);
      else {
        c.tlpArmed = false;
        t.timers.arm(c, 'rto', NEVER);
      }
    } else if (c.partialAcks++ === 0) t.timers.arm(c, 'rto', seqDiff(c.sndMax, c.una) > 0 ? now + c.rtt.rto : NEVER);
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
    if (c.holeSince === NEVER && c.sack.bytes > 0) c.holeSince = now;
    // RFC 6675 §5: DupThresh duplicate ACKs, or that many segments' worth of SACKed data.
    const lostBySack = c.sackOk && c.sack.bytes > DUP_THRESH * c.mss;
    // RFC 6582 §3.2 step 1: no new recovery until everything outstanding at the last loss is acknowledged.
    if (!c.inRecovery && (c.dupAcks >= DUP_THRESH || lostBySack) && seqGe(c.una, c.recoverSeq)) {
      const wait = c.reorderSeen && c.holeSince !== NEVER ? c.holeSince + reoWnd(c) - now : 0;
      if (wait <= 0) enterRecovery(t, now, c);
      else if (c.timers.reo === NEVER) t.timers.arm(c, 'reo', now + wait);
    }
    t.markDirty(c);
  }
  // A model-based controller sees every ACK that delivered data, in recovery too (BBR).
  if (c.sampling && c.rate.rs.newlyDelivered > 0) {
    c.rate.endAck();
    c.cc.onRateSample!(now, c.rate.rs, c.rate, c.pipe(), c.rtt.srtt);
    t.markDirty(c);
  }
  // Send window update (RFC 9293 §3.10.7.4, fifth check).
  if (seqLt(c.wl1, h.seq) || (c.wl1 === h.seq && seqLe(c.wl2, ack))) {
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
