/**
 * The netstack's network interface (sans-IO, DESIGN §2): IP packets from the
 * tunnel in, IP packets out. It validates IPv4/IPv6, answers ICMP echo, runs
 * UDP sockets, hands TCP segments to the TcpLayer and writes IP headers in
 * place in front of what the TcpLayer sends. Never imports src/wireguard.
 */
import type { Deadline, Instant } from '../util/time.js';
import { earliest } from '../util/time.js';
import type { Rng } from '../util/rng.js';
import { randomU32 } from '../util/rng.js';
import { noTrace, type Trace } from '../util/trace.js';
import { allocPacket, WG_HEADROOM, WG_TAILROOM } from '../util/bytes.js';
import { checksum } from '../util/checksum.js';
import { formatIp, ipEqual, parseIp, prefixContains, type IpAddr } from '../util/ip.js';
import { systemError, invalidArgument } from '../util/errors.js';
import { increment, type Counters } from '../util/counters.js';
import {
  IPV4_HEADER_LEN,
  IPV6_HEADER_LEN,
  parseIPv4,
  parseIPv6,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  writeIPv4Header,
  writeIPv6Header,
  type IpInfo,
  type IpParseError,
} from '../wire/ip.js';
import { TCP_HEADER_LEN } from '../wire/tcp.js';
import { MAX_UDP_PAYLOAD, parseUdp, UDP_HEADER_LEN, udpSrcPort, writeUdp, type UdpParseError } from '../wire/udp.js';
import {
  echoId,
  echoSeq,
  echoType,
  echoRequestToReply,
  fillIcmpChecksum,
  ICMP_HEADER_LEN,
  icmpChecksumOk,
  icmpErrorKind,
  icmpType,
  MAX_QUOTE_V4,
  MAX_QUOTE_V6,
  packetTooBigMtu,
  parseQuoted,
  writeEcho,
  writeUnreachable,
} from '../wire/icmp.js';
import { addressKey, type IcmpErrorKind, type PeerKey, type PeerOf, type TcpEvent, type TcpLayerApi } from './types.js';
import { FlowTable, type EchoRequest, type FlowCounter, type FlowEvent, type FlowTableOptions, type UnreachableKind } from './flows.js';

export type { EchoRequest, UdpFlow, UnreachableKind } from './flows.js';
import { TcpLayer, type TcpOptions } from './tcp/index.js';
import { Reassembler, type ReassemblyCounter, type ReassemblyOptions } from './reassembly.js';
import { pickEphemeralPort } from './ports.js';

export interface InterfaceOptions {
  addresses: string[];
  mtu?: number;
  rng: Rng;
  trace?: Trace;
  /** TCP options, among them `maxConnectionsPerPeer` (default 4096; constants.ts says why). */
  tcp?: Partial<Omit<TcpOptions, 'peerOf'>>;
  /**
   * Fragment reassembly limits: memory in all (`maxBytes`, 4 MiB) and per peer
   * (`maxBytesPerSource`, 1 MiB), timeouts; the defaults suit a tunnel.
   */
  reassembly?: Omit<ReassemblyOptions, 'count' | 'peerOf'>;
  /**
   * The peer an inner packet's source address belongs to (types.ts): the tunnel answers from
   * its AllowedIPs (cryptokey routing, whitepaper §2), so that the per-peer limits (TCP
   * connections through listeners, reassembly memory, a UDP socket's receive queue) count a
   * peer's whole range as one. Absent, or undefined for an address: each address counts alone.
   */
  peerOf?: PeerOf;
  /** Gateway mode's table bounds (flows.ts). */
  flows?: FlowTableOptions;
}

export type NetEvent =
  | TcpEvent
  | { type: 'udp-readable'; socket: UdpSocket }
  | { type: 'udp-error'; socket: UdpSocket; error: 'ECONNREFUSED' | 'EHOSTUNREACH' | 'EMSGSIZE' }
  /** `from` and `data` are views into the received packet. */
  | { type: 'echo-reply'; from: IpAddr; id: number; seq: number; ttl: number; data: Uint8Array }
  | FlowEvent; // gateway mode

