/**
 * Fuzz target: WireGuard datagrams into a Device (all four message types, with
 * valid and invalid mac1, genuine messages replayed, mutated or sent from a
 * stranger's address). Invariants, per datagram (DESIGN §5):
 * - no exception escapes handleDatagram;
 * - it is either dropped and counted exactly once, or it did something a genuine
 *   message does (a packet delivered, a handshake answered or completed, a
 *   keepalive or a cookie taken): nothing vanishes uncounted;
 * - nothing but a handshake answer or a cookie reply is ever sent in reply;
 * and afterwards a legitimate handshake and data still work both ways.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WgSim, type SimNode } from '../harness/wg-sim.js';
import type { Device, Endpoint } from '../../src/wireguard/device.js';
import { mac } from '../../src/crypto/hash.js';
import { mac1Key } from '../../src/wireguard/cookie.js';
import { budget, check, corpus, unaligned } from './lib.js';

interface World {
  sim: WgSim;
  a: SimNode;
  b: SimNode;
  /** Genuine datagrams seen or made, by the node they were for. */
  pool: { a: Uint8Array[]; b: Uint8Array[] };
}

/**
 * Two peers with a session each way, plus genuine messages of every type that were
 * never delivered: an initiation b made and a's response and cookie reply to it,
 * and transport messages from a.
 */
export function world(seed: number): World {
  const sim = new WgSim(seed);
  const a = sim.addNode('a', { underLoadRate: 3 });
  const b = sim.addNode('b');
  sim.link(a, b, '10.0.0.1/32', '10.0.0.2/32');
  const pool = { a: [] as Uint8Array[], b: [] as Uint8Array[] };
  for (const [n, key] of [[a, 'a'], [b, 'b']] as const) {
    const orig = n.device.handleDatagram.bind(n.device);
    n.device.handleDatagram = (now: number, data: Uint8Array, from: Endpoint) => {
      pool[key].push(data.slice());
      orig(now, data, from);
    };
  }
  a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 1));
  sim.run(1000);
  b.device.handlePacket(sim.now, WgSim.packet('10.0.0.2', '10.0.0.1', 2));
  sim.run(2000);
  assert.equal(a.received.length, 1);
  assert.equal(b.received.length, 1);
  // b initiates again (6 s later); its initiation reaches a four times at once, so a is under load and answers the last with a cookie.
  sim.now += 6000;
  const peerA = [...b.device.peers()][0]!;
  b.device.initiateHandshake(sim.now, peerA);
  const init = b.device.pollTransmit()!.data.slice();
  pool.a.push(init);
  for (let i = 0; i < 4; i++) a.device.handleDatagram(sim.now, init.slice(), b.endpoint);
  for (let d = a.device.pollTransmit(); d; d = a.device.pollTransmit()) pool.b.push(d.data.slice());
  assert.ok(pool.b.some((m) => m[0] === 2) && pool.b.some((m) => m[0] === 3), 'a response and a cookie reply for b');
  // Transport messages from a that b has not seen.
  for (let i = 0; i < 8; i++) a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 100 + i, 64 + i * 16));
  a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.9', 999)); // no route: dropped at a, counted there
  a.device.handlePacket(sim.now, WgSim.packet('10.9.9.9', '10.0.0.2', 998)); // a source b does not allow from a
  const short = WgSim.packet('10.0.0.1', '10.0.0.2', 997);
  short[3] = 10; // an inner IPv4 total length below its header
  a.device.handlePacket(sim.now, short);
  for (let d = a.device.pollTransmit(); d; d = a.device.pollTransmit()) pool.b.push(d.data.slice());
  while (b.device.pollTransmit());
  return { sim, a, b, pool };
}

interface Snapshot {
  drops: number;
  rxPackets: number;
  handshakes: number;
  tx: number;
  peerRx: number;
  cookieAt: number;
}

