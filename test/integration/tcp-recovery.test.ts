/**
 * RACK-TLP (RFC 8985) at packet level against one TcpLayer: losses found by time rather
 * than by counting duplicate ACKs (§6.2), the reordering window and its adaptation to
 * D-SACKs (§6.2 step 4), the tail loss probe (§7) and the RTO behind it (§6.3, RFC 6298).
 *
 * The peer is played by hand: it SACKs (RFC 2018), uses no timestamps (so every segment
 * carries 1400 bytes), and one data exchange at a 20 ms RTT gives the sender its first RTT
 * sample: SRTT 20 ms, minimum RTT 20 ms, RTO at its 200 ms floor. Expected times come from
 * the RFC's formulas with those values, restated here rather than imported.
 *
 * Each test fails on the sender before RACK-TLP (which counted three duplicate ACKs or
 * SACKed segments, RFC 6675's IsLost, and probed again after any new data was acknowledged).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpLayer } from '../../src/netstack/tcp/index.js';
import { SeededRng } from '../../src/util/rng.js';
import { parseIp, ipEqual } from '../../src/util/ip.js';
import type { IpAddr } from '../../src/util/ip.js';
import type { TcpConnection } from '../../src/netstack/types.js';
import { buildTcp, tcpFields } from '../harness/packets.js';

const US = parseIp('10.0.0.1')!;
const PEER = parseIp('10.0.0.2')!;
const PEER_SEQ = 100;
const MSS = 1400;
/** MSS 1400 and SACK-permitted, no timestamps. */
const SYN_OPTS = [2, 4, 0x05, 0x78, 1, 1, 4, 2];
const RTT = 20;
/** RFC 8985 §6.2 step 4: a quarter of the minimum RTT per step of the multiplier. */
const REO_STEP = RTT / 4;
/** RFC 6298 §2.4 as Linux floors it (MIN_RTO); with SRTT 20 and RTTVAR 10 the RTO is this floor. */
const RTO = 200;
/** RFC 8985 §7.2: PTO = 2 × SRTT with more than one segment in flight. */
const PTO = 2 * RTT;

interface Seg {
  seq: number;
  end: number;
  at: number;
}

interface Rig {
  t: TcpLayer;
  c: TcpConnection;
  /** Everything the layer sent, with when. */
  log: Seg[];
  /** Feeds an ACK from the peer at `now` (with SACK blocks, the first one a D-SACK if so meant). */
  ack(now: number, ack: number, sack?: number[]): void;
  /** Runs the timers due by `now`. */
  tick(now: number): void;
  /** Ticks each millisecond from `from` to `to` (inclusive). */
  run(from: number, to: number): void;
  /** Queues `n` full segments at `now` and returns them as sent. */
  flight(now: number, n: number): Seg[];
  /** Data segments sent at or after `from` whose start is `seq`. */
  sentAt(seq: number, from: number): Seg[];
}

function sackOption(blocks: number[]): number[] {
  const o = [1, 1, 5, 2 + 4 * blocks.length];
  for (const v of blocks) o.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  return o;
}

function rig(): Rig {
  const t = new TcpLayer({ rng: new SeededRng(21), mtu: 1440, congestionControl: 'cubic', isLocal: (a: IpAddr) => ipEqual(a, US), sourceFor: () => US });
  const l = t.listen({ port: 80 });
  const log: Seg[] = [];
  const drain = (now: number): void => {
    for (let o = t.pollTransmit(now); o; o = t.pollTransmit(now)) {
      const f = tcpFields(o.segment);
      if (f.payloadLength > 0) log.push({ seq: f.seq, end: (f.seq + f.payloadLength) >>> 0, at: now });
    }
  };
  t.handleSegment(0, PEER, US, buildTcp(PEER, US, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ, flags: ['SYN'], options: SYN_OPTS }));
  let iss = 0;
  for (let o = t.pollTransmit(0); o; o = t.pollTransmit(0)) iss = tcpFields(o.segment).seq;
  const ack: Rig['ack'] = (now, a, sack) => {
    t.handleSegment(now, PEER, US, buildTcp(PEER, US, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ + 1, ack: a, flags: ['ACK'], options: sack ? sackOption(sack) : undefined }));
    drain(now);
  };
  const tick: Rig['tick'] = (now) => {
    const d = t.pollTimeout();
    if (d && d.at <= now) t.handleTimeout(now);
    drain(now);
  };
  ack(10, (iss + 1) >>> 0);
  for (let e = t.pollEvent(); e; e = t.pollEvent());
  const c = l.accept()!;
  // One exchange at a 20 ms RTT: SRTT 20, RTTVAR 10, minimum RTT 20.
  c.send(20, new Uint8Array(100));
  drain(20);
  ack(20 + RTT, (iss + 101) >>> 0);
  log.length = 0;
  return {
    t,
    c,
    log,
    ack,
    tick,
    run(from, to) {
      for (let now = from; now <= to; now++) tick(now);
    },
    flight(now, n) {
      const before = log.length;
      c.send(now, new Uint8Array(n * MSS));
      drain(now);
      return log.slice(before);
    },
    sentAt: (seq, from) => log.filter((s) => s.seq === seq && s.at >= from),
  };
}

