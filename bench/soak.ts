/**
 * Soak (issue 18): N MB each way at once over one TCP connection between two wgnet tunnels
 * whose outer datagrams pass a seeded lossy relay (test/harness/lossy-relay.ts: 2 % loss each
 * way, 10 % held back 3 ms, i.e. reordered), every byte checked on arrival, with the
 * process's memory at the start, the middle and the end.
 *
 * What it shows: the data path stays byte-exact under sustained loss and reordering (SACK,
 * RACK-TLP, the replay window, the reorder of WireGuard counters), and memory stays flat:
 * nothing grows with the bytes moved (send/receive rings are bounded, SACK scoreboards and
 * out-of-order ranges are capped, counters are numbers). The reference in the same run is a
 * shorter transfer on the direct path (no relay), so the ratio says what the loss costs.
 *
 *   npm run bench -- soak                     1024 MB each way (WGNET_SOAK_MB or --mb=N)
 *   node --expose-gc --import tsx bench/soak.ts --mb=200
 *
 * Both tunnels and the relay share this process's event loop: the throughput is a floor.
 * The CI version is test/integration/soak.test.ts (50 MB each way).
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../src/index.js';
import type { TcpSocket } from '../src/api/tcp-socket.js';
import { keyPair } from '../test/harness/tunnel-pair.js';
import { LossyRelay } from '../test/harness/lossy-relay.js';
import { collectGarbage } from '../test/harness/churn.js';
import { SeededRng } from '../src/util/rng.js';
import type { BenchRow } from './common.js';

const MB = 1024 * 1024;

export interface SoakOptions {
  /** Bytes each way. */
  bytes: number;
  /** The relay's loss each way and share held back (reordered); no relay when both are 0. */
  loss?: number;
  reorder?: number;
  holdMs?: number;
  seed?: number;
  /** Called about once a second with the bytes received so far (both directions) and RSS. */
  onProgress?: (received: number, rssMB: number) => void;
}

export interface SoakResult {
  seconds: number;
  /** Goodput of each direction, Mbit/s (payload bytes over the whole run). */
  mbitUp: number;
  mbitDown: number;
  /** Resident set size (MB): before the transfer, when half of all bytes had arrived, at the end, the highest sample. */
  rss: { start: number; middle: number; end: number; peak: number };
  /** V8 heap used after a full GC (MB), before and after: what a leak would grow. */
  heap: { start: number; end: number };
  /** Datagrams the relay dropped and passed (both directions). */
  relay: { dropped: number; relayed: number };
  /** Loss recovery at both ends (the netstack's TCP counters, summed). */
  tcp: Record<string, number>;
}

/**
 * The data: a pseudo-random block whose length is no power of two, repeated. A segment
 * delivered at the wrong offset compares unequal unless it moved by a multiple of the block.
 */
const BLOCK_LEN = MB + 4099;

function makeBlock(seed: number): Buffer {
  const b = Buffer.allocUnsafe(BLOCK_LEN);
  new SeededRng(seed).fill(b);
  return b;
}

/**
 * Sends `total` bytes of the repeated block on `s` and checks that `total` bytes of the
 * other side's block arrive; resolves once both are done, rejects on the first wrong byte.
 */
function duplex(s: TcpSocket, total: number, mine: Buffer, theirs: Buffer, received: { n: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let sendDone = false;
    let recvDone = total === 0;
    // Each side ends only once it has sent and received everything: a socket that is not
    // half-open (the default, as net.Socket) ends its own side when the peer's FIN arrives,
    // and what it had not written yet would never be.
    const finish = (): void => {
      if (sendDone && recvDone) s.end(() => resolve());
    };
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      let at = 0;
      while (at < d.length) {
        const off = received.n % BLOCK_LEN;
        const n = Math.min(d.length - at, BLOCK_LEN - off);
        if (d.compare(theirs, off, off + n, at, at + n) !== 0) {
          s.destroy();
          return reject(new Error(`soak: wrong bytes at offset ${received.n} of ${total}`));
        }
        at += n;
        received.n += n;
      }
      if (received.n > total) return reject(new Error(`soak: ${received.n} bytes received, ${total} sent`));
      if (received.n === total) {
        recvDone = true;
        finish();
      }
    });
    const pump = (): void => {
      while (sent < total) {
        const off = sent % BLOCK_LEN;
        const n = Math.min(64 * 1024, total - sent, BLOCK_LEN - off);
        sent += n;
        if (!s.write(mine.subarray(off, off + n))) return void s.once('drain', pump);
      }
      sendDone = true;
      finish();
    };
    pump();
  });
}

/** Full GCs (also without --expose-gc: the test runner's processes lack it). */
function gc(): void {
  for (let i = 0; i < 3; i++) collectGarbage();
}

/** The TCP counters a soak reports: how loss and reordering were recovered from. */
const TCP_SHOWN = ['fastRetransmits', 'lostRetransmits', 'tailLossProbes', 'rtoExpired', 'spuriousRecoveries', 'reorderingSeen', 'oooSegments'];

const rssMB = (): number => process.memoryUsage().rss / MB;
const heapMB = (): number => process.memoryUsage().heapUsed / MB;

