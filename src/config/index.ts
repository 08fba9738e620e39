/**
 * Loading a tunnel's configuration from whatever the user has: a wg-quick file
 * or text, sing-box JSON (text or object), `{ file }`, or a config object with
 * keys and addresses as strings. All paths end in the same validated model.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseWgQuick, parseWgQuickWithRules } from './wg-quick.js';
import type { ListenerRule } from './rules.js';
import { parseSingBox } from './sing-box.js';
import { ConfigError, type InterfaceAddress, type PeerSpec, type TunnelConfig } from './model.js';
import { closest, parseAddress, parseCidr, parseEndpoint, parseKeyValue, shown, type Parsed } from './values.js';
import { parseIp, type IpPrefix } from '../util/ip.js';

export { parseWgQuick, parseWgQuickWithRules, formatWgQuick } from './wg-quick.js';
export { describeRule, ruleId, proxyAuth, RULE_SECTIONS } from './rules.js';
export type { ListenerRule, BindAddress, ProxyAuth, RuleOrigin, RuleSection } from './rules.js';
export { parseSingBox } from './sing-box.js';
export { ConfigError } from './model.js';
export type { TunnelConfig, PeerSpec, InterfaceAddress, EndpointSpec } from './model.js';

/** A peer in the config object form: the wg-quick keys in camelCase, strings where a user writes one. */
export interface PeerConfigObject {
  /** base64, as `wg pubkey` prints it, or the 32 bytes. */
  publicKey: string | Uint8Array;
  presharedKey?: string | Uint8Array;
  /** 'host:port' or '[v6]:port', or { host, port }. */
  endpoint?: string | { host: string; port: number };
  /** '0.0.0.0/0' or '10.0.0.0/8, fd00::/8' (as wg-quick's AllowedIPs), or a list of prefixes. */
  allowedIps?: string | readonly (string | IpPrefix)[];
  /** Seconds, 0 (off) to 65535. */
  persistentKeepalive?: number | string;
  /** sing-box/WARP's 3 reserved bytes: [a, b, c] or base64. */
  reserved?: readonly number[] | string | Uint8Array;
}

/**
 * The config object form of `Tunnel.create()`: strings where a user would write them. Strict:
 * a key not named here is an error naming its path and the key meant (`allowedIPs` -> `allowedIps`),
 * never silently ignored.
 */
export interface TunnelConfigObject {
  privateKey: string | Uint8Array;
  /** '10.0.0.2/32' or '10.0.0.2/32, fd00::2/128' or a list (`address` and `addresses` are the same key). */
  address?: string | readonly string[];
  addresses?: string | readonly (string | InterfaceAddress)[];
  /** DNS servers (IPs) and search domains, as wg-quick's DNS: '1.1.1.1, corp.example' or a list. */
  dns?: string | readonly string[];
  mtu?: number | string;
  listenPort?: number | string;
  /** A number, '0x1234' or 'off' (kept and reported; Node cannot set SO_MARK). */
  fwMark?: number | string;
  peers?: readonly PeerConfigObject[];
}

/** A sing-box `wireguard` endpoint as its JSON has it (parseSingBox checks it and warns about the fields wgnet ignores). */
export interface SingBoxEndpointObject {
  type: 'wireguard';
  tag?: string;
  private_key: string;
  address?: readonly string[];
  mtu?: number;
  listen_port?: number;
  peers?: readonly {
    address?: string;
    port?: number;
    public_key: string;
    pre_shared_key?: string;
    allowed_ips?: readonly string[];
    persistent_keepalive_interval?: number;
    reserved?: readonly number[] | string;
  }[];
  /** Accepted and ignored (with a warning): they configure sing-box's own dialer and system interface. */
  system?: boolean;
  name?: string;
  udp_timeout?: string;
  workers?: number;
  detour?: string;
  domain_strategy?: string;
  bind_interface?: string;
  inet4_bind_address?: string;
  inet6_bind_address?: string;
  routing_mark?: number | string;
  reuse_addr?: boolean;
  connect_timeout?: string;
  tcp_fast_open?: boolean;
  tcp_multi_path?: boolean;
  udp_fragment?: boolean;
}

