/**
 * New TCP connections per second served by a Node HTTP server on a wgnet tunnel, next to the
 * same server on kernel TCP behind wireguard-go (TUN) [reference], same run, same clients:
 *
 *   client ns: load generator on kernel TCP, wireguard-go (TUN) --veth-- server ns:
 *     reference: wireguard-go (TUN) + kernel TCP + `http.createServer` listening on 10.77.N.2
 *     wgnet:     one Node process: a wgnet tunnel (10.77.N.2) + the same `http.createServer`,
 *                fed by `tunnel.createServer((s) => server.emit('connection', s))`
 *
 * Why these clients: they are identical in both cases (kernel TCP and the real wireguard-go in
 * their own namespace, in their own processes), so the only thing that differs is the server
 * side, which is what the target compares. In-process wgnet clients would run on the server's
 * event loop (or in another wgnet process, whose own per-connection cost would then cap both
 * figures and hide the server's), and a kernel client is also the stricter peer: its SYN retry
 * after 1 s shows every SYN the server drops or ignores as a 1 s stall, and it reuses ports
 * whose previous connection the server still holds in TIME-WAIT (the server closes first, as
 * HTTP/1.0 asks), which is the RFC 6191 path.
 *
 * Each request is `GET / HTTP/1.0` on a new connection, read until the server closes; C clients
 * (10 and 100) loop like that for SECS after a 1 s warm-up that is not counted. Rounds alternate
 * which server goes first. Both setups are up side by side; the idle one costs nothing.
 * Per round and server: conn/s, p50/p99/max connection time (connect() to close), how many took
 * >= 1 s, and the server side's CPU per connection (the wgnet process; wireguard-go + node for
 * the reference: its kernel TCP work in softirq is not counted, so that figure flatters it).
 * Also per round: the UDP datagrams each namespace's kernel dropped at a full receive buffer
 * (this machine's wireguard-go, v0.0.20220316, keeps the default ~208 KiB, where releases from
 * 2023 ask for 7 MiB; a burst overflows it while it waits for a core, and a SYN or SYN-ACK lost
 * that way is a 1 s stall with either server, so the stall count is read next to this), the
 * datagrams per connection that reached the client's namespace, read or dropped (about 5 with
 * either server: more drops from one server come from when its datagrams arrive, not how
 * many), and the wgnet TCP counters that moved.
 *
 * `npm run bench -- connrate`; `npx tsx bench/connrate.ts` alone prints every round.
 * WGNET_CONNRATE_ROUNDS (3), WGNET_CONNRATE_SECS (4), WGNET_CONNRATE_CLIENTS ("10,100");
 * WGNET_CONNRATE_NODE_ARGS: node flags for the wgnet server (e.g. '--cpu-prof --cpu-prof-dir=/tmp/p').
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { interopUnavailable, makeNamespace, startWgGo, genKeyPair, secretFile, waitFor, type WgGoPeer } from '../test/interop/harness.js';
import { cpuMs, ready, type BenchRow } from './common.js';

const SELF = fileURLToPath(import.meta.url);
const HTTP_PORT = 8080;
const WARM_S = 1;

/** What the client prints for one round (times in ms). */
interface Round {
  rate: number;
  n: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Connections that took 1 s or more. */
  slow: number;
  errors: number;
  /** Connections made during the warm-up (for the CPU per connection). */
  warm: number;
  /** The client's own CPU use over the measured seconds, in cores (near 1: the client is the limit). */
  clientCpu: number;
  /** Filled in by the caller: server-side CPU per connection, µs. */
  serverUs?: number;
  /** UDP datagrams dropped for a full receive buffer during the round: client side, server side. */
  udpDrops?: [number, number];
  /** UDP datagrams that reached the client's namespace per connection, read or dropped (what its wireguard-go must read). */
  inPerConn?: number;
  /** wgnet's counters that moved during the round. */
  counters?: string;
}

/* ---------- roles run as child processes ---------- */

/** The server both cases run: the smallest response, so the figure is the connection's cost. */
function handler(_q: http.IncomingMessage, r: http.ServerResponse): void {
  r.end('ok');
}

function stopOnSignal(): void {
  // A clean exit on SIGTERM, so that --cpu-prof writes its profile.
  process.on('SIGTERM', () => process.exit(0));
}

async function kernelServer(host: string, port: number): Promise<void> {
  stopOnSignal();
  http.createServer(handler).listen(port, host, () => console.log('ready'));
}

