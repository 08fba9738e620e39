/**
 * Gateway mode next to the classic WireGuard server, same run, same topology:
 *
 *   client ns (wireguard-go, kernel TCP) --veth-- server ns --veth-- "internet" ns (servers)
 *
 * In the server namespace either the classic setup runs (wireguard-go on a TUN + kernel IP
 * forwarding) [reference], or `wgnet gateway` (no TUN, no forwarding: flows relayed from
 * host sockets). Rows: one iperf3 stream each way, new connections per second (short
 * HTTP requests, each on a new connection, 8 clients), and the gateway's memory per relayed
 * TCP flow (a separate run: 2,000 held connections from an in-process wgnet client).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../src/index.js';
import { keyPair } from '../test/harness/tunnel-pair.js';
import { interopUnavailable, makeNamespace, makeInet, startWgGo, genKeyPair, secretFile, waitFor, type Inet, type WgGoPeer } from '../test/interop/harness.js';
import type { BenchRow } from './common.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WGNET = join(ROOT, 'bin', 'wgnet.js');

/** A tiny HTTP server for the connection-rate rows (Node: python's http.server would be the bottleneck). */
const HTTP_SERVER = `
const http = require('node:http');
http.createServer((q, r) => r.end('ok')).listen(Number(process.argv[2]), '::', () => console.log('ready'));
`;

/** 8 threads, each: connect, GET, read to close, for SECS; prints the number of completed requests. */
const CONN_CLIENT = `
import socket, sys, threading, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
done = [0] * 8
end = time.time() + secs
def run(i):
    while time.time() < end:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')
        while s.recv(4096): pass
        s.close(); done[i] += 1
ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print(sum(done))
`;

interface Setup {
  client: WgGoPeer;
  inet: Inet;
  close(): void;
}

function ready(c: ChildProcess, what: RegExp, ms = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`not ready: ${out.slice(-300)}`)), ms);
    const on = (d: Buffer): void => {
      out += d.toString();
      if (what.test(out)) {
        clearTimeout(t);
        resolve();
      }
    };
    c.stdout?.on('data', on);
    c.stderr?.on('data', on);
  });
}

