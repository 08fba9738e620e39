/**
 * IP addresses as bytes (4 or 16), with strict text parsing and RFC 5952 formatting.
 * No `node:net` here: the cores stay free of OS modules (DESIGN §1).
 */
import { invalidArgument } from './errors.js';

type IpFamily = 4 | 6;
/** An IPv4 (4 bytes) or IPv6 (16 bytes) address. */
export type IpAddr = Uint8Array;

export interface IpPrefix {
  addr: IpAddr; // host bits are zero
  bits: number;
}

export function familyOf(a: IpAddr): IpFamily {
  return a.length === 4 ? 4 : 6;
}

export function parseIPv4(s: string): IpAddr | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

export function parseIPv6(input: string): IpAddr | undefined {
  let s = input;
  const pct = s.indexOf('%'); // zone index: accepted and dropped (no meaning inside a tunnel)
  if (pct >= 0) s = s.slice(0, pct);
  if (s.length < 2 || s.length > 45) return undefined;
  const out = new Uint8Array(16);
  // An embedded IPv4 tail (::ffff:1.2.3.4).
  let tail: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    tail = parseIPv4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return undefined;
  const parseGroups = (t: string): number[] | undefined => {
    if (t === '') return [];
    const gs = t.split(':');
    const r: number[] = [];
    for (const g of gs) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      r.push(parseInt(g, 16));
    }
    return r;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = parseGroups(s.slice(0, dbl));
    const rest = parseGroups(s.slice(dbl + 2));
    if (!head || !rest || head.length + rest.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    const g = parseGroups(s);
    if (!g || g.length !== 8) return undefined;
    groups = g;
  }
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i]! >> 8;
    out[i * 2 + 1] = groups[i]! & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

/** Parses an IPv4 or IPv6 address (IPv6 may be in brackets). Undefined if it is neither. */
export function parseIp(s: string): IpAddr | undefined {
  if (s.startsWith('[') && s.endsWith(']')) return parseIPv6(s.slice(1, -1));
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

/** Like parseIp, but throws a clear error for the local program's input. */
export function mustParseIp(s: string, what = 'address'): IpAddr {
  const a = parseIp(s);
  if (!a) throw invalidArgument(`${what}: '${s}' is not an IPv4 or IPv6 address`);
  return a;
}

export function formatIPv4(a: Uint8Array, off = 0): string {
  return `${a[off]}.${a[off + 1]}.${a[off + 2]}.${a[off + 3]}`;
}

/** RFC 5952: lowercase, leading zeros dropped, the longest run (>= 2) of zero groups as '::'. */
export function formatIPv6(a: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((a[off + i * 2]! << 8) | a[off + i * 2 + 1]!);
  // IPv4-mapped addresses keep the dotted tail, as Node and the kernel print them.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatIPv4(a, off + 12)}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return g.map((x) => x.toString(16)).join(':');
  const head = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const tail = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${head}::${tail}`;
}

export function formatIp(a: IpAddr): string {
  return a.length === 4 ? formatIPv4(a) : formatIPv6(a);
}

/** `1.2.3.4:51820` or `[fd00::1]:51820`, as `wg` prints endpoints. */
export function formatHostPort(a: IpAddr | string, port: number): string {
  const s = typeof a === 'string' ? a : formatIp(a);
  return s.includes(':') ? `[${s}]:${port}` : `${s}:${port}`;
}

export function ipEqual(a: IpAddr, b: IpAddr): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Zeroes the host bits of `addr` beyond `bits`, returning a new array. */
export function maskAddr(addr: IpAddr, bits: number): IpAddr {
  const out = new Uint8Array(addr);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i]! &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

/**
 * Parses `addr/bits` (bits defaults to the full length). With `strict`, host bits
 * must be zero; otherwise they are masked off (as `wg` does for allowed IPs).
 */
export function parsePrefix(s: string, strict = false): IpPrefix | undefined {
  const slash = s.indexOf('/');
  const a = parseIp(slash >= 0 ? s.slice(0, slash) : s);
  if (!a) return undefined;
  const max = a.length * 8;
  let bits = max;
  if (slash >= 0) {
    const t = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(t)) return undefined;
    bits = Number(t);
    if (bits > max) return undefined;
  }
  const m = maskAddr(a, bits);
  if (strict && !ipEqual(m, a)) return undefined;
  return { addr: m, bits };
}

export function formatPrefix(p: IpPrefix): string {
  return `${formatIp(p.addr)}/${p.bits}`;
}

export function prefixContains(p: IpPrefix, a: IpAddr): boolean {
  if (p.addr.length !== a.length) return false;
  const full = p.bits >> 3;
  for (let i = 0; i < full; i++) if (p.addr[i] !== a[i]) return false;
  const rem = p.bits & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (a[full]! & mask) === p.addr[full];
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), if it is one. */
export function unmapIPv4(a: IpAddr): IpAddr {
  if (a.length !== 16) return a;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return a;
  if (a[10] !== 0xff || a[11] !== 0xff) return a;
  return a.slice(12);
}
