/**
 * What the fuzz targets found, kept as plain regression tests (each names the
 * target that found it and the invariant it broke).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WgSim } from '../harness/wg-sim.js';

describe('regressions found by the fuzz targets', () => {
  // wireguard target, "a legitimate handshake completes afterwards": when the timers ran late (a
  // suspend, a clock jump) a handshake retry and the zero-keys deadline (3 x RejectAfterTime) were
  // due in one handleTimeout: the retry went out, then zeroing the keys forgot it, so its response
  // was dropped as unknownIndex and no retry timer was left. A packet sent meanwhile waited for ever.
  test('wireguard: keys zeroed in the same late timer run as a handshake retry; the handshake still completes', () => {
    const sim = new WgSim(1);
    const a = sim.addNode('a');
    const b = sim.addNode('b');
    sim.link(a, b, '10.0.0.1/32', '10.0.0.2/32');
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
    sim.run(1000);
    assert.equal(b.received.length, 1);
    // b never answers with data, so a's "no reply" timer (15 s) starts a handshake at 16 s; its
    // retries never reach b (the link is cut) and give up; then a's timers do not run for 10 minutes.
    sim.conditions = { delayMs: 5, cut: true };
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 2));
    sim.run(20_000);
    sim.conditions = { delayMs: 5 };
    sim.now = 600_000;
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 3));
    sim.run(sim.now + 30_000);
    assert.ok(b.received.length >= 2, 'the packet sent after the late timers arrives');
  });
});
