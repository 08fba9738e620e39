/**
 * BBR's filters and state machine against the rules of BBRv1 (draft-cardwell-iccrg-bbr-
 * congestion-control-00) and, where bbr.ts takes them, draft-ietf-ccwg-bbr. The gains and
 * windows are restated here from the drafts, not imported (DESIGN §6). Samples are fed by
 * hand: one call per round trip, each delivering a packet sent after the previous round began.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bbr } from './bbr.js';
import { RateSampler } from './rate.js';

const MSS = 1000;

/** A controller and a sampler, with a helper that runs one round at `rate` bytes/ms. */
function harness(rand = 0.5) {
  const bbr = new Bbr(MSS, () => rand);
  const s = new RateSampler();
  let now = 0;
  const round = (o: { rate: number; rtt: number; inFlight?: number; appLimited?: boolean; dt?: number; lost?: number; txInFlight?: number }): void => {
    now += o.dt ?? o.rtt;
    const rs = s.rs;
    rs.priorDelivered = s.delivered; // a packet sent at the start of this round: the round ends
    const bytes = o.rate * o.rtt;
    s.delivered += bytes;
    rs.newlyDelivered = MSS; // what this ACK delivered; the round as a whole delivered `bytes`
    rs.delivered = bytes;
    rs.interval = o.rtt;
    rs.deliveryRate = o.rate;
    rs.isAppLimited = o.appLimited ?? false;
    rs.lost = o.lost ?? 0;
    rs.txInFlight = o.txInFlight ?? 0;
    rs.rtt = o.rtt;
    bbr.onRateSample(now, rs, s, o.inFlight ?? bytes, o.rtt);
  };
  return { bbr, s, round, at: () => now };
}

test('max-bandwidth filter: the largest sample of the last 10 rounds (v1 BtlBwFilterLen)', () => {
  const { bbr, round } = harness();
  round({ rate: 100, rtt: 10 });
  assert.equal(bbr.maxBw, 100);
  round({ rate: 50, rtt: 10 });
  assert.equal(bbr.maxBw, 100, 'a lower sample does not lower the max');
  for (let i = 0; i < 8; i++) round({ rate: 60, rtt: 10 });
  assert.equal(bbr.maxBw, 100, 'still inside 10 rounds');
  round({ rate: 60, rtt: 10 });
  assert.equal(bbr.maxBw, 60, 'the 100 sample is 10 rounds old: it leaves the window');
});

test('max-bandwidth filter: application-limited samples count only when they raise the max', () => {
  const { bbr, round } = harness();
  round({ rate: 100, rtt: 10 });
  round({ rate: 20, rtt: 10, appLimited: true });
  for (let i = 0; i < 9; i++) round({ rate: 20, rtt: 10, appLimited: true });
  assert.equal(bbr.maxBw, 100, 'app-limited samples below the estimate are ignored');
  round({ rate: 150, rtt: 10, appLimited: true });
  assert.equal(bbr.maxBw, 150, 'an app-limited sample above the estimate is real evidence');
});

test('Startup: gains 4 ln 2 (pacing) and 2 (cwnd); Drain after three rounds without 25 % growth', () => {
  const { bbr, round } = harness();
  assert.equal(bbr.state, 'Startup');
  assert.ok(Math.abs(bbr.pacingGain - 2.77) < 0.01);
  assert.equal(bbr.cwndGain, 2);
  let r = 10;
  for (let i = 0; i < 5; i++) round({ rate: (r *= 2), rtt: 10, inFlight: 4 * r * 10 });
  assert.equal(bbr.state, 'Startup', 'still growing');
  round({ rate: r * 1.1, rtt: 10, inFlight: 4 * r * 10 });
  round({ rate: r * 1.1, rtt: 10, inFlight: 4 * r * 10 });
  assert.equal(bbr.state, 'Startup', 'two flat rounds are not enough');
  round({ rate: r * 1.1, rtt: 10, inFlight: 4 * r * 10 });
  assert.equal(bbr.state, 'Drain', 'the third flat round fills the pipe');
  assert.ok(Math.abs(bbr.pacingGain - 1 / 2.885) < 0.01, 'drain pacing gain is 1 / (2 / ln 2)');
  assert.ok(bbr.fullBwReached);
});

test('Drain ends in ProbeBW once inflight is down to one BDP, never in the 0.75 phase', () => {
  for (const rand of [0, 0.2, 0.5, 0.99]) {
    const { bbr, round } = harness(rand);
    for (let i = 0; i < 4; i++) round({ rate: 100, rtt: 10, inFlight: 3000 });
    assert.equal(bbr.state, 'Drain');
    round({ rate: 100, rtt: 10, inFlight: 2000 });
    assert.equal(bbr.state, 'Drain', 'inflight 2000 > BDP 100 × 10');
    round({ rate: 100, rtt: 10, inFlight: 1000 });
    assert.equal(bbr.state, 'ProbeBW');
    assert.notEqual(bbr.cycleIndex, 1, `rand ${rand}: not the draining phase first`);
    assert.equal(bbr.cwndGain, 2);
  }
});

