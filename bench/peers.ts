/**
 * Many peers (issue 17), `npm run bench -- peers`:
 * - receive cost per data packet with 1 / 1k / 10k / 50k peers configured, device to
 *   device in one process (no network), each packet followed by both devices' pollTimeout()
 *   as the engine does after each batch; the idle peers have persistent keepalives, so
 *   their timers are in the heap. Target: within 1.2× of 1 peer.
 * - start with 10k peers (Device + addPeer) and uapiGet with 10k peers, in process;
 * - `wg setconf` and `wg show dump` with 10k peers over the UAPI socket, wgnet next to
 *   wireguard-go in the same run (needs root, /dev/net/tun, wireguard-go and wg; skipped
 *   without them);
 * - handshake responses per second: initiations from 1,000 distinct configured peers,
 *   each answered (no cookies), and under load (cookie replies), in process; then over UDP
 *   on loopback with 64 initiations in flight (below both servers' under-load backlog of
 *   128, so every one is answered), wgnet (Device + engine + UDP socket, its own process)
 *   next to wireguard-go, same clients, same run.
 */
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Device } from '../src/wireguard/device.js';
import { uapiGet, type UapiHost } from '../src/wireguard/uapi.js';
import { UapiServer } from '../src/io/uapi-server.js';
import { getCryptoProvider } from '../src/crypto/index.js';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../src/crypto/keys.js';
import { SeededRng } from '../src/util/rng.js';
import { parsePrefix } from '../src/util/ip.js';
import { allocPacket, fromHex, toBase64, toHex, WG_HEADROOM, WG_TAILROOM } from '../src/util/bytes.js';
import { Engine, type PacketLayer } from '../src/io/engine.js';
import { UdpBind } from '../src/io/udp-bind.js';
import { systemRng, wallClock } from '../src/io/clock.js';
import type { BenchRow } from './common.js';

const run = promisify(execFile);
const WALL = 1.7e12;

interface KeyPair {
  priv: Uint8Array;
  pub: Uint8Array;
}

export function keys(crypto: CryptoProvider, rng: SeededRng, n: number): KeyPair[] {
  return Array.from({ length: n }, () => {
    const priv = generatePrivateKey(rng);
    return { priv, pub: publicKeyFromPrivate(crypto, priv) };
  });
}

/** 10.x.y.z/32 for peer i (i < 2^24), skipping .0.0.1 and .0.0.2 used by the live pair. */
const peerIp = (i: number): string => `10.${((i + 16) >> 16) & 255}.${((i + 16) >> 8) & 255}.${(i + 16) & 255}`;

/** One packet A -> B, with `idle` more peers configured on B: a step to time. */
export function receiveSetup(crypto: CryptoProvider, idleKeys: KeyPair[], idle: number): () => void {
  const rng = new SeededRng(2);
  const ka = generatePrivateKey(rng);
  const kb = generatePrivateKey(rng);
  const a = new Device({ privateKey: ka, crypto, rng, wallClock: () => WALL });
  const b = new Device({ privateKey: kb, crypto, rng, wallClock: () => WALL });
  const ea = { address: '192.0.2.1', port: 1 };
  const eb = { address: '192.0.2.2', port: 2 };
  a.addPeer({ publicKey: publicKeyFromPrivate(crypto, kb), endpoint: eb, allowedIps: [parsePrefix('10.0.0.2/32')!] });
  for (let i = 0; i < idle; i++) {
    b.addPeer({ publicKey: idleKeys[i]!.pub, endpoint: { address: '198.51.100.1', port: 1024 + (i % 60000) }, allowedIps: [parsePrefix(`${peerIp(i)}/32`)!], persistentKeepalive: 25 });
  }
  b.addPeer({ publicKey: publicKeyFromPrivate(crypto, ka), endpoint: ea, allowedIps: [parsePrefix('10.0.0.1/32')!], persistentKeepalive: 25 });
  const mk = (): Uint8Array => {
    const p = allocPacket(1420, WG_HEADROOM, WG_TAILROOM);
    p[0] = 0x45;
    p[2] = 1420 >> 8;
    p[3] = 1420 & 0xff;
    p.set([10, 0, 0, 1], 12);
    p.set([10, 0, 0, 2], 16);
    return p;
  };
  let now = 0;
  a.handlePacket(now, mk());
  for (let i = 0; i < 4; i++) {
    for (let d = a.pollTransmit(); d; d = a.pollTransmit()) b.handleDatagram(now, d.data, ea);
    for (let d = b.pollTransmit(); d; d = b.pollTransmit()) a.handleDatagram(now, d.data, eb);
  }
  while (b.pollPacket());
  // Every idle peer has deadlines, as after a restart: an initiation sent (its retry timer)
  // and the persistent keepalive.
  for (const p of b.peers()) if (p.current === undefined) b.initiateHandshake(now, p);
  while (b.pollTransmit());
  const pkt = mk();
  const template = pkt.slice();
  const step = (): void => {
    now += 0.001; // 1 µs of virtual time per packet: no timer comes due while measuring
    pkt.set(template);
    a.handlePacket(now, pkt);
    const d = a.pollTransmit()!;
    b.receiveDatagram(now, d.data, ea);
    b.pollPacket();
    b.pollTimeout();
    a.pollTimeout();
  };
  for (let i = 0; i < 2000; i++) step();
  if (idle > 0 && b.timerEntries < idle) throw new Error('the idle peers have no timers');
  return step;
}

