/**
 * Delivery-rate samples against draft-cheng-iccrg-delivery-rate-estimation: the rate is
 * delivered / max(send interval, ACK interval) of the newest packet delivered (§3.3), a
 * packet counts once whether SACKed or cumulatively ACKed, application-limited periods
 * are flagged until their data is delivered (§3.4), and too short an interval gives no sample.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateSampler } from './rate.js';

const MSS = 1000;

/** Sends `n` segments from `seq`, one every `gap` ms from `t`; returns the next sequence. */
function send(s: RateSampler, t: number, seq: number, n: number, gap: number, inFlightBefore: number): number {
  for (let i = 0; i < n; i++) {
    s.onSend(t + i * gap, seq, MSS, inFlightBefore + i * MSS, seq);
    seq += MSS;
  }
  return seq;
}

test('steady flight: rate = bytes delivered / the longer of send and ACK intervals', () => {
  const s = new RateSampler();
  // 10 segments sent 1 ms apart from t = 0, first ACK at t = 20 (RTT 20 ms).
  send(s, 0, 0, 10, 1, 0);
  s.beginAck();
  s.acked(20, MSS);
  assert.equal(s.endAck(), true);
  assert.equal(s.rs.rtt, 20);
  // The first packet's sample spans only itself: delivered 1000 over max(0, 20 - 0) ms.
  assert.equal(s.rs.delivered, MSS);
  assert.equal(s.rs.deliveryRate, MSS / 20);
  // Ten packets later (next flight), ACKed 1 ms apart: delivered since each was sent is a full window.
  send(s, 20, 10 * MSS, 10, 1, 9 * MSS);
  for (let i = 1; i < 10; i++) {
    s.beginAck();
    s.acked(20 + i, (i + 1) * MSS);
    s.endAck();
  }
  s.beginAck();
  s.acked(40, 11 * MSS); // the packet sent at t = 20 with 1000 delivered before it
  assert.equal(s.endAck(), true);
  assert.equal(s.rs.priorDelivered, MSS);
  assert.equal(s.rs.delivered, 10 * MSS);
  assert.equal(s.rs.interval, 20, 'ACK interval 40 - 20; send interval 20 - 9 = 11');
  assert.equal(s.rs.deliveryRate, (10 * MSS) / 20);
});

test('a SACKed packet is delivered once; the cumulative ACK over it adds nothing', () => {
  const s = new RateSampler();
  send(s, 0, 0, 4, 0, 0);
  s.beginAck();
  s.sackBlocks(20, [2 * MSS, 3 * MSS], 0, [], 0, 4 * MSS);
  s.endAck();
  assert.equal(s.delivered, MSS);
  s.beginAck();
  // The same block again, now also held by the scoreboard: nothing new.
  s.sackBlocks(21, [2 * MSS, 3 * MSS], 0, [2 * MSS, 3 * MSS], 0, 4 * MSS);
  s.endAck();
  assert.equal(s.rs.newlyDelivered, 0);
  s.beginAck();
  s.acked(22, 4 * MSS);
  s.endAck();
  assert.equal(s.delivered, 4 * MSS, 'four segments, each counted once');
  assert.equal(s.slots, 0);
});

test('application-limited: samples of packets sent in the period are flagged until it is delivered (§3.4)', () => {
  const s = new RateSampler();
  send(s, 0, 0, 2, 0, 0);
  s.markAppLimited(2 * MSS);
  send(s, 1, 2 * MSS, 1, 0, 2 * MSS);
  s.beginAck();
  s.acked(20, 3 * MSS);
  s.endAck();
  assert.equal(s.rs.isAppLimited, true, 'the newest packet was sent app-limited');
  assert.equal(s.appLimited, 0, 'the period ends once its bytes are delivered');
  send(s, 21, 3 * MSS, 1, 0, 0);
  s.beginAck();
  s.acked(41, 4 * MSS);
  s.endAck();
  assert.equal(s.rs.isAppLimited, false);
});