/** Two tunnels, A -> relay -> B (or direct), `bytes` each way on one connection. */
export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const ka = keyPair();
  const kb = keyPair();
  const b = await Tunnel.create(`[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.67.0.2/24\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.67.0.1/32\n`);
  const lossy = (o.loss ?? 0) > 0 || (o.reorder ?? 0) > 0;
  const relay = lossy ? await LossyRelay.start({ target: { address: '127.0.0.1', port: b.listenPort }, loss: o.loss ?? 0, reorder: o.reorder ?? 0, delayMs: o.holdMs ?? 3, seed: o.seed ?? 7 }, '127.0.0.1') : undefined;
  const a = await Tunnel.create(`[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.67.0.1/24\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.67.0.2/32\nEndpoint = 127.0.0.1:${relay ? relay.port : b.listenPort}\n`);
  const up = makeBlock(1);
  const down = makeBlock(2);
  const recvA = { n: 0 };
  const recvB = { n: 0 };
  let sampler: NodeJS.Timeout | undefined;
  try {
    let serverSide: Promise<void> | undefined;
    const accepted = new Promise<void>((resolve) => {
      b.createServer((s) => {
        serverSide = duplex(s, o.bytes, down, up, recvB);
        resolve();
      }).listen(5001);
    });
    gc();
    const heapStart = heapMB();
    const rss = { start: rssMB(), middle: 0, end: 0, peak: 0 };
    rss.peak = rss.start;
    sampler = setInterval(() => {
      const r = rssMB();
      if (r > rss.peak) rss.peak = r;
      if (!rss.middle && recvA.n + recvB.n >= o.bytes) rss.middle = r;
      o.onProgress?.(recvA.n + recvB.n, r);
    }, 250);
    sampler.unref();
    const t0 = performance.now();
    const s = a.connect({ host: '10.67.0.2', port: 5001 });
    const clientSide = duplex(s, o.bytes, up, down, recvA);
    await accepted;
    await Promise.all([clientSide, serverSide]);
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    rss.end = rssMB();
    if (rss.end > rss.peak) rss.peak = rss.end;
    if (!rss.middle) rss.middle = rss.end;
    s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    gc();
    const tcp: Record<string, number> = {};
    for (const t of [a, b]) {
      const st = (t.engine.iface.tcp as unknown as { stats: Record<string, number> }).stats;
      for (const k of TCP_SHOWN) if (st[k]) tcp[k] = (tcp[k] ?? 0) + st[k];
    }
    return {
      seconds,
      mbitUp: (o.bytes * 8) / seconds / 1e6,
      mbitDown: (o.bytes * 8) / seconds / 1e6,
      rss,
      heap: { start: heapStart, end: heapMB() },
      relay: { dropped: relay?.dropped ?? 0, relayed: relay?.relayed ?? 0 },
      tcp,
    };
  } finally {
    clearInterval(sampler);
    relay?.close();
    await a.close();
    await b.close();
  }
}

function soakMB(): number {
  const flag = process.argv.find((x) => x.startsWith('--mb='));
  const v = Number(flag ? flag.slice(5) : (process.env.WGNET_SOAK_MB ?? 1024));
  if (!(v > 0)) throw new Error(`soak: --mb / WGNET_SOAK_MB must be a number of MB > 0, got '${flag ?? process.env.WGNET_SOAK_MB}'`);
  return v;
}

export async function benchSoak(): Promise<BenchRow[]> {
  const mb = soakMB();
  const refMB = Math.min(mb, 128);
  const ref = await runSoak({ bytes: refMB * MB });
  let lastLog = 0;
  const r = await runSoak({
    bytes: mb * MB,
    loss: 0.02,
    reorder: 0.1,
    holdMs: 3,
    onProgress: (got, rss) => {
      const now = performance.now();
      if (now - lastLog < 10_000) return;
      lastLog = now;
      console.log(`    ${(got / MB).toFixed(0)} of ${2 * mb} MB, RSS ${rss.toFixed(0)} MB`);
    },
  });
  const name = `${mb} MB each way, 2 % loss + 10 % reorder`;
  const refMbit = ref.mbitUp;
  return [
    { name: `${name}: byte-exact, time`, value: r.seconds, unit: 's' },
    { name: `${name}: goodput each way`, value: r.mbitUp, unit: 'Mbit/s', ref: `direct path ${refMB} MB each way (${refMbit.toFixed(0)} Mbit/s)`, ratio: r.mbitUp / refMbit },
    { name: `${name}: RSS start`, value: r.rss.start, unit: 'MB' },
    { name: `${name}: RSS middle`, value: r.rss.middle, unit: 'MB' },
    { name: `${name}: RSS end`, value: r.rss.end, unit: 'MB' },
    { name: `${name}: RSS peak`, value: r.rss.peak, unit: 'MB' },
    { name: `${name}: heap after GC, start -> end`, value: r.heap.end, unit: 'MB', ref: `start ${r.heap.start.toFixed(1)} MB`, ratio: r.heap.end / r.heap.start },
    { name: `${name}: datagrams dropped by the relay`, value: r.relay.dropped, unit: `of ${r.relay.dropped + r.relay.relayed}` },
    ...Object.entries(r.tcp).map(([k, v]) => ({ name: `${name}: tcp ${k}`, value: v, unit: '' })),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const row of await benchSoak()) console.log(`${row.name.padEnd(70)} ${row.value.toFixed(1).padStart(10)} ${row.unit}${row.ratio !== undefined ? `  ${row.ratio.toFixed(2)}x ${row.ref ?? ''}` : ''}`);
}