/**
 * The Interface's counters (util/counters.ts): packets in and out, and why input was dropped
 * (`drop.*`) at the IP, ICMP and UDP layers, in reassembly (reassembly.ts) and in gateway
 * mode's flow table (flows.ts). A name appears once counted; metrics export these names.
 * `drop.udp.queueFull` is a datagram refused by a full socket queue, `drop.udp.queueShare` one
 * that a full queue dropped to make room for a peer holding less of it (Interface.enqueueUdp).
 */
export type NetCounter =
  | 'rxPackets'
  | 'txPackets'
  | 'txFragments'
  | 'txUnreachable'
  | 'udp.noSocket'
  | `drop.ip.${IpParseError}`
  | 'drop.ip.notForUs'
  | 'drop.ip.fragment'
  | 'drop.ip.protocol'
  | 'drop.icmp.family'
  | 'drop.icmp.checksum'
  | 'drop.icmp.notForUs'
  | 'drop.icmp.rate'
  | 'drop.icmp.type'
  | 'drop.icmp.quote'
  | `drop.udp.${UdpParseError}`
  | 'drop.udp.notConnectedPeer'
  | 'drop.udp.queueFull'
  | 'drop.udp.queueShare'
  | ReassemblyCounter
  | FlowCounter;

export interface UdpSocket {
  readonly family: 4 | 6;
  readonly localAddr: IpAddr | undefined;
  readonly localPort: number;
  remote: { addr: IpAddr; port: number } | undefined;
  send(now: Instant, data: Uint8Array, addr?: IpAddr, port?: number): void;
  recv(): { data: Uint8Array; addr: IpAddr; port: number } | undefined;
  connect(addr: IpAddr, port: number): void;
  close(): void;
}

/**
 * ICMP errors we originate, per second (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)). Echo replies are
 * not limited: they answer a request one for one, so they cannot amplify, and the peer is
 * already authenticated by WireGuard (Linux leaves echo replies out of icmp_ratemask too).
 */
const ICMP_RATE = 1000;

const EMPTY = new Uint8Array(0);

/** A datagram waiting in a socket's queue, and the peer's share it is charged to (once the queue was full). */
interface Queued {
  data: Uint8Array;
  addr: IpAddr;
  port: number;
  share: Share | undefined;
  /** Dropped from the middle of the queue for another peer (enqueueUdp); skipped by recv(). */
  dropped: boolean;
}

/** One peer's part of a socket's queue: its bytes, and its datagrams oldest first from `head`. */
interface Share {
  key: PeerKey;
  bytes: number;
  list: Queued[];
  head: number;
}

