/**
 * Congestion control against the RFC formulas, constants restated here (DESIGN §6):
 * CUBIC per RFC 9438 (W_cubic(t) = C(t - K)^3 + W_max, K = cbrt(W_max(1 - β)/C),
 * β = 0.7, C = 0.4, fast convergence §4.7) and NewReno per RFC 5681 / RFC 3465 / RFC 6928.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cubic, NewReno, Prr } from './congestion.js';

const MSS = 1000;
const C = 0.4;
const BETA = 0.7;
const RTT = 100; // ms

function wCubic(tSec: number, wMax: number): number {
  const k = Math.cbrt((wMax * (1 - BETA)) / C);
  return C * (tSec - k) ** 3 + wMax;
}

function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected)), `${what}: ${actual} != ${expected}`);
}

/**
 * Acknowledges one full window per RTT from `epoch` (ms) for `rtts` rounds. After each
 * round cwnd must be the larger of W_cubic(t + RTT) (§4.2: a window of ACKs brings cwnd to
 * the target) and the Reno-friendly W_est (§4.3: + α_cubic = 3(1 - β)/(1 + β) segments per
 * window acknowledged, from the reduced window), when the step is within the 1.5× cap (§4.4).
 */
function followCurve(cc: Cubic, epoch: number, rtts: number, wMax: number): void {
  const alpha = (3 * (1 - BETA)) / (1 + BETA);
  let wEst = cc.cwnd / MSS;
  for (let i = 0; i < rtts; i++) {
    const now = epoch + i * RTT;
    const before = cc.cwnd / MSS;
    cc.onAck(now, cc.cwnd, RTT);
    wEst += alpha;
    const target = Math.max(wCubic((now - epoch + RTT) / 1000, wMax), wEst);
    if (target > before && target < 1.5 * before) near(cc.cwnd / MSS, target, `t = ${now - epoch} ms`);
  }
}

test('CUBIC: multiplicative decrease by β = 0.7 and the window curve W_cubic(t + RTT) after it', () => {
  const cc = new Cubic(MSS);
  cc.cwnd = 100 * MSS;
  cc.onLoss(0, 100 * MSS);
  // RFC 9438 §4.6: ssthresh = cwnd × β; cwnd = ssthresh.
  assert.equal(cc.ssthresh, 70 * MSS);
  assert.equal(cc.cwnd, 70 * MSS);
  followCurve(cc, 1000, 80, 100);
  // Past K (cbrt(100 × 0.3 / 0.4) ≈ 4.2 s) the window has passed W_max and keeps growing (convex region).
  assert.ok(cc.cwnd / MSS > 100, `${cc.cwnd / MSS} segments after 8 s`);
});

test('CUBIC: fast convergence (§4.7) lowers W_max to cwnd × (1 + β) / 2 when a loss comes below W_max', () => {
  const cc = new Cubic(MSS);
  cc.cwnd = 100 * MSS;
  cc.onLoss(0, 100 * MSS); // W_max = 100
  cc.cwnd = 80 * MSS;
  cc.onLoss(500, 80 * MSS); // below W_max: W_max = 80 × 1.7 / 2 = 68
  assert.equal(cc.ssthresh, 56 * MSS);
  followCurve(cc, 1000, 30, 68);
});

test('CUBIC: a timeout leaves one segment; undo restores the window before the loss', () => {
  const cc = new Cubic(MSS);
  cc.cwnd = 50 * MSS;
  const saved = cc.save();
  cc.onTimeout(0, 50 * MSS);
  assert.equal(cc.cwnd, MSS);
  assert.equal(cc.ssthresh, 35 * MSS);
  cc.undo(saved);
  assert.equal(cc.cwnd, 50 * MSS);
});

test('NewReno: initial window (RFC 6928), slow start with ABC L = 2 (RFC 3465), one MSS per window after', () => {
  const cc = new NewReno(MSS);
  assert.equal(cc.cwnd, 10 * MSS); // min(10 × MSS, max(2 × MSS, 14600))
  assert.equal(new NewReno(1460).cwnd, 14600);
  cc.onAck(0, 5 * MSS);
  assert.equal(cc.cwnd, 12 * MSS, 'at most 2 × SMSS per ACK in slow start');
  cc.ssthresh = 12 * MSS;
  for (let i = 0; i < 12; i++) cc.onAck(0, MSS);
  assert.equal(cc.cwnd, 13 * MSS, 'one SMSS per cwnd of data acknowledged (RFC 5681 §3.1)');
});

test('NewReno: loss halves to FlightSize / 2, at least 2 × SMSS (RFC 5681 eq. 4); a timeout leaves one segment', () => {
  const cc = new NewReno(MSS);
  cc.cwnd = 40 * MSS;
  cc.onLoss(0, 30 * MSS);
  assert.equal(cc.ssthresh, 15 * MSS);
  assert.equal(cc.cwnd, 15 * MSS);
  cc.onLoss(0, 3 * MSS);
  assert.equal(cc.ssthresh, 2 * MSS);
  cc.cwnd = 20 * MSS;
  cc.onTimeout(0, 20 * MSS);
  assert.equal(cc.ssthresh, 10 * MSS);
  assert.equal(cc.cwnd, MSS);
});

test('PRR (RFC 6937 §3): sndcnt per ACK by the proportional rule above ssthresh and PRR-SSRB below it', () => {
  const p = new Prr();
  // RecoverFS 22 segments, ssthresh 10 (RFC 6937 §3.1's flight after two limited transmits).
  p.start(22 * MSS);
  // Proportional: CEIL(prr_delivered × 10 / 22) - prr_out, one segment delivered per ACK.
  assert.equal(p.onAck(MSS, 18 * MSS, 10 * MSS, MSS), MSS, 'CEIL(10/22) = 1: the fast retransmit');
  p.out += MSS;
  assert.equal(p.onAck(MSS, 18 * MSS, 10 * MSS, MSS), 0, 'CEIL(20/22) - 1 = 0');
  assert.equal(p.onAck(MSS, 17 * MSS, 10 * MSS, MSS), MSS, 'CEIL(30/22) - 1 = 1');
  // Unsent, it stays granted; an ACK that delivers nothing grants no more.
  assert.equal(p.onAck(0, 17 * MSS, 10 * MSS, MSS), MSS);
  assert.equal(p.unsent(), MSS);
  p.out += MSS;
  assert.equal(p.unsent(), 0);
  // SSRB: MIN(ssthresh - pipe, MAX(prr_delivered - prr_out, DeliveredData) + MSS).
  p.start(22 * MSS);
  assert.equal(p.onAck(MSS, 4 * MSS, 10 * MSS, MSS), 2 * MSS, 'MAX(1 - 0, 1) + 1 = 2 (RFC 6937 §3.1 burst, "bd")');
  p.out += 2 * MSS;
  assert.equal(p.onAck(MSS, 5 * MSS, 10 * MSS, MSS), 2 * MSS, 'MAX(2 - 2, 1) + 1 = 2 ("d")');
  p.out += 2 * MSS;
  assert.equal(p.onAck(3 * MSS, 9 * MSS, 10 * MSS, MSS), MSS, 'ssthresh - pipe = 1 ("s")');
  // Nothing sent yet in a recovery: at least the fast retransmit, even for no delivery.
  p.start(22 * MSS);
  assert.equal(p.onAck(0, 18 * MSS, 10 * MSS, MSS), MSS);
});