function snapshot(d: Device, now: number): Snapshot {
  let peerRx = 0;
  let cookieAt = 0;
  for (const p of d.peers()) {
    peerRx += p.rxBytes;
    // A cookie reply taken sets the peer's cookie time to now (a replayed one again, as in wireguard-go: harmless).
    if ((p.cookie as unknown as { cookieAt: number }).cookieAt === now) cookieAt++;
  }
  return {
    drops: Object.values(d.stats.dropped).reduce((x, y) => x + y, 0),
    rxPackets: d.stats.rxPackets,
    handshakes: d.stats.handshakesCompleted,
    tx: d.stats.txDatagrams,
    peerRx,
    cookieAt,
  };
}

/** A valid mac1 over the message as it is (the type's mac1 offset), so it gets past the cheap check. */
function withMac1(m: Uint8Array, receiverPublic: Uint8Array): Uint8Array {
  const off = m.length === 148 && m[0] === 1 ? 116 : m.length === 92 && m[0] === 2 ? 60 : -1;
  if (off < 0) return m;
  const c = m.slice();
  c.set(mac(mac1Key(receiverPublic), c.subarray(0, off)), off);
  return c;
}

type Pick = { kind: 'pool'; i: number } | { kind: 'random'; data: Uint8Array } | { kind: 'corpus'; i: number };

interface Step {
  to: 'a' | 'b';
  msg: Pick;
  fixMac1: boolean;
  zeroReserved: boolean;
  from: 'peer' | 'stranger' | 'v6';
  dt: number;
}

const sizes = fc.constantFrom(0, 1, 4, 16, 31, 32, 48, 63, 64, 65, 91, 92, 93, 147, 148, 149, 1500);
const randomMsg = fc
  .tuple(fc.constantFrom(1, 2, 3, 4, 0, 5, 255), sizes, fc.uint8Array({ maxLength: 1500 }))
  .map(([type, len, fill]) => {
    const m = new Uint8Array(len);
    m.set(fill.subarray(0, len));
    if (len > 0) m[0] = type;
    if (len >= 4) m[1] = m[2] = m[3] = 0;
    return m;
  });

const stepArb: fc.Arbitrary<Step> = fc.record({
  to: fc.constantFrom('a' as const, 'b' as const, 'b' as const),
  msg: fc.oneof(
    { weight: 10, arbitrary: fc.nat().map((i) => ({ kind: 'pool' as const, i })) },
    { weight: 3, arbitrary: randomMsg.map((data) => ({ kind: 'random' as const, data })) },
    { weight: 1, arbitrary: fc.nat().map((i) => ({ kind: 'corpus' as const, i })) },
  ),
  fixMac1: fc.boolean(),
  zeroReserved: fc.boolean(),
  from: fc.constantFrom('peer' as const, 'stranger' as const, 'v6' as const),
  dt: fc.constantFrom(0, 0, 0, 0, 1, 19, 21, 1000, 5000, 190_000),
});

/** Mutations are applied to pool messages by index at run time (the pool is built per case). */
const mutationsArb = fc.array(fc.tuple(fc.nat(), fc.array(fc.record({ at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }), { maxLength: 4 })), { maxLength: 8 });

const CORPUS = corpus('wireguard').map((c) => c.data);
/** Drop reasons reached over all cases (printed with WGNET_FUZZ_STATS=1: what the fuzzer covers). */
const DROPS = new Map<string, number>();

