/**
 * The RFC behaviour matrix, packet by packet: one TcpLayer, hand-built segments in,
 * every segment out checked with expectTcp. Expected values are derived from the
 * RFC text (RFC 9293 §3.10.7, RFC 5961 §3-§5, RFC 4987, RFC 7323), not from the code.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { TcpLayer } from '../../src/netstack/tcp/index.js';
import { SeededRng } from '../../src/util/rng.js';
import { parseIp, ipEqual } from '../../src/util/ip.js';
import type { IpAddr } from '../../src/util/ip.js';
import type { TcpConnection, TcpEvent } from '../../src/netstack/types.js';
import { buildTcp, expectTcp, tcpFields, type TcpBuild } from '../harness/packets.js';
import { parseTcp } from '../../src/wire/tcp.js';

const US = parseIp('10.0.0.1')!;
const PEER = parseIp('10.0.0.2')!;
const PORT = 80;

function layer(seed = 1, extra: Record<string, unknown> = {}): TcpLayer {
  return new TcpLayer({ rng: new SeededRng(seed), mtu: 1420, isLocal: (a: IpAddr) => ipEqual(a, US), sourceFor: () => US, ...extra });
}

function drain(t: TcpLayer, now: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = t.pollTransmit(now); o; o = t.pollTransmit(now)) {
    assert.ok(ipEqual(o.src, US) && ipEqual(o.dst, PEER));
    out.push(o.segment);
  }
  return out;
}

function events(t: TcpLayer): TcpEvent[] {
  const ev: TcpEvent[] = [];
  for (let e = t.pollEvent(); e; e = t.pollEvent()) ev.push(e);
  return ev;
}

function inject(t: TcpLayer, now: number, b: Omit<TcpBuild, 'dstPort'> & { dstPort?: number }): Uint8Array[] {
  t.handleSegment(now, PEER, US, buildTcp(PEER, US, { dstPort: PORT, ...b }));
  return drain(t, now);
}

const MSS_1400 = [2, 4, 0x05, 0x78];

/** A passive open completed by hand; returns the server's ISS and the accepted connection. */
function established(t: TcpLayer, peerIsn = 1000, sport = 40000): { iss: number; conn: TcpConnection; peerNxt: number } {
  const l = t.listen({ port: PORT });
  const [synAck] = inject(t, 0, { srcPort: sport, seq: peerIsn, flags: ['SYN'], options: MSS_1400 });
  expectTcp(synAck, { flags: ['SYN', 'ACK'], ack: peerIsn + 1, srcPort: PORT, dstPort: sport, src: US, dst: PEER });
  const iss = tcpFields(synAck!).seq;
  assert.deepEqual(inject(t, 1, { srcPort: sport, seq: peerIsn + 1, ack: iss + 1, flags: ['ACK'] }), []);
  assert.ok(events(t).some((e) => e.type === 'tcp-accept'));
  const conn = l.accept()!;
  assert.equal(conn.state, 'ESTABLISHED');
  return { iss, conn, peerNxt: peerIsn + 1 };
}

describe('CLOSED port (RFC 9293 §3.10.7.1)', () => {
  test('SYN gets RST|ACK with seq 0 and ack = SEG.SEQ + SEG.LEN', () => {
    const t = layer();
    const [r] = inject(t, 0, { srcPort: 1234, seq: 0xfffffffe, flags: ['SYN'] });
    expectTcp(r, { flags: ['RST', 'ACK'], seq: 0, ack: 0xffffffff, srcPort: PORT, dstPort: 1234, src: US, dst: PEER });
  });
  test('data without ACK: ack covers the payload', () => {
    const t = layer();
    const [r] = inject(t, 0, { srcPort: 1234, seq: 100, flags: ['PSH'], payload: new Uint8Array(10) });
    expectTcp(r, { flags: ['RST', 'ACK'], seq: 0, ack: 110 });
  });
  test('ACK gets RST with seq = SEG.ACK and no ACK bit', () => {
    const t = layer();
    const [r] = inject(t, 0, { srcPort: 1234, seq: 5, ack: 0xabcdef01, flags: ['ACK'] });
    expectTcp(r, { flags: ['RST'], seq: 0xabcdef01 });
  });
  test('an RST is never answered', () => {
    const t = layer();
    assert.deepEqual(inject(t, 0, { srcPort: 1234, seq: 5, flags: ['RST'] }), []);
    assert.deepEqual(inject(t, 0, { srcPort: 1234, seq: 5, ack: 9, flags: ['RST', 'ACK'] }), []);
  });
});

