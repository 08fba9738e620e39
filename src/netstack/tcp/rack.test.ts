/**
 * RACK's loss marking (RFC 8985 §6.2 step 5) in the send records (rate.ts) against a naive
 * reference that reads the RFC's pseudocode literally: every segment not yet delivered,
 * sent before the RACK segment, is lost once RACK.rtt + reo_wnd has passed since it was
 * sent; the reordering timer is due at the earliest such time still ahead. The records
 * walk only the holes between SACKed ranges and stop early; this checks they find the same
 * segments and the same deadline, over random sends, resends, SACKs and cumulative ACKs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateSampler } from './rate.js';
import { Rack, reoWnd } from './rack.js';
import type { Conn } from './conn.js';
import { SeededRng } from '../../util/rng.js';
import { TcpLayer } from './layer.js';
import type { TcpConnection } from '../types.js';
import { parseIp, ipEqual, type IpAddr } from '../../util/ip.js';
import { ACK, FIN, SYN, TCP_HEADER_LEN, fillTcpChecksum, tcpFlags, tcpSeq, writeTcpHeader } from '../../wire/tcp.js';

const MSS = 1000;

interface Seg {
  start: number;
  end: number;
  xmit: number;
  sacked: boolean;
  lost: boolean;
}

/** RACK_sent_after (RFC 8985 §6.2), restated. */
function sentAfter(t1: number, e1: number, t2: number, e2: number): boolean {
  return t1 > t2 || (t1 === t2 && e1 > e2);
}

/** The RFC's RACK_detect_loss over all segments, marking `lost`; returns the earliest pending deadline. */
function naiveDetect(segs: Seg[], now: number, rXmit: number, rEnd: number, lostAfter: number): number {
  let earliest = Infinity;
  for (const s of segs) {
    if (s.sacked || s.lost) continue;
    if (!sentAfter(rXmit, rEnd, s.xmit, s.end)) continue;
    const at = s.xmit + lostAfter;
    if (at <= now) s.lost = true;
    else earliest = Math.min(earliest, at);
  }
  return earliest;
}

/** The scoreboard's ranges for the model: SACKed segments merged, flattened [l0, r0, ...]. */
function ranges(segs: Seg[]): number[] {
  const out: number[] = [];
  for (const s of segs) {
    if (!s.sacked) continue;
    if (out.length > 0 && out[out.length - 1] === s.start) out[out.length - 1] = s.end;
    else out.push(s.start, s.end);
  }
  return out;
}

function lostStarts(r: RateSampler, from: number, nxt: number): number[] {
  const out: number[] = [];
  for (let s = r.nextLost(from, nxt); s >= 0; s = r.nextLost(s + 1, nxt)) out.push(s);
  return out;
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`the walk over the holes marks what the RFC's loop marks (seed ${seed})`, () => {
    const rng = new SeededRng(seed);
    const rand = (n: number): number => Math.floor(rng.nextFloat() * n);
    const r = new RateSampler(false);
    let segs: Seg[] = [];
    let now = 0;
    let una = 0;
    let sndMax = 0;
    // The newest delivered segment (the RACK segment), as rack.ts keeps it.
    let rXmit = -Infinity;
    let rEnd = 0;
    const deliver = (s: Seg): void => {
      if (sentAfter(s.xmit, s.end, rXmit, rEnd)) {
        rXmit = s.xmit;
        rEnd = s.end;
      }
    };
    for (let step = 0; step < 3000; step++) {
      now += rand(4) * 0.5;
      const op = rand(10);
      if (op <= 2 || segs.length === 0) {
        // New data: a few segments at SND.MAX, all at this instant.
        for (let n = 1 + rand(4); n > 0; n--) {
          r.onSend(now, sndMax, MSS, sndMax - una, sndMax);
          segs.push({ start: sndMax, end: sndMax + MSS, xmit: now, sacked: false, lost: false });
          sndMax += MSS;
        }
      } else if (op === 3) {
        // A resend of a segment still outstanding (lost-marked or not): new send time.
        const s = segs[rand(segs.length)]!;
        if (!s.sacked) {
          r.onSend(now, s.start, MSS, sndMax - una, sndMax);
          s.xmit = now;
          s.lost = false;
        }
      } else if (op <= 6) {
        // A SACK for one segment.
        const s = segs[rand(segs.length)]!;
        if (!s.sacked) {
          r.beginAck();
          r.sackBlocks(now, [s.start, s.end], 0, ranges(segs), una, sndMax);
          s.sacked = true;
          s.lost = false;
          deliver(s);
        }
      } else if (op === 7) {
        // A cumulative ACK over the first few segments.
        const n = 1 + rand(Math.min(3, segs.length));
        r.beginAck();
        una = segs[n - 1]!.end;
        r.acked(now, una);
        for (const s of segs.slice(0, n)) if (!s.sacked) deliver(s);
        segs = segs.slice(n);
      } else {
        const lostAfter = rand(12) * 0.5;
        const want = naiveDetect(segs, now, rXmit, rEnd, lostAfter);
        const got = r.detectLoss(now, rXmit, rEnd, lostAfter, sndMax, ranges(segs));
        assert.equal(got, want, `step ${step}: the earliest deadline`);
        assert.deepEqual(lostStarts(r, una, sndMax), segs.filter((s) => s.lost).map((s) => s.start), `step ${step}: the lost segments`);
        assert.equal(r.lostBytes, segs.filter((s) => s.lost).length * MSS, `step ${step}: lost bytes`);
      }
    }
  });
}

