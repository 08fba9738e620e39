/**
 * One TCP connection's state (RFC 9293 §3.3.1 sequence spaces, options, loss recovery,
 * timers) and the TcpConnection methods the application calls. The rules that change
 * this state live by job in the files beside it: input.ts, snd.ts, rcv.ts, recovery.ts.
 */
import type { Instant } from '../../util/time.js';
import type { IpAddr } from '../../util/ip.js';
import type { TcpConnection, TcpErrorCode, TcpState } from '../types.js';
import { ByteRing } from './ring.js';
import { createCongestionControl, type CcState, type CongestionControl } from './congestion.js';
import { HyStart } from './hystart.js';
import { CHALLENGE_ACKS_PER_SEC, DEFAULT_MSS, IP4_TCP, IP6_TCP, NEVER, TS_OPTION_LEN } from './constants.js';
import { noTimers } from './timers.js';
import { RttEstimator } from './rtt.js';
import { RateSampler } from './rate.js';
import { randomInt } from '../../util/rng.js';
import { Scoreboard } from './sack.js';
import { sendRst } from './output.js';
import type { Listener } from './accept.js';
import type { TcpLayer } from './layer.js';

export interface OooSegment {
  seq: number;
  data: Uint8Array;
}

const UNUSED_SAMPLER = new RateSampler();

let nextId = 1;
/** Ids for connections and listeners, one sequence. */
export function newId(): number {
  return nextId++;
}

export class Conn implements TcpConnection {
  readonly id = newId();
  state: TcpState = 'CLOSED';
  error: TcpErrorCode | undefined;
  readonly key: string;
  listener: Listener | undefined;
  accepted = false;
  /** Opened by a SYN we received (from a listener or a gateway flow), not by connect(). */
  passive = false;

  // Send sequence space (RFC 9293 §3.3.1).
  iss = 0;
  una = 0;
  nxt = 0;
  sndMax = 0; // highest sequence sent + 1
  sndWnd = 0;
  wl1 = 0;
  wl2 = 0;
  sndScale = 0;
  rcvScale = 0;
  mss = DEFAULT_MSS;
  peerMss = DEFAULT_MSS;
  readonly sbuf: ByteRing;
  finQueued = false;
  finSent = false;
  // Receive sequence space.
  irs = 0;
  rcvNxt = 0;
  readonly rbuf: ByteRing;
  ooo: OooSegment[] = [];
  oooBytes = 0;
  /** The sequence ranges the out-of-order segments cover (ranges.ts), one per hole above rcvNxt. */
  oooRanges: number[] = [];
  /** Starts of the latest out-of-order arrivals, newest first: RFC 2018 §4 orders SACK blocks by them. */
  sackRecent: number[] = [];
  finReceived = false;
  lastAdvertised = 0;
  // Options.
  tsOk = false;
  tsRecent = 0;
  sackOk = false;
  wscaleOk = false;
  // Loss recovery (RFC 6675): what the peer SACKed above una.
  readonly sack = new Scoreboard();
  inRecovery = false;
  /** Slow-start exit on rising delay (RFC 9406), fed the last RTT sample (rtt.lastRtt). */
  readonly hystart = new HyStart();
  /** Tail loss probe (RFC 8985 §7): the armed 'rto' deadline is a probe timeout; one probe per flight. */
  tlpArmed = false;
  tlpDone = false;
  partialAcks = 0;
  recoverSeq = 0;
  /** RFC 2883 D-SACK: a duplicate range received, reported first in the next ACK. */
  dsackL = 0;
  dsackR = 0;
  dsackPending = false;
  /**
   * Undo of a spurious recovery (detection by DSACK, RFC 3708; response, RFC 4015): the
   * congestion state before it, and which of its retransmissions are still unconfirmed.
   */
  undoState: CcState | undefined;
  /** Starts of this recovery's retransmissions not yet reported back as duplicates. */
  undoPending: Set<number> | undefined; // made at the first recovery: idle connections hold none
  /**
   * Reordering (RFC 8985 §6.2): once seen, a hole counts as lost only when the first SACK
   * above it is reoMult × minRtt/4 old (at most SRTT); holeSince is when that SACK came.
   */
  reorderSeen = false;
  reoMult = 1;
  holeSince = NEVER;
  /**
   * Lost retransmissions (RFC 8985 §6.3): headSeq is the retransmitted segment at una,
   * headMark what had been sent and headTime the time when it went out. Once SACKs cover
   * data well above the mark, or ACKs still come an RTT (with its variance and the
   * reordering window) after it while una stays, the retransmission was lost.
   */
  headSeq = -1;
  headMark = 0;
  headTime = 0;
  rexmitNext = 0;
  dupAcks = 0;
  // RTT (RFC 6298).
  readonly rtt = new RttEstimator();
  retries = 0;
  cc: CongestionControl;
  /**
   * Delivery-rate samples (rate.ts) for a model-based controller; `sampling` is false for
   * CUBIC and NewReno, which need none, so their hot path pays nothing for it and they share
   * one sampler that is never fed (memory per idle connection).
   */
  readonly rate: RateSampler;
  readonly sampling: boolean;
  /** Pacing (snd.ts): the time the next segment is due at the pacing rate. */
  paceNext = 0;
  // Timers.
  readonly timers = noTimers();
  persistBackoff = 0;
  keepaliveMs = 0;
  keepaliveSent = 0;
  lastActivity = 0;
  // Output state.
  ackNow = false;
  segsSinceAck = 0;
  noDelay = true;
  wantWritable = false;
  readableNotified = false;
  challengeTokens = CHALLENGE_ACKS_PER_SEC;
  challengeAt = 0;
  closedEmitted = false;

