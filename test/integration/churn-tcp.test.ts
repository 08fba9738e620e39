/**
 * Churn (issue 18): 20,000 short TCP connections and 2,000 failed connects (refused by the
 * peer, and to destinations no peer routes) through two in-process tunnels. Afterwards the
 * tunnels' bookkeeping is back where it started: TCP connections and timer entries on both
 * stacks, the API's socket maps, pending DNS lookups and pings; RSS grew by a bounded amount.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { bookkeeping, memoryAfterGc, tcpOf, waitFor, type Bookkeeping } from '../harness/churn.js';

// WGNET_CHURN=100000 runs the full scale (about five times as long).
const CONNECTIONS = Number(process.env.WGNET_CHURN ?? 20_000);
const CONCURRENCY = 64;

describe('churn: TCP through two tunnels', () => {
  let p: TunnelPair;
  let base: { a: Bookkeeping; b: Bookkeeping; mem: { heapMB: number; rssMB: number; externalMB: number } };
  before(async () => {
    p = await tunnelPair();
    const server = p.b.createServer((s) => {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(7000, () => r()));
    await p.a.ping('10.66.0.2');
    await one(p, 0); // warm-up: first connection, code paths compiled
    await waitFor(() => tcpOf(p.a).connectionCount === 0 && tcpOf(p.b).connectionCount === 0, 10_000, 'warm-up connection gone');
    base = { a: bookkeeping(p.a), b: bookkeeping(p.b), mem: await memoryAfterGc() };
  });
  after(async () => {
    await p.close();
  });

  test(`${CONNECTIONS} short connections (echo, FIN both ways), then 2,000 failed connects; bookkeeping back to the start`, async () => {
    // Two halves: RSS may rise to a high-water mark in the first (allocator pages kept by the
    // process), but the second half must not add to it, and the JS heap must not grow at all.
    const mems: { heapMB: number; rssMB: number; externalMB: number }[] = [];
    for (let half = 0; half < 2; half++) {
      let next = 0;
      let done = 0;
      const workers = Array.from({ length: CONCURRENCY }, async () => {
        while (next < CONNECTIONS / 2) {
          const i = next++;
          await one(p, half * (CONNECTIONS / 2) + i);
          done++;
        }
      });
      await Promise.all(workers);
      assert.equal(done, CONNECTIONS / 2);
      await waitFor(() => tcpOf(p.a).connectionCount === base.a.tcpConnections && tcpOf(p.b).connectionCount === base.b.tcpConnections, 20_000, 'TCP connections back to the start');
      mems.push(await memoryAfterGc());
    }

    // 1,000 refused (a RST from b: nothing listens on 7001) and 1,000 unroutable (no peer has 10.99.0.0/16).
    const codes = new Map<string, number>();
    const fail = (host: string, port: number): Promise<void> =>
      new Promise((resolve) => {
        const s = p.a.connect(port, host);
        s.on('connect', () => {
          codes.set('connected', (codes.get('connected') ?? 0) + 1);
          s.destroy();
        });
        s.on('error', (e: NodeJS.ErrnoException) => codes.set(e.code ?? 'unknown', (codes.get(e.code ?? 'unknown') ?? 0) + 1));
        s.on('close', () => resolve());
      });
    for (let round = 0; round < 1000 / 50; round++) {
      await Promise.all(Array.from({ length: 50 }, () => fail('10.66.0.2', 7001)));
      await Promise.all(Array.from({ length: 50 }, (_, k) => fail(`10.99.${round}.${k + 1}`, 80)));
    }
    assert.deepEqual(Object.fromEntries(codes), { ECONNREFUSED: 1000, EHOSTUNREACH: 1000 });

    // TIME-WAIT (2 s) ends, then everything is back to where it started.
    await waitFor(() => tcpOf(p.a).connectionCount === base.a.tcpConnections && tcpOf(p.b).connectionCount === base.b.tcpConnections, 20_000, 'TCP connections back to the start');
    await waitFor(() => bookkeeping(p.a).tcpTimers <= base.a.tcpTimers && bookkeeping(p.b).tcpTimers <= base.b.tcpTimers, 20_000, 'TCP timer entries back to the start');
    assert.deepEqual(bookkeeping(p.a), base.a, 'tunnel a');
    assert.deepEqual(bookkeeping(p.b), base.b, 'tunnel b');
    const mem = await memoryAfterGc();
    const [m1, m2] = mems as [typeof mem, typeof mem];
    const fmt = (m: typeof mem): string => `heap ${m.heapMB.toFixed(1)} MB, external ${m.externalMB.toFixed(1)} MB, RSS ${m.rssMB.toFixed(0)} MB`;
    console.log(`churn-tcp: start ${fmt(base.mem)}; after ${CONNECTIONS / 2}: ${fmt(m1)}; after ${CONNECTIONS}: ${fmt(m2)}; after the failed connects: ${fmt(mem)}`);
    assert.ok(mem.heapMB - base.mem.heapMB < 10, `JS heap grew ${(mem.heapMB - base.mem.heapMB).toFixed(1)} MB (a leak)`);
    assert.ok(mem.externalMB - base.mem.externalMB < 4, `external memory grew ${(mem.externalMB - base.mem.externalMB).toFixed(1)} MB (a leak)`);
    // RSS is not asserted to level off: glibc keeps freed arenas mapped, and under a loaded
    // machine it kept rising for 20,000 connections while the heap and external memory,
    // the leak detectors above, stayed flat. Only a total bound holds it.
    assert.ok(mem.rssMB - base.mem.rssMB < 600, `RSS grew ${(mem.rssMB - base.mem.rssMB).toFixed(0)} MB in all`);
  });
});

/** One short connection: 16 bytes echoed exactly, FIN both ways, closed. */
function one(p: TunnelPair, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const msg = Buffer.from(`churn ${String(i).padStart(10, '0')}`);
    const s = p.a.connect(7000, '10.66.0.2');
    let got = Buffer.alloc(0);
    s.on('connect', () => s.end(msg));
    s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    s.on('error', reject);
    s.on('close', () => (got.equals(msg) ? resolve() : reject(new Error(`connection ${i}: echoed '${got.toString()}'`))));
  });
}
