/**
 * Proportional Rate Reduction (RFC 6937) at packet level against one TcpLayer: what a
 * loss-based sender sends on each ACK of a fast recovery. The two scenarios are RFC 6937
 * §3.1's examples: 20 segments in flight with cwnd = 20 (so ssthresh = 10 with NewReno's
 * halving, RFC 5681 §3.2), and either segment 0 lost or segments 0-14 lost; the first ACKs
 * after the loss send new data as the pipe allows (the RFC's limited transmit, which RFC
 * 6675's pipe gives the same way), and RACK (RFC 8985) finds the loss once three segments are
 * SACKed, as DupThresh would.
 *
 * The peer is played by hand: it SACKs (RFC 2018) and uses no timestamps, so every segment
 * carries 1400 bytes. Expected sends come from RFC 6937 §3's formulas in segments, restated
 * here: RecoverFS is SND.NXT - SND.UNA when recovery begins, 22 segments (the 20, and the two
 * sent on the first two ACKs), and on each ACK
 *   pipe > ssthresh:  sndcnt = CEIL(prr_delivered × ssthresh / RecoverFS) - prr_out
 *   otherwise (SSRB): sndcnt = MIN(ssthresh - pipe, MAX(prr_delivered - prr_out, DeliveredData) + 1)
 *
 * For the burst loss this is the RFC's PRR-SSRB figure exactly (N N 2R 2R 2R, pipe before
 * sending 19 19 4 5 6). For the single loss the RFC's figure does not follow from its own
 * formulas: its pipe row repeats 18 on the fifth ACK, and its sends leave 11 segments in flight
 * at the end where PRR's stated property (§4) is to end at ssthresh, 10. The rows below are the
 * formulas' (one new segment on every second ACK, spaced out once the rounding of 10/22 slips,
 * the flight at 10 after the 19th ACK); what the figure shows against RFC 6675 is the point,
 * and holds: sending is spread over the round trip instead of stopping for half of it.
 *
 * Each test fails on the sender before PRR, which cut cwnd to ssthresh at once and sent
 * nothing until the pipe fell below it (RFC 6675 §5), then as much as the window allowed.
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
/** MSS 1400 and SACK-permitted, no timestamps, no window scaling (the peer's window: 65535 bytes). */
const SYN_OPTS = [2, 4, 0x05, 0x78, 1, 1, 4, 2];
const RTT = 20;

interface Internals {
  cc: { cwnd: number; ssthresh: number };
  rack: { reorderingSeen: boolean };
  pipe(): number;
  inRecovery: boolean;
}

interface Rig {
  c: TcpConnection;
  /** The first 20 segments' starts. */
  seg: number[];
  /** The ACK for segment k: SND.UNA unchanged at segment 0, SACK blocks as given. Returns what was sent: 'R' or 'N' per segment. */
  ack(now: number, sack: number[] | undefined): string;
  /** Runs the timers due by `now`; returns what was sent. */
  tick(now: number): string;
  internals: Internals;
}

function sackOption(blocks: number[]): number[] {
  const o = [1, 1, 5, 2 + 4 * blocks.length];
  for (const v of blocks) o.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  return o;
}

