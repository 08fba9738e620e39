/**
 * sing-box WireGuard endpoints (sing-box 1.11+ `endpoints[]` of type
 * "wireguard"), including `reserved` for Cloudflare WARP; a bare endpoint
 * object or a whole sing-box config (the endpoint picked by `tag`).
 */
import { parseIp } from '../util/ip.js';
import { ConfigError, type PeerSpec, type TunnelConfig } from './model.js';
import { isShowable, parseAddress, parseCidr, parseKeyValue, shown, type Parsed } from './values.js';

/** Fields sing-box accepts that change nothing in wgnet: named in a warning. */
const IGNORED = ['system', 'name', 'udp_timeout', 'workers', 'detour', 'domain_strategy', 'bind_interface', 'inet4_bind_address', 'inet6_bind_address', 'routing_mark', 'reuse_addr', 'connect_timeout', 'tcp_fast_open', 'tcp_multi_path', 'udp_fragment'];
const KNOWN = new Set(['type', 'tag', 'mtu', 'address', 'private_key', 'listen_port', 'peers', ...IGNORED]);
const PEER_KNOWN = new Set(['address', 'port', 'public_key', 'pre_shared_key', 'allowed_ips', 'persistent_keepalive_interval', 'reserved']);

type Json = Record<string, unknown>;

export function parseSingBox(input: string | object, opts: { file?: string; tag?: string } = {}): TunnelConfig {
  const file = opts.file;
  let root: unknown = input;
  if (typeof input === 'string') {
    try {
      root = JSON.parse(input);
    } catch (err) {
      // V8's message quotes the text around the error, which may be a key: only where it is.
      throw new ConfigError({ file }, `invalid JSON${jsonWhere(input, (err as Error).message)}`);
    }
  }
  if (!root || typeof root !== 'object' || Array.isArray(root)) throw new ConfigError({ file }, 'expected a JSON object');
  let ep = root as Json;
  let base = '';
  if (Array.isArray((root as Json).endpoints)) {
    const all = ((root as Json).endpoints as Json[]).map((e, i) => ({ e, i })).filter(({ e }) => e && e.type === 'wireguard');
    let pick = all;
    if (opts.tag !== undefined) pick = all.filter(({ e }) => e.tag === opts.tag);
    if (pick.length === 0) {
      throw new ConfigError({ file, path: 'endpoints' }, opts.tag !== undefined ? `no wireguard endpoint with tag ${shown(opts.tag)}` : 'no endpoint of type "wireguard"');
    }
    if (pick.length > 1) throw new ConfigError({ file, path: 'endpoints' }, `several wireguard endpoints (${pick.slice(0, 5).map(({ e }) => shown(String(e.tag))).join(', ')}${pick.length > 5 ? ', ...' : ''}): choose one with a tag`);
    ep = pick[0]!.e;
    base = `endpoints[${pick[0]!.i}].`;
  } else if (ep.type !== undefined && ep.type !== 'wireguard') {
    throw new ConfigError({ file, path: `${base}type` }, `expected "wireguard", got ${shown(String(JSON.stringify(ep.type)))}`);
  }
  const warnings: string[] = [];
  const err = (path: string, msg: string): ConfigError => new ConfigError({ file, path: base + path }, msg);
  const need = <T>(path: string, r: Parsed<T>): T => {
    if (!r.ok) throw err(path, r.error);
    return r.value;
  };
  const str = (path: string, v: unknown): string => {
    if (typeof v !== 'string') throw err(path, `expected a string, got ${v === undefined ? 'nothing' : typeof v}`);
    return v;
  };
  const int = (path: string, v: unknown, min: number, max: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw err(path, `expected an integer ${min}-${max}, got ${shown(String(JSON.stringify(v)))}`);
    return v;
  };
  const arr = (path: string, v: unknown): unknown[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw err(path, `expected an array, got ${typeof v}`);
    return v;
  };
  for (const k of Object.keys(ep)) {
    if (!KNOWN.has(k)) warnings.push(`${file ?? '<config>'}: ${base}${fieldName(k)}: unknown field, ignored`);
    else if (IGNORED.includes(k)) warnings.push(`${file ?? '<config>'}: ${base}${k}: not supported by wgnet, ignored`);
  }
  const privateKey = need('private_key', parseKeyValue(str('private_key', ep.private_key)));
  const addresses = arr('address', ep.address).map((a, i) => need(`address[${i}]`, parseAddress(str(`address[${i}]`, a))));
  const cfg: TunnelConfig = { privateKey, addresses, dns: { servers: [], search: [] }, peers: [], warnings, source: file };
  if (ep.mtu !== undefined) cfg.mtu = int('mtu', ep.mtu, 576, 65535);
  if (ep.listen_port !== undefined) cfg.listenPort = int('listen_port', ep.listen_port, 0, 65535);
  arr('peers', ep.peers).forEach((raw, i) => {
    const p = `peers[${i}].`;
    if (!raw || typeof raw !== 'object') throw err(`peers[${i}]`, 'expected an object');
    const pj = raw as Json;
    for (const k of Object.keys(pj)) if (!PEER_KNOWN.has(k)) warnings.push(`${file ?? '<config>'}: ${base}${p}${fieldName(k)}: unknown field, ignored`);
    const peer: PeerSpec = {
      publicKey: need(`${p}public_key`, parseKeyValue(str(`${p}public_key`, pj.public_key))),
      allowedIps: arr(`${p}allowed_ips`, pj.allowed_ips).map((a, j) => need(`${p}allowed_ips[${j}]`, parseCidr(str(`${p}allowed_ips[${j}]`, a)))),
    };
    if (pj.pre_shared_key !== undefined) peer.presharedKey = need(`${p}pre_shared_key`, parseKeyValue(str(`${p}pre_shared_key`, pj.pre_shared_key)));
    if (pj.address !== undefined) {
      const host = str(`${p}address`, pj.address).replace(/^\[(.*)\]$/, '$1');
      if (!parseIp(host) && !/^[A-Za-z0-9.-]+$/.test(host)) throw err(`${p}address`, `expected an IP address or host name, got ${shown(host)}`);
      peer.endpoint = { host, port: int(`${p}port`, pj.port, 1, 65535) };
    }
    if (pj.persistent_keepalive_interval !== undefined) peer.persistentKeepalive = int(`${p}persistent_keepalive_interval`, pj.persistent_keepalive_interval, 0, 65535);
    if (pj.reserved !== undefined) peer.reserved = parseReserved(pj.reserved, (m) => err(`${p}reserved`, m));
    cfg.peers.push(peer);
  });
  return cfg;
}