async function wgnetServer(confPath: string, port: number): Promise<void> {
  stopOnSignal();
  const { Tunnel } = await import('../src/index.js');
  const t = await Tunnel.create(readFileSync(confPath, 'utf8'));
  const server = http.createServer(handler);
  // The backends in the ready line: a missing UDP addon falls back to node:dgram, much slower.
  const b = Tunnel.backends();
  t.createServer((s) => server.emit('connection', s)).listen(port, () => console.log(`ready udp=${b.udp.backend} crypto=${b.crypto.backend}`));
  // SIGUSR2: the tunnel's TCP counters and device drops, one line, for the round's log.
  process.on('SIGUSR2', () => {
    const st = t.stats();
    console.log(`stats ${JSON.stringify({ tcp: st.tcp?.counters, conns: st.tcp?.connections, device: st.device, netstack: st.netstack })}`);
  });
}

const REQUEST = Buffer.from('GET / HTTP/1.0\r\nHost: x\r\n\r\n');

/** One connection: connect, request, read to the server's close. Resolves true on a 200. */
function oneRequest(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let ok = false;
    let first = true;
    let failed = false;
    s.once('connect', () => s.write(REQUEST));
    s.on('data', (d: Buffer) => {
      if (first) ok = d.toString('latin1', 0, 12) === 'HTTP/1.1 200';
      first = false;
    });
    // Long enough for SYN retries at 1 s and 3 s to show as stalls rather than errors.
    s.setTimeout(15_000, () => s.destroy(new Error('timeout')));
    s.once('error', () => (failed = true));
    s.once('close', () => resolve(ok && !failed));
  });
}

