/**
 * Congestion control through whole tunnels, wgnet next to the kernel, in the same run (issue 14).
 *
 *   root namespace                                         namespace S (test/interop/harness.ts)
 *   wgnet tunnels (CUBIC, BBR) ──lo──┐                      wireguard-go 10.77.N.1, kernel TCP:
 *                                    ├─ relay ── veth ──▶   iperf3 servers, a sink (bench/cc-sink.ts),
 *   namespace C: wireguard-go TUN ───┘  (bench/cc-relay.ts,  a source (SOURCE_PY below)
 *   10.77.N.3, iperf3 -C cubic|bbr       its own process)
 *
 * Every outer datagram of both clients goes through the same relay, which drops, holds back
 * (reorders) and delays them (nftables can only drop; this kernel has no sch_netem).
 *
 * 1. Lossy paths (no added delay; 0 / 1 / 3 % loss each way, 3 % + 25 % held back 5 ms):
 *    upload: wgnet CUBIC, CUBIC paced, BBR -> kernel sink, next to kernel CUBIC and BBR
 *    (iperf3 -C from C over wireguard-go TUN); download: the kernel in S sends with CUBIC or
 *    BBR to wgnet and to the kernel in C. Goodput measured at the receiver, SECONDS each.
 * 2. A bottleneck: tc tbf on the veth into S (upload direction), 50 Mbit/s with a one-BDP
 *    queue, and 10 ms each way in the relay (20 ms RTT). Two uploads share it for 10 s
 *    (wgnet vs kernel, and kernel vs kernel for reference): each flow's goodput and share.
 *    Then ping from the root namespace to S across the same tbf queue while one upload
 *    runs: the queueing delay each sender builds (the relay's 20 ms is not on ping's path).
 *
 * Needs root, wireguard-go, wg, iperf3, tc (tbf) and kernel bbr/cubic; otherwise one
 * 'skipped (why)' row. Run: npm run bench -- tcp-cc, or
 * node --expose-gc --import tsx bench/tcp-cc.ts [ROUNDS] (WGNET_TCP_CC=lossy|fair for one part;
 * lossyRows lists the variables that narrow the lossy part).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../src/index.js';
import { setLossBasedPacing } from '../src/netstack/tcp/congestion.js';
import { interopUnavailable, startWgGo, genKeyPair, shAsync, sh, type WgGoPeer } from '../test/interop/harness.js';
import type { LinkShape } from './cc-relay.js';
import type { BenchRow } from './common.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SINK = 9000;
const SOURCE = 9001;
const SECONDS = 5;
const FAIR_SECONDS = 10;
/**
 * The bottleneck: rate, base RTT from the relay, queue of one BDP. 50 Mbit/s rather than 100:
 * on this shared 2-core machine two flows through the relay and two wireguard-go could not
 * always fill 100 (71-77 of 92 Mbit/s in loaded runs), and a flow held back by CPU says
 * nothing about its congestion control. WGNET_TCP_CC_MBIT overrides it.
 */
const BOTTLENECK = { mbit: Number(process.env.WGNET_TCP_CC_MBIT ?? 50), oneWayMs: 10 };
const BDP = Math.round((BOTTLENECK.mbit * 1e6 * (2 * BOTTLENECK.oneWayMs)) / 1000 / 8);
/**
 * The most TCP payload the bottleneck carries: 1368 B (MSS 1380 less 12 B of timestamps)
 * per 1494 B that tbf counts (+ 32 B WireGuard, 28 B UDP/IPv4, 14 B Ethernet on the veth).
 */
const FULL = (BOTTLENECK.mbit * 1368) / 1494;

type Kcc = 'cubic' | 'bbr';

/**
 * The download source in S. Python, because Node cannot set TCP_CONGESTION, and the
 * namespace's default cannot be CUBIC: outside the initial namespace only the algorithms
 * in net.ipv4.tcp_allowed_congestion_control may be the default (here 'reno bbr').
 * Reads "<seconds> <cc>", sends with that congestion control for that long, then FIN.
 */
const SOURCE_PY = `
import socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
print('ready', flush=True)
buf = b'\\x07' * 65536
def one(c):
    line = b''
    while not line.endswith(b'\\n'):
        b = c.recv(64)
        if not b: c.close(); return
        line += b
    secs, cc = line.split()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc)
    until = time.monotonic() + float(secs)
    while time.monotonic() < until: c.sendall(buf)
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536): pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=one, args=(c,), daemon=True).start()
`;
type Wcc = 'cubic' | 'cubic-paced' | 'bbr';

