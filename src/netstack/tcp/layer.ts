/**
 * TCP (RFC 9293) for the netstack, sans-IO. The TcpLayer demultiplexes segments
 * to connections and listeners, owns every timer as a stored deadline, and hands
 * segments to the Interface with headroom for the IP and WireGuard headers.
 *
 * What is implemented, with the RFC that says how: the full state machine
 * (RFC 9293 §3.3.2, §3.10), RST and SYN handling hardened per RFC 5961, ISNs per
 * RFC 6528, random ephemeral ports (RFC 6056), window scaling and timestamps with
 * PAWS (RFC 7323), SACK (RFC 2018) with SACK-based loss recovery (RFC 6675),
 * RTO (RFC 6298), NewReno/CUBIC (RFC 5681/9438), BBR with pacing (bbr.ts) on
 * delivery-rate samples (draft-cheng-iccrg-delivery-rate-estimation), delayed ACKs and
 * keepalives (RFC 1122), Nagle (RFC 896), zero-window probing, SYN cookies (RFC 4987).
 *
 * One file per job: this one demultiplexes and owns the connection table, events and
 * timers; input.ts (segment arrival), accept.ts (listeners, ISN, SYN cookies), snd.ts
 * (sending, pacing, ACKs), rcv.ts (receiving, SACK blocks), sack.ts (the scoreboard),
 * recovery.ts (loss recovery, RTO, TLP), rtt.ts, rate.ts (delivery rate), congestion.ts
 * (NewReno, CUBIC), hystart.ts, bbr.ts, timers.ts and output.ts (segments).
 */
import type { Deadline, Instant } from '../../util/time.js';
import { noTrace } from '../../util/trace.js';
import { formatHostPort, formatIp, ipEqual, type IpAddr } from '../../util/ip.js';
import { systemError, invalidArgument } from '../../util/errors.js';
import { ACK, FIN, PSH, URG, parseTcp, RST, SYN, seqAdd, seqGe, seqLt, tcpChecksumOk, tcpDstPort, tcpSeq, tcpSrcPort, TCP_HEADER_LEN, type TcpSegmentInfo } from '../../wire/tcp.js';
import { addressKey, type PeerKey } from '../types.js';
import type { IcmpErrorKind, TcpConnectOptions, TcpConnection, TcpErrorCode, TcpEvent, TcpLayerApi, TcpListener, TcpListenOptions, TcpOutput } from '../types.js';
import { DEFAULT_MAX_CONNECTIONS_PER_PEER, IP4_TCP, IP6_TCP, NEVER, TRIM_MS, type TcpOptions } from './constants.js';
import { newTcpStats, type TcpCounter, type TcpDrop, type TcpStats } from './counters.js';
import { TIMER_REASON, TimerHeap } from './timers.js';
import { pickEphemeralPort } from '../ports.js';
import { Conn, connKey } from './conn.js';
import { isn, Listener, listenArrives, openPassive } from './accept.js';
import { RttMemory } from './rtt.js';
import { segmentArrives, timeWaitReusable } from './input.js';
import { flush, onKeepalive, onPersist } from './snd.js';
import { onReoTimer, onRto } from './recovery.js';
import { sendRst, sendSyn } from './output.js';

export class TcpLayer implements TcpLayerApi {
  readonly opts: TcpOptions;
  /** Counters by name (counters.ts); read them, or take a copy with statsSnapshot(). */
  readonly stats: TcpStats = newTcpStats();
  // Shared with the files of this directory, not part of the API.
  readonly conns = new Map<string, Conn>();
  readonly listeners = new Map<number, Listener[]>();
  readonly timers = new TimerHeap<Conn>();
  /** Segments to send; output.ts appends, pollTransmit drains. */
  out: TcpOutput[] = [];
  readonly secret = new Uint8Array(32);
  private lastHit: Conn | undefined;
  private readonly dirty = new Set<Conn>();
  private outHead = 0;
  private events: TcpEvent[] = [];
  private evHead = 0;
  /** Connections from listeners per peer (TcpOptions.maxConnectionsPerPeer), and whose each one is. */
  private readonly perPeer = new Map<PeerKey, number>();
  private readonly peerOfConn = new Map<Conn, PeerKey>();
  /** Each host's last RTT, for the next handshake's timer (RFC 9040). */
  readonly rttMemory = new RttMemory();