test('ProbeBW: eight phases [1.25, 0.75, 1 × 6], each one min_rtt; 1.25 holds until inflight reaches 1.25 BDP', () => {
  const { bbr, round } = harness(0); // rand 0: start in phase 0 (gain 1.25)
  for (let i = 0; i < 4; i++) round({ rate: 100, rtt: 10, inFlight: 3000 });
  round({ rate: 100, rtt: 10, inFlight: 1000 });
  assert.equal(bbr.state, 'ProbeBW');
  assert.equal(bbr.pacingGain, 1.25);
  // The phase tests read inflight before the ACK: inFlight + the 1000 bytes it delivered.
  round({ rate: 100, rtt: 10, inFlight: 200, dt: 11 });
  assert.equal(bbr.pacingGain, 1.25, 'a min_rtt has passed but inflight is below 1.25 BDP');
  round({ rate: 100, rtt: 10, inFlight: 250, dt: 11 });
  assert.equal(bbr.pacingGain, 0.75);
  round({ rate: 100, rtt: 10, inFlight: 0, dt: 1 });
  assert.equal(bbr.pacingGain, 1, '0.75 ends early once inflight is at one BDP');
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    round({ rate: 100, rtt: 10, inFlight: 1000, dt: 11 });
    seen.push(bbr.pacingGain);
  }
  assert.deepEqual(seen, [1, 1, 1, 1, 1, 1.25], 'six cruising phases, then probe again');
});

test('pacing rate = pacing_gain × max_bw × 0.99; cwnd converges to cwnd_gain × BDP + extra_acked + 3 segments', () => {
  const { bbr, round } = harness(0.5);
  for (let i = 0; i < 4; i++) round({ rate: 100, rtt: 10, inFlight: 3000 });
  round({ rate: 100, rtt: 10, inFlight: 1000 });
  assert.equal(bbr.state, 'ProbeBW');
  assert.ok(Math.abs(bbr.pacingRate() - bbr.pacingGain * 100 * 0.99) < 1e-9);
  for (let i = 0; i < 50; i++) round({ rate: 100, rtt: 10, inFlight: 1000, dt: 11 });
  assert.ok(bbr.extraAcked > 0 && bbr.extraAcked <= bbr.cwnd);
  assert.equal(bbr.cwnd, 2 * 100 * 10 + bbr.extraAcked + 3 * MSS);
});

test('ACK aggregation: extra_acked is how far ACKs ran ahead of max_bw in the current epoch', () => {
  const { bbr, round } = harness(0.5);
  for (let i = 0; i < 4; i++) round({ rate: 100, rtt: 10, inFlight: 3000 });
  round({ rate: 100, rtt: 10, inFlight: 1000 });
  // ACKs for 1000 bytes every 11 ms at 100 bytes/ms: each opens a new epoch, extra = 1000.
  for (let i = 0; i < 12; i++) round({ rate: 100, rtt: 10, inFlight: 1000, dt: 11 });
  assert.equal(bbr.extraAcked, 1000);
  // Then three ACKs at once (no time passes): 3000 bytes where max_bw explains none.
  round({ rate: 100, rtt: 10, inFlight: 1000, dt: 11 });
  round({ rate: 100, rtt: 10, inFlight: 1000, dt: 0 });
  round({ rate: 100, rtt: 10, inFlight: 1000, dt: 0 });
  assert.equal(bbr.extraAcked, 3000);
});

test('min_rtt: the smallest sample for 10 s; then ProbeRTT at max(4 segments, BDP / 2) for 200 ms and a round', () => {
  const { bbr, round, at } = harness(0.5);
  for (let i = 0; i < 4; i++) round({ rate: 100, rtt: 10, inFlight: 3000 });
  round({ rate: 100, rtt: 10, inFlight: 1000 });
  round({ rate: 100, rtt: 8, inFlight: 1000 });
  assert.equal(bbr.minRtt, 8);
  const stamp = at();
  while (at() <= stamp + 10_000) {
    round({ rate: 100, rtt: 12, inFlight: 1000, dt: 100 });
    if (at() <= stamp + 10_000) assert.equal(bbr.state, 'ProbeBW', `at ${at()}: the filter has not expired`);
  }
  assert.equal(bbr.state, 'ProbeRTT');
  assert.equal(bbr.minRtt, 12, 'the expired minimum is replaced by the current sample');
  const probeCwnd = Math.max(4 * MSS, 0.5 * 100 * 12);
  assert.ok(bbr.cwnd <= probeCwnd, `cwnd ${bbr.cwnd} ≤ ${probeCwnd}`);
  const entered = at();
  round({ rate: 100, rtt: 10, inFlight: probeCwnd, dt: 10 }); // inflight is down: the 200 ms start
  while (at() < entered + 10 + 200) {
    assert.equal(bbr.state, 'ProbeRTT');
    round({ rate: 100, rtt: 10, inFlight: probeCwnd, dt: 50 });
  }
  round({ rate: 100, rtt: 10, inFlight: probeCwnd, dt: 10 });
  assert.equal(bbr.state, 'ProbeBW', 'back to ProbeBW: the pipe was full before');
  assert.ok(bbr.cwnd >= 2 * 100 * 8, 'the window from before ProbeRTT is restored');
});