const PATHS: { name: string; loss: number; reorder: number }[] = [
  { name: 'no loss', loss: 0, reorder: 0 },
  { name: '1 % loss', loss: 0.01, reorder: 0 },
  { name: '3 % loss', loss: 0.03, reorder: 0 },
  { name: '3 % loss + 25 % reordered 5 ms', loss: 0.03, reorder: 0.25 },
];

function unavailable(): string | undefined {
  const why = interopUnavailable();
  if (why) return why;
  for (const bin of ['iperf3', 'tc', 'ping']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status !== 0) return `needs '${bin}' (Debian packages iperf3, iproute2, iputils-ping)`;
  }
  const have = readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').split(/\s+/);
  for (const cc of ['cubic', 'bbr']) if (!have.includes(cc)) return `needs the kernel's tcp_${cc} (modprobe tcp_${cc})`;
  return undefined;
}

/** Lines from a child's stdout, awaited one at a time. */
class Lines {
  private buf = '';
  private readonly queue: string[] = [];
  private waiter: ((l: string) => void) | undefined;
  constructor(stream: NodeJS.ReadableStream) {
    stream.on('data', (d: Buffer) => {
      this.buf += d.toString();
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const w = this.waiter;
        this.waiter = undefined;
        if (w) w(line);
        else this.queue.push(line);
      }
    });
  }
  next(ms = 15_000): Promise<string> {
    const l = this.queue.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no answer from child process')), ms);
      this.waiter = (x) => {
        clearTimeout(t);
        resolve(x);
      };
    });
  }
}

interface Receipt {
  /** Receiver-side goodput over the whole transfer. */
  mbps: number;
  /** Bytes received by `ms` after the first byte (sink reports every 250 ms). */
  samples: [number, number][];
}

function bytesBy(samples: [number, number][], ms: number): number {
  let best = samples[0]!;
  for (const s of samples) if (Math.abs(s[0] - ms) < Math.abs(best[0] - ms)) best = s;
  return (best[1] * ms) / best[0];
}

class Lab {
  private relayLines!: Lines;
  private relay!: ChildProcess;
  relayPort = 0;
  tunnels = new Map<'cubic' | 'bbr', Tunnel>();
  client: WgGoPeer | undefined;
  private vethRoot = '';
  private bottleneckOn = false;

  private constructor(readonly peer: WgGoPeer) {}

  static async start(): Promise<Lab> {
    const lab = new Lab(await startWgGo());
    try {
      await lab.setup();
      return lab;
    } catch (err) {
      await lab.close();
      throw err;
    }
  }

  private get n(): string {
    return this.peer.inner4.split('.')[2]!;
  }

  private async setup(): Promise<void> {
    const { peer } = this;
    const n = this.n;
    this.vethRoot = sh('ip', ['-o', 'addr', 'show', 'to', peer.outer4.replace(/\.2$/, '.1')]).split(/\s+/)[1]!;

    this.relay = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/cc-relay.ts'), peer.outer4, String(peer.listenPort)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    this.relayLines = new Lines(this.relay.stdout!);
    this.relayPort = Number(/ready (\d+)/.exec(await this.relayLines.next(30_000))?.[1]);

    const sink = peer.spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/cc-sink.ts'), peer.inner4, String(SINK)]);
    if ((await new Lines(sink.stdout!).next(30_000)) !== 'ready') throw new Error('cc-sink did not start');
    const source = peer.spawn('python3', ['-u', '-c', SOURCE_PY, peer.inner4, String(SOURCE)]);
    if ((await new Lines(source.stdout!).next(30_000)) !== 'ready') throw new Error('the download source did not start');
    for (const port of [5201, 5202]) peer.spawn('iperf3', ['-s', '-B', peer.inner4, '-p', String(port)]);

    // wgnet: one tunnel per congestion control, 10.77.N.2 (CUBIC) and 10.77.N.4 (BBR).
    for (const [cc, host] of [['cubic', 2], ['bbr', 4]] as const) {
      const k = genKeyPair();
      peer.exec('wg', ['set', peer.ifname, 'peer', k.publicKey, 'allowed-ips', `10.77.${n}.${host}/32`]);
      const t = await Tunnel.create(`[Interface]\nPrivateKey = ${k.privateKey}\nAddress = 10.77.${n}.${host}/24\n\n[Peer]\nPublicKey = ${peer.publicKey}\nAllowedIPs = 10.77.${n}.0/24\nEndpoint = 127.0.0.1:${this.relayPort}\n`, { congestionControl: cc });
      this.tunnels.set(cc, t);
      for (let i = 0; ; i++) {
        try {
          await t.ping(peer.inner4, { timeout: 5000 });
          break;
        } catch (err) {
          if (i === 3) throw err;
        }
      }
    }

    // The kernel client: a second wireguard-go namespace (the harness locks its subnet, so no
    // other test's namespace collides with it) made a client of S: 10.77.N.3, through the relay.
    const c = (this.client = await startWgGo());
    peer.exec('wg', ['set', peer.ifname, 'peer', c.publicKey, 'allowed-ips', `10.77.${n}.3/32`]);
    c.exec('wg', ['set', c.ifname, 'peer', peer.publicKey, 'endpoint', `${c.outer4.replace(/\.2$/, '.1')}:${this.relayPort}`, 'allowed-ips', `10.77.${n}.0/24`]);
    c.exec('ip', ['addr', 'add', `10.77.${n}.3/24`, 'dev', c.ifname]);
    // On a loaded machine a handshake can take a while: a reply within 20 s will do.
    for (let i = 0; !/, 1 received/.test(await c.run('ping', ['-c', '1', '-W', '1', peer.inner4], { allowFail: true })); i++) {
      if (i === 20) throw new Error('the kernel client never reached S through the relay');
    }
  }

