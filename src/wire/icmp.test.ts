/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) codec, on unaligned buffers, with checksums
 * computed by hand and verified with util/checksum.ts; type and code values restated
 * from the RFCs rather than imported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, finishChecksum, pseudoHeaderSum, sumBytes } from '../util/checksum.js';
import { writeIPv4Header, writeIPv6Header } from './ip.js';
import {
  echoId,
  echoRequestToReply,
  echoSeq,
  echoType,
  fillIcmpChecksum,
  icmpChecksumOk,
  icmpErrorKind,
  packetTooBigMtu,
  parseQuoted,
  writeEcho,
  writeUnreachable,
  MAX_QUOTE_V4,
  MAX_QUOTE_V6,
} from './icmp.js';

const V4A = new Uint8Array([192, 0, 2, 1]);
const V4B = new Uint8Array([192, 0, 2, 2]);
const V6A = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
const V6B = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
const ABCD = new Uint8Array([0x61, 0x62, 0x63, 0x64]);

function unaligned(n: number): Uint8Array {
  return new Uint8Array(n + 3).subarray(3);
}

/** Verified with util/checksum directly: ICMPv4 over the message, ICMPv6 with the pseudo-header (next header 58). */
function sumsToZero(m: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean {
  return (src.length === 4 ? checksum(m) : finishChecksum(pseudoHeaderSum(src, dst, 58, m.length) + sumBytes(m))) === 0;
}

test('echo types (RFC 792: 8/0; RFC 4443 §4: 128/129)', () => {
  assert.equal(echoType(false, false), 8);
  assert.equal(echoType(false, true), 0);
  assert.equal(echoType(true, false), 128);
  assert.equal(echoType(true, true), 129);
});

test('a hand-made ICMPv4 echo request: id 0x1234, seq 1, "abcd", checksum 0x2104', () => {
  const m = unaligned(12);
  writeEcho(m, 8, 0x1234, 1, ABCD);
  fillIcmpChecksum(m, V4A, V4B);
  // 0800 + 0000 + 1234 + 0001 + 6162 + 6364 = defb, complemented.
  assert.deepEqual(Array.from(m), [8, 0, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64]);
  assert.ok(sumsToZero(m, V4A, V4B));
  assert.ok(icmpChecksumOk(m, V4A, V4B));
});

test('a hand-made ICMPv6 echo request: the pseudo-header is summed (RFC 4443 §2.3)', () => {
  const m = unaligned(12);
  writeEcho(m, 128, 0x1234, 1, ABCD);
  fillIcmpChecksum(m, V6A, V6B);
  assert.equal((m[2]! << 8) | m[3]!, 0x4d48);
  assert.ok(sumsToZero(m, V6A, V6B));
  assert.ok(icmpChecksumOk(m, V6A, V6B));
  assert.ok(!icmpChecksumOk(m, V6A, V6A), 'another destination fails');
});

test('echo round trip: id, sequence and data read back; stale checksum bytes overwritten', () => {
  for (const [src, dst] of [
    [V4A, V4B],
    [V6A, V6B],
  ] as const) {
    for (const len of [0, 1, 56, 1000]) {
      const data = new Uint8Array(len).map((_, i) => (i * 31) & 0xff);
      const m = unaligned(8 + len).fill(0xff);
      writeEcho(m, echoType(src.length === 16, true), 0xfffe, 0x8001, data);
      fillIcmpChecksum(m, src, dst);
      assert.ok(sumsToZero(m, src, dst));
      assert.equal(m[1], 0);
      assert.equal(echoId(m), 0xfffe);
      assert.equal(echoSeq(m), 0x8001);
      assert.deepEqual(m.subarray(8), data);
      m[m.length - 1]! ^= 1;
      assert.ok(!icmpChecksumOk(m, src, dst), 'a flipped bit fails');
    }
  }
  const reply = unaligned(8);
  writeEcho(reply, 0, 1, 2, new Uint8Array(0), 5);
  assert.equal(reply[1], 5, "a reply may keep its request's code");
});

test('checksums of every length from 8 to 300 bytes, both families, agree with util/checksum', () => {
  // Short messages are summed by icmp.ts itself, long ones by util/checksum: both sides of the cut.
  for (const [src, dst] of [
    [V4A, V4B],
    [V6A, V6B],
  ] as const) {
    for (let len = 8; len <= 300; len++) {
      const m = unaligned(len).map((_, i) => (i * 97 + len) & 0xff);
      fillIcmpChecksum(m, src, dst);
      assert.ok(sumsToZero(m, src, dst), `length ${len}`);
      assert.ok(icmpChecksumOk(m, src, dst));
      m[len >> 1]! ^= 0x10;
      assert.ok(!icmpChecksumOk(m, src, dst), `length ${len}: a flipped bit fails`);
    }
  }
});

test('an echo request turned into its reply in place: the same bytes as a reply built and summed afresh', () => {
  // Random requests, both families, every length to 100 and some codes, so the incremental
  // checksum (RFC 1624 eqn. 3) meets every carry and the all-ones sums.
  let x = 7;
  const rnd = (): number => (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  for (const [src, dst] of [
    [V4A, V4B],
    [V6A, V6B],
  ] as const) {
    const v6 = src.length === 16;
    for (let len = 0; len <= 100; len++) {
      for (let k = 0; k < 20; k++) {
        const data = new Uint8Array(len).map(() => rnd());
        const id = (rnd() << 8) | rnd();
        const seq = k === 0 ? 0xffff : (rnd() << 8) | rnd();
        const code = k === 1 ? 7 : 0;
        const req = unaligned(8 + len);
        writeEcho(req, echoType(v6, false), id, seq, data, code);
        fillIcmpChecksum(req, src, dst);
        const want = unaligned(8 + len);
        writeEcho(want, echoType(v6, true), id, seq, data, code);
        fillIcmpChecksum(want, dst, src);
        // Half of them inside a packet, after a 20- or 40-byte header, as the netstack calls it.
        const hl = k % 2 === 0 ? 0 : v6 ? 40 : 20;
        const pkt = unaligned(hl + 8 + len);
        pkt.set(req, hl);
        echoRequestToReply(pkt, v6, hl);
        assert.deepEqual(Array.from(pkt.subarray(hl)), Array.from(want), `len ${len} id ${id} seq ${seq}`);
        assert.ok(icmpChecksumOk(pkt.subarray(hl), dst, src));
      }
    }
  }
});

test('shorter than 8 bytes never verifies', () => {
  assert.ok(!icmpChecksumOk(new Uint8Array(4), V4A, V4B));
});

test('destination unreachable: codes per RFC 792 / RFC 4443 §3.1, unused bytes zero, the quote after the header', () => {
  const quote = new Uint8Array(28).map((_, i) => i + 1);
  const cases = [
    [false, 'port', 3, 3],
    [false, 'host', 3, 1],
    [false, 'admin', 3, 13],
    [true, 'port', 1, 4],
    [true, 'host', 1, 3],
    [true, 'admin', 1, 1],
  ] as const;
  for (const [v6, kind, type, code] of cases) {
    const m = unaligned(8 + quote.length).fill(0xee);
    writeUnreachable(m, v6, kind, quote);
    const [src, dst] = v6 ? [V6A, V6B] : [V4A, V4B];
    fillIcmpChecksum(m, src, dst);
    assert.equal(m[0], type);
    assert.equal(m[1], code);
    assert.deepEqual(Array.from(m.subarray(4, 8)), [0, 0, 0, 0]);
    assert.deepEqual(m.subarray(8), quote);
    assert.ok(sumsToZero(m, src, dst));
    // What we send, we read back as the matching error kind.
    assert.equal(icmpErrorKind(m, v6), kind === 'port' ? 'unreachable-port' : kind === 'host' ? 'unreachable-host' : 'unreachable-admin');
  }
  assert.equal(MAX_QUOTE_V4, 576 - 20 - 8);
  assert.equal(MAX_QUOTE_V6, 1280 - 40 - 8);
});

test('error kinds from type and code (RFC 792, RFC 1122 §3.2.2.1, RFC 1191, RFC 4443 §3)', () => {
  const msg = (type: number, code: number, rest: number[] = [0, 0, 0, 0]): Uint8Array => {
    const m = unaligned(8);
    m.set([type, code, 0, 0, ...rest]);
    return m;
  };
  assert.equal(icmpErrorKind(msg(3, 0), false), 'unreachable-net');
  assert.equal(icmpErrorKind(msg(3, 6), false), 'unreachable-net');
  assert.equal(icmpErrorKind(msg(3, 1), false), 'unreachable-host');
  assert.equal(icmpErrorKind(msg(3, 2), false), 'unreachable-host');
  assert.equal(icmpErrorKind(msg(3, 3), false), 'unreachable-port');
  assert.equal(icmpErrorKind(msg(3, 4), false), 'packet-too-big');
  assert.equal(icmpErrorKind(msg(3, 13), false), 'unreachable-admin');
  assert.equal(icmpErrorKind(msg(11, 0), false), 'time-exceeded');
  assert.equal(icmpErrorKind(msg(8, 0), false), undefined);
  assert.equal(icmpErrorKind(msg(5, 0), false), undefined);
  assert.equal(icmpErrorKind(msg(1, 0), true), 'unreachable-host');
  assert.equal(icmpErrorKind(msg(1, 1), true), 'unreachable-admin');
  assert.equal(icmpErrorKind(msg(1, 4), true), 'unreachable-port');
  assert.equal(icmpErrorKind(msg(2, 0), true), 'packet-too-big');
  assert.equal(icmpErrorKind(msg(3, 0), true), 'time-exceeded');
  assert.equal(icmpErrorKind(msg(4, 0), true), undefined);
  assert.equal(icmpErrorKind(msg(128, 0), true), undefined);
  // Next-hop MTU: the low 16 bits of the second word in ICMPv4 (RFC 1191 §4), all 32 in ICMPv6.
  assert.equal(packetTooBigMtu(msg(3, 4, [0, 0, 0x05, 0xdc]), false), 1500);
  assert.equal(packetTooBigMtu(msg(3, 4, [0xff, 0xff, 0x05, 0xdc]), false), 1500);
  assert.equal(packetTooBigMtu(msg(2, 0, [0x80, 0, 0x05, 0x00]), true), 0x80000500);
});

test('the quoted packet: IPv4 with options, IPv6; too short is undefined', () => {
  const q4 = unaligned(24 + 8);
  writeIPv4Header(q4, V4A, V4B, 17, 8, 7);
  q4[0] = 0x46; // a 24-byte header (one word of options)
  q4.set([0x9c, 0x40, 0, 53], 24);
  const p4 = parseQuoted(q4)!;
  assert.deepEqual([Array.from(p4.src), Array.from(p4.dst), p4.protocol], [[192, 0, 2, 1], [192, 0, 2, 2], 17]);
  assert.equal((p4.transport[0]! << 8) | p4.transport[1]!, 40000);
  assert.equal(p4.transport.length, 8);
  assert.equal(parseQuoted(q4.subarray(0, 31)), undefined, 'fewer than 8 transport bytes');

  const q6 = unaligned(40 + 8);
  writeIPv6Header(q6, V6A, V6B, 6, 8);
  const p6 = parseQuoted(q6)!;
  assert.deepEqual(p6.src, V6A);
  assert.deepEqual(p6.dst, V6B);
  assert.equal(p6.protocol, 6);
  assert.equal(p6.transport.byteOffset, q6.byteOffset + 40, 'a view, not a copy');
  assert.equal(parseQuoted(q6.subarray(0, 47)), undefined);
  assert.equal(parseQuoted(new Uint8Array(0)), undefined);
  assert.equal(parseQuoted(new Uint8Array(60).fill(0x50)), undefined, 'version 5');
});
