/**
 * Segment arrival for a connection (RFC 9293 §3.10.7.3-4): SYN-SENT, PAWS (RFC 7323 §5),
 * the acceptability test, RST and SYN in synchronized states hardened per RFC 5961
 * (challenge ACKs, rate-limited per §7), completing a passive open, then the ACK
 * (snd.ts), the data (rcv.ts) and the FIN, and TIME-WAIT's answers.
 */
import type { Instant } from '../../util/time.js';
import { ACK, FIN, RST, SYN, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, type TcpSegmentInfo } from '../../wire/tcp.js';
import type { TcpErrorCode } from '../types.js';
import { CHALLENGE_ACKS_PER_SEC } from './constants.js';
import { canReceive, type Conn } from './conn.js';
import { sendRst, sendSyn } from './output.js';
import { processAck } from './snd.js';
import { noteDuplicate, receiveData } from './rcv.js';
import { acceptSynOptions, enqueueAccept } from './accept.js';
import type { TcpLayer } from './layer.js';

/** RFC 5961 §7: a challenge ACK, within CHALLENGE_ACKS_PER_SEC per connection. */
export function challengeAck(t: TcpLayer, now: Instant, c: Conn): void {
  c.challengeTokens = Math.min(CHALLENGE_ACKS_PER_SEC, c.challengeTokens + ((now - c.challengeAt) * CHALLENGE_ACKS_PER_SEC) / 1000);
  c.challengeAt = now;
  if (c.challengeTokens < 1) return t.count('challengeAckLimited');
  c.challengeTokens--;
  t.count('challengeAcks');
  c.ackNow = true;
  t.markDirty(c);
}

/**
 * May this SYN start a new incarnation of a connection in TIME-WAIT (RFC 6191 §2, and
 * RFC 1122 §4.2.2.13 without timestamps)? Yes when its timestamp is newer than the last
 * one seen, or (timestamps equal, or not used by the new SYN) its sequence number lies
 * beyond the last one seen: no old duplicate can then be taken for new data. Without
 * this, a client that reuses its port soon after a close waits a SYN timeout (~1 s).
 */
export function timeWaitReusable(c: Conn, h: TcpSegmentInfo): boolean {
  if (c.state !== 'TIME-WAIT' || (h.flags & (SYN | ACK | RST | FIN)) !== SYN) return false;
  if (c.tsOk && h.tsVal !== undefined) {
    if (seqGt(h.tsVal, c.tsRecent)) return true; // timestamps compare modulo 2^32 (RFC 7323 §5.2)
    if (h.tsVal !== c.tsRecent) return false;
  }
  return seqGt(h.seq, c.rcvNxt);
}

/**
 * A segment that fails PAWS (RFC 7323 §5.3 R1) only because ACKs were reordered on the way:
 * a pure ACK, at RCV.NXT, that acknowledges nothing new (SEG.ACK at most SND.UNA and no older
 * than a send window before it, RFC 5961 §5), whose TSval is behind TS.Recent by less than one
 * RTO. PAWS guards against an old duplicate from before the sequence space wrapped (§5.1),
 * which needs 2^32 bytes to have gone by since it was sent, not one RTO; and this segment
 * moves neither RCV.NXT nor SND.UNA. Dropping it loses what later ACKs may not repeat: SACK
 * blocks (a receiver reports only its most recent few, RFC 2018 §4), D-SACKs, and with them
 * RACK's evidence of delivery (RFC 8985 §6.2). Linux exempts the same segments (its
 * "disordered but harmless" ACKs). Processed, it changes neither TS.Recent nor the send
 * window: both are older than the ones in use.
 */
function disorderedAck(c: Conn, h: TcpSegmentInfo, len: number): boolean {
  if (len !== 0 || !(h.flags & ACK) || h.seq !== c.rcvNxt) return false;
  if (c.state === 'SYN-RECEIVED') return false;
  if (seqGt(h.ack, c.una) || seqLt(h.ack, seqAdd(c.una, -Math.max(c.sndWnd, c.effMss)))) return false;
  // TSval units are the peer's (RFC 7323 §5.4 allows 1 ms to 1 s a tick); at 1 ms, the usual
  // clock, this bounds the exemption to ACKs sent within an RTO of the newest one seen.
  return seqDiff(c.tsRecent, h.tsVal!) <= c.rtt.rto;
}

