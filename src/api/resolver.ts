/**
 * Name resolution through the tunnel's DNS servers, never the system resolver: the promise
 * API (lookup, lookupAll) and a `net.LookupFunction` for http, net and undici. The DNS client
 * is sans-IO (netstack/dns.ts); this keeps who waits for which query and hands it the answer
 * after each engine step.
 */
import type dns from 'node:dns';
import type { Engine } from '../io/engine.js';
import type { DnsClient, DnsQuery } from '../netstack/dns.js';
import { formatIp, parseIp, familyOf } from '../util/ip.js';
import { systemError } from '../util/errors.js';
import { abortError } from './lifecycle.js';

export interface LookupResult {
  address: string;
  family: 4 | 6;
}

export type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

type Answer = { addresses: LookupResult[]; error?: string };

export class TunnelResolver {
  /** Lookups waiting for their query's answer (the churn tests read its size). */
  readonly waiters = new Map<DnsQuery, (r: Answer) => void>();

  constructor(
    private readonly engine: Engine,
    readonly dns: DnsClient | undefined,
    private readonly assertOpen: () => void,
  ) {}

  async lookup(host: string, opts: { family?: 0 | 4 | 6; all?: false; signal?: AbortSignal }): Promise<LookupResult> {
    const all = await this.lookupAll(host, opts.family ?? 0, { signal: opts.signal });
    return all[0]!;
  }

  async lookupAll(host: string, family: 0 | 4 | 6, opts: { signal?: AbortSignal }): Promise<LookupResult[]> {
    this.assertOpen();
    const signal = opts.signal;
    if (signal?.aborted) throw abortError(signal);
    const lit = parseIp(host);
    if (lit) return [{ address: formatIp(lit), family: familyOf(lit) }];
    const dns = this.dns;
    if (!dns) {
      const e = systemError('ENOTFOUND', 'getaddrinfo', host);
      e.message = `getaddrinfo ENOTFOUND ${host} (the tunnel has no DNS servers configured)`;
      throw e;
    }
    const q = dns.lookup(this.engine.now(), host, family);
    const done = new Promise<Answer>((resolve, reject) => {
      this.waiters.set(q, resolve);
      if (!signal) return;
      const onAbort = (): void => {
        this.waiters.delete(q); // the query itself ends at its own timeout
        reject(abortError(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.set(q, (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      });
    });
    this.deliver(); // literal IPs and host entries answer at once
    this.engine.pump();
    const r = await done;
    if (r.error || r.addresses.length === 0) {
      throw systemError(getaddrinfoCode(r.error), 'getaddrinfo', host);
    }
    // Prefer the family the tunnel has an address of.
    const have4 = this.engine.iface.addresses.some((a) => a.addr.length === 4);
    const have6 = this.engine.iface.addresses.some((a) => a.addr.length === 16);
    return [...r.addresses].sort((a, b) => score(b) - score(a));
    function score(x: LookupResult): number {
      return (x.family === 4 && have4) || (x.family === 6 && have6) ? 1 : 0;
    }
  }

  /** A `net.LookupFunction` (also callable as dns.lookup: options may be a family or omitted). */
  readonly lookupFunction = (hostname: string, options: dns.LookupOptions | number | LookupCallback, callback?: LookupCallback): void => {
    const cb = (typeof options === 'function' ? options : callback)!;
    const o: dns.LookupOptions = typeof options === 'object' && options !== null ? options : typeof options === 'number' ? { family: options } : {};
    const fam = o.family === 'IPv4' || o.family === 4 ? 4 : o.family === 'IPv6' || o.family === 6 ? 6 : 0;
    this.lookupAll(hostname, fam, {}).then(
      (rs) => (o.all ? cb(null, rs) : cb(null, rs[0]!.address, rs[0]!.family)),
      (err: NodeJS.ErrnoException) => (cb as (e: NodeJS.ErrnoException) => void)(err),
    );
  };

  /** Delivers finished lookups to their waiters (after each engine step that may have answered one). */
  deliver(): void {
    const dns = this.dns;
    if (!dns) return;
    for (let ev = dns.pollEvent(); ev; ev = dns.pollEvent()) {
      const w = this.waiters.get(ev.query);
      if (w) {
        this.waiters.delete(ev.query);
        w({ addresses: ev.addresses, error: ev.error });
      }
    }
  }

  /** tunnel.close(): every waiting lookup fails with ECANCELLED. */
  cancelAll(): void {
    for (const w of this.waiters.values()) w({ addresses: [], error: 'ECANCELLED' });
    this.waiters.clear();
  }
}

/**
 * The code dns.lookup (getaddrinfo) gives for a resolver outcome: ENOTFOUND when the name
 * has no address, EAI_AGAIN when the servers failed (no answer, refused, SERVFAIL: try again
 * later), so code written against Node's lookup sees the same two cases through the tunnel.
 */
function getaddrinfoCode(error: string | undefined): string {
  if (error === undefined || error === 'ENOTFOUND') return 'ENOTFOUND';
  if (error === 'ECANCELLED') return error;
  return 'EAI_AGAIN';
}
