/**
 * Churn (issue 18) through `wgnet proxy` (SOCKS5) and `wgnet forward` (-L, TCP and --udp) as
 * real processes: short TCP connections through each, refused ones through the proxy, and
 * UDP flows through the forward, to echo servers on a tunnel in this process. Afterwards the
 * far tunnel's bookkeeping and each child's open file descriptors are back to the start, and
 * each child's JS heap after full collections is within HEAP_GROWTH_MB of its start; each
 * child's RSS (start, peak, settled) and heap are printed.
 *
 * The children run under node --expose-gc, so SIGUSR1 collects before it prints their memory
 * (cli/serve.ts): heap and RSS are compared after a full GC at both ends. Without it the end
 * figure depended on when V8 last collected: `wgnet proxy` showed 29 MB of heap used after
 * 100,000 connections against 16 MB at the start, but heap snapshots (which collect first)
 * of the same process before and after 20,000 connections differ by 2.3 MB, all of it JIT
 * code and the source maps tsx parses for the modules whose errors were formatted: no
 * connection, socket or listener was left, so the rest was garbage not yet collected.
 *
 * Scale: WGNET_CHURN_PROXY=100000 (connections through each), WGNET_CHURN_UDP=10000,
 * WGNET_CHURN_FAILED=10000; then the settle waits up to 120 s for the children's RSS to stop
 * falling (see SETTLE_QUIET_S), against 5 s at CI's size.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, writeFileSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';
import { freePort } from '../harness/ports.js';
import { startCli as startWgnet, type Cli } from '../harness/cli.js';
import { bookkeeping, waitFor, type Bookkeeping } from '../harness/churn.js';

const CONNECTIONS = Number(process.env.WGNET_CHURN_PROXY ?? 1_000);
const UDP_FLOWS = Number(process.env.WGNET_CHURN_UDP ?? 300);
const FAILED = Number(process.env.WGNET_CHURN_FAILED ?? 200);
// The children cannot be made to collect: their V8 shrinks its heap some seconds after
// allocation stops, and io/memory.ts trims up to 30 s after its last trim. At scale the settle
// waits for RSS to stay put for 30 s (at most 120 s); at CI's size 5 s.
const SETTLE_QUIET_S = CONNECTIONS >= 10_000 ? 30 : 5;
const SETTLE_MS = CONNECTIONS >= 10_000 ? 120_000 : 5_000;
// What a child's heap may grow by after full collections: JIT code and tsx's source maps took
// 2.3 MB at 20,000 connections and do not grow with more; 400 bytes kept per connection would
// pass this at 20,000.
const HEAP_GROWTH_MB = 8;
const CONCURRENCY = 32;
const skip = process.platform === 'linux' ? false : 'reads /proc';

/** A child's resident memory (MB) and open file descriptors, from /proc. */
function usage(pid: number): { rssMB: number; fds: number } {
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { rssMB: Number(rss?.[1] ?? 0) / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}


interface ChildMemory {
  rssMB: number;
  heapMB: number;
  externalMB: number;
  /** malloc_trim calls so far (io/memory.ts). */
  trims: number;
}

/**
 * The child's memory after full collections: SIGUSR1 under --expose-gc collects, re-arms the
 * malloc trim's checks, then prints `stats memory ... collected=true` (cli/serve.ts).
 */
async function collectedMemory(cli: Cli): Promise<ChildMemory> {
  const seen = cli.stderr().length;
  cli.child.kill('SIGUSR1');
  let line: RegExpExecArray | null = null;
  await waitFor(() => (line = /stats memory rssMB=([\d.]+) heapMB=([\d.]+) heapTotalMB=[\d.]+ externalMB=([\d.]+) mallocTrims=(\d+) collected=true/.exec(cli.stderr().slice(seen))) !== null, 10_000, `pid ${cli.child.pid}: a collected memory line`);
  const m = line as unknown as RegExpExecArray;
  return { rssMB: Number(m[1]), heapMB: Number(m[2]), externalMB: Number(m[3]), trims: Number(m[4]) };
}

/** --expose-gc only lets SIGUSR1 collect (cli/serve.ts); nothing collects on its own because of it. */
const startCli = (args: string[]): Promise<Cli> => startWgnet(args, { nodeArgs: ['--expose-gc'] });

/** Writes `msg`, ends once its echo is in (a request, then its answer), resolves with what was read by close. */
function exchange(s: net.Socket, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= msg.length) s.end();
    });
    s.on('error', reject);
    s.on('close', () => resolve(got));
    s.write(msg);
  });
}