class Udp implements UdpSocket {
  remote: { addr: IpAddr; port: number } | undefined;
  queue: Queued[] = [];
  queued = 0;
  /**
   * What each peer holds of the queue (Interface.enqueueUdp), kept only from the moment the
   * queue is full until it is empty again: a queue that never fills, the usual case, costs
   * no peer lookup per datagram.
   */
  shares: Map<PeerKey, Share> | undefined;
  /** Dropped entries still in `queue`. */
  dead = 0;
  closed = false;
  notified = false;
  constructor(
    private readonly iface: Interface,
    readonly family: 4 | 6,
    readonly localAddr: IpAddr | undefined,
    readonly localPort: number,
    readonly limit: number,
  ) {}
  send(now: Instant, data: Uint8Array, addr?: IpAddr, port?: number): void {
    if (this.closed) throw systemError('EBADF', 'send');
    const a = addr ?? this.remote?.addr;
    const p = port ?? this.remote?.port;
    if (!a || p === undefined) throw systemError('EDESTADDRREQ', 'send');
    if (data.length > MAX_UDP_PAYLOAD) throw systemError('EMSGSIZE', 'send');
    this.iface.sendUdp(now, this, a, p, data);
  }
  recv(): { data: Uint8Array; addr: IpAddr; port: number } | undefined {
    let m = this.queue.shift();
    while (m?.dropped) {
      this.dead--;
      m = this.queue.shift();
    }
    if (!m) {
      this.notified = false;
      return undefined;
    }
    // The oldest live datagram of the queue is the oldest live one of its share too.
    if (m.share) this.take(m.share);
    else this.queued -= m.data.length;
    return { data: m.data, addr: m.addr, port: m.port };
  }
  /** Drops `sh`'s oldest datagram from the middle of the queue: its bytes are freed at once. */
  drop(sh: Share): void {
    const m = this.take(sh);
    m.dropped = true;
    m.data = EMPTY;
    // The entry itself leaves the queue when recv() passes it; if the reader is slow, sweep
    // now and then so dropped entries never outnumber live ones (amortized O(1) per drop).
    if (++this.dead >= 64 && this.dead * 2 >= this.queue.length) {
      this.queue = this.queue.filter((q) => !q.dropped);
      this.dead = 0;
    }
  }
  /** Removes `sh`'s oldest datagram from the accounting (the queue itself is the caller's). */
  take(sh: Share): Queued {
    const m = sh.list[sh.head++]!;
    this.queued -= m.data.length;
    sh.bytes -= m.data.length;
    if (sh.head === sh.list.length) {
      this.shares!.delete(sh.key);
      if (this.shares!.size === 0) this.shares = undefined; // empty: back to no accounting
    } else if (sh.head >= 1024 && sh.head * 2 >= sh.list.length) {
      sh.list = sh.list.slice(sh.head); // a share that never empties must not grow without bound
      sh.head = 0;
    }
    return m;
  }
  /** Starts the accounting: charges each datagram queued so far to its peer. */
  account(keyOf: (a: IpAddr) => PeerKey): Map<PeerKey, Share> {
    const shares = new Map<PeerKey, Share>();
    for (const q of this.queue) {
      if (q.dropped) continue;
      const key = keyOf(q.addr);
      let sh = shares.get(key);
      if (!sh) shares.set(key, (sh = { key, bytes: 0, list: [], head: 0 }));
      q.share = sh;
      sh.list.push(q);
      sh.bytes += q.data.length;
    }
    return (this.shares = shares);
  }
  connect(addr: IpAddr, port: number): void {
    this.remote = { addr, port };
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.iface.unbindUdp(this);
  }
}

export class Interface {
  readonly mtu: number;
  readonly addresses: ReadonlyArray<{ addr: IpAddr; bits: number }>;
  readonly tcp: TcpLayerApi;
  /** Counters by name (NetCounter); read them, or take a copy with statsSnapshot(). */
  readonly stats: Counters<NetCounter> = {};
  private readonly rng: Rng;
  private readonly trace: Trace;
  private txq: Uint8Array[] = [];
  private txHead = 0;
  private events: NetEvent[] = [];
  private evHead = 0;
  private readonly udp = new Map<number, Udp[]>();
  private ipId: number;
  private icmpTokens = ICMP_RATE;
  private icmpLast = 0;
  private readonly reasm: Reassembler;
  private readonly peerOf: PeerOf | undefined;
  /**
   * Gateway mode (DESIGN §8): packets for any destination are terminated here (UDP flows,
   * echo requests) and by the TcpLayer, instead of dropped as not ours. Set by the gateway.
   */
  forwarding = false;
  /** Gateway mode's flows: UDP flows, held SYNs, echo requests for other destinations. */
  readonly flows: FlowTable;

  constructor(opts: InterfaceOptions) {
    this.rng = opts.rng;
    this.trace = opts.trace ?? noTrace;
    this.mtu = opts.mtu ?? 1420;
    if (this.mtu < 576 || this.mtu > 65535) throw invalidArgument(`mtu: 576-65535, got ${this.mtu}`);
    this.addresses = opts.addresses.map((s) => {
      const slash = s.indexOf('/');
      const addr = parseIp(slash >= 0 ? s.slice(0, slash) : s);
      if (!addr) throw invalidArgument(`interface address '${s}' is not an IP address`);
      return { addr, bits: slash >= 0 ? Number(s.slice(slash + 1)) : addr.length * 8 };
    });
    this.ipId = randomU32(this.rng) & 0xffff;
    this.peerOf = opts.peerOf;
    this.reasm = new Reassembler({ ...opts.reassembly, peerOf: opts.peerOf, count: (what) => this.count(what) });
    const tcp = new TcpLayer({
      rng: this.rng,
      trace: this.trace,
      mtu: this.mtu,
      isLocal: (a) => this.isLocal(a),
      sourceFor: (d) => this.sourceFor(d),
      ...opts.tcp,
      peerOf: opts.peerOf,
    });
    this.tcp = tcp;
    this.flows = new FlowTable(
      {
        tcp,
        sendUdpFrom: (src, sport, dst, dport, data) => this.sendUdpFrom(src, sport, dst, dport, data),
        sendUnreachable: (now, to, dst, packet, kind) => this.sendUnreachable(now, to, dst, packet, kind),
        emit: (ev) => this.events.push(ev),
        count: (what) => this.count(what),
      },
      opts.flows,
    );
  }

