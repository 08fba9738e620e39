/**
 * Gateway mode's flow table (DESIGN §8), sans-IO: what a peer sends to destinations that no
 * socket or listener of ours serves. UDP datagrams become flows (one per 5-tuple), echo
 * requests become events, and a SYN is held unanswered until the gateway accepts it (the
 * TcpLayer then opens the connection as the destination) or refuses it. Every table is
 * bounded, in total and per peer (so one peer cannot take the entries every other peer
 * needs), and held SYNs expire.
 */
import type { Instant } from '../util/time.js';
import type { IpAddr } from '../util/ip.js';
import { systemError, invalidArgument } from '../util/errors.js';
import { IPV4_HEADER_LEN, IPV6_HEADER_LEN, PROTO_TCP, writeIPv4Header, writeIPv6Header, type IpInfo } from '../wire/ip.js';
import { ACK, FIN, RST, SYN, tcpChecksumOk, tcpDstPort, tcpFlags, tcpSrcPort } from '../wire/tcp.js';
import { echoId, echoSeq, ICMP_HEADER_LEN, MAX_QUOTE_V4, MAX_QUOTE_V6, type UnreachableKind } from '../wire/icmp.js';
import { MAX_UDP_PAYLOAD } from '../wire/udp.js';
import { addressKey, type FlowEnds, type PeerKey, type PeerOf, type TcpConnection, type TcpEvent, type TcpFlow, type TcpLayerApi } from './types.js';

/** Why a flow is refused with ICMP destination unreachable (wire/icmp.ts has the codes). */
export type { UnreachableKind };

/**
 * Gateway mode: the datagrams between one tunnel-side sender and one destination that is
 * not ours (or is ours with no socket bound), terminated here like gVisor's spoofing mode.
 * What the application sends goes back to the sender from the original destination.
 */
export interface UdpFlow extends FlowEnds {
  readonly id: number;
  readonly closed: boolean;
  /** When a datagram last went either way (for idle timeouts). */
  readonly lastActivity: Instant;
  /** A datagram back to the sender. */
  send(now: Instant, data: Uint8Array): void;
  recv(): Uint8Array | undefined;
  /** ICMP destination unreachable quoting the flow's first datagram (rate-limited), then close. */
  refuse(now: Instant, kind: UnreachableKind): void;
  close(): void;
}

/** Gateway mode: an ICMP/ICMPv6 echo request to an address that is not ours. */
export interface EchoRequest {
  readonly src: IpAddr;
  readonly dst: IpAddr;
  readonly id: number;
  readonly seq: number;
  readonly data: Uint8Array;
  /** The request's first bytes, for an unreachable answer. */
  readonly quote: Uint8Array;
}

export type FlowEvent =
  | { type: 'udp-flow'; flow: UdpFlow } // a new flow, its first datagram queued
  | { type: 'udp-flow-readable'; flow: UdpFlow }
  | { type: 'echo-request'; request: EchoRequest } // answer with Interface.echoReply() or refuse
  | Extract<TcpEvent, { type: 'tcp-flow' }>;

/**
 * What the table counts, among the Interface's counters: flows opened and held SYNs' fates
 * (`flow.*`), and packets for other destinations dropped (`drop.flow.*`), each by reason: the
 * whole table full (`tableFull`, `synTableFull`) or the sending peer at its share of it
 * (`udpPerPeer`, `synPerPeer`).
 */
export type FlowCounter =
  | 'flow.udpOpened'
  | 'flow.tcpHeld'
  | 'flow.tcpHoldExpired'
  | 'flow.tcpResetWhileHeld'
  | 'flow.synRetransmitWhileHeld'
  | 'flow.echoRequests'
  | 'drop.flow.port'
  | 'drop.flow.tableFull'
  | 'drop.flow.queueFull'
  | 'drop.flow.checksum'
  | 'drop.flow.synTableFull'
  | 'drop.flow.udpPerPeer'
  | 'drop.flow.synPerPeer';

