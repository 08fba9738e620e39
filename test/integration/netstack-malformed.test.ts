/**
 * Hostile and odd IP input: malformed headers are dropped and counted (never a throw), and
 * fragments are reassembled in any order with duplicates, while overlaps drop the datagram
 * (RFC 5722 for IPv6, applied to IPv4 as well) and incomplete datagrams expire.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Interface } from '../../src/netstack/interface.js';
import { SeededRng } from '../../src/util/rng.js';
import { checksum, pseudoHeaderSum, sumBytes, finishChecksum } from '../../src/util/checksum.js';
import { mustParseIp } from '../../src/util/ip.js';

const US = mustParseIp('10.0.0.1');
const THEM = mustParseIp('10.0.0.2');

function iface(): Interface {
  return new Interface({ addresses: ['10.0.0.1/24', 'fd00::1/64'], rng: new SeededRng(5) });
}

function drops(i: Interface): number {
  let n = 0;
  for (const [k, v] of Object.entries(i.stats)) if (k.startsWith('drop.')) n += v;
  return n;
}

/** A UDP datagram (header + payload) with a correct checksum (RFC 768). */
function udp(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  u[0] = sport >> 8; u[1] = sport & 0xff; u[2] = dport >> 8; u[3] = dport & 0xff;
  u[4] = u.length >> 8; u[5] = u.length & 0xff;
  u.set(payload, 8);
  let c = finishChecksum(pseudoHeaderSum(src, dst, 17, u.length) + sumBytes(u));
  if (c === 0) c = 0xffff; // RFC 768: a computed zero is sent as all ones
  u[6] = c >> 8; u[7] = c & 0xff;
  return u;
}

interface V4 { proto: number; payload: Uint8Array; id?: number; offset8?: number; more?: boolean; ihl?: number; totalLength?: number; badChecksum?: boolean }

/** An IPv4 packet (RFC 791 §3.1) at an odd byte offset. */
function ipv4(b: V4): Uint8Array {
  const ihl = b.ihl ?? 5;
  const hl = Math.max(ihl, 5) * 4;
  const p = new Uint8Array(1 + hl + b.payload.length).subarray(1);
  const tl = b.totalLength ?? p.length;
  p[0] = 0x40 | ihl;
  p[2] = tl >> 8; p[3] = tl & 0xff;
  const id = b.id ?? 1;
  p[4] = id >> 8; p[5] = id & 0xff;
  const fo = ((b.more ? 0x2000 : 0) | (b.offset8 ?? 0)) & 0xffff;
  p[6] = fo >> 8; p[7] = fo & 0xff;
  p[8] = 64; p[9] = b.proto;
  p.set(THEM, 12); p.set(US, 16);
  let c = checksum(p, 0, hl);
  if (b.badChecksum) c ^= 0x0101;
  p[10] = c >> 8; p[11] = c & 0xff;
  p.set(b.payload, hl);
  return p;
}

test('malformed IPv4 headers are dropped and counted, with nothing sent', () => {
  const good = udp(THEM, US, 1000, 9, new Uint8Array(4));
  const cases: [string, Uint8Array][] = [
    ['bad header checksum', ipv4({ proto: 17, payload: good, badChecksum: true })],
    ['IHL below 5', ipv4({ proto: 17, payload: good, ihl: 4 })],
    ['total length beyond the buffer', ipv4({ proto: 17, payload: good, totalLength: 20 + good.length + 1 })],
    ['total length below the header', ipv4({ proto: 17, payload: good, totalLength: 19 })],
    ['fragment running past 65535', ipv4({ proto: 17, payload: new Uint8Array(16), offset8: 8191, more: true })],
    ['truncated to 10 bytes', ipv4({ proto: 17, payload: good }).subarray(0, 10)],
    ['version 7', (() => { const p = ipv4({ proto: 17, payload: good }); p[0] = 0x75; return p; })()],
  ];
  for (const [what, pkt] of cases) {
    const i = iface();
    assert.doesNotThrow(() => i.handleInput(0, pkt), what);
    assert.equal(i.pollTransmit(0), undefined, `${what}: nothing sent`);
    assert.equal(drops(i), 1, `${what}: one drop counted (${JSON.stringify(i.stats)})`);
  }
});

test('a UDP datagram with a bad checksum is dropped, not delivered', () => {
  const i = iface();
  const s = i.udpBind({ family: 4, port: 9 });
  const u = udp(THEM, US, 1000, 9, new Uint8Array([1, 2, 3]));
  u[8]! ^= 0xff;
  i.handleInput(0, ipv4({ proto: 17, payload: u }));
  assert.equal(s.recv(), undefined);
  assert.equal(i.stats['drop.udp.checksum'], 1);
});