/** A whole sing-box config: its `endpoints` (the wireguard one picked, by `tag` when several); the other sections are not read. */
export interface SingBoxConfigObject {
  endpoints: readonly unknown[];
  log?: unknown;
  dns?: unknown;
  ntp?: unknown;
  certificate?: unknown;
  inbounds?: unknown;
  outbounds?: unknown;
  route?: unknown;
  services?: unknown;
  experimental?: unknown;
}

/** What Tunnel.create() takes: wg-quick or sing-box text, a file path, `{ file }`, or one of these objects (JSON.parse's result passes as is). */
export type TunnelConfigInput = string | { file: string } | TunnelConfigObject | TunnelConfig | SingBoxEndpointObject | SingBoxConfigObject;

/** Detects the format: JSON if it starts with `{`, else wg-quick INI. */
export function parseConfig(text: string, opts: { file?: string; tag?: string } = {}): TunnelConfig {
  return /^\s*\{/.test(text) ? parseSingBox(text, opts) : parseWgQuick(text, opts);
}

/**
 * For `wgnet proxy` / `forward`: a config file (or text) and its listener sections (rules.ts),
 * from one read, so that a reload applies peers and listeners of the same version of the file.
 * sing-box JSON has no listener sections: its rules are [].
 */
export async function loadConfigWithRules(input: string | { file: string }, opts: { tag?: string } = {}): Promise<{ config: TunnelConfig; rules: ListenerRule[] }> {
  let text = typeof input === 'string' ? input : undefined;
  let file: string | undefined;
  if (typeof input !== 'string') {
    try {
      text = await readFile(input.file, 'utf8');
    } catch (err) {
      throw new ConfigError({ file: input.file }, `cannot read: ${(err as Error).message}`);
    }
    file = basename(input.file);
  }
  if (/^\s*\{/.test(text!)) return { config: parseSingBox(text!, { file, tag: opts.tag }), rules: [] };
  return parseWgQuickWithRules(text!, { file });
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
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ConfigError({}, `expected a config object, wg-quick or sing-box text, a file path or { file }, got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : `a ${typeof input}`}`);
  }
  const o = input as Record<string, unknown>;
  if ('type' in o || 'endpoints' in o || 'private_key' in o) return parseSingBox(o, opts);
  return validateConfig(o as unknown as TunnelConfigObject);
}

const TOP_KEYS = ['privateKey', 'address', 'addresses', 'dns', 'mtu', 'listenPort', 'fwMark', 'peers'] as const;
/** The validated model (TunnelConfig) passed back in also has these. */
const MODEL_KEYS = ['warnings', 'source'] as const;
const PEER_KEYS = ['publicKey', 'presharedKey', 'endpoint', 'allowedIps', 'persistentKeepalive', 'reserved'] as const;
/** Spellings from other formats that edit distance does not reach. */
const ALIASES: Readonly<Record<string, string>> = {
  local_address: 'address',
  persistent_keepalive_interval: 'persistentKeepalive',
  pre_shared_key: 'presharedKey',
  server: 'endpoint',
  server_port: 'endpoint',
  allowed_ips: 'allowedIps',
  listen_port: 'listenPort',
  routing_mark: 'fwMark',
  fwmark: 'fwMark',
};

/** A key name as an error may show it: identifier-like and short, else only its length (a misplaced key could be a secret). */
function keyShown(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]{0,29}$/.test(k) ? k : `<a key of ${k.length} characters>`;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : v instanceof Uint8Array ? 'bytes' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * Checks and converts a config object, with the same precise errors as the file formats (paths
 * like `peers[0].publicKey`): unknown keys are errors with the key meant, strings are accepted where
 * a user writes one, and every wrong type is a ConfigError (never a TypeError). No message
 * quotes a key or any text that could hold one (values.ts shown()).
 */
export function validateConfig(input: TunnelConfigObject | TunnelConfig): TunnelConfig {
  const err = (path: string, m: string): ConfigError => new ConfigError({ path }, m);
  const need = <T>(path: string, r: Parsed<T>): T => {
    if (!r.ok) throw err(path, r.error);
    return r.value;
  };
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
  const strict = (o: Record<string, unknown>, at: string, known: readonly string[]): void => {
    for (const k of Object.keys(o)) {
      if (known.includes(k) || o[k] === undefined) continue;
      const meant = ALIASES[k.toLowerCase()] ?? closest(k, known);
      throw err(`${at}${keyShown(k)}`, `unknown key${meant ? `, did you mean ${meant}?` : ` (known: ${known.join(', ')})`}`);
    }
  };
  const key = (path: string, v: unknown): Uint8Array => {
    if (v instanceof Uint8Array) {
      if (v.length !== 32) throw err(path, `expected 32 bytes, got ${v.length}`);
      return v;
    }
    if (v === undefined) throw err(path, 'missing (a base64 key, as `wg genkey` / `wg pubkey` print)');
    if (typeof v !== 'string') throw err(path, `expected a base64 string, got ${typeName(v)}`);
    return need(path, parseKeyValue(v));
  };
  /** A string (comma-separated, as in wg-quick) or an array of strings or already-parsed values. */
  const list = <T>(path: string, v: unknown, parse: (s: string) => Parsed<T>, parsed: (x: unknown) => x is T, what: string): T[] => {
    if (v === undefined) return [];
    if (typeof v === 'string') {
      const parts = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
      return parts.map((x, i) => need(parts.length === 1 ? path : `${path}[${i}]`, parse(x)));
    }
    if (!Array.isArray(v)) throw err(path, `expected ${what} as a string or a list, got ${typeName(v)}`);
    return v.map((x: unknown, i) => {
      if (typeof x === 'string') return need(`${path}[${i}]`, parse(x));
      if (parsed(x)) return x;
      throw err(`${path}[${i}]`, `expected ${what}, got ${typeName(x)}`);
    });
  };
  const isPrefix = (x: unknown): x is { addr: Uint8Array; bits: number } =>
    isObject(x) && x.addr instanceof Uint8Array && (x.addr.length === 4 || x.addr.length === 16) && Number.isInteger(x.bits) && (x.bits as number) >= 0 && (x.bits as number) <= x.addr.length * 8;
  const int = (path: string, v: unknown, min: number, max: number): number => {
    const n = typeof v === 'string' && /^\s*[0-9]+\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw err(path, `expected a whole number ${min}-${max}, got ${typeof v === 'string' ? shown(v) : typeof v === 'number' ? String(v) : typeName(v)}`);
    }
    return n;
  };

  if (!isObject(input)) throw err('(root)', `expected a config object, wg-quick text or { file }, got ${typeName(input)}`);
  const o = input as Record<string, unknown>;
  const model = Array.isArray(o.warnings) && isObject(o.dns);
  strict(o, '', model ? [...TOP_KEYS, ...MODEL_KEYS] : TOP_KEYS);
  if (o.address !== undefined && o.addresses !== undefined) throw err('address', 'give address or addresses, not both');
  const cfg: TunnelConfig = {
    privateKey: key('privateKey', o.privateKey),
    addresses: list(o.addresses !== undefined ? 'addresses' : 'address', o.addresses ?? o.address, parseAddress, isPrefix, 'an IP address with an optional /prefix'),
    dns: { servers: [], search: [] },
    peers: [],
    warnings: model ? [...(o.warnings as string[])] : [],
  };
  if (model) {
    const d = o.dns as { servers?: unknown; search?: unknown };
    if (!Array.isArray(d.servers) || !d.servers.every((x) => x instanceof Uint8Array)) throw err('dns.servers', 'expected a list of parsed IP addresses');
    if (!Array.isArray(d.search) || !d.search.every((x) => typeof x === 'string')) throw err('dns.search', 'expected a list of domain names');
    cfg.dns = { servers: [...(d.servers as Uint8Array[])], search: [...(d.search as string[])] };
    if (typeof o.source === 'string') cfg.source = o.source;
  } else {
    const dns = o.dns;
    if (dns !== undefined && typeof dns !== 'string' && !(Array.isArray(dns) && dns.every((x) => typeof x === 'string'))) {
      throw err('dns', `expected DNS servers and search domains as a string or a list of strings, got ${typeName(dns)}`);
    }
    const entries = dns === undefined ? [] : typeof dns === 'string' ? dns.split(',') : (dns as string[]);
    entries.forEach((raw, i) => {
      const d = raw.trim();
      if (d === '') return;
      const ip = parseIp(d);
      if (ip) cfg.dns.servers.push(ip);
      else if (/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(d)) cfg.dns.search.push(d);
      else throw err(Array.isArray(dns) ? `dns[${i}]` : 'dns', `expected an IP address or a search domain, got ${shown(d)}`);
    });
  }
  if (o.mtu !== undefined) cfg.mtu = int('mtu', o.mtu, 576, 65535);
  if (o.listenPort !== undefined) cfg.listenPort = int('listenPort', o.listenPort, 0, 65535);
  if (o.fwMark !== undefined) {
    const v = o.fwMark;
    if (typeof v === 'string' && v.trim().toLowerCase() === 'off') cfg.fwMark = 0;
    else if (typeof v === 'string' && /^\s*0x[0-9a-f]{1,8}\s*$/i.test(v)) cfg.fwMark = parseInt(v, 16);
    else cfg.fwMark = int('fwMark', v, 0, 0xffffffff);
  }
  const peers = o.peers;
  if (peers !== undefined && !Array.isArray(peers)) throw err('peers', `expected a list of peers, got ${typeName(peers)}`);
  (peers ?? []).forEach((p: unknown, i: number) => {
    const at = `peers[${i}].`;
    if (!isObject(p)) throw err(`peers[${i}]`, `expected a peer object, got ${typeName(p)}`);
    strict(p, at, PEER_KEYS);
    const spec: PeerSpec = {
      publicKey: key(`${at}publicKey`, p.publicKey),
      allowedIps: list(`${at}allowedIps`, p.allowedIps, parseCidr, isPrefix, 'an IP prefix like 10.0.0.0/24'),
    };
    if (p.presharedKey !== undefined) spec.presharedKey = key(`${at}presharedKey`, p.presharedKey);
    const ep = p.endpoint;
    if (ep !== undefined) {
      if (typeof ep === 'string') spec.endpoint = need(`${at}endpoint`, parseEndpoint(ep));
      else if (isObject(ep) && typeof ep.host === 'string' && ep.host !== '') {
        strict(ep, `${at}endpoint.`, ['host', 'port']);
        spec.endpoint = { host: ep.host, port: int(`${at}endpoint.port`, ep.port, 1, 65535) };
      } else throw err(`${at}endpoint`, `expected 'host:port' or { host, port }, got ${typeName(ep)}`);
    }
    if (p.persistentKeepalive !== undefined) spec.persistentKeepalive = int(`${at}persistentKeepalive`, p.persistentKeepalive, 0, 65535);
    if (p.reserved !== undefined) {
      const rv = p.reserved;
      let r: Uint8Array;
      if (typeof rv === 'string') r = new Uint8Array(Buffer.from(rv, 'base64'));
      else if (rv instanceof Uint8Array) r = rv;
      else if (Array.isArray(rv) && rv.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)) r = Uint8Array.from(rv as number[]);
      else throw err(`${at}reserved`, `expected 3 bytes: [a, b, c] with each 0-255, or base64, got ${typeName(rv)}`);
      if (r.length !== 3) throw err(`${at}reserved`, `expected exactly 3 bytes, got ${r.length}`);
      spec.reserved = r;
    }
    cfg.peers.push(spec);
  });
  return cfg;
}
