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

export async function benchTcp(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
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
  // Bulk: 200 MB over a fast link with no loss; the wall clock measures the stacks' CPU.
  const sim = new NetSim({ rttMs: 1, mbit: 100_000, queuePackets: 100_000 }, 5);
  const l = sim.b.tcp.listen({ port: 9 });
  const c = sim.a.tcp.connect(0, { remoteAddr: parseIp('10.0.0.2')!, remotePort: 9 });
  let server: TcpConnection | undefined;
  const total = 200 * 1024 * 1024;
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
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSecs = (cpu.user + cpu.system) / 1e6;
  rows.push({ name: 'TCP stack to stack, 200 MB, no crypto (one core)', value: (total * 8) / 1e6 / secs, unit: 'Mbit/s' });
  rows.push({ name: '  CPU per GB moved', value: cpuSecs / (total / 1e9), unit: 's/GB' });

  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) for (const r of await benchTcp()) console.log(r);
