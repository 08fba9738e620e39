/**
 * Gateway mode next to the classic WireGuard server, same run, same topology:
 *
 *   client ns (wireguard-go, kernel TCP) --veth-- server ns --veth-- "internet" ns (servers)
 *
 * In the server namespace either the classic setup runs (wireguard-go on a TUN + kernel IP
 * forwarding) [reference], or `wgnet gateway` (no TUN, no forwarding: flows relayed from
 * host sockets). Both are set up side by side. Rows: one iperf3 stream each way, new
 * connections per second (short HTTP requests, each on a new connection, 8 clients; the two
 * servers measured in turns, 3 s each: first once just after start, reported on its own,
 * then CONN_ROUNDS rounds whose median is the row), and the gateway's memory (separate runs
 * on loopback, in-process wgnet clients): per active relayed TCP flow (4,000 flows from one
 * peer), and with 1,000 peers configured and up relaying 10,000 flows (10 each).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../src/index.js';
import { keyPair } from '../test/harness/tunnel-pair.js';
import { interopUnavailable, makeNamespace, makeInet, startWgGo, genKeyPair, secretFile, waitFor, type Inet, type WgGoPeer } from '../test/interop/harness.js';
import { cpuMs, ready, type BenchRow } from './common.js';

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
  /** Stops the server's processes with SIGTERM and waits for them (then close()). */
  stop(): Promise<void>;
  /** The server process (wireguard-go or the gateway): its CPU time is read from /proc. */
  pid: number;
}