  isLocal(a: Uint8Array): boolean {
    for (const x of this.addresses) if (ipEqual(x.addr, a)) return true;
    return false;
  }

  sourceFor(dst: IpAddr): IpAddr | undefined {
    let any: IpAddr | undefined;
    for (const x of this.addresses) {
      if (x.addr.length !== dst.length) continue;
      if (prefixContains({ addr: x.addr, bits: x.bits }, dst)) return x.addr;
      any ??= x.addr;
    }
    return any;
  }

  private count(what: NetCounter): void {
    increment(this.stats, what);
    // Drops at debug (DESIGN §5); every other count (each packet in, each flow) is chatter: trace.
    if (!this.trace.enabled('debug')) return;
    const level = what.startsWith('drop.') ? 'debug' : 'trace';
    if (this.trace.enabled(level)) this.trace.log(level, `netstack ${what}`);
  }

  /** A copy of the counters now. */
  statsSnapshot(): Counters<NetCounter> {
    return { ...this.stats };
  }

  // --- input -------------------------------------------------------------------

  handleInput(now: Instant, packet: Uint8Array): void {
    this.count('rxPackets');
    const v = packet.length > 0 ? packet[0]! >> 4 : 0;
    const info = v === 4 ? parseIPv4(packet) : v === 6 ? parseIPv6(packet) : 'version';
    if (typeof info === 'string') return this.count(`drop.ip.${info}`);
    if (!this.forwarding && !this.isLocal(info.dst)) return this.count('drop.ip.notForUs');
    let ip: IpInfo = info;
    if (info.fragment) {
      const whole = this.reasm.add(now, packet, info);
      if (whole === undefined) return;
      if (whole === null) return this.count('drop.ip.fragment');
      ip = whole;
    }
    switch (ip.protocol) {
      case PROTO_TCP:
        if (this.forwarding && ip.payload.length >= TCP_HEADER_LEN) {
          const t = ip.payload;
          if (!this.tcp.claims(ip.src, ip.dst, t)) return this.flows.tcpSegment(now, ip);
        }
        return this.tcp.handleSegment(now, ip.src, ip.dst, ip.payload);
      case PROTO_UDP:
        return this.handleUdp(now, ip, packet);
      case PROTO_ICMP:
        return ip.version === 4 ? this.handleIcmp(now, ip) : this.count('drop.icmp.family');
      case PROTO_ICMPV6:
        return ip.version === 6 ? this.handleIcmp(now, ip) : this.count('drop.icmp.family');
      default:
        return this.count('drop.ip.protocol');
    }
  }

  private icmpAllowed(now: Instant): boolean {
    this.icmpTokens = Math.min(ICMP_RATE, this.icmpTokens + ((now - this.icmpLast) * ICMP_RATE) / 1000);
    this.icmpLast = now;
    if (this.icmpTokens < 1) return false;
    this.icmpTokens--;
    return true;
  }