/** What the table needs from its Interface: packet builders, the TcpLayer, events and counters. */
export interface FlowHost {
  readonly tcp: TcpLayerApi;
  sendUdpFrom(src: IpAddr, sport: number, dst: IpAddr, dport: number, data: Uint8Array): void;
  sendUnreachable(now: Instant, to: IpAddr, dst: IpAddr, packet: Uint8Array, kind: UnreachableKind): void;
  emit(ev: FlowEvent): void;
  count(what: FlowCounter): void;
}

export interface FlowTableOptions {
  /** UDP flows held at once. Default 65536. */
  maxUdpFlows?: number;
  /**
   * UDP flows one peer may hold at once; a datagram that would open one more is dropped and
   * counted (`drop.flow.udpPerPeer`), the peer's existing flows go on. Default 8192.
   */
  maxUdpFlowsPerPeer?: number;
  /** SYNs held for a decision at once; more are dropped (the sender retries). Default 8192 (above the gateway's pending limit). */
  maxHeldSyns?: number;
  /** SYNs one peer may have held at once; more are dropped unanswered and counted (`drop.flow.synPerPeer`). Default 1024. */
  maxHeldSynsPerPeer?: number;
  /** How long a SYN is held before it is forgotten (ms). Default 30000. */
  synHoldMs?: number;
  /** The peer a source address belongs to (types.ts); absent or undefined: each address is its own peer. */
  peerOf?: PeerOf;
}

/**
 * The table's defaults, in one place. The per-peer shares are an eighth of each table: eight
 * peers would have to flood together to fill one, and a single peer keeps room for more than
 * any client opens (8192 UDP flows is the gateway's whole per-peer flow budget, maxFlowsPerPeer;
 * 1024 SYNs waiting for a decision is eight times the gateway's per-peer pending limit, so the
 * table's share only binds on a burst that arrives before the gateway has seen it, or without
 * a gateway).
 */
export const FLOW_TABLE_DEFAULTS = {
  maxUdpFlows: 65536,
  maxUdpFlowsPerPeer: 8192,
  maxHeldSyns: 8192,
  maxHeldSynsPerPeer: 1024,
  synHoldMs: 30_000,
} as const satisfies Required<Omit<FlowTableOptions, 'peerOf'>>;

const FLOW_QUEUE_BYTES = 256 * 1024;

interface HeldSyn extends TcpFlow {
  readonly key: string;
  /** The peer it is charged to, kept so that the same peer gets it back. */
  readonly peer: PeerKey;
  closed: boolean;
  /** The SYN segment as it came (verified), replayed into the TcpLayer on a decision. */
  readonly syn: Uint8Array;
  readonly expires: Instant;
}

/**
 * A flow's 5-tuple as a Map key: one character per address byte and port byte, as the
 * TcpLayer's connKey. Looked up for every UDP datagram and every unclaimed TCP segment, so
 * not formatted: formatting both addresses as text cost more than the lookup it served.
 */
function flowKey(src: IpAddr, sport: number, dst: IpAddr, dport: number): string {
  let k = '';
  for (let i = 0; i < src.length; i++) k += String.fromCharCode(src[i]!);
  k += String.fromCharCode(sport >> 8, sport & 0xff, dport >> 8, dport & 0xff);
  for (let i = 0; i < dst.length; i++) k += String.fromCharCode(dst[i]!);
  return k;
}

let nextFlowId = 1;