/** The three namespaces and, in the middle one, `mode`'s WireGuard server. */
export async function setup(mode: 'classic' | 'wgnet', dir: string, wgnet = WGNET): Promise<Setup> {
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
      // WGNET_GW_NODE_ARGS: extra node flags for the gateway (profiling: '--cpu-prof --cpu-prof-dir=/tmp/prof').
      const nodeArgs = (process.env.WGNET_GW_NODE_ARGS ?? '').split(' ').filter(Boolean);
      const gw = spawn('ip', ['netns', 'exec', srv.ns, process.execPath, ...nodeArgs, wgnet, 'gateway', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      kids.push(gw);
      // WGNET_GW_OUT=FILE keeps the gateway's output (with --trace-gc in WGNET_GW_NODE_ARGS, say).
      if (process.env.WGNET_GW_OUT) {
        const out = createWriteStream(process.env.WGNET_GW_OUT);
        gw.stdout!.pipe(out);
        gw.stderr!.pipe(out);
      }
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
    pid: kids[0]!.pid!,
    close: () => {
      for (const k of kids) k.kill('SIGKILL'); // the measurement is over: no graceful stop needed
      inet.close();
      client.close();
      srv.close();
    },
    stop: async () => {
      // A graceful stop, so that a profile asked for in WGNET_GW_NODE_ARGS is written at exit.
      await Promise.all(kids.map((k) => new Promise<void>((r) => (k.exitCode !== null ? r() : (k.once('exit', () => r()), k.kill('SIGTERM'))))));
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

/** The HTTP server of the connection-rate rows, in `s`'s "internet" namespace (killed by s.close()). */
async function startHttp(s: Setup, dir: string): Promise<void> {
  writeFileSync(join(dir, 'srv.cjs'), HTTP_SERVER);
  writeFileSync(join(dir, 'cli.py'), CONN_CLIENT);
  await ready(s.inet.spawn(process.execPath, [join(dir, 'srv.cjs'), '8088']), /ready/);
}

/** Connections per second for 3 s (startHttp first). */
export async function connRate(s: Setup, dir: string): Promise<number> {
  const secs = 3;
  const out = await s.client.run('python3', [join(dir, 'cli.py'), s.inet.v4, '8088', String(secs)], { timeoutMs: 60_000 });
  return Number(out) / secs;
}

/** Rounds of the connection-rate row: each a classic figure then each gateway's, seconds apart. */
interface ConnRounds {
  classic: number[];
  /** Per gateway: its rate, its ratio to the same round's classic figure, its CPU per connection (us). */
  gateways: { rate: number[]; ratio: number[]; cpuUs: number[] }[];
}

async function connRounds(classic: Setup, gws: Setup[], dir: string, rounds: number, log?: (line: string) => void): Promise<ConnRounds> {
  const out: ConnRounds = { classic: [], gateways: gws.map(() => ({ rate: [], ratio: [], cpuUs: [] })) };
  for (let i = 0; i < rounds; i++) {
    const c = await connRate(classic, dir);
    out.classic.push(c);
    let line = `round ${i + 1}: classic ${c.toFixed(0)} conn/s`;
    for (const [k, wg] of gws.entries()) {
      const cpu0 = cpuMs(wg.pid);
      const w = await connRate(wg, dir);
      // The gateway's CPU per connection: steadier than the rate on a shared machine (what
      // other processes take shows in the rate, much less in this). The round's 3 s of requests.
      const us = ((cpuMs(wg.pid) - cpu0) * 1000) / (w * 3);
      const g = out.gateways[k]!;
      g.rate.push(w);
      g.ratio.push(w / c);
      g.cpuUs.push(us);
      line += `; ${gws.length > 1 ? `[${k}] ` : ''}wgnet ${w.toFixed(0)} conn/s, ratio ${(w / c).toFixed(2)}, gateway CPU ${us.toFixed(0)} µs/conn`;
    }
    log?.(line);
  }
  return out;
}

function median(a: number[]): number {
  const x = [...a].sort((p, q) => p - q);
  return x.length % 2 ? x[x.length >> 1]! : (x[x.length / 2 - 1]! + x[x.length / 2]!) / 2;
}

interface MemoryRun {
  flows: number;
  /**
   * What one more flow costs in the gateway's RSS (KiB): the growth from half the flows to all
   * of them, per flow. Measured from the half-way point, so steps that happen once (V8's young
   * generation growing to 2 x 16 MiB under allocation, malloc arenas) do not count as per-flow.
   */
  perFlowKiB: number;
  /** The RSS growth from no flow to all of them, per flow, those one-time steps included (KiB). */
  avgPerFlowKiB: number;
  /** Like perFlowKiB for V8's heap plus external memory (Buffers), after a full GC (KiB). */
  heapPerFlowKiB: number;
  /** The gateway process's RSS with every flow open (MB), and before them (peers' sessions up). */
  rssMB: number;
  baseMB: number;
  /** Seconds to open (and exchange data on) every flow. */
  openSecs: number;
}

/** The gateway's own view of its memory, from its /metrics (process.memoryUsage()). */
async function gatewayMemory(metrics: string): Promise<{ rss: number; heap: number; external: number }> {
  const text = await (await fetch(`http://${metrics}/metrics`)).text();
  const v = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)![1]);
  return { rss: v('process_resident_memory_bytes'), heap: v('nodejs_heap_size_used_bytes'), external: v('nodejs_external_memory_bytes') };
}

/**
 * A `wgnet gateway` process with `peers` peers configured, `clients` of them in-process
 * wgnet clients, relaying `flows` TCP connections (spread over the clients) to an echo server
 * on this host's loopback. Every flow is active: 1 KiB each way through the relay, then it
 * stays open. Memory is read after the netstack's idle-buffer trim (TRIM_MS, 1 s: an idle
 * connection holds no send or receive ring) and a full GC in the gateway, so what is left per
 * flow is the flow itself beyond socket buffers: netstack connection, TcpSocket, host
 * net.Socket and their handles (the kernel's socket buffers are not in the process's RSS).
 */
async function relayedFlowMemory(dir: string, opts: { peers: number; clients: number; flows: number }): Promise<MemoryRun> {
  const gwKeys = keyPair();
  const keys = Array.from({ length: opts.peers }, () => keyPair());
  const addr = (i: number): string => `10.90.${(i + 1) >> 8}.${(i + 1) & 255}`;
  const conf = join(dir, `mem-${opts.peers}.conf`);
  writeFileSync(
    conf,
    `[Interface]\nPrivateKey = ${gwKeys.privateKey}\nAddress = 10.90.255.254/16\nListenPort = 0\n` + keys.map((k, i) => `[Peer]\nPublicKey = ${k.publicKey}\nAllowedIPs = ${addr(i)}/32\n`).join(''),
    { mode: 0o600 },
  );
  const held = new Set<net.Socket>();
  const server = net.createServer((s) => {
    held.add(s);
    s.on('error', () => {});
    s.on('data', (d) => s.write(d));
    s.on('close', () => held.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const sport = (server.address() as net.AddressInfo).port;
  // SIGUSR2 runs a full GC in the gateway, so the heap read after it is live memory, not garbage.
  const gw = spawn(process.execPath, ['--expose-gc', '--import', 'data:text/javascript,process.on("SIGUSR2",()=>globalThis.gc())', WGNET, 'gateway', '-c', conf, '--allow', '127.0.0.0/8', '--metrics', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  gw.stdout!.on('data', (d: Buffer) => (out += d));
  gw.stderr!.on('data', (d: Buffer) => (out += d));
  const clients: Tunnel[] = [];
  const socks: { destroy(): void }[] = [];
  try {
    await waitFor(() => /ready gateway listen=(\d+).* metrics=(\S+)/.exec(out), 30_000, 'gateway');
    const m = /ready gateway listen=(\d+).* metrics=(\S+)/.exec(out)!;
    const gport = Number(m[1]);
    const metrics = m[2]!;
    const settle = async (): Promise<{ rss: number; heap: number; external: number }> => {
      await sleep(2000); // > TRIM_MS: drained rings released
      gw.kill('SIGUSR2');
      await sleep(500);
      return gatewayMemory(metrics);
    };
    for (let i = 0; i < opts.clients; i++) {
      clients.push(await Tunnel.create(`[Interface]\nPrivateKey = ${keys[i]!.privateKey}\nAddress = ${addr(i)}/32\n[Peer]\nPublicKey = ${gwKeys.publicKey}\nAllowedIPs = 127.0.0.0/8\nEndpoint = 127.0.0.1:${gport}\n`));
    }
    const payload = Buffer.alloc(1024, 0x5a);
    /** One relayed flow: connected, 1 KiB echoed back through the host server. */
    const open = (c: Tunnel): Promise<{ destroy(): void }> =>
      new Promise((resolve, reject) => {
        const s = c.connect(sport, '127.0.0.1');
        let got = 0;
        s.once('error', reject);
        s.once('connect', () => s.write(payload));
        s.on('data', (d: Buffer) => {
          got += d.length;
          if (got >= payload.length) resolve(s);
        });
      });
    // Warm-up: every client's session (a handshake each, 50 at a time: below the gateway's
    // under-load backlog) and the relay's code paths, then the baseline.
    for (let i = 0; i < clients.length; i += 50) {
      const batch = await Promise.all(clients.slice(i, i + 50).map((c) => open(c)));
      for (const s of batch) s.destroy();
    }
    for (let i = 0; i < 50; i++) (await open(clients[i % clients.length]!)).destroy();
    const before = await settle();
    // The flows, round-robin over the clients, 500 in flight (pending limits: 4,096 total, 128
    // per peer), in two halves with the memory read after each.
    let openMs = 0;
    const openUpTo = async (total: number): Promise<void> => {
      const t0 = performance.now();
      for (let i = socks.length; i < total; i += 500) {
        const n = Math.min(500, total - i);
        socks.push(...(await Promise.all(Array.from({ length: n }, (_, k) => open(clients[(i + k) % clients.length]!)))));
      }
      openMs += performance.now() - t0;
    };
    const half = Math.floor(opts.flows / 2);
    await openUpTo(half);
    const mid = await settle();
    await openUpTo(opts.flows);
    const after = await settle();
    if (held.size < opts.flows) throw new Error(`only ${held.size} of ${opts.flows} flows reached the server`);
    const n = opts.flows - half;
    return {
      flows: opts.flows,
      perFlowKiB: (after.rss - mid.rss) / n / 1024,
      avgPerFlowKiB: (after.rss - before.rss) / opts.flows / 1024,
      heapPerFlowKiB: (after.heap + after.external - mid.heap - mid.external) / n / 1024,
      rssMB: after.rss / 2 ** 20,
      baseMB: before.rss / 2 ** 20,
      openSecs: openMs / 1000,
    };
  } finally {
    for (const s of socks) s.destroy();
    for (const s of held) s.destroy();
    await Promise.all(clients.map((c) => c.close()));
    gw.kill('SIGKILL');
    server.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Connection-rate rounds after the first (cold) one; the row is their median. */
const CONN_ROUNDS = 3;

export async function benchGateway(opts: { memory?: boolean } = {}): Promise<BenchRow[]> {
  const why = interopUnavailable();
  const rows: BenchRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-gwbench-'));
  try {
    if (why) rows.push({ name: `classic vs gateway rows skipped: ${why}`, value: 0, unit: '' });
    else {
      // Both servers side by side (an idle one costs nothing), so the connection rates can be
      // taken in turns: on this shared machine two figures taken a minute apart compared the
      // load of two moments as much as the two servers.
      const classic = await setup('classic', dir);
      let wg: Setup | undefined;
      try {
        wg = await setup('wgnet', dir);
        const c = { up: await iperf(classic, false), down: await iperf(classic, true) };
        const w = { up: await iperf(wg, false), down: await iperf(wg, true) };
        await startHttp(classic, dir);
        await startHttp(wg, dir);
        // The first 3 s of short connections each: the gateway's connection path (host
        // connect, handshake, relay, teardown) is still being compiled by V8 then, and the
        // HTTP servers' too. Reported on its own; the target row is the rounds after it.
        const cold = await connRounds(classic, [wg], dir, 1);
        const warm = await connRounds(classic, [wg], dir, CONN_ROUNDS);
        const g = warm.gateways[0]!;
        rows.push({ name: 'classic server: wireguard-go TUN + kernel forwarding, upload [reference]', value: c.up, unit: 'Mbit/s' });
        rows.push({ name: 'wgnet gateway (host sockets, no TUN), upload', value: w.up, unit: 'Mbit/s', ref: 'classic', ratio: w.up / c.up });
        rows.push({ name: 'classic server, download [reference]', value: c.down, unit: 'Mbit/s' });
        rows.push({ name: 'wgnet gateway, download', value: w.down, unit: 'Mbit/s', ref: 'classic', ratio: w.down / c.down });
        rows.push({ name: `classic server, new connections/s (8 clients, HTTP/1.0; median of ${CONN_ROUNDS} x 3 s) [reference]`, value: median(warm.classic), unit: 'conn/s' });
        // The ratio is the median of each round's ratio (the two figures of a round are seconds apart).
        rows.push({ name: 'wgnet gateway, new connections/s', value: median(g.rate), unit: 'conn/s', ref: 'classic', ratio: median(g.ratio) });
        rows.push({ name: `  rounds: ratio ${g.ratio.map((r) => r.toFixed(2)).join(', ')}; gateway CPU per connection`, value: median(g.cpuUs), unit: 'µs' });
        rows.push({ name: '  first 3 s after start (connection path not yet compiled)', value: cold.gateways[0]!.rate[0]!, unit: 'conn/s', ref: `classic ${cold.classic[0]!.toFixed(0)}`, ratio: cold.gateways[0]!.ratio[0]! });
      } finally {
        wg?.close();
        classic.close();
      }
    }
    if (opts.memory !== false) rows.push(...(await memoryRows(dir)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** The memory rows alone (`npx tsx bench/gateway.ts memory`): loopback only, no namespaces. */
async function memoryRows(dir: string): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // The target rows take the whole growth from no flow to all (an upper bound: one-time steps
  // included); the marginal cost from half to all is lower but noisier (RSS does not follow the
  // live heap page for page).
  const m = await relayedFlowMemory(dir, { peers: 1, clients: 1, flows: 4000 });
  rows.push({ name: 'wgnet gateway memory per active relayed TCP flow (RSS growth / 4,000 flows)', value: m.avgPerFlowKiB, unit: 'KiB', ref: 'target ≤ 32 KiB', ratio: m.avgPerFlowKiB / 32 });
  rows.push({ name: '  marginal, 2,000 -> 4,000 flows: RSS', value: m.perFlowKiB, unit: 'KiB' });
  rows.push({ name: '  marginal: V8 heap + external, after a full GC', value: m.heapPerFlowKiB, unit: 'KiB' });
  rows.push({ name: '  gateway process RSS with 4,000 relayed flows', value: m.rssMB, unit: 'MB' });
  const big = await relayedFlowMemory(dir, { peers: 1000, clients: 1000, flows: 10_000 });
  rows.push({ name: 'wgnet gateway RSS, 1,000 peers (all up) and 10,000 relayed TCP flows', value: big.rssMB, unit: 'MB', ref: 'target ≤ 1 GB', ratio: big.rssMB / 1024 });
  rows.push({ name: "  RSS with the 1,000 peers' sessions and no flow", value: big.baseMB, unit: 'MB' });
  rows.push({ name: '  per flow (RSS growth / 10,000 flows)', value: big.avgPerFlowKiB, unit: 'KiB', ref: 'target ≤ 32 KiB', ratio: big.avgPerFlowKiB / 32 });
  rows.push({ name: '  marginal, 5,000 -> 10,000 flows: RSS', value: big.perFlowKiB, unit: 'KiB' });
  rows.push({ name: '  marginal: V8 heap + external, after a full GC', value: big.heapPerFlowKiB, unit: 'KiB' });
  rows.push({ name: '  10,000 flows opened (1 KiB echoed on each) in', value: big.openSecs, unit: 's' });
  return rows;
}

/**
 * The connection-rate rows alone (`npx tsx bench/gateway.ts cps [ROUNDS] [WGNET_JS...]`): the
 * classic server and the gateway set up side by side, then measured in turns, classic then
 * wgnet, ROUNDS times (default 5; the first includes V8 compiling the gateway's connection
 * path). With other checkouts' bin/wgnet.js named, each is a gateway of its own in the same
 * turns (A/B comparisons of a change, same run).
 */
async function connRateRounds(dir: string, rounds: number, bins: string[]): Promise<void> {
  const why = interopUnavailable();
  if (why) throw new Error(why);
  const classic = await setup('classic', dir);
  const gws: Setup[] = [];
  try {
    for (const bin of bins) gws.push(await setup('wgnet', dir, bin));
    for (const s of [classic, ...gws]) await startHttp(s, dir);
    const r = await connRounds(classic, gws, dir, rounds, (line) => console.log(line));
    const range = (a: number[], d: number): string => {
      const x = [...a].sort((p, q) => p - q);
      return `${x[0]!.toFixed(d)}-${x[x.length - 1]!.toFixed(d)}, median ${median(a).toFixed(d)}`;
    };
    for (const [k, bin] of bins.entries()) console.log(`${bins.length > 1 ? `[${k}] ${bin}: ` : ''}ratio ${range(r.gateways[k]!.ratio, 2)}; gateway CPU µs/conn ${range(r.gateways[k]!.cpuUs, 0)}`);
    for (const wg of gws) await wg.stop();
  } finally {
    for (const wg of gws) wg.close();
    classic.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const only = process.argv[2] === 'memory';
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-gwbench-'));
  try {
    // 'memory': the memory rows alone; 'rates': the classic-vs-gateway rows alone; 'cps': connection-rate rounds.
    if (process.argv[2] === 'cps') await connRateRounds(dir, Number(process.argv[3] ?? 5), process.argv.length > 4 ? process.argv.slice(4) : [WGNET]);
    else for (const r of only ? await memoryRows(dir) : await benchGateway({ memory: process.argv[2] !== 'rates' })) console.log(r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
