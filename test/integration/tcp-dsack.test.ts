/**
 * Loss recovery details at packet level against one TcpLayer: D-SACK (RFC 2883), undoing
 * a spurious recovery (RFC 3708 detection, RFC 4015 response), the reordering window
 * (RFC 8985 §6.2), SACK block order (RFC 2018 §4), a window that does not shrink under
 * out-of-order data, what counts as a duplicate ACK (RFC 6675 §2), lost retransmissions
 * (RFC 8985 §6.2, and the tail loss probe when nothing later can show one lost).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpLayer } from '../../src/netstack/tcp/index.js';
import { parseTcp } from '../../src/wire/tcp.js';
import { SeededRng } from '../../src/util/rng.js';
import { parseIp, ipEqual } from '../../src/util/ip.js';
import type { IpAddr } from '../../src/util/ip.js';
import type { TcpConnection } from '../../src/netstack/types.js';
import { buildTcp, expectTcp, tcpFields } from '../harness/packets.js';

const US = parseIp('10.0.0.1')!;
const PEER = parseIp('10.0.0.2')!;
const PEER_SEQ = 100;
/** MSS 1400 and SACK-permitted, no timestamps (so segments carry the whole MSS). */
const SYN_OPTS = [2, 4, 0x05, 0x78, 1, 1, 4, 2];

interface Rig {
  t: TcpLayer;
  c: TcpConnection;
  iss: number;
  /** Feeds a segment from the peer at `now` and returns what the layer sends. */
  seg(now: number, b: { seq?: number; ack: number; sack?: number[]; payload?: Uint8Array }): Uint8Array[];
  tick(now: number): Uint8Array[];
  cwnd(): number;
}

function sackOption(blocks: number[]): number[] {
  const o = [1, 1, 5, 2 + 4 * blocks.length];
  for (const v of blocks) o.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  return o;
}

/** An accepted connection with one 20 ms RTT sample taken (data at 20, its ACK at 40). */
function rig(): Rig {
  const t = new TcpLayer({ rng: new SeededRng(9), mtu: 1440, congestionControl: 'cubic', isLocal: (a: IpAddr) => ipEqual(a, US), sourceFor: () => US });
  const l = t.listen({ port: 80 });
  const drain = (now: number): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let o = t.pollTransmit(now); o; o = t.pollTransmit(now)) out.push(o.segment);
    return out;
  };
  t.handleSegment(0, PEER, US, buildTcp(PEER, US, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ, flags: ['SYN'], options: SYN_OPTS }));
  const iss = tcpFields(drain(0)[0]!).seq;
  const seg: Rig['seg'] = (now, b) => {
    t.handleSegment(now, PEER, US, buildTcp(PEER, US, { srcPort: 4000, dstPort: 80, seq: b.seq ?? PEER_SEQ + 1, ack: b.ack, flags: ['ACK'], options: b.sack ? sackOption(b.sack) : undefined, payload: b.payload }));
    return drain(now);
  };
  seg(10, { ack: iss + 1 });
  for (let e = t.pollEvent(); e; e = t.pollEvent());
  const c = l.accept()!;
  c.send(20, new Uint8Array(100));
  drain(20);
  seg(40, { ack: iss + 101 });
  const tick = (now: number): Uint8Array[] => {
    const d = t.pollTimeout();
    if (d && d.at <= now) t.handleTimeout(now);
    return drain(now);
  };
  return { t, c, iss, seg, tick, cwnd: () => (c as unknown as { cc: { cwnd: number } }).cc.cwnd };
}