test('truncated IPv6 extension headers are dropped and counted', () => {
  const us6 = mustParseIp('fd00::1');
  const them6 = mustParseIp('fd00::2');
  for (const nh of [0, 43, 44, 60]) { // hop-by-hop, routing, fragment, destination options (RFC 8200 §4)
    for (const extLen of [0, 4, 7]) {
      const p = new Uint8Array(40 + extLen);
      p[0] = 0x60;
      p[4] = 0; p[5] = extLen;
      p[6] = nh; p[7] = 64;
      p.set(them6, 8); p.set(us6, 24);
      p.fill(0xff, 40); // claims a long extension header that is not there
      if (extLen >= 2) p[41] = 200;
      const i = iface();
      assert.doesNotThrow(() => i.handleInput(0, p));
      assert.equal(i.pollTransmit(0), undefined);
      assert.equal(drops(i), 1, `next header ${nh}, ${extLen} bytes: ${JSON.stringify(i.stats)}`);
    }
  }
});

/** Splits `payload` into 8-byte-aligned fragments at random cut points (RFC 791 §2.3). */
function fragments(rng: SeededRng, payload: Uint8Array, id: number): { off: number; data: Uint8Array; more: boolean }[] {
  const out: { off: number; data: Uint8Array; more: boolean }[] = [];
  let off = 0;
  while (off < payload.length) {
    const len = 8 * (1 + (rng.nextU32() % 40));
    const end = Math.min(payload.length, off + len);
    out.push({ off, data: payload.subarray(off, end), more: end < payload.length });
    off = end;
  }
  void id;
  return out;
}

test('random fragmentations, shuffled and with duplicates, reassemble to the original datagram', () => {
  const rng = new SeededRng(77);
  const i = iface();
  const s = i.udpBind({ family: 4, port: 9 });
  for (let round = 0; round < 200; round++) {
    const data = new Uint8Array(1 + (rng.nextU32() % 3000));
    rng.fill(data);
    const dgram = udp(THEM, US, 1000, 9, data);
    const frags = fragments(rng, dgram, round);
    // Duplicates of some fragments (a lone unfragmented packet sent twice is two datagrams, so not that).
    const sendList = [...frags];
    if (frags.length > 1) for (const f of frags) if (rng.nextU32() % 4 === 0) sendList.push(f);
    for (let k = sendList.length - 1; k > 0; k--) {
      const j = rng.nextU32() % (k + 1);
      [sendList[k], sendList[j]] = [sendList[j]!, sendList[k]!];
    }
    for (const f of sendList) i.handleInput(round * 100_000, ipv4({ proto: 17, payload: f.data, id: round + 1, offset8: f.off / 8, more: f.more }));
    const got = s.recv();
    assert.ok(got, `round ${round}: datagram reassembled from ${frags.length} fragments`);
    assert.deepEqual(got.data, data);
    assert.equal(s.recv(), undefined, `round ${round}: delivered once despite duplicates`);
  }
});

test('overlapping fragments drop the whole datagram (RFC 5722 rule, applied to IPv4)', () => {
  const i = iface();
  const s = i.udpBind({ family: 4, port: 9 });
  const dgram = udp(THEM, US, 1000, 9, new Uint8Array(40));
  i.handleInput(0, ipv4({ proto: 17, payload: dgram.subarray(0, 24), id: 7, offset8: 0, more: true }));
  // Starts inside the first fragment with different bytes.
  const overlap = dgram.slice(16, 48);
  overlap[0]! ^= 0xff;
  i.handleInput(0, ipv4({ proto: 17, payload: overlap, id: 7, offset8: 2, more: false }));
  i.handleInput(0, ipv4({ proto: 17, payload: dgram.subarray(24), id: 7, offset8: 3, more: false }));
  assert.equal(s.recv(), undefined);
  assert.ok((i.stats['drop.ip.fragment'] ?? 0) >= 1, JSON.stringify(i.stats));
});

test('an incomplete datagram expires and leaves no deadline behind', () => {
  const i = iface();
  const dgram = udp(THEM, US, 1000, 9, new Uint8Array(40));
  i.handleInput(1000, ipv4({ proto: 17, payload: dgram.subarray(0, 24), id: 9, more: true }));
  const d = i.pollTimeout();
  assert.ok(d, 'reassembly deadline set');
  assert.ok(d.at > 1000 && d.at <= 1000 + 60_000, `deadline ${d.at}`);
  i.handleTimeout(d.at);
  assert.equal(i.pollTimeout(), undefined);
  // The tail alone now cannot complete anything.
  const s = i.udpBind({ family: 4, port: 9 });
  i.handleInput(d.at + 1, ipv4({ proto: 17, payload: dgram.subarray(24), id: 9, offset8: 3 }));
  assert.equal(s.recv(), undefined);
});
