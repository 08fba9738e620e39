/**
 * TCP (RFC 9293) for the netstack, sans-IO. The TcpLayer demultiplexes segments
 * to connections and listeners, owns every timer as a stored deadline, and hands
 * segments to the Interface with headroom for the IP and WireGuard headers.
 *
 * What is implemented, with the RFC that says how: the full state machine
 * (RFC 9293 §3.3.2, §3.10), RST and SYN handling hardened per RFC 5961, ISNs per
 * RFC 6528, random ephemeral ports (RFC 6056), window scaling and timestamps with
 * PAWS (RFC 7323), SACK (RFC 2018) with SACK-based loss recovery (RFC 6675),
 * RTO (RFC 6298), NewReno/CUBIC (RFC 5681/9438), delayed ACKs and keepalives
 * (RFC 1122), Nagle (RFC 896), zero-window probing, SYN cookies (RFC 4987).
 */
import type { Deadline, Instant } from '../../util/time.js';
import { randomInt } from '../../util/rng.js';
import { noTrace } from '../../util/trace.js';
import { allocPacket, PACKET_HEADROOM, WG_TAILROOM } from '../../util/bytes.js';
import { finishChecksum, pseudoHeaderSum, sumBytes } from '../../util/checksum.js';
import { formatIp, ipEqual, type IpAddr } from '../../util/ip.js';
import { systemError, invalidArgument } from '../../util/errors.js';
import { mac } from '../../crypto/hash.js';
import {
  ACK,
  FIN,
  optionsLength,
  parseTcp,
  PSH,
  putU32,
  RST,
  seqAdd,
  seqDiff,
  seqGe,
  seqGt,
  seqLe,
  seqLt,
  SYN,
  TCP_HEADER_LEN,
  writeOptions,
  writeSynOptions,
  type TcpSegmentInfo,
} from '../../wire/tcp.js';
import type {
  IcmpErrorKind,
  TcpConnectOptions,
  TcpConnection,
  TcpErrorCode,
  TcpEvent,
  TcpLayerApi,
  TcpListener,
  TcpListenOptions,
  TcpOutput,
  TcpState,
} from '../types.js';
import { ByteRing } from './ring.js';
import { createCongestionControl, type CcState, type CongestionControl } from './congestion.js';
import { HyStart } from './hystart.js';
import { addRange, covers, findRange, rangeBytes, trimBelow } from './ranges.js';
import { CHALLENGE_ACKS_PER_SEC, EPHEMERAL_COUNT, EPHEMERAL_LOW, IP4_TCP, IP6_TCP, MAX_RANGES, MAX_RTO, MAX_SACK_BLOCKS, MAX_UNDO_TRACKED, NEVER, OUR_WSCALE, TRIM_MS, type TcpOptions } from './constants.js';
import { newTcpStats, type TcpCounter, type TcpStats } from './counters.js';
import { noTimers, TIMER_REASON, TimerHeap, type Timer } from './timers.js';
import { RttEstimator } from './rtt.js';

export type { TcpOptions } from './constants.js';
export type { TcpCounter, TcpStats } from './counters.js';

interface OooSegment {
  seq: number;
  data: Uint8Array;
}

let nextId = 1;

class Conn implements TcpConnection {
  readonly id = nextId++;
  state: TcpState = 'CLOSED';
  error: TcpErrorCode | undefined;
  readonly key: string;
  listener: Listener | undefined;
  accepted = false;

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
  mss = 536;
  peerMss = 536;
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
  // Loss recovery (RFC 6675): SACKed ranges above una, flattened [l0, r0, l1, r1, ...].
  sacked: number[] = [];
  sackedBytes = 0;
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
  synOptsSent = false;

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
    this.cc = createCongestionControl(layer.opts.congestionControl, this.mss);
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
        this.layer.destroy(this, undefined, now);
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
    if (this.state !== 'SYN-SENT' && this.state !== 'LISTEN' && this.state !== 'TIME-WAIT') this.layer.sendRst(this.localAddr, this.remoteAddr, this.localPort, this.remotePort, this.nxt, this.rcvNxt, true);
    this.layer.destroy(this, undefined, now);
  }

  setNoDelay(noDelay: boolean): void {
    this.noDelay = noDelay;
    this.layer.markDirty(this);
  }

  setKeepAlive(enable: boolean, idleMs = 7_200_000): void {
    this.keepaliveMs = enable ? Math.max(1000, idleMs) : 0;
    this.keepaliveSent = 0;
    this.layer.setTimer(this, 'keepalive', enable && this.state === 'ESTABLISHED' ? this.lastActivity + this.keepaliveMs : NEVER);
  }

  // --- internals ----------------------------------------------------------------------

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

  /**
   * RFC 6675's pipe, simplified: bytes sent up to `nxt` and neither acknowledged
   * nor SACKed. After a timeout `nxt` rewinds to `una`, so what was in flight
   * before it no longer counts (RFC 6675 §5.1).
   */
  pipe(): number {
    const blocks = this.sacked;
    let sackedBelow = 0;
    for (let j = 0; j < blocks.length; j += 2) {
      const l = blocks[j]!;
      if (seqGe(l, this.nxt)) break;
      const r = blocks[j + 1]!;
      sackedBelow += seqDiff(seqLt(r, this.nxt) ? r : this.nxt, l);
    }
    let pipe = seqDiff(this.nxt, this.una) - sackedBelow;
    if (this.inRecovery && blocks.length > 0) {
      // RFC 6675 §4 IsLost: a hole with more than (DupThresh - 1) × SMSS bytes SACKed above
      // it has left the network; it counts again only once retransmitted (below HighRxt,
      // here rexmitNext). Without this, a burst that loses half the window leaves pipe
      // above cwnd and recovery sends nothing until the RTO.
      let above = 0;
      let lostEdge = this.una;
      for (let j = blocks.length - 2; j >= 0; j -= 2) {
        above += seqDiff(blocks[j + 1]!, blocks[j]!);
        if (above > 2 * this.mss) {
          lostEdge = blocks[j]!;
          break;
        }
      }
      if (seqGt(lostEdge, this.nxt)) lostEdge = this.nxt;
      const from = seqGt(this.rexmitNext, this.una) ? this.rexmitNext : this.una;
      if (seqLt(from, lostEdge)) {
        // Unsacked bytes in [from, lostEdge).
        let lost = seqDiff(lostEdge, from);
        for (let j = 0; j < blocks.length; j += 2) {
          const l = seqLt(blocks[j]!, from) ? from : blocks[j]!;
          const r = seqLt(blocks[j + 1]!, lostEdge) ? blocks[j + 1]! : lostEdge;
          if (seqLt(l, r)) lost -= seqDiff(r, l);
        }
        pipe -= Math.max(0, lost);
      }
    }
    return Math.max(0, pipe);
  }
}

function hasBlock(blocks: number[], from: number, l: number): boolean {
  for (let j = from; j < blocks.length; j += 2) if (blocks[j] === l) return true;
  return false;
}

/** Whether the first SACK block lies within one of the others (a D-SACK for out-of-order data). */
function insideLaterBlock(b: number[]): boolean {
  for (let j = 2; j + 1 < b.length; j += 2) if (seqGe(b[0]!, b[j]!) && seqLe(b[1]!, b[j + 1]!)) return true;
  return false;
}

function canSend(s: TcpState): boolean {
  return s === 'ESTABLISHED' || s === 'CLOSE-WAIT' || s === 'SYN-SENT' || s === 'SYN-RECEIVED';
}
function canReceive(s: TcpState): boolean {
  return s === 'ESTABLISHED' || s === 'FIN-WAIT-1' || s === 'FIN-WAIT-2';
}

function connKey(la: IpAddr, lp: number, ra: IpAddr, rp: number): string {
  let k = '';
  for (let i = 0; i < la.length; i++) k += String.fromCharCode(la[i]!);
  k += String.fromCharCode(lp >> 8, lp & 0xff, rp >> 8, rp & 0xff);
  for (let i = 0; i < ra.length; i++) k += String.fromCharCode(ra[i]!);
  return k;
}

class Listener implements TcpListener {
  readonly id = nextId++;
  readonly queue: Conn[] = [];
  synQueue = 0;
  notified = false;
  closed = false;
  constructor(
    readonly layer: TcpLayer,
    readonly addr: IpAddr | undefined,
    readonly port: number,
    readonly backlog: number,
  ) {}
  accept(): TcpConnection | undefined {
    const c = this.queue.shift();
    if (!c) this.notified = false;
    if (c) c.accepted = true;
    return c;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.layer.closeListener(this);
  }
}

