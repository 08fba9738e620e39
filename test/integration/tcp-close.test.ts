/**
 * Closing sequences of RFC 9293 §3.6 and Figure 5/6 at packet level: our close,
 * their close (half-close), simultaneous close through CLOSING, TIME-WAIT and its
 * end, zero window and persist probes (§3.8.6.1), abort.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { TcpLayer } from '../../src/netstack/tcp/index.js';
import { SeededRng } from '../../src/util/rng.js';
import { parseIp, ipEqual } from '../../src/util/ip.js';
import type { IpAddr } from '../../src/util/ip.js';
import type { TcpConnection, TcpEvent } from '../../src/netstack/types.js';
import { buildTcp, expectTcp, tcpFields, TCP_FLAG, type TcpBuild } from '../harness/packets.js';

const US = parseIp('10.0.0.1')!;
const PEER = parseIp('10.0.0.2')!;
const PORT = 80;
const SPORT = 40000;
/** RFC 9293 §3.4.2 2×MSL is 4 minutes; the layer shortens it, but no longer than this. */
const TIME_WAIT_BOUND_MS = 240_000;

function drain(t: TcpLayer, now: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = t.pollTransmit(now); o; o = t.pollTransmit(now)) out.push(o.segment);
  return out;
}
function events(t: TcpLayer): TcpEvent[] {
  const ev: TcpEvent[] = [];
  for (let e = t.pollEvent(); e; e = t.pollEvent()) ev.push(e);
  return ev;
}

class Peer {
  readonly t = new TcpLayer({ rng: new SeededRng(9), mtu: 1420, isLocal: (a: IpAddr) => ipEqual(a, US), sourceFor: () => US });
  conn!: TcpConnection;
  readonly listener;
  iss = 0; // our side's ISS
  snd = 5001; // the peer's next sequence number
  closed: TcpEvent[] = [];
  constructor(synOptions: number[] = [2, 4, 0x05, 0x78]) {
    const l = (this.listener = this.t.listen({ port: PORT }));
    const [sa] = this.send(0, { seq: 5000, flags: ['SYN'], options: synOptions });
    this.iss = tcpFields(sa!).seq;
    this.send(1, { seq: this.snd, ack: this.iss + 1, flags: ['ACK'] });
    events(this.t);
    this.conn = l.accept()!;
    assert.equal(this.conn.state, 'ESTABLISHED');
  }
  send(now: number, b: Omit<TcpBuild, 'dstPort' | 'srcPort'>): Uint8Array[] {
    this.t.handleSegment(now, PEER, US, buildTcp(PEER, US, { srcPort: SPORT, dstPort: PORT, ...b }));
    const out = drain(this.t, now);
    this.closed.push(...events(this.t).filter((e) => e.type === 'tcp-closed'));
    return out;
  }
  /** Runs timers up to `until`, collecting output. */
  runTimers(from: number, until: number, step = 10): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let now = from; now <= until; now += step) {
      const d = this.t.pollTimeout();
      if (d && d.at <= now) this.t.handleTimeout(now);
      out.push(...drain(this.t, now));
      this.closed.push(...events(this.t).filter((e) => e.type === 'tcp-closed'));
    }
    return out;
  }
}

const isFin = (s: Uint8Array): boolean => (tcpFields(s).flags & TCP_FLAG.FIN) !== 0;