  constructor(opts: Partial<TcpOptions> & Pick<TcpOptions, 'rng' | 'mtu' | 'isLocal' | 'sourceFor'>) {
    this.opts = {
      trace: noTrace,
      sendBufferMax: 4 * 1024 * 1024,
      recvBufferMax: 4 * 1024 * 1024,
      // BBR by default: chosen by measurement (README, Congestion control): far ahead under random
      // loss, level without it, and gentler to a CUBIC flow than the kernel's BBR.
      congestionControl: 'bbr',
      timeWaitMs: 2_000,
      synRetries: 6,
      maxRetries: 15,
      delayedAckMs: 40,
      keepaliveIntervalMs: 75_000,
      keepaliveProbes: 9,
      defaultBacklog: 128,
      maxConnectionsPerPeer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
      ...opts,
    };
    this.opts.rng.fill(this.secret);
  }

  /** Counts an event; drops go through drop() instead, which traces them. */
  count(what: Exclude<TcpCounter, TcpDrop>): void {
    this.stats[what]++;
  }

  /**
   * A segment dropped without effect (DESIGN §5), or answered with RST for want of a
   * connection: counted and, when the trace takes debug, traced as `tcp <name>` with where
   * it came from and what it said (the api layer publishes `tcp drop.*` on wgnet:drop). The
   * trace is asked once per drop and the fields are built only if it says yes, so otherwise
   * a drop costs a counter store and that one call. `c` is the connection it reached, if
   * any; `src` and `dst` name the ends when there is none.
   */
  drop(what: TcpDrop, c: Conn | undefined, h?: TcpSegmentInfo, src?: IpAddr, dst?: IpAddr): void {
    this.stats[what]++;
    const trace = this.opts.trace;
    if (trace.enabled('debug')) trace.log('debug', `tcp ${what}`, dropFields(c, h, src, dst));
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

  /** The peer (or, without one, the address) a remote address counts against. */
  peerKey(addr: IpAddr): PeerKey {
    return this.opts.peerOf?.(addr) ?? addressKey(addr);
  }

  /** Connections from listeners that the peer `key` holds now. */
  connectionsOf(key: PeerKey): number {
    return this.perPeer.get(key) ?? 0;
  }

  /** Whether the peer `key` may open one more connection through a listener. */
  peerHasRoom(key: PeerKey): boolean {
    return this.connectionsOf(key) < this.opts.maxConnectionsPerPeer;
  }

  /** Charges a connection a listener just made to its peer; released by destroy() or TIME-WAIT. */
  holdPeerSlot(c: Conn, key: PeerKey): void {
    this.peerOfConn.set(c, key);
    this.perPeer.set(key, this.connectionsOf(key) + 1);
  }

  /** Gives the connection's slot back to its peer (once; a no-op for connections not charged). */
  private releasePeerSlot(c: Conn): void {
    const key = this.peerOfConn.get(c);
    if (key === undefined) return;
    this.peerOfConn.delete(c);
    const n = this.connectionsOf(key) - 1;
    if (n <= 0) this.perPeer.delete(key);
    else this.perPeer.set(key, n);
  }

  markDirty(c: Conn): void {
    this.dirty.add(c);
  }

  /** Frees a connection's drained buffers if they are still empty TRIM_MS from now (see ByteRing). */
  armTrim(c: Conn, now: Instant): void {
    if (c.timers.trim === NEVER) this.timers.arm(c, 'trim', now + TRIM_MS);
  }

  emit(ev: TcpEvent): void {
    this.events.push(ev);
  }

  readable(c: Conn): void {
    if (!c.readableNotified && (c.accepted || !c.listener)) {
      c.readableNotified = true;
      this.emit({ type: 'tcp-readable', conn: c });
    }
  }

  destroy(c: Conn, error: TcpErrorCode | undefined): void {
    if (c.state !== 'CLOSED') this.rttMemory.remember(addressKey(c.remoteAddr), c.rtt, c.lastActivity);
    c.state = 'CLOSED';
    if (error && !c.error) c.error = error;
    this.conns.delete(c.key);
    if (this.lastHit === c) this.lastHit = undefined;
    this.dirty.delete(c);
    this.timers.cancelAll(c);
    this.releasePeerSlot(c);
    c.listener?.synLeave(c); // a no-op unless it was still in the SYN queue
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

  enterTimeWait(now: Instant, c: Conn): void {
    c.state = 'TIME-WAIT';
    this.timers.cancel(c, 'rto');
    this.timers.cancel(c, 'persist');
    this.timers.cancel(c, 'keepalive');
    this.timers.arm(c, 'timewait', now + this.opts.timeWaitMs);
    // The peer gets its slot back now: the application is done with the connection, and
    // what remains only guards the 4-tuple, which the peer's own new SYN may reuse (RFC 6191).
    this.releasePeerSlot(c);
    // The application sees the close now; the 4-tuple stays reserved until TIME-WAIT ends.
    if (!c.closedEmitted && (c.accepted || !c.listener)) {
      c.closedEmitted = true;
      this.emit({ type: 'tcp-closed', conn: c, error: undefined });
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
      // A port whose 4-tuple is free (RFC 6056 §2.1: only the whole 4-tuple must be unique).
      const free = pickEphemeralPort(this.opts.rng, (p) => this.conns.has(connKey(local, p, o.remoteAddr, o.remotePort)));
      if (free === undefined) throw systemError('EADDRNOTAVAIL', 'connect');
      port = free;
    } else if (this.conns.has(connKey(local, port, o.remoteAddr, o.remotePort))) throw systemError('EADDRINUSE', 'connect');
    const c = new Conn(this, local.slice(), port, o.remoteAddr.slice(), o.remotePort);
    c.noDelay = o.noDelay ?? true;
    c.iss = isn(this, now, c);
    c.una = c.iss;
    c.nxt = seqAdd(c.iss, 1);
    c.sndMax = c.nxt;
    c.recoverSeq = c.iss;
    c.state = 'SYN-SENT';
    c.lastActivity = now;
    c.rtt.rto = this.rttMemory.initialRto(addressKey(c.remoteAddr), now);
    c.rtt.time(c.iss, now); // the SYN's round trip is the first RTT sample (RFC 6298 §2.1 allows it when not retransmitted)
    this.conns.set(c.key, c);
    sendSyn(this, now, c, false);
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

  // --- output ---------------------------------------------------------------------------------

  pollTransmit(now: Instant): TcpOutput | undefined {
    if (this.outHead >= this.out.length) {
      this.out = [];
      this.outHead = 0;
      if (this.dirty.size > 0) {
        const list = [...this.dirty];
        this.dirty.clear();
        for (const c of list) if (c.state !== 'CLOSED') flush(this, now, c);
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

  claims(src: IpAddr, dst: IpAddr, segment: Uint8Array): boolean {
    const srcPort = tcpSrcPort(segment);
    const dstPort = tcpDstPort(segment);
    const c = this.lookup(dst, dstPort, src, srcPort);
    // Only a segment whose checksum holds may end a TIME-WAIT (handleSegment checks its own).
    const h = c?.state === 'TIME-WAIT' && tcpChecksumOk(segment, src, dst) ? parseTcp(segment) : undefined;
    if (c !== undefined && !(h && this.endTimeWaitFor(c, h))) return true;
    return this.opts.isLocal(dst) && this.findListener(dst, dstPort) !== undefined;
  }

  /** Ends `c`'s TIME-WAIT when `h` is a SYN that may reuse its 4-tuple (input.ts). */
  private endTimeWaitFor(c: Conn, h: TcpSegmentInfo): boolean {
    if (!timeWaitReusable(c, h)) return false;
    this.count('timeWaitReused');
    this.destroy(c, undefined);
    return true;
  }

  acceptSyn(now: Instant, src: IpAddr, dst: IpAddr, syn: Uint8Array): TcpConnection {
    const h = parseTcp(syn);
    if (!h || !(h.flags & SYN) || this.lookup(dst, h.dstPort, src, h.srcPort)) throw invalidArgument('acceptSyn: not a SYN for a free 4-tuple');
    this.count('rxSegments');
    return openPassive(this, now, src, dst, h, undefined);
  }

  handleSegment(now: Instant, src: IpAddr, dst: IpAddr, s: Uint8Array): void {
    this.count('rxSegments');
    if (s.length < TCP_HEADER_LEN) return this.drop('drop.short', undefined, undefined, src, dst);
    if (!tcpChecksumOk(s, src, dst)) return this.drop('drop.checksum', undefined, undefined, src, dst);
    const h = parseTcp(s);
    if (!h) return this.drop('drop.header', undefined, undefined, src, dst);
    const f = h.flags;
    // Impossible combinations are dropped unanswered (SYN+RST, SYN+FIN).
    if ((f & SYN && f & (RST | FIN)) || h.srcPort === 0 || h.dstPort === 0) return this.drop('drop.flags', undefined, h, src, dst);
    const payload = s.subarray(h.headerLen);
    const c = this.lookup(dst, h.dstPort, src, h.srcPort);
    if (c && !this.endTimeWaitFor(c, h)) return segmentArrives(this, now, c, h, payload);
    // Listeners serve our own addresses; in gateway mode other destinations arrive here too.
    const l = this.opts.isLocal(dst) ? this.findListener(dst, h.dstPort) : undefined;
    if (l) {
      // A SYN-cookie handshake may complete with data on its last ACK.
      const made = listenArrives(this, now, l, src, dst, h);
      if (made !== undefined && payload.length > 0) segmentArrives(this, now, made, h, payload);
      return;
    }
    // RFC 9293 §3.10.7.1: CLOSED. An RST is ignored; anything else gets an RST.
    if (f & RST) return;
    this.drop('rstNoConnection', undefined, h, src, dst);
    if (f & ACK) sendRst(this, dst, src, h.dstPort, h.srcPort, h.ack, 0, false);
    else sendRst(this, dst, src, h.dstPort, h.srcPort, 0, seqAdd(h.seq, payload.length + (f & SYN ? 1 : 0) + (f & FIN ? 1 : 0)), true);
  }

  handleIcmpError(now: Instant, kind: IcmpErrorKind, src: IpAddr, dst: IpAddr, quoted: Uint8Array, mtu?: number): void {
    if (quoted.length < 8) return;
    const c = this.conns.get(connKey(src, tcpSrcPort(quoted), dst, tcpDstPort(quoted)));
    if (!c) return;
    // RFC 5927 §4.1: only errors quoting a sequence number in flight are believed.
    const seq = tcpSeq(quoted);
    if (!(seqGe(seq, c.una) && seqLt(seq, c.sndMax)) && c.state !== 'SYN-SENT') return this.drop('drop.icmpSeq', c);
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
      this.destroy(c, kind === 'unreachable-port' ? 'ECONNREFUSED' : kind === 'unreachable-net' ? 'ENETUNREACH' : 'EHOSTUNREACH');
    }
  }

  // --- timers ---------------------------------------------------------------------------------------

  handleTimeout(now: Instant): void {
    const due = new Set<Conn>();
    this.timers.collectDue(now, due);
    for (const c of due) {
      const t = c.timers;
      if (t.timewait <= now) {
        this.destroy(c, undefined);
        continue;
      }
      if (t.delack <= now) {
        this.timers.cancel(c, 'delack');
        c.ackNow = true;
        this.markDirty(c);
      }
      if (t.rto <= now) {
        this.timers.cancel(c, 'rto');
        if (onRto(this, now, c)) flush(this, now, c);
        if (c.state === 'CLOSED') continue;
      }
      if (t.persist <= now) {
        this.timers.cancel(c, 'persist');
        onPersist(this, now, c);
      }
      if (t.keepalive <= now) {
        this.timers.cancel(c, 'keepalive');
        onKeepalive(this, now, c);
      }
      if (t.reo <= now) {
        this.timers.cancel(c, 'reo');
        onReoTimer(this, now, c);
      }
      if (t.pace <= now) {
        // The pacing schedule caught up (snd.ts): the next quantum may go.
        this.timers.cancel(c, 'pace');
        this.markDirty(c);
      }
      if (t.trim <= now) {
        this.timers.cancel(c, 'trim');
        c.rbuf.release();
        c.sbuf.release(); // each frees only an empty ring
        c.rate.release();
      }
    }
  }
}

/** What a drop trace says: the ends (remote first, as the segment travelled), the state, the header's fields. */
function dropFields(c: Conn | undefined, h: TcpSegmentInfo | undefined, src: IpAddr | undefined, dst: IpAddr | undefined): Record<string, unknown> {
  const from = c ? c.remoteAddr : src;
  const to = c ? c.localAddr : dst;
  const sport = h ? h.srcPort : c?.remotePort;
  const dport = h ? h.dstPort : c?.localPort;
  const f: Record<string, unknown> = {};
  if (from) f.src = sport === undefined ? formatIp(from) : formatHostPort(from, sport);
  if (to) f.dst = dport === undefined ? formatIp(to) : formatHostPort(to, dport);
  if (c) f.state = c.state;
  if (h) {
    f.flags = flagNames(h.flags);
    f.seq = h.seq;
    f.ack = h.ack;
    f.window = h.window;
  }
  return f;
}

/** Flags as tcpdump prints them (S, F, R, P, U, and . for ACK). */
function flagNames(flags: number): string {
  let s = '';
  if (flags & SYN) s += 'S';
  if (flags & FIN) s += 'F';
  if (flags & RST) s += 'R';
  if (flags & PSH) s += 'P';
  if (flags & URG) s += 'U';
  if (flags & ACK) s += '.';
  return s;
}
