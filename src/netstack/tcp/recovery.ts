/**
 * Loss recovery: fast retransmit and SACK-based recovery (RFC 5681 §3.2, RFC 6582,
 * RFC 6675 §5), lost retransmissions and the reordering window (RFC 8985 §6.2-6.3),
 * undo of a spurious recovery on D-SACK (RFC 2883, RFC 3708, RFC 4015), the tail loss
 * probe (RFC 8985 §7) and the retransmission timeout (RFC 6298 §5, RFC 5681 §3.1).
 */
import type { Instant } from '../../util/time.js';
import { ACK, FIN, seqAdd, seqDiff, seqGe, seqGt, seqLt } from '../../wire/tcp.js';
import { DUP_THRESH, MAX_UNDO_TRACKED, NEVER } from './constants.js';
import { canSend, type Conn } from './conn.js';
import { emitSegment, sendRst, sendSyn } from './output.js';
import type { TcpLayer } from './layer.js';

/** Fast retransmit (RFC 5681 §3.2, RFC 6675 §5): recovery starts with the segment at una. */
export function enterRecovery(t: TcpLayer, now: Instant, c: Conn): void {
  c.inRecovery = true;
  c.partialAcks = 0;
  c.recoverSeq = c.sndMax;
  c.rexmitNext = c.una;
  t.timers.cancel(c, 'reo');
  c.undoState = c.cc.save();
  if (c.undoPending) c.undoPending.clear();
  else c.undoPending = new Set();
  c.cc.onLoss(now, seqDiff(c.sndMax, c.una), c.pipe(), c.rate.delivered);
  t.count('fastRetransmits');
  resendUna(t, now, c);
}

/** Sends the segment at una again and notes it as a retransmission of this recovery. */
export function resendUna(t: TcpLayer, now: Instant, c: Conn): void {
  const len = Math.min(c.effMss, c.sbuf.length);
  if (len <= 0) return;
  emitSegment(t, now, c, ACK, c.una, 0, len);
  if (seqLt(c.rexmitNext, seqAdd(c.una, len))) c.rexmitNext = seqAdd(c.una, len);
  noteRetransmit(t, now, c, c.una);
}

export function headLost(now: Instant, c: Conn): boolean {
  const b = c.sack.ranges;
  if (b.length > 0 && seqGt(b[b.length - 1]!, seqAdd(c.headMark, (DUP_THRESH - 1) * c.mss))) return true;
  return c.rtt.srtt > 0 && now >= headDeadline(c);
}

/** When the retransmission at una should have been acknowledged (RFC 8985 §6.3, with RTTVAR for queueing). */
export function headDeadline(c: Conn): number {
  return c.headTime + c.rtt.srtt + 4 * c.rtt.rttvar + reoWnd(c);
}

/**
 * Starts watching the retransmitted segment at una from now: by order (what has been sent
 * so far) and by time, with the timer so a lost one is found when no ACK comes either.
 */
export function watchHead(t: TcpLayer, now: Instant, c: Conn): void {
  c.headSeq = c.una;
  c.headMark = c.sndMax;
  c.headTime = now;
  if (c.rtt.srtt > 0) t.timers.arm(c, 'reo', headDeadline(c));
}

/** The retransmission at una was lost: send it again, within the same recovery (no new window cut). */
export function resendHead(t: TcpLayer, now: Instant, c: Conn): void {
  if (c.sbuf.length === 0) return;
  c.undoState = undefined; // a retransmission was lost: this recovery was real
  resendUna(t, now, c);
  t.count('lostRetransmits');
}

/** A retransmission in recovery; past a bound the episode is simply not undone. */
export function noteRetransmit(t: TcpLayer, now: Instant, c: Conn, seq: number): void {
  if (seq === c.una) watchHead(t, now, c);
  const p = c.undoPending;
  if (c.undoState === undefined || p === undefined) return;
  if (p.size >= MAX_UNDO_TRACKED) {
    c.undoState = undefined;
    p.clear();
  } else p.add(seq);
}

/** RFC 8985 §6.2: the reordering window, a quarter of the minimum RTT per step, at most SRTT. */
export function reoWnd(c: Conn): number {
  // Samples are whole milliseconds (the timestamp clock), so a sub-millisecond path counts as 1 ms.
  return Math.min((c.reoMult * Math.max(c.rtt.minRtt, 1)) / 4, Math.max(c.rtt.srtt, 1));
}

/**
 * The reordering timer: outside recovery, the hole at una has waited out the window with
 * SACKs above it; in recovery, the retransmission at una is overdue.
 */