test('an interval shorter than the minimum RTT gives no sample (ACK compression)', () => {
  const s = new RateSampler();
  send(s, 0, 0, 1, 0, 0);
  s.beginAck();
  s.acked(20, MSS);
  assert.equal(s.endAck(), true);
  assert.equal(s.minRtt, 20);
  // Sent at 20 with delivered_time 20, resent at 21 (so no RTT sample lowers the minimum),
  // ACKed at 25: a 5 ms interval < min RTT 20, which no real path delivers in.
  send(s, 20, MSS, 1, 0, 0);
  s.onSend(21, MSS, MSS, MSS, 2 * MSS);
  s.beginAck();
  s.acked(25, 2 * MSS);
  assert.equal(s.endAck(), false);
  assert.equal(s.rs.deliveryRate, 0);
});

test('a retransmitted packet gives no RTT (Karn) but still delivers', () => {
  const s = new RateSampler();
  send(s, 0, 0, 3, 0, 0);
  s.onSend(30, 0, MSS, 3 * MSS, 3 * MSS); // resend of the first segment
  s.beginAck();
  s.acked(35, MSS);
  s.endAck();
  assert.equal(s.rs.rtt, -1);
  assert.equal(s.delivered, MSS);
  assert.equal(s.slots, 2);
});

test('sub-8 ms paths: a sample is capped by the rate averaged over 8 ms (a batch of ACKs shares one timestamp)', () => {
  const s = new RateSampler();
  // A steady 1000 bytes/ms: one segment sent every 1 ms, ACKed 0.5 ms later.
  let seq = 0;
  let t = 0;
  for (; t < 20; t++) {
    s.onSend(t, seq, MSS, 0, seq);
    seq += MSS;
    s.beginAck();
    s.acked(t + 0.5, seq);
    s.endAck();
  }
  assert.equal(s.minRtt, 0.5);
  // A burst of 20 segments leaves at one instant (t = 20, nothing in flight, so both
  // intervals restart there) and its ACKs are read in one batch at 20.5. The draft's sample:
  // 20 000 bytes over 0.5 ms, forty times the rate the sender keeps up.
  for (let i = 0; i < 20; i++) s.onSend(t, seq + i * MSS, MSS, i * MSS, seq + i * MSS);
  seq += 20 * MSS;
  s.beginAck();
  s.acked(t + 0.5, seq);
  assert.equal(s.endAck(), true);
  assert.equal(s.rs.interval, 0.5);
  assert.equal(s.rs.delivered, 20 * MSS);
  // Averaged over the last 8 ms or more: (8 + 20) segments in 8..9 ms.
  assert.ok(s.rs.deliveryRate <= (28 * MSS) / 8, `capped: ${s.rs.deliveryRate}`);
  assert.ok(s.rs.deliveryRate >= (27 * MSS) / 10);
});

test('a D-SACKed retransmission is no loss: rs.lost of what was in flight with it leaves it out', () => {
  const s = new RateSampler();
  send(s, 0, 0, 10, 1, 0);
  // t = 20: segments 1-3 SACKed; the first, sent 20 ms ago, is judged lost (RFC 8985 §6.2 step 5).
  s.beginAck();
  s.sackBlocks(20, [MSS, 4 * MSS], 0, [], 0, 10 * MSS);
  s.endAck();
  s.detectLoss(20, 3, 4 * MSS, 1, 10 * MSS, [MSS, 4 * MSS]);
  assert.equal(s.lost, MSS, 'C.lost counts the mark');
  s.onSend(21, 0, MSS, 9 * MSS, 10 * MSS); // the retransmission
  // The original was only late: it arrives, and then the retransmission, which the receiver D-SACKs.
  s.beginAck();
  s.acked(24, 4 * MSS);
  s.endAck();
  s.dsacked(MSS);
  assert.equal(s.lost, 0);
  // Segment 5 was in flight from before the mark to after the D-SACK: no loss in its sample.
  s.beginAck();
  s.acked(30, 6 * MSS);
  assert.equal(s.endAck(), true);
  assert.equal(s.rs.lost, 0);
});