  /** ICMP (RFC 792) and ICMPv6 (RFC 4443): echo for us or, in gateway mode, for anyone; errors to the socket they quote. */
  private handleIcmp(now: Instant, ip: IpInfo): void {
    const m = ip.payload;
    const v6 = ip.version === 6;
    if (!icmpChecksumOk(m, ip.src, ip.dst)) return this.count('drop.icmp.checksum');
    const type = icmpType(m);
    if (type === echoType(v6, false)) {
      if (!this.isLocal(ip.dst)) return this.flows.echoRequest(ip, m);
      // RFC 792 / RFC 4443 §4.2: the reply carries the same identifier, sequence and data, so it
      // is the request copied whole with its type changed (and the checksum adjusted to match).
      const pkt = this.ipHeaderOnly(ip.dst, ip.src, ip.protocol, m.length);
      const hl = pkt.length - m.length;
      pkt.set(m, hl);
      echoRequestToReply(pkt, v6, hl);
      this.txq.push(pkt);
      return;
    }
    if (!this.isLocal(ip.dst)) return this.count('drop.icmp.notForUs');
    if (type === echoType(v6, true)) {
      // Views, not copies: nothing writes to a packet after it was handed to handleInput.
      this.events.push({ type: 'echo-reply', from: ip.src, id: echoId(m), seq: echoSeq(m), ttl: ip.ttl, data: m.subarray(ICMP_HEADER_LEN) });
      return;
    }
    const kind = icmpErrorKind(m, v6);
    if (kind) return this.icmpError(now, kind, m.subarray(ICMP_HEADER_LEN), kind === 'packet-too-big' ? packetTooBigMtu(m, v6) : undefined);
    // Any other ICMPv4 type, and ICMPv6 informational ones (neighbor discovery etc.: not on a
    // point-to-point tunnel), are counted; unknown ICMPv6 error types are ignored (RFC 4443 §2.4(b)).
    if (!v6 || type >= 128) this.count('drop.icmp.type');
  }

  /** Delivers an ICMP error to the socket whose packet it quotes (RFC 1122 §3.2.2.1). */
  private icmpError(now: Instant, kind: IcmpErrorKind, quoted: Uint8Array, mtu?: number): void {
    const q = parseQuoted(quoted);
    if (!q || !this.isLocal(q.src)) return this.count('drop.icmp.quote');
    if (q.protocol === PROTO_TCP) this.tcp.handleIcmpError(now, kind, q.src, q.dst, q.transport, mtu);
    else if (q.protocol === PROTO_UDP) {
      const s = this.findUdp(q.src, udpSrcPort(q.transport));
      if (s && s.remote && kind !== 'packet-too-big' && kind !== 'time-exceeded') {
        this.events.push({ type: 'udp-error', socket: s, error: kind === 'unreachable-port' ? 'ECONNREFUSED' : 'EHOSTUNREACH' });
      }
    }
  }

  /**
   * An echo request or reply from `src` to `dst`, built from its fields (ping(), a gateway's
   * replies). The reply to a request for one of our addresses is the request turned around
   * instead (handleIcmp), which needs no checksum pass over the data.
   */
  private sendEcho(src: IpAddr, dst: IpAddr, type: number, id: number, seq: number, data: Uint8Array, code = 0): void {
    const len = ICMP_HEADER_LEN + data.length;
    const pkt = this.ipHeaderOnly(src, dst, src.length === 4 ? PROTO_ICMP : PROTO_ICMPV6, len);
    const body = pkt.subarray(pkt.length - len);
    writeEcho(body, type, id, seq, data, code);
    fillIcmpChecksum(body, src, dst);
    this.txq.push(pkt);
  }

  // --- UDP -----------------------------------------------------------------------

  private findUdp(addr: Uint8Array, port: number): Udp | undefined {
    const list = this.udp.get(port);
    if (!list) return undefined;
    const fam = addr.length === 4 ? 4 : 6;
    let wildcard: Udp | undefined;
    for (const s of list) {
      if (s.family !== fam) continue;
      if (s.localAddr && ipEqual(s.localAddr, addr)) return s;
      if (!s.localAddr) wildcard = s;
    }
    return wildcard;
  }