describe('closing (RFC 9293 §3.6)', () => {
  test('we close first: FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → gone, closed once without error', () => {
    const p = new Peer();
    p.conn.shutdown(10);
    const fin = drain(p.t, 10).find(isFin);
    expectTcp(fin, { flags: ['FIN', 'ACK'], seq: p.iss + 1, ack: p.snd });
    assert.equal(p.conn.state, 'FIN-WAIT-1');
    p.send(20, { seq: p.snd, ack: p.iss + 2, flags: ['ACK'] });
    assert.equal(p.conn.state, 'FIN-WAIT-2');
    const [a] = p.send(30, { seq: p.snd, ack: p.iss + 2, flags: ['FIN', 'ACK'] });
    expectTcp(a, { flags: ['ACK'], seq: p.iss + 2, ack: p.snd + 1 });
    assert.equal(p.conn.state, 'TIME-WAIT');
    assert.ok(p.conn.recvEnded);
    // A retransmitted FIN in TIME-WAIT is acknowledged again (§3.10.7.4, TIME-WAIT).
    const [again] = p.send(40, { seq: p.snd, ack: p.iss + 2, flags: ['FIN', 'ACK'] });
    expectTcp(again, { flags: ['ACK'], ack: p.snd + 1 });
    // The application is told at TIME-WAIT entry (as a Linux socket closes then);
    // the 4-tuple stays reserved until TIME-WAIT ends, with no second event.
    assert.equal(p.closed.length, 1);
    assert.equal(p.t.connectionCount, 1);
    p.runTimers(50, TIME_WAIT_BOUND_MS, 500);
    assert.equal(p.t.connectionCount, 0);
    assert.equal(p.closed.length, 1);
    assert.equal(p.closed[0]!.type === 'tcp-closed' && p.closed[0]!.error, undefined);
  });

  test('they close first (half-close): CLOSE-WAIT keeps sending, then LAST-ACK', () => {
    const p = new Peer();
    const [a] = p.send(10, { seq: p.snd, ack: p.iss + 1, flags: ['FIN', 'ACK'] });
    expectTcp(a, { flags: ['ACK'], ack: p.snd + 1 });
    assert.equal(p.conn.state, 'CLOSE-WAIT');
    assert.ok(p.conn.recvEnded);
    // Still able to send after the peer's FIN.
    const data = new Uint8Array(300).fill(7);
    assert.equal(p.conn.send(20, data), 300);
    const segs = drain(p.t, 20);
    const d = segs.find((s) => tcpFields(s).payloadLength > 0);
    expectTcp(d, { flags: ['ACK'], seq: p.iss + 1, ack: p.snd + 1, payloadLength: 300 });
    p.conn.shutdown(30);
    const fin = drain(p.t, 30).find(isFin);
    expectTcp(fin, { flags: ['FIN', 'ACK'], seq: p.iss + 301 });
    assert.equal(p.conn.state, 'LAST-ACK');
    p.send(40, { seq: p.snd + 1, ack: p.iss + 302, flags: ['ACK'] });
    assert.equal(p.conn.state, 'CLOSED');
    assert.equal(p.closed.length, 1);
    assert.equal(p.t.connectionCount, 0);
  });

  test('simultaneous close: FIN-WAIT-1 → CLOSING → TIME-WAIT', () => {
    const p = new Peer();
    p.conn.shutdown(10);
    drain(p.t, 10);
    // Their FIN crosses ours: it does not ack our FIN.
    const [a] = p.send(20, { seq: p.snd, ack: p.iss + 1, flags: ['FIN', 'ACK'] });
    expectTcp(a, { flags: ['ACK'], ack: p.snd + 1 });
    assert.equal(p.conn.state, 'CLOSING');
    p.send(30, { seq: p.snd + 1, ack: p.iss + 2, flags: ['ACK'] });
    assert.equal(p.conn.state, 'TIME-WAIT');
    p.runTimers(40, TIME_WAIT_BOUND_MS, 500);
    assert.equal(p.closed.length, 1);
    assert.equal(p.t.connectionCount, 0);
  });

  test('FIN+ACK acking our FIN in FIN-WAIT-1 goes straight to TIME-WAIT', () => {
    const p = new Peer();
    p.conn.shutdown(10);
    drain(p.t, 10);
    p.send(20, { seq: p.snd, ack: p.iss + 2, flags: ['FIN', 'ACK'] });
    assert.equal(p.conn.state, 'TIME-WAIT');
  });

  test('an unanswered FIN is retransmitted', () => {
    const p = new Peer();
    p.conn.shutdown(10);
    drain(p.t, 10);
    const re = p.runTimers(20, 5000).filter(isFin);
    assert.ok(re.length >= 1);
    expectTcp(re[0], { flags: ['FIN', 'ACK'], seq: p.iss + 1 });
  });

  test('abort sends RST and reports closed once; later segments get RST from CLOSED', () => {
    const p = new Peer();
    p.conn.abort(10);
    const [r] = drain(p.t, 10);
    // §3.10.4 ABORT: <SEQ=SND.NXT><CTL=RST>; an ACK bit beside it (as Linux sends) is harmless.
    expectTcp(r, { seq: p.iss + 1 });
    assert.ok(tcpFields(r!).flags & TCP_FLAG.RST);
    assert.equal(tcpFields(r!).flags & (TCP_FLAG.SYN | TCP_FLAG.FIN), 0);
    p.closed.push(...events(p.t).filter((e) => e.type === 'tcp-closed'));
    assert.equal(p.closed.length, 1);
    assert.equal(p.t.connectionCount, 0);
    const [r2] = p.send(20, { seq: p.snd, ack: p.iss + 1, flags: ['ACK'], payload: new Uint8Array(5) });
    expectTcp(r2, { flags: ['RST'], seq: p.iss + 1 });
  });
});

/** MSS 1400, then NOP NOP and a timestamps option (RFC 7323 §3) with TSval `val`. */
const withTs = (val: number): number[] => [2, 4, 0x05, 0x78, 1, 1, 8, 10, val >>> 24, (val >>> 16) & 255, (val >>> 8) & 255, val & 255, 0, 0, 0, 0];