class Flow implements UdpFlow {
  readonly id = nextFlowId++;
  queue: Uint8Array[] = [];
  queued = 0;
  closed = false;
  notified = false;
  lastActivity: Instant;
  constructor(
    private readonly table: FlowTable,
    readonly key: string,
    readonly srcAddr: IpAddr,
    readonly srcPort: number,
    readonly dstAddr: IpAddr,
    readonly dstPort: number,
    /** The first datagram's IP packet, cut to what an ICMP error quotes. */
    readonly quote: Uint8Array,
    /** The peer it is charged to, kept so that the same peer gets it back. */
    readonly peer: PeerKey,
    now: Instant,
  ) {
    this.lastActivity = now;
  }
  send(now: Instant, data: Uint8Array): void {
    if (this.closed) throw systemError('EBADF', 'send');
    if (data.length > MAX_UDP_PAYLOAD) throw systemError('EMSGSIZE', 'send');
    this.lastActivity = now;
    this.table.host.sendUdpFrom(this.dstAddr, this.dstPort, this.srcAddr, this.srcPort, data);
  }
  recv(): Uint8Array | undefined {
    const m = this.queue.shift();
    if (m) this.queued -= m.length;
    else this.notified = false;
    return m;
  }
  refuse(now: Instant, kind: UnreachableKind): void {
    if (this.closed) return;
    this.table.host.sendUnreachable(now, this.srcAddr, this.dstAddr, this.quote, kind);
    this.close();
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.queued = 0;
    this.table.unbind(this);
  }
}

export class FlowTable {
  private readonly udp = new Map<string, Flow>();
  /** Held SYNs by 4-tuple, in arrival order (so the oldest expires first: a Map keeps insertion order). */
  private readonly held = new Map<string, HeldSyn>();
  /** Entries of `udp` and of `held` per peer; a peer with none has no entry. */
  private readonly udpPerPeer = new Map<PeerKey, number>();
  private readonly heldPerPeer = new Map<PeerKey, number>();
  private limits: Required<Omit<FlowTableOptions, 'peerOf'>> = { ...FLOW_TABLE_DEFAULTS };
  private peerOf: PeerOf | undefined;

  constructor(
    /** @internal */ readonly host: FlowHost,
    opts: FlowTableOptions = {},
  ) {
    this.configure(opts);
  }

  /**
   * Sets the bounds and the peer mapping; what is not given keeps its value. The gateway
   * calls this when it starts, after the Interface made the table: it knows the peers and
   * the limits the user chose. Entries already held keep the peer they were charged to.
   */
  configure(opts: FlowTableOptions): void {
    const { peerOf, ...limits } = opts;
    for (const [k, v] of Object.entries(limits)) if (v !== undefined) (this.limits as Record<string, number>)[k] = v;
    if (peerOf) this.peerOf = peerOf;
  }

  private peerKey(addr: IpAddr): PeerKey {
    return this.peerOf?.(addr) ?? addressKey(addr);
  }

  /** UDP flows, and held SYNs, that the peer `src` belongs to holds now. */
  heldBy(src: IpAddr): { udpFlows: number; heldSyns: number } {
    const k = this.peerKey(src);
    return { udpFlows: this.udpPerPeer.get(k) ?? 0, heldSyns: this.heldPerPeer.get(k) ?? 0 };
  }

  /** A datagram for a destination no socket serves: queued on its flow, a new flow announced. */
  udpDatagram(now: Instant, ip: IpInfo, sport: number, dport: number, data: Uint8Array): void {
    // Port 0 is no destination (as for TCP below); relaying it threw out of dgram's connect (found by test/fuzz).
    if (dport === 0) return this.host.count('drop.flow.port');
    const key = flowKey(ip.src, sport, ip.dst, dport);
    let f = this.udp.get(key);
    if (!f) {
      if (this.udp.size >= this.limits.maxUdpFlows) return this.host.count('drop.flow.tableFull');
      // The peer is looked up only for a new flow, never per datagram of an existing one.
      const peer = this.peerKey(ip.src);
      const mine = this.udpPerPeer.get(peer) ?? 0;
      if (mine >= this.limits.maxUdpFlowsPerPeer) return this.host.count('drop.flow.udpPerPeer');
      f = new Flow(this, key, ip.src.slice(), sport, ip.dst.slice(), dport, quoteOf(ip), peer, now);
      this.udp.set(key, f);
      this.udpPerPeer.set(peer, mine + 1);
      this.host.count('flow.udpOpened');
      this.host.emit({ type: 'udp-flow', flow: f });
    }
    // The same per-socket bound as a bound socket's queue: a flow nobody reads drops, counted.
    if (f.queued + data.length > FLOW_QUEUE_BYTES) return this.host.count('drop.flow.queueFull');
    f.queue.push(data.slice());
    f.queued += data.length;
    f.lastActivity = now;
    if (!f.notified) {
      f.notified = true;
      this.host.emit({ type: 'udp-flow-readable', flow: f });
    }
  }

