/**
 * TCP between two netstacks over a simulated link: byte-exact bulk transfers at
 * 0 %, 1 % and 5 % loss with reordering and duplication, no stall after a burst
 * of losses, and congestion-window sanity all the way through.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetSim, fillPattern, patternByte } from '../harness/tcp-sim.js';
import { parseIp } from '../../src/util/ip.js';
import type { TcpConnection } from '../../src/netstack/types.js';

interface TransferResult {
  ok: boolean;
  bytes: number;
  ms: number;
  mbit: number;
}

function transfer(sim: NetSim, total: number, opts: { family?: 4 | 6; timeLimit?: number; onStep?: (c: TcpConnection) => void } = {}): TransferResult {
  const l = sim.b.tcp.listen({ port: 5001 });
  const dst = parseIp(opts.family === 6 ? 'fd00::2' : '10.0.0.2')!;
  const c = sim.a.tcp.connect(sim.now, { remoteAddr: dst, remotePort: 5001 });
  let server: TcpConnection | undefined;
  let sent = 0;
  let got = 0;
  let bad = -1;
  const chunk = new Uint8Array(256 * 1024);
  const start = sim.now;
  const ok = sim.run(opts.timeLimit ?? 3_600_000, () => {
    for (let e = sim.a.pollEvent(); e; e = sim.a.pollEvent()) void e;
    for (let e = sim.b.pollEvent(); e; e = sim.b.pollEvent()) if (e.type === 'tcp-accept') server = l.accept();
    if (c.state === 'ESTABLISHED' || c.state === 'CLOSE-WAIT') {
      while (sent < total && c.sendSpace > 0) {
        const n = Math.min(chunk.length, total - sent, c.sendSpace);
        const part = chunk.subarray(0, n);
        fillPattern(part, sent);
        sent += c.send(sim.now, part);
      }
      if (sent === total) c.shutdown(sim.now);
    }
    if (server) {
      for (let d = server.recv(); d; d = server.recv()) {
        for (let i = 0; i < d.length && bad < 0; i += 997) if (d[i] !== patternByte(got + i)) bad = got + i;
        got += d.length;
      }
    }
    opts.onStep?.(c);
    return got === total && !!server?.recvEnded;
  });
  assert.equal(bad, -1, `corrupt byte at ${bad}`);
  const ms = sim.now - start;
  return { ok, bytes: got, ms, mbit: (got * 8) / (ms * 1000) };
}

describe('TCP over a simulated link', () => {
  for (const [loss, mb] of [
    [0, 100],
    [0.01, 100],
    [0.05, 100],
  ] as const) {
    test(`${mb} MB byte-exact at ${loss * 100} % loss${loss > 0 ? ' with reordering and duplication' : ''}`, () => {
      const sim = new NetSim({ rttMs: 20, mbit: 1000, loss, reorder: loss > 0 ? 0.02 : 0, duplicate: loss > 0 ? 0.005 : 0 }, 1);
      let cwndOk = true;
      const r = transfer(sim, mb * 1024 * 1024, {
        onStep: (c) => {
          const cw = (c as unknown as { cc: { cwnd: number } }).cc.cwnd;
          if (!(cw > 0) || !Number.isFinite(cw) || cw > 64 * 1024 * 1024) cwndOk = false;
        },
      });
      assert.ok(r.ok, `transfer finished (${r.bytes} bytes in ${r.ms} ms virtual)`);
      assert.equal(r.bytes, mb * 1024 * 1024);
      assert.ok(cwndOk, 'cwnd stayed positive, finite and bounded');
    });
  }

  test('IPv6 transfer, and no stall after a burst of consecutive losses', () => {
    const sim = new NetSim({ rttMs: 10, mbit: 500 }, 3);
    let burst = 0;
    const r = transfer(sim, 8 * 1024 * 1024, {
      family: 6,
      onStep: () => {
        // 50 consecutive packets lost once, mid-transfer.
        if (burst === 0 && sim.delivered > 2000) {
          burst = 1;
          sim.link.loss = 1;
        } else if (burst === 1 && sim.dropped >= 50) {
          burst = 2;
          sim.link.loss = 0;
        }
      },
    });
    assert.ok(r.ok);
    assert.ok(r.ms < 5000, `finished in ${r.ms} ms virtual after the burst`);
  });
});
