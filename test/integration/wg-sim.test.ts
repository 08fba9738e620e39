/**
 * The protocol core through the deterministic simulator: handshakes, the §6
 * timer schedule over ten virtual minutes, loss, rekey under a stream, roaming,
 * the cookie path under load. Constants are restated from the whitepaper here,
 * not imported, so a wrong constant in the code fails these tests.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WgSim } from '../harness/wg-sim.js';

const REKEY_AFTER_TIME = 120_000;
const REJECT_AFTER_TIME = 180_000;
const REKEY_TIMEOUT = 5_000;
const REKEY_ATTEMPT_TIME = 90_000;

function pair(seed = 1, opts: { keepalive?: number; underLoadRate?: number } = {}) {
  const sim = new WgSim(seed);
  const a = sim.addNode('a', opts);
  const b = sim.addNode('b', opts);
  sim.link(a, b, '10.0.0.1/32', '10.0.0.2/32', { keepalive: opts.keepalive });
  return { sim, a, b };
}

const initiations = (sim: WgSim, from: string) => sim.log.filter((l) => l.type === 1 && l.from === from);

describe('WireGuard simulator', () => {
  test('handshake, then data both ways; keepalives are not delivered as packets', () => {
    const { sim, a, b } = pair();
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
    sim.run(1000);
    assert.equal(b.received.length, 1);
    b.device.handlePacket(sim.now, WgSim.packet('10.0.0.2', '10.0.0.1', 2));
    sim.run(2000);
    assert.equal(a.received.length, 1);
    assert.equal(new DataView(a.received[0]!.buffer, a.received[0]!.byteOffset).getUint32(20), 2);
    assert.equal(a.device.stats.handshakesCompleted, 1);
    assert.equal(b.device.stats.handshakesCompleted, 1);
    assert.deepEqual(a.device.stats.dropped, {});
    assert.deepEqual(b.device.stats.dropped, {});
  });

  test('the §6 timer schedule over ten virtual minutes runs in well under a second', () => {
    const start = performance.now();
    const { sim, a, b } = pair(2);
    // A sends one packet every second for 10 minutes; B never sends data.
    for (let t = 0; t < 600_000; t += 1000) {
      sim.run(t);
      a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', t));
    }
    sim.run(600_000);
    assert.equal(b.received.length, 600, 'nothing lost to key changes');
    // A (initiator, sending) rekeys after RekeyAfterTime: about every 120 s.
    const rekeys = initiations(sim, 'a').map((l) => l.at);
    assert.ok(rekeys.length >= 5 && rekeys.length <= 6, `${rekeys.length} initiations`);
    for (let i = 1; i < rekeys.length; i++) {
      const gap = rekeys[i]! - rekeys[i - 1]!;
      assert.ok(gap >= REKEY_AFTER_TIME && gap <= REKEY_AFTER_TIME + 2000, `rekey gap ${gap}`);
    }
    // B receives data and sends none: a passive keepalive within KeepaliveTimeout of data (§6.5).
    const bTransport = sim.log.filter((l) => l.from === 'b' && l.type === 4);
    assert.ok(bTransport.length > 0);
    for (const k of bTransport) assert.equal(k.len, 32, 'B only ever sends keepalives');
    assert.ok(performance.now() - start < 3000, 'simulated fast');
  });

  test('persistent keepalive every N seconds when idle', () => {
    const { sim, a } = pair(3, { keepalive: 25 });
    a.device.initiateHandshake(sim.now, [...a.device.peers()][0]!);
    sim.run(200_000);
    const ka = sim.log.filter((l) => l.from === 'a' && l.type === 4 && l.len === 32).map((l) => l.at);
    assert.ok(ka.length >= 6, `${ka.length} keepalives`);
    for (let i = 1; i < ka.length; i++) assert.ok(ka[i]! - ka[i - 1]! <= 25_000 + 1, `gap ${ka[i]! - ka[i - 1]!}`);
  });

  test('an unanswered handshake is retried every RekeyTimeout + jitter and abandoned after RekeyAttemptTime', () => {
    const { sim, a } = pair(4);
    sim.conditions = { cut: true };
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
    sim.run(200_000);
    const inits = initiations(sim, 'a').map((l) => l.at);
    for (let i = 1; i < inits.length; i++) {
      const gap = inits[i]! - inits[i - 1]!;
      assert.ok(gap >= REKEY_TIMEOUT && gap <= REKEY_TIMEOUT + 333, `retry gap ${gap}`);
    }
    assert.ok(inits[inits.length - 1]! <= REKEY_ATTEMPT_TIME + REKEY_TIMEOUT + 400, 'gave up');
    assert.equal(inits.length, REKEY_ATTEMPT_TIME / REKEY_TIMEOUT + 1);
    let failed = 0;
    for (let e = a.device.pollEvent(); e; e = a.device.pollEvent()) if (e.type === 'handshake-failed') failed++;
    assert.equal(failed, 1);
  });

  test('keys are zeroed after 3 × RejectAfterTime without a new handshake', () => {
    const { sim, a, b } = pair(5);
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
    sim.run(1000);
    assert.equal(b.received.length, 1);
    sim.conditions = { cut: true };
    sim.run(REJECT_AFTER_TIME * 3 + 2000);
    const peer = [...a.device.peers()][0]!;
    assert.equal(peer.current, undefined);
    assert.equal(peer.previous, undefined);
  });

  test('a handshake completes under 50 % loss', () => {
    const { sim, a, b } = pair(6);
    sim.conditions = { loss: 0.5, delayMs: 10 };
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
    sim.run(60_000);
    assert.ok(a.device.stats.handshakesCompleted >= 1);
    assert.ok(b.device.stats.handshakesCompleted + a.device.stats.handshakesCompleted >= 1);
  });

  test('a continuous stream across a rekey loses nothing to the key change (reordered link)', () => {
    const { sim, a, b } = pair(7);
    sim.conditions = { delayMs: 20, jitterMs: 15 };
    let n = 0;
    for (let t = 0; t < 130_000; t += 50) {
      sim.run(t);
      a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', n++));
    }
    sim.run(140_000);
    assert.equal(b.received.length, n);
    assert.ok(initiations(sim, 'a').length >= 2, 'a rekey happened');
    assert.equal(b.device.stats.dropped.replay ?? 0, 0);
  });

  test('roaming: the endpoint moves only on an authenticated packet', () => {
    const { sim, a, b } = pair(8);
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
    sim.run(1000);
    const peerOfB = [...b.device.peers()][0]!;
    assert.deepEqual(peerOfB.endpoint, a.endpoint);
    // Garbage from a new address does not move it.
    b.device.handleDatagram(sim.now, new Uint8Array(64).fill(4), { address: '203.0.113.9', port: 1 });
    assert.deepEqual(peerOfB.endpoint, a.endpoint);
    // A moves: its next packet comes from a new address.
    a.endpoint.address = '192.0.2.77';
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 2));
    sim.run(2000);
    assert.deepEqual(peerOfB.endpoint, { address: '192.0.2.77', port: 51820 });
    assert.equal(b.received.length, 2);
  });

  test('under load the responder demands a cookie; the initiator gets through with mac2', () => {
    const { sim, a, b } = pair(9, { underLoadRate: 0 });
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
    sim.run(20_000);
    assert.ok(b.device.stats.cookieRepliesSent >= 1, 'a cookie reply was sent');
    assert.equal(b.received.length, 1, 'the retry with mac2 succeeded');
  });

  test('many peers on one device route by allowed IPs', () => {
    const sim = new WgSim(10);
    const hub = sim.addNode('hub');
    const spokes = Array.from({ length: 20 }, (_, i) => sim.addNode(`s${i}`));
    spokes.forEach((s, i) => sim.link(hub, s, '10.9.0.1/32', `10.9.1.${i + 1}/32`));
    spokes.forEach((s, i) => hub.device.handlePacket(sim.now, WgSim.packet('10.9.0.1', `10.9.1.${i + 1}`, i)));
    sim.run(5000);
    spokes.forEach((s) => assert.equal(s.received.length, 1));
  });
});