/**
 * A flight whose first segment is 1 ms late, not lost: the receiver SACKs the next, then
 * ACKs everything. Reordering is then known (§6.2 step 3: a segment never resent was
 * delivered below RACK.fack).
 */
function seeReordering(r: Rig, now: number): number {
  const s = r.flight(now, 4);
  r.ack(now + RTT - 1, s[0]!.seq, [s[1]!.seq, s[1]!.end]);
  r.ack(now + RTT, s[3]!.end);
  assert.equal(r.sentAt(s[0]!.seq, now + 1).length, 0, 'the late segment was not resent');
  return now + RTT;
}

test('RFC 8985 §6.2: a segment lost with only one segment SACKed after it is resent once RACK.rtt + reo_wnd has passed, without three duplicate ACKs', () => {
  const r = rig();
  const s = r.flight(50, 2);
  assert.equal(s.length, 2);
  // The first segment is lost; the second arrives. One duplicate ACK, one segment SACKed:
  // DupThresh (RFC 5681, RFC 6675) is far off.
  r.ack(50 + RTT, s[0]!.seq, [s[1]!.seq, s[1]!.end]);
  assert.equal(r.sentAt(s[0]!.seq, 51).length, 0, 'not at once: the segment may only be late');
  // RACK: lost once RACK.rtt (20) + reo_wnd (min RTT / 4 = 5) has passed since it was sent.
  const due = 50 + RTT + REO_STEP;
  r.run(51, due - 1);
  assert.equal(r.sentAt(s[0]!.seq, 51).length, 0, `not before ${due} ms`);
  r.tick(due);
  assert.equal(r.sentAt(s[0]!.seq, due).length, 1, `resent at ${due} ms`);
  assert.equal(r.t.stats.fastRetransmits, 1);
  assert.equal(r.t.stats.tailLossProbes, 0);
  assert.equal(r.t.stats.rtoExpired, 0);
});

test('RFC 8985 §6.2: once reordering is seen, a segment that arrives within the reordering window is not resent, in recovery too', () => {
  const r = rig();
  const t0 = seeReordering(r, 50);
  // Ten segments: the first is lost, the sixth is late by 3 ms (within reo_wnd = 5 ms).
  const s = r.flight(t0, 10);
  assert.equal(s.length, 10);
  const una = s[0]!.seq;
  r.ack(t0 + RTT, una, [s[1]!.seq, s[5]!.seq]);
  // The loss of the first is due at t0 + 20 + 5: recovery starts.
  r.run(t0 + RTT + 1, t0 + RTT + REO_STEP);
  assert.equal(r.sentAt(una, t0 + 1).length, 1, 'the lost segment is resent');
  assert.equal(r.t.stats.fastRetransmits, 1);
  // Four segments above the late one are SACKed: RFC 6675's IsLost would call it lost now.
  r.ack(t0 + RTT + REO_STEP, una, [s[6]!.seq, s[9]!.end, s[1]!.seq, s[5]!.seq]);
  r.run(t0 + RTT + REO_STEP + 1, t0 + RTT + 3);
  // It arrives 3 ms late: no retransmission of it, before or after.
  r.ack(t0 + RTT + 3, una, [s[1]!.seq, s[9]!.end]);
  r.run(t0 + RTT + 4, t0 + 2 * RTT + 10);
  assert.equal(r.sentAt(s[5]!.seq, t0 + 1).length, 0, 'the late segment was never resent');
  r.ack(t0 + 2 * RTT + 10, s[9]!.end);
  assert.equal(r.sentAt(s[5]!.seq, t0 + 1).length, 0);
});

/**
 * One recovery: two segments, the first lost, the second SACKed one RTT later. With
 * reordering seen, the first is resent RACK.rtt + reo_wnd after it was sent; the time tells
 * reo_wnd. Everything is then acknowledged (a D-SACK of the first with it if `dsack`: the
 * original arrived too, so the retransmission was spurious).
 */
function episode(r: Rig, now: number, dsack: boolean): { reoWnd: number; end: number } {
  const s = r.flight(now, 2);
  assert.equal(s.length, 2, 'a whole flight');
  const una = s[0]!.seq;
  r.ack(now + RTT, una, [s[1]!.seq, s[1]!.end]);
  let at = -1;
  for (let x = now + RTT + 1; x <= now + 4 * RTT && at < 0; x++) {
    r.tick(x);
    if (r.sentAt(una, now + 1).length > 0) at = x;
  }
  assert.ok(at > 0, 'the lost segment was resent');
  const end = at + 1;
  r.ack(end, s[1]!.end, dsack ? [una, s[0]!.end] : undefined);
  return { reoWnd: at - now - RTT, end };
}