describe('malformed segments are dropped unanswered and never throw', () => {
  const cases: [string, Omit<TcpBuild, 'dstPort'>][] = [
    ['bad checksum', { srcPort: 1, seq: 1, flags: ['SYN'], badChecksum: true }],
    ['data offset below 20', { srcPort: 1234, seq: 1, flags: ['SYN'], dataOffset: 16 }],
    ['data offset beyond the segment', { srcPort: 1234, seq: 1, flags: ['SYN'], dataOffset: 60 }],
    ['option length 0', { srcPort: 1234, seq: 1, flags: ['SYN'], options: [2, 0, 0, 0] }],
    ['option length past the header', { srcPort: 1234, seq: 1, flags: ['SYN'], options: [99, 12, 0, 0] }],
    ['MSS option of length 3', { srcPort: 1234, seq: 1, flags: ['SYN'], options: [2, 3, 5, 1] }],
    ['SYN+FIN', { srcPort: 1234, seq: 1, flags: ['SYN', 'FIN'] }],
    ['SYN+RST', { srcPort: 1234, seq: 1, flags: ['SYN', 'RST'] }],
    ['source port 0', { srcPort: 0, seq: 1, flags: ['SYN'] }],
  ];
  for (const [name, b] of cases) {
    test(`${name}: to a closed port and to a listener`, () => {
      for (const listening of [false, true]) {
        const t = layer();
        if (listening) t.listen({ port: PORT });
        assert.deepEqual(inject(t, 0, b), [], name);
        assert.equal(t.connectionCount, 0);
      }
    });
  }
  test('shorter than a header', () => {
    const t = layer();
    t.handleSegment(0, PEER, US, new Uint8Array(19));
    t.handleSegment(0, PEER, US, new Uint8Array(0));
    assert.equal(drain(t, 0).length, 0);
  });
});

describe('passive open and SYN options', () => {
  test('SYN-ACK acks SEG.SEQ+1 and carries our MSS; the ACK completes the handshake', () => {
    const t = layer();
    const { conn } = established(t);
    assert.equal(conn.remotePort, 40000);
    assert.equal(conn.localPort, PORT);
  });
  test('MSS 0 and window scale 15 are accepted (0 treated as absent; 15 clamped to 14 per RFC 7323 §2.3)', () => {
    const t = layer();
    t.listen({ port: PORT });
    const [sa] = inject(t, 0, { srcPort: 5555, seq: 7, flags: ['SYN'], options: [2, 4, 0, 0, 1, 3, 3, 15] });
    expectTcp(sa, { flags: ['SYN', 'ACK'], ack: 8 });
  });
  test('a listener answers a bare ACK with RST (RFC 9293 §3.10.7.2)', () => {
    const t = layer();
    t.listen({ port: PORT });
    const [r] = inject(t, 0, { srcPort: 5555, seq: 7, ack: 0x11111111, flags: ['ACK'] });
    expectTcp(r, { flags: ['RST'], seq: 0x11111111 });
  });
});

