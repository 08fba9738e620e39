/**
 * Loss recovery: what the sender does once a loss is known. With SACK, RACK-TLP (RFC 8985,
 * rack.ts) finds the losses: fast recovery (RFC 6675 §5) retransmits the segments it marks,
 * lost retransmissions included (§6.2, with the extra window cut of §9.3), the tail loss
 * probe (§7) turns a silent tail into ACKs, and a timeout marks only what is overdue (§6.3).
 * Without SACK: fast retransmit on three duplicate ACKs and NewReno's partial ACKs (RFC 5681
 * §3.2, RFC 6582). Both: undo of a spurious recovery on D-SACK (RFC 2883, RFC 3708,
 * RFC 4015) and the retransmission timeout (RFC 6298 §5, RFC 5681 §3.1).
 */
import type { Instant } from '../../util/time.js';
import { ACK, FIN, seqAdd, seqDiff, seqGe, seqLt } from '../../wire/tcp.js';
import { MAX_UNDO_TRACKED, NEVER } from './constants.js';
import type { Conn } from './conn.js';
import { emitSegment, sendRst, sendSyn } from './output.js';
import { ptoDeadline, ptoLowerBound, rackDetectLoss, rackMarkLossesOnRto, rackOnDsack, rackRecoveryExit } from './rack.js';
import type { TcpLayer } from './layer.js';

/**
 * Fast recovery begins (RFC 5681 §3.2, RFC 6675 §5): the window is cut once for the losses
 * of this flight, and the first lost segment goes out at once, whatever the window (RFC 6675
 * §5 step 4.3, the fast retransmit). With SACK, the rest of what RACK marked follows as the
 * pipe allows (snd.ts flush).
 *
 * A loss-based controller's recovery is paced by PRR (RFC 6937, prrUpdate): with SACK its
 * first retransmission too goes from flush, inside the sndcnt of the ACK (or the reordering
 * timer) that began recovery, which is never less than one segment; sent here ahead of that
 * count, it would be one segment more than RFC 6937 §3.1's examples send. Without SACK, the
 * segment at una is resent here as before (flush resends nothing without SACK), and counts
 * in prr_out.
 */
export function enterRecovery(t: TcpLayer, now: Instant, c: Conn): void {
  c.inRecovery = true;
  c.partialAcks = 0;
  c.recoverSeq = c.sndMax;
  c.rexmitNext = c.una;
  c.undoState = c.cc.save();
  if (c.undoPending) c.undoPending.clear();
  else c.undoPending = new Set();
  c.cc.onLoss(now, seqDiff(c.sndMax, c.una), c.pipe(), c.rate.delivered);
  c.lastCutAt = now;
  t.count('fastRetransmits');
  const prr = c.cc.prr;
  prr?.start(seqDiff(c.sndMax, c.una)); // RecoverFS = SND.NXT - SND.UNA (RFC 6937 §3)
  if (!c.sackOk) resendUna(t, now, c);
  else if (!prr) resendFirstLost(t, now, c);
  c.ptoFrom = now; // a probe in recovery waits from the last retransmission (rack.ts tlpEligible)
}

/**
 * In a PRR recovery cwnd holds pipe + sndcnt, a send limit for the next ACK, not the
 * controller's window: that is ssthresh, the window recovery ends at (RFC 6937 §3). A
 * further cut (a lost retransmission, a timeout) starts from it, as it did before PRR;
 * from the send limit, which falls far below ssthresh after a burst of losses, CUBIC would
 * take a much smaller W_max and ssthresh (RFC 9438 §4.6-4.7) for what is one more loss.
 */
function prrWindow(c: Conn): void {
  if (c.inRecovery && c.cc.prr !== undefined) c.cc.cwnd = c.cc.ssthresh;
}