test('RFC 8985 §6.2 step 4: each round with a D-SACK widens the reordering window by min RTT / 4, up to SRTT; 16 recoveries without one bring it back', () => {
  const r = rig();
  let now = seeReordering(r, 50) + 5;
  let e = episode(r, now, false);
  assert.equal(e.reoWnd, REO_STEP, 'one step to start with');
  // A spurious retransmission, reported by a D-SACK: two steps from then on.
  e = episode(r, e.end + 5, true);
  assert.equal(r.t.stats.dsackReceived, 1);
  e = episode(r, e.end + 5, false);
  assert.equal(e.reoWnd, 2 * REO_STEP, 'two steps after one D-SACK round');
  e = episode(r, e.end + 5, true);
  e = episode(r, e.end + 5, false);
  assert.equal(e.reoWnd, 3 * REO_STEP, 'three steps after two');
  e = episode(r, e.end + 5, true);
  e = episode(r, e.end + 5, true);
  e = episode(r, e.end + 5, false);
  assert.equal(e.reoWnd, RTT, 'bounded by SRTT (20 ms), not 5 × 5 ms');
  // That recovery was the first of 16 without a D-SACK (RACK.reo_wnd_persist): the window
  // holds through the 16th, and the one after it is back to one step.
  now = e.end + 5;
  for (let i = 2; i <= 16; i++) {
    e = episode(r, now, false);
    assert.equal(e.reoWnd, RTT, `still wide in recovery ${i} of 16`);
    now = e.end + 5;
  }
  e = episode(r, now, false);
  assert.equal(e.reoWnd, REO_STEP, 'back to one step after 16 recoveries without a D-SACK');
  assert.equal(r.t.stats.rtoExpired, 0);
});

/** Ticks from `from` until the layer sends a tail loss probe; its time (-1 if none by `to`). */
function untilProbe(r: Rig, from: number, to: number): number {
  for (let now = from; now <= to; now++) {
    r.tick(now);
    if (r.t.stats.tailLossProbes > 0) return now;
  }
  return -1;
}

test('RFC 8985 §7: a tail lost whole is probed at 2 × SRTT and repaired from the probe\'s SACK, long before the RTO', () => {
  const r = rig();
  const s = r.flight(50, 3);
  assert.equal(s.length, 3);
  // Nothing comes back: the probe resends the last segment at 50 + PTO.
  const probeAt = untilProbe(r, 51, 50 + RTO);
  assert.equal(probeAt, 50 + PTO, 'PTO = 2 × SRTT after the flight');
  const probe = r.log.slice(3);
  assert.equal(probe.length, 1);
  assert.deepEqual([probe[0]!.seq, probe[0]!.end], [s[2]!.seq, s[2]!.end], 'the highest segment sent');
  // The probe arrives: its SACK shows the two before it lost (sent before it, RACK.rtt ago),
  // though only one segment is SACKed (no DupThresh).
  r.ack(probeAt + RTT, s[0]!.seq, [s[2]!.seq, s[2]!.end]);
  assert.equal(r.sentAt(s[0]!.seq, 51).length, 1, 'the first resent on the probe\'s ACK');
  assert.equal(r.sentAt(s[1]!.seq, 51).length, 1, 'the second too');
  r.ack(probeAt + 2 * RTT, s[2]!.end);
  assert.equal(r.c.sendQueued, 0, 'all acknowledged');
  assert.ok(probeAt + 2 * RTT < 50 + RTO, 'before the RTO would have fired');
  assert.equal(r.t.stats.rtoExpired, 0);
});

test('RFC 8985 §7.2-7.3: one probe at a time; when it is lost the RTO still fires and resends the first segment', () => {
  const r = rig();
  const s = r.flight(50, 3);
  const probeAt = untilProbe(r, 51, 50 + RTO);
  assert.ok(probeAt > 0, 'the probe');
  // The first segment was only late; its ACK comes, the probe and the two others are lost.
  const ackAt = probeAt + 5;
  r.ack(ackAt, s[0]!.end);
  // The probe is still outstanding (its ACK would tell what was lost): no second one, only
  // the RTO, restarted by that ACK (RFC 6298 §5.3).
  r.run(ackAt + 1, ackAt + RTO - 1);
  assert.equal(r.t.stats.tailLossProbes, 1, 'no second probe while the first is outstanding');
  assert.equal(r.sentAt(s[1]!.seq, 51).length, 0, 'nothing resent before the RTO');
  r.tick(ackAt + RTO);
  assert.equal(r.t.stats.rtoExpired, 1, 'the RTO fired');
  assert.equal(r.sentAt(s[1]!.seq, ackAt + RTO).length, 1, 'and resent the first outstanding segment');
  const cwnd = (r.c as unknown as { cc: { cwnd: number } }).cc.cwnd;
  assert.ok(cwnd <= MSS, `the window collapsed to one segment (${cwnd})`);
});
