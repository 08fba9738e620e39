/**
 * Hostile input to the protocol core: never a throw, never a reply, no state
 * change, and a drop counted (DESIGN §5). Sizes are restated from the whitepaper.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WgSim } from '../harness/wg-sim.js';
import { Device } from '../../src/wireguard/device.js';
import { getCryptoProvider } from '../../src/crypto/index.js';
import { SeededRng } from '../../src/util/rng.js';
import { fromHex } from '../../src/util/bytes.js';
import { mac } from '../../src/crypto/hash.js';
import { mac1Key } from '../../src/wireguard/cookie.js';

const SIZES = { 1: 148, 2: 92, 3: 64 } as const;
const from = { address: '203.0.113.5', port: 4444 };

function established() {
  const sim = new WgSim(21);
  const a = sim.addNode('a');
  const b = sim.addNode('b');
  sim.link(a, b, '10.0.0.1/32', '10.0.0.2/32');
  a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
  sim.run(1000);
  assert.equal(b.received.length, 1);
  return { sim, a, b };
}

function totalDrops(d: Device): number {
  return Object.values(d.stats.dropped).reduce((x, y) => x + y, 0);
}

/** Feeds `data` to b and checks: no throw, nothing sent, nothing delivered, one more drop. */
function expectDropped(b: { device: Device }, now: number, data: Uint8Array, what: string): void {
  const before = totalDrops(b.device);
  const peer = [...b.device.peers()][0];
  const endpoint = peer ? { ...peer.endpoint } : undefined;
  assert.doesNotThrow(() => b.device.handleDatagram(now, data, from), what);
  assert.equal(b.device.pollTransmit(), undefined, `${what}: no reply`);
  assert.equal(b.device.pollPacket(), undefined, `${what}: nothing delivered`);
  assert.equal(totalDrops(b.device), before + 1, `${what}: counted`);
  if (peer) assert.deepEqual(peer.endpoint, endpoint, `${what}: endpoint unchanged`);
}