/** We close first and the peer's FIN puts the connection in TIME-WAIT (the peer's next seq is p.snd + 1). */
function toTimeWait(p: Peer): void {
  p.conn.shutdown(10);
  drain(p.t, 10);
  p.send(20, { seq: p.snd, ack: p.iss + 2, flags: ['FIN', 'ACK'] });
  assert.equal(p.conn.state, 'TIME-WAIT');
}

describe('a new SYN in TIME-WAIT (RFC 6191, RFC 1122 §4.2.2.13)', () => {
  test('without timestamps: a SYN beyond the last sequence number seen opens a new connection at once', () => {
    const p = new Peer();
    toTimeWait(p);
    const [sa] = p.send(30, { seq: p.snd + 100_000, flags: ['SYN'], options: [2, 4, 0x05, 0x78] });
    expectTcp(sa, { flags: ['SYN', 'ACK'], ack: p.snd + 100_001 });
    assert.equal(p.t.stats.timeWaitReused, 1);
  });

  test('without timestamps: a SYN at or below it stays refused (challenge ACK, TIME-WAIT kept)', () => {
    const p = new Peer();
    toTimeWait(p);
    const out = p.send(30, { seq: p.snd - 10, flags: ['SYN'], options: [2, 4, 0x05, 0x78] });
    assert.ok(out.every((s) => !(tcpFields(s).flags & TCP_FLAG.SYN)), 'no SYN-ACK');
    assert.equal(p.conn.state, 'TIME-WAIT');
    assert.equal(p.t.stats.timeWaitReused, 0);
  });

  test('with timestamps: a newer TSval decides even when the sequence number is lower; an older one is refused', () => {
    const p = new Peer(withTs(1000));
    toTimeWait(p);
    const old = p.send(30, { seq: p.snd + 100_000, flags: ['SYN'], options: withTs(999) });
    assert.ok(old.every((s) => !(tcpFields(s).flags & TCP_FLAG.SYN)), 'an older timestamp is an old duplicate');
    assert.equal(p.conn.state, 'TIME-WAIT');
    const [sa] = p.send(40, { seq: p.snd - 50_000, flags: ['SYN'], options: withTs(2000) });
    expectTcp(sa, { flags: ['SYN', 'ACK'], ack: p.snd - 49_999 });
    assert.equal(p.t.stats.timeWaitReused, 1);
  });

  test('a reused 4-tuple completes its handshake and carries data', () => {
    const p = new Peer();
    toTimeWait(p);
    const isn2 = p.snd + 100_000;
    const [sa] = p.send(30, { seq: isn2, flags: ['SYN'], options: [2, 4, 0x05, 0x78] });
    const iss2 = tcpFields(sa!).seq;
    p.send(31, { seq: isn2 + 1, ack: iss2 + 1, flags: ['ACK'] });
    const c2 = p.listener.accept();
    assert.ok(c2 && c2 !== p.conn);
    assert.equal(c2.state, 'ESTABLISHED');
    p.send(32, { seq: isn2 + 1, ack: iss2 + 1, flags: ['PSH', 'ACK'], payload: new Uint8Array([1, 2, 3]) });
    assert.deepEqual([...(c2.recv() ?? [])], [1, 2, 3]);
    assert.equal(p.t.connectionCount, 1, 'the old incarnation is gone, the new one open');
  });
});

describe('zero window and persist (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17)', () => {
  test('a zero window stops data; probes follow with growing gaps; an opened window resumes', () => {
    const p = new Peer();
    p.send(10, { seq: p.snd, ack: p.iss + 1, flags: ['ACK'], window: 0 });
    assert.equal(p.conn.send(20, new Uint8Array(10_000)), 10_000);
    const now = drain(p.t, 20);
    assert.equal(now.filter((s) => tcpFields(s).payloadLength > 1).length, 0, 'no data into a zero window');
    // Persist probes: at most one byte each (or none), with backoff between them.
    const times: number[] = [];
    for (let t = 30; t <= 30_000; t += 10) {
      const d = p.t.pollTimeout();
      if (d && d.at <= t) p.t.handleTimeout(t);
      for (const s of drain(p.t, t)) {
        assert.ok(tcpFields(s).payloadLength <= 1, 'a probe carries at most one byte');
        times.push(t);
      }
    }
    assert.ok(times.length >= 3, `${times.length} probes in 30 s`);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(gaps[gaps.length - 1]! > gaps[0]!, `probe gaps grow: ${gaps.join(',')}`);
    assert.equal(p.conn.state, 'ESTABLISHED', 'a zero window is never a reason to give up');
    // Window opens: data flows again.
    const out = p.send(30_010, { seq: p.snd, ack: p.iss + 1, flags: ['ACK'], window: 65535 });
    assert.ok(out.some((s) => tcpFields(s).payloadLength > 1));
  });
});
