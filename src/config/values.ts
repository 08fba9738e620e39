/**
 * Parsers for the values every config format shares (keys, addresses,
 * prefixes, endpoints, ports). Each returns the value or a message saying what
 * was expected and what was found; the caller adds the location.
 */
import { parseIp, parsePrefix, type IpPrefix } from '../util/ip.js';
import type { EndpointSpec, InterfaceAddress } from './model.js';

/**
 * How an error message shows text from a config that it rejects. Config files
 * hold secrets, and a mangled line can put a key anywhere (in a key name, in an
 * Address, in a line with no '='), so text is quoted only when it is short
 * (at most 40 characters), printable ASCII (no terminal escapes) and holds no
 * run of 8 or more base64 characters ([A-Za-z0-9+/]): every fragment of a key
 * that is worth anything has that shape, and no address, prefix, port or number
 * does. Anything else is described by its length only. The cost: a host name
 * with a label of 8+ characters is not echoed back; the message still names
 * the file, line and key.
 */
export function isShowable(s: string): boolean {
  return s.length <= 40 && /^[\x20-\x7e]*$/.test(s) && !/[A-Za-z0-9+/]{8,}/.test(s);
}

/** `'10.0.0.1/33'`, or `a value of 57 characters (not shown)`. */
export function shown(s: string): string {
  return isShowable(s) ? `'${s}'` : `a value of ${s.length} characters (not shown)`;
}

/** The known name within two edits of `s` (case-insensitive), for "did you mean"; the known spelling, never the input. */
export function closest(s: string, known: readonly string[]): string | undefined {
  if (s.length > 40) return undefined;
  const a = s.toLowerCase();
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(a, k.toLowerCase(), bestD);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

/** Levenshtein distance, or `cap` once it is known to be at least that. */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      rowMin = Math.min(rowMin, cur[j]!);
    }
    if (rowMin >= cap) return cap;
    prev = cur;
  }
  return Math.min(prev[b.length]!, cap);
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(error: string): Parsed<T> => ({ ok: false, error });

/** A 32-byte key in base64. The message never includes the key. */
export function parseKeyValue(s: string): Parsed<Uint8Array> {
  const t = s.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) return bad('expected 32 bytes of base64, got invalid base64');
  const b = Buffer.from(t, 'base64');
  if (b.length !== 32) return bad(`expected 32 bytes of base64, got ${b.length}`);
  if (b.toString('base64') !== t) return bad('expected 32 bytes of base64, got a non-canonical encoding');
  return ok(new Uint8Array(b));
}

/** An interface address: IP with optional prefix length (default /32 or /128), host bits kept. */
export function parseAddress(s: string): Parsed<InterfaceAddress> {
  const t = s.trim();
  const slash = t.indexOf('/');
  const addr = parseIp(slash >= 0 ? t.slice(0, slash) : t);
  if (!addr) return bad(`expected an IP address with an optional /prefix, got ${shown(t)}`);
  let bits = addr.length * 8;
  if (slash >= 0) {
    const b = t.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(b) || Number(b) > addr.length * 8) return bad(`prefix length must be 0-${addr.length * 8}, got ${shown(b)}`);
    bits = Number(b);
  }
  return ok({ addr, bits });
}

export function parseCidr(s: string): Parsed<IpPrefix> {
  const t = s.trim();
  const p = parsePrefix(t);
  if (!p) return bad(`expected an IP prefix like 10.0.0.0/24 or fd00::/64, got ${shown(t)}`);
  return ok(p);
}

export function parseEndpoint(s: string): Parsed<EndpointSpec> {
  const t = s.trim();
  let host: string;
  let portText: string;
  const m6 = /^\[([^\]]+)\]:([^:]*)$/.exec(t);
  if (m6) {
    host = m6[1]!;
    portText = m6[2]!;
    if (!parseIp(host) || !host.includes(':')) return bad(`expected [IPv6]:port, got ${shown(t)}`);
  } else {
    const i = t.lastIndexOf(':');
    if (i <= 0 || t.indexOf(':') !== i) return bad(`expected host:port or [IPv6]:port, got ${shown(t)}`);
    host = t.slice(0, i);
    portText = t.slice(i + 1);
    if (!parseIp(host) && !/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(host)) {
      return bad(`expected an IP address or host name before ':', got ${shown(host)}`);
    }
  }
  const port = parsePort(portText, false);
  if (!port.ok) return bad(`port ${port.error}`);
  return ok({ host, port: port.value });
}

export function parsePort(s: string, allowZero = true): Parsed<number> {
  const t = s.trim();
  if (!/^[0-9]{1,5}$/.test(t)) return bad(`expected a number 0-65535, got ${shown(t)}`);
  const n = Number(t);
  if (n > 65535 || (!allowZero && n === 0)) return bad(`expected ${allowZero ? 0 : 1}-65535, got ${n}`);
  return ok(n);
}

export function parseUint(s: string, min: number, max: number): Parsed<number> {
  const t = s.trim();
  if (!/^[0-9]+$/.test(t) || Number(t) < min || Number(t) > max) return bad(`expected a number ${min}-${max}, got ${shown(t)}`);
  return ok(Number(t));
}