export class TcpLayer implements TcpLayerApi {
  readonly opts: TcpOptions;
  readonly stats: TcpStats = newTcpStats();
  private readonly conns = new Map<string, Conn>();
  private lastHit: Conn | undefined;
  private readonly listeners = new Map<number, Listener[]>();
  private readonly dirty = new Set<Conn>();
  private readonly timers = new TimerHeap<Conn>();
  private out: TcpOutput[] = [];
  private outHead = 0;
  private events: TcpEvent[] = [];
  private evHead = 0;
  private readonly secret = new Uint8Array(32);

  constructor(opts: Partial<TcpOptions> & Pick<TcpOptions, 'rng' | 'mtu' | 'isLocal' | 'sourceFor'>) {
    this.opts = {
      trace: noTrace,
      sendBufferMax: 4 * 1024 * 1024,
      recvBufferMax: 4 * 1024 * 1024,
      congestionControl: 'cubic',
      timeWaitMs: 2_000,
      synRetries: 6,
      maxRetries: 15,
      delayedAckMs: 40,
      keepaliveIntervalMs: 75_000,
      keepaliveProbes: 9,
      defaultBacklog: 128,
      ...opts,
    };
    this.opts.rng.fill(this.secret);
  }

  count(what: TcpCounter): void {
    this.stats[what]++;
  }

  /** A copy of the counters now. */
  statsSnapshot(): TcpStats {
    return { ...this.stats };
  }

  /** Connections in any state (for tests and stats). */
  get connectionCount(): number {
    return this.conns.size;
  }

  /** Entries in the timer heap, stale ones included: bounded by live connections (tests, leak checks). */
  get timerEntries(): number {
    return this.timers.size;
  }

  // --- bookkeeping ---------------------------------------------------------------------

  markDirty(c: Conn): void {
    this.dirty.add(c);
  }

  /** Frees a connection's drained buffers if they are still empty TRIM_MS from now (see ByteRing). */
  armTrim(c: Conn, now: Instant): void {
    if (c.timers.trim === NEVER) this.setTimer(c, 'trim', now + TRIM_MS);
  }

  setTimer(c: Conn, t: Timer, at: number): void {
    this.timers.arm(c, t, at);
  }

  cancelTimer(c: Conn, t: Timer): void {
    this.timers.cancel(c, t);
  }

  private emit(ev: TcpEvent): void {
    this.events.push(ev);
  }

  private readable(c: Conn): void {
    if (!c.readableNotified && (c.accepted || !c.listener)) {
      c.readableNotified = true;
      this.emit({ type: 'tcp-readable', conn: c });
    }
  }

  destroy(c: Conn, error: TcpErrorCode | undefined, _now: Instant): void {
    const wasEmbryonic = c.state === 'SYN-RECEIVED' && c.listener;
    c.state = 'CLOSED';
    if (error && !c.error) c.error = error;
    this.conns.delete(c.key);
    if (this.lastHit === c) this.lastHit = undefined;
    this.dirty.delete(c);
    this.timers.cancelAll(c);
    if (wasEmbryonic) c.listener!.synQueue--;
    if (c.listener && !c.accepted) {
      const i = c.listener.queue.indexOf(c);
      if (i >= 0) c.listener.queue.splice(i, 1);
      return; // never seen by the application
    }
    if (!c.closedEmitted) {
      c.closedEmitted = true;
      this.emit({ type: 'tcp-closed', conn: c, error: c.error });
    }
  }

  // --- API --------------------------------------------------------------------------------

  connect(now: Instant, o: TcpConnectOptions): TcpConnection {
    const local = o.localAddr ?? this.opts.sourceFor(o.remoteAddr);
    if (!local) throw systemError('ENETUNREACH', 'connect', formatIp(o.remoteAddr), o.remotePort);
    if (local.length !== o.remoteAddr.length) throw invalidArgument('connect: local and remote address families differ');
    if (!Number.isInteger(o.remotePort) || o.remotePort < 1 || o.remotePort > 65535) throw invalidArgument(`connect: port must be 1-65535, got ${o.remotePort}`);
    let port = o.localPort ?? 0;
    if (port === 0) {
      // RFC 6056 algorithm 1: random, then the next port whose 4-tuple is free.
      const start = randomInt(this.opts.rng, EPHEMERAL_COUNT);
      port = -1;
      for (let i = 0; i < EPHEMERAL_COUNT; i++) {
        const p = EPHEMERAL_LOW + ((start + i) % EPHEMERAL_COUNT);
        if (!this.conns.has(connKey(local, p, o.remoteAddr, o.remotePort))) {
          port = p;
          break;
        }
      }
      if (port < 0) throw systemError('EADDRNOTAVAIL', 'connect');
    } else if (this.conns.has(connKey(local, port, o.remoteAddr, o.remotePort))) throw systemError('EADDRINUSE', 'connect');
    const c = new Conn(this, local.slice(), port, o.remoteAddr.slice(), o.remotePort);
    c.noDelay = o.noDelay ?? true;
    c.iss = this.isn(now, c);
    c.una = c.iss;
    c.nxt = seqAdd(c.iss, 1);
    c.sndMax = c.nxt;
    c.recoverSeq = c.iss;
    c.state = 'SYN-SENT';
    c.lastActivity = now;
    c.rtt.timedAt = now; // the SYN's round trip is the first RTT sample (RFC 6298 §2.1 allows it when not retransmitted)
    this.conns.set(c.key, c);
    this.sendSyn(now, c, false);
    return c;
  }

  listen(o: TcpListenOptions): TcpListener {
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw invalidArgument(`listen: port must be 1-65535, got ${o.port}`);
    const list = this.listeners.get(o.port) ?? [];
    if (list.some((l) => !l.addr || !o.addr || ipEqual(l.addr, o.addr))) throw systemError('EADDRINUSE', 'listen', o.addr ? formatIp(o.addr) : undefined, o.port);
    const l = new Listener(this, o.addr?.slice(), o.port, o.backlog ?? this.opts.defaultBacklog);
    list.push(l);
    this.listeners.set(o.port, list);
    return l;
  }

