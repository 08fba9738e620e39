/** The Interface never throws on what arrives from the tunnel, and answers what it should. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Interface } from './interface.js';
import { SeededRng } from '../util/rng.js';
import { checksum } from '../util/checksum.js';

function iface(): Interface {
  return new Interface({ addresses: ['10.0.0.1/24', 'fd00::1/64'], rng: new SeededRng(1) });
}

function echoRequest(srcLast: number, offset = 3): Uint8Array {
  const ab = new ArrayBuffer(28 + offset);
  const p = new Uint8Array(ab, offset, 28); // unaligned on purpose
  p.set([0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, srcLast, 10, 0, 0, 1]);
  const c = checksum(p, 0, 20);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p.set([8, 0, 0, 0, 0x12, 0x34, 0, 7], 20);
  const k = checksum(p, 20, 28);
  p[22] = k >> 8;
  p[23] = k & 0xff;
  return p;
}

test('answers an ICMP echo request (unaligned input) with a valid echo reply', () => {
  const i = iface();
  i.handleInput(0, echoRequest(2));
  const r = i.pollTransmit(0)!;
  assert.equal(r[9], 1);
  assert.deepEqual([...r.subarray(12, 16)], [10, 0, 0, 1]);
  assert.deepEqual([...r.subarray(16, 20)], [10, 0, 0, 2]);
  assert.equal(r[20], 0, 'echo reply');
  assert.equal(checksum(r, 0, 20), 0);
  assert.equal(checksum(r, 20, r.length), 0);
  assert.ok(r.byteOffset >= 16, 'headroom for the WireGuard header');
});

test('a UDP datagram to a closed port gets ICMP port unreachable', () => {
  const i = iface();
  const u = new Uint8Array(28 + 4);
  u.set([0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
  const c = checksum(u, 0, 20);
  u[10] = c >> 8;
  u[11] = c & 0xff;
  u.set([0x30, 0x39, 0, 99, 0, 12, 0, 0, 1, 2, 3, 4], 20); // checksum 0: none (IPv4)
  i.handleInput(0, u);
  const r = i.pollTransmit(0)!;
  assert.equal(r[9], 1);
  assert.deepEqual([r[20], r[21]], [3, 3]);
});

test('fuzz: 20,000 random and bit-flipped packets never throw', () => {
  const i = iface();
  const rng = new SeededRng(2);
  const base = echoRequest(2, 0);
  for (let n = 0; n < 20_000; n++) {
    let p: Uint8Array;
    if (n % 2 === 0) {
      p = new Uint8Array(rng.nextU32() % 120);
      rng.fill(p);
      if (p.length > 0) p[0] = (n % 4 === 0 ? 0x45 : 0x60) | (p[0]! & 0x0f);
    } else {
      p = base.slice();
      p[rng.nextU32() % p.length]! ^= 1 << (rng.nextU32() % 8);
    }
    assert.doesNotThrow(() => i.handleInput(n, p));
    while (i.pollTransmit(n));
    while (i.pollEvent());
  }
  assert.ok(Object.keys(i.stats).some((k) => k.startsWith('drop.')), 'drops were counted');
});

test('counters are typed: names are checked where they are read (DESIGN §6)', () => {
  const i = iface();
  i.handleInput(0, echoRequest(2));
  assert.equal(i.stats.rxPackets, 1);
  assert.equal(i.stats['drop.icmp.checksum'], undefined, 'a name appears once counted');
  const bad = echoRequest(2);
  bad[27]! ^= 1;
  i.handleInput(0, bad);
  assert.equal(i.statsSnapshot()['drop.icmp.checksum'], 1);
  // @ts-expect-error a misspelled counter name does not compile
  assert.equal(i.stats['drop.icmp.chekcsum'], undefined);
  // @ts-expect-error TCP's names are the TcpLayer's, not the Interface's
  assert.equal(i.stats.rxSegments, undefined);
});