test('RACK.reo_wnd (RFC 8985 §6.2 step 4): min_RTT / 4 per step, bounded by SRTT; past it only on a sub-ms path', () => {
  const conn = (minRtt: number, srtt: number, mult: number, ccSamples = false): Conn =>
    ({ inRecovery: false, rtoRecovery: false, ccSamples, rate: { sackedSegs: 0 }, rtt: { sampled: true, minRtt, srtt }, rack: Object.assign(new Rack(), { reoWndMult: mult, reorderingSeen: true }) }) as unknown as Conn;
  // A 20 ms path: 5 ms per step, at most SRTT, however many D-SACK rounds widened it.
  assert.equal(reoWnd(conn(20, 22, 1)), 5);
  assert.equal(reoWnd(conn(20, 22, 3)), 15);
  assert.equal(reoWnd(conn(20, 22, 40)), 22);
  // A 0.4 ms path (1 ms timestamps: taken as 1 ms, so 0.25 ms per step): SRTT (0.8, taken as
  // 1 ms) bounds the base window; once D-SACKs have widened it, a quarter of the 200 ms RTO floor.
  assert.equal(reoWnd(conn(0.4, 0.8, 1)), 0.25);
  assert.equal(reoWnd(conn(0.4, 0.8, 20)), 5);
  assert.equal(reoWnd(conn(0.4, 0.8, 1000)), 200 / 4);
  // BBR too: its window makes room for what the reordering window holds (bbr.ts targetCwnd).
  assert.equal(reoWnd(conn(0.4, 0.8, 20, true)), 5);
  // A 20 ms path keeps the SRTT bound for BBR as well.
  assert.equal(reoWnd(conn(20, 22, 40, true)), 22);
});

/*
 * The tail loss probe once the FIN is sent (RFC 8985 §7: the probe is the last segment sent,
 * whatever it carries). A short connection (one response, then close) has nothing after its
 * last data and FIN whose SACK could show them lost, so without a probe each such loss waits
 * for the RTO. Played at packet level against one TcpLayer: the peer SACKs, uses no
 * timestamps, and one exchange at a 20 ms RTT sets SRTT 20 ms, RTTVAR 10 ms, RTO at its
 * 200 ms floor. PTO (§7.2) is then 2 × SRTT plus the delayed-ACK allowance (40 ms, the
 * stack's own delayed-ACK time) with one segment in flight: 80 ms, well before the RTO.
 */
const ME = parseIp('10.0.0.1')!;
const PEER = parseIp('10.0.0.2')!;
const PEER_ISN = 100;
const FIN_RTT = 20;
const FIN_RTO = 200;

interface Sent {
  seq: number;
  len: number;
  flags: number;
  at: number;
}