async function client(host: string, port: number, conc: number, secs: number): Promise<void> {
  const times: number[] = [];
  let errors = 0;
  let warm = 0;
  const t0 = performance.now();
  const tMeasure = t0 + WARM_S * 1000;
  const tEnd = tMeasure + secs * 1000;
  let lastDone = tEnd;
  let cpu0: NodeJS.CpuUsage | undefined;
  const worker = async (): Promise<void> => {
    for (;;) {
      const start = performance.now();
      if (start >= tEnd) return;
      if (start >= tMeasure) cpu0 ??= process.cpuUsage();
      const ok = await oneRequest(host, port);
      const done = performance.now();
      if (start < tMeasure) warm++;
      else if (ok) {
        times.push(done - start);
        if (done > lastDone) lastDone = done;
      } else errors++;
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  const cpu = process.cpuUsage(cpu0);
  const wall = lastDone - tMeasure;
  times.sort((a, b) => a - b);
  const q = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? NaN;
  const out: Round = {
    rate: (times.length * 1000) / wall,
    n: times.length,
    mean: times.reduce((a, t) => a + t, 0) / times.length,
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    max: times[times.length - 1] ?? NaN,
    slow: times.filter((t) => t >= 1000).length,
    errors,
    warm,
    clientCpu: (cpu.user + cpu.system) / 1000 / wall,
  };
  console.log(JSON.stringify(out));
}

/* ---------- the orchestration ---------- */



interface Setup {
  name: string;
  client: WgGoPeer;
  /** The server's address inside the tunnel. */
  target: string;
  /** wgnet only: its UDP and crypto backends, as its ready line gives them. */
  backends?: string;
  /** Server-side processes whose CPU is counted. */
  pids: number[];
  /** UDP datagrams the kernel dropped for a full receive buffer so far: [client ns, server ns]. */
  udpDrops(): [number, number];
  /** UDP datagrams received in the client namespace so far. */
  clientIn(): number;
  /** wgnet only: its counters now, flattened ('tcp.synCookiesSent': n), for the per-round log. */
  counters?: () => Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** A Udp counter of a namespace (/proc/net/snmp: a header line, then a values line). */
function udpCounter(exec: (cmd: string, args: string[]) => string, name: 'RcvbufErrors' | 'InDatagrams'): number {
  const lines = exec('cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf(name)]);
}

function flatten(o: unknown, prefix: string, out: Record<string, number>): Record<string, number> {
  if (typeof o === 'number') out[prefix] = o;
  else if (o && typeof o === 'object') for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  return out;
}

const tsx = ['--import', 'tsx'];

/** Client namespace (wireguard-go) + server namespace, and in it `mode`'s server. */
async function setup(mode: 'kernel' | 'wgnet', dir: string): Promise<Setup> {
  const srv = makeNamespace();
  const client = await startWgGo({ otherNs: srv.ns });
  const n = client.inner4.split('.')[2];
  const keys = genKeyPair();
  const port = 51000 + Number(n);
  const target = `10.77.${n}.2`;
  const kids: ChildProcess[] = [];
  const spawnIn = (cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess => {
    const c = spawn('ip', ['netns', 'exec', srv.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    kids.push(c);
    return c;
  };
  let counters: Setup['counters'];
  let backends: string | undefined;
  const close = (): void => {
    for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
    client.close();
    srv.close();
  };
  try {
    if (mode === 'kernel') {
      const ifname = `wgs${process.pid.toString(36)}`.slice(0, 15);
      spawnIn('wireguard-go', ['-f', ifname], { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' });
      await waitFor(() => existsSync(`/var/run/wireguard/${ifname}.sock`), 10_000, 'wireguard-go');
      srv.exec('wg', ['set', ifname, 'private-key', secretFile(keys.privateKey), 'listen-port', String(port), 'peer', client.publicKey, 'allowed-ips', `${client.inner4}/32`]);
      srv.exec('ip', ['addr', 'add', `${target}/24`, 'dev', ifname]);
      srv.exec('ip', ['link', 'set', ifname, 'up']);
      await ready(spawnIn(process.execPath, [...tsx, SELF, 'kernel-server', target, String(HTTP_PORT)]), /ready/);
    } else {
      const conf = join(dir, `srv-${n}.conf`);
      writeFileSync(conf, `[Interface]\nPrivateKey = ${keys.privateKey}\nAddress = ${target}/24\nListenPort = ${port}\n[Peer]\nPublicKey = ${client.publicKey}\nAllowedIPs = ${client.inner4}/32\n`, { mode: 0o600 });
      const nodeArgs = (process.env.WGNET_CONNRATE_NODE_ARGS ?? '').split(' ').filter(Boolean);
      const w = spawnIn(process.execPath, [...nodeArgs, ...tsx, SELF, 'wgnet-server', conf, String(HTTP_PORT)]);
      backends = /ready (.*)/.exec(await ready(w, /ready .*\n/))?.[1];
      counters = () =>
        new Promise((resolve) => {
          let buf = '';
          const on = (d: Buffer): void => {
            buf += d.toString();
            const m = /^stats (.*)$/m.exec(buf);
            if (!m) return;
            w.stdout!.off('data', on);
            resolve(flatten(JSON.parse(m[1]!), '', {}));
          };
          w.stdout!.on('data', on);
          w.kill('SIGUSR2');
        });
    }
    client.addPeer(keys.publicKey, { endpoint: `${client.outer4.replace(/\.2$/, '.1')}:${port}` });
    await client.run('ping', ['-c', '1', '-W', '5', target], { timeoutMs: 10_000 });
  } catch (err) {
    close();
    throw err;
  }
  return {
    name: mode,
    client,
    target,
    pids: kids.map((k) => k.pid!),
    udpDrops: () => [udpCounter(client.exec, 'RcvbufErrors'), udpCounter(srv.exec, 'RcvbufErrors')],
    clientIn: () => udpCounter(client.exec, 'InDatagrams'),
    counters,
    backends,
    stop: async () => {
      // SIGTERM and wait, so that a profile asked for in WGNET_CONNRATE_NODE_ARGS gets written.
      await Promise.all(kids.map((k) => new Promise<void>((r) => (k.exitCode !== null ? r() : (k.once('exit', () => r()), k.kill('SIGTERM'))))));
      close();
    },
  };
}

async function round(s: Setup, conc: number, secs: number): Promise<Round> {
  const c0 = await s.counters?.();
  const u0 = s.udpDrops();
  const in0 = s.clientIn();
  const cpu0 = s.pids.reduce((a, p) => a + cpuMs(p), 0);
  const out = await s.client.run(process.execPath, [...tsx, SELF, 'client', s.target, String(HTTP_PORT), String(conc), String(secs)], { timeoutMs: 120_000 });
  const r = JSON.parse(out.split('\n').pop()!) as Round;
  const cpu = s.pids.reduce((a, p) => a + cpuMs(p), 0) - cpu0;
  // The client's start-up (tsx) happens before any connection: the server is idle then.
  r.serverUs = (cpu * 1000) / (r.n + r.warm + r.errors);
  const u1 = s.udpDrops();
  r.udpDrops = [u1[0] - u0[0], u1[1] - u0[1]];
  r.inPerConn = (s.clientIn() - in0 + r.udpDrops[0]) / (r.n + r.warm + r.errors);
  if (c0) {
    const c1 = await s.counters!();
    const d = Object.entries(c1).filter(([k, v]) => v !== (c0[k] ?? 0) && !/bytes|Bytes|packets|Packets/.test(k));
    r.counters = d.map(([k, v]) => `${k} +${v - (c0[k] ?? 0)}`).join(', ');
  }
  return r;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function range(xs: number[], digits = 0): string {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? lo.toFixed(digits) : `${lo.toFixed(digits)}–${hi.toFixed(digits)}`;
}

function line(r: Round): string {
  return `${r.rate.toFixed(0)} conn/s, mean ${r.mean.toFixed(1)} p50 ${r.p50.toFixed(1)} p90 ${r.p90.toFixed(1)} p99 ${r.p99.toFixed(1)} max ${r.max.toFixed(0)} ms, ≥1 s: ${r.slow}, errors ${r.errors}, server CPU ${r.serverUs!.toFixed(0)} µs/conn, client CPU ${(r.clientCpu * 100).toFixed(0)} %, UDP drops client/server ${r.udpDrops!.join('/')}, datagrams to the client ${r.inPerConn!.toFixed(2)}/conn${r.counters ? `\n      counters: ${r.counters}` : ''}`;
}

export async function benchConnrate(log: (s: string) => void = (s) => console.error(`  · ${s}`)): Promise<BenchRow[]> {
  const why = interopUnavailable();
  if (why) return [{ name: `connrate skipped: ${why}`, value: 0, unit: '' }];
  const rounds = Number(process.env.WGNET_CONNRATE_ROUNDS ?? 3);
  const secs = Number(process.env.WGNET_CONNRATE_SECS ?? 4);
  const clients = (process.env.WGNET_CONNRATE_CLIENTS ?? '10,100').split(',').map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-connrate-'));
  const setups: Setup[] = [];
  try {
    setups.push(await setup('kernel', dir), await setup('wgnet', dir));
    const [ref, wg] = setups as [Setup, Setup];
    // One unreported round each, so both servers' connection paths are compiled before counting.
    for (const s of [ref, wg]) await round(s, clients[0]!, 2);
    const res = new Map<string, Round[]>();
    const add = (k: string, r: Round): void => void res.set(k, [...(res.get(k) ?? []), r]);
    for (let i = 0; i < rounds; i++) {
      for (const c of clients) {
        const order = i % 2 ? [wg, ref] : [ref, wg];
        for (const s of order) {
          const r = await round(s, c, secs);
          add(`${s.name}/${c}`, r);
          log(`round ${i + 1}, ${c} clients, ${s.name === 'kernel' ? 'reference' : 'wgnet    '}: ${line(r)}`);
        }
      }
    }
    const rows: BenchRow[] = [];
    for (const c of clients) {
      const k = res.get(`kernel/${c}`)!;
      const w = res.get(`wgnet/${c}`)!;
      const ratios = w.map((r, i) => r.rate / k[i]!.rate);
      const kr = median(k.map((r) => r.rate));
      const wr = median(w.map((r) => r.rate));
      rows.push({ name: `${c} clients: kernel TCP behind wireguard-go, new conn/s (median of ${rounds} × ${secs} s) [reference]`, value: kr, unit: 'conn/s' });
      rows.push({ name: `${c} clients: wgnet server (${wg.backends}), new conn/s (ratios ${range(ratios, 2)})`, value: wr, unit: 'conn/s', ref: 'kernel', ratio: median(ratios) });
      const pct = (rs: Round[]): string => `p99 ${range(rs.map((r) => r.p99), 1)} ms, max ${range(rs.map((r) => r.max))} ms, ≥1 s: ${rs.reduce((a, r) => a + r.slow, 0)} of ${rs.reduce((a, r) => a + r.n, 0)}, errors ${rs.reduce((a, r) => a + r.errors, 0)}, UDP datagrams dropped at a full receive buffer client/server side ${rs.reduce((a, r) => a + r.udpDrops![0], 0)}/${rs.reduce((a, r) => a + r.udpDrops![1], 0)}`;
      rows.push({ name: `  kernel: ${pct(k)}`, value: median(k.map((r) => r.serverUs!)), unit: 'µs CPU/conn (wireguard-go + node)' });
      rows.push({ name: `  wgnet:  ${pct(w)}`, value: median(w.map((r) => r.serverUs!)), unit: 'µs CPU/conn (wgnet process)' });
    }
    return rows;
  } finally {
    for (const s of setups) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const main = process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url;
const arg = (i: number): string => process.argv[3 + i]!;
if (main) {
  const role = process.argv[2];
  if (role === 'client') await client(arg(0), Number(arg(1)), Number(arg(2)), Number(arg(3)));
  else if (role === 'kernel-server') await kernelServer(arg(0), Number(arg(1)));
  else if (role === 'wgnet-server') await wgnetServer(arg(0), Number(arg(1)));
  else for (const r of await benchConnrate((s) => console.log(s))) console.log(r);
}