describe('ESTABLISHED: RST, SYN and acceptability (RFC 5961, RFC 9293 §3.10.7.4)', () => {
  test('RST at exactly RCV.NXT resets the connection: tcp-closed once with ECONNRESET', () => {
    const t = layer();
    const { peerNxt, conn } = established(t);
    assert.deepEqual(inject(t, 10, { srcPort: 40000, seq: peerNxt, flags: ['RST'] }), []);
    const closed = events(t).filter((e) => e.type === 'tcp-closed');
    assert.equal(closed.length, 1);
    assert.equal(closed[0]!.type === 'tcp-closed' && closed[0]!.error, 'ECONNRESET');
    assert.equal(conn.state, 'CLOSED');
    assert.equal(t.connectionCount, 0);
  });
  test('in-window but inexact RST gets a challenge ACK and the connection stays (RFC 5961 §3.2)', () => {
    const t = layer();
    const { iss, peerNxt, conn } = established(t);
    const [a] = inject(t, 10, { srcPort: 40000, seq: peerNxt + 100, flags: ['RST'] });
    expectTcp(a, { flags: ['ACK'], seq: iss + 1, ack: peerNxt });
    assert.equal(conn.state, 'ESTABLISHED');
  });
  test('out-of-window RST is dropped silently', () => {
    const t = layer();
    const { peerNxt, conn } = established(t);
    assert.deepEqual(inject(t, 10, { srcPort: 40000, seq: peerNxt - 100_000, flags: ['RST'] }), []);
    assert.equal(conn.state, 'ESTABLISHED');
  });
  test('challenge ACKs are rate-limited per connection (RFC 5961 §7)', () => {
    const t = layer();
    const { peerNxt } = established(t);
    let acks = 0;
    for (let i = 0; i < 200; i++) acks += inject(t, 10, { srcPort: 40000, seq: peerNxt + 1 + i, flags: ['RST'] }).length;
    assert.ok(acks >= 1 && acks < 200, `${acks} challenge ACKs for 200 RSTs within 1 ms`);
  });
  test('SYN in a synchronized state gets a challenge ACK, not a reset (RFC 5961 §4.2)', () => {
    const t = layer();
    const { iss, peerNxt, conn } = established(t);
    const [a] = inject(t, 10, { srcPort: 40000, seq: peerNxt + 5000, flags: ['SYN'] });
    expectTcp(a, { flags: ['ACK'], seq: iss + 1, ack: peerNxt });
    assert.equal(conn.state, 'ESTABLISHED');
  });
  test('data wholly outside the receive window is not delivered and gets an ACK', () => {
    const t = layer();
    const { iss, peerNxt, conn } = established(t);
    const [a] = inject(t, 10, { srcPort: 40000, seq: peerNxt - 5000, ack: iss + 1, flags: ['ACK'], payload: new Uint8Array(100) });
    expectTcp(a, { flags: ['ACK'], seq: iss + 1, ack: peerNxt });
    assert.equal(conn.recvAvailable, 0);
  });
  test('in-order data is delivered; the ACK covers it', () => {
    const t = layer();
    const { iss, peerNxt, conn } = established(t);
    const data = new Uint8Array(100).map((_, i) => i);
    inject(t, 10, { srcPort: 40000, seq: peerNxt, ack: iss + 1, flags: ['ACK', 'PSH'], payload: data });
    assert.equal(conn.recvAvailable, 100);
    assert.deepEqual(new Uint8Array(conn.recv()!), data);
    // Delayed or not, an ACK of the data arrives by the RFC 1122 §4.2.3.2 bound of 500 ms.
    let acked = false;
    for (let now = 10; now <= 510 && !acked; now += 10) {
      t.handleTimeout(now);
      for (const s of drain(t, now)) if (tcpFields(s).ack === peerNxt + 100) acked = true;
    }
    assert.ok(acked);
  });
  test('ACK of data never sent (SEG.ACK > SND.NXT) is answered with an ACK and ignored (RFC 9293 §3.10.7.4)', () => {
    const t = layer();
    const { iss, peerNxt, conn } = established(t);
    const [a] = inject(t, 10, { srcPort: 40000, seq: peerNxt, ack: iss + 1 + 5000, flags: ['ACK'] });
    expectTcp(a, { flags: ['ACK'], seq: iss + 1, ack: peerNxt });
    assert.equal(conn.state, 'ESTABLISHED');
  });
});