export function onReoTimer(t: TcpLayer, now: Instant, c: Conn): void {
  if (c.inRecovery) {
    if (c.headSeq === c.una && canSend(c.state) && headLost(now, c)) {
      resendHead(t, now, c);
      t.markDirty(c);
    }
    return;
  }
  if (c.holeSince === NEVER || c.sack.ranges.length === 0 || !seqGe(c.una, c.recoverSeq) || !canSend(c.state)) return;
  enterRecovery(t, now, c);
  t.markDirty(c);
}

/**
 * A D-SACK arrived: something reached the receiver twice. If every retransmission of
 * the last recovery is reported so, the originals were only late: the window cut is
 * undone (RFC 3708 §3, RFC 4015 §3.2), reordering is known to happen, and the
 * reordering window widens (RFC 8985 §6.2). Duplicates of anything else (a tail probe,
 * data resent after a timeout) prove nothing and only count.
 */
export function onDsack(t: TcpLayer, c: Conn, l: number): void {
  t.count('dsackReceived');
  const p = c.undoPending;
  if (c.undoState === undefined || p === undefined || !p.delete(l) || p.size > 0) return;
  c.cc.undo(c.undoState);
  c.undoState = undefined;
  c.inRecovery = false;
  c.reorderSeen = true;
  c.reoMult = Math.min(c.reoMult + 1, 16);
  t.count('spuriousRecoveries');
}

/**
 * Arms the retransmission timer, or the earlier probe timeout of RFC 8985 §7.2
 * (PTO = 2 × SRTT, plus a delayed-ACK allowance when one segment is in flight) so a
 * lost tail is found in about two RTTs instead of a full RTO.
 */
export function armRto(t: TcpLayer, now: Instant, c: Conn): void {
  const flight = seqDiff(c.sndMax, c.una);
  if (c.rtt.srtt > 0 && !c.tlpDone && !c.inRecovery && c.sbuf.length > 0 && (c.state === 'ESTABLISHED' || c.state === 'CLOSE-WAIT')) {
    const pto = Math.max(10, 2 * c.rtt.srtt + (flight <= c.mss ? t.opts.delayedAckMs : 0));
    if (pto < c.rtt.rto) {
      c.tlpArmed = true;
      t.timers.arm(c, 'rto', now + pto);
      return;
    }
  }
  c.tlpArmed = false;
  t.timers.arm(c, 'rto', now + c.rtt.rto);
}

/** RFC 8985 §7.3: resend the last segment sent, to draw a SACK that reveals any tail loss. */
export function sendProbe(t: TcpLayer, now: Instant, c: Conn): void {
  c.tlpArmed = false;
  c.tlpDone = true;
  c.undoState = undefined; // a D-SACK of the probe must not count as one for the last recovery
  const dataEnd = seqAdd(c.una, c.sbuf.length);
  const end = seqLt(c.sndMax, dataEnd) ? c.sndMax : dataEnd;
  const len = Math.min(c.effMss, seqDiff(end, c.una));
  if (len > 0) {
    const seq = seqAdd(end, -len);
    emitSegment(t, now, c, ACK, seq, seqDiff(seq, c.una), len);
    t.count('tailLossProbes');
  }
  t.timers.arm(c, 'rto', now + c.rtt.rto);
}

/**
 * The retransmission timer fired. True when the connection is to resend from una now: the
 * caller flushes (snd.ts depends on this file, not the other way round).
 */
export function onRto(t: TcpLayer, now: Instant, c: Conn): boolean {
  if (c.tlpArmed) {
    sendProbe(t, now, c);
    return false;
  }
  c.retries++;
  t.count('rtoExpired');
  if (c.state === 'SYN-SENT' || c.state === 'SYN-RECEIVED') {
    if (c.retries > t.opts.synRetries) {
      t.destroy(c, 'ETIMEDOUT');
      return false;
    }
    c.rtt.backoff();
    c.rtt.discard(); // Karn (RFC 6298 §3): the SYN-ACK may now answer either SYN
    sendSyn(t, now, c, c.state === 'SYN-RECEIVED');
    return false;
  }
  if (seqDiff(c.sndMax, c.una) === 0) return false;
  if (c.retries > t.opts.maxRetries) {
    sendRst(t, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
    t.destroy(c, 'ETIMEDOUT');
    return false;
  }
  // RFC 6298 §5.4–5.6 and RFC 5681 §3.1: back off, collapse the window, resend from una.
  c.cc.onTimeout(now, seqDiff(c.sndMax, c.una), c.rate.delivered);
  c.rtt.backoff();
  c.inRecovery = false;
  c.undoState = undefined; // a timeout is not undone here
  c.holeSince = NEVER;
  t.timers.cancel(c, 'reo');
  c.recoverSeq = c.sndMax;
  // The scoreboard is kept: SACKed data is skipped when resending (our receivers never renege).
  c.dupAcks = 0;
  c.rtt.discard();
  c.nxt = c.una;
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
  t.timers.arm(c, 'rto', now + c.rtt.rto);
  return true;
}
