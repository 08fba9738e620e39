/**
 * Throughput against loss, kept as a snapshot (tcp-throughput.snapshot.json): one
 * connection, 8 MB over a 100 Mbit/s, 20 ms RTT link with seeded random loss, for
 * CUBIC (RFC 9438), NewReno (RFC 5681/6582) and BBR (bbr.ts), BBR also with 10 % of
 * segments reordered (held back half an RTT), and CUBIC and BBR on a 0.4 ms path whose relay
 * holds a quarter of the packets for 5 ms (the tcp-cc bench's). The simulation is deterministic, so
 * a change in a number means a change in the stack; the tolerance lets small tuning
 * pass and catches regressions such as stalls after loss. Refresh deliberately with
 * UPDATE_SNAPSHOT=1 and say why in the commit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NetSim, fillPattern, patternByte } from '../harness/tcp-sim.js';
import { parseIp } from '../../src/util/ip.js';
import type { TcpConnection } from '../../src/netstack/types.js';
import type { Interface } from '../../src/netstack/interface.js';
import { SeededRng } from '../../src/util/rng.js';

const SNAPSHOT = fileURLToPath(new URL('./tcp-throughput.snapshot.json', import.meta.url));
const LOSSES = [0, 0.001, 0.01, 0.02, 0.05];
/** BBR's rows with reordering: this share of segments arrives half an RTT late. */
const REORDER = 0.1;
const BYTES = 8 * 1024 * 1024;
const LINK_MBIT = 100;
const RTT_MS = 20;
/** Below this share of the snapshot is a regression; above the upper bound the snapshot is stale. */
const TOLERANCE_LOW = 0.8;
const TOLERANCE_HIGH = 1.25;

/**
 * The tcp-cc bench's lossy path (bench/cc-relay.ts between two peers on one host): an RTT
 * under a millisecond, and a relay that holds a share of the datagrams, either way, for a
 * fixed 5 ms, far longer than the RTT.
 */
const SUB_MS = { rttMs: 0.4, holdShare: 0.25, holdMs: 5 };

function run(loss: number, cc: 'bbr' | 'cubic' | 'newreno', reorder = loss > 0 ? 0.01 : 0, seed = 11, path?: typeof SUB_MS): { mbit: number; cwndOk: boolean } {
  const sim = new NetSim({ rttMs: path?.rttMs ?? RTT_MS, mbit: LINK_MBIT, loss, reorder, queuePackets: 200 }, seed, { congestionControl: cc });
  if (path) {
    holdBack(sim.a, path.holdShare, path.holdMs, seed + 300);
    holdBack(sim.b, path.holdShare, path.holdMs, seed + 400);
  }
  const l = sim.b.tcp.listen({ port: 5201 });
  const c = sim.a.tcp.connect(sim.now, { remoteAddr: parseIp('10.0.0.2')!, remotePort: 5201 });
  let server: TcpConnection | undefined;
  let sent = 0;
  let got = 0;
  let bad = -1;
  let cwndOk = true;
  let startAt = -1;
  const chunk = new Uint8Array(128 * 1024);
  const ok = sim.run(600_000, () => {
    for (let e = sim.a.pollEvent(); e; e = sim.a.pollEvent());
    for (let e = sim.b.pollEvent(); e; e = sim.b.pollEvent()) if (e.type === 'tcp-accept') server = l.accept();
    if (c.state === 'ESTABLISHED') {
      if (startAt < 0) startAt = sim.now;
      while (sent < BYTES && c.sendSpace > 0) {
        const part = chunk.subarray(0, Math.min(chunk.length, BYTES - sent, c.sendSpace));
        fillPattern(part, sent);
        sent += c.send(sim.now, part);
      }
      // Restated invariant: the window is a positive, finite byte count of sane size.
      const cw = (c as unknown as { cc: { cwnd: number } }).cc.cwnd;
      if (!(cw > 0) || !Number.isFinite(cw) || cw > 1 << 30) cwndOk = false;
    }
    if (server) {
      for (let d = server.recv(); d; d = server.recv()) {
        for (let i = 0; i < d.length && bad < 0; i += 1009) if (d[i] !== patternByte(got + i)) bad = got + i;
        got += d.length;
      }
    }
    return got >= BYTES;
  });
  assert.ok(ok, `${cc} at ${loss * 100} % loss finished`);
  assert.equal(bad, -1, `corrupt byte at ${bad}`);
  return { mbit: Math.round(((got * 8) / ((sim.now - startAt) * 1000)) * 10) / 10, cwndOk };
}