/** One SOCKS5 CONNECT to 10.66.0.2:`port` (no auth), then `msg` echoed; or the reply code when refused. */
function socks(proxyPort: number, port: number, msg: Buffer): Promise<Buffer | number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(proxyPort, '127.0.0.1');
    let got = Buffer.alloc(0);
    let stage = 0;
    s.on('connect', () => s.write(Buffer.from([5, 1, 0])));
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (stage === 0 && got.length >= 2) {
        got = got.subarray(2);
        stage = 1;
        s.write(Buffer.from([5, 1, 0, 1, 10, 66, 0, 2, port >> 8, port & 0xff]));
      }
      // The request, its echo, then the end, as an HTTP client does: a client that half-closes
      // right after the CONNECT reply (end(msg)) gets no echo through `wgnet proxy` today, while
      // `wgnet forward` relays it; that is a bug of its own, not what this test measures.
      if (stage === 1 && got.length >= 10) {
        if (got[1] !== 0) {
          stage = 3;
          s.destroy();
          resolve(got[1]!);
          return;
        }
        got = got.subarray(10);
        stage = 2;
        s.write(msg);
      }
      if (stage === 2 && got.length >= msg.length) s.end();
    });
    s.on('error', (e) => (stage === 3 ? undefined : reject(e)));
    s.on('close', () => {
      if (stage === 2) resolve(got);
      else if (stage !== 3) reject(new Error(`SOCKS5 closed at stage ${stage}`));
    });
  });
}

/** One UDP flow: a fresh local socket, one datagram through the forward, its echo, closed; false if none came in 3 s. */
function udpFlow(port: number, i: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const msg = Buffer.from(`proxy flow ${i}`);
    const t = setTimeout(() => {
      s.close();
      resolve(false);
    }, 3000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      if (m.equals(msg)) resolve(true);
      else reject(new Error(`UDP flow ${i}: echoed '${m.toString()}'`));
    });
    s.send(msg, port, '127.0.0.1');
  });
}