describe('active open', () => {
  test('SYN out; RST|ACK acking our SYN → ECONNREFUSED, closed exactly once', () => {
    const t = layer();
    const c = t.connect(0, { remoteAddr: PEER, remotePort: PORT });
    assert.equal(c.state, 'SYN-SENT');
    assert.ok(c.localPort >= 1024);
    const [syn] = drain(t, 0);
    expectTcp(syn, { flags: ['SYN'], dstPort: PORT, srcPort: c.localPort, src: US, dst: PEER });
    const iss = tcpFields(syn!).seq;
    // RFC 9293 §3.10.7.3: an RST whose ACK is unacceptable is ignored.
    assert.deepEqual(inject(t, 1, { srcPort: PORT, dstPort: c.localPort, seq: 0, ack: iss + 7, flags: ['RST', 'ACK'] }), []);
    assert.equal(c.state, 'SYN-SENT');
    inject(t, 1, { srcPort: PORT, dstPort: c.localPort, seq: 0, ack: iss + 1, flags: ['RST', 'ACK'] });
    const closed = events(t).filter((e) => e.type === 'tcp-closed');
    assert.equal(closed.length, 1);
    assert.equal(c.error, 'ECONNREFUSED');
    inject(t, 2, { srcPort: PORT, dstPort: c.localPort, seq: 0, ack: iss + 1, flags: ['RST', 'ACK'] });
    assert.equal(events(t).filter((e) => e.type === 'tcp-closed').length, 0);
  });
  test('SYN-ACK → ACK and tcp-connected', () => {
    const t = layer();
    const c = t.connect(0, { remoteAddr: PEER, remotePort: PORT });
    const iss = tcpFields(drain(t, 0)[0]!).seq;
    const [a] = inject(t, 5, { srcPort: PORT, dstPort: c.localPort, seq: 9000, ack: iss + 1, flags: ['SYN', 'ACK'], options: MSS_1400 });
    expectTcp(a, { flags: ['ACK'], seq: iss + 1, ack: 9001 });
    assert.equal(c.state, 'ESTABLISHED');
    assert.ok(events(t).some((e) => e.type === 'tcp-connected'));
  });
  test('SYN-ACK with a wrong ACK gets RST with seq = SEG.ACK (RFC 9293 §3.10.7.3)', () => {
    const t = layer();
    const c = t.connect(0, { remoteAddr: PEER, remotePort: PORT });
    const iss = tcpFields(drain(t, 0)[0]!).seq;
    const [r] = inject(t, 5, { srcPort: PORT, dstPort: c.localPort, seq: 9000, ack: iss + 100, flags: ['SYN', 'ACK'] });
    expectTcp(r, { flags: ['RST'], seq: iss + 100 });
    assert.equal(c.state, 'SYN-SENT');
  });
  test("Karn's rule (RFC 6298 §3): a SYN-ACK after a retransmitted SYN gives no RTT sample", () => {
    const t = layer();
    const c = t.connect(0, { remoteAddr: PEER, remotePort: PORT });
    const iss = tcpFields(drain(t, 0)[0]!).seq;
    // RFC 6298 §2.1: the first RTO is 1 s; the SYN is sent again then.
    t.handleTimeout(1000);
    const [again] = drain(t, 1000);
    expectTcp(again, { flags: ['SYN'], seq: iss });
    // The SYN-ACK comes 10 ms after the retransmission: it may answer either SYN, so it is no sample.
    inject(t, 1010, { srcPort: PORT, dstPort: c.localPort, seq: 9000, ack: iss + 1, flags: ['SYN', 'ACK'], options: MSS_1400 });
    assert.equal(c.state, 'ESTABLISHED');
    const rtt = (c as unknown as { rtt: { readonly srtt: number; readonly minRtt: number } }).rtt;
    assert.equal(rtt.srtt, 0, 'no sample from the retransmitted SYN');
    assert.equal(rtt.minRtt, 0);
    // A data segment ACKed 10 ms later is the first sample: RFC 6298 §2.2 gives SRTT = 10,
    // RTTVAR = 5, RTO = 10 + 4 × 5 = 30 ms, raised to the 200 ms floor. Taking the SYN's
    // 1010 ms as a sample instead made the RTO over 2 s.
    c.send(1010, new Uint8Array(100));
    expectTcp(drain(t, 1010)[0], { flags: ['ACK', 'PSH'], seq: iss + 1 });
    assert.deepEqual(inject(t, 1020, { srcPort: PORT, dstPort: c.localPort, seq: 9001, ack: iss + 101, flags: ['ACK'] }), []);
    assert.equal(rtt.srtt, 10);
    assert.equal(rtt.minRtt, 10);
    c.send(1020, new Uint8Array(100));
    expectTcp(drain(t, 1020)[0], { flags: ['ACK', 'PSH'], seq: iss + 101 });
    // That segment is lost: it is sent again (by the tail loss probe or the RTO) within 200 ms.
    const d = t.pollTimeout();
    assert.ok(d && d.at <= 1220, `resent at ${d?.at}, not within the 200 ms RTO`);
    t.handleTimeout(d.at);
    expectTcp(drain(t, d.at)[0], { flags: ['ACK'], seq: iss + 101 });
  });
  test('ICMP port unreachable in SYN-SENT is a hard error: ECONNREFUSED', () => {
    const t = layer();
    const c = t.connect(0, { remoteAddr: PEER, remotePort: PORT });
    const syn = drain(t, 0)[0]!;
    t.handleIcmpError(3, 'unreachable-port', US, PEER, syn.subarray(0, 8));
    assert.equal(c.error, 'ECONNREFUSED');
    assert.equal(events(t).filter((e) => e.type === 'tcp-closed').length, 1);
  });
});

