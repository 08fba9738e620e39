/**
 * The TCP/IP stack alone (no crypto, no sockets): bulk transfer between two
 * netstacks through the simulator, as CPU cost, and memory per idle connection.
 */
import { performance } from 'node:perf_hooks';
import { NetSim, fillPattern } from '../test/harness/tcp-sim.js';
import { parseIp } from '../src/util/ip.js';
import type { TcpConnection } from '../src/netstack/types.js';
import type { BenchRow } from './common.js';

/** Full garbage collection, several times, so heap deltas measure what is kept. */
function settle(): void {
  if (!globalThis.gc) throw new Error('run with node --expose-gc (npm run bench does)');
  for (let i = 0; i < 4; i++) globalThis.gc();
}

const MB = 1024 * 1024;

/** One connection moves `total` bytes between two stacks on a 100 Gbit/s, 1 ms link. */
function bulk(total: number, cc: 'cubic' | 'bbr' = 'cubic'): { mbit: number; cpuPerGb: number } {
  const sim = new NetSim({ rttMs: 1, mbit: 100_000, queuePackets: 100_000 }, 5, { congestionControl: cc });
  const l = sim.b.tcp.listen({ port: 9 });
  const c = sim.a.tcp.connect(0, { remoteAddr: parseIp('10.0.0.2')!, remotePort: 9 });
  let server: TcpConnection | undefined;
  let sent = 0;
  let got = 0;
  const chunk = new Uint8Array(1 << 20);
  fillPattern(chunk, 0);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  sim.run(1e9, () => {
    for (let e = sim.a.pollEvent(); e; e = sim.a.pollEvent());
    for (let e = sim.b.pollEvent(); e; e = sim.b.pollEvent()) if (e.type === 'tcp-accept') server = l.accept();
    if (c.state === 'ESTABLISHED') while (sent < total && c.sendSpace > 0) sent += c.send(sim.now, chunk.subarray(0, Math.min(chunk.length, total - sent, c.sendSpace)));
    if (server) for (let d = server.recv(); d; d = server.recv()) got += d.length;
    return got >= total;
  });
  if (got !== total) throw new Error(`bulk transfer moved ${got} of ${total} bytes`);
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { mbit: (total * 8) / 1e6 / secs, cpuPerGb: (cpu.user + cpu.system) / 1e6 / (total / 1e9) };
}

export async function benchTcp(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // Bulk over a fast link with no loss: the wall clock measures the two stacks' CPU. The first
  // run warms the JIT up and is not counted; the figure is the median of three.
  bulk(200 * MB);
  const runs = [bulk(200 * MB), bulk(200 * MB), bulk(200 * MB)].sort((x, y) => x.mbit - y.mbit);
  const mid = runs[1]!;
  rows.push({ name: 'TCP stack to stack, 200 MB, no crypto (one core), median of 3', value: mid.mbit, unit: 'Mbit/s' });
  rows.push({ name: '  CPU per GB moved', value: mid.cpuPerGb, unit: 's/GB' });
  // The same with BBR: rate sampling per segment and pacing through the 'pace' deadline.
  const bbr = [bulk(200 * MB, 'bbr'), bulk(200 * MB, 'bbr'), bulk(200 * MB, 'bbr')].sort((x, y) => x.mbit - y.mbit)[1]!;
  rows.push({ name: 'TCP stack to stack with BBR (paced), same, median of 3', value: bbr.mbit, unit: 'Mbit/s', ref: 'CUBIC', ratio: bbr.mbit / mid.mbit });

  // Memory of idle established connections.
  const sim2 = new NetSim({ rttMs: 1, mbit: 10_000 }, 6);
  const l2 = sim2.b.tcp.listen({ port: 80, backlog: 100_000 });
  const N = 5000;
  settle();
  const before = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const keep: TcpConnection[] = [];
  for (let i = 0; i < N; i++) keep.push(sim2.a.tcp.connect(sim2.now, { remoteAddr: parseIp('10.0.0.2')!, remotePort: 80 }));
  sim2.run(1e6, () => {
    for (let e = sim2.b.pollEvent(); e; e = sim2.b.pollEvent()) if (e.type === 'tcp-accept') for (let a = l2.accept(); a; a = l2.accept()) keep.push(a);
    for (let e = sim2.a.pollEvent(); e; e = sim2.a.pollEvent());
    return keep.length >= 2 * N;
  });
  settle();
  const after = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  rows.push({ name: `memory per idle established connection (${N} pairs, both ends)`, value: (after - before) / (2 * N) / 1024, unit: 'KiB' });
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) for (const r of await benchTcp()) console.log(r);