  private handleUdp(now: Instant, ip: IpInfo, packet: Uint8Array): void {
    const u = parseUdp(ip.payload, ip.src, ip.dst);
    if (typeof u === 'string') return this.count(`drop.udp.${u}`);
    const dport = u.dstPort;
    const sport = u.srcPort;
    // A wildcard-bound socket serves our own addresses only; in gateway mode the rest are flows.
    const s = this.isLocal(ip.dst) ? this.findUdp(ip.dst, dport) : undefined;
    if (!s && this.forwarding) return this.flows.udpDatagram(now, ip, sport, dport, u.payload);
    if (!s) {
      this.count('udp.noSocket');
      // RFC 1122 §4.1.3.1: port unreachable, never for a fragment other than the first.
      if (!ip.fragment || ip.fragment.offset === 0) this.sendUnreachable(now, ip.src, ip.dst, packet, 'port');
      return;
    }
    if (s.remote && (s.remote.port !== sport || !ipEqual(s.remote.addr, ip.src))) return this.count('drop.udp.notConnectedPeer');
    if (!this.enqueueUdp(s, ip.src, sport, u.payload)) return;
    if (!s.notified) {
      s.notified = true;
      this.events.push({ type: 'udp-readable', socket: s });
    }
  }

  /**
   * Queues a datagram on a socket whose queue holds at most `s.limit` bytes. When it is full,
   * the peer holding the most of it gives way, as fq_codel drops from its fattest queue (RFC
   * 8290 §4.1): if another peer holds more than the sender would with this datagram, that
   * peer's oldest datagrams are dropped (`drop.udp.queueShare`) until it fits; otherwise this
   * one is refused (`drop.udp.queueFull`). So one peer flooding a socket whose reader is slow
   * cannot shut the others out: at worst the peers end up with equal parts. With one peer
   * (the common case) it is the plain tail drop it always was. Returns whether it was queued.
   */
  private enqueueUdp(s: Udp, src: IpAddr, sport: number, payload: Uint8Array): boolean {
    const n = payload.length;
    if (n > s.limit) {
      this.count('drop.udp.queueFull');
      return false;
    }
    const m: Queued = { data: EMPTY, addr: src, port: sport, share: undefined, dropped: false };
    if (s.queued + n > s.limit || s.shares) {
      const shares = s.shares ?? s.account((a) => this.peerKey(a));
      const key = this.peerKey(src);
      let sh = shares.get(key);
      while (s.queued + n > s.limit) {
        const mine = sh?.bytes ?? 0;
        // The fattest other peer: the loop over peers with something queued is short (with the
        // tunnel's peerOf it is bounded by the number of peers, and it runs only when full).
        let fat: Share | undefined;
        for (const x of shares.values()) if (x !== sh && (!fat || x.bytes > fat.bytes)) fat = x;
        if (!fat || mine + n > fat.bytes) {
          this.count('drop.udp.queueFull');
          return false;
        }
        s.drop(fat);
        this.count('drop.udp.queueShare');
      }
      // Dropping others may have emptied the accounting (then this one goes in unaccounted).
      if (s.shares) {
        if (!sh) s.shares.set(key, (sh = { key, bytes: 0, list: [], head: 0 }));
        m.share = sh;
        sh.list.push(m);
        sh.bytes += n;
      }
    }
    m.data = payload.slice();
    m.addr = src.slice();
    s.queue.push(m);
    s.queued += n;
    return true;
  }

  /** The peer (or, without one, the address) that limits count `addr` against. */
  private peerKey(addr: IpAddr): PeerKey {
    return this.peerOf?.(addr) ?? addressKey(addr);
  }

  /**
   * ICMP destination unreachable to `to` about `packet` (an IP packet it sent), from `from`:
   * the original destination for a port (as that host would answer), our own address for a
   * host or an administrative refusal (as a router would). Rate-limited (RFC 1812 §4.3.2.8).
   */
  /** @internal */
  sendUnreachable(now: Instant, to: IpAddr, dst: IpAddr, packet: Uint8Array, kind: UnreachableKind): void {
    if (!this.icmpAllowed(now)) return this.count('drop.icmp.rate');
    const v4 = to.length === 4;
    const from = kind === 'port' ? dst : (this.sourceFor(to) ?? dst);
    // Quote as much of the offending packet as fits in the minimum MTU (RFC 792, RFC 4443 §3.1).
    const ipLen = v4 ? (packet[2]! << 8) | packet[3]! : 40 + ((packet[4]! << 8) | packet[5]!);
    const quote = packet.subarray(0, Math.min(ipLen, packet.length, v4 ? MAX_QUOTE_V4 : MAX_QUOTE_V6));
    const [pkt, body] = this.ipPacket(from, to, v4 ? PROTO_ICMP : PROTO_ICMPV6, ICMP_HEADER_LEN + quote.length);
    writeUnreachable(body, !v4, kind, quote);
    fillIcmpChecksum(body, from, to);
    this.txq.push(pkt);
    this.count('txUnreachable');
  }