  /**
   * A segment no connection or listener takes, in gateway mode: a SYN is held for the
   * gateway's decision (retransmissions of it are absorbed), a RST forgets a held SYN, and
   * anything else gets what a closed port gives (RFC 9293 §3.10.7.1) from the TcpLayer.
   */
  tcpSegment(now: Instant, ip: IpInfo): void {
    const t = ip.payload;
    const flags = tcpFlags(t);
    const sport = tcpSrcPort(t);
    const dport = tcpDstPort(t);
    const key = flowKey(ip.src, sport, ip.dst, dport);
    const h = this.held.get(key);
    if ((flags & (SYN | ACK | RST | FIN)) !== SYN) {
      // Not a lone SYN (SYN without ACK, RST or FIN).
      if (h && flags & RST) {
        if (!tcpChecksumOk(t, ip.src, ip.dst)) return this.host.count('drop.flow.checksum');
        this.forget(h);
        return this.host.count('flow.tcpResetWhileHeld');
      }
      return this.host.tcp.handleSegment(now, ip.src, ip.dst, t);
    }
    if (sport === 0 || dport === 0) return this.host.count('drop.flow.port');
    if (!tcpChecksumOk(t, ip.src, ip.dst)) return this.host.count('drop.flow.checksum');
    if (h) return this.host.count('flow.synRetransmitWhileHeld');
    this.expire(now);
    if (this.held.size >= this.limits.maxHeldSyns) return this.host.count('drop.flow.synTableFull');
    // Past its share a peer's SYN goes unanswered, as past the whole table: its client retries
    // (RFC 9293 §3.8.1) and gets in once the gateway has decided on its other SYNs.
    const peer = this.peerKey(ip.src);
    const mine = this.heldPerPeer.get(peer) ?? 0;
    if (mine >= this.limits.maxHeldSynsPerPeer) return this.host.count('drop.flow.synPerPeer');
    // No ICMP quote is made here: most held SYNs are accepted, and a refusal rebuilds it from the SYN (heldQuote).
    const syn: HeldSyn = { id: nextFlowId++, key, peer, srcAddr: ip.src.slice(), srcPort: sport, dstAddr: ip.dst.slice(), dstPort: dport, closed: false, syn: t.slice(), expires: now + this.limits.synHoldMs };
    this.held.set(key, syn);
    this.heldPerPeer.set(peer, mine + 1);
    this.host.count('flow.tcpHeld');
    this.host.emit({ type: 'tcp-flow', flow: syn });
  }

  private forget(h: HeldSyn): void {
    h.closed = true;
    if (this.held.get(h.key) !== h) return;
    this.held.delete(h.key);
    release(this.heldPerPeer, h.peer);
  }

  expire(now: Instant): void {
    for (const h of this.held.values()) {
      if (h.expires > now) break; // arrival order = expiry order
      this.forget(h);
      this.host.count('flow.tcpHoldExpired');
    }
  }

  /** The held SYN that `flow` is, if it is still held (the gateway hands back the object it was given). */
  private heldAs(flow: TcpFlow): HeldSyn | undefined {
    const h = this.held.get((flow as Partial<HeldSyn>).key ?? '');
    return h === flow ? h : undefined;
  }