/**
 * RFC 6937 §3 on an ACK in fast recovery (`delivered`: its DeliveredData), or with 0 when a
 * recovery begins or starts over on the reordering timer: the window flush sends by becomes
 * pipe + sndcnt, so what goes out before the next ACK is sndcnt (as Linux applies PRR).
 * Without SACK there is no RFC 6675 pipe; the flight less a segment per duplicate ACK stands
 * for it (each one reports a segment that left the network, RFC 5681 §3.2 step 4). BBR has
 * no PRR.
 */
export function prrUpdate(c: Conn, delivered: number): void {
  const prr = c.cc.prr;
  if (prr === undefined || !c.inRecovery) return;
  const mss = c.effMss;
  const pipe = c.pipe();
  const estimate = c.sackOk ? pipe : Math.max(0, pipe - c.dupAcks * mss);
  const sndcnt = prr.onAck(delivered, estimate, c.cc.ssthresh, mss);
  c.cc.cwnd = Math.max(pipe + sndcnt, mss);
}

/** Leaves fast recovery: everything outstanding at its start is acknowledged (RFC 6582 §3.2 step 3). */
export function exitRecovery(c: Conn): void {
  c.inRecovery = false;
  c.cc.onRecoveryExit();
  rackRecoveryExit(c);
}

/** Sends the segment at una again and notes it as a retransmission of this recovery. */
export function resendUna(t: TcpLayer, now: Instant, c: Conn): void {
  const len = Math.min(c.effMss, c.sbuf.length);
  if (len <= 0) return;
  emitSegment(t, now, c, ACK, c.una, 0, len);
  if (seqLt(c.rexmitNext, seqAdd(c.una, len))) c.rexmitNext = seqAdd(c.una, len);
  c.rtt.resent(c.una, seqAdd(c.una, len));
  noteRetransmit(c, c.una);
}

/**
 * Sends the lowest segment RACK marked lost at or above `from`: its end, or -1 when there is
 * none (its length is then c.rate.lostLen). Its record (rate.ts) is then in flight again,
 * with this send's time.
 */
export function resendLost(t: TcpLayer, now: Instant, c: Conn, from: number): number {
  const r = c.rate;
  const seq = r.nextLost(from, c.nxt);
  if (seq < 0) return -1;
  const off = seqDiff(seq, c.una);
  const len = Math.min(r.lostLen, c.effMss, c.sbuf.length - off);
  if (len <= 0) return -1;
  emitSegment(t, now, c, ACK, seq, off, len);
  c.rtt.resent(seq, seqAdd(seq, len));
  noteRetransmit(c, seq);
  r.lostLen = len;
  return seqAdd(seq, len);
}

function resendFirstLost(t: TcpLayer, now: Instant, c: Conn): void {
  resendLost(t, now, c, c.una);
}

/** A retransmission in recovery, tracked for undo; past a bound the episode is simply not undone. */
export function noteRetransmit(c: Conn, seq: number): void {
  const p = c.undoPending;
  if (c.undoState === undefined || p === undefined) return;
  if (p.size >= MAX_UNDO_TRACKED) {
    c.undoState = undefined;
    p.clear();
  } else p.add(seq);
}

/**
 * RACK marked segments lost (RFC 8985 §6.2 step 5, from an ACK or the reordering timer).
 * Open: fast recovery starts, unless a recovery or timeout of the same flight is still
 * under way (RFC 6582 §3.2 step 1: one window cut per flight). In fast recovery, a lost
 * retransmission proves the recovery was no reordering (no undo), and is a loss in a later
 * window than the one recovery answered: RFC 8985 §9.3 asks for another congestion response
 * (as RFC 5681 §4.3 for a lost retransmission), once per window; PRR then reduces toward
 * the new ssthresh.
 * The marked segments go out from flush.
 */
export function onRackLoss(t: TcpLayer, now: Instant, c: Conn): void {
  const r = c.rate;
  if (!c.inRecovery && !c.rtoRecovery && seqGe(c.una, c.recoverSeq)) {
    enterRecovery(t, now, c);
  } else if (r.lostRetransmit) lostRetransmission(t, now, c, r.lostRetransmitSent);
  t.markDirty(c);
}