  /** The relay's loss, reordering (held back 5 ms) and one-way delay; the same seed each time. */
  async shape(s: Pick<LinkShape, 'loss' | 'reorder' | 'delayMs'>): Promise<void> {
    const full: LinkShape = { ...s, holdMs: 5, seed: 7 };
    this.relay.stdin!.write(JSON.stringify(full) + '\n');
    if ((await this.relayLines.next()) !== 'ok') throw new Error('relay did not take the new shape');
  }

  /** tbf on the root end of S's veth: what goes into S (uploads) queues there, pings too. */
  bottleneck(on: boolean): void {
    if (on === this.bottleneckOn) return;
    if (on) sh('tc', ['qdisc', 'add', 'dev', this.vethRoot, 'root', 'tbf', 'rate', `${BOTTLENECK.mbit}mbit`, 'burst', '32kb', 'limit', String(BDP)]);
    else sh('tc', ['qdisc', 'del', 'dev', this.vethRoot, 'root'], { allowFail: true });
    this.bottleneckOn = on;
  }

  /** wgnet -> kernel sink in S for `seconds`: goodput at the receiver. */
  async wgnetUpload(cc: Wcc, seconds: number): Promise<Receipt> {
    const t = this.tunnels.get(cc === 'bbr' ? 'bbr' : 'cubic')!;
    setLossBasedPacing(cc === 'cubic-paced');
    const before = VERBOSE ? t.stats().tcp?.counters : undefined;
    try {
      const s = t.connect(SINK, this.peer.inner4);
      await new Promise<void>((resolve, reject) => {
        s.once('connect', resolve);
        s.once('error', reject);
      });
      const samples: [number, number][] = [];
      let done: [number, number] | undefined;
      let text = '';
      const finished = new Promise<void>((resolve, reject) => {
        s.on('data', (d: Buffer) => {
          text += d.toString();
          for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n')) {
            const f = text.slice(0, i).split(' ');
            text = text.slice(i + 1);
            if (f[0] === 'end') {
              done = [Number(f[1]), Number(f[2])];
              resolve();
            } else samples.push([Number(f[0]), Number(f[1])]);
          }
        });
        s.once('error', reject);
        s.once('close', () => (done ? resolve() : reject(new Error('sink closed without a report'))));
      });
      const chunk = Buffer.alloc(256 * 1024, 3);
      const until = performance.now() + seconds * 1000;
      let sent = 0;
      while (performance.now() < until) {
        sent += chunk.length;
        if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
      }
      s.end();
      await withTimeout(finished, 120_000, 'upload report');
      s.destroy();
      const [ms, bytes] = done!;
      if (bytes !== sent) throw new Error(`sink got ${bytes} of ${sent} bytes`);
      samples.push([ms, bytes]);
      const after = VERBOSE ? t.stats().tcp?.counters : undefined;
      if (before && after) {
        const d = (k: keyof typeof after): number => after[k] - before[k];
        const keys = ['txSegments', 'fastRetransmits', 'lostRetransmits', 'dsackReceived', 'spuriousRecoveries', 'tailLossProbes', 'rtoExpired'] as const;
        console.error(`wgnet ${cc} ${f0((bytes * 8) / 1e3 / ms)} Mbit/s: ${keys.map((k) => `${k} ${d(k)}`).join(', ')}`);
      }
      return { mbps: (bytes * 8) / 1e3 / ms, samples };
    } finally {
      setLossBasedPacing(false);
    }
  }

  /** Kernel source in S with `cc` -> wgnet for `seconds`: goodput from the first byte to the FIN. */
  async wgnetDownload(cc: Kcc, seconds: number): Promise<number> {
    const s = this.tunnels.get('cubic')!.connect(SOURCE, this.peer.inner4);
    let n = 0;
    let first = 0;
    const done = new Promise<number>((resolve, reject) => {
      s.on('data', (d: Buffer) => {
        if (n === 0) first = performance.now();
        n += d.length;
      });
      s.once('end', () => resolve(performance.now()));
      s.once('error', reject);
    });
    s.write(`${seconds} ${cc}\n`);
    const end = await withTimeout(done, 120_000, 'download');
    if (n === 0) throw new Error(`the ${cc} source sent nothing`);
    s.destroy();
    return (n * 8) / 1e3 / (end - first);
  }

  /** Kernel TCP from C over wireguard-go, iperf3: receiver goodput and the sender's congestion control. */
  async iperf(cc: Kcc, seconds: number, opts: { reverse?: boolean; port?: number } = {}): Promise<number> {
    // A test that fails to start (the server still busy with the last one's teardown, a
    // control connection lost to the relay's drops) reports only `error`: try it again, twice.
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number }; sender_tcp_congestion?: string } } = {};
    for (let attempt = 0; attempt < 3; attempt++) {
      const out = await shAsync('ip', ['netns', 'exec', this.client!.ns, 'iperf3', '-c', this.peer.inner4, '-p', String(opts.port ?? 5201), '-t', String(seconds), '-C', cc, '-J', ...(opts.reverse ? ['-R'] : [])], { timeoutMs: (seconds + 60) * 1000, allowFail: true });
      try {
        j = JSON.parse(out) as typeof j;
      } catch {
        j = { error: out.slice(0, 200) };
      }
      if (j.end?.sum_received) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (!j.end?.sum_received) throw new Error(`iperf3 -C ${cc}: ${j.error ?? 'no result'}`);
    const used = j.end.sender_tcp_congestion;
    if (used && used !== cc) throw new Error(`iperf3 sender used ${used}, not ${cc}`);
    return j.end.sum_received.bits_per_second / 1e6;
  }

  /** ping from the root namespace to S across the bottleneck queue: RTTs (ms) of replies sent after `skipS`. */
  async ping(seconds: number, skipS: number): Promise<number[]> {
    const out = await shAsync('ping', ['-n', '-i', '0.1', '-c', String(seconds * 10), '-W', '2', this.peer.outer4], { allowFail: true, timeoutMs: (seconds + 10) * 1000 });
    const rtts: number[] = [];
    for (const m of out.matchAll(/icmp_seq=(\d+) .*time=([\d.]+) ms/g)) if (Number(m[1]) > skipS * 10) rtts.push(Number(m[2]));
    return rtts;
  }

  async close(): Promise<void> {
    setLossBasedPacing(false);
    for (const t of this.tunnels.values()) await t.close().catch(() => {});
    this.client?.close();
    if (this.relay) {
      this.relay.stdin!.end();
      this.relay.kill();
    }
    this.bottleneck(false);
    this.peer.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const f0 = (x: number): string => x.toFixed(x < 10 ? 1 : 0);
const span = (xs: number[]): string => {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return xs.length === 1 || f0(lo) === f0(hi) ? f0(lo) : `${f0(lo)}–${f0(hi)}`;
};
const mid = (xs: number[]): number => (Math.min(...xs) + Math.max(...xs)) / 2;

/** `rounds` measurements of each, interleaved so that each round compares like with like. */
async function repeat<K extends string>(rounds: number, fns: Record<K, () => Promise<number>>): Promise<Record<K, number[]>> {
  const out = {} as Record<K, number[]>;
  for (const k of Object.keys(fns) as K[]) out[k] = [];
  for (let i = 0; i < rounds; i++) for (const k of Object.keys(fns) as K[]) out[k].push(await fns[k]());
  return out;
}

/**
 * Narrowing a run for a quick comparison, all optional: WGNET_TCP_CC_PATH picks the lossy
 * paths whose name contains one of its comma-separated parts ('reordered,1 %');
 * WGNET_TCP_CC_BBR_ONLY=1 uploads with BBR only (kernel and wgnet, still alternating in
 * each round); WGNET_TCP_CC_DOWNLOAD=0 leaves out the downloads.
 */
const PATH_FILTER = process.env.WGNET_TCP_CC_PATH;
/** WGNET_TCP_CC_VERBOSE=1: each wgnet upload's TCP counters (retransmissions, D-SACKs, ...) on stderr. */
const VERBOSE = process.env.WGNET_TCP_CC_VERBOSE === '1';
const BBR_ONLY = process.env.WGNET_TCP_CC_BBR_ONLY === '1';
const DOWNLOADS = process.env.WGNET_TCP_CC_DOWNLOAD !== '0';

async function lossyRows(lab: Lab, rounds: number, rows: BenchRow[]): Promise<void> {
  lab.bottleneck(false);
  for (const p of PATHS) {
    if (PATH_FILTER && !PATH_FILTER.split(',').some((f) => p.name.includes(f))) continue;
    await lab.shape({ loss: p.loss, reorder: p.reorder, delayMs: 0 });
    const all: Record<string, () => Promise<number>> = {
      'kernel cubic': () => lab.iperf('cubic', SECONDS),
      'kernel bbr': () => lab.iperf('bbr', SECONDS),
      'wgnet cubic': async () => (await lab.wgnetUpload('cubic', SECONDS)).mbps,
      'wgnet cubic-paced': async () => (await lab.wgnetUpload('cubic-paced', SECONDS)).mbps,
      'wgnet bbr': async () => (await lab.wgnetUpload('bbr', SECONDS)).mbps,
    };
    const up: Record<string, number[]> = await repeat(rounds, BBR_ONLY ? { 'kernel bbr': all['kernel bbr']!, 'wgnet bbr': all['wgnet bbr']! } : all);
    for (const [who, ref] of [['kernel cubic', undefined], ['kernel bbr', undefined], ['wgnet cubic', 'kernel cubic'], ['wgnet cubic-paced', 'kernel cubic'], ['wgnet bbr', 'kernel bbr']] as const) {
      const v = up[who];
      if (!v) continue;
      const row: BenchRow = { name: `upload, ${p.name}: ${who} (${span(v)})`, value: mid(v), unit: 'Mbit/s' };
      if (ref) Object.assign(row, { ref: ref, ratio: mid(v) / mid(up[ref]!) });
      // Each round's own ratio: the machine's load drifts between rounds, less within one.
      if (ref) row.name += `, per round ${v.map((x, i) => (x / up[ref]![i]!).toFixed(2)).join(' ')}×`;
      rows.push(row);
    }
    if (!DOWNLOADS) continue;
    for (const cc of ['cubic', 'bbr'] as const) {
      const down = await repeat(rounds, {
        kernel: () => lab.iperf(cc, SECONDS, { reverse: true }),
        wgnet: () => lab.wgnetDownload(cc, SECONDS),
      });
      rows.push({ name: `download, ${p.name}: kernel ${cc} sender -> kernel receiver (${span(down.kernel)})`, value: mid(down.kernel), unit: 'Mbit/s' });
      rows.push({ name: `download, ${p.name}: kernel ${cc} sender -> wgnet (${span(down.wgnet)})`, value: mid(down.wgnet), unit: 'Mbit/s', ref: `kernel receiver`, ratio: mid(down.wgnet) / mid(down.kernel) });
    }
  }
  await lab.shape({ loss: 0, reorder: 0, delayMs: 0 });
}

async function fairRows(lab: Lab, rows: BenchRow[]): Promise<void> {
  await lab.shape({ loss: 0, reorder: 0, delayMs: BOTTLENECK.oneWayMs });
  lab.bottleneck(true);
  const where = `${BOTTLENECK.mbit} Mbit/s tbf, ${2 * BOTTLENECK.oneWayMs} ms RTT, ${Math.round(BDP / 1000)} kB queue`;
  const ms = FAIR_SECONDS * 1000;
  try {
    // Two flows started together for FAIR_SECONDS; each one's goodput at its receiver over that time.
    const wgnetFlow = (w: Wcc): (() => Promise<number>) => async () => {
      const r = await lab.wgnetUpload(w, FAIR_SECONDS + 0.5);
      return (bytesBy(r.samples, ms) * 8) / 1e3 / ms;
    };
    const flows: [string, () => Promise<number>, string, () => Promise<number>][] = [
      ['wgnet cubic', wgnetFlow('cubic'), 'kernel cubic', () => lab.iperf('cubic', FAIR_SECONDS)],
      ['wgnet bbr', wgnetFlow('bbr'), 'kernel cubic', () => lab.iperf('cubic', FAIR_SECONDS)],
      ['wgnet bbr', wgnetFlow('bbr'), 'kernel bbr', () => lab.iperf('bbr', FAIR_SECONDS)],
      ['kernel cubic', () => lab.iperf('cubic', FAIR_SECONDS, { port: 5202 }), 'kernel cubic', () => lab.iperf('cubic', FAIR_SECONDS)],
      ['kernel bbr', () => lab.iperf('bbr', FAIR_SECONDS, { port: 5202 }), 'kernel cubic', () => lab.iperf('cubic', FAIR_SECONDS)],
    ];
    // Below 90 % of what the link carries, the flows were short of CPU, not of bandwidth.
    const full = (mbps: number): string => (mbps < 0.9 * FULL ? `, NOT FULL (${f0(mbps)} of ${f0(FULL)}): CPU-bound, no verdict` : '');
    for (const [an, a, bn, b] of flows) {
      const [x, y] = await Promise.all([a(), b()]);
      rows.push({ name: `shared ${where}: ${an} ${f0(x)} / ${bn} ${f0(y)} Mbit/s${full(x + y)}, share of the first`, value: (100 * x) / (x + y), unit: '%' });
      await new Promise((r) => setTimeout(r, 1000)); // let the queue empty
    }

    // Queueing delay: ping across the same queue while one upload runs.
    const idle = await lab.ping(3, 0);
    rows.push({ name: `ping across the bottleneck, idle, median (p95 ${f0(quantile(idle, 0.95))} ms)`, value: quantile(idle, 0.5), unit: 'ms' });
    const loads: [string, () => Promise<number>][] = [
      ['wgnet cubic', wgnetFlow('cubic')],
      ['wgnet bbr', wgnetFlow('bbr')],
      ['kernel cubic', () => lab.iperf('cubic', FAIR_SECONDS)],
      ['kernel bbr', () => lab.iperf('bbr', FAIR_SECONDS)],
    ];
    for (const [name, load] of loads) {
      const [rate, rtts] = await Promise.all([load(), lab.ping(FAIR_SECONDS, 2)]);
      rows.push({ name: `ping across the bottleneck during a ${name} upload (${f0(rate)} Mbit/s${full(rate)}), median (p95 ${f0(quantile(rtts, 0.95))} ms)`, value: quantile(rtts, 0.5), unit: 'ms' });
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    lab.bottleneck(false);
    await lab.shape({ loss: 0, reorder: 0, delayMs: 0 });
  }
}

export async function benchTcpCc(rounds = Number(process.env.WGNET_TCP_CC_ROUNDS ?? 1)): Promise<BenchRow[]> {
  const why = unavailable();
  if (why) return [{ name: `skipped (${why})`, value: 0, unit: '' }];
  const only = process.env.WGNET_TCP_CC;
  const rows: BenchRow[] = [];
  const load = (): string => loadavg().map((x) => x.toFixed(1)).join(' ');
  rows.push({ name: `load average at the start (1/5/15 min: ${load()}), 2 cores`, value: loadavg()[0]!, unit: '' });
  const lab = await Lab.start();
  try {
    if (!only || only === 'lossy') await lossyRows(lab, rounds, rows);
    if (!only || only === 'fair') await fairRows(lab, rows);
  } finally {
    await lab.close();
  }
  rows.push({ name: `load average at the end (1/5/15 min: ${load()})`, value: loadavg()[0]!, unit: '' });
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchTcpCc(Number(process.argv[2] ?? 1))) {
    const ratio = r.ratio !== undefined ? `  ${r.ratio.toFixed(2)}× ${r.ref ?? ''}` : '';
    console.log(`${r.name.padEnd(90)} ${r.value.toFixed(1).padStart(8)} ${r.unit}${ratio}`);
  }
}
