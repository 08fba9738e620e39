/** ICMP behaviour checked at the packet level with the harness builders and checkers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Interface } from '../../src/netstack/interface.js';
import { SeededRng } from '../../src/util/rng.js';
import { mustParseIp } from '../../src/util/ip.js';
import { buildIcmpEcho, buildIPv4, buildIPv6, buildUdp, expectIcmp, expectIp, PROTO } from '../harness/packets.js';

const US4 = mustParseIp('10.0.0.1');
const THEM4 = mustParseIp('10.0.0.2');
const US6 = mustParseIp('fd00::1');
const THEM6 = mustParseIp('fd00::2');

function iface(): Interface {
  return new Interface({ addresses: ['10.0.0.1/24', 'fd00::1/64'], rng: new SeededRng(3) });
}

for (const v6 of [false, true]) {
  const [us, them] = v6 ? [US6, THEM6] : [US4, THEM4];
  const proto = v6 ? PROTO.ICMPV6 : PROTO.ICMP;

  test(`IPv${v6 ? 6 : 4} echo request answered with TTL 64, same id/seq/payload`, () => {
    const i = iface();
    const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7]);
    i.handleInput(0, buildIcmpEcho(them, us, 0xbeef, 42, data));
    const m = expectIp(i.pollTransmit(0), { src: us, dst: them, proto, ttl: 64 });
    expectIcmp(m, us, them, { type: v6 ? 129 : 0, code: 0 }); // RFC 4443 §4.2 / RFC 792
    assert.deepEqual([m[4], m[5], m[6], m[7]], [0xbe, 0xef, 0, 42]);
    assert.deepEqual([...m.subarray(8)], [...data]);
  });

  test(`IPv${v6 ? 6 : 4} UDP to a closed port gets port unreachable quoting the datagram`, () => {
    const i = iface();
    const u = buildUdp(them, us, 40000, 9999, new Uint8Array([9, 9, 9]));
    const pkt = v6 ? buildIPv6(them, us, PROTO.UDP, u) : buildIPv4(them, us, PROTO.UDP, u);
    i.handleInput(0, pkt);
    const m = expectIp(i.pollTransmit(0), { src: us, dst: them, proto, ttl: 64 });
    // ICMPv4 type 3 code 3 (RFC 792); ICMPv6 type 1 code 4 (RFC 4443 §3.1).
    expectIcmp(m, us, them, v6 ? { type: 1, code: 4 } : { type: 3, code: 3 });
    const quoted = m.subarray(8);
    assert.deepEqual([...quoted.subarray(0, Math.min(quoted.length, 20))], [...pkt.subarray(0, Math.min(quoted.length, 20))], 'quotes the offending header');
  });

  test(`IPv${v6 ? 6 : 4}: no ICMP error in answer to an ICMP error`, () => {
    const i = iface();
    // A well-formed port unreachable quoting a datagram of ours: valid, so only the
    // "never answer an ICMP error" rule (RFC 1122 §3.2.2, RFC 4443 §2.4(e)) keeps us quiet.
    const udpOut = buildUdp(us, them, 1, 2, new Uint8Array(0));
    const inner = v6 ? buildIPv6(us, them, PROTO.UDP, udpOut) : buildIPv4(us, them, PROTO.UDP, udpOut);
    const err = new Uint8Array(8 + inner.length);
    err[0] = v6 ? 1 : 3;
    err[1] = v6 ? 4 : 3;
    err.set(inner, 8);
    const e = buildIcmpEchoLike(err, them, us, v6);
    i.handleInput(0, e);
    assert.equal(i.pollTransmit(0), undefined);
  });
}

/** Wraps an arbitrary ICMP message with a valid checksum. */
function buildIcmpEchoLike(m: Uint8Array, src: Uint8Array, dst: Uint8Array, v6: boolean): Uint8Array {
  // Reuse buildIcmpEcho's checksum logic by building an echo and overwriting: simpler to compute here.
  m[2] = 0; m[3] = 0;
  let s = 0;
  if (v6) {
    for (let k = 0; k < 16; k += 2) s += ((src[k]! << 8) | src[k + 1]!) + ((dst[k]! << 8) | dst[k + 1]!);
    s += m.length + PROTO.ICMPV6;
  }
  for (let k = 0; k < m.length; k += 2) s += (m[k]! << 8) | (m[k + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  m[2] = c >> 8; m[3] = c & 0xff;
  return v6 ? buildIPv6(src, dst, PROTO.ICMPV6, m) : buildIPv4(src, dst, PROTO.ICMP, m);
}

test('echo replies are not rate-limited; ICMP errors are (RFC 1812 §4.3.2.8)', () => {
  const i = iface();
  // 3,000 echo requests within one millisecond: every one is answered (a flood ping, `ping -f`).
  let replies = 0;
  for (let n = 0; n < 3000; n++) {
    i.handleInput(0, buildIcmpEcho(THEM4, US4, 7, n & 0xffff, new Uint8Array(8)));
    while (i.pollTransmit(0)) replies++;
  }
  assert.equal(replies, 3000);
  // 3,000 datagrams to a closed port in the same millisecond: at most the bucket's 1,000 errors.
  let errors = 0;
  for (let n = 0; n < 3000; n++) {
    i.handleInput(0, buildIPv4(THEM4, US4, PROTO.UDP, buildUdp(THEM4, US4, 40000, 9999, new Uint8Array(1))));
    while (i.pollTransmit(0)) errors++;
  }
  assert.ok(errors <= 1000 && errors > 0, `errors ${errors}`);
});