test('a segment received twice is reported in a D-SACK block ahead of the SACK blocks (RFC 2883 §4)', () => {
  const r = rig();
  const data = new Uint8Array(100).fill(7);
  r.seg(50, { ack: r.iss + 101, payload: data });
  const out = r.seg(51, { ack: r.iss + 101, payload: data });
  assert.equal(out.length, 1, 'the duplicate is ACKed at once');
  const h = parseTcp(out[0]!)!;
  assert.equal(h.ack, PEER_SEQ + 101);
  assert.deepEqual(h.sack, [PEER_SEQ + 1, PEER_SEQ + 101]);
  // Reported once: the next ACK carries no D-SACK.
  const next = r.seg(52, { seq: PEER_SEQ + 101, ack: r.iss + 101, payload: new Uint8Array(10) });
  for (const o of next) assert.equal(parseTcp(o)!.sack, undefined);
  // Out of order, then its duplicate: the D-SACK block comes first, then the block holding it.
  r.seg(53, { seq: PEER_SEQ + 1000, ack: r.iss + 101, payload: data });
  const dup = r.seg(54, { seq: PEER_SEQ + 1000, ack: r.iss + 101, payload: data });
  assert.deepEqual(parseTcp(dup[0]!)!.sack, [PEER_SEQ + 1000, PEER_SEQ + 1100, PEER_SEQ + 1000, PEER_SEQ + 1100]);
});

/** Sends `n` full segments at `now`; returns their [seq, end) ranges. */
function flight(r: Rig, now: number, n: number): [number, number][] {
  r.c.send(now, new Uint8Array(n * 1400));
  const out = r.tick(now).map((s) => tcpFields(s));
  return out.map((f) => [f.seq, (f.seq + f.payloadLength) >>> 0]);
}

test('a fast retransmit that a D-SACK shows was needless is undone: the window comes back (RFC 3708, RFC 4015)', () => {
  const r = rig();
  const segs = flight(r, 50, 8);
  assert.equal(segs.length, 8);
  const before = r.cwnd();
  const una = segs[0]![0];
  // Segments 2.. arrive, the first is late: three duplicate ACKs with growing SACK blocks.
  r.seg(60, { ack: una, sack: [segs[1]![0], segs[2]![0]] });
  r.seg(61, { ack: una, sack: [segs[1]![0], segs[3]![0]] });
  const rexmit = r.seg(62, { ack: una, sack: [segs[1]![0], segs[4]![0]] });
  expectTcp(rexmit[0], { flags: ['ACK'], seq: una });
  assert.ok(r.cwnd() < before, 'the window was cut on entering recovery');
  assert.equal(r.t.stats.fastRetransmits, 1);
  // The original arrives after all; the receiver ACKs everything and reports the retransmission as a duplicate.
  const end = segs[7]![1];
  r.seg(70, { ack: end, sack: [una, segs[0]![1]] });
  assert.equal(r.t.stats.spuriousRecoveries, 1);
  assert.ok(r.cwnd() >= before, `window restored (${r.cwnd()} >= ${before})`);
});

test('once reordering is seen, duplicate ACKs wait out the reordering window before a retransmit (RFC 8985 §6.2)', () => {
  const r = rig();
  let segs = flight(r, 50, 8);
  let una = segs[0]![0];
  // A hole that fills by itself (no retransmission): reordering.
  r.seg(60, { ack: una, sack: [segs[1]![0], segs[2]![0]] });
  r.seg(70, { ack: segs[7]![1] }); // 20 ms after sending: the minimum RTT stays 20 ms
  assert.equal(r.t.stats.reorderingSeen, 1);
  assert.equal(r.t.stats.fastRetransmits, 0);
  segs = flight(r, 70, 8);
  una = segs[0]![0];
  r.seg(80, { ack: una, sack: [segs[1]![0], segs[2]![0]] });
  r.seg(80, { ack: una, sack: [segs[1]![0], segs[3]![0]] });
  const early = r.seg(80, { ack: una, sack: [segs[1]![0], segs[5]![0]] });
  assert.equal(early.length, 0, 'no retransmission at the third duplicate ACK');
  assert.equal(r.t.stats.fastRetransmits, 0);
  // The window is a quarter of the 20 ms minimum RTT: 5 ms after the first SACK above the hole.
  assert.equal(r.tick(84).length, 0);
  const late = r.tick(85);
  expectTcp(late[0], { flags: ['ACK'], seq: una });
  assert.equal(r.t.stats.fastRetransmits, 1);
});