/** A field name in a warning: itself if it cannot be key material, else a placeholder. */
function fieldName(k: string): string {
  return isShowable(k) ? k : `<a field name of ${k.length} characters>`;
}

/** Where JSON.parse failed, as line:column, from V8's "position N" (its message also quotes the text there). */
function jsonWhere(text: string, message: string): string {
  const m = /position (\d+)/.exec(message);
  if (!m) return /end of JSON input/i.test(message) ? ': unexpected end' : '';
  const pos = Math.min(Number(m[1]), text.length);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return ` at line ${line} column ${pos - before.lastIndexOf('\n')}`;
}

/** Exactly three bytes: `[0, 1, 2]` or their base64 (`AAEC`), as sing-box accepts. */
function parseReserved(v: unknown, err: (m: string) => ConfigError): Uint8Array {
  if (Array.isArray(v)) {
    if (v.length !== 3 || !v.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)) throw err(`expected 3 numbers 0-255, got ${shown(JSON.stringify(v))}`);
    return Uint8Array.from(v as number[]);
  }
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'base64');
    if (b.length !== 3 || b.toString('base64') !== v) throw err(`expected 3 bytes of base64, got ${b.length} bytes`);
    return new Uint8Array(b);
  }
  throw err(`expected an array of 3 numbers or a base64 string, got ${typeof v}`);
}