/**
 * A retransmission sent at `sentAt` was lost (onRackLoss, or repaired by a probe in
 * recovery). If it was sent after the window was last cut, it was lost in a later window:
 * cut again, and the recovery now lasts until what is outstanding now is acknowledged.
 */
function lostRetransmission(t: TcpLayer, now: Instant, c: Conn, sentAt: number): void {
  t.count('lostRetransmits');
  c.undoState = undefined; // a retransmission was lost: this recovery was real
  if (c.inRecovery && sentAt >= c.lastCutAt) {
    prrWindow(c);
    c.cc.onLoss(now, seqDiff(c.sndMax, c.una), c.pipe(), c.rate.delivered);
    c.lastCutAt = now;
    c.recoverSeq = c.sndMax;
    // PRR starts over toward the new ssthresh, from the flight now (RFC 6937 §3).
    c.cc.prr?.start(seqDiff(c.sndMax, c.una));
  }
}

/** The reordering timer (RFC 8985 §6.2): segments waiting out the window are judged again. */
export function onReoTimer(t: TcpLayer, now: Instant, c: Conn): void {
  if (!c.sackOk || !c.hasRecords || c.state === 'CLOSED') return;
  if (rackDetectLoss(t, now, c)) {
    onRackLoss(t, now, c);
    // A recovery that begins here (or starts over) has no ACK to take its sndcnt from: PRR
    // grants it the fast retransmit. In one under way cwnd stays where the last ACK left it:
    // what is newly marked lost left the pipe, and resending it in its place keeps the flight
    // as it was (Linux does the same); holding it for the next ACK could wait for ever when
    // the segments still in flight are all that could bring one.
    if (c.cc.prr?.out === 0) prrUpdate(c, 0);
  }
  armRetransmitTimer(t, c); // a probe may be due now that RACK has nothing left to time
}

/**
 * A D-SACK arrived (`l`, `r` its block): something reached the receiver twice. The
 * reordering window widens for it (RFC 8985 §6.2 step 4). If every retransmission of the
 * last recovery is reported so, the originals were only late: the window cut is undone
 * (RFC 3708 §3, RFC 4015 §3.2) and reordering is known to happen. Duplicates of anything
 * else (a tail probe, data resent after a timeout) prove nothing more.
 */
export function onDsack(t: TcpLayer, c: Conn, l: number, r: number): void {
  t.count('dsackReceived');
  if (c.sackOk && c.hasRecords) rackOnDsack(t, c, l, r);
  const p = c.undoPending;
  if (c.undoState === undefined || p === undefined || !p.delete(l) || p.size > 0) return;
  c.cc.undo(c.undoState);
  c.undoState = undefined;
  c.inRecovery = false;
  if (c.sackOk) c.rack.reorderingSeen = true;
  t.count('spuriousRecoveries');
}

/**
 * The RFC 8985 §7.4.2 answer when a tail loss probe repaired a loss: the window is cut as
 * for any loss, and the recovery is over at once (the probe was its only retransmission).
 * A probe sent in fast recovery (rack.ts tlpEligible) repaired a lost retransmission: the
 * answer is that of onRackLoss for one.
 */
export function tlpLossResponse(t: TcpLayer, now: Instant, c: Conn): void {
  if (c.inRecovery) return lostRetransmission(t, now, c, c.rack.tlpSent);
  c.cc.onLoss(now, seqDiff(c.sndMax, c.una), c.pipe(), c.rate.delivered);
  c.cc.onRecoveryExit();
  c.lastCutAt = now;
}

/** RFC 6298 §5.3: restart the retransmission timer (and the probe timer, RFC 8985 §7.2) from now. */
export function restartRto(t: TcpLayer, now: Instant, c: Conn): void {
  c.rtoAt = now + c.rtt.rto;
  c.ptoFrom = now;
  armRetransmitTimer(t, c);
}