describe('bad input to the Device', () => {
  test('every length 0–200 and 65535 of random bytes, with every type byte', () => {
    const { sim, b } = established();
    const rng = new SeededRng(1);
    for (let len = 0; len <= 200; len++) {
      const d = new Uint8Array(len);
      rng.fill(d);
      if (len > 0) d[0] = 1 + (len % 4);
      if (len > 3) d[1] = d[2] = d[3] = 0;
      expectDropped(b, sim.now, d, `length ${len}`);
    }
    const huge = new Uint8Array(65535);
    rng.fill(huge);
    huge[0] = 4;
    huge[1] = huge[2] = huge[3] = 0;
    expectDropped(b, sim.now, huge, 'length 65535');
    for (let t = 0; t < 256; t++) {
      const d = new Uint8Array(148);
      d[0] = t;
      expectDropped(b, sim.now, d, `type ${t}`);
    }
  });

  test('nonzero reserved bytes and ±1 byte on each handshake size', () => {
    const { sim, b } = established();
    for (const [type, size] of Object.entries(SIZES)) {
      for (const len of [size - 1, size + 1]) {
        const d = new Uint8Array(len);
        d[0] = Number(type);
        expectDropped(b, sim.now, d, `type ${type} length ${len}`);
      }
      for (let i = 1; i <= 3; i++) {
        const d = new Uint8Array(size);
        d[0] = Number(type);
        d[i] = 1;
        expectDropped(b, sim.now, d, `type ${type} reserved byte ${i}`);
      }
    }
  });

  test('random receiver indices, flipped ciphertext bits, replayed and too-old counters', () => {
    const { sim, a, b } = established();
    // Capture real transport messages from a to b.
    const msgs: Uint8Array[] = [];
    for (let i = 0; i < 9000; i++) {
      a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', i));
      for (let d = a.device.pollTransmit(); d; d = a.device.pollTransmit()) msgs.push(d.data.slice());
    }
    const rng = new SeededRng(2);
    for (let i = 0; i < 50; i++) {
      const d = msgs[0]!.slice();
      rng.fill(d.subarray(4, 8));
      expectDropped(b, sim.now, d, 'random receiver index');
    }
    for (const bit of [16 * 8, 30 * 8 + 3, (msgs[0]!.length - 1) * 8]) {
      const d = msgs[5]!.slice();
      d[bit >> 3]! ^= 1 << (bit & 7);
      expectDropped(b, sim.now, d, `flipped bit ${bit}`);
    }
    // Deliver the newest first, then replay it, then one 8129 behind it.
    b.device.handleDatagram(sim.now, msgs[8999]!.slice(), a.endpoint);
    assert.ok(b.device.pollPacket());
    expectDropped(b, sim.now, msgs[8999]!.slice(), 'replayed counter');
    expectDropped(b, sim.now, msgs[8999 - 8129]!.slice(), 'too-old counter');
  });

  test('a replayed initiation (same timestamp) is dropped; a garbage response racing a real one changes nothing', () => {
    const sim = new WgSim(22);
    const a = sim.addNode('a');
    const b = sim.addNode('b');
    sim.link(a, b, '10.0.0.1/32', '10.0.0.2/32');
    a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
    const init = a.device.pollTransmit()!.data.slice();
    b.device.handleDatagram(sim.now, init.slice(), a.endpoint);
    const response = b.device.pollTransmit()!.data.slice();
    sim.now += 1000;
    expectDropped(b, sim.now, init.slice(), 'replayed initiation');
    // Garbage "response" for a's pending index arrives first.
    const fake = response.slice();
    fake.fill(0x5a, 12, 60);
    const before = totalDrops(a.device);
    a.device.handleDatagram(sim.now, fake, b.endpoint);
    assert.equal(totalDrops(a.device), before + 1);
    assert.equal(a.device.pollTransmit(), undefined);
    a.device.handleDatagram(sim.now, response, b.endpoint);
    assert.equal(a.device.stats.handshakesCompleted, 1, 'the real response still completes');
  });

  test('the 7 low-order X25519 points: refused as peer keys, dropped as ephemerals', () => {
    const points = (JSON.parse(readFileSync(new URL('../vectors/x25519.json', import.meta.url), 'utf8')).lowOrder.points as string[]).map((h) => fromHex(h)!);
    const crypto = getCryptoProvider('native');
    const rng = new SeededRng(3);
    const key = new Uint8Array(32);
    rng.fill(key);
    const d = new Device({ privateKey: key, crypto, rng, wallClock: () => 0 });
    for (const p of points) assert.throws(() => d.addPeer({ publicKey: p }), /low-order/);
    for (const p of points) {
      // A well-formed initiation whose ephemeral is a low-order point: mac1 is valid, DH gives zero.
      const sim2 = new WgSim(23);
      const x = sim2.addNode('x');
      const y = sim2.addNode('y');
      sim2.link(x, y, '10.0.0.1/32', '10.0.0.2/32');
      x.device.handlePacket(0, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
      const init = x.device.pollTransmit()!.data.slice();
      init.set(p, 8);
      // A valid mac1 over the altered message, so the drop comes from the zero DH result.
      init.set(mac(mac1Key(y.publicKey), init.subarray(0, 116)), 116);
      const before = y.device.stats.dropped.badHandshake ?? 0;
      y.device.handleDatagram(0, init, x.endpoint);
      assert.equal(y.device.pollTransmit(), undefined);
      assert.equal(y.device.stats.dropped.badHandshake, before + 1);
    }
  });
});

test('an inner packet its sender did not pad (§5.4.6) is re-encrypted without writing past its datagram', () => {
  const { sim, a, b } = established();
  // a's session with b, used by hand to send one transport message whose 25-byte IPv4 packet
  // is sealed without the padding to 16 a conforming sender adds (a receiver must take it).
  const kp = [...a.device.peers()][0]!.current!;
  const inner = WgSim.packet('10.0.0.1', '10.0.0.1', 7, 25).slice(); // src in a's AllowedIPs; dst routes back to a from b
  const msg = new Uint8Array(16 + inner.length + 16);
  msg[0] = 4;
  new DataView(msg.buffer).setUint32(4, kp.remoteIndex, true);
  const counter = kp.sendCounter++;
  new DataView(msg.buffer).setUint32(8, counter, true);
  getCryptoProvider('native').aeadSeal(msg.subarray(16), kp.send, counter, inner, null);
  // As in a batched receive: the next datagram's bytes follow this one in the same buffer.
  const batch = new Uint8Array(msg.length + 64).fill(0xab);
  batch.set(msg);
  b.device.handleDatagram(sim.now, batch.subarray(0, msg.length), a.endpoint);
  const p = b.device.pollPacket();
  assert.ok(p, 'the unpadded packet is delivered');
  assert.equal(p.length, 25);
  b.device.handlePacket(sim.now, p); // routed on (gateway peer-to-peer): encrypted for a
  assert.ok(b.device.pollTransmit(), 'sent on');
  assert.deepEqual([...batch.subarray(msg.length)], new Array(64).fill(0xab), 'the next datagram is untouched');
});