  // --- gateway mode: flows for any destination -----------------------------------------

  /** Answers an echo request in the destination's name (RFC 792 / RFC 4443 §4.2: same id, sequence, data). */
  echoReply(_now: Instant, req: EchoRequest): void {
    this.sendEcho(req.dst, req.src, echoType(req.dst.length === 16, true), req.id, req.seq, req.data);
  }

  /** A UDP datagram with any source (a flow's reply). */
  /** @internal */
  sendUdpFrom(src: IpAddr, sport: number, dst: IpAddr, dport: number, data: Uint8Array): void {
    const [pkt, u, whole] = this.ipPacket(src, dst, PROTO_UDP, UDP_HEADER_LEN + data.length);
    writeUdp(u, src, dst, sport, dport, data);
    if (pkt.length <= this.mtu) {
      this.txq.push(pkt);
      this.count('txPackets');
    } else this.fragment(src, dst, PROTO_UDP, whole);
  }

  udpBind(opts: { family: 4 | 6; addr?: IpAddr; port?: number; recvQueueBytes?: number }): UdpSocket {
    if (opts.addr && (opts.addr.length === 4 ? 4 : 6) !== opts.family) throw invalidArgument('udpBind: address family does not match');
    if (opts.addr && !this.isLocal(opts.addr)) throw systemError('EADDRNOTAVAIL', 'bind', formatIp(opts.addr), opts.port);
    let port = opts.port ?? 0;
    const conflicts = (p: number): boolean =>
      (this.udp.get(p) ?? []).some((s) => s.family === opts.family && (!s.localAddr || !opts.addr || ipEqual(s.localAddr, opts.addr)));
    if (port === 0) {
      const free = pickEphemeralPort(this.rng, conflicts);
      if (free === undefined) throw systemError('EADDRINUSE', 'bind');
      port = free;
    } else if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidArgument(`udpBind: port must be 0-65535, got ${port}`);
    else if (conflicts(port)) throw systemError('EADDRINUSE', 'bind', opts.addr ? formatIp(opts.addr) : undefined, port);
    const s = new Udp(this, opts.family, opts.addr, port, opts.recvQueueBytes ?? 256 * 1024);
    const list = this.udp.get(port) ?? [];
    list.push(s);
    this.udp.set(port, list);
    return s;
  }

  /** @internal */
  unbindUdp(s: Udp): void {
    const list = this.udp.get(s.localPort);
    if (!list) return;
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.udp.delete(s.localPort);
  }

  /** @internal A datagram from a socket: IP fragments if it does not fit the MTU. */
  sendUdp(_now: Instant, s: Udp, dst: IpAddr, dport: number, data: Uint8Array): void {
    if ((dst.length === 4 ? 4 : 6) !== s.family) throw invalidArgument(`send: ${formatIp(dst)} is not an IPv${s.family} address`);
    const src = s.localAddr ?? this.sourceFor(dst);
    if (!src) throw systemError('ENETUNREACH', 'send', formatIp(dst), dport);
    this.sendUdpFrom(src, s.localPort, dst, dport, data);
  }

