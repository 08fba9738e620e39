/**
 * Gateway policy (DESIGN §8): which destinations a peer may reach through the gateway.
 * Pure: it reads no sockets and no clock, so it is checked before any host socket opens.
 *
 * Order, first match wins:
 *  1. a deny rule;
 *  2. an allow rule (which also unlocks the classes below);
 *  3. the classes refused by default: loopback, unspecified, link-local (cloud metadata at
 *     169.254.169.254), multicast and broadcast, and the gateway host's own addresses;
 *  4. with any allow rule given, everything else is refused (an allowlist); without, allowed.
 * Destinations are judged after unmapping IPv4-mapped IPv6 (::ffff:127.0.0.1 is loopback).
 */
import { formatIp, ipEqual, parseIp, parsePrefix, prefixContains, unmapIPv4, type IpAddr, type IpPrefix } from '../util/ip.js';
import { invalidArgument } from '../util/errors.js';

export interface PolicyRule {
  prefix: IpPrefix;
  /** Inclusive port ranges; empty means every port. */
  ports: [number, number][];
  /** Only for this peer (base64 public key); undefined means every peer. */
  peer?: string;
}

export type RefusalReason = 'denied' | 'not-allowed' | 'loopback' | 'unspecified' | 'link-local' | 'multicast' | 'broadcast' | 'host-address';

export interface PolicyOptions {
  allow?: ReadonlyArray<string | PolicyRule>;
  deny?: ReadonlyArray<string | PolicyRule>;
  /** The gateway host's own addresses (refused unless allowed). */
  hostAddresses?: ReadonlyArray<string>;
  /** Loopback is not refused by default (the gateway's --expose-localhost). */
  allowLoopback?: boolean;
}

const CLASSES: [RefusalReason, IpPrefix][] = [
  ['loopback', pfx('127.0.0.0/8')],
  ['loopback', pfx('::1/128')],
  ['unspecified', pfx('0.0.0.0/8')], // connect(0.0.0.0) reaches the host itself on Linux
  ['unspecified', pfx('::/128')],
  ['link-local', pfx('169.254.0.0/16')],
  ['link-local', pfx('fe80::/10')],
  ['multicast', pfx('224.0.0.0/4')],
  ['multicast', pfx('ff00::/8')],
  ['broadcast', pfx('255.255.255.255/32')],
];

function pfx(s: string): IpPrefix {
  return parsePrefix(s)!;
}

/**
 * `CIDR[:PORTS]` as the CLI takes it: `10.0.0.0/8`, `10.0.0.5`, `10.0.0.0/8:80,443`,
 * `192.0.2.0/24:8000-8100`, `fd00::/8:53`, `[fd00::1]:22`. PORTS is a comma list of ports
 * or ranges. An IPv6 address with a port and no prefix length needs brackets.
 */
export function parseRule(spec: string, what = 'rule'): PolicyRule {
  const bad = (why: string): Error => invalidArgument(`${what} '${spec.slice(0, 80)}': ${why} (expected CIDR[:PORTS], e.g. 10.0.0.0/8:80,443)`);
  let addrPart = spec;
  let portPart: string | undefined;
  if (spec.startsWith('[')) {
    const close = spec.indexOf(']');
    if (close < 0) throw bad('missing ]');
    addrPart = spec.slice(1, close);
    const rest = spec.slice(close + 1);
    if (rest.startsWith(':')) portPart = rest.slice(1);
    else if (rest !== '') throw bad('unexpected text after ]');
  } else {
    const slash = spec.indexOf('/');
    if (slash >= 0) {
      const colon = spec.indexOf(':', slash);
      if (colon >= 0) {
        addrPart = spec.slice(0, colon);
        portPart = spec.slice(colon + 1);
      }
    } else if (spec.split(':').length === 2) {
      // a.b.c.d:PORTS (one colon can only be IPv4 with ports)
      [addrPart, portPart] = spec.split(':') as [string, string];
    }
  }
  const prefix = parsePrefix(addrPart);
  if (!prefix) throw bad('not an IP address or CIDR prefix');
  const ports: [number, number][] = [];
  if (portPart !== undefined) {
    for (const item of portPart.split(',')) {
      const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(item);
      if (!m) throw bad(`bad port '${item.slice(0, 20)}'`);
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      if (lo < 1 || hi > 65535 || lo > hi) throw bad(`port range ${item} outside 1-65535`);
      ports.push([lo, hi]);
    }
  }
  return { prefix: unmapPrefix(prefix), ports };
}

/** ::ffff:10.0.0.0/104 is 10.0.0.0/8: destinations are compared unmapped. */
function unmapPrefix(p: IpPrefix): IpPrefix {
  const a = unmapIPv4(p.addr);
  return a.length === p.addr.length || p.bits < 96 ? p : { addr: a, bits: p.bits - 96 };
}

function matches(r: PolicyRule, dst: IpAddr, port: number, peer: string | undefined): boolean {
  if (r.peer !== undefined && r.peer !== peer) return false;
  if (!prefixContains(r.prefix, dst)) return false;
  if (r.ports.length === 0) return true;
  if (port === 0) return false; // a rule with ports says nothing about ICMP
  for (const [lo, hi] of r.ports) if (port >= lo && port <= hi) return true;
  return false;
}

export class GatewayPolicy {
  readonly allow: readonly PolicyRule[];
  readonly deny: readonly PolicyRule[];
  private readonly hostAddrs: IpAddr[];
  private readonly classes: [RefusalReason, IpPrefix][];

  constructor(opts: PolicyOptions = {}) {
    const norm = (r: string | PolicyRule, what: string): PolicyRule => (typeof r === 'string' ? parseRule(r, what) : { ...r, prefix: unmapPrefix(r.prefix) });
    this.allow = (opts.allow ?? []).map((r) => norm(r, 'allow'));
    this.deny = (opts.deny ?? []).map((r) => norm(r, 'deny'));
    this.classes = opts.allowLoopback ? CLASSES.filter(([why]) => why !== 'loopback') : CLASSES;
    this.hostAddrs = [];
    for (const a of opts.hostAddresses ?? []) {
      const ip = parseIp(a.replace(/%.*$/, ''));
      if (ip) this.hostAddrs.push(unmapIPv4(ip));
    }
  }

  /**
   * Whether `peer` may reach `dst`:`port` (port 0 for ICMP, which port rules do not
   * restrict). Returns the reason when not.
   */
  check(dst: IpAddr, port: number, peer?: string): RefusalReason | undefined {
    const d = unmapIPv4(dst);
    for (const r of this.deny) if (matches(r, d, port, peer)) return 'denied';
    for (const r of this.allow) if (matches(r, d, port, peer)) return undefined;
    for (const [why, p] of this.classes) if (prefixContains(p, d)) return why;
    for (const h of this.hostAddrs) if (ipEqual(h, d)) return 'host-address';
    return this.allow.length > 0 ? 'not-allowed' : undefined;
  }

  /** For logs: the rules in CLI form. */
  describe(): string {
    const f = (r: PolicyRule): string => `${formatIp(r.prefix.addr)}/${r.prefix.bits}${r.ports.length ? ':' + r.ports.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',') : ''}${r.peer ? ` (peer ${r.peer.slice(0, 8)}…)` : ''}`;
    return `allow [${this.allow.map(f).join(', ')}] deny [${this.deny.map(f).join(', ')}]`;
  }
}
