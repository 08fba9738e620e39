/**
 * `tunnel.syncConfig()`: `wg syncconf` for a running tunnel (wg(8): "like setconf, but reads
 * back the existing configuration first and only makes changes that are explicitly different
 * between the configuration file and the interface"). Peers missing from the new config are
 * removed, new ones added, changed ones updated in place; unchanged peers are not touched, so
 * their sessions, timers and the connections through them go on.
 *
 * All or nothing: the config is parsed and validated, every endpoint name resolved and every
 * key checked before the device changes, so an error (a ConfigError naming file:line, a bad
 * key, a name that does not resolve) leaves the running config as it was. The change itself
 * goes through the UAPI `set` (wireguard/uapi.ts), which `wg syncconf` also speaks: one
 * validated path for every live change, whichever client asks.
 */
import type { Device } from '../wireguard/device.js';
import { loadConfig, type TunnelConfigInput } from '../config/index.js';
import type { PeerSpec, TunnelConfig } from '../config/model.js';
import { resolveEndpoint, type Endpoint } from '../io/endpoint.js';
import { constantTimeEqual, toBase64, toHex } from '../util/bytes.js';
import { formatHostPort, formatIp, formatPrefix } from '../util/ip.js';
import { WgnetError } from '../util/errors.js';

/**
 * Interface settings a running tunnel cannot take: the netstack is built with its addresses,
 * MTU and resolver once (Tunnel.create), so a change to these needs a new tunnel.
 */
export type RestartField = 'Address' | 'DNS' | 'MTU';

export interface SyncResult {
  added: number;
  removed: number;
  /** Peers whose preshared key, endpoint, AllowedIPs, keepalive or reserved bytes differ: updated in place. */
  changed: number;
  unchanged: number;
  /** Interface fields of the new config that differ from the running ones and wait for a restart (the running ones stay). */
  restartNeeded: RestartField[];
  /** Whether the private key changed: applied, and (as in wireguard-go) every session was dropped and is handshaken again. */
  privateKeyChanged: boolean;
  /** The new config's warnings (as `t.config.warnings` has the first one's). */
  warnings: string[];
}

/** What syncConfig() needs of the tunnel. */
export interface SyncHost {
  device: Device;
  listenPort(): number;
  /** The config the tunnel runs (its addresses, DNS and MTU are the netstack's). */
  running(): TunnelConfig;
  /** Applies UAPI set lines, all or nothing (TunnelIpc.set). */
  ipcSet(text: string): Promise<void>;
  assertOpen(): void;
}

const ZERO_KEY = new Uint8Array(32);

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.length === b.length && constantTimeEqual(a, b);
}

/**
 * Loads `input`, changes what differs, and returns the counts with the config the tunnel now
 * runs: the new one, except for the interface fields that wait for a restart.
 */
