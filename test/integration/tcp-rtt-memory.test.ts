/**
 * RFC 9040 temporal sharing: a new connection to a host a recent connection measured times
 * its handshake from that RTT (RttMemory in netstack/tcp/rtt.ts), not RFC 6298's blind 1 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetSim } from '../harness/tcp-sim.js';
import { parseIp } from '../../src/util/ip.js';
import { RttEstimator, RttMemory, RTT_MEMORY_MS } from '../../src/netstack/tcp/rtt.js';
import type { TcpConnection } from '../../src/netstack/types.js';
import type { TcpLayer } from '../../src/netstack/tcp/layer.js';

/** When each SYN of a connect into a black hole leaves, relative to the connect. */
function synTimes(sim: NetSim): number[] {
  sim.link.loss = 1; // everything from now on is lost
  const times: number[] = [];
  const start = sim.now;
  const poll = sim.a.pollTransmit.bind(sim.a);
  sim.a.pollTransmit = (now) => {
    const p = poll(now);
    if (p) times.push(now - start);
    return p;
  };
  const c = sim.a.tcp.connect(sim.now, { remoteAddr: parseIp('10.0.0.2')!, remotePort: 5001 });
  sim.run(start + 2500, () => false);
  c.abort(sim.now);
  return times;
}

test('a SYN to a host with a remembered RTT is resent after that RTO; to an unknown host after 1 s', () => {
  const fresh = new NetSim({ rttMs: 20, mbit: 100 }, 7);
  fresh.b.tcp.listen({ port: 5001 });
  assert.equal(synTimes(fresh)[1], 1000, 'RFC 6298 §2.1: 1 s without memory');

  const sim = new NetSim({ rttMs: 20, mbit: 100 }, 7);
  const l = sim.b.tcp.listen({ port: 5001 });
  const c = sim.a.tcp.connect(sim.now, { remoteAddr: parseIp('10.0.0.2')!, remotePort: 5001 });
  let server: TcpConnection | undefined;
  let sent = false;
  // One short exchange and a close from both ends; then past TIME-WAIT, when the connection leaves its RTT.
  sim.run(5000, () => {
    for (let e = sim.a.pollEvent(); e; e = sim.a.pollEvent()) void e;
    for (let e = sim.b.pollEvent(); e; e = sim.b.pollEvent()) if (e.type === 'tcp-accept') server = l.accept();
    if (c.state === 'ESTABLISHED' && !sent) {
      c.send(sim.now, new Uint8Array(3000));
      c.shutdown(sim.now);
      sent = true;
    }
    if (server) {
      while (server.recv());
      if (server.state === 'CLOSE-WAIT') server.shutdown(sim.now);
    }
    return false;
  });
  assert.equal((sim.a.tcp as TcpLayer).connectionCount + (sim.b.tcp as TcpLayer).connectionCount, 0, 'both connections gone');
  const t = synTimes(sim);
  assert.ok(t[1]! >= 200 && t[1]! < 400, `the second SYN left ${t[1]} ms after the first (srtt ~20 ms, RTO floor 200 ms)`);
});

test('RttMemory: forgets after RTT_MEMORY_MS and past its host cap; unsampled connections leave nothing', () => {
  const m = new RttMemory();
  const rtt = new RttEstimator();
  m.remember(1, rtt, 0);
  assert.equal(m.size, 0, 'no sample, nothing remembered');
  rtt.sample(50, 0);
  m.remember(1, rtt, 0);
  assert.equal(m.initialRto(1, 1000), 200, '50 ms + 4 x 25 ms, raised to the 200 ms floor');
  rtt.sample(400, 0);
  m.remember(1, rtt, 0);
  const rto = m.initialRto(1, 1000);
  assert.ok(rto > 200 && rto <= 1000, `${rto}`);
  assert.equal(m.initialRto(1, RTT_MEMORY_MS + 1), 1000, 'too old: RFC 6298 again');
  assert.equal(m.size, 0);
  for (let h = 0; h < 5000; h++) m.remember(h, rtt, 0);
  assert.equal(m.size, 4096);
  assert.equal(m.initialRto(0, 1), 1000, 'the oldest host was forgotten');
  assert.ok(m.initialRto(4999, 1) < 1000);
});
