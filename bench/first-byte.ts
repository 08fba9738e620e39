/**
 * Time to the first byte of an HTTP answer through a fresh WireGuard session (issue 14):
 * the handshake, TCP's handshake and the request, as a program starting up pays them.
 *
 *   reference   namespace C: wireguard-go TUN, kernel TCP, curl   ──veth──  namespace S1: wireguard-go, HTTP server
 *   wgnet       this process: Tunnel.create + tunnel.fetch        ──veth──  namespace S2: wireguard-go, HTTP server
 *
 * Every round uses a new client key, so no session exists: the first packet starts a
 * handshake (whitepaper §5.4.2), which both clients wait out before their SYN goes. The
 * reference is curl's own time to the first byte (its start to the first response byte) on an
 * interface that is up and configured; the wgnet rows are the same span for `tunnel.fetch`
 * on a tunnel created beforehand, and from before `Tunnel.create` (the whole start of a
 * program that fetches once). Rounds alternate, after one untimed warm-up of each.
 *
 * Needs root, wireguard-go, wg, curl and python3 (the interop harness's checks).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Tunnel } from '../src/index.js';
import { genKeyPair, interopUnavailable, makeNamespace, secretFile, startWgGo, waitFor, type WgGoPeer } from '../test/interop/harness.js';
import { ready, type BenchRow } from './common.js';

const ROUNDS = Number(process.env.WGNET_FIRST_BYTE_ROUNDS ?? 7);
const CLIENT_PORT = 51993;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const range = (xs: number[]): string => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;

/** A small file served over HTTP from the namespace's tunnel address. */
async function serve(peer: WgGoPeer, dir: string): Promise<void> {
  await ready(peer.spawn('python3', ['-u', '-m', 'http.server', '8080', '--bind', peer.inner4, '--directory', dir]), /Serving HTTP/);
}

export async function benchFirstByte(): Promise<BenchRow[]> {
  const why = interopUnavailable();
  if (why) return [{ name: `first byte: skipped (${why})`, value: 0, unit: '' }];
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-first-byte-'));
  writeFileSync(join(dir, 'f'), 'hello\n');
  const nsC = makeNamespace();
  const s1 = await startWgGo({ otherNs: nsC.ns });
  const s2 = await startWgGo();
  const name = `wgf${process.pid.toString(36)}`.slice(0, 15);
  const wg = spawn('ip', ['netns', 'exec', nsC.ns, 'wireguard-go', '-f', name], { env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' }, stdio: 'ignore' });
  try {
    await waitFor(() => existsSync(`/var/run/wireguard/${name}.sock`), 10_000, 'wireguard-go');
    await serve(s1, dir);
    await serve(s2, dir);
    const n1 = s1.inner4.split('.')[2];
    nsC.exec('wg', ['set', name, 'listen-port', String(CLIENT_PORT), 'private-key', secretFile(genKeyPair().privateKey), 'peer', s1.publicKey, 'endpoint', `${s1.outer4}:${s1.listenPort}`, 'allowed-ips', `10.77.${n1}.0/24`]);
    nsC.exec('ip', ['addr', 'add', `${s1.peerInner4}/24`, 'dev', name]);
    nsC.exec('ip', ['link', 'set', name, 'up']);

    /** Kernel path: a new key on the client interface, then curl's time to the first byte. */
    const kernel = async (): Promise<number> => {
      const k = genKeyPair();
      nsC.exec('wg', ['set', name, 'private-key', secretFile(k.privateKey)]);
      s1.addPeer(k.publicKey, { endpoint: `${s1.outer4.replace(/\.2$/, '.1')}:${CLIENT_PORT}` });
      const out = nsC.exec('curl', ['-sS', '-o', '/dev/null', '--max-time', '10', '-w', '%{time_starttransfer}', `http://${s1.inner4}:8080/f`]);
      return Number(out) * 1000;
    };
    const n2 = s2.inner4.split('.')[2];
    const port = 43000 + Number(n2);
    /** wgnet: a new key, the tunnel created (timed from here when `withCreate`), then fetch's first body byte. */
    const wgnet = async (withCreate: boolean): Promise<number> => {
      const k = genKeyPair();
      s2.addPeer(k.publicKey, { endpoint: `${s2.outer4.replace(/\.2$/, '.1')}:${port}` });
      const conf = `[Interface]\nPrivateKey = ${k.privateKey}\nAddress = ${s2.peerInner4}/24\nListenPort = ${port}\n\n[Peer]\nPublicKey = ${s2.publicKey}\nAllowedIPs = 10.77.${n2}.0/24\nEndpoint = ${s2.outer4}:${s2.listenPort}\n`;
      let t0 = performance.now();
      const t = await Tunnel.create(conf);
      try {
        if (!withCreate) t0 = performance.now();
        const r = await t.fetch(`http://${s2.inner4}:8080/f`);
        const reader = (r.body as ReadableStream<Uint8Array>).getReader();
        await reader.read();
        const ms = performance.now() - t0;
        await reader.cancel();
        return ms;
      } finally {
        await t.close();
      }
    };
    await kernel();
    await wgnet(true);
    const ref: number[] = [];
    const fetchOnly: number[] = [];
    const withCreate: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      ref.push(await kernel());
      fetchOnly.push(await wgnet(false));
      withCreate.push(await wgnet(true));
    }
    const r = median(ref);
    return [
      { name: `first byte through a new session: wireguard-go TUN + kernel TCP + curl (median of ${ROUNDS}, ${range(ref)} ms) [reference]`, value: r, unit: 'ms' },
      { name: `  wgnet: tunnel.fetch on a created tunnel (${range(fetchOnly)} ms)`, value: median(fetchOnly), unit: 'ms', ref: 'curl', ratio: median(fetchOnly) / r },
      { name: `  wgnet: Tunnel.create + tunnel.fetch (${range(withCreate)} ms)`, value: median(withCreate), unit: 'ms', ref: 'curl', ratio: median(withCreate) / r },
    ];
  } finally {
    wg.kill();
    s1.close();
    s2.close();
    nsC.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
