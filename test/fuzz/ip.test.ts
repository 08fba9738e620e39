/**
 * Fuzz target: IPv4/IPv6 packets into an Interface — options, extension-header
 * chains, fragments that overlap, repeat, never complete or complete too big —
 * carrying UDP, ICMP/ICMPv6 (echo, and errors quoting anything) and TCP.
 * Invariants:
 * - no exception escapes handleInput, and every packet is counted (rxPackets);
 * - reassembly memory never passes its cap, and is empty once the timeouts pass;
 * - everything the stack sends in answer is a well-formed IP packet (lengths, checksums);
 * - a UDP socket receives only datagrams whose checksum verifies, and a bounded queue;
 * - afterwards a ping and a UDP datagram to us still get through.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Interface, type UdpSocket } from '../../src/netstack/interface.js';
import type { Reassembler } from '../../src/netstack/reassembly.js';
import { SeededRng } from '../../src/util/rng.js';
import { mustParseIp } from '../../src/util/ip.js';
import { finishChecksum, pseudoHeaderSum, sumBytes } from '../../src/util/checksum.js';
import { buildIcmpEcho, buildIPv4, buildIPv6, buildUdp, expectIp, PROTO } from '../harness/packets.js';
import { budget, check, corpus, mutated, unaligned } from './lib.js';

const US4 = mustParseIp('10.0.0.1');
const US6 = mustParseIp('fd00::1');
const PEER4 = mustParseIp('10.0.0.2');
const PEER6 = mustParseIp('fd00::2');
const OTHER4 = mustParseIp('192.0.2.9');
const REASM_CAP = 16 * 1024;

function u16(p: Uint8Array, off: number, v: number): void {
  p[off] = (v >> 8) & 0xff;
  p[off + 1] = v & 0xff;
}

/** An upper-layer payload: UDP to our socket or elsewhere, an ICMP message, a TCP-ish header, or noise. */
const payloadArb = (v6: boolean): fc.Arbitrary<{ proto: number; bytes: (src: Uint8Array, dst: Uint8Array) => Uint8Array }> =>
  fc.oneof(
    fc.record({ port: fc.constantFrom(7, 53, 9999), data: fc.uint8Array({ maxLength: 64 }), bad: fc.boolean(), zero: fc.boolean(), lenDelta: fc.constantFrom(0, 0, 0, -1, 1, -8, 100) }).map((o) => ({
      proto: PROTO.UDP,
      bytes: (src: Uint8Array, dst: Uint8Array) => {
        const u = buildUdp(src, dst, 4000, o.port, o.data, { badChecksum: o.bad });
        if (o.zero) u[6] = u[7] = 0;
        if (o.lenDelta) u16(u, 4, (u.length + o.lenDelta) & 0xffff);
        return u;
      },
    })),
    fc.record({ type: fc.constantFrom(0, 3, 8, 11, 12, 1, 2, 128, 129, 135), code: fc.integer({ min: 0, max: 16 }), rest: fc.uint8Array({ maxLength: 80 }), quoteUs: fc.boolean(), mtu: fc.constantFrom(0, 1, 68, 576, 1280, 65535) }).map((o) => ({
      proto: v6 ? PROTO.ICMPV6 : PROTO.ICMP,
      bytes: (src: Uint8Array, dst: Uint8Array) => {
        // Errors quote a packet "we" sent (to the peer), sometimes a UDP one from our socket.
        const quote = o.quoteUs ? (v6 ? buildIPv6(US6, PEER6, PROTO.UDP, buildUdp(US6, PEER6, 7, 4000, o.rest)) : buildIPv4(US4, PEER4, PROTO.UDP, buildUdp(US4, PEER4, 7, 4000, o.rest))) : o.rest;
        const m = new Uint8Array(8 + quote.length);
        m[0] = o.type;
        m[1] = o.code;
        u16(m, 6, o.mtu);
        m.set(quote, 8);
        const c = finishChecksum((v6 ? pseudoHeaderSum(src, dst, PROTO.ICMPV6, m.length) : 0) + sumBytes(m));
        u16(m, 2, c);
        return m;
      },
    })),
    fc.record({ proto: fc.constantFrom(PROTO.TCP, 0, 41, 50, 59, 253), data: fc.uint8Array({ maxLength: 60 }) }).map((o) => ({ proto: o.proto, bytes: () => o.data })),
  );

