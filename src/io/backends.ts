/**
 * Which implementation carries each job in this process, and why: what
 * `wgnet --version` prints and `Tunnel.backends()` returns, so a user can see
 * at once whether the package runs on its fast paths (issue 16: an install
 * without its addons ran at a third of the speed, silently).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { getCryptoProvider } from '../crypto/index.js';
import { packageRoot, probeAddon } from './native.js';
import { batchedUdpUnsupported } from './udp-bind.js';

export interface Backends {
  /** wgnet's version (package.json). */
  version: string;
  /** e.g. 'node v20.20.2 linux-x64'. */
  runtime: string;
  /** 'native': libsodium through sodium-native; 'portable': node:crypto + @noble. */
  crypto: { backend: 'native' | 'portable'; reason?: string };
  /** 'batched': the wgnet_udp addon (recvmmsg/sendmmsg, GRO/GSO); 'dgram': node:dgram, one datagram per call. */
  udp: { backend: 'batched' | 'dgram'; addon?: string; reason?: string };
  /** Whether this process can run `wgnet up` (a kernel TUN device), and if not why. */
  tun: { available: boolean; addon?: string; reason?: string };
}

let version: string | undefined;

export function packageVersion(): string {
  if (version === undefined) {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
    version = pkg.version ?? 'unknown';
  }
  return version;
}

/** Whether this process holds CAP_NET_ADMIN (bit 12 of CapEff), needed to create a TUN device. */
function hasNetAdmin(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? (BigInt('0x' + m[1]) & (1n << 12n)) !== 0n : false;
  } catch {
    return false;
  }
}

export function backends(): Backends {
  const crypto = getCryptoProvider('auto');
  const out: Backends = {
    version: packageVersion(),
    runtime: `${runtimeName()} ${process.platform}-${process.arch}`,
    crypto: crypto.name === 'native' ? { backend: 'native' } : { backend: 'portable', reason: 'sodium-native did not load' },
    udp: { backend: 'dgram' },
    tun: { available: false },
  };

  const forced = process.env.WGNET_UDP;
  const udp = probeAddon(`wgnet_udp`);
  const unsupported = batchedUdpUnsupported();
  if (forced === 'dgram') out.udp = { backend: 'dgram', reason: 'WGNET_UDP=dgram' };
  else if (unsupported) out.udp = { backend: 'dgram', reason: unsupported };
  else if (udp.ok) out.udp = { backend: 'batched', addon: udp.path };
  else out.udp = { backend: 'dgram', reason: `the batched UDP addon is unavailable: ${udp.reason}` };

  const tun = probeAddon('wgnet_tun');
  if (!tun.ok) out.tun = { available: false, reason: `the TUN addon is unavailable: ${tun.reason}` };
  else if (!existsSync('/dev/net/tun')) out.tun = { available: false, addon: tun.path, reason: '/dev/net/tun does not exist' };
  else if (!hasNetAdmin()) out.tun = { available: false, addon: tun.path, reason: 'creating a TUN device needs root or CAP_NET_ADMIN' };
  else out.tun = { available: true, addon: tun.path };
  return out;
}

/** The `wgnet --version` text. */
export function formatBackends(b: Backends): string {
  const root = packageRoot();
  const rel = (p: string): string => relative(root, p);
  const crypto = b.crypto.backend === 'native' ? 'native (sodium-native)' : `portable (node:crypto + @noble; ${b.crypto.reason})`;
  const udp = b.udp.addon ? `batched (recvmmsg/sendmmsg, ${rel(b.udp.addon)})` : `dgram (node:dgram; ${b.udp.reason})`;
  const tun = b.tun.available
    ? `available (${rel(b.tun.addon!)})`
    : `unavailable: ${b.tun.reason}${b.tun.addon ? ` (addon ${rel(b.tun.addon)})` : ''}`;
  return [`wgnet ${b.version}`, `  runtime  ${b.runtime}`, `  crypto   ${crypto}`, `  udp      ${udp}`, `  tun      ${tun}`].join('\n');
}

/** Bun and Deno report a Node version in process.version; name the runtime that is running. */
function runtimeName(): string {
  const v = process.versions as Record<string, string | undefined>;
  if (v.bun) return `bun ${v.bun}`;
  const deno = (globalThis as { Deno?: { version?: { deno?: string } } }).Deno;
  if (deno?.version?.deno) return `deno ${deno.version.deno}`;
  return `node ${process.version}`;
}