async function pool(n: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

describe('churn: TCP and UDP through wgnet proxy and wgnet forward', { skip }, () => {
  let far: Tunnel;
  let dir: string;
  let base: Bookkeeping;
  const children: Cli[] = [];
  const ports = { socks: 0, fwd: 0, udp: 0 };

  before(async () => {
    const farKeys = keyPair();
    const clients = [keyPair(), keyPair(), keyPair()];
    far = await Tunnel.create(
      `[Interface]\nPrivateKey = ${farKeys.privateKey}\nAddress = 10.66.0.2/24\n` +
        clients.map((k, i) => `\n[Peer]\nPublicKey = ${k.publicKey}\nAllowedIPs = 10.66.0.${11 + i}/32\n`).join(''),
    );
    far.createServer((s) => {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => {});
    }).listen(7000);
    const echo = far.createSocket('udp4');
    echo.on('message', (m: Buffer, r: { address: string; port: number }) => echo.send(m, r.port, r.address));
    echo.bind(7);
    dir = mkdtempSync(join(tmpdir(), 'wgnet-churn-'));
    const conf = clients.map((k, i) => {
      const path = join(dir, `c${i}.conf`);
      writeFileSync(path, `[Interface]\nPrivateKey = ${k.privateKey}\nAddress = 10.66.0.${11 + i}/24\n\n[Peer]\nPublicKey = ${farKeys.publicKey}\nAllowedIPs = 10.66.0.2/32\nEndpoint = 127.0.0.1:${far.listenPort}\n`, { mode: 0o600 });
      return path;
    });
    [ports.socks, ports.fwd, ports.udp] = [await freePort(), await freePort(), await freePort()];
    children.push(await startCli(['proxy', '-c', conf[0]!, '--socks5', `127.0.0.1:${ports.socks}`]));
    children.push(await startCli(['forward', '-c', conf[1]!, '-L', `127.0.0.1:${ports.fwd}:10.66.0.2:7000`]));
    // Flows idle out after 1 s; above 1,024 new flows a second the default limit (1,024 at once)
    // drops new sources by design (2.9 % of 10,000 flows here), so the limit is raised: this
    // test is about what closed flows leave behind, not about the limit.
    children.push(await startCli(['forward', '-c', conf[2]!, '--udp', '--udp-timeout', '1', '--max-udp-flows', '16384', '-L', `127.0.0.1:${ports.udp}:10.66.0.2:7`]));
    // Warm-up: each path once, code compiled, sessions up.
    assert.equal(String(await socks(ports.socks, 7000, Buffer.from('warm'))), 'warm', 'SOCKS5 warm-up');
    assert.equal((await exchange(net.connect(ports.fwd, '127.0.0.1'), Buffer.from('warm'))).toString(), 'warm', 'forward warm-up');
    assert.ok(await udpFlow(ports.udp, -1), 'UDP warm-up');
    await waitFor(() => bookkeeping(far).tcpConnections === 0, 10_000, 'warm-up connections gone');
    base = bookkeeping(far);
  });
  after(async () => {
    for (const c of children) c.child.kill('SIGTERM');
    await far?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(`${CONNECTIONS} connections through each of proxy and forward, ${FAILED} refused, ${UDP_FLOWS} UDP flows; tables and descriptors back to the start`, async () => {
    const pids = children.map((c) => c.child.pid!);
    const startMem = await Promise.all(children.map(collectedMemory));
    const start = pids.map(usage);
    const peaks = start.map((u) => u.rssMB);
    let lost = 0;
    const sampler = setInterval(() => pids.forEach((pid, i) => (peaks[i] = Math.max(peaks[i]!, usage(pid).rssMB))), 200);
    try {
      await pool(CONNECTIONS, async (i) => {
        const msg = Buffer.from(`socks ${String(i).padStart(10, '0')}`);
        const got = await socks(ports.socks, 7000, msg);
        assert.ok(Buffer.isBuffer(got) && got.equals(msg), `SOCKS5 connection ${i}: ${String(got)}`);
      });
      await pool(CONNECTIONS, async (i) => {
        const msg = Buffer.from(`fwd ${String(i).padStart(10, '0')}`);
        const got = await exchange(net.connect(ports.fwd, '127.0.0.1'), msg);
        assert.ok(got.equals(msg), `forward connection ${i}: '${got.toString()}'`);
      });
      const codes = new Map<number, number>();
      await pool(FAILED, async () => {
        const r = await socks(ports.socks, 7001, Buffer.alloc(0)); // nothing listens on 7001: the far side answers RST
        if (typeof r === 'number') codes.set(r, (codes.get(r) ?? 0) + 1);
      });
      assert.deepEqual(Object.fromEntries(codes), { 5: FAILED }, 'SOCKS5 reply 5, connection refused');
      // UDP may lose a datagram under load; a few are counted and printed, more fail the test.
      await pool(UDP_FLOWS, async (i) => {
        if (!(await udpFlow(ports.udp, i))) lost++;
      });
      assert.ok(lost <= UDP_FLOWS / 100, `${lost} of ${UDP_FLOWS} UDP flows got no echo`);
    } finally {
      clearInterval(sampler);
    }

    await waitFor(() => bookkeeping(far).tcpConnections === base.tcpConnections && bookkeeping(far).tcpTimers <= base.tcpTimers, 30_000, 'far side TCP back to the start');
    assert.deepEqual(bookkeeping(far), base, 'far tunnel');
    await waitFor(() => pids.every((pid, i) => usage(pid).fds <= start[i]!.fds + 1), 30_000, `children's descriptors back to ${JSON.stringify(start.map((u) => u.fds))}`);
    // Settled: full collections in each child (what V8 would do some time after the churn, when
    // its heuristics get to it), then until no child's RSS has fallen for SETTLE_QUIET_S (the
    // trim and V8's return of emptied pages), or SETTLE_MS.
    await Promise.all(children.map(collectedMemory));
    let last = pids.map((pid) => usage(pid).rssMB);
    for (let quiet = 0, t = 0; quiet < SETTLE_QUIET_S && t < SETTLE_MS; t += 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = pids.map((pid) => usage(pid).rssMB);
      quiet = now.some((v, i) => v < last[i]! - 1) ? 0 : quiet + 1;
      last = now.map((v, i) => Math.min(v, last[i]!));
    }
    const endMem = await Promise.all(children.map(collectedMemory));
    const end = pids.map(usage);
    const names = ['proxy', 'forward', 'forward --udp'];
    const pct = (a: number, b: number): string => `${b >= a ? '+' : ''}${(((b - a) / a) * 100).toFixed(0)} %`;
    console.log(
      `churn-proxy: UDP flows without an echo: ${lost}; ${names
        .map(
          (n, i) =>
            `${n}: RSS ${start[i]!.rssMB.toFixed(0)} -> peak ${peaks[i]!.toFixed(0)} -> ${end[i]!.rssMB.toFixed(0)} MB settled (${pct(start[i]!.rssMB, end[i]!.rssMB)}), ` +
            `heap after GC ${startMem[i]!.heapMB.toFixed(1)} -> ${endMem[i]!.heapMB.toFixed(1)} MB, external ${startMem[i]!.externalMB.toFixed(1)} -> ${endMem[i]!.externalMB.toFixed(1)} MB, malloc trims ${endMem[i]!.trims}, fds ${start[i]!.fds} -> ${end[i]!.fds}`,
        )
        .join('; ')}`,
    );
    for (const [i, n] of names.entries()) {
      assert.ok(endMem[i]!.heapMB - startMem[i]!.heapMB < HEAP_GROWTH_MB, `${n}: JS heap after GC grew ${(endMem[i]!.heapMB - startMem[i]!.heapMB).toFixed(1)} MB (a leak)`);
    }
  });
});