function finRig(): { t: TcpLayer; c: TcpConnection; log: Sent[]; ack(now: number, a: number, sack?: [number, number]): void; tick(now: number): void; una: number } {
  const t = new TcpLayer({ rng: new SeededRng(5), mtu: 1440, congestionControl: 'cubic', isLocal: (a: IpAddr) => ipEqual(a, ME), sourceFor: () => ME });
  const l = t.listen({ port: 80 });
  const log: Sent[] = [];
  const drain = (now: number): void => {
    for (let o = t.pollTransmit(now); o; o = t.pollTransmit(now)) {
      const s = o.segment;
      log.push({ seq: tcpSeq(s), len: s.length - (s[12]! >> 4) * 4, flags: tcpFlags(s), at: now });
    }
  };
  const seg = (now: number, flags: number, ack: number, options: number[]): void => {
    const hl = TCP_HEADER_LEN + options.length;
    const s = new Uint8Array(hl);
    writeTcpHeader(s, 0, 4000, 80, flags & SYN ? PEER_ISN : PEER_ISN + 1, ack, flags, 65535, hl);
    s.set(options, TCP_HEADER_LEN);
    fillTcpChecksum(s, PEER, ME);
    t.handleSegment(now, PEER, ME, s);
    drain(now);
  };
  // MSS 1400 and SACK-permitted, no timestamps.
  seg(0, SYN, 0, [2, 4, 0x05, 0x78, 1, 1, 4, 2]);
  const iss = log.find((s) => s.flags & SYN)!.seq;
  const ack = (now: number, a: number, sack?: [number, number]): void => {
    const o = sack ? [1, 1, 5, 10, ...[sack[0], sack[1]].flatMap((v) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff])] : [];
    seg(now, ACK, a >>> 0, o);
  };
  ack(10, iss + 1);
  for (let e = t.pollEvent(); e; e = t.pollEvent());
  const c = l.accept()!;
  c.send(20, new Uint8Array(100));
  drain(20);
  ack(20 + FIN_RTT, iss + 101);
  log.length = 0;
  const tick = (now: number): void => {
    const d = t.pollTimeout();
    if (d && d.at <= now) t.handleTimeout(now);
    drain(now);
  };
  return { t, c, log, ack, tick, una: (iss + 101) >>> 0 };
}

test('RFC 8985 §7 in FIN-WAIT-1: a lost FIN after acknowledged data is probed (the FIN alone) before the RTO', () => {
  const r = finRig();
  r.c.send(50, new Uint8Array(200));
  r.c.shutdown(50);
  r.tick(50);
  const out = r.log.filter((s) => s.at === 50);
  assert.deepEqual(out.map((s) => [s.seq, s.len, s.flags & FIN]), [[r.una, 200, 0], [(r.una + 200) >>> 0, 0, FIN]], 'the response, then the FIN');
  // The data arrives and is acknowledged; the FIN is lost.
  r.ack(50 + FIN_RTT, r.una + 200);
  let probe: Sent | undefined;
  for (let now = 51 + FIN_RTT; now < 50 + FIN_RTO && !probe; now++) {
    r.tick(now);
    probe = r.log.find((s) => s.at === now && (s.flags & FIN) !== 0);
  }
  assert.ok(probe, 'the FIN went again before the RTO');
  assert.deepEqual([probe.seq, probe.len], [(r.una + 200) >>> 0, 0], 'the FIN alone, at its own sequence number');
  assert.equal(r.t.stats.tailLossProbes, 1);
  assert.equal(r.t.stats.rtoExpired, 0);
  r.ack(probe.at + FIN_RTT, r.una + 201);
  assert.equal(r.c.state, 'FIN-WAIT-2', 'the probe repaired the loss');
});

test('RFC 8985 §7 in FIN-WAIT-1: lost last data whose FIN arrived is probed, with the FIN, before the RTO', () => {
  const r = finRig();
  r.c.send(50, new Uint8Array(200));
  r.c.shutdown(50);
  r.tick(50);
  const end = (r.una + 200) >>> 0;
  // The data is lost; the FIN arrives out of order and is SACKed (a FIN has no send record:
  // RACK cannot time the data against it).
  r.ack(50 + FIN_RTT, r.una, [end, (end + 1) >>> 0]);
  let probe: Sent | undefined;
  for (let now = 51 + FIN_RTT; now < 50 + FIN_RTO && !probe; now++) {
    r.tick(now);
    probe = r.log.find((s) => s.at === now && s.len > 0);
  }
  assert.ok(probe, 'the data went again before the RTO');
  assert.deepEqual([probe.seq, probe.len, probe.flags & FIN], [r.una, 200, FIN], 'the last data segment, carrying the FIN');
  assert.equal(r.t.stats.rtoExpired, 0);
  r.ack(probe.at + FIN_RTT, end + 1);
  assert.equal(r.c.state, 'FIN-WAIT-2', 'the probe repaired the loss');
});