/** An IPv4 packet with random options, flags and fragment fields, mostly a correct header checksum. */
const v4Arb = fc
  .record({
    optWords: fc.constantFrom(0, 0, 0, 1, 3, 10),
    opts: fc.uint8Array({ maxLength: 40 }),
    id: fc.constantFrom(1, 2, 3),
    mf: fc.boolean(),
    df: fc.boolean(),
    off8: fc.constantFrom(0, 0, 0, 1, 2, 3, 8, 185, 1000, 8189, 8191),
    frag: fc.boolean(),
    dst: fc.constantFrom(US4, US4, US4, OTHER4),
    src: fc.constantFrom(PEER4, OTHER4),
    totalDelta: fc.constantFrom(0, 0, 0, 0, -1, 1, -20, 7),
    badSum: fc.constantFrom(false, false, false, false, true),
    cut: fc.constantFrom(0, 0, 0, 0, 1, 3, 8),
    payload: payloadArb(false),
  })
  .map((o) => {
    const body = o.payload.bytes(o.src, o.dst);
    const hl = 20 + o.optWords * 4;
    const p = new Uint8Array(hl + body.length);
    p[0] = 0x40 | (hl / 4);
    u16(p, 2, (p.length + o.totalDelta) & 0xffff);
    u16(p, 4, o.id);
    const off = o.frag ? o.off8 : 0;
    u16(p, 6, ((o.df ? 0x4000 : 0) | (o.frag && o.mf ? 0x2000 : 0) | off) & 0xffff);
    p[8] = 64;
    p[9] = o.payload.proto;
    p.set(o.src, 12);
    p.set(o.dst, 16);
    p.set(o.opts.subarray(0, hl - 20), 20);
    u16(p, 10, finishChecksum(sumBytes(p.subarray(0, hl))) ^ (o.badSum ? 0x1111 : 0));
    p.set(body, hl);
    return o.cut ? p.subarray(0, Math.max(0, p.length - o.cut)) : p;
  });

const extArb = fc.record({
  type: fc.constantFrom(0, 43, 60, 44, 44, 51, 135),
  len8: fc.constantFrom(0, 0, 1, 2, 255),
  fill: fc.uint8Array({ minLength: 0, maxLength: 24 }),
  fragOff8: fc.constantFrom(0, 1, 2, 8, 100, 8191),
  more: fc.boolean(),
  id: fc.constantFrom(1, 2, 0xffffffff),
});

/** An IPv6 packet with a chain of extension headers (fragment headers among them) in front of the payload. */
const v6Arb = fc
  .record({
    exts: fc.array(extArb, { maxLength: 10 }),
    dst: fc.constantFrom(US6, US6, US6, mustParseIp('2001:db8::1')),
    plenDelta: fc.constantFrom(0, 0, 0, 0, -1, 1, 40),
    payload: payloadArb(true),
  })
  .map((o) => {
    const body = o.payload.bytes(PEER6, o.dst);
    const parts: Uint8Array[] = [];
    o.exts.forEach((e, i) => {
      const next = i + 1 < o.exts.length ? o.exts[i + 1]!.type : o.payload.proto;
      if (e.type === 44) {
        const h = new Uint8Array(8);
        h[0] = next;
        u16(h, 2, (e.fragOff8 << 3) | (e.more ? 1 : 0));
        new DataView(h.buffer).setUint32(4, e.id);
        parts.push(h);
      } else {
        const len = e.type === 51 ? (Math.min(e.len8, 3) + 2) * 4 : (Math.min(e.len8, 2) + 1) * 8;
        const h = new Uint8Array(len);
        h.set(e.fill.subarray(0, len - 2), 2);
        h[0] = next;
        h[1] = e.type === 51 ? len / 4 - 2 : e.len8; // the raw length byte, which may claim more than is there
        parts.push(h);
      }
    });
    parts.push(body);
    const payload = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
    let at = 0;
    for (const x of parts) {
      payload.set(x, at);
      at += x.length;
    }
    const p = buildIPv6(PEER6, o.dst, o.exts.length ? o.exts[0]!.type : o.payload.proto, payload).slice();
    u16(p, 4, (payload.length + o.plenDelta) & 0xffff);
    return p;
  });