  constructor(
    readonly layer: TcpLayer,
    readonly localAddr: IpAddr,
    readonly localPort: number,
    readonly remoteAddr: IpAddr,
    readonly remotePort: number,
  ) {
    this.key = connKey(localAddr, localPort, remoteAddr, remotePort);
    this.sbuf = new ByteRing(layer.opts.sendBufferMax);
    this.rbuf = new ByteRing(layer.opts.recvBufferMax);
    const v4 = localAddr.length === 4;
    this.mss = layer.opts.mtu - (v4 ? IP4_TCP : IP6_TCP);
    this.cc = this.newCongestionControl();
    this.sampling = this.cc.onRateSample !== undefined;
    this.rate = this.sampling ? new RateSampler() : UNUSED_SAMPLER;
  }

  // --- TcpConnection --------------------------------------------------------------

  get sendSpace(): number {
    if (this.finQueued || !canSend(this.state)) return 0;
    return this.sbuf.space;
  }
  get sendQueued(): number {
    return this.sbuf.length;
  }
  get recvAvailable(): number {
    return this.rbuf.length;
  }
  get recvEnded(): boolean {
    return this.finReceived && this.rbuf.length === 0;
  }

  send(now: Instant, data: Uint8Array): number {
    if (!canSend(this.state) || this.finQueued) {
      if (this.state === 'CLOSED' && this.error) return 0;
      if (this.finQueued) return 0;
    }
    if (!canSend(this.state)) return 0;
    const n = this.sbuf.push(data);
    if (n < data.length) this.wantWritable = true;
    if (n > 0) {
      this.lastActivity = now;
      this.layer.markDirty(this);
    }
    return n;
  }

  recv(max?: number): Uint8Array | undefined {
    const n = Math.min(this.rbuf.length, max ?? this.rbuf.length);
    if (n === 0) {
      this.readableNotified = false;
      return undefined;
    }
    const out = this.rbuf.take(n);
    if (this.rbuf.length === 0) {
      this.readableNotified = false;
      this.layer.armTrim(this, this.lastActivity);
    }
    // Window update when reading opened the window a lot (RFC 9293 §3.8.6.2.2 receiver SWS avoidance).
    const wnd = this.rcvWindow();
    if (wnd - this.lastAdvertised >= Math.min(this.rbuf.max / 2, 2 * this.mss) && canReceive(this.state)) {
      this.ackNow = true;
      this.layer.markDirty(this);
    }
    return out;
  }

  shutdown(now: Instant): void {
    if (this.finQueued) return;
    switch (this.state) {
      case 'SYN-SENT':
        this.layer.destroy(this, undefined);
        return;
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
      case 'CLOSE-WAIT':
        this.finQueued = true;
        this.layer.markDirty(this);
        return;
      default:
        return;
    }
  }

  abort(now: Instant): void {
    if (this.state === 'CLOSED') return;
    if (this.state !== 'SYN-SENT' && this.state !== 'LISTEN' && this.state !== 'TIME-WAIT') sendRst(this.layer, this.localAddr, this.remoteAddr, this.localPort, this.remotePort, this.nxt, this.rcvNxt, true);
    this.layer.destroy(this, undefined);
  }

  setNoDelay(noDelay: boolean): void {
    this.noDelay = noDelay;
    this.layer.markDirty(this);
  }

  setKeepAlive(enable: boolean, idleMs = 7_200_000): void {
    this.keepaliveMs = enable ? Math.max(1000, idleMs) : 0;
    this.keepaliveSent = 0;
    this.layer.timers.arm(this, 'keepalive', enable && this.state === 'ESTABLISHED' ? this.lastActivity + this.keepaliveMs : NEVER);
  }

  // --- internals ----------------------------------------------------------------------

  /**
   * A controller for the current MSS (made again once the handshake settles the MSS), of the
   * layer's kind; BBR draws its first ProbeBW phase from the layer's Rng.
   */
  newCongestionControl(): CongestionControl {
    const rng = this.layer.opts.rng;
    return createCongestionControl(this.layer.opts.congestionControl, this.mss, () => randomInt(rng, 1 << 16) / (1 << 16));
  }

  /**
   * The receive window: buffer space not taken by data waiting to be read. Out-of-order
   * data lies inside the window and is not subtracted: doing so moved the right edge left
   * as segments arrived above a hole (shrinking the window, RFC 9293 §3.8.6.2.1), and the
   * sender's segments beyond the new edge were dropped and sent again. Its memory is
   * bounded by the window and by the check where it is stored.
   */
  rcvWindow(): number {
    return Math.max(0, this.rbuf.max - this.rbuf.length);
  }

  /** The payload bytes of a full segment: the MSS less the timestamps option when it is on (RFC 7323 §3). */
  get effMss(): number {
    return this.mss - (this.tsOk ? TS_OPTION_LEN : 0);
  }

  /** RFC 6675 pipe (sack.ts) for this connection now. */
  pipe(): number {
    return this.sack.pipe(this.una, this.nxt, this.rexmitNext, this.inRecovery, this.mss);
  }
}

export function canSend(s: TcpState): boolean {
  return s === 'ESTABLISHED' || s === 'CLOSE-WAIT' || s === 'SYN-SENT' || s === 'SYN-RECEIVED';
}
export function canReceive(s: TcpState): boolean {
  return s === 'ESTABLISHED' || s === 'FIN-WAIT-1' || s === 'FIN-WAIT-2';
}

export function connKey(la: IpAddr, lp: number, ra: IpAddr, rp: number): string {
  let k = '';
  for (let i = 0; i < la.length; i++) k += String.fromCharCode(la[i]!);
  k += String.fromCharCode(lp >> 8, lp & 0xff, rp >> 8, rp & 0xff);
  for (let i = 0; i < ra.length; i++) k += String.fromCharCode(ra[i]!);
  return k;
}