/**
 * µs per packet for each setup: rounds that take turns between the setups, the best round
 * each. No forced GC between rounds: after a full GC of a 50k-peer heap (~180 MB) the next
 * rounds ran 3-4× slower (the sweeping of that heap competing with them), which measured
 * the forced GC, not the peer count.
 */
export function receiveCosts(steps: (() => void)[]): number[] {
  const best = steps.map(() => Infinity);
  for (let r = 0, rounds = Number(process.env.WGNET_BENCH_ROUNDS ?? 15); r < rounds; r++) {
    steps.forEach((step, i) => {
      const n = 2000;
      const t0 = performance.now();
      for (let k = 0; k < n; k++) step();
      best[i] = Math.min(best[i]!, ((performance.now() - t0) * 1000) / n);
    });
  }
  return best;
}

function startDevice(crypto: CryptoProvider, server: KeyPair, peers: KeyPair[]): { device: Device; ms: number } {
  const rng = new SeededRng(3);
  const t0 = performance.now();
  const device = new Device({ privateKey: server.priv, crypto, rng, wallClock: () => WALL });
  for (let i = 0; i < peers.length; i++) {
    device.addPeer({ publicKey: peers[i]!.pub, endpoint: { address: '198.51.100.1', port: 1024 + (i % 60000) }, allowedIps: [parsePrefix(`${peerIp(i)}/32`)!] });
  }
  return { device, ms: performance.now() - t0 };
}

function hostOf(device: Device): UapiHost {
  return { device, listenPort: () => 0, setListenPort: () => {}, fwmark: () => 0, setFwmark: () => {} };
}

/** Handshake responses per second: fresh initiations from `clients` distinct configured peers. */
function handshakeRate(crypto: CryptoProvider, clientKeys: KeyPair[], underLoad: boolean): { rate: number; cookies: number } {
  const rng = new SeededRng(4);
  const server = keys(crypto, rng, 1)[0]!;
  let wall = WALL;
  const srv = new Device({ privateKey: server.priv, crypto, rng, wallClock: () => wall, ...(underLoad ? { underLoadBacklog: 0 } : {}) });
  const se = { address: '192.0.2.200', port: 51820 };
  const clients = clientKeys.map((k, i) => {
    const d = new Device({ privateKey: k.priv, crypto, rng, wallClock: () => wall });
    const peer = d.addPeer({ publicKey: server.pub, endpoint: se });
    srv.addPeer({ publicKey: k.pub, allowedIps: [parsePrefix(`${peerIp(i)}/32`)!] });
    return { d, peer, from: { address: `198.51.${(i >> 8) & 255}.${i & 255}`, port: 40000 } };
  });
  let now = 0;
  let answered = 0;
  let cookies = 0;
  let ms = 0;
  for (let round = 0; round < 3; round++) {
    now += 6000;
    wall += 6000;
    const inits = clients.map((c) => {
      c.d.initiateHandshake(now, c.peer);
      return c.d.pollTransmit()!.data;
    });
    const t0 = performance.now();
    for (let i = 0; i < inits.length; i++) srv.handleDatagram(now, inits[i]!, clients[i]!.from);
    for (let d = srv.pollTransmit(); d; d = srv.pollTransmit()) {
      if (d.data[0] === 2) answered++;
      else if (d.data[0] === 3) cookies++;
    }
    ms += performance.now() - t0;
  }
  return { rate: ((underLoad ? cookies : answered) * 1000) / ms, cookies };
}