/** RFC 6298 §5.1: a segment with data went out; start the timer if it is not running. */
export function startRto(t: TcpLayer, now: Instant, c: Conn): void {
  if (c.rtoAt !== NEVER) return;
  c.rtoAt = now + c.rtt.rto;
  armRetransmitTimer(t, c);
}

/** RFC 6298 §5.2: everything is acknowledged; the timer stops. */
export function stopRto(t: TcpLayer, c: Conn): void {
  c.rtoAt = NEVER;
  c.ptoFrom = NEVER;
  t.timers.cancel(c, 'rto');
}

/**
 * Keeps the 'rto' deadline no later than what may be due: the RTO, or the earliest a probe
 * could be (RFC 8985 §7.2, 2 × SRTT from ptoFrom). Whether a probe may really go is asked
 * when the deadline comes (onRto); so is the exact PTO. Only an earlier deadline is written
 * to the heap, so this costs a comparison per ACK; a later one is found when the earlier wakes.
 */
export function armRetransmitTimer(t: TcpLayer, c: Conn): void {
  let due = c.rtoAt;
  if (c.sackOk && c.ptoFrom !== NEVER) {
    const pto = c.ptoFrom + ptoLowerBound(c);
    if (pto < due) due = pto;
  }
  if (due < c.timers.rto) t.timers.arm(c, 'rto', due);
}

/**
 * RFC 8985 §7.3, the probe timeout expired: send one segment to draw an ACK that shows any
 * tail loss. New data if there is some the peer's window takes (it extends the flight and
 * is RACK-timed like any), else the highest segment sent again (the highest still in
 * flight: in recovery the ones above it are SACKed). Either goes out whatever the
 * congestion window. Then the RTO, not another probe, guards the flight.
 */
export function sendProbe(t: TcpLayer, now: Instant, c: Conn): void {
  const r = c.rack;
  const dataEnd = seqAdd(c.una, c.sbuf.length);
  const unsent = seqDiff(dataEnd, c.nxt);
  const wndLeft = seqDiff(seqAdd(c.una, c.sndWnd), c.nxt);
  let sent = false;
  if (unsent > 0 && wndLeft > 0 && c.nxt === c.sndMax) {
    const len = Math.min(c.effMss, unsent, wndLeft);
    emitSegment(t, now, c, ACK, c.nxt, seqDiff(c.nxt, c.una), len);
    c.nxt = c.sndMax = seqAdd(c.nxt, len);
    r.tlpRetrans = false;
    sent = true;
  } else {
    const seq = c.rate.lastInFlight(c.nxt);
    if (seq >= 0 && seqGe(seq, c.una)) {
      const off = seqDiff(seq, c.una);
      const len = Math.min(c.rate.lostLen, c.effMss, c.sbuf.length - off);
      if (len > 0) {
        c.undoState = undefined; // the probe's D-SACK must not read as one for the last recovery
        c.rate.probing = true;
        // The last data segment takes the FIN sent after it: a FIN has no send record, so
        // its SACK cannot show the data lost, and if both were lost one probe repairs both.
        emitSegment(t, now, c, c.finSent && off + len === c.sbuf.length ? FIN | ACK : ACK, seq, off, len);
        c.rate.probing = false;
        c.rtt.resent(seq, seqAdd(seq, len));
        r.tlpRetrans = true;
        sent = true;
      }
    } else if (c.finSent && c.sbuf.length === 0) {
      // All data acknowledged, the FIN not: the FIN is the last segment (rack.ts tlpEligible).
      c.undoState = undefined;
      emitSegment(t, now, c, FIN | ACK, c.una, 0, 0);
      r.tlpRetrans = true;
      sent = true;
    }
  }
  if (sent) {
    r.tlpOn = true;
    r.tlpEnd = c.sndMax;
    r.tlpSent = now;
    t.count('tailLossProbes');
  }
  c.rtoAt = now + c.rtt.rto;
  t.timers.arm(c, 'rto', c.rtoAt);
}

