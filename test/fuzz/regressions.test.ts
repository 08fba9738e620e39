/**
 * What the fuzz targets found, kept as plain regression tests (each names the
 * target that found it and the invariant it broke).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WgSim } from '../harness/wg-sim.js';
import { Device } from '../../src/wireguard/device.js';
import { UapiConnection, UapiErrno, uapiGet, type UapiHost } from '../../src/wireguard/uapi.js';
import { getCryptoProvider } from '../../src/crypto/index.js';
import { generatePrivateKey } from '../../src/crypto/keys.js';
import { SeededRng } from '../../src/util/rng.js';
import { toHex } from '../../src/util/bytes.js';

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

  // uapi target, "a failed set changes nothing" and "errors are UapiErrors": a low-order public key
  // (here all zeros) threw a WgnetError out of addPeer half-way through the set: the answer was
  // errno=-55 and the private key set on the line before it stayed changed.
  test('uapi: a set naming a low-order public key answers errno=-22 and changes nothing', async () => {
    const crypto = getCryptoProvider('native');
    const device = new Device({ privateKey: generatePrivateKey(new SeededRng(1)), crypto, rng: new SeededRng(2), wallClock: () => 0 });
    const h: UapiHost = { device, listenPort: () => 51820, setListenPort: () => {}, fwmark: () => 0, setFwmark: () => {} };
    const before = uapiGet(h);
    let out = '';
    const c = new UapiConnection(h, (s) => void (out += s), () => {});
    c.feed(`set=1\nprivate_key=${toHex(generatePrivateKey(new SeededRng(3)))}\npublic_key=${'00'.repeat(32)}\nallowed_ip=10.0.0.0/8\n\n`);
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    assert.equal(out, `errno=${UapiErrno.INVALID}\n\n`);
    assert.equal(uapiGet(h), before, 'the private key on the line before is not applied');
  });
});
