/**
 * A stub resolver over the netstack's own UDP and TCP (never the system resolver):
 * A and AAAA in parallel, a random ID and source port per query (RFC 5452),
 * answers matched by ID, question and server, retries across servers, CNAME
 * chains, search domains with the resolv.conf ndots rule, static host entries.
 *
 * A UDP answer with the TC bit set is asked again over TCP to the same server
 * (RFC 1035 §4.2.2 framing, RFC 7766 §5: "the client SHOULD retry over TCP");
 * the TCP try has the same per-try timeout and, if it fails, the same failover
 * to the next server as a UDP try. Replies that do not parse, or carry the wrong
 * ID, question or source, are ignored and counted, and the try keeps waiting
 * (RFC 5452 §9.1): an off-path attacker must not end a lookup with garbage.
 * Server errors move on to the next server and end, when every try failed,
 * with the code Node's dns module uses (ESERVFAIL, EREFUSED, ...).
 * The message codec is the `dns-packet` library.
 */
import dnsPacket from 'dns-packet';
import type { Deadline, Instant } from '../util/time.js';
import type { Rng } from '../util/rng.js';
import { randomInt } from '../util/rng.js';
import { formatIp, parseIp, ipEqual, type IpAddr } from '../util/ip.js';
import { increment, type Counters } from '../util/counters.js';
import type { Interface, NetEvent, UdpSocket } from './interface.js';
import type { TcpConnection } from './types.js';

/** The codes of Node's dns module (dns.NOTFOUND, dns.TIMEOUT, ...), so callers branch as they do on Node errors. */
export type DnsError =
  | 'ENOTFOUND'
  | 'ETIMEOUT'
  | 'ESERVFAIL'
  | 'EREFUSED'
  | 'EFORMERR'
  | 'ENOTIMP'
  | 'EBADRESP'
  | 'ECONNREFUSED'
  | 'ECANCELLED';

/**
 * The client's counters: replies ignored (`drop.dns.*`: not parsed, not a response, wrong ID,
 * question or source), and what the tries did (`dns.*`: TC answers, retries over TCP, TCP
 * connections reset at the deadline).
 */
export type DnsCounter =
  | 'dns.truncated'
  | 'dns.tcpRetry'
  | 'dns.tcpAbort'
  | 'drop.dns.malformed'
  | 'drop.dns.notResponse'
  | 'drop.dns.id'
  | 'drop.dns.question'
  | 'drop.dns.source';

export interface DnsQuery {
  readonly id: number;
  readonly name: string;
}

export interface DnsResult {
  type: 'dns-result';
  query: DnsQuery;
  addresses: { address: string; family: 4 | 6 }[];
  error?: DnsError;
}

export interface DnsClientOptions {
  servers: IpAddr[];
  search?: string[];
  hosts?: Record<string, string[]>;
  timeoutMs?: number;
  attempts?: number;
  rng: Rng;
}

interface Lookup extends DnsQuery {
  candidates: string[]; // names to try, in order (search list applied)
  candidate: number;
  families: (4 | 6)[];
  pending: Set<Attempt>;
  results: { address: string; family: 4 | 6 }[];
  errors: DnsError[];
  done: boolean;
}

interface Attempt {
  lookup: Lookup;
  name: string;
  type: 'A' | 'AAAA';
  txid: number;
  server: number;
  tries: number;
  deadline: Instant;
  cnameDepth: number;
  /** UDP first; TCP after a truncated UDP answer from the same server. */
  transport: UdpTry | TcpTry;
}

interface UdpTry {
  kind: 'udp';
  socket: UdpSocket;
}

interface TcpTry {
  kind: 'tcp';
  conn: TcpConnection;
  /** The framed query not yet taken by the send buffer. */
  out: Uint8Array;
  /** Bytes read and not yet parsed as a whole message. */
  rx: Uint8Array;
}

const MAX_CNAME = 8;
/** RFC 1035 §4.1.1 header bits. */
const FLAG_TC = 0x0200;
const DNS_PORT = 53;
/** RCODEs (RFC 1035 §4.1.1) and the Node dns code each ends a lookup with when every server gave it. */
const RCODE_ERRORS: Record<number, DnsError> = { 1: 'EFORMERR', 2: 'ESERVFAIL', 4: 'ENOTIMP', 5: 'EREFUSED' };

