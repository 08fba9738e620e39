/**
 * Loading a tunnel's configuration from whatever the user has: a wg-quick file
 * or text, sing-box JSON (text or object), `{ file }`, or a config object with
 * keys and addresses as strings. All paths end in the same validated model.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseWgQuick } from './wg-quick.js';
import { parseSingBox } from './sing-box.js';
import { ConfigError, type PeerSpec, type TunnelConfig } from './model.js';
import { parseAddress, parseCidr, parseEndpoint, parseKeyValue, shown, type Parsed } from './values.js';
import { parseIp } from '../util/ip.js';

export { parseWgQuick, formatWgQuick } from './wg-quick.js';
export { parseSingBox } from './sing-box.js';
export { ConfigError } from './model.js';
export type { TunnelConfig, PeerSpec, InterfaceAddress, EndpointSpec } from './model.js';

/** The config object form of `Tunnel.create()`: strings where a user would write them. */
export interface TunnelConfigObject {
  privateKey: string | Uint8Array;
  addresses?: (string | { addr: Uint8Array; bits: number })[];
  address?: string | string[];
  dns?: string[];
  mtu?: number;
  listenPort?: number;
  fwMark?: number;
  peers?: {
    publicKey: string | Uint8Array;
    presharedKey?: string | Uint8Array;
    endpoint?: string | { host: string; port: number };
    allowedIps?: (string | { addr: Uint8Array; bits: number })[];
    persistentKeepalive?: number;
    reserved?: number[] | string | Uint8Array;
  }[];
}

export type TunnelConfigInput = string | { file: string } | TunnelConfigObject | TunnelConfig | Record<string, unknown>;

/** Detects the format: JSON if it starts with `{`, else wg-quick INI. */
export function parseConfig(text: string, opts: { file?: string; tag?: string } = {}): TunnelConfig {
  return /^\s*\{/.test(text) ? parseSingBox(text, opts) : parseWgQuick(text, opts);
}

export async function loadConfig(input: TunnelConfigInput, opts: { tag?: string } = {}): Promise<TunnelConfig> {
  if (typeof input === 'string') {
    // A path if it names no section and no JSON; wg-quick text always has a '['.
    if (!/[[{]/.test(input) && !input.includes('\n')) return loadConfig({ file: input }, opts);
    return parseConfig(input, opts);
  }
  if (input && typeof input === 'object' && 'file' in input && typeof input.file === 'string' && Object.keys(input).length === 1) {
    let text: string;
    try {
      text = await readFile(input.file, 'utf8');
    } catch (err) {
      throw new ConfigError({ file: input.file }, `cannot read: ${(err as Error).message}`);
    }
    return parseConfig(text, { file: basename(input.file), tag: opts.tag });
  }
  const o = input as Record<string, unknown>;
  if ('type' in o || 'endpoints' in o || 'private_key' in o) return parseSingBox(o, opts);
  return validateConfig(o as unknown as TunnelConfigObject);
}

/** Checks and converts a config object, with the same precise errors (paths like `peers[0].publicKey`). */
export function validateConfig(o: TunnelConfigObject): TunnelConfig {
  const err = (path: string, m: string): ConfigError => new ConfigError({ path }, m);
  const need = <T>(path: string, r: Parsed<T>): T => {
    if (!r.ok) throw err(path, r.error);
    return r.value;
  };
  const key = (path: string, v: unknown): Uint8Array => {
    if (v instanceof Uint8Array) {
      if (v.length !== 32) throw err(path, `expected 32 bytes, got ${v.length}`);
      return v;
    }
    if (typeof v !== 'string') throw err(path, 'expected a base64 string');
    return need(path, parseKeyValue(v));
  };
  const addrs = o.addresses ?? (o.address === undefined ? [] : Array.isArray(o.address) ? o.address : [o.address]);
  const cfg: TunnelConfig = {
    privateKey: key('privateKey', o.privateKey),
    addresses: addrs.map((a, i) => (typeof a === 'string' ? need(`addresses[${i}]`, parseAddress(a)) : a)),
    dns: { servers: [], search: [] },
    peers: [],
    warnings: [],
  };
  for (const d of o.dns ?? []) {
    const ip = parseIp(d);
    if (ip) cfg.dns.servers.push(ip);
    else cfg.dns.search.push(d);
  }
  if (o.mtu !== undefined) {
    if (!Number.isInteger(o.mtu) || o.mtu < 576 || o.mtu > 65535) throw err('mtu', `expected 576-65535, got ${shown(String(o.mtu))}`);
    cfg.mtu = o.mtu;
  }
  if (o.listenPort !== undefined) {
    if (!Number.isInteger(o.listenPort) || o.listenPort < 0 || o.listenPort > 65535) throw err('listenPort', `expected 0-65535, got ${shown(String(o.listenPort))}`);
    cfg.listenPort = o.listenPort;
  }
  if (o.fwMark !== undefined) cfg.fwMark = o.fwMark;
  (o.peers ?? []).forEach((p, i) => {
    const at = `peers[${i}].`;
    const spec: PeerSpec = {
      publicKey: key(`${at}publicKey`, p.publicKey),
      allowedIps: (p.allowedIps ?? []).map((a, j) => (typeof a === 'string' ? need(`${at}allowedIps[${j}]`, parseCidr(a)) : a)),
    };
    if (p.presharedKey !== undefined) spec.presharedKey = key(`${at}presharedKey`, p.presharedKey);
    if (p.endpoint !== undefined) spec.endpoint = typeof p.endpoint === 'string' ? need(`${at}endpoint`, parseEndpoint(p.endpoint)) : p.endpoint;
    if (p.persistentKeepalive !== undefined) spec.persistentKeepalive = p.persistentKeepalive;
    if (p.reserved !== undefined) {
      const r = typeof p.reserved === 'string' ? new Uint8Array(Buffer.from(p.reserved, 'base64')) : Uint8Array.from(p.reserved);
      if (r.length !== 3) throw err(`${at}reserved`, `expected exactly 3 bytes, got ${r.length}`);
      spec.reserved = r;
    }
    cfg.peers.push(spec);
  });
  return cfg;
}