/** An accepted connection with an RTT sample of 20 ms, cwnd 20 segments, 20 segments sent at 50 and more queued. */
function rig(cc: 'newreno' | 'cubic' | 'bbr' = 'newreno', sackOk = true): Rig {
  const t = new TcpLayer({ rng: new SeededRng(7), mtu: 1440, congestionControl: cc, isLocal: (a: IpAddr) => ipEqual(a, US), sourceFor: () => US });
  const l = t.listen({ port: 80 });
  let sndMax = 0;
  const drain = (now: number): string => {
    let out = '';
    for (let o = t.pollTransmit(now); o; o = t.pollTransmit(now)) {
      const f = tcpFields(o.segment);
      if (f.payloadLength === 0) continue;
      const end = (f.seq + f.payloadLength) >>> 0;
      if (((end - sndMax) | 0) > 0) {
        out += 'N';
        sndMax = end;
      } else out += 'R';
    }
    return out;
  };
  t.handleSegment(0, PEER, US, buildTcp(PEER, US, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ, flags: ['SYN'], options: sackOk ? SYN_OPTS : SYN_OPTS.slice(0, 4) }));
  let iss = 0;
  for (let o = t.pollTransmit(0); o; o = t.pollTransmit(0)) iss = tcpFields(o.segment).seq;
  sndMax = (iss + 1) >>> 0;
  const send = (now: number, ack: number, sack?: number[]): string => {
    t.handleSegment(now, PEER, US, buildTcp(PEER, US, { srcPort: 4000, dstPort: 80, seq: PEER_SEQ + 1, ack, flags: ['ACK'], options: sack ? sackOption(sack) : undefined }));
    return drain(now);
  };
  send(10, (iss + 1) >>> 0);
  for (let e = t.pollEvent(); e; e = t.pollEvent());
  const c = l.accept()!;
  c.send(20, new Uint8Array(100));
  drain(20);
  send(20 + RTT, (iss + 101) >>> 0);
  const internals = c as unknown as Internals;
  // RFC 6937 §3.1: "cwnd = FlightSize = pipe = 20 segments".
  internals.cc.cwnd = 20 * MSS;
  c.send(50, new Uint8Array(40 * MSS));
  const first = drain(50);
  if (cc !== 'bbr') assert.equal(first, 'N'.repeat(20)); // BBR paces them out
  const una = (iss + 101) >>> 0;
  const seg = Array.from({ length: 20 }, (_, k) => (una + k * MSS) >>> 0);
  const tick = (now: number): string => {
    const d = t.pollTimeout();
    if (d && d.at <= now) t.handleTimeout(now);
    return drain(now);
  };
  return { c, seg, internals, ack: (now, sack) => send(now, una, sack), tick };
}

const end = (r: Rig, k: number): number => (r.seg[k]! + MSS) >>> 0;

test('RFC 6937 §3.1, one segment lost: a retransmission on the third ACK, then a new segment on about every second ACK, the flight down to ssthresh by the last', () => {
  const r = rig();
  const sent: string[] = [];
  const pipe: number[] = [];
  for (let k = 1; k <= 19; k++) {
    sent.push(r.ack(70, [r.seg[1]!, end(r, k)]) || '-');
    pipe.push(r.internals.pipe() / MSS);
    if (k === 3) assert.equal(r.internals.cc.ssthresh, 10 * MSS, 'NewReno halves the flight of 20 (RFC 5681 §3.2)');
  }
  // Per ACK 1..19, from the formulas above (RecoverFS 22, ssthresh 10): ACKs 3-17 are
  // proportional (pipe > 10), 18-19 the reduction bound (the last one "s": ssthresh - pipe).
  const want = ['N', 'N', 'R', '-', 'N', '-', 'N', '-', 'N', '-', 'N', '-', '-', 'N', '-', 'N', '-', '-', 'N'];
  assert.deepEqual(sent, want);
  // The pipe after each ACK's sends; before them it is one less where a segment went out.
  assert.deepEqual(pipe, [20, 20, 19, 18, 18, 17, 17, 16, 16, 15, 15, 14, 13, 13, 12, 12, 11, 10, 10]);
  assert.ok(r.internals.inRecovery);
});

test('RFC 6937 §3.1, segments 0-14 lost (PRR-SSRB): N N 2R 2R 2R, not the burst of RFC 6675', () => {
  const r = rig();
  const sent: string[] = [];
  const pipeBefore: number[] = [];
  for (let k = 15; k <= 19; k++) {
    const s = r.ack(70, [r.seg[15]!, end(r, k)]) || '-';
    sent.push(s);
    pipeBefore.push(r.internals.pipe() / MSS - s.replace('-', '').length);
  }
  // The RFC's PRR-SSRB figure: pipe 19 19 4 5 6 on the ACKs for 15-19, with sends N N 2R 2R 2R
  // (RB "bd", "d", "d": one segment more than each ACK delivered). RFC 6675 sends 7R on the third.
  assert.deepEqual(sent, ['N', 'N', 'RR', 'RR', 'RR']);
  assert.deepEqual(pipeBefore, [19, 19, 4, 5, 6]);
});