export function segmentArrives(t: TcpLayer, now: Instant, c: Conn, h: TcpSegmentInfo, payload: Uint8Array): void {
  const f = h.flags;
  if (c.state === 'SYN-SENT') return synSentArrives(t, now, c, h);
  const len = payload.length + (f & SYN ? 1 : 0) + (f & FIN ? 1 : 0);
  // PAWS (RFC 7323 §5.3): an old timestamp means an old duplicate, unless it is only a late ACK.
  let disordered = false;
  if (c.tsOk && h.tsVal !== undefined && !(f & RST) && seqLt(h.tsVal, c.tsRecent)) {
    if (disorderedAck(c, h, len)) {
      disordered = true;
      t.count('pawsDisorderedAcks');
    } else {
      t.drop('drop.paws', c, h);
      // Throttled as below: two ends whose TS.Recent a spoofed timestamp moved ahead would otherwise
      // trade PAWS-dropped ACKs for ever (found by test/fuzz).
      if (payload.length === 0 || f & SYN) return challengeAck(t, now, c);
      // Data already received, its TSval older than a later copy's: the original of a segment
      // resent before it arrived (the path held it back). The ACK that R1 sends reports it as a
      // D-SACK (RFC 2883 §4), as for any duplicate: without one the sender never learns the
      // retransmission was spurious, so it neither undoes the window cut (RFC 3708) nor widens
      // RACK's reordering window (RFC 8985 §6.2 step 4), and resends every late segment again.
      // Only within a receive buffer below RCV.NXT: PAWS's own old duplicates, from before the
      // sequence space wrapped, may lie anywhere.
      if (seqLt(h.seq, c.rcvNxt) && seqGe(h.seq, seqAdd(c.rcvNxt, -c.rbuf.max))) {
        const end = seqAdd(h.seq, payload.length);
        noteDuplicate(t, c, h.seq, seqLt(end, c.rcvNxt) ? end : c.rcvNxt);
      }
      c.ackNow = true;
      t.markDirty(c);
      return;
    }
  }
  // Acceptability (RFC 9293 §3.10.7.4, first check).
  const wnd = c.rcvWindow();
  const seq = h.seq;
  let ok: boolean;
  if (len === 0) ok = wnd === 0 ? seq === c.rcvNxt : seqGe(seq, c.rcvNxt) && seqLt(seq, seqAdd(c.rcvNxt, wnd)) || seq === c.rcvNxt;
  else ok = wnd > 0 && ((seqGe(seq, c.rcvNxt) && seqLt(seq, seqAdd(c.rcvNxt, wnd))) || (seqGe(seqAdd(seq, len - 1), c.rcvNxt) && seqLt(seqAdd(seq, len - 1), seqAdd(c.rcvNxt, wnd))));
  if (!ok) {
    if (f & RST) return t.drop('drop.rstOutOfWindow', c, h);
    t.drop('drop.outOfWindow', c, h);
    // Data wholly below RCV.NXT arrived before: an old duplicate, reported as a D-SACK.
    if (payload.length > 0 && seqLe(seqAdd(seq, payload.length), c.rcvNxt)) noteDuplicate(t, c, seq, seqAdd(seq, payload.length));
    if (c.state === 'TIME-WAIT' && f & FIN) t.timers.arm(c, 'timewait', now + t.opts.timeWaitMs);
    // A segment without data, or a SYN, may be one half of an ACK (or SYN-ACK) loop with a
    // desynchronized peer, each end answering the other's answer (found by test/fuzz): the answer
    // is throttled like a challenge ACK (RFC 5961 §7; Linux's tcp_invalid_ratelimit). Other data
    // is always acknowledged at once (a spurious retransmission needs its ACK).
    if (payload.length === 0 || f & SYN) return challengeAck(t, now, c);
    c.ackNow = true;
    t.markDirty(c);
    return;
  }
  // RST (RFC 5961 §3.2): exact match resets, in-window gets a challenge ACK.
  if (f & RST) {
    if (seq !== c.rcvNxt) return challengeAck(t, now, c);
    t.count('rstReceived');
    if (c.state === 'SYN-RECEIVED' && c.listener) return t.destroy(c, undefined); // back to LISTEN
    const err: TcpErrorCode | undefined = c.state === 'CLOSING' || c.state === 'LAST-ACK' || c.state === 'TIME-WAIT' ? undefined : 'ECONNRESET';
    return t.destroy(c, err);
  }
  // SYN in a synchronized state (RFC 5961 §4): challenge ACK.
  if (f & SYN) {
    if (c.state === 'SYN-RECEIVED' && c.passive && seq === c.irs) {
      c.ackNow = true; // a retransmitted SYN: answer with the SYN-ACK again
      t.markDirty(c);
      return;
    }
    return challengeAck(t, now, c);
  }
  if (!(f & ACK)) return t.drop('drop.noAck', c, h);
  // TS.Recent never moves back (RFC 7323 §4.3): a disordered ACK carries an older TSval.
  if (c.tsOk && h.tsVal !== undefined && seqLe(seq, c.rcvNxt) && !disordered) c.tsRecent = h.tsVal;
  c.lastActivity = now;
  if (c.keepaliveMs > 0) {
    c.keepaliveSent = 0;
    t.timers.arm(c, 'keepalive', now + c.keepaliveMs);
  }

  if (c.state === 'SYN-RECEIVED') {
    if (!(seqGt(h.ack, c.una) && seqLe(h.ack, c.nxt))) {
      sendRst(t, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, h.ack, 0, false);
      return;
    }
    c.state = 'ESTABLISHED';
    c.una = h.ack;
    c.sndWnd = h.window << c.sndScale;
    c.wl1 = seq;
    c.wl2 = h.ack;
    t.timers.cancel(c, 'rto');
    c.retries = 0;
    if (c.listener) {
      c.listener.synLeave(c); // its peer's share of the SYN queue is free again
      if (c.listener.queue.length >= c.listener.backlog || c.listener.closed) {
        t.drop('drop.acceptQueueFull', c, h);
        sendRst(t, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
        return t.destroy(c, undefined);
      }
      enqueueAccept(t, c.listener, c);
    } else {
      t.emit({ type: 'tcp-connected', conn: c }); // simultaneous open
    }
  } else if (!processAck(t, now, c, h, disordered)) return;

  // Segment text (RFC 9293 §3.10.7.4, seventh check).
  if (payload.length > 0 && canReceive(c.state)) receiveData(t, now, c, seq, payload);
  else if (payload.length > 0) t.drop('drop.dataAfterFin', c, h);

  // FIN, once everything before it has arrived.
  if (f & FIN && seqAdd(seq, payload.length) === c.rcvNxt && !c.finReceived) {
    c.finReceived = true;
    c.rcvNxt = seqAdd(c.rcvNxt, 1);
    c.ackNow = true;
    t.markDirty(c);
    t.readable(c);
    switch (c.state) {
      case 'ESTABLISHED':
        c.state = 'CLOSE-WAIT';
        break;
      case 'FIN-WAIT-1':
        c.state = 'CLOSING';
        break;
      case 'FIN-WAIT-2':
        t.enterTimeWait(now, c);
        break;
      default:
        break;
    }
  } else if (f & FIN && c.state === 'TIME-WAIT') {
    c.ackNow = true;
    t.markDirty(c);
    t.timers.arm(c, 'timewait', now + t.opts.timeWaitMs);
  }
}

export function synSentArrives(t: TcpLayer, now: Instant, c: Conn, h: TcpSegmentInfo): void {
  const f = h.flags;
  if (f & ACK && (seqLe(h.ack, c.iss) || seqGt(h.ack, c.nxt))) {
    if (!(f & RST)) sendRst(t, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, h.ack, 0, false);
    return t.drop('drop.synSentBadAck', c, h);
  }
  if (f & RST) {
    if (f & ACK) return t.destroy(c, 'ECONNREFUSED');
    return;
  }
  if (!(f & SYN)) return;
  acceptSynOptions(t, c, h);
  if (!c.wscaleOk) c.rcvScale = 0;
  c.irs = h.seq;
  c.rcvNxt = seqAdd(h.seq, 1);
  c.sndWnd = h.window; // unscaled in a SYN
  c.wl1 = h.seq;
  c.wl2 = h.ack;
  if (f & ACK) {
    c.una = h.ack;
    c.state = 'ESTABLISHED';
    t.timers.cancel(c, 'rto');
    c.retries = 0;
    // The SYN's round trip, unless it was sent again (the timing is then discarded, Karn);
    // a timestamp echo names the SYN it answers, so it is a sample either way (RFC 7323 §4).
    c.rtt.acked(h.ack, now);
    if (c.tsOk && h.tsEcr) c.rtt.sample(now - h.tsEcr);
    c.ackNow = true;
    t.markDirty(c);
    t.emit({ type: 'tcp-connected', conn: c });
  } else {
    // Simultaneous open (RFC 9293 §3.5): our SYN's timing ends here (no ACK will sample it).
    c.rtt.discard();
    c.state = 'SYN-RECEIVED';
    sendSyn(t, now, c, true);
  }
}