  /** Opens a held flow's connection, answering the SYN as its destination. */
  acceptTcp(now: Instant, flow: TcpFlow): TcpConnection {
    const h = this.heldAs(flow);
    if (!h) throw invalidArgument('acceptTcp: the flow is no longer held');
    this.forget(h);
    return this.host.tcp.acceptSyn(now, h.srcAddr, h.dstAddr, h.syn);
  }

  /**
   * Refuses a held flow: 'rst' answers as a closed port does, an unreachable kind with ICMP
   * (rate-limited), 'drop' says nothing (the sender's SYN retries will find a free slot).
   */
  refuseTcp(now: Instant, flow: TcpFlow, how: 'rst' | 'drop' | UnreachableKind): void {
    const h = this.heldAs(flow);
    if (!h) return;
    this.forget(h);
    if (how === 'rst') this.host.tcp.handleSegment(now, h.srcAddr, h.dstAddr, h.syn);
    else if (how !== 'drop') this.host.sendUnreachable(now, h.srcAddr, h.dstAddr, heldQuote(h), how);
  }

  /** SYNs held for a decision now (gateway mode). */
  get heldSyns(): number {
    return this.held.size;
  }

  /** @internal */
  unbind(f: Flow): void {
    if (this.udp.get(f.key) !== f) return;
    this.udp.delete(f.key);
    release(this.udpPerPeer, f.peer);
  }

  /** UDP flows held now (gateway mode). */
  get udpFlows(): number {
    return this.udp.size;
  }

  /** An echo request to an address that is not ours: the gateway answers it (Interface.echoReply) or refuses it. */
  echoRequest(ip: IpInfo, m: Uint8Array): void {
    this.host.count('flow.echoRequests');
    this.host.emit({
      type: 'echo-request',
      request: { src: ip.src.slice(), dst: ip.dst.slice(), id: echoId(m), seq: echoSeq(m), data: m.slice(ICMP_HEADER_LEN), quote: quoteOf(ip) },
    });
  }

  /** The next held SYN's expiry. */
  nextExpiry(): Instant | undefined {
    const first = this.held.size > 0 ? this.held.values().next().value : undefined;
    return first?.expires;
  }
}

/** One entry fewer for `peer`; a peer left with none is removed, so the map stays within its table's size. */
function release(perPeer: Map<PeerKey, number>, peer: PeerKey): void {
  const n = (perPeer.get(peer) ?? 1) - 1;
  if (n <= 0) perPeer.delete(peer);
  else perPeer.set(peer, n);
}

/**
 * The quote of a held SYN's packet, made when a refusal needs it: byte for byte what quoteOf
 * made of the packet that carried the SYN, since quoteOf reads only its addresses, protocol
 * and payload.
 */
function heldQuote(h: HeldSyn): Uint8Array {
  return quoteOf({ version: h.srcAddr.length === 4 ? 4 : 6, src: h.srcAddr, dst: h.dstAddr, protocol: PROTO_TCP, ttl: 0, payload: h.syn, headerLen: 0, fragment: undefined });
}

/**
 * What an ICMP error about this packet quotes: its IP header (rebuilt, so a reassembled
 * packet quotes as its first fragment would) and the start of its payload, within the
 * minimum MTU (RFC 792: at least 64 bits of data; RFC 4443 §2.4(c): as much as fits in 1280).
 */
function quoteOf(ip: IpInfo): Uint8Array {
  const v4 = ip.version === 4;
  const hl = v4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
  const n = Math.min(ip.payload.length, (v4 ? MAX_QUOTE_V4 : MAX_QUOTE_V6) - hl);
  const q = new Uint8Array(hl + n);
  if (v4) writeIPv4Header(q, ip.src, ip.dst, ip.protocol, ip.payload.length, 0);
  else writeIPv6Header(q, ip.src, ip.dst, ip.protocol, ip.payload.length);
  q.set(ip.payload.subarray(0, n), hl);
  return q;
}