test('SACK blocks lead with the newest arrival, then the blocks before it (RFC 2018 §4)', () => {
  const r = rig();
  const at = (off: number): number => PEER_SEQ + 1 + off;
  const data = new Uint8Array(100);
  let last: Uint8Array[] = [];
  for (const off of [1000, 2000, 3000, 4000]) last = r.seg(50, { seq: at(off), ack: r.iss + 101, payload: data });
  // Four holes, room for three blocks: the newest three, newest first.
  assert.deepEqual(parseTcp(last[0]!)!.sack, [at(4000), at(4100), at(3000), at(3100), at(2000), at(2100)]);
  // The oldest block grows: it is reported first now, then the two most recent before it.
  last = r.seg(51, { seq: at(1100), ack: r.iss + 101, payload: data });
  assert.deepEqual(parseTcp(last[0]!)!.sack, [at(1000), at(1200), at(4000), at(4100), at(3000), at(3100)]);
});

test('out-of-order data does not shrink the advertised window (RFC 9293 §3.8.6.2.1)', () => {
  const t = new TcpLayer({ rng: new SeededRng(3), mtu: 1440, recvBufferMax: 32_768, congestionControl: 'cubic', isLocal: (a: IpAddr) => ipEqual(a, US), sourceFor: () => US });
  t.listen({ port: 80 });
  const out = (now: number, b: Parameters<typeof buildTcp>[2]): Uint8Array[] => {
    t.handleSegment(now, PEER, US, buildTcp(PEER, US, b));
    const o: Uint8Array[] = [];
    for (let x = t.pollTransmit(now); x; x = t.pollTransmit(now)) o.push(x.segment);
    return o;
  };
  const iss = tcpFields(out(0, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ, flags: ['SYN'], options: SYN_OPTS })[0]!).seq;
  out(1, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ + 1, ack: iss + 1, flags: ['ACK'] });
  // 20 KB above a one-segment hole: the right edge (ack + window) stays where it was.
  let ack: Uint8Array[] = [];
  for (let i = 1; i <= 15; i++) ack = out(2, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ + 1 + i * 1400, ack: iss + 1, flags: ['ACK'], payload: new Uint8Array(1400) });
  const f = tcpFields(ack[0]!);
  assert.equal(f.ack, PEER_SEQ + 1);
  assert.equal(f.window, 32_768);
  // And a segment at the far end of that window is taken, not dropped.
  out(3, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ + 1 + 32_768 - 1400, ack: iss + 1, flags: ['ACK'], payload: new Uint8Array(1400) });
  assert.equal(t.stats['drop.outOfWindow'], 0);
});

test('an ACK that carries only a D-SACK is not a duplicate ACK (RFC 6675 §2)', () => {
  const r = rig();
  const segs = flight(r, 50, 8);
  const una = segs[0]![0];
  for (let i = 0; i < 4; i++) r.seg(60 + i, { ack: una, sack: [(una - 100) >>> 0, una] });
  assert.equal(r.t.stats.fastRetransmits, 0);
  assert.equal(r.t.stats.dsackReceived, 4);
});