async function waitFor(path: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (existsSync(path)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** `wg setconf` then `wg show dump` against an interface's UAPI socket; ms each, best of 3 for show. */
async function wgTimes(name: string, conf: string): Promise<{ setconf: number; show: number; peers: number }> {
  const setconf = await timed(() => run('wg', ['setconf', name, conf]));
  let show = Infinity;
  let peers = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const { stdout } = await run('wg', ['show', name, 'dump'], { maxBuffer: 256 * 1024 * 1024 });
    show = Math.min(show, performance.now() - t0);
    peers = stdout.split('\n').filter((l) => l.length > 0).length - 1;
  }
  return { setconf, show, peers };
}

async function uapiComparison(crypto: CryptoProvider, server: KeyPair, peers: KeyPair[]): Promise<BenchRow[] | string> {
  if (process.getuid?.() !== 0 || !existsSync('/dev/net/tun')) return 'needs root and /dev/net/tun';
  try {
    await run('wg', ['--version']);
    await run('wireguard-go', ['--version']);
  } catch {
    return 'needs wg and wireguard-go';
  }
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-peers-'));
  const conf = join(dir, 'wg.conf');
  let text = `[Interface]\nPrivateKey = ${toBase64(server.priv)}\n`;
  for (let i = 0; i < peers.length; i++) text += `\n[Peer]\nPublicKey = ${toBase64(peers[i]!.pub)}\nAllowedIPs = ${peerIp(i)}/32\nEndpoint = 198.51.100.1:${1024 + (i % 60000)}\n`;
  writeFileSync(conf, text);
  const tag = `${process.pid % 10000}`;
  const goName = `wgbgo${tag}`;
  const ourName = `wgbn${tag}`;
  const rows: BenchRow[] = [];
  const go = spawn('wireguard-go', ['-f', goName], { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'error' } });
  let srv: UapiServer | undefined;
  try {
    if (!(await waitFor(`/var/run/wireguard/${goName}.sock`, 5000))) return 'wireguard-go did not start';
    const goT = await wgTimes(goName, conf);
    const device = new Device({ crypto, rng: new SeededRng(5), wallClock: () => WALL });
    // A 10k-peer setconf is ~2.5 MB: above the server's default request bound (1 MiB).
    srv = await UapiServer.listen(ourName, hostOf(device), () => {}, undefined, { maxRequestBytes: 64 << 20 });
    const ourT = await wgTimes(ourName, conf);
    if (ourT.peers !== peers.length || goT.peers !== peers.length) return `peer counts ${ourT.peers} / ${goT.peers}`;
    rows.push({ name: `wg setconf, ${peers.length} peers (wgnet UAPI)`, value: ourT.setconf, unit: 'ms', ref: 'wireguard-go', ratio: ourT.setconf / goT.setconf });
    rows.push({ name: `  wireguard-go`, value: goT.setconf, unit: 'ms' });
    rows.push({ name: `wg show dump, ${peers.length} peers (wgnet UAPI)`, value: ourT.show, unit: 'ms', ref: 'wireguard-go', ratio: ourT.show / goT.show });
    rows.push({ name: `  wireguard-go`, value: goT.show, unit: 'ms' });
  } finally {
    go.kill('SIGTERM');
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

async function receiveCostInChild(peers: number): Promise<number> {
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), 'receive', String(peers)], { maxBuffer: 1 << 20 });
  return Number(stdout.trim().split('\n').pop());
}

