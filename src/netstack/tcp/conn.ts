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
import { seqDiff } from '../../wire/tcp.js';
import { noTimers } from './timers.js';
import { RttEstimator } from './rtt.js';
import { RateSampler } from './rate.js';
import { randomInt } from '../../util/rng.js';
import { Scoreboard } from './sack.js';
import { Rack } from './rack.js';
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
  /** Fast recovery (RFC 6675 §5, entered when RACK or, without SACK, three duplicate ACKs find a loss). */
  inRecovery = false;
  /** RTO recovery (RFC 8985 §6.3): after a timeout, until everything outstanding then is acknowledged. */
  rtoRecovery = false;
  /** Slow-start exit on rising delay (RFC 9406), fed the last RTT sample (rtt.lastRtt). */
  readonly hystart = new HyStart();
  /** RACK-TLP's variables (rack.ts), made with the send records: see `rack`. */
  private rackState: Rack | undefined;
  /**
   * The retransmission timer (RFC 6298) as data: rtoAt is when it expires (NEVER when it is
   * not running) and ptoFrom when the tail loss probe's timer was last (re)started (RFC 8985
   * §7.2). The 'rto' deadline is never later than the earlier of the two that applies; it may
   * be earlier, and then recovery.ts onRto finds nothing due and re-arms it. So restarting
   * them on every ACK and every send writes two numbers, not a timer heap entry.
   */
  rtoAt = NEVER;
  ptoFrom = NEVER;
  partialAcks = 0;
  recoverSeq = 0;
  /**
   * When the window was last cut for a loss (fast recovery, a lost retransmission, a probe
   * that repaired a loss). A lost retransmission sent after it is a loss in a later window
   * and cuts again; one sent before it was answered already (RFC 8985 §9.3, once per window).
   */
  lastCutAt = -1;
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
  /** Without SACK (RFC 6582): the end of what fast recovery has resent from una. */
  rexmitNext = 0;
  dupAcks = 0;
  // RTT (RFC 6298).
  readonly rtt = new RttEstimator();
  retries = 0;
  cc: CongestionControl;
  /** The controller takes delivery-rate samples (BBR); CUBIC and NewReno take none. */
  readonly ccSamples: boolean;
  /**
   * The per-segment send records (rate.ts): made when the first is kept, so an idle
   * connection holds none and connections that keep none share one that is never fed.
   */
  private rateRecords: RateSampler = UNUSED_SAMPLER;
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
    this.ccSamples = this.cc.onRateSample !== undefined;
  }

  /**
   * Whether every segment sent is recorded (output.ts feeds the records): for RACK, which
   * SACK makes possible (RFC 8985 §4, §6.1), and for BBR's delivery-rate samples.
   */
  get sampling(): boolean {
    return this.sackOk || this.ccSamples;
  }

  /** Whether this connection has send records yet (it has had data to send, and keeps them). */
  get hasRecords(): boolean {
    return this.rateRecords !== UNUSED_SAMPLER;
  }

  /**
   * RACK-TLP (rack.ts, RFC 8985): the connection's RACK and TLP variables, made on first use;
   * the ACK path asks for them only once there are records to judge (hasRecords), so an idle
   * connection or a pure receiver holds none.
   */
  get rack(): Rack {
    return (this.rackState ??= new Rack());
  }

  /**
   * The send records, made when a connection that keeps them first has data to send. Until
   * then (an idle connection, a receiver) the shared, empty one stands in: with nothing
   * recorded it has nothing to deliver, mark or release.
   */
  get rate(): RateSampler {
    let r = this.rateRecords;
    if (r === UNUSED_SAMPLER && this.sbuf.length > 0 && this.sampling) r = this.rateRecords = new RateSampler(this.ccSamples);
    return r;
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

  /**
   * RFC 6675 §4 pipe: bytes sent up to SND.NXT and neither acknowledged, SACKed nor marked
   * lost (RFC 8985's Segment.lost standing for IsLost). A lost segment counts again once
   * resent, since its record is then in flight again. After a timeout rewinds SND.NXT to
   * SND.UNA, what was in flight before no longer counts (RFC 6675 §5.1).
   */
  pipe(): number {
    let p = seqDiff(this.nxt, this.una) - this.sack.sackedBelow(this.nxt);
    if (this.sampling) {
      const r = this.rate;
      if (r.lostBytes > 0) p -= this.nxt === this.sndMax ? r.lostBytes : r.lostBelow(this.nxt);
    }
    return p > 0 ? p : 0;
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
