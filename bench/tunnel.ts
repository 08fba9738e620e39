/**
 * Single-stream TCP through whole tunnels, same run, same machine:
 *   (d) reference: wireguard-go TUN <-> wireguard-go TUN, kernel TCP, iperf3
 *   (a) wgnet -> kernel TCP sink behind wireguard-go, 100 MB
 *   (b) kernel HTTP server behind wireguard-go -> wgnet (raw socket), 100 MB
 *   (c) wgnet <-> wgnet, two processes over loopback
 * (a), (b), (d) need root and wireguard-go/iperf3; without them only (c) runs.
 * (a), (b), (d) run again with 1 % of the outer UDP dropped each way, to compare what
 * loss costs wgnet with what it costs the kernel's TCP (no collapse is the target).
 */
import { performance } from 'node:perf_hooks';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../src/index.js';
import dgram from 'node:dgram';
import { keyPair, tunnelPair } from '../test/harness/tunnel-pair.js';
import { interopUnavailable, startWgGo, makeNamespace, genKeyPair, secretFile, waitFor, type WgGoPeer } from '../test/interop/harness.js';
import type { BenchRow } from './common.js';

const MB = 1024 * 1024;
const SERVERS = join(dirname(fileURLToPath(import.meta.url)), '../test/interop/servers.py');

/**
 * (c): tunnel A here, tunnel B with an HTTP server in a child process (so each
 * side has its own event loop, as two hosts would), over loopback UDP.
 */
async function wgnetPair(): Promise<number> {
  const ka = keyPair();
  const kb = keyPair();
  const total = 64;
  const child = spawn(process.execPath, ['--import', 'tsx', join(dirname(fileURLToPath(import.meta.url)), 'tunnel-peer.ts')], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: {
      ...process.env,
      WGNET_PEER_MB: String(total),
      WGNET_PEER_CONF: `[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.66.0.2/24\n\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.66.0.1/32\n`,
    },
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        const m = /ready (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`benchmark peer exited (${code})`)));
    });
    const a = await Tunnel.create(`[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.66.0.1/24\n\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.66.0.2/32\nEndpoint = 127.0.0.1:${port}\n`);
    try {
      await a.ping('10.66.0.2', { timeout: 5000 });
      const t = performance.now();
      const r = await a.fetch('http://10.66.0.2/');
      let n = 0;
      for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) n += c.length;
      if (n !== total * MB) throw new Error(`(c) got ${n} bytes`);
      return (n * 8) / 1e6 / ((performance.now() - t) / 1000);
    } finally {
      await a.close();
    }
  } finally {
    child.stdin!.end();
    child.kill();
  }
}

async function withWgGo<T>(fn: (peer: WgGoPeer, t: Tunnel) => Promise<T>, loss = 0): Promise<T> {
  const peer = await startWgGo();
  const me = genKeyPair();
  const n = peer.inner4.split('.')[2];
  const t = await Tunnel.create(`[Interface]\nPrivateKey = ${me.privateKey}\nAddress = ${peer.peerInner4}/24\n\n[Peer]\nPublicKey = ${peer.publicKey}\nAllowedIPs = 10.77.${n}.0/24\nEndpoint = ${peer.outer4}:${peer.listenPort}\n`);
  peer.addPeer(t.publicKey, { endpoint: `${peer.outer4.replace(/\.2$/, '.1')}:${t.listenPort}` });
  try {
    await t.ping(peer.inner4, { timeout: 5000 });
    peer.setUdpLoss(loss); // once the handshake is done, so a lost initiation costs no 5 s retry
    return await fn(peer, t);
  } finally {
    await t.close();
    peer.close();
  }
}

function waitLine(c: ReturnType<WgGoPeer['spawn']>, re: RegExp): Promise<void> {
  return new Promise((resolve) => {
    let out = '';
    const on = (d: Buffer): void => {
      out += d;
      if (re.test(out)) resolve();
    };
    c.stdout!.on('data', on);
    c.stderr!.on('data', on);
  });
}

