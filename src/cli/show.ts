/**
 * The `wg show` view of a tunnel (wireguard-tools' show.c layout), for `wgnet show`
 * (read over the UAPI socket, so it shows any wgnet or wireguard-go interface)
 * and the demo report.
 */
import net from 'node:net';
import { readdirSync } from 'node:fs';
import type { Tunnel } from '../api/tunnel.js';
import { toBase64 } from '../util/bytes.js';
import { getCryptoProvider } from '../crypto/index.js';
import { publicKeyFromPrivate } from '../crypto/keys.js';
import { uapiSocketPath } from '../io/uapi-server.js';
import { formatHostPort } from '../util/ip.js';

/** What `wg show` prints for one interface, from a live Tunnel or from a UAPI `get` answer. */
export interface ShowView {
  publicKey: string | undefined;
  listenPort: number;
  fwmark: number;
  peers: {
    publicKey: string;
    presharedKey: boolean;
    endpoint: string | undefined;
    allowedIps: string[];
    lastHandshakeWallMs: number;
    rxBytes: number;
    txBytes: number;
    persistentKeepalive: number;
  }[];
}

export function formatShow(name: string, t: Tunnel, nowMs = Date.now()): string {
  return renderShow(name, viewOfTunnel(t), nowMs);
}

export function viewOfTunnel(t: Tunnel): ShowView {
  return {
    publicKey: t.publicKey,
    listenPort: t.listenPort,
    fwmark: 0,
    peers: t.peers().map((p) => ({
      publicKey: p.publicKey,
      presharedKey: p.presharedKey,
      endpoint: p.endpoint ? formatHostPort(p.endpoint.address, p.endpoint.port) : undefined,
      allowedIps: p.allowedIps,
      lastHandshakeWallMs: p.lastHandshakeTime,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepalive,
    })),
  };
}

/**
 * Reads a UAPI `get=1` answer (wireguard-go's and ours: key=value lines, keys
 * in hex, one peer per public_key line). The interface's public key is derived
 * from its private key, which is never printed.
 */
export function viewOfUapi(text: string): ShowView {
  const v: ShowView = { publicKey: undefined, listenPort: 0, fwmark: 0, peers: [] };
  let peer: ShowView['peers'][number] | undefined;
  let hsSec = 0;
  const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    const key = line.slice(0, i);
    const val = line.slice(i + 1);
    if (key === 'public_key') {
      peer = { publicKey: toBase64(hex(val)), presharedKey: false, endpoint: undefined, allowedIps: [], lastHandshakeWallMs: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 };
      v.peers.push(peer);
      continue;
    }
    if (!peer) {
      if (key === 'private_key' && /^[0-9a-f]{64}$/i.test(val) && !/^0+$/.test(val)) v.publicKey = toBase64(publicKeyFromPrivate(getCryptoProvider('auto'), hex(val)));
      else if (key === 'listen_port') v.listenPort = Number(val);
      else if (key === 'fwmark') v.fwmark = Number(val);
      continue;
    }
    switch (key) {
      case 'preshared_key':
        peer.presharedKey = !/^0+$/.test(val);
        break;
      case 'endpoint':
        peer.endpoint = val;
        break;
      case 'allowed_ip':
        peer.allowedIps.push(val);
        break;
      case 'last_handshake_time_sec':
        hsSec = Number(val);
        break;
      case 'last_handshake_time_nsec':
        peer.lastHandshakeWallMs = hsSec * 1000 + Math.floor(Number(val) / 1e6);
        break;
      case 'rx_bytes':
        peer.rxBytes = Number(val);
        break;
      case 'tx_bytes':
        peer.txBytes = Number(val);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = Number(val);
        break;
    }
  }
  return v;
}

export function renderShow(name: string, v: ShowView, nowMs = Date.now()): string {
  const lines = [`interface: ${name}`];
  if (v.publicKey) lines.push(`  public key: ${v.publicKey}`, '  private key: (hidden)');
  if (v.listenPort) lines.push(`  listening port: ${v.listenPort}`);
  if (v.fwmark) lines.push(`  fwmark: 0x${v.fwmark.toString(16)}`);
  for (const p of v.peers) {
    lines.push('', `peer: ${p.publicKey}`);
    if (p.presharedKey) lines.push('  preshared key: (hidden)');
    if (p.endpoint) lines.push(`  endpoint: ${p.endpoint}`);
    lines.push(`  allowed ips: ${p.allowedIps.length ? p.allowedIps.join(', ') : '(none)'}`);
    if (p.lastHandshakeWallMs > 0) lines.push(`  latest handshake: ${ago(nowMs - p.lastHandshakeWallMs)}`);
    if (p.rxBytes || p.txBytes) lines.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) lines.push(`  persistent keepalive: every ${p.persistentKeepalive} seconds`);
  }
  return lines.join('\n');
}

/** Asks one UAPI socket for its state (`get=1`); rejects with the socket error. */
export function uapiQuery(path: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path);
    let out = '';
    const timer = setTimeout(() => c.destroy(new Error(`${path}: no answer`)), timeoutMs);
    c.setEncoding('latin1');
    c.on('connect', () => c.write('get=1\n\n'));
    c.on('data', (d: string) => {
      out += d;
      if (out.endsWith('\n\n')) {
        clearTimeout(timer);
        c.end();
        resolve(out);
      }
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.on('close', () => {
      clearTimeout(timer);
      if (!out.endsWith('\n\n')) reject(new Error(`${path}: connection closed before the answer ended`));
    });
  });
}

export const SHOW_USAGE = `Usage: wgnet show [NAME]

Prints the wg show view of the interfaces whose UAPI sockets are in /var/run/wireguard
(wgnet tunnels started with --uapi NAME, wgnet up, wireguard-go): all of them,
or just NAME. Keys are never printed.

Example: wgnet proxy -c wg0.conf --socks5 127.0.0.1:1080 --uapi wgp0 &
         wgnet show wgp0`;

/** `wgnet show [NAME]`: exit status 1 with wg's wording when NAME has no socket. */
export async function runShow(args: string[], dir: string, write: (s: string) => void): Promise<number> {
  const names = args.filter((a) => !a.startsWith('-'));
  let list: string[];
  if (names.length > 0) list = names;
  else {
    try {
      list = readdirSync(dir)
        .filter((f) => f.endsWith('.sock'))
        .map((f) => f.slice(0, -5))
        .sort();
    } catch {
      list = []; // no directory: no interfaces, as wg show prints nothing
    }
  }
  let status = 0;
  const blocks: string[] = [];
  for (const name of list) {
    let text: string;
    try {
      text = await uapiQuery(uapiSocketPath(name, dir));
    } catch (err) {
      process.stderr.write(`Unable to access interface ${name}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such device' : (err as Error).message}\n`);
      status = 1;
      continue;
    }
    blocks.push(renderShow(name, viewOfUapi(text)));
  }
  if (blocks.length) write(blocks.join('\n\n') + '\n');
  return status;
}

function ago(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  if (s === 0) return 'Now';
  const parts: string[] = [];
  const units: [number, string][] = [
    [365 * 86400, 'year'],
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ];
  for (const [u, name] of units) {
    const v = Math.floor(s / u);
    if (v > 0) {
      parts.push(`${v} ${name}${v === 1 ? '' : 's'}`);
      s -= v * u;
    }
  }
  return `${parts.join(', ')} ago`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} B`;
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(2)} ${units[i]}`;
}