test('a lost retransmission is sent again once data sent after it is SACKed, before any timeout', () => {
  const r = rig();
  const segs = flight(r, 50, 8);
  const una = segs[0]![0];
  r.seg(60, { ack: una, sack: [segs[1]![0], segs[2]![0]] });
  r.seg(61, { ack: una, sack: [segs[1]![0], segs[3]![0]] });
  expectTcp(r.seg(62, { ack: una, sack: [segs[1]![0], segs[4]![0]] })[0], { seq: una });
  // New data goes out after the retransmission...
  r.c.send(63, new Uint8Array(4 * 1400));
  const more = r.seg(63, { ack: una, sack: [segs[1]![0], segs[7]![1]] }).map((s) => tcpFields(s));
  const fresh = more.filter((f) => f.payloadLength > 0 && ((f.seq - segs[7]![1]) | 0) >= 0);
  assert.ok(fresh.length >= 3, `new data sent in recovery (${fresh.length} segments)`);
  const top = (fresh[fresh.length - 1]!.seq + fresh[fresh.length - 1]!.payloadLength) >>> 0;
  // ...and is SACKed while una stays: the retransmission of una was lost. It goes again at once.
  const again = r.seg(66, { ack: una, sack: [segs[1]![0], top] });
  expectTcp(again[0], { flags: ['ACK'], seq: una });
  assert.equal(r.t.stats.lostRetransmits, 1);
  assert.equal(r.t.stats.rtoExpired, 0);
});

test('a retransmission that draws no ACK is found lost from a tail loss probe\'s SACK, before the RTO (RFC 8985 §6.2, §7.3)', () => {
  const r = rig(); // SRTT 20 ms
  const segs = flight(r, 50, 8);
  const una = segs[0]![0];
  r.seg(60, { ack: una, sack: [segs[1]![0], segs[2]![0]] });
  r.seg(61, { ack: una, sack: [segs[1]![0], segs[3]![0]] });
  expectTcp(r.seg(62, { ack: una, sack: [segs[1]![0], segs[4]![0]] })[0], { seq: una });
  // Nothing comes back, neither for the retransmission nor the segments above the SACKed ones:
  // no later delivery shows them lost, so 2 × SRTT after the retransmission a probe resends
  // the highest segment in flight.
  let probe = -1;
  let at = -1;
  for (let now = 63; now < 250 && at < 0; now++) {
    for (const s of r.tick(now)) {
      const f = tcpFields(s);
      if (f.payloadLength > 0) {
        probe = f.seq;
        at = now;
      }
    }
  }
  assert.equal(at, 62 + 2 * 20, 'the probe, 2 × SRTT after the retransmission');
  assert.equal(probe, segs[7]![0]);
  assert.equal(r.t.stats.tailLossProbes, 1);
  // Its SACK comes back: what was sent before it and is still missing, the retransmission
  // included, is lost, and goes again at once.
  const again = r.seg(at + 20, { ack: una, sack: [segs[7]![0], segs[7]![1], segs[1]![0], segs[4]![0]] }).map((s) => tcpFields(s));
  assert.ok(again.some((f) => f.seq === una && f.payloadLength > 0), 'the lost retransmission is sent again');
  assert.equal(r.t.stats.lostRetransmits, 1);
  assert.equal(r.t.stats.rtoExpired, 0, 'before the 200 ms RTO');
});

test('scattered one-byte segments and SACK blocks cannot grow the range maps without bound', () => {
  const r = rig();
  // 600 one-byte segments with a gap before each: every one would open a new range.
  for (let i = 1; i <= 600; i++) r.seg(50, { seq: PEER_SEQ + 1 + 2 * i, ack: r.iss + 101, payload: Uint8Array.of(i & 0xff) });
  const conn = r.c as unknown as { oooRanges: number[]; sack: { ranges: number[] } };
  assert.ok(conn.oooRanges.length <= 512, `${conn.oooRanges.length / 2} out-of-order ranges`);
  assert.ok(r.t.stats['drop.oooRanges'] > 0);
  // And as a sender: 8 segments out, then ACKs SACKing scattered single bytes of them.
  const segs = flight(r, 60, 8);
  const una = segs[0]![0];
  for (let k = 0; k < 400; k++) {
    const l = (una + 10 + 25 * k) >>> 0;
    r.seg(61, { ack: una, sack: [l, (l + 1) >>> 0] });
  }
  assert.ok(conn.sack.ranges.length <= 512, `${conn.sack.ranges.length / 2} scoreboard ranges`);
  assert.ok(r.t.stats['drop.sackRanges'] > 0);
});
