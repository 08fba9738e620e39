/**
 * Parsers for the values every config format shares (keys, addresses,
 * prefixes, endpoints, ports). Each returns the value or a message saying what
 * was expected and what was found; the caller adds the location.
 */
import { parseIp, parsePrefix, type IpPrefix } from '../util/ip.js';
import type { EndpointSpec, InterfaceAddress } from './model.js';

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
  if (!addr) return bad(`expected an IP address with an optional /prefix, got '${t}'`);
  let bits = addr.length * 8;
  if (slash >= 0) {
    const b = t.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(b) || Number(b) > addr.length * 8) return bad(`prefix length must be 0-${addr.length * 8}, got '${b}'`);
    bits = Number(b);
  }
  return ok({ addr, bits });
}

export function parseCidr(s: string): Parsed<IpPrefix> {
  const t = s.trim();
  const p = parsePrefix(t);
  if (!p) return bad(`expected an IP prefix like 10.0.0.0/24 or fd00::/64, got '${t}'`);
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
    if (!parseIp(host) || !host.includes(':')) return bad(`expected [IPv6]:port, got '${t}'`);
  } else {
    const i = t.lastIndexOf(':');
    if (i <= 0 || t.indexOf(':') !== i) return bad(`expected host:port or [IPv6]:port, got '${t}'`);
    host = t.slice(0, i);
    portText = t.slice(i + 1);
    if (!parseIp(host) && !/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(host)) {
      return bad(`expected an IP address or host name before ':', got '${host}'`);
    }
  }
  const port = parsePort(portText, false);
  if (!port.ok) return bad(`port ${port.error}`);
  return ok({ host, port: port.value });
}

export function parsePort(s: string, allowZero = true): Parsed<number> {
  const t = s.trim();
  if (!/^[0-9]{1,5}$/.test(t)) return bad(`expected a number 0-65535, got '${t}'`);
  const n = Number(t);
  if (n > 65535 || (!allowZero && n === 0)) return bad(`expected ${allowZero ? 0 : 1}-65535, got ${n}`);
  return ok(n);
}

export function parseUint(s: string, min: number, max: number): Parsed<number> {
  const t = s.trim();
  if (!/^[0-9]+$/.test(t) || Number(t) < min || Number(t) > max) return bad(`expected a number ${min}-${max}, got '${t}'`);
  return ok(Number(t));
}