/**
 * The 'rto' deadline came. It may be early (armRetransmitTimer): then it is re-armed for
 * what is due. Due and a probe may be sent: the probe (RFC 8985 §7.3). Otherwise the
 * retransmission timeout. True when the connection is to send now: the caller flushes
 * (snd.ts depends on this file, not the other way round).
 */
export function onRto(t: TcpLayer, now: Instant, c: Conn): boolean {
  const handshake = c.state === 'SYN-SENT' || c.state === 'SYN-RECEIVED';
  if (!handshake) {
    const pto = ptoDeadline(t, c);
    const due = pto < c.rtoAt ? pto : c.rtoAt;
    if (due > now) {
      if (due !== NEVER) t.timers.arm(c, 'rto', due);
      return false;
    }
    if (pto !== NEVER) {
      sendProbe(t, now, c);
      return false;
    }
  }
  c.retries++;
  t.count('rtoExpired');
  if (handshake) {
    if (c.retries > t.opts.synRetries) {
      t.destroy(c, 'ETIMEDOUT');
      return false;
    }
    c.rtt.backoff();
    c.rtt.discard(); // Karn (RFC 6298 §3): the SYN-ACK may now answer either SYN
    sendSyn(t, now, c, c.state === 'SYN-RECEIVED');
    return false;
  }
  if (seqDiff(c.sndMax, c.una) === 0) {
    c.rtoAt = NEVER;
    return false;
  }
  if (c.retries > t.opts.maxRetries) {
    sendRst(t, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
    t.destroy(c, 'ETIMEDOUT');
    return false;
  }
  // RFC 6298 §5.4–5.6 and RFC 5681 §3.1: back off, collapse the window, resend from una.
  prrWindow(c);
  c.cc.onTimeout(now, seqDiff(c.sndMax, c.una), c.rate.delivered);
  c.rtt.backoff();
  c.inRecovery = false;
  c.rtoRecovery = true; // until everything outstanding now is acknowledged (RFC 6582 §3.2 step 1)
  c.undoState = undefined; // a timeout is not undone here
  if (c.sackOk) c.rack.tlpOn = false;
  c.recoverSeq = c.sndMax;
  // The scoreboard is kept: SACKed data is skipped when resending (our receivers never renege).
  c.dupAcks = 0;
  c.rtt.discard();
  if (c.sackOk && c.hasRecords && !c.finSent) {
    // RFC 8985 §6.3: only what is overdue is lost; the first segment goes again now
    // (RFC 6298 §5.4), whatever the pipe says, and the rest as the window opens.
    rackMarkLossesOnRto(now, c);
    resendFirstLost(t, now, c);
  } else rewindToUna(t, now, c);
  c.rtoAt = now + c.rtt.rto;
  c.ptoFrom = NEVER;
  t.timers.arm(c, 'rto', c.rtoAt);
  return true;
}

/**
 * Go-back-N after a timeout (RFC 5681 §3.1), without SACK or with a FIN outstanding: the
 * sender resends everything from una (skipping what was SACKed), the FIN after it.
 */
function rewindToUna(t: TcpLayer, now: Instant, c: Conn): void {
  c.nxt = c.una;
  if (c.sampling) c.rate.clearLost(); // everything from una is sent again anyway
  if (c.finSent && c.sbuf.length === 0) {
    // Only the FIN is outstanding.
    c.finSent = false;
    if (c.state === 'FIN-WAIT-1') c.state = 'ESTABLISHED';
    else if (c.state === 'LAST-ACK') c.state = 'CLOSE-WAIT';
    else if (c.state === 'CLOSING') {
      // Resend the FIN without leaving CLOSING.
      emitSegment(t, now, c, FIN | ACK, c.una, 0, 0);
      c.nxt = seqAdd(c.una, 1);
      c.finSent = true;
    }
  } else if (c.finSent) {
    c.finSent = false;
    if (c.state === 'FIN-WAIT-1') c.state = 'ESTABLISHED';
    else if (c.state === 'LAST-ACK') c.state = 'CLOSE-WAIT';
  }
}