test('loss: packet conservation for a round, the model is kept, the window restored at recovery exit', () => {
  const { bbr, s, round } = harness(0.5);
  for (let i = 0; i < 4; i++) round({ rate: 100, rtt: 10, inFlight: 3000 });
  round({ rate: 100, rtt: 10, inFlight: 1000 });
  for (let i = 0; i < 20; i++) round({ rate: 100, rtt: 10, inFlight: 1000, dt: 11 });
  const before = bbr.cwnd;
  const bw = bbr.maxBw;
  bbr.onLoss(0, 6000, 5000, s.delivered);
  assert.equal(bbr.cwnd, 5000, 'cwnd = what is still in the network (RFC 6675 pipe)');
  assert.equal(bbr.maxBw, bw, 'a loss does not cut the bandwidth estimate');
  bbr.onRecoveryExit();
  assert.equal(bbr.cwnd, before, 'restored');
  bbr.onLoss(0, 100, 100, s.delivered);
  assert.equal(bbr.cwnd, 4 * MSS, 'never below four segments');
});

test('retransmission timeout: one segment, back to the old window once the timed-out flight is delivered', () => {
  const { bbr, s, round } = harness(0.5);
  for (let i = 0; i < 4; i++) round({ rate: 100, rtt: 10, inFlight: 3000 });
  round({ rate: 100, rtt: 10, inFlight: 1000 });
  for (let i = 0; i < 20; i++) round({ rate: 100, rtt: 10, inFlight: 1000, dt: 11 });
  const before = bbr.cwnd;
  bbr.onTimeout(0, 3000, s.delivered);
  assert.equal(bbr.cwnd, MSS);
  round({ rate: 100, rtt: 10, inFlight: 0, dt: 11 });
  assert.ok(bbr.cwnd < before, 'not before the timed-out 3000 bytes are delivered');
  for (let i = 0; i < 3; i++) round({ rate: 100, rtt: 10, inFlight: 0, dt: 11 });
  assert.ok(bbr.cwnd >= before, `restored: ${bbr.cwnd} >= ${before}`);
});

test('inflight_hi (draft-ietf-ccwg-bbr BBRHandleInflightTooHigh): set in ProbeBW when > 2 % and ≥ 6 segments of a flight were lost', () => {
  const { bbr, round } = harness(0.5);
  for (let i = 0; i < 4; i++) round({ rate: 1000, rtt: 10, inFlight: 30_000 });
  round({ rate: 1000, rtt: 10, inFlight: 10_000 });
  assert.equal(bbr.state, 'ProbeBW');
  assert.equal(bbr.inflightHi, Infinity);
  // 5 segments lost of 100 in flight: 5 % but fewer than six segments, random-looking: no bound.
  round({ rate: 1000, rtt: 10, inFlight: 10_000, dt: 11, txInFlight: 100 * MSS, lost: 5 * MSS });
  assert.equal(bbr.inflightHi, Infinity);
  // 8 of 100: the queue overflowed at 100 segments in flight.
  round({ rate: 1000, rtt: 10, inFlight: 10_000, dt: 11, txInFlight: 100 * MSS, lost: 8 * MSS });
  assert.equal(bbr.inflightHi, Math.max(100 * MSS, 0.7 * Math.min(1000 * 10, bbr.cwnd)));
  assert.ok(bbr.cwnd <= bbr.inflightHi);
  // 8 of 1000 is under 2 %: random loss on a big flight does not lower it further.
  const hi = bbr.inflightHi;
  round({ rate: 1000, rtt: 10, inFlight: 10_000, dt: 0, txInFlight: 1000 * MSS, lost: 8 * MSS });
  assert.ok(bbr.inflightHi >= hi);
});

test('the window holds what RACK waits for on a reordering path: target + max_bw × reo_wnd (none until reordering is seen)', () => {
  const { bbr, s, round } = harness();
  // A sub-ms path: 0.5 ms, 50 bytes/ms. Without reordering the target is 2 BDPs (+ extra_acked, + 3 segments).
  const base = (): number => 2 * 50 * 0.5 + (bbr.fullBwReached ? bbr.extraAcked : 0) + 3 * MSS;
  for (let i = 0; i < 12; i++) round({ rate: 50, rtt: 0.5 });
  assert.equal(bbr.state, 'ProbeBW');
  assert.equal(bbr.reorderAllowance(), 0);
  assert.equal(bbr.targetCwnd(), base());
  // RACK waits 5 ms for late segments (rate.ts reoWnd): at 50 bytes/ms that is 250 bytes more in flight.
  s.reoWnd = 5;
  round({ rate: 50, rtt: 0.5 });
  assert.equal(bbr.reorderAllowance(), 50 * 5);
  assert.equal(bbr.targetCwnd(), base() + 50 * 5);
});