/** The three namespaces and, in the middle one, `mode`'s WireGuard server. */
async function setup(mode: 'classic' | 'wgnet', dir: string): Promise<Setup> {
  const srv = makeNamespace();
  const client = await startWgGo({ otherNs: srv.ns });
  const inet = makeInet(srv.ns);
  const kids: ChildProcess[] = [];
  const n = client.inner4.split('.')[2];
  const keys = genKeyPair();
  const port = 51000 + Number(n);
  const serverEnd = client.outer4.replace(/\.2$/, '.1');
  try {
    if (mode === 'classic') {
      const ifname = `wgc${process.pid.toString(36)}`.slice(0, 15);
      const wg = spawn('ip', ['netns', 'exec', srv.ns, 'wireguard-go', '-f', ifname], { env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' }, stdio: 'ignore' });
      kids.push(wg);
      await waitFor(() => existsSync(`/var/run/wireguard/${ifname}.sock`), 10_000, 'wireguard-go');
      srv.exec('wg', ['set', ifname, 'private-key', secretFile(keys.privateKey), 'listen-port', String(port), 'peer', client.publicKey, 'allowed-ips', `10.77.${n}.1/32`]);
      srv.exec('ip', ['addr', 'add', `10.77.${n}.2/24`, 'dev', ifname]);
      srv.exec('ip', ['link', 'set', ifname, 'up']);
      srv.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      inet.exec('ip', ['route', 'add', `10.77.${n}.0/24`, 'via', inet.gw4]);
    } else {
      const conf = join(dir, `gw-${n}.conf`);
      writeFileSync(conf, `[Interface]\nPrivateKey = ${keys.privateKey}\nAddress = 10.77.${n}.2/24\nListenPort = ${port}\n[Peer]\nPublicKey = ${client.publicKey}\nAllowedIPs = 10.77.${n}.1/32\n`, { mode: 0o600 });
      const gw = spawn('ip', ['netns', 'exec', srv.ns, process.execPath, WGNET, 'gateway', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      kids.push(gw);
      await ready(gw, /ready gateway/);
    }
    client.exec('wg', ['set', client.ifname, 'peer', keys.publicKey, 'endpoint', `${serverEnd}:${port}`, 'allowed-ips', `10.77.${n}.2/32,${inet.net4}`]);
    client.exec('ip', ['route', 'add', inet.net4, 'dev', client.ifname]);
    await client.run('ping', ['-c', '1', '-W', '5', inet.v4], { timeoutMs: 10_000 });
  } catch (err) {
    for (const k of kids) k.kill('SIGKILL');
    inet.close();
    client.close();
    srv.close();
    throw err;
  }
  return {
    client,
    inet,
    close: () => {
      for (const k of kids) k.kill('SIGKILL'); // the measurement is over: no graceful stop needed
      inet.close();
      client.close();
      srv.close();
    },
  };
}

async function iperf(s: Setup, reverse: boolean): Promise<number> {
  const srv = s.inet.spawn('iperf3', ['-s', '-1', '--forceflush', '-p', '5201']);
  await ready(srv, /listening/i);
  const out = await s.client.run('iperf3', ['-c', s.inet.v4, '-p', '5201', '-t', '4', '-J', ...(reverse ? ['-R'] : [])], { timeoutMs: 60_000 });
  srv.kill();
  return (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6;
}

async function connRate(s: Setup, dir: string): Promise<number> {
  writeFileSync(join(dir, 'srv.cjs'), HTTP_SERVER);
  writeFileSync(join(dir, 'cli.py'), CONN_CLIENT);
  const srv = s.inet.spawn(process.execPath, [join(dir, 'srv.cjs'), '8088']);
  await ready(srv, /ready/);
  const secs = 3;
  const out = await s.client.run('python3', [join(dir, 'cli.py'), s.inet.v4, '8088', String(secs)], { timeoutMs: 60_000 });
  srv.kill();
  return Number(out) / secs;
}

/** RSS of a `wgnet gateway` process before and while it relays `n` held TCP flows. */
async function memoryPerFlow(dir: string, n = 2000): Promise<{ perFlowKiB: number; rssMB: number }> {
  const ka = keyPair();
  const kb = keyPair();
  const conf = join(dir, 'mem.conf');
  writeFileSync(conf, `[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.89.0.2/24\nListenPort = 0\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.89.0.1/32\n`, { mode: 0o600 });
  const held: net.Socket[] = [];
  const server = net.createServer((s) => held.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const sport = (server.address() as net.AddressInfo).port;
  const gw = spawn(process.execPath, [WGNET, 'gateway', '-c', conf, '--allow', '127.0.0.0/8'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  gw.stdout!.on('data', (d: Buffer) => (out += d));
  await waitFor(() => /ready gateway listen=(\d+)/.exec(out), 15_000, 'gateway');
  const gport = Number(/listen=(\d+)/.exec(out)![1]);
  const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gw.pid}/status`, 'utf8'))![1]) * 1024;
  const a = await Tunnel.create(`[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.89.0.1/24\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.89.0.0/24, 127.0.0.0/8\nEndpoint = 127.0.0.1:${gport}\n`);
  const socks: { destroy(): void }[] = [];
  try {
    // Warm up the path (handshake, JIT), then measure.
    for (let i = 0; i < 50; i++) {
      const c = a.connect(sport, '127.0.0.1');
      await new Promise((r, j) => c.once('connect', r).once('error', j));
      c.destroy();
    }
    await new Promise((r) => setTimeout(r, 1500));
    const before = rss();
    for (let i = 0; i < n; i += 200) {
      const batch = Array.from({ length: Math.min(200, n - i) }, () => a.connect(sport, '127.0.0.1'));
      await Promise.all(batch.map((c) => new Promise((r, j) => c.once('connect', r).once('error', j))));
      socks.push(...batch);
    }
    await new Promise((r) => setTimeout(r, 1500)); // drained buffers trimmed
    const after = rss();
    return { perFlowKiB: (after - before) / n / 1024, rssMB: after / 2 ** 20 };
  } finally {
    for (const s of socks) s.destroy();
    for (const s of held) s.destroy();
    await a.close();
    gw.kill('SIGKILL');
    server.close();
  }
}

export async function benchGateway(): Promise<BenchRow[]> {
  const why = interopUnavailable();
  const rows: BenchRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-gwbench-'));
  try {
    if (why) rows.push({ name: `classic vs gateway rows skipped: ${why}`, value: 0, unit: '' });
    else {
      const res: Record<'classic' | 'wgnet', { up: number; down: number; cps: number }> = { classic: { up: 0, down: 0, cps: 0 }, wgnet: { up: 0, down: 0, cps: 0 } };
      for (const mode of ['classic', 'wgnet'] as const) {
        const s = await setup(mode, dir);
        try {
          res[mode].up = await iperf(s, false);
          res[mode].down = await iperf(s, true);
          res[mode].cps = await connRate(s, dir);
        } finally {
          s.close();
        }
      }
      const c = res.classic;
      const w = res.wgnet;
      rows.push({ name: 'classic server: wireguard-go TUN + kernel forwarding, upload [reference]', value: c.up, unit: 'Mbit/s' });
      rows.push({ name: 'wgnet gateway (host sockets, no TUN), upload', value: w.up, unit: 'Mbit/s', ref: 'classic', ratio: w.up / c.up });
      rows.push({ name: 'classic server, download [reference]', value: c.down, unit: 'Mbit/s' });
      rows.push({ name: 'wgnet gateway, download', value: w.down, unit: 'Mbit/s', ref: 'classic', ratio: w.down / c.down });
      rows.push({ name: 'classic server, new connections/s (8 clients, HTTP/1.0) [reference]', value: c.cps, unit: 'conn/s' });
      rows.push({ name: 'wgnet gateway, new connections/s', value: w.cps, unit: 'conn/s', ref: 'classic', ratio: w.cps / c.cps });
    }
    const m = await memoryPerFlow(dir);
    rows.push({ name: 'wgnet gateway memory per relayed TCP flow (2,000 held)', value: m.perFlowKiB, unit: 'KiB', ref: 'target ≤ 32 KiB', ratio: m.perFlowKiB / 32 });
    rows.push({ name: '  gateway process RSS with 2,000 relayed flows', value: m.rssMB, unit: 'MB' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) for (const r of await benchGateway()) console.log(r);