export async function syncConfig(host: SyncHost, input: TunnelConfigInput, opts: { tag?: string }): Promise<{ result: SyncResult; config: TunnelConfig }> {
  host.assertOpen();
  const cfg = await loadConfig(input, opts);
  const endpoints = new Map<string, Endpoint>();
  for (const p of cfg.peers) if (p.endpoint) endpoints.set(toBase64(p.publicKey), await resolveEndpoint(p.endpoint.host, p.endpoint.port));
  host.assertOpen();
  // From here to the set, nothing awaits: the diff is against the device as it is applied.
  const d = host.device;
  const privateKeyChanged = !d.privateKey || !constantTimeEqual(d.privateKey, cfg.privateKey);
  const ownPublic = privateKeyChanged ? publicKeyOf(d, cfg.privateKey) : d.publicKey;
  for (const p of cfg.peers) {
    d.checkPeerKey(p.publicKey); // a low-order point: the ERR_WGNET_INVALID_KEY that create() would throw
    if (ownPublic && sameBytes(ownPublic, p.publicKey)) throw new WgnetError('ERR_WGNET_INVALID_KEY', `peer ${toBase64(p.publicKey)} has this tunnel's own public key`);
  }
  const lines: string[] = [];
  if (privateKeyChanged) lines.push(`private_key=${toHex(cfg.privateKey)}`);
  if (cfg.listenPort !== undefined && cfg.listenPort !== host.listenPort()) lines.push(`listen_port=${cfg.listenPort}`);
  if (cfg.fwMark !== undefined) lines.push(`fwmark=${cfg.fwMark}`);
  const want = new Map(cfg.peers.map((p) => [toBase64(p.publicKey), p]));
  let added = 0;
  let removed = 0;
  let changed = 0;
  for (const p of d.peers()) {
    if (want.has(toBase64(p.publicKey))) continue;
    lines.push(`public_key=${toHex(p.publicKey)}`, 'remove=true');
    removed++;
  }
  /** Reserved bytes (sing-box's) are no UAPI key: set on the device after the set. */
  const reserved: PeerSpec[] = [];
  for (const [key, p] of want) {
    const cur = d.getPeer(p.publicKey);
    const ep = endpoints.get(key);
    const ips = p.allowedIps.map(formatPrefix).sort();
    if (cur) {
      const same =
        // A peer listed without an Endpoint keeps the one it has (configured or roamed), as wg syncconf.
        (!ep || (cur.endpoint !== undefined && formatHostPort(cur.endpoint.address, cur.endpoint.port) === formatHostPort(ep.address, ep.port))) &&
        constantTimeEqual(cur.presharedKey ?? ZERO_KEY, p.presharedKey ?? ZERO_KEY) &&
        (cur.persistentKeepalive ?? 0) === (p.persistentKeepalive ?? 0) &&
        sameBytes(cur.reserved, p.reserved) &&
        d.allowedIps.prefixesOf(cur).map(formatPrefix).sort().join(',') === ips.join(',');
      if (same) continue;
      changed++;
    } else added++;
    if (!sameBytes(cur?.reserved, p.reserved)) reserved.push(p);
    lines.push(
      `public_key=${toHex(p.publicKey)}`,
      `preshared_key=${toHex(p.presharedKey ?? ZERO_KEY)}`,
      ...(ep ? [`endpoint=${formatHostPort(ep.address, ep.port)}`] : []),
      `persistent_keepalive_interval=${p.persistentKeepalive ?? 0}`,
      'replace_allowed_ips=true',
      ...ips.map((ip) => `allowed_ip=${ip}`),
    );
  }
  if (lines.length) await host.ipcSet(lines.join('\n') + '\n');
  for (const p of reserved) if (d.getPeer(p.publicKey)) d.updatePeer(p.publicKey, { reserved: p.reserved });
  const old = host.running();
  const restartNeeded = restartFields(old, cfg);
  return {
    result: { added, removed, changed, unchanged: want.size - added - changed, restartNeeded, privateKeyChanged, warnings: cfg.warnings },
    config: hideSecrets({ ...cfg, addresses: old.addresses, dns: old.dns, mtu: old.mtu }),
  };
}

/** Which of Address, DNS and MTU differ between the running config and `next` (the order of addresses aside). */
export function restartFields(running: TunnelConfig, next: TunnelConfig): RestartField[] {
  const addrs = (x: TunnelConfig): string => x.addresses.map((a) => `${formatIp(a.addr)}/${a.bits}`).sort().join(',');
  const dns = (x: TunnelConfig): string => x.dns.servers.map(formatIp).join(',') + ';' + x.dns.search.join(',');
  const out: RestartField[] = [];
  if (addrs(running) !== addrs(next)) out.push('Address');
  if (dns(running) !== dns(next)) out.push('DNS');
  if ((running.mtu ?? 1420) !== (next.mtu ?? 1420)) out.push('MTU');
  return out;
}

/** The public key of a new private key, to refuse a peer that would be this tunnel itself before anything changes. */
function publicKeyOf(d: Device, privateKey: Uint8Array): Uint8Array | undefined {
  if (privateKey.length !== 32) return undefined;
  const pub = new Uint8Array(32);
  d.crypto.x25519Base(pub, privateKey);
  return pub;
}

/**
 * The config the tunnel keeps (for endpoints to re-resolve and warnings to report), with its
 * private and preshared keys made non-enumerable: they stay readable by name, but
 * `util.inspect`, `JSON.stringify` and object spreads no longer carry them.
 */
export function hideSecrets(cfg: TunnelConfig): TunnelConfig {
  const out = { ...cfg, peers: cfg.peers.map((p) => ({ ...p })) };
  Object.defineProperty(out, 'privateKey', { value: cfg.privateKey, enumerable: false });
  for (const p of out.peers) if (p.presharedKey) Object.defineProperty(p, 'presharedKey', { value: p.presharedKey, enumerable: false });
  return out;
}
