/**
 * A stub resolver over the netstack's own UDP (never the system resolver):
 * A and AAAA in parallel, a random ID and source port per query (RFC 5452),
 * answers matched by ID, name and server, retries across servers, CNAME
 * chains, search domains with the resolv.conf ndots rule, static host entries.
 * The message codec is the `dns-packet` library.
 */
import dnsPacket from 'dns-packet';
import type { Deadline, Instant } from '../util/time.js';
import type { Rng } from '../util/rng.js';
import { randomInt } from '../util/rng.js';
import { formatIp, parseIp, ipEqual, type IpAddr } from '../util/ip.js';
import type { Interface, NetEvent, UdpSocket } from './interface.js';

export type DnsError = 'ENOTFOUND' | 'ETIMEOUT' | 'ESERVFAIL' | 'ECONNREFUSED' | 'ECANCELLED';

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
  socket: UdpSocket;
  server: number;
  tries: number;
  deadline: Instant;
  cnameDepth: number;
}

const MAX_CNAME = 8;

export class DnsClient {
  private readonly opts: Required<Omit<DnsClientOptions, 'hosts'>> & { hosts: Map<string, string[]> };
  private readonly attempts = new Set<Attempt>();
  private readonly bySocket = new Map<UdpSocket, Attempt>();
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
      this.finish(l, [{ address: formatIp(lit), family: lit.length === 4 ? 4 : 6 }]);
      return l;
    }
    const fixed = this.opts.hosts.get(clean.toLowerCase());
    if (fixed) {
      const addrs = fixed.map((a) => parseIp(a)).filter((a): a is IpAddr => a !== undefined && families.includes(a.length === 4 ? 4 : 6));
      this.finish(l, addrs.map((a) => ({ address: formatIp(a), family: a.length === 4 ? 4 : 6 })));
      return l;
    }
    if (this.opts.servers.length === 0 || !/^[A-Za-z0-9_.-]+$/.test(clean) || clean.length > 253) {
      this.finish(l, [], 'ENOTFOUND');
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

  private send(now: Instant, l: Lookup, name: string, type: 'A' | 'AAAA', server: number, tries: number, cnameDepth: number): void {
    const srv = this.opts.servers[server % this.opts.servers.length]!;
    let socket: UdpSocket;
    try {
      socket = this.iface.udpBind({ family: srv.length === 4 ? 4 : 6 });
    } catch {
      l.errors.push('ECONNREFUSED');
      return this.settle(now, l);
    }
    const txid = randomInt(this.opts.rng, 0x10000);
    const a: Attempt = { lookup: l, name, type, txid, socket, server, tries, deadline: now + this.opts.timeoutMs, cnameDepth };
    this.attempts.add(a);
    this.bySocket.set(socket, a);
    l.pending.add(a);
    const msg = dnsPacket.encode({ type: 'query', id: txid, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
    try {
      socket.send(now, msg, srv, 53);
    } catch {
      this.endAttempt(a);
      l.errors.push('ECONNREFUSED');
      this.settle(now, l);
    }
  }

  private endAttempt(a: Attempt): void {
    this.attempts.delete(a);
    this.bySocket.delete(a.socket);
    a.lookup.pending.delete(a);
    a.socket.close();
  }

  /** Gives the client its sockets' events; true if the event was one of ours. */
  handleEvent(now: Instant, ev: NetEvent): boolean {
    if (ev.type !== 'udp-readable' && ev.type !== 'udp-error') return false;
    const a = this.bySocket.get(ev.socket);
    if (!a) return false;
    if (ev.type === 'udp-error') {
      this.endAttempt(a);
      this.retry(now, a, 'ECONNREFUSED');
      return true;
    }
    for (let m = a.socket.recv(); m; m = a.socket.recv()) {
      const srv = this.opts.servers[a.server % this.opts.servers.length]!;
      if (m.port !== 53 || !ipEqual(m.addr, srv)) continue; // RFC 5452 §9.1: only the server asked
      let res: dnsPacket.Packet;
      try {
        res = dnsPacket.decode(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
      } catch {
        continue;
      }
      const q = res.questions?.[0];
      if (res.id !== a.txid || res.type !== 'response' || !q || q.name.toLowerCase() !== a.name.toLowerCase() || q.type !== a.type) continue;
      this.endAttempt(a);
      this.answer(now, a, res);
      return true;
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
    if (rcode !== 0) return this.retry(now, a, 'ESERVFAIL');
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
    if (l.results.length > 0) return this.finish(l, l.results);
    if (l.candidate + 1 < l.candidates.length && l.errors.every((e) => e === 'ENOTFOUND')) {
      l.candidate++;
      l.errors = [];
      return this.startCandidate(now, l);
    }
    const err = l.errors.includes('ENOTFOUND') ? 'ENOTFOUND' : (l.errors[0] ?? 'ENOTFOUND');
    this.finish(l, [], err);
  }

  private finish(l: Lookup, addresses: { address: string; family: 4 | 6 }[], error?: DnsError): void {
    l.done = true;
    for (const a of [...l.pending]) this.endAttempt(a);
    this.events.push(addresses.length > 0 ? { type: 'dns-result', query: l, addresses } : { type: 'dns-result', query: l, addresses: [], error: error ?? 'ENOTFOUND' });
  }

  handleTimeout(now: Instant): void {
    for (const a of [...this.attempts]) {
      if (a.deadline > now) continue;
      this.endAttempt(a);
      this.retry(now, a, 'ETIMEOUT');
    }
  }

  pollTimeout(): Deadline | undefined {
    let at = Infinity;
    for (const a of this.attempts) at = Math.min(at, a.deadline);
    return at === Infinity ? undefined : { at, reason: 'dns' };
  }

  pollEvent(): DnsResult | undefined {
    return this.events.shift();
  }
}