  /** Splits a transport payload into IP fragments of at most the MTU (RFC 791 §2.3, RFC 8200 §4.5). */
  private fragment(src: IpAddr, dst: IpAddr, proto: number, payload: Uint8Array): void {
    const v6 = src.length === 16;
    const hdr = v6 ? IPV6_HEADER_LEN + 8 : IPV4_HEADER_LEN;
    const step = Math.floor((this.mtu - hdr) / 8) * 8;
    const id = v6 ? randomU32(this.rng) : (this.ipId = (this.ipId + 1) & 0xffff);
    for (let off = 0; off < payload.length; off += step) {
      const part = payload.subarray(off, Math.min(payload.length, off + step));
      const more = off + part.length < payload.length;
      const pkt = allocPacket(hdr + part.length, WG_HEADROOM, WG_TAILROOM);
      if (v6) {
        writeIPv6Header(pkt, src, dst, 44, 8 + part.length);
        pkt[40] = proto;
        pkt[41] = 0;
        pkt[42] = (off >> 8) & 0xff;
        pkt[43] = (off & 0xf8) | (more ? 1 : 0);
        pkt[44] = id >>> 24;
        pkt[45] = (id >>> 16) & 0xff;
        pkt[46] = (id >>> 8) & 0xff;
        pkt[47] = id & 0xff;
      } else {
        writeIPv4Header(pkt, src, dst, proto, part.length, id);
        pkt[6] = (more ? 0x20 : 0) | ((off >> 11) & 0x1f);
        pkt[7] = (off >> 3) & 0xff;
        pkt[10] = pkt[11] = 0;
        const c = checksum(pkt, 0, IPV4_HEADER_LEN);
        pkt[10] = c >> 8;
        pkt[11] = c & 0xff;
      }
      pkt.set(part, hdr);
      this.txq.push(pkt);
      this.count('txFragments');
    }
  }

  /** An outgoing IP packet with room around it; returns [packet, transport view, same]. */
  private ipPacket(src: IpAddr, dst: IpAddr, proto: number, len: number): [Uint8Array, Uint8Array, Uint8Array] {
    const pkt = this.ipHeaderOnly(src, dst, proto, len);
    const body = pkt.subarray(pkt.length - len);
    return [pkt, body, body];
  }

  /** An outgoing IP packet with room around it, its header written, `len` bytes of payload to fill after it. */
  private ipHeaderOnly(src: IpAddr, dst: IpAddr, proto: number, len: number): Uint8Array {
    const hl = src.length === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
    const pkt = allocPacket(hl + len, WG_HEADROOM, WG_TAILROOM);
    if (hl === IPV4_HEADER_LEN) writeIPv4Header(pkt, src, dst, proto, len, (this.ipId = (this.ipId + 1) & 0xffff));
    else writeIPv6Header(pkt, src, dst, proto, len);
    return pkt;
  }

  // --- ICMP echo (ping) -------------------------------------------------------------

  ping(_now: Instant, dst: IpAddr, id: number, seq: number, data: Uint8Array = new Uint8Array(0)): void {
    const src = this.sourceFor(dst);
    if (!src) throw systemError('ENETUNREACH', 'ping', formatIp(dst));
    this.sendEcho(src, dst, echoType(dst.length === 16, false), id, seq, data);
  }

  // --- sans-IO outputs -----------------------------------------------------------------

  pollTransmit(now: Instant): Uint8Array | undefined {
    if (this.txHead < this.txq.length) return this.txq[this.txHead++];
    if (this.txHead > 0) {
      this.txq = [];
      this.txHead = 0;
    }
    const out = this.tcp.pollTransmit(now);
    if (!out) return undefined;
    // Write the IP header in place in the headroom the TcpLayer left (DESIGN §3).
    const seg = out.segment;
    const hl = out.src.length === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
    const pkt = new Uint8Array(seg.buffer, seg.byteOffset - hl, hl + seg.length);
    if (hl === IPV4_HEADER_LEN) writeIPv4Header(pkt, out.src, out.dst, PROTO_TCP, seg.length, (this.ipId = (this.ipId + 1) & 0xffff));
    else writeIPv6Header(pkt, out.src, out.dst, PROTO_TCP, seg.length);
    return pkt;
  }

  pollEvent(): NetEvent | undefined {
    if (this.evHead < this.events.length) return this.events[this.evHead++];
    if (this.evHead > 0) {
      this.events = [];
      this.evHead = 0;
    }
    return this.tcp.pollEvent();
  }

  handleTimeout(now: Instant): void {
    this.tcp.handleTimeout(now);
    this.reasm.expire(now);
    this.flows.expire(now);
  }

  pollTimeout(): Deadline | undefined {
    const d = earliest(this.tcp.pollTimeout(), this.reasm.pollTimeout());
    const at = this.flows.nextExpiry();
    return at === undefined ? d : earliest(d, { at, reason: 'held SYN expiry' });
  }
}