  closeListener(l: Listener): void {
    const list = this.listeners.get(l.port);
    if (list) {
      const i = list.indexOf(l);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.listeners.delete(l.port);
    }
    // Connections nobody accepted are reset, as the kernel does on close(listen fd).
    for (const c of l.queue.splice(0)) {
      this.sendRst(c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
      this.destroy(c, undefined, 0);
    }
  }

  private findListener(addr: IpAddr, port: number): Listener | undefined {
    const list = this.listeners.get(port);
    if (!list) return undefined;
    let wild: Listener | undefined;
    for (const l of list) {
      if (l.addr && ipEqual(l.addr, addr)) return l;
      if (!l.addr) wild = l;
    }
    return wild;
  }

  /** RFC 6528: ISN = M + F(4-tuple, secret), M a 4 µs clock. */
  private isn(now: Instant, c: { localAddr: IpAddr; localPort: number; remoteAddr: IpAddr; remotePort: number }): number {
    const t = new Uint8Array(4);
    t[0] = c.localPort >> 8;
    t[1] = c.localPort & 0xff;
    t[2] = c.remotePort >> 8;
    t[3] = c.remotePort & 0xff;
    const h = mac(this.secret, c.localAddr, c.remoteAddr, t);
    const f = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
    return (f + Math.floor(now * 250)) >>> 0;
  }

  // --- output ---------------------------------------------------------------------------------

  pollTransmit(now: Instant): TcpOutput | undefined {
    if (this.outHead >= this.out.length) {
      this.out = [];
      this.outHead = 0;
      if (this.dirty.size > 0) {
        const list = [...this.dirty];
        this.dirty.clear();
        for (const c of list) if (c.state !== 'CLOSED') this.flush(now, c);
      }
      if (this.out.length === 0) return undefined;
    }
    return this.out[this.outHead++];
  }

  pollEvent(): TcpEvent | undefined {
    if (this.evHead < this.events.length) return this.events[this.evHead++];
    if (this.evHead > 0) {
      this.events = [];
      this.evHead = 0;
    }
    return undefined;
  }

  pollTimeout(): Deadline | undefined {
    if (this.dirty.size > 0) return { at: -NEVER, reason: 'tcp output' };
    const e = this.timers.peek();
    return e === undefined ? undefined : { at: e.at, reason: TIMER_REASON[e.t] };
  }

  private tsVal(now: Instant): number {
    return Math.floor(now) >>> 0;
  }

  /** Builds and queues one segment. `data` bytes come from the send ring at `dataOff` from una. */
  private emitSegment(now: Instant, c: Conn, flags: number, seq: number, dataOff: number, len: number): void {
    const ts = c.tsOk ? { val: this.tsVal(now), ecr: c.tsRecent } : undefined;
    const sack = c.sackOk && (c.ooo.length > 0 || c.dsackPending) && (flags & ACK) !== 0 ? this.sackBlocks(c) : undefined;
    const optLen = optionsLength(ts !== undefined, sack ? sack.length / 2 : 0);
    const hl = TCP_HEADER_LEN + optLen;
    const seg = allocPacket(hl + len, PACKET_HEADROOM, WG_TAILROOM);
    seg[0] = c.localPort >> 8;
    seg[1] = c.localPort & 0xff;
    seg[2] = c.remotePort >> 8;
    seg[3] = c.remotePort & 0xff;
    putU32(seg, 4, seq);
    putU32(seg, 8, flags & ACK ? c.rcvNxt : 0);
    seg[12] = (hl / 4) << 4;
    seg[13] = flags;
    const wnd = Math.min(c.rcvWindow() >>> c.rcvScale, 0xffff);
    c.lastAdvertised = wnd << c.rcvScale;
    seg[14] = wnd >> 8;
    seg[15] = wnd & 0xff;
    writeOptions(seg, TCP_HEADER_LEN, ts, sack);
    if (len > 0) c.sbuf.copyOut(dataOff, len, seg, hl);
    this.checksumAndQueue(c.localAddr, c.remoteAddr, seg);
    if (flags & ACK) {
      c.ackNow = false;
      c.segsSinceAck = 0;
      this.cancelTimer(c, 'delack');
    }
    this.count('txSegments');
  }

  private checksumAndQueue(src: IpAddr, dst: IpAddr, seg: Uint8Array): void {
    seg[16] = seg[17] = 0;
    const ck = finishChecksum(pseudoHeaderSum(src, dst, 6, seg.length) + sumBytes(seg));
    seg[16] = ck >> 8;
    seg[17] = ck & 0xff;
    this.out.push({ src, dst, segment: seg });
  }

  private sackBlocks(c: Conn): number[] {
    const blocks: number[] = [];
    let first = 0;
    if (c.dsackPending) {
      // RFC 2883 §4: a D-SACK block goes first, once.
      blocks.push(c.dsackL, c.dsackR);
      c.dsackPending = false;
      first = 2;
    }
    // RFC 2018 §4: the block holding the newest segment first, then those of the segments
    // before it, so a sender learns every block over a few ACKs even when there are more
    // holes than blocks fit; then the lowest blocks fill what room is left.
    const max = MAX_SACK_BLOCKS * 2;
    const r = c.oooRanges;
    for (let k = 0; k < c.sackRecent.length && blocks.length < max; k++) {
      const j = findRange(r, c.sackRecent[k]!);
      if (j >= 0 && !hasBlock(blocks, first, r[j]!)) blocks.push(r[j]!, r[j + 1]!);
    }
    for (let j = 0; j < r.length && blocks.length < max; j += 2) if (!hasBlock(blocks, first, r[j]!)) blocks.push(r[j]!, r[j + 1]!);
    return blocks;
  }

  private sendSyn(now: Instant, c: Conn, synAck: boolean): void {
    const ts = (synAck ? c.tsOk : true) ? { val: this.tsVal(now), ecr: synAck ? c.tsRecent : 0 } : undefined;
    const wscale = (synAck ? c.wscaleOk : true) ? OUR_WSCALE : undefined;
    // RFC 7323 §2.2: the window in a SYN is never scaled.
    const wnd = Math.min(c.rcvWindow(), 0xffff);
    this.queueSyn(c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.iss, synAck ? c.rcvNxt : undefined, wnd, c.mss, wscale, synAck ? c.sackOk : true, ts);
    this.setTimer(c, 'rto', now + c.rtt.rto);
  }

  /** Builds and queues a SYN (ack undefined) or SYN-ACK; no connection state is touched. */
  private queueSyn(src: IpAddr, dst: IpAddr, sport: number, dport: number, iss: number, ack: number | undefined, wnd: number, mss: number, wscale: number | undefined, sack: boolean, ts: { val: number; ecr: number } | undefined): void {
    const opts = new Uint8Array(40);
    const olen = writeSynOptions(opts, 0, mss, wscale, sack, ts);
    const hl = TCP_HEADER_LEN + olen;
    const seg = allocPacket(hl, PACKET_HEADROOM, WG_TAILROOM);
    seg[0] = sport >> 8;
    seg[1] = sport & 0xff;
    seg[2] = dport >> 8;
    seg[3] = dport & 0xff;
    putU32(seg, 4, iss);
    putU32(seg, 8, ack ?? 0);
    seg[12] = (hl / 4) << 4;
    seg[13] = ack === undefined ? SYN : SYN | ACK;
    seg[14] = wnd >> 8;
    seg[15] = wnd & 0xff;
    seg.set(opts.subarray(0, olen), TCP_HEADER_LEN);
    this.checksumAndQueue(src, dst, seg);
  }

  /** RST for a segment that has no connection (RFC 9293 §3.10.7.1), or to abort one. */
  sendRst(src: IpAddr, dst: IpAddr, sport: number, dport: number, seq: number, ack: number, withAck: boolean): void {
    const seg = allocPacket(TCP_HEADER_LEN, PACKET_HEADROOM, WG_TAILROOM);
    seg[0] = sport >> 8;
    seg[1] = sport & 0xff;
    seg[2] = dport >> 8;
    seg[3] = dport & 0xff;
    putU32(seg, 4, seq);
    putU32(seg, 8, withAck ? ack : 0);
    seg[12] = 5 << 4;
    seg[13] = withAck ? RST | ACK : RST;
    this.checksumAndQueue(src.slice(), dst.slice(), seg);
    this.count('txRst');
  }

  /** Sends what the windows allow: retransmissions first in recovery, then new data, then FIN, then a bare ACK if owed. */
  private flush(now: Instant, c: Conn): void {
    if (c.state === 'SYN-SENT' || c.state === 'LISTEN' || c.state === 'CLOSED') return;
    if (c.state === 'SYN-RECEIVED') {
      if (c.ackNow) this.sendSyn(now, c, true);
      c.ackNow = false;
      return;
    }
    let sent = false;
    const optLen = c.tsOk ? 12 : 0;
    const mss = Math.max(64, c.mss - optLen);
    const cwnd = c.cc.cwnd;
    // RFC 6675 §5 step (C): fill holes below the highest SACKed sequence first.
    if (c.inRecovery && c.sacked.length > 0) {
      // Retransmissions count toward the pipe until acknowledged (RFC 6675 §4 "HighRxt").
      // pipe() counts what lies below rexmitNext as in flight again, so it grows as we resend.
      for (let guard = 0; guard < 256 && c.pipe() < cwnd; guard++) {
        const hole = this.nextHole(c, mss);
        if (!hole) break;
        this.emitSegment(now, c, ACK, hole.seq, seqDiff(hole.seq, c.una), hole.len);
        c.rexmitNext = seqAdd(hole.seq, hole.len);
        this.noteRetransmit(now, c, hole.seq);
        sent = true;
      }
    }
    const dataEnd = seqAdd(c.una, c.sbuf.length); // sequence after the last queued byte
    for (;;) {
      // After a timeout, what the receiver SACKed is not sent again.
      for (let j = 0; j < c.sacked.length; j += 2) {
        if (seqGe(c.nxt, c.sacked[j]!) && seqLt(c.nxt, c.sacked[j + 1]!)) c.nxt = c.sacked[j + 1]!;
      }
      const unsent = seqDiff(dataEnd, c.nxt);
      if (unsent <= 0) break;
      const inflight = c.pipe();
      const wndEdge = seqAdd(c.una, c.sndWnd);
      const wndLeft = seqDiff(wndEdge, c.nxt);
      const cwndLeft = cwnd - inflight;
      let len = Math.min(mss, unsent, wndLeft, Math.max(0, cwndLeft));
      if (len <= 0) {
        if (c.sndWnd === 0 && seqDiff(c.nxt, c.una) === 0 && c.timers.persist === NEVER) {
          c.persistBackoff = 0;
          this.setTimer(c, 'persist', now + c.rtt.rto);
        }
        break;
      }
      // Nagle (RFC 896) and sender SWS avoidance: hold a small segment while data is in flight.
      if (len < mss && len < unsent) break; // window-limited small segment: wait for more window
      if (len < mss && !c.noDelay && seqDiff(c.nxt, c.una) > 0) break;
      const seq = c.nxt;
      const isLast = len === unsent;
      this.emitSegment(now, c, ACK | (isLast ? PSH : 0), seq, seqDiff(seq, c.una), len);
      if (c.rtt.timedSeq < 0 && !c.tsOk && seqGe(seq, c.sndMax)) c.rtt.time(seq, now);
      c.nxt = seqAdd(c.nxt, len);
      if (seqGt(c.nxt, c.sndMax)) c.sndMax = c.nxt;
      if (c.timers.rto === NEVER) this.armRto(now, c);
      sent = true;
      len = 0;
    }
    // FIN once everything queued is sent (RFC 9293 §3.10.4).
    if (c.finQueued && !c.finSent && seqDiff(dataEnd, c.nxt) <= 0) {
      this.emitSegment(now, c, FIN | ACK, c.nxt, 0, 0);
      c.finSent = true;
      c.nxt = seqAdd(c.nxt, 1);
      if (seqGt(c.nxt, c.sndMax)) c.sndMax = c.nxt;
      if (c.state === 'ESTABLISHED') c.state = 'FIN-WAIT-1';
      else if (c.state === 'CLOSE-WAIT') c.state = 'LAST-ACK';
      if (c.timers.rto === NEVER) this.setTimer(c, 'rto', now + c.rtt.rto);
      sent = true;
    }
    if (!sent && c.ackNow) this.emitSegment(now, c, ACK, c.nxt, 0, 0);
  }

  /**
   * The next un-SACKed, not yet retransmitted range below the highest SACK that counts as
   * lost (RFC 6675 NextSeg rule 1): more than (DupThresh - 1) × SMSS bytes SACKed above it.
   */
  private nextHole(c: Conn, mss: number): { seq: number; len: number } | undefined {
    let seq = seqGt(c.rexmitNext, c.una) ? c.rexmitNext : c.una;
    const b = c.sacked;
    for (let i = 0; i < b.length; i += 2) {
      const l = b[i]!;
      const r = b[i + 1]!;
      if (seqLt(seq, l)) {
        // IsLost(seq) (RFC 6675 §4): everything SACKed from this block up lies above it.
        let above = 0;
        for (let j = i; j < b.length; j += 2) above += seqDiff(b[j + 1]!, b[j]!);
        if (above <= 2 * c.mss) return undefined;
        const len = Math.min(mss, seqDiff(l, seq));
        return len > 0 ? { seq, len } : undefined;
      }
      if (seqLt(seq, r)) seq = r;
    }
    return undefined;
  }

  // --- input ------------------------------------------------------------------------------------

  /**
   * The connection for a segment. Bulk transfers bring long runs of segments for one
   * connection, so the last one found is checked first and the map key (a string
   * built per lookup) is made only on a miss.
   */
  private lookup(la: IpAddr, lp: number, ra: IpAddr, rp: number): Conn | undefined {
    const h = this.lastHit;
    if (h !== undefined && h.localPort === lp && h.remotePort === rp && ipEqual(h.remoteAddr, ra) && ipEqual(h.localAddr, la)) return h;
    const c = this.conns.get(connKey(la, lp, ra, rp));
    if (c !== undefined) this.lastHit = c;
    return c;
  }

  handleSegment(now: Instant, src: IpAddr, dst: IpAddr, s: Uint8Array): void {
    this.count('rxSegments');
    if (s.length < TCP_HEADER_LEN) return this.count('drop.short');
    if (finishChecksum(pseudoHeaderSum(src, dst, 6, s.length) + sumBytes(s)) !== 0) return this.count('drop.checksum');
    const h = parseTcp(s);
    if (!h) return this.count('drop.header');
    const f = h.flags;
    // Impossible combinations are dropped unanswered (SYN+RST, SYN+FIN).
    if ((f & SYN && f & (RST | FIN)) || h.srcPort === 0 || h.dstPort === 0) return this.count('drop.flags');
    const payload = s.subarray(h.headerLen);
    const c = this.lookup(dst, h.dstPort, src, h.srcPort);
    if (c) return this.segmentArrives(now, c, h, payload);
    const l = this.findListener(dst, h.dstPort);
    if (l) return this.listenArrives(now, l, src, dst, h, payload);
    // RFC 9293 §3.10.7.1: CLOSED. An RST is ignored; anything else gets an RST.
    if (f & RST) return;
    this.count('rstNoConnection');
    if (f & ACK) this.sendRst(dst, src, h.dstPort, h.srcPort, h.ack, 0, false);
    else this.sendRst(dst, src, h.dstPort, h.srcPort, 0, seqAdd(h.seq, payload.length + (f & SYN ? 1 : 0) + (f & FIN ? 1 : 0)), true);
  }

  private listenArrives(now: Instant, l: Listener, src: IpAddr, dst: IpAddr, h: TcpSegmentInfo, payload: Uint8Array): void {
    const f = h.flags;
    if (f & RST) return; // §3.10.7.2
    if (f & ACK) {
      // Perhaps the last ACK of a SYN-cookie handshake (RFC 4987 §3.6).
      if (!(f & SYN) && this.cookieEstablish(now, l, src, dst, h, payload)) return;
      this.sendRst(dst, src, h.dstPort, h.srcPort, h.ack, 0, false);
      return;
    }
    if (!(f & SYN)) return this.count('drop.listenNoSyn');
    if (l.queue.length >= l.backlog) return this.count('drop.acceptQueueFull');
    if (l.synQueue >= l.backlog) {
      this.sendSynCookie(now, src, dst, h);
      return;
    }
    const c = new Conn(this, dst.slice(), h.dstPort, src.slice(), h.srcPort);
    c.listener = l;
    this.acceptSynOptions(c, h);
    c.irs = h.seq;
    c.rcvNxt = seqAdd(h.seq, 1);
    c.iss = this.isn(now, c);
    c.una = c.iss;
    c.nxt = seqAdd(c.iss, 1);
    c.sndMax = c.nxt;
    c.recoverSeq = c.iss;
    c.sndWnd = h.window; // not scaled in a SYN
    c.wl1 = h.seq;
    c.wl2 = c.iss;
    c.state = 'SYN-RECEIVED';
    c.lastActivity = now;
    l.synQueue++;
    this.conns.set(c.key, c);
    this.sendSyn(now, c, true);
  }

  private acceptSynOptions(c: Conn, h: TcpSegmentInfo): void {
    c.peerMss = h.mss && h.mss > 0 ? h.mss : 536; // RFC 9293 §3.7.1 default; MSS 0 is treated as absent
    c.mss = Math.max(64, Math.min(c.mss, c.peerMss));
    c.cc = createCongestionControl(this.opts.congestionControl, c.mss);
    if (h.wscale !== undefined) {
      c.wscaleOk = true;
      c.sndScale = h.wscale;
      c.rcvScale = OUR_WSCALE;
    }
    c.sackOk = h.sackOk;
    if (h.tsVal !== undefined) {
      c.tsOk = true;
      c.tsRecent = h.tsVal;
    }
  }

  /** A SYN-ACK whose ISN encodes what we need, so a full SYN queue holds no state (RFC 4987 §3.6). */
  private cookieIsn(now: Instant, src: IpAddr, dst: IpAddr, sport: number, dport: number, irs: number, mssIdx: number, slot?: number): number {
    const t = slot ?? Math.floor(now / 64_000) & 31;
    const b = new Uint8Array(9);
    b[0] = sport >> 8;
    b[1] = sport & 0xff;
    b[2] = dport >> 8;
    b[3] = dport & 0xff;
    putU32(b, 4, irs);
    b[8] = t;
    const hv = mac(this.secret, src, dst, b);
    const h24 = (hv[0]! << 16) | (hv[1]! << 8) | hv[2]!;
    return ((t << 27) | (mssIdx << 24) | h24) >>> 0;
  }

  private static readonly COOKIE_MSS = [536, 1200, 1220, 1360, 1380, 1400, 1440, 1460];

  private sendSynCookie(now: Instant, src: IpAddr, dst: IpAddr, h: TcpSegmentInfo): void {
    this.count('synCookiesSent');
    const peerMss = h.mss && h.mss > 0 ? h.mss : 536;
    let idx = 0;
    for (let i = 0; i < TcpLayer.COOKIE_MSS.length; i++) if (TcpLayer.COOKIE_MSS[i]! <= peerMss) idx = i;
    const iss = this.cookieIsn(now, src, dst, h.srcPort, h.dstPort, h.seq, idx);
    // Stateless by design: no Conn, no timer. The SYN-ACK carries only MSS (no window
    // scaling, SACK or timestamps can be remembered); a lost one is the client's to resend.
    const mss = Math.min(this.opts.mtu - (dst.length === 4 ? IP4_TCP : IP6_TCP), TcpLayer.COOKIE_MSS[idx]!);
    const wnd = Math.min(this.opts.recvBufferMax, 0xffff);
    this.queueSyn(dst.slice(), src.slice(), h.dstPort, h.srcPort, iss, seqAdd(h.seq, 1), wnd, mss, undefined, false, undefined);
  }

  private cookieEstablish(now: Instant, l: Listener, src: IpAddr, dst: IpAddr, h: TcpSegmentInfo, payload: Uint8Array): boolean {
    const iss = (h.ack - 1) >>> 0;
    const t = iss >>> 27;
    const cur = Math.floor(now / 64_000) & 31;
    if (t !== cur && t !== ((cur + 31) & 31)) return false; // older than ~2 minutes
    const idx = (iss >>> 24) & 7;
    const irs = (h.seq - 1) >>> 0;
    if (this.cookieIsn(now, src, dst, h.srcPort, h.dstPort, irs, idx, t) !== iss) return false;
    if (l.queue.length >= l.backlog) return false;
    const c = new Conn(this, dst.slice(), h.dstPort, src.slice(), h.srcPort);
    c.listener = l;
    c.iss = iss;
    c.una = h.ack;
    c.nxt = h.ack;
    c.sndMax = h.ack;
    c.recoverSeq = h.ack;
    c.irs = irs;
    c.rcvNxt = h.seq;
    c.mss = Math.min(c.mss, TcpLayer.COOKIE_MSS[idx]!);
    c.cc = createCongestionControl(this.opts.congestionControl, c.mss);
    c.sndWnd = h.window; // no window scaling without state (RFC 4987 §3.6)
    c.wl1 = h.seq;
    c.wl2 = h.ack;
    c.state = 'ESTABLISHED';
    c.lastActivity = now;
    this.conns.set(c.key, c);
    this.count('synCookiesAccepted');
    this.enqueueAccept(l, c);
    if (payload.length > 0) this.segmentArrives(now, c, h, payload);
    return true;
  }

  private enqueueAccept(l: Listener, c: Conn): void {
    l.queue.push(c);
    if (!l.notified) {
      l.notified = true;
      this.emit({ type: 'tcp-accept', listener: l });
    }
  }

  private challengeAck(now: Instant, c: Conn): void {
    c.challengeTokens = Math.min(CHALLENGE_ACKS_PER_SEC, c.challengeTokens + ((now - c.challengeAt) * CHALLENGE_ACKS_PER_SEC) / 1000);
    c.challengeAt = now;
    if (c.challengeTokens < 1) return this.count('challengeAckLimited');
    c.challengeTokens--;
    this.count('challengeAcks');
    c.ackNow = true;
    this.markDirty(c);
  }

  private segmentArrives(now: Instant, c: Conn, h: TcpSegmentInfo, payload: Uint8Array): void {
    const f = h.flags;
    if (c.state === 'SYN-SENT') return this.synSentArrives(now, c, h);
    const len = payload.length + (f & SYN ? 1 : 0) + (f & FIN ? 1 : 0);
    // PAWS (RFC 7323 §5.3): an old timestamp means an old duplicate.
    if (c.tsOk && h.tsVal !== undefined && !(f & RST) && seqLt(h.tsVal, c.tsRecent)) {
      this.count('drop.paws');
      c.ackNow = true;
      this.markDirty(c);
      return;
    }
    // Acceptability (RFC 9293 §3.10.7.4, first check).
    const wnd = c.rcvWindow();
    const seq = h.seq;
    let ok: boolean;
    if (len === 0) ok = wnd === 0 ? seq === c.rcvNxt : seqGe(seq, c.rcvNxt) && seqLt(seq, seqAdd(c.rcvNxt, wnd)) || seq === c.rcvNxt;
    else ok = wnd > 0 && ((seqGe(seq, c.rcvNxt) && seqLt(seq, seqAdd(c.rcvNxt, wnd))) || (seqGe(seqAdd(seq, len - 1), c.rcvNxt) && seqLt(seqAdd(seq, len - 1), seqAdd(c.rcvNxt, wnd))));
    if (!ok) {
      if (f & RST) return this.count('drop.rstOutOfWindow');
      this.count('drop.outOfWindow');
      // Data wholly below RCV.NXT arrived before: an old duplicate, reported as a D-SACK.
      if (payload.length > 0 && seqLe(seqAdd(seq, payload.length), c.rcvNxt)) this.noteDuplicate(c, seq, seqAdd(seq, payload.length));
      if (c.state === 'TIME-WAIT' && f & FIN) this.setTimer(c, 'timewait', now + this.opts.timeWaitMs);
      c.ackNow = true;
      this.markDirty(c);
      return;
    }
    // RST (RFC 5961 §3.2): exact match resets, in-window gets a challenge ACK.
    if (f & RST) {
      if (seq !== c.rcvNxt) return this.challengeAck(now, c);
      this.count('rstReceived');
      if (c.state === 'SYN-RECEIVED' && c.listener) return this.destroy(c, undefined, now); // back to LISTEN
      const err: TcpErrorCode | undefined = c.state === 'CLOSING' || c.state === 'LAST-ACK' || c.state === 'TIME-WAIT' ? undefined : 'ECONNRESET';
      return this.destroy(c, err, now);
    }
    // SYN in a synchronized state (RFC 5961 §4): challenge ACK.
    if (f & SYN) {
      if (c.state === 'SYN-RECEIVED' && c.listener && seq === c.irs) {
        c.ackNow = true; // a retransmitted SYN: answer with the SYN-ACK again
        this.markDirty(c);
        return;
      }
      return this.challengeAck(now, c);
    }
    if (!(f & ACK)) return this.count('drop.noAck');
    if (c.tsOk && h.tsVal !== undefined && seqLe(seq, c.rcvNxt)) c.tsRecent = h.tsVal;
    c.lastActivity = now;
    if (c.keepaliveMs > 0) {
      c.keepaliveSent = 0;
      this.setTimer(c, 'keepalive', now + c.keepaliveMs);
    }

    if (c.state === 'SYN-RECEIVED') {
      if (!(seqGt(h.ack, c.una) && seqLe(h.ack, c.nxt))) {
        this.sendRst(c.localAddr, c.remoteAddr, c.localPort, c.remotePort, h.ack, 0, false);
        return;
      }
      c.state = 'ESTABLISHED';
      c.una = h.ack;
      c.sndWnd = h.window << c.sndScale;
      c.wl1 = seq;
      c.wl2 = h.ack;
      this.cancelTimer(c, 'rto');
      c.retries = 0;
      if (c.listener) {
        c.listener.synQueue--;
        if (c.listener.queue.length >= c.listener.backlog || c.listener.closed) {
          this.count('drop.acceptQueueFull');
          this.sendRst(c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
          c.listener.synQueue++; // destroy() below undoes the count once more
          c.state = 'SYN-RECEIVED';
          return this.destroy(c, undefined, now);
        }
        this.enqueueAccept(c.listener, c);
      } else {
        this.emit({ type: 'tcp-connected', conn: c }); // simultaneous open
      }
    } else if (!this.processAck(now, c, h)) return;

    // Segment text (RFC 9293 §3.10.7.4, seventh check).
    if (payload.length > 0 && canReceive(c.state)) this.receiveData(now, c, seq, payload);
    else if (payload.length > 0) this.count('drop.dataAfterFin');

    // FIN, once everything before it has arrived.
    if (f & FIN && seqAdd(seq, payload.length) === c.rcvNxt && !c.finReceived) {
      c.finReceived = true;
      c.rcvNxt = seqAdd(c.rcvNxt, 1);
      c.ackNow = true;
      this.markDirty(c);
      this.readable(c);
      switch (c.state) {
        case 'ESTABLISHED':
          c.state = 'CLOSE-WAIT';
          break;
        case 'FIN-WAIT-1':
          c.state = 'CLOSING';
          break;
        case 'FIN-WAIT-2':
          this.enterTimeWait(now, c);
          break;
        default:
          break;
      }
    } else if (f & FIN && c.state === 'TIME-WAIT') {
      c.ackNow = true;
      this.markDirty(c);
      this.setTimer(c, 'timewait', now + this.opts.timeWaitMs);
    }
  }

  private synSentArrives(now: Instant, c: Conn, h: TcpSegmentInfo): void {
    const f = h.flags;
    if (f & ACK && (seqLe(h.ack, c.iss) || seqGt(h.ack, c.nxt))) {
      if (!(f & RST)) this.sendRst(c.localAddr, c.remoteAddr, c.localPort, c.remotePort, h.ack, 0, false);
      return this.count('drop.synSentBadAck');
    }
    if (f & RST) {
      if (f & ACK) return this.destroy(c, 'ECONNREFUSED', now);
      return;
    }
    if (!(f & SYN)) return;
    this.acceptSynOptions(c, h);
    if (!c.wscaleOk) c.rcvScale = 0;
    c.irs = h.seq;
    c.rcvNxt = seqAdd(h.seq, 1);
    c.sndWnd = h.window; // unscaled in a SYN
    c.wl1 = h.seq;
    c.wl2 = h.ack;
    if (f & ACK) {
      c.una = h.ack;
      c.state = 'ESTABLISHED';
      this.cancelTimer(c, 'rto');
      c.retries = 0;
      if (c.retries === 0) c.rtt.sample(now - c.rtt.timedAt);
      if (c.tsOk && h.tsEcr) c.rtt.sample(now - h.tsEcr);
      c.ackNow = true;
      this.markDirty(c);
      this.emit({ type: 'tcp-connected', conn: c });
    } else {
      // Simultaneous open (RFC 9293 §3.5).
      c.state = 'SYN-RECEIVED';
      this.sendSyn(now, c, true);
    }
  }

  /** ACK processing in synchronized states. False if the segment is to be dropped. */
  private processAck(now: Instant, c: Conn, h: TcpSegmentInfo): boolean {
    const ack = h.ack;
    if (seqGt(ack, c.sndMax)) {
      // Acks data never sent (RFC 9293 §3.10.7.4; RFC 5961 §5 for the lower bound).
      c.ackNow = true;
      this.markDirty(c);
      this.count('drop.ackUnsent');
      return false;
    }
    const win = h.window << c.sndScale;
    const sackedBefore = c.sackedBytes;
    if (c.sackOk && h.sack) {
      const b = h.sack;
      // RFC 2883 §4: a first block below the cumulative ACK, or inside a later block, is a D-SACK.
      if (b.length >= 2 && (seqLe(b[1]!, ack) || insideLaterBlock(b))) this.onDsack(c, b[0]!);
      this.updateScoreboard(c, b);
    }
    if (c.inRecovery && ack === c.una && c.headSeq === c.una && this.headLost(now, c)) this.resendHead(now, c);
    if (seqGt(ack, c.una)) {
      // A hole that filled without a retransmission was reordering, not loss (RFC 8985 §6.2).
      if (c.holeSince !== NEVER && !c.inRecovery && !c.reorderSeen) {
        c.reorderSeen = true;
        this.count('reorderingSeen');
      }
      let acked = seqDiff(ack, c.una);
      // Our FIN takes one sequence number but no byte of the ring.
      const ringAcked = Math.min(acked, c.sbuf.length);
      c.sbuf.consume(ringAcked);
      if (c.sbuf.length === 0) this.armTrim(c, now);
      c.una = ack;
      if (seqLt(c.nxt, c.una)) c.nxt = c.una;
      c.retries = 0;
      c.persistBackoff = 0;
      this.pruneScoreboard(c);
      // The SACKs above the next hole came no later than those above this one.
      if (c.sacked.length === 0) {
        c.holeSince = NEVER;
        this.cancelTimer(c, 'reo');
      }
      // RTT sample: timestamps (RFC 7323 §4) or one timed segment (Karn's rule).
      if (c.tsOk && h.tsEcr !== 0) c.rtt.sample(Math.max(0, this.tsVal(now) - h.tsEcr));
      else c.rtt.acked(ack, now);
      if (c.inRecovery) {
        if (seqGe(ack, c.recoverSeq)) {
          c.inRecovery = false; // RFC 6582 §3.2 step 3: full acknowledgment
          c.cc.cwnd = Math.max(c.cc.ssthresh, c.cc.cwnd > c.cc.ssthresh ? c.cc.ssthresh : c.cc.cwnd);
        } else if (c.sackOk && seqGt(c.rexmitNext, c.una) && c.headSeq !== c.una) {
          // The new head was retransmitted already: watch it as above, from what is sent now.
          this.watchHead(now, c);
        } else if (!c.sackOk && seqLe(c.rexmitNext, c.una)) {
          // A partial ACK (RFC 6582 §3.2 step 5): the segment at una is lost too; resend it now.
          // With SACK the scoreboard says what is lost (flush, RFC 6675 NextSeg): a partial ACK
          // that only reflects delayed ACKs or reordering is no proof, and resending on it sent
          // duplicates of segments still in flight.
          this.resendUna(now, c);
        }
      } else {
        if (c.cc.cwnd < c.cc.ssthresh && c.hystart.onAck(ack, c.sndMax, c.rtt.lastRtt)) {
          c.cc.ssthresh = c.cc.cwnd;
          this.count('hystartExits');
        }
        c.rtt.lastRtt = -1;
        c.cc.onAck(now, acked, c.rtt.srtt, seqDiff(c.sndMax, c.una));
      }
      c.dupAcks = 0;
      acked = 0;
      // RFC 6582 §4 "impatient": in recovery only the first partial ACK re-arms the timer, so a
      // long run of losses beyond the SACKed data ends in a timeout instead of one segment per RTT.
      c.tlpDone = false; // new data acknowledged: the next tail may be probed again
      if (!c.inRecovery) {
        if (seqDiff(c.sndMax, c.una) > 0) this.armRto(now, c);
        else {
          c.tlpArmed = false;
          this.setTimer(c, 'rto', NEVER);
        }
      } else if (c.partialAcks++ === 0) this.setTimer(c, 'rto', seqDiff(c.sndMax, c.una) > 0 ? now + c.rtt.rto : NEVER);
      if (c.wantWritable && c.sbuf.space > 0 && canSend(c.state)) {
        c.wantWritable = false;
        this.emit({ type: 'tcp-writable', conn: c });
      }
      this.markDirty(c);
    } else if (ack === c.una && seqDiff(c.sndMax, c.una) > 0 && (c.sackOk ? c.sackedBytes > sackedBefore : win === c.sndWnd)) {
      // A duplicate ACK (RFC 5681 §2); with SACK, one that SACKs new data (RFC 6675 §2
      // "DupAck"), whatever its window (a receiver that autotunes its buffer changes the window
      // in every ACK); an ACK for a duplicate segment, carrying only a D-SACK, is no sign of loss.
      c.dupAcks++;
      if (c.holeSince === NEVER && c.sackedBytes > 0) c.holeSince = now;
      const lostBySack = c.sackOk && c.sackedBytes > 3 * c.mss;
      // RFC 6582 §3.2 step 1: no new recovery until everything outstanding at the last loss is acknowledged.
      if (!c.inRecovery && (c.dupAcks >= 3 || lostBySack) && seqGe(c.una, c.recoverSeq)) {
        const wait = c.reorderSeen && c.holeSince !== NEVER ? c.holeSince + this.reoWnd(c) - now : 0;
        if (wait <= 0) this.enterRecovery(now, c);
        else if (c.timers.reo === NEVER) this.setTimer(c, 'reo', now + wait);
      }
      this.markDirty(c);
    }
    // Send window update (RFC 9293 §3.10.7.4, fifth check).
    if (seqLt(c.wl1, h.seq) || (c.wl1 === h.seq && seqLe(c.wl2, ack))) {
      const opened = win > c.sndWnd;
      c.sndWnd = win;
      c.wl1 = h.seq;
      c.wl2 = ack;
      if (opened) {
        this.cancelTimer(c, 'persist');
        this.markDirty(c);
      }
    }
    // Our FIN acknowledged?
    if (c.finSent && ack === c.sndMax && seqDiff(c.sndMax, c.una) === 0) {
      switch (c.state) {
        case 'FIN-WAIT-1':
          c.state = 'FIN-WAIT-2';
          break;
        case 'CLOSING':
          this.enterTimeWait(now, c);
          break;
        case 'LAST-ACK':
          this.destroy(c, undefined, now);
          return false;
        default:
          break;
      }
    }
    return true;
  }

  /** Fast retransmit (RFC 5681 §3.2, RFC 6675 §5): recovery starts with the segment at una. */
  private enterRecovery(now: Instant, c: Conn): void {
    c.inRecovery = true;
    c.partialAcks = 0;
    c.recoverSeq = c.sndMax;
    c.rexmitNext = c.una;
    this.cancelTimer(c, 'reo');
    c.undoState = c.cc.save();
    if (c.undoPending) c.undoPending.clear();
    else c.undoPending = new Set();
    c.cc.onLoss(now, seqDiff(c.sndMax, c.una));
    this.count('fastRetransmits');
    this.resendUna(now, c);
  }

  /** Sends the segment at una again and notes it as a retransmission of this recovery. */
  private resendUna(now: Instant, c: Conn): void {
    const len = Math.min(c.mss - (c.tsOk ? 12 : 0), c.sbuf.length);
    if (len <= 0) return;
    this.emitSegment(now, c, ACK, c.una, 0, len);
    if (seqLt(c.rexmitNext, seqAdd(c.una, len))) c.rexmitNext = seqAdd(c.una, len);
    this.noteRetransmit(now, c, c.una);
  }

  private headLost(now: Instant, c: Conn): boolean {
    const b = c.sacked;
    if (b.length > 0 && seqGt(b[b.length - 1]!, seqAdd(c.headMark, 2 * c.mss))) return true;
    return c.rtt.srtt > 0 && now >= this.headDeadline(c);
  }

  /** When the retransmission at una should have been acknowledged (RFC 8985 §6.3, with RTTVAR for queueing). */
  private headDeadline(c: Conn): number {
    return c.headTime + c.rtt.srtt + 4 * c.rtt.rttvar + this.reoWnd(c);
  }

  /**
   * Starts watching the retransmitted segment at una from now: by order (what has been sent
   * so far) and by time, with the timer so a lost one is found when no ACK comes either.
   */
  private watchHead(now: Instant, c: Conn): void {
    c.headSeq = c.una;
    c.headMark = c.sndMax;
    c.headTime = now;
    if (c.rtt.srtt > 0) this.setTimer(c, 'reo', this.headDeadline(c));
  }

  /** The retransmission at una was lost: send it again, within the same recovery (no new window cut). */
  private resendHead(now: Instant, c: Conn): void {
    if (c.sbuf.length === 0) return;
    c.undoState = undefined; // a retransmission was lost: this recovery was real
    this.resendUna(now, c);
    this.count('lostRetransmits');
  }

  /** A retransmission in recovery; past a bound the episode is simply not undone. */
  private noteRetransmit(now: Instant, c: Conn, seq: number): void {
    if (seq === c.una) this.watchHead(now, c);
    const p = c.undoPending;
    if (c.undoState === undefined || p === undefined) return;
    if (p.size >= MAX_UNDO_TRACKED) {
      c.undoState = undefined;
      p.clear();
    } else p.add(seq);
  }

  /** RFC 8985 §6.2: the reordering window, a quarter of the minimum RTT per step, at most SRTT. */
  private reoWnd(c: Conn): number {
    // Samples are whole milliseconds (the timestamp clock), so a sub-millisecond path counts as 1 ms.
    return Math.min((c.reoMult * Math.max(c.rtt.minRtt, 1)) / 4, Math.max(c.rtt.srtt, 1));
  }

  /**
   * The reordering timer: outside recovery, the hole at una has waited out the window with
   * SACKs above it; in recovery, the retransmission at una is overdue.
   */
  private onReoTimer(now: Instant, c: Conn): void {
    if (c.inRecovery) {
      if (c.headSeq === c.una && canSend(c.state) && this.headLost(now, c)) {
        this.resendHead(now, c);
        this.markDirty(c);
      }
      return;
    }
    if (c.holeSince === NEVER || c.sacked.length === 0 || !seqGe(c.una, c.recoverSeq) || !canSend(c.state)) return;
    this.enterRecovery(now, c);
    this.markDirty(c);
  }

  /**
   * A D-SACK arrived: something reached the receiver twice. If every retransmission of
   * the last recovery is reported so, the originals were only late: the window cut is
   * undone (RFC 3708 §3, RFC 4015 §3.2), reordering is known to happen, and the
   * reordering window widens (RFC 8985 §6.2). Duplicates of anything else (a tail probe,
   * data resent after a timeout) prove nothing and only count.
   */
  private onDsack(c: Conn, l: number): void {
    this.count('dsackReceived');
    const p = c.undoPending;
    if (c.undoState === undefined || p === undefined || !p.delete(l) || p.size > 0) return;
    c.cc.undo(c.undoState);
    c.undoState = undefined;
    c.inRecovery = false;
    c.reorderSeen = true;
    c.reoMult = Math.min(c.reoMult + 1, 16);
    this.count('spuriousRecoveries');
  }

  private updateScoreboard(c: Conn, blocks: number[]): void {
    for (let i = 0; i + 1 < blocks.length; i += 2) {
      const l = blocks[i]!;
      const r = blocks[i + 1]!;
      // Ignore blocks that are not inside what we sent (RFC 2018, RFC 6675 §4).
      if (!seqLt(l, r) || seqGt(r, c.sndMax) || seqLe(r, c.una)) continue;
      if (c.sacked.length >= 2 * MAX_RANGES) {
        this.count('drop.sackRanges');
        break;
      }
      addRange(c.sacked, seqLt(l, c.una) ? c.una : l, r);
    }
    c.sackedBytes = rangeBytes(c.sacked);
  }

  private pruneScoreboard(c: Conn): void {
    if (c.sacked.length === 0) return;
    trimBelow(c.sacked, c.una);
    c.sackedBytes = rangeBytes(c.sacked);
  }

  private receiveData(now: Instant, c: Conn, seq: number, data: Uint8Array): void {
    // Trim what we already have.
    let d = data;
    let s = seq;
    if (seqLt(s, c.rcvNxt)) {
      const skip = seqDiff(c.rcvNxt, s);
      this.noteDuplicate(c, s, seqLt(seqAdd(s, d.length), c.rcvNxt) ? seqAdd(s, d.length) : c.rcvNxt);
      if (skip >= d.length) {
        c.ackNow = true; // a pure duplicate: ACK at once so the sender's dup-ACK count is right
        this.markDirty(c);
        return;
      }
      d = d.subarray(skip);
      s = c.rcvNxt;
    }
    const wnd = c.rcvWindow();
    if (d.length > wnd + seqDiff(c.rcvNxt, s)) d = d.subarray(0, Math.max(0, wnd - seqDiff(s, c.rcvNxt)));
    if (d.length === 0) return;
    if (s === c.rcvNxt) {
      const filledGap = c.ooo.length > 0;
      const n = c.rbuf.push(d);
      c.rcvNxt = seqAdd(c.rcvNxt, n);
      // Pull in out-of-order segments that now continue the stream.
      let k = 0;
      for (; k < c.ooo.length && seqLe(c.ooo[k]!.seq, c.rcvNxt); k++) {
        const o = c.ooo[k]!;
        c.oooBytes -= o.data.length;
        const end = seqAdd(o.seq, o.data.length);
        if (seqGt(end, c.rcvNxt)) {
          const part = o.data.subarray(seqDiff(c.rcvNxt, o.seq));
          c.rcvNxt = seqAdd(c.rcvNxt, c.rbuf.push(part));
        }
      }
      if (k > 0) c.ooo.splice(0, k);
      if (filledGap) trimBelow(c.oooRanges, c.rcvNxt);
      this.readable(c);
      c.segsSinceAck++;
      // RFC 1122 §4.2.3.2 / RFC 5681 §4.2: ACK at least every second full segment; at once when filling a hole.
      if (c.segsSinceAck >= 2 || filledGap || c.ooo.length > 0 || data.length < c.mss / 2) c.ackNow = true;
      else if (c.timers.delack === NEVER) this.setTimer(c, 'delack', now + this.opts.delayedAckMs);
      if (c.ackNow) this.markDirty(c);
      return;
    }
    // Out of order: keep it (bounded by the window) and send a duplicate ACK with SACK at once.
    const e = seqAdd(s, d.length);
    if (covers(c.oooRanges, s, e)) {
      this.noteDuplicate(c, s, e);
      this.noteRecent(c, s); // RFC 2883 §4: the block holding a D-SACKed range comes next
    } else if (c.oooRanges.length >= 2 * MAX_RANGES && findRange(c.oooRanges, seqAdd(s, -1)) < 0 && findRange(c.oooRanges, e) < 0) {
      this.count('drop.oooRanges'); // it would open yet another range: the sender resends it
    } else if (c.oooBytes + d.length <= c.rbuf.max) {
      // After a hole, segments mostly arrive in order: the place is found from the end.
      let i = c.ooo.length;
      while (i > 0 && seqGt(c.ooo[i - 1]!.seq, s)) i--;
      if (i === c.ooo.length) c.ooo.push({ seq: s, data: d.slice() });
      else c.ooo.splice(i, 0, { seq: s, data: d.slice() });
      addRange(c.oooRanges, s, e);
      c.oooBytes += d.length;
      this.noteRecent(c, s);
      this.count('oooSegments');
    }
    c.ackNow = true;
    this.markDirty(c);
  }

  /**
   * Records the block an out-of-order segment went into as the newest, one entry per
   * block: when a batch both extends one block and opens another above it, the next ACK
   * reports both (RFC 2018 §4), or the sender never learns of the first block's new end
   * and resends what already arrived.
   */
  private noteRecent(c: Conn, s: number): void {
    const r = c.sackRecent;
    const j = findRange(c.oooRanges, s);
    for (let k = r.length - 1; k >= 0; k--) if (findRange(c.oooRanges, r[k]!) === j) r.splice(k, 1);
    r.unshift(s);
    if (r.length > MAX_SACK_BLOCKS) r.length = MAX_SACK_BLOCKS;
  }

  /** Data received twice: reported to the sender as a D-SACK block (RFC 2883) when SACK is on. */
  private noteDuplicate(c: Conn, from: number, to: number): void {
    if (!c.sackOk || !seqLt(from, to)) return;
    c.dsackL = from;
    c.dsackR = to;
    c.dsackPending = true;
    this.count('dsackSent');
  }

  private enterTimeWait(now: Instant, c: Conn): void {
    c.state = 'TIME-WAIT';
    this.cancelTimer(c, 'rto');
    this.cancelTimer(c, 'persist');
    this.cancelTimer(c, 'keepalive');
    this.setTimer(c, 'timewait', now + this.opts.timeWaitMs);
    // The application sees the close now; the 4-tuple stays reserved until TIME-WAIT ends.
    if (!c.closedEmitted && (c.accepted || !c.listener)) {
      c.closedEmitted = true;
      this.emit({ type: 'tcp-closed', conn: c, error: undefined });
    }
  }

  handleIcmpError(now: Instant, kind: IcmpErrorKind, src: IpAddr, dst: IpAddr, quoted: Uint8Array, mtu?: number): void {
    if (quoted.length < 8) return;
    const sport = (quoted[0]! << 8) | quoted[1]!;
    const dport = (quoted[2]! << 8) | quoted[3]!;
    const seq = ((quoted[4]! << 24) | (quoted[5]! << 16) | (quoted[6]! << 8) | quoted[7]!) >>> 0;
    const c = this.conns.get(connKey(src, sport, dst, dport));
    if (!c) return;
    // RFC 5927 §4.1: only errors quoting a sequence number in flight are believed.
    if (!(seqGe(seq, c.una) && seqLt(seq, c.sndMax)) && c.state !== 'SYN-SENT') return this.count('drop.icmpSeq');
    if (kind === 'packet-too-big' && mtu) {
      const v4 = c.localAddr.length === 4;
      const newMss = Math.max(v4 ? 536 : 1220, mtu - (v4 ? IP4_TCP : IP6_TCP));
      if (newMss < c.mss) {
        c.mss = newMss;
        c.nxt = c.una; // resend what was too big
        this.markDirty(c);
      }
      return;
    }
    // Hard errors in SYN-SENT end the attempt, as Linux does (RFC 1122 §4.2.3.9 allows it).
    if (c.state === 'SYN-SENT' && kind !== 'time-exceeded') {
      this.destroy(c, kind === 'unreachable-port' ? 'ECONNREFUSED' : kind === 'unreachable-net' ? 'ENETUNREACH' : 'EHOSTUNREACH', now);
    }
  }

  // --- timers ---------------------------------------------------------------------------------------

  handleTimeout(now: Instant): void {
    const due = new Set<Conn>();
    this.timers.collectDue(now, due);
    for (const c of due) {
      const t = c.timers;
      if (t.timewait <= now) {
        this.destroy(c, undefined, now);
        continue;
      }
      if (t.delack <= now) {
        this.cancelTimer(c, 'delack');
        c.ackNow = true;
        this.markDirty(c);
      }
      if (t.rto <= now) {
        this.cancelTimer(c, 'rto');
        this.onRto(now, c);
        if (c.state === 'CLOSED') continue;
      }
      if (t.persist <= now) {
        this.cancelTimer(c, 'persist');
        this.onPersist(now, c);
      }
      if (t.keepalive <= now) {
        this.cancelTimer(c, 'keepalive');
        this.onKeepalive(now, c);
      }
      if (t.reo <= now) {
        this.cancelTimer(c, 'reo');
        this.onReoTimer(now, c);
      }
      if (t.trim <= now) {
        this.cancelTimer(c, 'trim');
        c.rbuf.release();
        c.sbuf.release(); // each frees only an empty ring
      }
    }
  }

  /**
   * Arms the retransmission timer, or the earlier probe timeout of RFC 8985 §7.2
   * (PTO = 2 × SRTT, plus a delayed-ACK allowance when one segment is in flight) so a
   * lost tail is found in about two RTTs instead of a full RTO.
   */
  private armRto(now: Instant, c: Conn): void {
    const flight = seqDiff(c.sndMax, c.una);
    if (c.rtt.srtt > 0 && !c.tlpDone && !c.inRecovery && c.sbuf.length > 0 && (c.state === 'ESTABLISHED' || c.state === 'CLOSE-WAIT')) {
      const pto = Math.max(10, 2 * c.rtt.srtt + (flight <= c.mss ? this.opts.delayedAckMs : 0));
      if (pto < c.rtt.rto) {
        c.tlpArmed = true;
        this.setTimer(c, 'rto', now + pto);
        return;
      }
    }
    c.tlpArmed = false;
    this.setTimer(c, 'rto', now + c.rtt.rto);
  }

  /** RFC 8985 §7.3: resend the last segment sent, to draw a SACK that reveals any tail loss. */
  private sendProbe(now: Instant, c: Conn): void {
    c.tlpArmed = false;
    c.tlpDone = true;
    c.undoState = undefined; // a D-SACK of the probe must not count as one for the last recovery
    const dataEnd = seqAdd(c.una, c.sbuf.length);
    const end = seqLt(c.sndMax, dataEnd) ? c.sndMax : dataEnd;
    const len = Math.min(c.mss - (c.tsOk ? 12 : 0), seqDiff(end, c.una));
    if (len > 0) {
      const seq = seqAdd(end, -len);
      this.emitSegment(now, c, ACK, seq, seqDiff(seq, c.una), len);
      this.count('tailLossProbes');
    }
    this.setTimer(c, 'rto', now + c.rtt.rto);
  }

  private onRto(now: Instant, c: Conn): void {
    if (c.tlpArmed) return this.sendProbe(now, c);
    c.retries++;
    this.count('rtoExpired');
    if (c.state === 'SYN-SENT' || c.state === 'SYN-RECEIVED') {
      if (c.retries > this.opts.synRetries) return this.destroy(c, 'ETIMEDOUT', now);
      c.rtt.backoff();
      this.sendSyn(now, c, c.state === 'SYN-RECEIVED');
      return;
    }
    if (seqDiff(c.sndMax, c.una) === 0) return;
    if (c.retries > this.opts.maxRetries) {
      this.sendRst(c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
      return this.destroy(c, 'ETIMEDOUT', now);
    }
    // RFC 6298 §5.4–5.6 and RFC 5681 §3.1: back off, collapse the window, resend from una.
    c.cc.onTimeout(now, seqDiff(c.sndMax, c.una));
    c.rtt.backoff();
    c.inRecovery = false;
    c.undoState = undefined; // a timeout is not undone here
    c.holeSince = NEVER;
    this.cancelTimer(c, 'reo');
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
        this.emitSegment(now, c, FIN | ACK, c.una, 0, 0);
        c.nxt = seqAdd(c.una, 1);
        c.finSent = true;
      }
    } else if (c.finSent) {
      c.finSent = false;
      if (c.state === 'FIN-WAIT-1') c.state = 'ESTABLISHED';
      else if (c.state === 'LAST-ACK') c.state = 'CLOSE-WAIT';
    }
    this.setTimer(c, 'rto', now + c.rtt.rto);
    this.flush(now, c);
  }

  private onPersist(now: Instant, c: Conn): void {
    if (c.sndWnd > 0 || c.sbuf.length === 0 || !canSend(c.state)) return;
    // A one-byte probe beyond the window (RFC 9293 §3.8.6.1).
    this.emitSegment(now, c, ACK, c.una, 0, 1);
    c.persistBackoff = Math.min(c.persistBackoff + 1, 10);
    this.setTimer(c, 'persist', now + Math.min(MAX_RTO, c.rtt.rto * 2 ** c.persistBackoff));
  }

  private onKeepalive(now: Instant, c: Conn): void {
    if (c.keepaliveMs === 0 || c.state !== 'ESTABLISHED') return;
    if (c.keepaliveSent >= this.opts.keepaliveProbes) {
      this.sendRst(c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.nxt, c.rcvNxt, true);
      return this.destroy(c, 'ETIMEDOUT', now);
    }
    // RFC 1122 §4.2.3.6: a segment with SEG.SEQ = SND.NXT - 1 makes the peer answer with an ACK.
    this.emitSegment(now, c, ACK, seqAdd(c.nxt, -1), 0, 0);
    c.keepaliveSent++;
    this.setTimer(c, 'keepalive', now + this.opts.keepaliveIntervalMs);
  }
}