/** The wgnet side of the loopback handshake row, in its own process: prints `ready PORT`. */
async function serveHandshakes(file: string): Promise<void> {
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as { priv: string; peers: string[] };
  const device = new Device({ privateKey: fromHex(cfg.priv)!, crypto: getCryptoProvider('auto'), rng: systemRng, wallClock });
  cfg.peers.forEach((pk, i) => device.addPeer({ publicKey: fromHex(pk)!, allowedIps: [parsePrefix(`${peerIp(i)}/32`)!] }));
  // Echoes every IPv4 packet to its sender (source and destination swapped): the live peer's "ping".
  const echo: Uint8Array[] = [];
  const layer: PacketLayer = {
    handleInput: (_now, p) => {
      if (p.length < 20 || p[0]! >> 4 !== 4) return;
      const q = allocPacket(p.length, WG_HEADROOM, WG_TAILROOM);
      q.set(p);
      q.set(p.subarray(16, 20), 12);
      q.set(p.subarray(12, 16), 16);
      echo.push(q);
    },
    pollTransmit: () => echo.shift(),
    handleTimeout: () => {},
    pollTimeout: () => undefined,
    pollEvent: () => undefined,
  };
  const engine = new Engine(device, layer, undefined);
  engine.bind = await UdpBind.open({ port: 0, host4: '127.0.0.1', onMessage: (d, a, p) => engine.receive(d, a, p), onBatchEnd: () => engine.pump() });
  process.stdout.write(`ready ${engine.bind.port}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

/**
 * Responses per second from a server on 127.0.0.1:`port`: pre-made initiations (each client's
 * in timestamp order), `window` in flight, the next sent when a response or cookie reply comes
 * back or after 200 ms without one. Counted after a 0.5 s warm-up, for `ms`.
 */
async function closedLoopHandshakes(port: number, inits: { data: Uint8Array; client: number }[], window: number, ms: number): Promise<{ rate: number; cookies: number }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  let next = 0;
  let responses = 0;
  let cookies = 0;
  let counting = false;
  let last = performance.now();
  const send = (): void => {
    if (next < inits.length) sock.send(inits[next++]!.data, port, '127.0.0.1');
  };
  sock.on('message', (m) => {
    last = performance.now();
    if (counting) {
      if (m[0] === 2) responses++;
      else if (m[0] === 3) cookies++;
    }
    send();
  });
  for (let i = 0; i < window; i++) send();
  const stall = setInterval(() => {
    if (performance.now() - last > 200) for (let i = 0; i < window; i++) send();
  }, 100);
  await new Promise((r) => setTimeout(r, 500));
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  counting = false;
  const secs = (performance.now() - t0) / 1000;
  clearInterval(stall);
  sock.close();
  if (next >= inits.length) throw new Error(`ran out of initiations (${responses} responses, ${cookies} cookie replies in ${secs.toFixed(1)} s)`);
  return { rate: responses / secs, cookies };
}

/**
 * An established peer's round trips (a packet echoed by the server's engine) while other
 * clients flood the server with `floodRate` initiations per second, next to the same with
 * no flood: p50 / p99 in ms and the share lost.
 */
async function floodLatency(port: number, serverPub: Uint8Array, live: KeyPair, flood: Uint8Array[], floodRate: number, ms: number, wallClock: () => number): Promise<{ p50: number; p99: number; lost: number; cookies: number }> {
  const crypto = getCryptoProvider('auto');
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const fsock = dgram.createSocket('udp4');
  await new Promise<void>((r) => fsock.bind(0, '127.0.0.1', r));
  let cookies = 0;
  fsock.on('message', (m) => void (m[0] === 3 && cookies++));
  const t0 = performance.now();
  const now = (): number => performance.now() - t0 + 1;
  const dev = new Device({ privateKey: live.priv, crypto, rng: systemRng, wallClock });
  const se = { address: '127.0.0.1', port };
  const peer = dev.addPeer({ publicKey: serverPub, endpoint: se, allowedIps: [parsePrefix('0.0.0.0/0')!] });
  const sentAt = new Map<number, number>();
  const rtts: number[] = [];
  const flush = (): void => {
    for (let d = dev.pollTransmit(); d; d = dev.pollTransmit()) sock.send(d.data, d.to.port, d.to.address);
  };
  sock.on('message', (m, r) => {
    dev.handleDatagram(now(), new Uint8Array(m.buffer, m.byteOffset, m.length), { address: r.address, port: r.port });
    for (let p = dev.pollPacket(); p; p = dev.pollPacket()) {
      const seq = new DataView(p.buffer, p.byteOffset).getUint32(20);
      const at = sentAt.get(seq);
      if (at !== undefined) {
        rtts.push(performance.now() - at);
        sentAt.delete(seq);
      }
    }
    flush();
  });
  const ping = (seq: number): void => {
    const p = allocPacket(64, WG_HEADROOM, WG_TAILROOM);
    p[0] = 0x45;
    p[3] = 64;
    p[9] = 17;
    p.set([10, 0, 0, 16], 12);
    p.set([10, 0, 0, 1], 16);
    new DataView(p.buffer, p.byteOffset).setUint32(20, seq);
    sentAt.set(seq, performance.now());
    dev.handlePacket(now(), p);
    flush();
  };
  // The session first.
  dev.initiateHandshake(now(), peer);
  flush();
  for (let i = 0; i < 50 && dev.stats.handshakesCompleted === 0; i++) await new Promise((r) => setTimeout(r, 20));
  if (dev.stats.handshakesCompleted === 0) {
    sock.close(); // open sockets would keep the bench process alive after its last row
    fsock.close();
    throw new Error('no session with the server');
  }
  ping(0);
  await new Promise((r) => setTimeout(r, 100));
  rtts.length = 0;
  sentAt.clear();
  let f = 0;
  const tick = 5;
  const floodTimer = floodRate > 0 ? setInterval(() => {
    for (let i = 0; i < (floodRate * tick) / 1000 && f < flood.length; i++) fsock.send(flood[f++]!, port, '127.0.0.1');
  }, tick) : undefined;
  let seq = 1;
  const pinger = setInterval(() => ping(seq++), 10);
  await new Promise((r) => setTimeout(r, ms));
  clearInterval(pinger);
  if (floodTimer) clearInterval(floodTimer);
  await new Promise((r) => setTimeout(r, 300));
  sock.close();
  fsock.close();
  const sorted = rtts.sort((a, b) => a - b);
  const q = (x: number): number => sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))] ?? NaN;
  return { p50: q(0.5), p99: q(0.99), lost: 1 - rtts.length / (seq - 1), cookies };
}

export async function handshakeComparison(crypto: CryptoProvider, clientKeys: KeyPair[]): Promise<BenchRow[] | string> {
  if (process.getuid?.() !== 0 || !existsSync('/dev/net/tun')) return 'needs root and /dev/net/tun';
  const rng = new SeededRng(6);
  const server = keys(crypto, rng, 1)[0]!;
  // Initiations made beforehand, so the load generator costs a sendto per message: each
  // client's in order of its TAI64N timestamps, clients interleaved.
  let wall = Date.now();
  const clients = clientKeys.map((k) => {
    const d = new Device({ privateKey: k.priv, crypto, rng, wallClock: () => wall });
    return { d, peer: d.addPeer({ publicKey: server.pub, endpoint: { address: '127.0.0.1', port: 1 } }) };
  });
  let vnow = 0;
  const make = (rounds: number): { data: Uint8Array; client: number }[] => {
    const out: { data: Uint8Array; client: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      vnow += 6000;
      clients.forEach((c, i) => {
        wall += 1;
        c.d.initiateHandshake(vnow, c.peer);
        out.push({ data: c.d.pollTransmit()!.data, client: i });
      });
    }
    return out;
  };
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-hs-'));
  const rows: BenchRow[] = [];
  const go = { name: `wgbh${process.pid % 10000}`, proc: undefined as ReturnType<typeof spawn> | undefined };
  let ours: ReturnType<typeof spawn> | undefined;
  try {
    // wgnet
    const file = join(dir, 'keys.json');
    writeFileSync(file, JSON.stringify({ priv: toHex(server.priv), peers: clientKeys.map((k) => toHex(k.pub)) }));
    ours = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'serve-handshakes', file], { stdio: ['pipe', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: ours!.stdout! }).once('line', resolve);
      ours!.once('exit', () => reject(new Error('wgnet server exited')));
    });
    const ourPort = Number(line.split(' ')[1]);
    const ourRes = await closedLoopHandshakes(ourPort, make(24), 64, 2000);
    // An established peer's round trips with no flood, then during a 12,800/s flood.
    const floodRate = 12_800;
    const floodMsgs = make(Math.ceil((floodRate * 3.5) / clientKeys.length)).map((x) => x.data);
    // The made initiations carry timestamps ahead of the real clock (1 ms per message), so the
    // live peer's clock runs after them: an older TAI64N would be refused as a replay (§5.1).
    const liveClock = (): number => (wall += 20);
    const quiet = await floodLatency(ourPort, server.pub, clientKeys[0]!, [], 0, 2000, liveClock);
    const loud = await floodLatency(ourPort, server.pub, clientKeys[0]!, floodMsgs, floodRate, 3000, liveClock);
    ours.stdin!.end();
    // wireguard-go: same server key, same peers, its own listen port
    const conf = join(dir, 'go.conf');
    let text = `[Interface]\nPrivateKey = ${toBase64(server.priv)}\nListenPort = ${ourPort + 1}\n`;
    clientKeys.forEach((k, i) => (text += `\n[Peer]\nPublicKey = ${toBase64(k.pub)}\nAllowedIPs = ${peerIp(i)}/32\n`));
    writeFileSync(conf, text);
    go.proc = spawn('wireguard-go', ['-f', go.name], { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'error' } });
    if (!(await waitFor(`/var/run/wireguard/${go.name}.sock`, 5000))) return 'wireguard-go did not start';
    await run('wg', ['setconf', go.name, conf]);
    const goRes = await closedLoopHandshakes(ourPort + 1, make(24), 64, 2000);
    rows.push({ name: `handshake responses/s over loopback, 64 in flight (wgnet)`, value: ourRes.rate, unit: '/s', ref: 'wireguard-go', ratio: ourRes.rate / goRes.rate });
    rows.push({ name: `  wireguard-go`, value: goRes.rate, unit: '/s' });
    const f = (x: number): string => x.toFixed(x < 10 ? 2 : 0);
    rows.push({ name: `live peer RTT p50 / p99, no flood (wgnet): ${f(quiet.p50)} / ${f(quiet.p99)} ms, lost ${(quiet.lost * 100).toFixed(1)} %`, value: quiet.p99, unit: 'ms p99' });
    rows.push({ name: `  same, 12,800 initiations/s flood: ${f(loud.p50)} / ${f(loud.p99)} ms, lost ${(loud.lost * 100).toFixed(1)} %, ${loud.cookies} cookie replies`, value: loud.p99, unit: 'ms p99', ref: 'no flood', ratio: loud.p99 / quiet.p99 });
    if (ourRes.cookies + goRes.cookies > 0) rows.push({ name: `  cookie replies (wgnet / wireguard-go): ${ourRes.cookies} / ${goRes.cookies}`, value: 0, unit: '' });
  } finally {
    ours?.kill();
    go.proc?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export async function benchPeers(): Promise<BenchRow[]> {
  const crypto = getCryptoProvider('auto');
  const rng = new SeededRng(1);
  const rows: BenchRow[] = [];
  const counts = (process.env.WGNET_BENCH_PEERS ?? '1,1000,10000,50000').split(',').map(Number);
  const pool = keys(crypto, rng, 10_000);

  // Each count in its own process, twice, the best of each: in one process the setup made
  // second ran up to 2× slower whatever its size (V8's feedback from the first), which
  // measured the order, not the peer count.
  const costs = counts.map(() => Infinity);
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < counts.length; i++) costs[i] = Math.min(costs[i]!, await receiveCostInChild(counts[i]!));
  }
  counts.forEach((n, i) => {
    rows.push({ name: `receive, 1420 B, ${n} peer${n === 1 ? '' : 's'} configured`, value: costs[i]!, unit: 'µs/pkt', ref: `${counts[0]} peer`, ratio: costs[i]! / costs[0]! });
  });

  const server = keys(crypto, rng, 1)[0]!;
  const tenK = pool.slice(0, 10_000);
  const { device, ms } = startDevice(crypto, server, tenK);
  rows.push({ name: `start: Device + addPeer × ${tenK.length}`, value: ms, unit: 'ms' });
  const host = hostOf(device);
  uapiGet(host);
  let get = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    uapiGet(host);
    get = Math.min(get, performance.now() - t0);
  }
  rows.push({ name: `uapiGet, ${tenK.length} peers (in process)`, value: get, unit: 'ms' });

  const cmp = await uapiComparison(crypto, server, tenK).catch((err: Error) => err.message.split('\n')[0]!);
  if (typeof cmp === 'string') rows.push({ name: `wg setconf / show vs wireguard-go: skipped (${cmp})`, value: 0, unit: '' });
  else rows.push(...cmp);

  const clients = pool.slice(0, 1000);
  const hs = handshakeRate(crypto, clients, false);
  rows.push({ name: `handshake responses/s, 1,000 configured peers (${crypto.name})`, value: hs.rate, unit: '/s' });
  const cookies = handshakeRate(crypto, clients, true);
  rows.push({ name: `cookie replies/s under load, 1,000 peers (${crypto.name})`, value: cookies.rate, unit: '/s', ref: 'responses', ratio: cookies.rate / hs.rate });
  const loop = await handshakeComparison(crypto, clients).catch((err: Error) => err.message.split('\n')[0]!);
  if (typeof loop === 'string') rows.push({ name: `handshakes over loopback vs wireguard-go: skipped (${loop})`, value: 0, unit: '' });
  else rows.push(...loop);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv[2] === 'receive') {
    const n = Number(process.argv[3]);
    const crypto = getCryptoProvider('auto');
    const pool = keys(crypto, new SeededRng(1), n);
    console.log(receiveCosts([receiveSetup(crypto, pool, n - 1)])[0]);
  } else if (process.argv[2] === 'serve-handshakes') await serveHandshakes(process.argv[3]!);
  else for (const r of await benchPeers()) console.log(r);
}