/** Fragments of one UDP datagram to our socket, cut at random 8-byte boundaries, sent in random order with repeats. */
const fragmentedArb = fc
  .record({ v6: fc.boolean(), size: fc.integer({ min: 16, max: 3000 }), cuts: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 12 }), order: fc.array(fc.nat(), { maxLength: 16 }), id: fc.integer({ min: 1, max: 40 }) })
  .map((o) => {
    const src = o.v6 ? PEER6 : PEER4;
    const dst = o.v6 ? US6 : US4;
    const data = new Uint8Array(o.size).map((_, i) => i & 0xff);
    const udp = buildUdp(src, dst, 4000, 7, data);
    const frags: Uint8Array[] = [];
    let off = 0;
    for (const c of o.cuts) {
      if (off >= udp.length) break;
      const n = Math.min(udp.length - off, c * 8);
      const more = off + n < udp.length;
      const chunk = udp.subarray(off, off + n);
      if (o.v6) {
        const fh = new Uint8Array(8 + n);
        fh[0] = PROTO.UDP;
        u16(fh, 2, off | (more ? 1 : 0));
        new DataView(fh.buffer).setUint32(4, o.id);
        fh.set(chunk, 8);
        frags.push(buildIPv6(src, dst, 44, fh).slice());
      } else {
        const p = buildIPv4(src, dst, PROTO.UDP, chunk, { id: o.id }).slice();
        u16(p, 6, (more ? 0x2000 : 0) | (off >> 3));
        p[10] = p[11] = 0;
        u16(p, 10, finishChecksum(sumBytes(p.subarray(0, 20))));
        frags.push(p);
      }
      off += n;
    }
    const out = o.order.length ? o.order.map((i) => frags[i % frags.length]!) : frags;
    return out;
  });

/** Counters reached over all cases (printed with WGNET_FUZZ_STATS=1: what the fuzzer covers). */
const SEEN = new Map<string, number>();
/** Datagrams that never complete (first fragments only), enough of them to pass the reassembly cap. */
const floodArb = fc.record({ n: fc.integer({ min: 10, max: 60 }), size: fc.integer({ min: 1, max: 175 }), v6: fc.boolean() }).map((o) =>
  Array.from({ length: o.n }, (_, i) => {
    const data = new Uint8Array(o.size * 8);
    if (o.v6) {
      const fh = new Uint8Array(8 + data.length);
      fh[0] = PROTO.UDP;
      u16(fh, 2, 1); // offset 0, more fragments
      new DataView(fh.buffer).setUint32(4, 1000 + i);
      return buildIPv6(PEER6, US6, 44, fh).slice();
    }
    const p = buildIPv4(PEER4, US4, PROTO.UDP, data, { id: 1000 + i }).slice();
    u16(p, 6, 0x2000);
    p[10] = p[11] = 0;
    u16(p, 10, finishChecksum(sumBytes(p.subarray(0, 20))));
    return p;
  }),
);

const CORPUS = corpus('ip').map((c) => c.data);
const packetArb: fc.Arbitrary<Uint8Array[]> = fc.oneof(
  { weight: 4, arbitrary: v4Arb.map((p) => [p]) },
  { weight: 4, arbitrary: v6Arb.map((p) => [p]) },
  { weight: 3, arbitrary: fragmentedArb },
  { weight: 1, arbitrary: floodArb },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }).map((p) => [p]) },
  ...(CORPUS.length ? [{ weight: 2, arbitrary: mutated(fc.constantFrom(...CORPUS)).map((p) => [p]) }] : []),
);

interface Stack {
  iface: Interface;
  sock: UdpSocket;
  sock6: UdpSocket;
  reasm: Reassembler;
  now: number;
}

function stack(): Stack {
  const iface = new Interface({ addresses: ['10.0.0.1/24', 'fd00::1/64'], rng: new SeededRng(7), reassembly: { maxBytes: REASM_CAP } });
  iface.tcp.listen({ port: 80 });
  const sock = iface.udpBind({ family: 4, port: 7, recvQueueBytes: 8192 });
  const sock6 = iface.udpBind({ family: 6, port: 7, recvQueueBytes: 8192 });
  return { iface, sock, sock6, reasm: (iface as unknown as { reasm: Reassembler }).reasm, now: 0 };
}

