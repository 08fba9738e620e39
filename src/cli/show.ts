/**
 * The `wg show` view of a tunnel (wireguard-tools' show.c layout), for `wgnet show`
 * and the demo report.
 */
import type { Tunnel } from '../api/tunnel.js';
import { toBase64 } from '../util/bytes.js';
import { formatHostPort, formatPrefix } from '../util/ip.js';

export function formatShow(name: string, t: Tunnel, nowMs = Date.now()): string {
  const lines = [`interface: ${name}`, `  public key: ${t.publicKey}`, '  private key: (hidden)', `  listening port: ${t.listenPort}`];
  for (const p of t.device.peers()) {
    lines.push('', `peer: ${toBase64(p.publicKey)}`);
    if (p.presharedKey) lines.push('  preshared key: (hidden)');
    if (p.endpoint) lines.push(`  endpoint: ${formatHostPort(p.endpoint.address, p.endpoint.port)}`);
    const ips = t.device.allowedIps.prefixesOf(p).map(formatPrefix);
    lines.push(`  allowed ips: ${ips.length ? ips.join(', ') : '(none)'}`);
    if (p.lastHandshakeWallMs > 0) lines.push(`  latest handshake: ${ago(nowMs - p.lastHandshakeWallMs)}`);
    if (p.rxBytes || p.txBytes) lines.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) lines.push(`  persistent keepalive: every ${p.persistentKeepalive} seconds`);
  }
  return lines.join('\n');
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