export class DnsClient {
  private readonly opts: Required<Omit<DnsClientOptions, 'hosts'>> & { hosts: Map<string, string[]> };
  private readonly attempts = new Set<Attempt>();
  private readonly bySocket = new Map<UdpSocket, Attempt>();
  private readonly byConn = new Map<TcpConnection, Attempt>();
  /** TCP connections whose answer came: closing gracefully, aborted at the deadline. */
  private readonly closing = new Map<TcpConnection, Instant>();
  /** Every connection we opened, so its late events (after close) are still ours, not the API's. */
  private readonly ownConns = new WeakSet<TcpConnection>();
  /** Replies ignored, truncations, TCP retries (DnsCounter); a name appears once counted. */
  readonly stats: Counters<DnsCounter> = {};
  private events: DnsResult[] = [];
  private nextId = 1;

  constructor(
    private readonly iface: Interface,
    opts: DnsClientOptions,
  ) {
    const hosts = new Map<string, string[]>();
    for (const [k, v] of Object.entries(opts.hosts ?? {})) hosts.set(k.toLowerCase().replace(/\.$/, ''), v);
    // An option passed explicitly as undefined must still get its default (a spread would not).
    this.opts = {
      servers: opts.servers,
      rng: opts.rng,
      search: opts.search ?? [],
      timeoutMs: opts.timeoutMs ?? 2000,
      attempts: opts.attempts ?? 2,
      hosts,
    };
  }

  lookup(now: Instant, name: string, family: 0 | 4 | 6): DnsQuery {
    const families: (4 | 6)[] = family === 0 ? [4, 6] : [family];
    const clean = name.trim().replace(/\.$/, '');
    const l: Lookup = { id: this.nextId++, name, candidates: [], candidate: 0, families, pending: new Set(), results: [], errors: [], done: false };
    const lit = parseIp(clean);
    if (lit) {
      this.finish(now, l, [{ address: formatIp(lit), family: lit.length === 4 ? 4 : 6 }]);
      return l;
    }
    const fixed = this.opts.hosts.get(clean.toLowerCase());
    if (fixed) {
      const addrs = fixed.map((a) => parseIp(a)).filter((a): a is IpAddr => a !== undefined && families.includes(a.length === 4 ? 4 : 6));
      this.finish(now, l, addrs.map((a) => ({ address: formatIp(a), family: a.length === 4 ? 4 : 6 })));
      return l;
    }
    if (this.opts.servers.length === 0 || !/^[A-Za-z0-9_.-]+$/.test(clean) || clean.length > 253) {
      this.finish(now, l, [], 'ENOTFOUND');
      return l;
    }
    // resolv.conf(5): a name with at least one dot is tried as is first, then with each search domain.
    const dots = clean.split('.').length - 1;
    const searched = this.opts.search.map((d) => `${clean}.${d.replace(/^\.|\.$/g, '')}`);
    l.candidates = name.endsWith('.') ? [clean] : dots >= 1 ? [clean, ...searched] : [...searched, clean];
    this.startCandidate(now, l);
    return l;
  }

  private startCandidate(now: Instant, l: Lookup): void {
    const name = l.candidates[l.candidate]!;
    for (const fam of l.families) this.send(now, l, name, fam === 4 ? 'A' : 'AAAA', 0, 0, 0);
  }

  private server(a: { server: number }): IpAddr {
    return this.opts.servers[a.server % this.opts.servers.length]!;
  }

  private count(what: DnsCounter): void {
    increment(this.stats, what);
  }

  /** A copy of the counters now. */
  statsSnapshot(): Counters<DnsCounter> {
    return { ...this.stats };
  }