/** Everything sent is a well-formed IP packet. */
function drainChecked(s: Stack, what: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let p = s.iface.pollTransmit(s.now); p; p = s.iface.pollTransmit(s.now)) {
    try {
      expectIp(p, {});
    } catch (err) {
      throw new Error(`${what}: sent a malformed packet: ${(err as Error).message}`);
    }
    out.push(p);
  }
  while (s.iface.pollEvent());
  return out;
}

function feed(s: Stack, packets: Uint8Array[], dt: number[]): void {
  packets.forEach((p, i) => {
    s.now += dt[i % Math.max(1, dt.length)] ?? 0;
    const what = `packet ${i} (${p.length} bytes, version ${p.length ? p[0]! >> 4 : '-'})`;
    const before = s.iface.stats.rxPackets ?? 0;
    if ((s.iface.pollTimeout()?.at ?? Infinity) <= s.now) s.iface.handleTimeout(s.now);
    assert.doesNotThrow(() => s.iface.handleInput(s.now, unaligned(p)), what);
    assert.equal(s.iface.stats.rxPackets, before + 1, `${what}: counted`);
    assert.ok(s.reasm.bytesHeld <= REASM_CAP, `${what}: reassembly holds ${s.reasm.bytesHeld} bytes, cap ${REASM_CAP}`);
    drainChecked(s, what);
    for (const sock of [s.sock, s.sock6]) for (let m = sock.recv(); m; m = sock.recv()) assert.ok(m.data.length <= 65535);
  });
}

function stillWorks(s: Stack): void {
  s.now += 61_000;
  s.iface.handleTimeout(s.now);
  drainChecked(s, 'timeouts');
  assert.equal(s.reasm.datagrams, 0, 'no datagram left in reassembly after the timeouts');
  assert.equal(s.reasm.bytesHeld, 0, 'no reassembly memory left after the timeouts');
  s.now += 2000; // ICMP rate limiter refilled
  for (const [src, dst, sock] of [[PEER4, US4, s.sock], [PEER6, US6, s.sock6]] as const) {
    s.iface.handleInput(s.now, buildIcmpEcho(src, dst, 77, 1, new Uint8Array([1, 2, 3])));
    const replies = drainChecked(s, 'ping');
    assert.equal(replies.length, 1, `an echo reply to ${src.length === 4 ? 'IPv4' : 'IPv6'} ping after the fuzzing`);
    while (sock.recv());
    const data = new Uint8Array([9, 8, 7, 6]);
    const udp = buildUdp(src, dst, 4000, 7, data);
    s.iface.handleInput(s.now, src.length === 4 ? buildIPv4(src, dst, PROTO.UDP, udp) : buildIPv6(src, dst, PROTO.UDP, udp));
    drainChecked(s, 'udp');
    const m = sock.recv();
    assert.ok(m, 'a UDP datagram to our socket after the fuzzing');
    assert.deepEqual([...m.data], [...data]);
  }
}

describe('fuzz: IP packets into an Interface', () => {
  test('corpus entries, as they are', () => {
    const s = stack();
    feed(s, CORPUS, [0]);
    stillWorks(s);
  });

  test('IPv4 options, IPv6 extension headers, fragments, UDP and ICMP: counted, bounded, answered well-formed', () => {
    check(
      fc.property(fc.array(packetArb, { minLength: 1, maxLength: 30 }), fc.array(fc.constantFrom(0, 0, 0, 1, 100, 20_000, 31_000), { maxLength: 8 }), (batches, dt) => {
        const s = stack();
        feed(s, batches.flat(), dt);
        for (const [k, v] of Object.entries(s.iface.stats)) SEEN.set(k, (SEEN.get(k) ?? 0) + v);
        stillWorks(s);
      }),
      budget('ip', 15000),
    );
    if (process.env.WGNET_FUZZ_STATS) console.log('counters reached:', Object.fromEntries([...SEEN].sort()));
  });
});