test('RFC 6937 with CUBIC (RFC 9438 §4.6, β = 0.7): the same scenario comes down to ssthresh = 14 segments, 14/22 of a segment per ACK', () => {
  const r = rig('cubic');
  const sent: string[] = [];
  for (let k = 1; k <= 19; k++) sent.push(r.ack(70, [r.seg[1]!, end(r, k)]) || '-');
  assert.equal(r.internals.cc.ssthresh, 14 * MSS, 'ssthresh = cwnd × β');
  // The same formulas with ssthresh 14: proportional while the pipe is above 14 (ACKs 3-14),
  // then the reduction bound holds it at 14 (a segment per segment delivered). Before PRR,
  // ACKs 4-8 sent nothing (the pipe, 18 down to 14, not below cwnd = ssthresh).
  assert.deepEqual(sent, ['N', 'N', 'R', 'N', '-', 'N', 'N', '-', 'N', 'N', '-', 'N', '-', '-', 'N', 'N', 'N', 'N', 'N']);
  assert.equal(r.internals.pipe(), 14 * MSS);
});

test('BBR keeps its own recovery (packet conservation, no PRR): the retransmission goes at once', () => {
  const r = rig('bbr'); // its first segments paced out at 50; segments 0-3 among them
  const sent: string[] = [];
  for (let k = 1; k <= 3; k++) sent.push(r.ack(70, [r.seg[1]!, end(r, k)]));
  assert.ok(sent[2]!.startsWith('R'), `the fast retransmit on the third ACK: ${sent.join(',')}`);
  assert.equal((r.internals.cc as { prr?: unknown }).prr, undefined);
});

test('a segment the reordering timer finds lost in recovery goes out at once, in place of the one that left the pipe', () => {
  const r = rig();
  // Reordering seen before: the window is min_RTT / 4 = 5 ms (RFC 8985 §6.2 step 4), so losses
  // are found by the reordering timer rather than on the ACKs. Segments 0 and 5 are lost.
  r.internals.rack.reorderingSeen = true;
  for (let k = 1; k <= 4; k++) r.ack(70, [r.seg[1]!, end(r, k)]);
  // 50 + RACK.rtt 20 + 5: segment 0 is lost; recovery begins with its retransmission.
  assert.equal(r.tick(75), 'R');
  assert.ok(r.internals.inRecovery);
  // ACKs for 6-19 at 76, SACKing above the second hole: PRR sends on them as it will.
  for (let k = 6; k <= 19; k++) r.ack(76, [r.seg[6]!, end(r, k), r.seg[1]!, end(r, 4)]);
  // No more ACKs come. Segment 5 is judged at 50 + RACK.rtt 26 + 5 = 81 by the timer: marked
  // lost, it no longer counts in the pipe, and its retransmission takes its place. Before, the
  // timer gave PRR no delivery and so no sndcnt, and the segment waited for an ACK that only
  // its own retransmission could bring: the RTO, 200 ms on.
  let sent = '';
  for (let now = 77; now <= 81; now++) sent += r.tick(now);
  assert.equal(sent, 'R');
});

test('without SACK (RFC 6937 §3: a duplicate ACK stands for one segment delivered): the same reduction, clocked by duplicate ACKs', () => {
  const r = rig('newreno', false);
  const sent: string[] = [];
  for (let k = 1; k <= 19; k++) sent.push(r.ack(70, undefined) || '-');
  // No SACK, no pipe below the flight, so nothing new on the first two duplicate ACKs; the
  // third resends segment 0 (RFC 5681 §3.2). RecoverFS = 20, ssthresh = 10; the pipe is taken
  // as the flight less one segment per duplicate ACK. Proportional while it is above ssthresh
  // (to the 14th), then the reduction bound: nothing at 10 (the 15th), and from the 16th one
  // segment per duplicate ACK, the flight held at 10. Before PRR nothing new went out at all
  // (cwnd = ssthresh = 10 below a flight of 20 that duplicate ACKs do not shrink).
  assert.deepEqual(sent, ['-', '-', 'R', '-', 'N', '-', 'N', '-', 'N', '-', 'N', '-', 'N', '-', '-', 'N', 'N', 'N', 'N']);
});