  private query(txid: number, name: string, type: 'A' | 'AAAA'): Uint8Array {
    return dnsPacket.encode({ type: 'query', id: txid, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
  }

  private send(now: Instant, l: Lookup, name: string, type: 'A' | 'AAAA', server: number, tries: number, cnameDepth: number): void {
    const srv = this.opts.servers[server % this.opts.servers.length]!;
    let socket: UdpSocket;
    try {
      socket = this.iface.udpBind({ family: srv.length === 4 ? 4 : 6 });
    } catch {
      l.errors.push('ECONNREFUSED');
      return this.settle(now, l);
    }
    // A connected socket: the Interface drops datagrams from anyone else and
    // delivers ICMP port unreachable from the server, so a dead server fails fast.
    socket.connect(srv, DNS_PORT);
    const txid = randomInt(this.opts.rng, 0x10000);
    const a: Attempt = { lookup: l, name, type, txid, server, tries, deadline: now + this.opts.timeoutMs, cnameDepth, transport: { kind: 'udp', socket } };
    this.attempts.add(a);
    this.bySocket.set(socket, a);
    l.pending.add(a);
    try {
      socket.send(now, this.query(txid, name, type));
    } catch {
      this.endAttempt(now, a);
      this.retry(now, a, 'ECONNREFUSED');
    }
  }

  /**
   * The same question to the same server over TCP after a truncated UDP answer
   * (RFC 7766 §5), with a fresh ID and a fresh per-try deadline; it counts as the
   * same try for failover.
   */
  private sendTcp(now: Instant, prev: Attempt): void {
    const l = prev.lookup;
    const srv = this.server(prev);
    let conn: TcpConnection;
    try {
      conn = this.iface.tcp.connect(now, { remoteAddr: srv, remotePort: DNS_PORT });
    } catch {
      return this.retry(now, prev, 'ECONNREFUSED');
    }
    this.count('dns.tcpRetry');
    const txid = randomInt(this.opts.rng, 0x10000);
    const msg = this.query(txid, prev.name, prev.type);
    // RFC 1035 §4.2.2: a two-byte length in network order before each message.
    const out = new Uint8Array(2 + msg.length);
    out[0] = msg.length >> 8;
    out[1] = msg.length & 0xff;
    out.set(msg, 2);
    const a: Attempt = { ...prev, txid, deadline: now + this.opts.timeoutMs, transport: { kind: 'tcp', conn, out, rx: new Uint8Array(0) } };
    this.attempts.add(a);
    this.byConn.set(conn, a);
    this.ownConns.add(conn);
    l.pending.add(a);
    // The send buffer takes data in SYN-SENT; it leaves with the handshake's end.
    this.flushTcp(now, a);
  }

  private flushTcp(now: Instant, a: Attempt): void {
    const t = a.transport;
    if (t.kind !== 'tcp' || t.out.length === 0) return;
    const n = t.conn.send(now, t.out);
    t.out = t.out.subarray(n);
  }

  private endAttempt(now: Instant, a: Attempt): void {
    this.attempts.delete(a);
    a.lookup.pending.delete(a);
    const t = a.transport;
    if (t.kind === 'udp') {
      this.bySocket.delete(t.socket);
      t.socket.close();
    } else if (this.byConn.delete(t.conn)) {
      // RFC 7766 §6.2.3: the client closes; a graceful FIN, with a deadline after which it is reset.
      t.conn.shutdown(now);
      if (t.conn.state !== 'CLOSED') this.closing.set(t.conn, now + this.opts.timeoutMs);
    }
  }

  /**
   * Checks a reply against the try it may answer; counts and returns undefined
   * when it must be ignored (RFC 5452 §9.1: ID, question and server must match).
   */
  private accept(a: Attempt, data: Uint8Array): dnsPacket.Packet | undefined {
    let res: dnsPacket.Packet;
    try {
      res = dnsPacket.decode(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    } catch {
      this.count('drop.dns.malformed');
      return undefined;
    }
    // dns-packet reads past the end of a short message as zeros (a record cut short "decodes"
    // to an address that was never sent: found by test/fuzz): it must fit what arrived.
    if (dnsPacket.decode.bytes > data.length) {
      this.count('drop.dns.malformed');
      return undefined;
    }
    if (res.type !== 'response') {
      this.count('drop.dns.notResponse');
      return undefined;
    }
    if (res.id !== a.txid) {
      this.count('drop.dns.id');
      return undefined;
    }
    const q = res.questions?.[0];
    if (!q || res.questions!.length !== 1 || q.name.toLowerCase() !== a.name.toLowerCase() || q.type !== a.type || (q.class !== undefined && q.class !== 'IN')) {
      this.count('drop.dns.question');
      return undefined;
    }
    return res;
  }

  /** Gives the client its sockets' and connections' events; true if the event was one of ours. */
  handleEvent(now: Instant, ev: NetEvent): boolean {
    switch (ev.type) {
      case 'udp-readable':
      case 'udp-error':
        return this.handleUdpEvent(now, ev);
      case 'tcp-connected':
      case 'tcp-readable':
      case 'tcp-writable':
      case 'tcp-closed':
        return this.handleTcpEvent(now, ev);
      default:
        return false;
    }
  }

  private handleUdpEvent(now: Instant, ev: Extract<NetEvent, { type: 'udp-readable' | 'udp-error' }>): boolean {
    const a = this.bySocket.get(ev.socket);
    if (!a || a.transport.kind !== 'udp') return false;
    if (ev.type === 'udp-error') {
      this.endAttempt(now, a);
      this.retry(now, a, 'ECONNREFUSED');
      return true;
    }
    const socket = a.transport.socket;
    for (let m = socket.recv(); m; m = socket.recv()) {
      if (m.port !== DNS_PORT || !ipEqual(m.addr, this.server(a))) {
        this.count('drop.dns.source'); // RFC 5452 §9.1: only the server asked
        continue;
      }
      const res = this.accept(a, m.data);
      if (!res) continue;
      this.endAttempt(now, a);
      if ((res.flags ?? 0) & FLAG_TC) {
        this.count('dns.truncated');
        this.sendTcp(now, a);
        return true;
      }
      this.answer(now, a, res);
      return true;
    }
    return true;
  }

  private handleTcpEvent(now: Instant, ev: Extract<NetEvent, { conn: TcpConnection }>): boolean {
    const conn = ev.conn;
    if (!this.ownConns.has(conn)) return false;
    const a = this.byConn.get(conn);
    if (!a || a.transport.kind !== 'tcp') {
      // Closing after its answer: nothing more is wanted from it.
      if (ev.type === 'tcp-readable') while (conn.recv());
      if (ev.type === 'tcp-closed') this.closing.delete(conn);
      return true;
    }
    const t = a.transport;
    switch (ev.type) {
      case 'tcp-connected':
      case 'tcp-writable':
        this.flushTcp(now, a);
        return true;
      case 'tcp-closed':
        this.byConn.delete(conn);
        this.endAttempt(now, a);
        this.retry(now, a, ev.error === 'ETIMEDOUT' ? 'ETIMEOUT' : 'ECONNREFUSED');
        return true;
      case 'tcp-readable':
        break;
    }
    for (let chunk = conn.recv(); chunk; chunk = conn.recv()) {
      const rx = new Uint8Array(t.rx.length + chunk.length);
      rx.set(t.rx);
      rx.set(chunk, t.rx.length);
      t.rx = rx;
    }
    // Each message is length-prefixed (RFC 1035 §4.2.2); one that is not ours is
    // skipped whole and the stream stays in step (RFC 7766 §7 allows several).
    while (t.rx.length >= 2) {
      const len = (t.rx[0]! << 8) | t.rx[1]!;
      if (t.rx.length < 2 + len) break;
      const msg = t.rx.subarray(2, 2 + len);
      t.rx = t.rx.subarray(2 + len);
      const res = this.accept(a, msg);
      if (!res) continue;
      this.endAttempt(now, a);
      // A TC bit over TCP would ask for a bigger transport that does not exist: use what came.
      this.answer(now, a, res);
      return true;
    }
    if (conn.recvEnded) {
      // The server closed before a whole answer: this try failed.
      this.endAttempt(now, a);
      this.retry(now, a, 'ECONNREFUSED');
    }
    return true;
  }

  private answer(now: Instant, a: Attempt, res: dnsPacket.Packet): void {
    const l = a.lookup;
    const rcode = (res.flags ?? 0) & 0xf;
    if (rcode === 3) {
      l.errors.push('ENOTFOUND');
      return this.settle(now, l);
    }
    // SERVFAIL, REFUSED, ...: this server cannot help; the next one may (as glibc and c-ares do).
    if (rcode !== 0) return this.retry(now, a, RCODE_ERRORS[rcode] ?? 'EBADRESP');
    // Follow the CNAME chain inside the answer, then take records of the final name.
    let name = a.name.toLowerCase();
    const answers = res.answers ?? [];
    for (let i = 0; i < MAX_CNAME; i++) {
      const cn = answers.find((r) => r.type === 'CNAME' && r.name.toLowerCase() === name);
      if (!cn) break;
      name = String((cn as { data: unknown }).data).toLowerCase().replace(/\.$/, '');
    }
    let found = 0;
    for (const r of answers) {
      if (r.name.toLowerCase() !== name || r.type !== a.type) continue;
      const ip = parseIp(String((r as { data: unknown }).data));
      if (!ip) continue;
      const address = formatIp(ip);
      if (!l.results.some((x) => x.address === address)) l.results.push({ address, family: ip.length === 4 ? 4 : 6 });
      found++;
    }
    if (found === 0 && name !== a.name.toLowerCase() && a.cnameDepth < MAX_CNAME) {
      // The server gave the alias only: ask for the target.
      return this.send(now, l, name, a.type, a.server, 0, a.cnameDepth + 1);
    }
    if (found === 0) l.errors.push('ENOTFOUND');
    this.settle(now, l);
  }

  private retry(now: Instant, a: Attempt, err: DnsError): void {
    const l = a.lookup;
    const total = this.opts.attempts * this.opts.servers.length;
    if (a.tries + 1 < total) return this.send(now, l, a.name, a.type, a.server + 1, a.tries + 1, a.cnameDepth);
    l.errors.push(err);
    this.settle(now, l);
  }

  private settle(now: Instant, l: Lookup): void {
    if (l.done || l.pending.size > 0) return;
    if (l.results.length > 0) return this.finish(now, l, l.results);
    if (l.candidate + 1 < l.candidates.length && l.errors.every((e) => e === 'ENOTFOUND')) {
      l.candidate++;
      l.errors = [];
      return this.startCandidate(now, l);
    }
    const err = l.errors.includes('ENOTFOUND') ? 'ENOTFOUND' : (l.errors[0] ?? 'ENOTFOUND');
    this.finish(now, l, [], err);
  }

  private finish(now: Instant, l: Lookup, addresses: { address: string; family: 4 | 6 }[], error?: DnsError): void {
    l.done = true;
    for (const a of [...l.pending]) this.endAttempt(now, a);
    this.events.push(addresses.length > 0 ? { type: 'dns-result', query: l, addresses } : { type: 'dns-result', query: l, addresses: [], error: error ?? 'ENOTFOUND' });
  }

  handleTimeout(now: Instant): void {
    for (const a of [...this.attempts]) {
      if (a.deadline > now) continue;
      if (a.transport.kind === 'tcp') {
        // No answer in time: reset rather than linger (the server may be gone).
        this.byConn.delete(a.transport.conn);
        a.transport.conn.abort(now);
      }
      this.endAttempt(now, a);
      this.retry(now, a, 'ETIMEOUT');
    }
    for (const [conn, at] of this.closing) {
      if (at > now) continue;
      this.closing.delete(conn);
      // In TIME-WAIT our side is done and the layer ends it; anything else is stuck.
      if (conn.state === 'TIME-WAIT' || conn.state === 'CLOSED') continue;
      this.count('dns.tcpAbort');
      conn.abort(now);
    }
  }

  pollTimeout(): Deadline | undefined {
    let at = Infinity;
    for (const a of this.attempts) at = Math.min(at, a.deadline);
    for (const t of this.closing.values()) at = Math.min(at, t);
    return at === Infinity ? undefined : { at, reason: 'dns' };
  }

  pollEvent(): DnsResult | undefined {
    return this.events.shift();
  }
}