describe('SYN flood and backlog (RFC 4987 SYN cookies)', () => {
  test('a full SYN queue answers with cookies and a legitimate client still connects', () => {
    const t = layer(3);
    const l = t.listen({ port: PORT, backlog: 4 });
    // 200 spoofed SYNs that never complete.
    for (let i = 0; i < 200; i++) {
      const [sa] = inject(t, 0, { srcPort: 10000 + i, seq: i * 7919, flags: ['SYN'], options: MSS_1400 });
      expectTcp(sa, { flags: ['SYN', 'ACK'], ack: i * 7919 + 1 });
    }
    assert.ok(t.connectionCount <= 4, `${t.connectionCount} connections held for a flood`);
    // The legitimate client, after the flood.
    const [sa] = inject(t, 1, { srcPort: 33333, seq: 424242, flags: ['SYN'], options: MSS_1400 });
    expectTcp(sa, { flags: ['SYN', 'ACK'], ack: 424243 });
    const cookie = tcpFields(sa!).seq;
    assert.deepEqual(inject(t, 2, { srcPort: 33333, seq: 424243, ack: cookie + 1, flags: ['ACK'] }), []);
    const c = l.accept();
    assert.ok(c, 'the cookie ACK established a connection');
    assert.equal(c.remotePort, 33333);
    assert.equal(c.state, 'ESTABLISHED');
  });
  test('a SYN flood answered with cookies leaves no state behind: no connections, no timers', () => {
    const t = layer(5);
    t.listen({ port: PORT, backlog: 4 });
    for (let i = 0; i < 20_000; i++) {
      const [sa] = inject(t, 0, { srcPort: 1024 + (i % 60000), seq: i * 104729, flags: ['SYN'], options: MSS_1400 });
      expectTcp(sa, { flags: ['SYN', 'ACK'], ack: (i * 104729 + 1) >>> 0 });
    }
    assert.ok(t.connectionCount <= 4, `${t.connectionCount} connections`);
    // Only the 4 embryonic connections of the SYN queue hold a timer.
    assert.ok(t.timerEntries <= 4, `${t.timerEntries} timer entries after 20,000 SYNs`);
  });
  test('a forged cookie ACK is refused with RST', () => {
    const t = layer(3);
    const l = t.listen({ port: PORT, backlog: 1 });
    inject(t, 0, { srcPort: 1, seq: 1, flags: ['SYN'] });
    const [r] = inject(t, 0, { srcPort: 2, seq: 50, ack: 0x1234567, flags: ['ACK'] });
    expectTcp(r, { flags: ['RST'], seq: 0x1234567 });
    assert.equal(l.accept(), undefined);
  });
  test('a full accept queue drops new SYNs', () => {
    const t = layer(4);
    t.listen({ port: PORT, backlog: 2 });
    for (let i = 0; i < 2; i++) {
      const [sa] = inject(t, 0, { srcPort: 2000 + i, seq: 10, flags: ['SYN'] });
      inject(t, 0, { srcPort: 2000 + i, seq: 11, ack: tcpFields(sa!).seq + 1, flags: ['ACK'] });
    }
    assert.deepEqual(inject(t, 0, { srcPort: 3000, seq: 10, flags: ['SYN'] }), []);
  });
});

describe('out-of-order data from a hostile peer (held state bounded, RFC 9293 §3.10.7.4)', () => {
  test('64,000 one-byte segments sent backwards above a hole: held memory stays within the receive buffer, the work stays small, and filling the hole delivers what was kept', () => {
    const t = layer(3, { recvBufferMax: 1024 * 1024 });
    const { conn, peerNxt, iss } = established(t);
    const n = 64_000;
    const started = process.hrtime.bigint();
    // Backwards, each one byte below the last, above a one-byte hole at peerNxt: every one
    // extends the same SACK range, so the range cap does not stop them.
    for (let k = n; k >= 1; k--) t.handleSegment(0, PEER, US, buildTcp(PEER, US, { srcPort: 40000, dstPort: PORT, seq: peerNxt + k, ack: iss + 1, flags: ['PSH', 'ACK'], payload: Uint8Array.of(k & 255) }));
    drain(t, 0);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const held = (conn as unknown as { ooo: unknown[]; oooBytes: number }).ooo.length;
    // 1 MiB at 257 bytes per held segment is ~4,080 segments; without the per-segment charge
    // all 64,000 (at ~250 bytes of heap each) were kept.
    assert.ok(held > 0 && held <= Math.ceil((1024 * 1024) / 257), `held ${held} segments`);
    assert.ok((conn as unknown as { oooBytes: number }).oooBytes <= 1024 * 1024);
    assert.ok(ms < 20_000, `took ${ms.toFixed(0)} ms`); // a guard against a quadratic scan (was ~70 s for 200,000), not a benchmark
    // The hole filled: byte 0, then the contiguous run of kept bytes that follows it.
    t.handleSegment(1, PEER, US, buildTcp(PEER, US, { srcPort: 40000, dstPort: PORT, seq: peerNxt, ack: iss + 1, flags: ['PSH', 'ACK'], payload: Uint8Array.of(0) }));
    drain(t, 1);
    const got = conn.recv()!;
    assert.equal(got[0], 0);
    for (let i = 1; i < got.length; i++) assert.equal(got[i], i & 255, `byte ${i}`);
  });
});