export function run(seed: number, steps: Step[], muts: [number, { at: number; v: number }[]][]): void {
  const w = world(seed);
  const { sim, a, b } = w;
  const mutByStep = new Map(muts.map(([i, m]) => [i % Math.max(1, steps.length), m]));
  steps.forEach((s, idx) => {
    const target = s.to === 'a' ? a : b;
    const other = s.to === 'a' ? b : a;
    const pool = [...w.pool[s.to], ...w.pool[s.to === 'a' ? 'b' : 'a']];
    let m: Uint8Array;
    if (s.msg.kind === 'pool') m = pool[s.msg.i % pool.length]!.slice();
    else if (s.msg.kind === 'corpus') m = CORPUS.length ? CORPUS[s.msg.i % CORPUS.length]!.slice() : new Uint8Array(0);
    else m = s.msg.data.slice();
    for (const { at, v } of mutByStep.get(idx) ?? []) if (m.length > 0) m[at % m.length] = v;
    if (s.zeroReserved && m.length >= 4) m[1] = m[2] = m[3] = 0;
    if (s.fixMac1) m = withMac1(m, target.publicKey);
    const from: Endpoint = s.from === 'peer' ? other.endpoint : s.from === 'stranger' ? { address: '203.0.113.7', port: 9 } : { address: '2001:db8::7', port: 65535 };
    sim.now += s.dt;
    const d = target.device;
    if ((d.pollTimeout()?.at ?? Infinity) <= sim.now) d.handleTimeout(sim.now);
    while (d.pollTransmit());
    while (d.pollPacket());
    const before = { ...snapshot(d, sim.now), cookieAt: 0 };
    const what = `step ${idx}: ${m.length} bytes of type ${m[0]} to ${s.to}`;
    assert.doesNotThrow(() => d.handleDatagram(sim.now, unaligned(m), from), what);
    const after = snapshot(d, sim.now);
    const dropped = after.drops - before.drops;
    assert.ok(dropped === 0 || dropped === 1, `${what}: ${dropped} drops counted for one datagram`);
    const effect = after.rxPackets > before.rxPackets || after.handshakes > before.handshakes || after.tx > before.tx || after.peerRx > before.peerRx || (m[0] === 3 && after.cookieAt > 0);
    assert.ok(dropped === 1 || effect, `${what}: neither counted as a drop nor taken`);
    // Replies: only handshake responses, cookie replies, or transport (staged data / keepalive after a handshake).
    for (let t = d.pollTransmit(); t; t = d.pollTransmit()) assert.ok([2, 3, 4].includes(t.data[0]!), `${what}: sent a type ${t.data[0]} message`);
    for (let p = d.pollPacket(); p; p = d.pollPacket()) assert.ok(p.length >= 20, `${what}: delivered a ${p.length}-byte packet`);
  });
  for (const n of [a, b]) for (const [k, v] of Object.entries(n.device.stats.dropped)) DROPS.set(k, (DROPS.get(k) ?? 0) + v);
  // Afterwards: a new handshake (initiated by a, past RekeyTimeout) and data both ways.
  sim.now += 6000;
  sim.run(sim.now);
  const hsA = a.device.stats.handshakesCompleted;
  a.received.length = 0;
  b.received.length = 0;
  a.device.initiateHandshake(sim.now, [...a.device.peers()][0]!);
  sim.run(sim.now + 20_000);
  if (a.device.stats.handshakesCompleted <= hsA && process.env.WGNET_FUZZ_DEBUG) console.log(sim.log.slice(-12), a.device.stats, b.device.stats, sim.now);
  assert.ok(a.device.stats.handshakesCompleted > hsA, 'a legitimate handshake completes after the fuzzing');
  a.device.handlePacket(sim.now, WgSim.packet('10.0.0.1', '10.0.0.2', 7));
  sim.run(sim.now + 20_000);
  assert.equal(b.received.length, 1, 'a -> b data after the fuzzing');
  b.device.handlePacket(sim.now, WgSim.packet('10.0.0.2', '10.0.0.1', 8));
  sim.run(sim.now + 20_000);
  assert.equal(a.received.length, 1, 'b -> a data after the fuzzing');
}

describe('fuzz: WireGuard messages into a Device', () => {
  test('corpus entries, each alone and with a valid mac1, to both ends', () => {
    const steps: Step[] = [];
    CORPUS.forEach((_, i) => {
      for (const to of ['a', 'b'] as const) for (const fixMac1 of [false, true]) steps.push({ to, msg: { kind: 'corpus', i }, fixMac1, zeroReserved: false, from: 'peer', dt: 0 });
    });
    run(1, steps, []);
  });

  test('random, mutated and replayed messages: every drop counted, sessions survive', () => {
    check(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.array(stepArb, { minLength: 1, maxLength: 40 }), mutationsArb, (seed, steps, muts) => run(seed, steps, muts)),
      budget('wireguard', 1500),
    );
    if (process.env.WGNET_FUZZ_STATS) console.log('drop reasons reached:', Object.fromEntries([...DROPS].sort()));
  });
});
