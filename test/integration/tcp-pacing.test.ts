/**
 * Pacing and BBR's queue in the deterministic simulator: a 100 Mbit/s link with a 20 ms
 * propagation RTT and a 200-packet drop-tail queue (about 1.2 BDP). BBR paces at its
 * bandwidth estimate and keeps about one BDP in flight, so in steady state the RTT stays
 * near the propagation delay and the queue never overflows; CUBIC fills the queue until it
 * drops (the bufferbloat that draft-ietf-ccwg-bbr's introduction sets out to avoid). The pacer releases
 * segments through the stack's 'tcp pacing' deadline, not a timer per segment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetSim } from '../harness/tcp-sim.js';
import { parseIp } from '../../src/util/ip.js';
import type { TcpConnection } from '../../src/netstack/types.js';

const RTT_MS = 20;
const BYTES = 16 * 1024 * 1024;

function bulk(cc: 'bbr' | 'cubic'): { srttLate: number; dropped: number; mbit: number; paceDeadlines: number } {
  const sim = new NetSim({ rttMs: RTT_MS, mbit: 100, queuePackets: 200 }, 11, { congestionControl: cc });
  const l = sim.b.tcp.listen({ port: 5201 });
  const c = sim.a.tcp.connect(sim.now, { remoteAddr: parseIp('10.0.0.2')!, remotePort: 5201 });
  let server: TcpConnection | undefined;
  let sent = 0;
  let got = 0;
  let paceDeadlines = 0;
  const srtts: number[] = [];
  let next = 0;
  const chunk = new Uint8Array(128 * 1024);
  const ok = sim.run(600_000, () => {
    for (let e = sim.b.pollEvent(); e; e = sim.b.pollEvent()) if (e.type === 'tcp-accept') server = l.accept();
    for (let e = sim.a.pollEvent(); e; e = sim.a.pollEvent());
    if (c.state === 'ESTABLISHED') while (sent < BYTES && c.sendSpace > 0) sent += c.send(sim.now, chunk.subarray(0, Math.min(chunk.length, BYTES - sent, c.sendSpace)));
    if (server) for (let d = server.recv(); d; d = server.recv()) got += d.length;
    if (sim.a.pollTimeout()?.reason === 'tcp pacing') paceDeadlines++;
    if (sim.now >= next) {
      srtts.push((c as unknown as { rtt: { srtt: number } }).rtt.srtt);
      next = sim.now + 100;
    }
    return got >= BYTES;
  });
  assert.ok(ok, `${cc} finished`);
  const late = srtts.slice(Math.floor(srtts.length / 2)).sort((a, b) => a - b);
  return { srttLate: late[Math.floor(late.length / 2)]!, dropped: sim.dropped, mbit: (got * 8) / (sim.now * 1000), paceDeadlines };
}

test('BBR paces through the pacing deadline and keeps the bottleneck queue short; CUBIC fills it', () => {
  const bbr = bulk('bbr');
  const cubic = bulk('cubic');
  assert.ok(bbr.paceDeadlines > 0, 'BBR waits on the tcp pacing deadline');
  assert.equal(cubic.paceDeadlines, 0, 'CUBIC is not paced (PACE_LOSS_BASED is off)');
  // Steady state (second half): BBR's RTT within a quarter of the propagation delay, no drop.
  assert.ok(bbr.srttLate < 1.25 * RTT_MS, `BBR srtt ${bbr.srttLate} ms`);
  assert.equal(bbr.dropped, 0, 'BBR never overflowed the 200-packet queue');
  // CUBIC's standing queue: well above the propagation delay, and drops.
  assert.ok(cubic.srttLate > 1.4 * RTT_MS, `CUBIC srtt ${cubic.srttLate} ms`);
  assert.ok(cubic.dropped > 0);
  assert.ok(bbr.mbit >= cubic.mbit, `BBR ${bbr.mbit.toFixed(1)} ≥ CUBIC ${cubic.mbit.toFixed(1)} Mbit/s`);
});