describe('PAWS and reordered ACKs (RFC 7323 §5.3)', () => {
  const SMSS = 1420 - 40 - 12; // our MTU's MSS (below the peer's 1400) less the timestamps option (RFC 7323 §3)
  const tsOpt = (val: number, ecr: number): number[] => [1, 1, 8, 10, val >>> 24, (val >>> 16) & 255, (val >>> 8) & 255, val & 255, ecr >>> 24, (ecr >>> 16) & 255, (ecr >>> 8) & 255, ecr & 255];
  const sackOpt = (blocks: number[]): number[] => {
    const o = [1, 1, 5, 2 + 4 * blocks.length];
    for (const v of blocks) o.push(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
    return o;
  };
  /** Our segment's TSecr (RFC 7323 §3.2): the TS.Recent it was sent with. */
  const ecrOf = (s: Uint8Array): number => parseTcp(s)!.tsEcr;

  /** A passive open with SACK and timestamps, the peer's clock at 1000 ms; 8 full segments sent at 20. */
  function withTimestamps(): { t: TcpLayer; conn: TcpConnection; iss: number; peerNxt: number; segs: number[] } {
    const t = layer();
    const l = t.listen({ port: PORT });
    const [synAck] = inject(t, 0, { srcPort: 40000, seq: 1000, flags: ['SYN'], options: [...MSS_1400, 1, 1, 4, 2, ...tsOpt(1000, 0)] });
    const iss = tcpFields(synAck!).seq;
    inject(t, 10, { srcPort: 40000, seq: 1001, ack: iss + 1, flags: ['ACK'], options: tsOpt(1001, 0) });
    events(t);
    const conn = l.accept()!;
    conn.send(20, new Uint8Array(8 * SMSS));
    const out = drain(t, 20).filter((s) => tcpFields(s).payloadLength > 0);
    assert.equal(out.length, 8);
    return { t, conn, iss, peerNxt: 1001, segs: out.map((s) => tcpFields(s).seq) };
  }

  test('a pure ACK overtaken by a newer one is processed, not dropped: its SACK blocks count, TS.Recent stays, no challenge ACK', () => {
    const { t, conn, peerNxt, segs } = withTimestamps();
    const end = (i: number): number => (segs[i]! + SMSS) >>> 0;
    // Segments 0, 2, 4 and 6 are lost. The receiver's ACK for segment 1 (TSval 1004) reports
    // it; its ACK for segment 7 (TSval 1007) reports the three most recent blocks, 7, 5 and 3
    // (RFC 2018 §4, at most three beside timestamps). The return path delivers them in the
    // other order.
    inject(t, 40, { srcPort: 40000, seq: peerNxt, ack: segs[0]!, flags: ['ACK'], options: [...tsOpt(1007, 20), ...sackOpt([segs[7]!, end(7), segs[5]!, end(5), segs[3]!, end(3)])] });
    const late = inject(t, 40, { srcPort: 40000, seq: peerNxt, ack: segs[0]!, flags: ['ACK'], options: [...tsOpt(1004, 20), ...sackOpt([segs[1]!, end(1)])] });
    assert.equal(t.stats['drop.paws'], 0, 'not dropped by PAWS');
    assert.equal(t.stats.pawsDisorderedAcks, 1);
    // Not answered as an old duplicate (a challenge ACK: no data, RFC 5961 §7).
    assert.ok(late.every((s) => tcpFields(s).payloadLength > 0), 'no bare ACK in answer');
    // Its block reached the scoreboard: four segments SACKed, not three.
    assert.equal((conn as unknown as { sack: { bytes: number } }).sack.bytes, 4 * SMSS);
    // TS.Recent did not move back (RFC 7323 §4.3): what we send next echoes 1007.
    for (const s of late) assert.equal(ecrOf(s), 1007);
    const next = inject(t, 41, { srcPort: 40000, seq: peerNxt, ack: segs[0]!, flags: ['ACK'], options: tsOpt(1008, 20) });
    for (const s of next) assert.equal(ecrOf(s), 1008);
    // The late ACK's window (older than the one in use) was not applied.
    inject(t, 42, { srcPort: 40000, seq: peerNxt, ack: segs[0]!, flags: ['ACK'], window: 100, options: [...tsOpt(1005, 20), ...sackOpt([segs[1]!, end(1)])] });
    assert.equal(t.stats.pawsDisorderedAcks, 2);
    assert.equal((conn as unknown as { sndWnd: number }).sndWnd, 65535);
  });

  test('an old TSval on data, on an ACK that acknowledges new data, or older than an RTO is still an old duplicate: dropped and answered', () => {
    const { t, peerNxt, segs } = withTimestamps();
    inject(t, 40, { srcPort: 40000, seq: peerNxt, ack: segs[0]!, flags: ['ACK'], options: tsOpt(1007, 20) });
    // Data with an old TSval (R1 applies to every segment but the exempt ACKs).
    const [a] = inject(t, 41, { srcPort: 40000, seq: peerNxt, ack: segs[0]!, flags: ['ACK', 'PSH'], payload: new Uint8Array(10), options: tsOpt(1006, 20) });
    assert.equal(t.stats['drop.paws'], 1);
    expectTcp(a, { flags: ['ACK'], ack: peerNxt });
    // An ACK of new data cannot be overtaken by its successor: the newer ACK acknowledges at least as much.
    inject(t, 42, { srcPort: 40000, seq: peerNxt, ack: segs[2]!, flags: ['ACK'], options: tsOpt(1006, 20) });
    assert.equal(t.stats['drop.paws'], 2);
    // More than one RTO (1 s at most here, RFC 6298 §2.1) behind TS.Recent.
    inject(t, 43, { srcPort: 40000, seq: peerNxt, ack: segs[0]!, flags: ['ACK'], options: tsOpt(1007 - 1500, 20) });
    assert.equal(t.stats['drop.paws'], 3);
    // Not at RCV.NXT.
    inject(t, 44, { srcPort: 40000, seq: peerNxt + 1, ack: segs[0]!, flags: ['ACK'], options: tsOpt(1006, 20) });
    assert.equal(t.stats['drop.paws'], 4);
    assert.equal(t.stats.pawsDisorderedAcks, 0);
    assert.equal(t.stats.challengeAcks, 3, 'the dropped segments without data were answered (RFC 5961 §7)');
  });

  test('an original that arrives after its retransmission, with the older TSval, is still dropped by PAWS but reported as a D-SACK (RFC 2883 §4)', () => {
    const { t, conn, iss, peerNxt } = withTimestamps();
    const data = new Uint8Array(100).fill(7);
    // The retransmission (TSval 1010) arrives first and is delivered.
    inject(t, 30, { srcPort: 40000, seq: peerNxt, ack: iss + 1, flags: ['ACK', 'PSH'], payload: data, options: tsOpt(1010, 20) });
    assert.equal(conn.recvAvailable, 100);
    // The original, held back on the way (TSval 1009), follows.
    const out = inject(t, 31, { srcPort: 40000, seq: peerNxt, ack: iss + 1, flags: ['ACK', 'PSH'], payload: data, options: tsOpt(1009, 20) });
    assert.equal(t.stats['drop.paws'], 1, 'R1 still drops it');
    assert.equal(conn.recvAvailable, 100, 'not delivered twice');
    const acks = out.map((s) => parseTcp(s)!).filter((h) => h.sack !== undefined);
    assert.equal(acks.length, 1, 'answered with one ACK that carries SACK blocks');
    // The first block is the duplicate, below the cumulative ACK: a D-SACK (RFC 2883 §4).
    assert.deepEqual(acks[0]!.sack!.slice(0, 2), [peerNxt, peerNxt + 100]);
    assert.equal(acks[0]!.ack, peerNxt + 100);
    assert.equal(t.stats.dsackSent, 1);
  });
});