/**
 * Kernel TCP sender -> wgnet: a plain HTTP/1.0 GET on a tunnel socket, bytes
 * counted as they arrive, so the figure is the tunnel's and the TCP stack's,
 * not an HTTP client's (fetch adds undici's parsing on the same thread).
 */
async function kernelToWgnet(loss = 0): Promise<number> {
  return withWgGo(async (peer, t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wgnet-bench-'));
    writeFileSync(join(dir, 'f'), Buffer.alloc(100 * MB, 7));
    const srv = peer.spawn('python3', ['-u', '-m', 'http.server', '8080', '--bind', peer.inner4, '--directory', dir]);
    await waitLine(srv, /Serving HTTP/);
    const s = t.connect(8080, peer.inner4);
    await new Promise((r) => s.once('connect', r));
    const start = performance.now();
    s.write('GET /f HTTP/1.0\r\n\r\n');
    let n = 0;
    s.on('data', (c: Buffer) => (n += c.length));
    await new Promise((r) => s.once('end', r));
    const mbit = (n * 8) / 1e6 / ((performance.now() - start) / 1000);
    rmSync(dir, { recursive: true, force: true });
    if (n < 100 * MB) throw new Error(`(b) got ${n} bytes`);
    return mbit;
  }, loss);
}

async function wgnetToKernel(loss = 0): Promise<number> {
  return withWgGo(async (peer, t) => {
    const srv = peer.spawn('python3', ['-u', SERVERS, 'sink', peer.inner4, '9000']);
    await waitLine(srv, /ready/);
    const s = t.connect(9000, peer.inner4);
    await new Promise((r) => s.once('connect', r));
    const chunk = Buffer.alloc(MB, 3);
    const start = performance.now();
    for (let i = 0; i < 100; i++) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
    s.end();
    await new Promise((r) => s.on('data', r));
    return (100 * MB * 8) / 1e6 / ((performance.now() - start) / 1000);
  }, loss);
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Kernel TCP through two TUNs, iperf3 for 3 s: wireguard-go in one namespace and
 * `impl` (wireguard-go again, or `wgnet up`) in the other.
 */
async function tunIperf(impl: 'wireguard-go' | 'wgnet', loss = 0): Promise<number> {
  const nsA = makeNamespace();
  const peer = await startWgGo({ otherNs: nsA.ns });
  const name = `wgr${process.pid.toString(36)}`.slice(0, 15);
  const cmd = impl === 'wgnet' ? [process.execPath, join(ROOT, 'bin/wgnet.js'), 'up', '-f', name] : ['wireguard-go', '-f', name];
  const wg = spawn('ip', ['netns', 'exec', nsA.ns, ...cmd], { env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' }, stdio: 'ignore' });
  try {
    await waitFor(() => existsSync(`/var/run/wireguard/${name}.sock`), 10_000, 'wireguard-go');
    const k = genKeyPair();
    const n = peer.inner4.split('.')[2];
    nsA.exec('wg', ['set', name, 'private-key', secretFile(k.privateKey), 'listen-port', '51990', 'peer', peer.publicKey, 'endpoint', `${peer.outer4}:${peer.listenPort}`, 'allowed-ips', `10.77.${n}.0/24`]);
    nsA.exec('ip', ['addr', 'add', `${peer.peerInner4}/24`, 'dev', name]);
    nsA.exec('ip', ['link', 'set', name, 'up']);
    peer.addPeer(k.publicKey, { endpoint: `${peer.outer4.replace(/\.2$/, '.1')}:51990` });
    const srv = peer.spawn('iperf3', ['-s', '-1', '-B', peer.inner4]);
    await new Promise((r) => setTimeout(r, 300));
    peer.setUdpLoss(loss);
    const out = JSON.parse(nsA.exec('iperf3', ['-c', peer.inner4, '-t', '3', '-J'])) as { end: { sum_received: { bits_per_second: number } } };
    srv.kill();
    return out.end.sum_received.bits_per_second / 1e6;
  } finally {
    wg.kill();
    peer.close();
    nsA.close();
  }
}

const LOSS = 0.01;

function nftAvailable(): boolean {
  return spawnSync('nft', ['--version'], { stdio: 'ignore' }).status === 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

/** Ping RTTs measured after the first 300 of each series: JIT-compiled code, the steady state. */
const PING_WARMUP = 2000;
/**
 * Samples per block; the blocks alternate between the two series so load on the machine hits both
 * alike. Short blocks, many of them: on a shared 2-core machine a burst of other work lasts tens of
 * milliseconds, and with 5 blocks of 100 it could land in one series' block and move the ratio by 0.1.
 */
const PING_BLOCK = 50;
const PING_BLOCKS = 40;

/**
 * Ping RTT through a tunnel pair (one process, loopback) next to a plain UDP echo RTT on the
 * same loopback. The first 300 of each series are reported apart: they run while V8 is still
 * compiling the tunnel's code (about twice the steady RTT), which says more about the JIT
 * than about the data path. The steady rows come after PING_WARMUP more of each, in
 * alternating blocks.
 */
export async function pingVsUdp(): Promise<BenchRow[]> {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
  const cli = dgram.createSocket('udp4');
  await new Promise<void>((r) => cli.bind(0, '127.0.0.1', () => r()));
  const payload = Buffer.alloc(92); // a 56-byte ping's IPv4 packet (84 B) in a UDP payload of about its size
  const udpOnce = (): Promise<void> =>
    new Promise<void>((r) => {
      cli.once('message', () => r());
      cli.send(payload, echo.address().port, '127.0.0.1');
    });
  const p = await tunnelPair();
  const pingOnce = async (): Promise<void> => void (await p.a.ping('10.66.0.2'));
  const series = async (once: () => Promise<void>, n: number, into?: number[]): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await once();
      into?.push(performance.now() - t);
    }
  };
  const udpCold: number[] = [];
  const tunCold: number[] = [];
  const udp: number[] = [];
  const tun: number[] = [];
  try {
    await series(udpOnce, 300, udpCold);
    await p.a.ping('10.66.0.2'); // the handshake
    await series(pingOnce, 300, tunCold);
    await series(udpOnce, PING_WARMUP);
    await series(pingOnce, PING_WARMUP);
    for (let b = 0; b < PING_BLOCKS; b++) {
      await series(udpOnce, PING_BLOCK, udp);
      await series(pingOnce, PING_BLOCK, tun);
    }
  } finally {
    cli.close();
    echo.close();
    await p.close();
  }
  const u = median(udp) * 1000;
  const w = median(tun) * 1000;
  const uc = median(udpCold) * 1000;
  const wc = median(tunCold) * 1000;
  const n = PING_BLOCK * PING_BLOCKS;
  return [
    { name: `plain UDP echo RTT, loopback, median of ${n} [reference]`, value: u, unit: 'µs' },
    { name: `ping through a wgnet tunnel pair, loopback, median of ${n}`, value: w, unit: 'µs', ref: 'UDP RTT', ratio: w / u },
    { name: '  the first 300 of each (JIT warming up) [reference: UDP]', value: uc, unit: 'µs' },
    { name: '  ping, the first 300 after the handshake', value: wc, unit: 'µs', ref: 'UDP RTT', ratio: wc / uc },
  ];
}

/** RSS of one process holding 10,000 idle TCP connections through one tunnel (both ends are in this process). */
export async function idleConnections(): Promise<BenchRow[]> {
  const N = 10_000;
  // All of them come from one peer: past the default per-peer share (4,096) its SYNs would go unanswered.
  const p = await tunnelPair({ limits: { tcpConnectionsPerPeer: N } });
  const held: { destroy(): void }[] = [];
  try {
    const srv = p.b.createServer((s) => held.push(s));
    srv.listen(80);
    await p.a.ping('10.66.0.2');
    globalThis.gc?.();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < N; i += 250) {
      const batch = Array.from({ length: Math.min(250, N - i) }, () => p.a.connect(80, '10.66.0.2'));
      await Promise.all(batch.map((s) => new Promise((r, j) => s.once('connect', r).once('error', j))));
      held.push(...batch);
    }
    await new Promise((r) => setTimeout(r, 1500)); // buffers of the handshakes trimmed (1 s)
    globalThis.gc?.();
    const rss = process.memoryUsage().rss;
    return [
      { name: `RSS with ${N} idle TCP connections through one tunnel (both ends here)`, value: rss / 2 ** 20, unit: 'MB' },
      { name: '  growth per connection (both ends)', value: (rss - before) / N / 1024, unit: 'KiB' },
    ];
  } finally {
    for (const s of held) s.destroy();
    await p.close();
  }
}

export async function benchTunnel(): Promise<BenchRow[]> {
  // WGNET_BENCH_TUNNEL=ping or =c: only the ping rows, or only (c), in seconds rather than minutes,
  // for work on per-packet cost: `WGNET_BENCH_TUNNEL=ping npm run bench -- tunnel`.
  const only = process.env.WGNET_BENCH_TUNNEL;
  if (only === 'ping') return pingVsUdp();
  if (only === 'c') return [{ name: '(c) wgnet <-> wgnet, two processes, loopback, 64 MB', value: await wgnetPair(), unit: 'Mbit/s' }];
  const rows: BenchRow[] = [];
  const why = interopUnavailable();
  let ref: number | undefined;
  if (!why) {
    ref = await tunIperf('wireguard-go');
    rows.push({ name: '(d) wireguard-go <-> wireguard-go, kernel TCP, iperf3 [reference]', value: ref, unit: 'Mbit/s' });
    const a = await wgnetToKernel();
    rows.push({ name: '(a) wgnet -> kernel behind wireguard-go, 100 MB', value: a, unit: 'Mbit/s', ref: '(d)', ratio: a / ref });
    const b = await kernelToWgnet();
    rows.push({ name: '(b) kernel behind wireguard-go -> wgnet, 100 MB', value: b, unit: 'Mbit/s', ref: '(d)', ratio: b / ref });
    if (existsSync(join(ROOT, 'native/build/Release/wgnet_tun.node'))) {
      const e = await tunIperf('wgnet');
      rows.push({ name: '(e) wgnet up (TUN) <-> wireguard-go, kernel TCP, iperf3', value: e, unit: 'Mbit/s', ref: '(d)', ratio: e / ref });
    }
    // The same three under 1 % random loss of the outer UDP each way (nftables in the namespace).
    if (nftAvailable()) {
      const refLoss = await tunIperf('wireguard-go', LOSS);
      rows.push({ name: '(d) with 1 % loss each way [reference]', value: refLoss, unit: 'Mbit/s' });
      const al = await wgnetToKernel(LOSS);
      rows.push({ name: '(a) with 1 % loss each way', value: al, unit: 'Mbit/s', ref: '(d) 1 %', ratio: al / refLoss });
      const bl = await kernelToWgnet(LOSS);
      rows.push({ name: '(b) with 1 % loss each way', value: bl, unit: 'Mbit/s', ref: '(d) 1 %', ratio: bl / refLoss });
    } else rows.push({ name: 'rows with 1 % loss skipped: no nft (Debian package nftables)', value: 0, unit: '' });
  } else rows.push({ name: `(a), (b), (d) skipped: ${why}`, value: 0, unit: '' });
  const c = await wgnetPair();
  rows.push(ref ? { name: '(c) wgnet <-> wgnet, two processes, loopback, 64 MB', value: c, unit: 'Mbit/s', ref: '(d)', ratio: c / ref } : { name: '(c) wgnet <-> wgnet, two processes, loopback, 64 MB', value: c, unit: 'Mbit/s' });
  rows.push(...(await pingVsUdp()));
  rows.push(...(await idleConnections()));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) for (const r of await benchTunnel()) console.log(r);