test('throughput vs loss matches the snapshot (CUBIC, NewReno, BBR)', () => {
  const table: Record<string, number> = {};
  for (const cc of ['cubic', 'newreno', 'bbr'] as const) {
    for (const loss of LOSSES) {
      const r = run(loss, cc);
      assert.ok(r.cwndOk, `${cc} ${loss}: cwnd stayed positive, finite and bounded`);
      assert.ok(r.mbit <= LINK_MBIT, 'never faster than the link');
      table[`${cc} ${loss * 100}% loss (Mbit/s)`] = r.mbit;
    }
  }
  for (const loss of LOSSES) {
    const r = run(loss, 'bbr', REORDER);
    assert.ok(r.cwndOk && r.mbit <= LINK_MBIT);
    table[`bbr ${loss * 100}% loss, ${REORDER * 100}% reordered (Mbit/s)`] = r.mbit;
  }
  for (const cc of ['cubic', 'bbr'] as const) {
    for (const loss of [0, 0.03]) {
      const r = run(loss, cc, 0, 11, SUB_MS);
      assert.ok(r.cwndOk && r.mbit <= LINK_MBIT);
      table[`${cc} ${SUB_MS.rttMs} ms RTT, ${loss * 100}% loss, ${SUB_MS.holdShare * 100}% held ${SUB_MS.holdMs} ms (Mbit/s)`] = r.mbit;
    }
  }
  console.log(table);
  // BBR reads random loss as loss, not congestion: at least CUBIC's rate in every lossy row, and
  // without loss no worse than 0.9× CUBIC (BBR keeps about one BDP queued at most, CUBIC fills
  // the 200-packet queue; in 8 MB both are mostly slow start / Startup). One seed decides
  // which few segments a 0.1 % loss hits, and seed 11 happens to spare CUBIC's slow start
  // (71 Mbit/s there, 22-41 with seeds 1-5), so the comparison takes the median of three seeds.
  const median = (cc: 'bbr' | 'cubic', loss: number): number => {
    const xs = [table[`${cc} ${loss * 100}% loss (Mbit/s)`]!, run(loss, cc, undefined, 1).mbit, run(loss, cc, undefined, 2).mbit].sort((x, y) => x - y);
    return xs[1]!;
  };
  for (const loss of LOSSES) {
    const b = median('bbr', loss);
    const c = median('cubic', loss);
    if (loss > 0) assert.ok(b >= c, `${loss * 100} % loss: BBR ${b} ≥ CUBIC ${c} (median of 3 seeds)`);
    else assert.ok(b >= 0.9 * c, `no loss: BBR ${b} ≥ 0.9 × CUBIC ${c} (median of 3 seeds)`);
  }
  // The sub-ms path with segments held far longer than the RTT: BBR at least CUBIC's rate.
  // Its reordering window once could not grow past SRTT (rack.ts reoWndCap), and could not be
  // let grow while the held segments filled a window of two BDPs, a few segments here (bbr.ts
  // targetCwnd): every held segment was resent, 54.1 Mbit/s without loss (CUBIC 78.8) and
  // 44.6 at 3 %; now 89.3 and 81.8.
  for (const loss of [0, 0.03]) {
    const k = (cc: string): string => `${cc} ${SUB_MS.rttMs} ms RTT, ${loss * 100}% loss, ${SUB_MS.holdShare * 100}% held ${SUB_MS.holdMs} ms (Mbit/s)`;
    assert.ok(table[k('bbr')]! >= table[k('cubic')]!, `${k('bbr')}: ${table[k('bbr')]} ≥ CUBIC ${table[k('cubic')]}`);
  }
  // The point of BBR here: random loss of a few percent costs it a fraction, not the connection.
  assert.ok(table['bbr 5% loss (Mbit/s)']! > 0.5 * LINK_MBIT, `bbr, 5 % loss: ${table['bbr 5% loss (Mbit/s)']}`);
  // Losses must not make a connection collapse: even 5 % keeps a usable rate. Without loss the
  // 8 MB run is short and slow start overshoots the 200-packet drop-tail queue (no HyStart++,
  // RFC 9406, yet), costing an RTO or two, so the floor here is only a third of the link.
  assert.ok(table['cubic 0% loss (Mbit/s)']! > 0.35 * LINK_MBIT, `cubic, no loss: ${table['cubic 0% loss (Mbit/s)']}`);
  assert.ok(table['cubic 5% loss (Mbit/s)']! > 0.5, `cubic, 5 % loss: ${table['cubic 5% loss (Mbit/s)']}`);
  if (process.env.UPDATE_SNAPSHOT || !existsSync(SNAPSHOT)) {
    writeFileSync(SNAPSHOT, JSON.stringify({ link: `${LINK_MBIT} Mbit/s, ${RTT_MS} ms RTT, 8 MB, seed 11`, table }, null, 2) + '\n');
    return;
  }
  const snap = JSON.parse(readFileSync(SNAPSHOT, 'utf8')) as { table: Record<string, number> };
  for (const [k, v] of Object.entries(snap.table)) {
    const now = table[k];
    assert.ok(now !== undefined, `missing row ${k}`);
    assert.ok(now >= v * TOLERANCE_LOW, `${k}: ${now} < ${TOLERANCE_LOW} × snapshot ${v} (regression)`);
    assert.ok(now <= v * TOLERANCE_HIGH, `${k}: ${now} > ${TOLERANCE_HIGH} × snapshot ${v} (better: refresh with UPDATE_SNAPSHOT=1)`);
  }
});

/**
 * A relay in front of `node`'s output that holds `share` of its packets (seeded), data and
 * ACKs alike, for `holdMs` before passing them on, as bench/cc-relay.ts does to datagrams:
 * reordering by a fixed time, whatever the RTT.
 */
function holdBack(node: Interface, share: number, holdMs: number, seed: number): void {
  const rng = new SeededRng(seed);
  const held: { at: number; p: Uint8Array }[] = [];
  const poll = node.pollTransmit.bind(node);
  const timeout = node.pollTimeout.bind(node);
  node.pollTransmit = (now) => {
    for (;;) {
      if (held.length > 0 && held[0]!.at <= now) return held.shift()!.p;
      const p = poll(now);
      if (!p || rng.nextFloat() >= share) return p;
      held.push({ at: now + holdMs, p });
    }
  };
  node.pollTimeout = () => {
    const d = timeout();
    if (held.length === 0 || (d && d.at <= held[0]!.at)) return d;
    return { at: held[0]!.at, reason: 'relay hold' } as ReturnType<typeof timeout>;
  };
}
