/**
 * Per-peer limits in the netstack (issue 18): one hostile peer inside the tunnel exhausts its
 * own budget of TCP connections through a listener, of IP reassembly memory and of a UDP
 * socket's queue; every refusal is counted; another peer's new connection, fragmented datagram
 * and datagrams still get through; and once the hostile peer's state closes or expires its
 * budget comes back.
 *
 * The peers are told apart as the tunnel tells them apart (cryptokey routing, whitepaper §2):
 * `peerOf` maps the hostile peer's whole range, 10.0.0.64/26, to one key, so rotating its
 * source address does not buy it more. Packets are built byte by byte from the RFCs
 * (test/harness/packets.ts); the clock is virtual, so the test is deterministic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Interface, type InterfaceOptions } from '../../src/netstack/interface.js';
import { Reassembler } from '../../src/netstack/reassembly.js';
import type { TcpLayer } from '../../src/netstack/tcp/layer.js';
import type { Listener } from '../../src/netstack/tcp/accept.js';
import type { Conn } from '../../src/netstack/tcp/conn.js';
import { addressKey } from '../../src/netstack/types.js';
import type { TcpConnection, TcpFlow } from '../../src/netstack/types.js';
import type { UdpFlow } from '../../src/netstack/flows.js';
import { parseIPv4 } from '../../src/wire/ip.js';
import { SeededRng } from '../../src/util/rng.js';
import { checksum } from '../../src/util/checksum.js';
import { mustParseIp, type IpAddr } from '../../src/util/ip.js';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';
import { buildIPv4, buildTcp, buildUdp, expectIp, PROTO, TCP_FLAG, tcpFields } from '../harness/packets.js';

const US = new Uint8Array([10, 0, 0, 1]);
const FRIEND = new Uint8Array([10, 0, 0, 2]);
/** The hostile peer's AllowedIPs are 10.0.0.64/26: any of these sources is the same peer. */
const hostile = (n: number): IpAddr => new Uint8Array([10, 0, 0, 64 + (n % 62)]);
/** The other peer has no entry in peerOf: its address is its own bucket. */
const FRIEND_KEY = addressKey(FRIEND);
const peerOf = (a: IpAddr): string | undefined => (a.length === 4 && a[0] === 10 && a[3]! >= 64 && a[3]! < 128 ? 'hostile' : undefined);

function iface(extra: Partial<InterfaceOptions> = {}): Interface {
  return new Interface({ addresses: ['10.0.0.1/24'], rng: new SeededRng(18), peerOf, ...extra });
}

function drain(i: Interface, now: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let p = i.pollTransmit(now); p; p = i.pollTransmit(now)) out.push(p.slice());
  return out;
}

// ---- TCP ---------------------------------------------------------------------------------

/** A TCP segment from `src` to US:80 inside an IPv4 packet. */
function seg(src: IpAddr, sport: number, flags: ('SYN' | 'ACK' | 'RST')[], seq: number, ack = 0): Uint8Array {
  return buildIPv4(src, US, PROTO.TCP, buildTcp(src, US, { srcPort: sport, dstPort: 80, seq, ack, flags, options: [2, 4, 0x05, 0xb4] }));
}

/** Sends a SYN (ISN 1000) and returns our answer's TCP header, or undefined if it went unanswered. */
function syn(i: Interface, now: number, src: IpAddr, sport: number): ReturnType<typeof tcpFields> | undefined {
  i.handleInput(now, seg(src, sport, ['SYN'], 1000));
  const out = drain(i, now);
  if (out.length === 0) return undefined;
  assert.equal(out.length, 1);
  const h = tcpFields(expectIp(out[0], { src: US, dst: src, proto: PROTO.TCP }));
  assert.equal(h.flags, TCP_FLAG.SYN | TCP_FLAG.ACK, 'SYN-ACK (RFC 9293 §3.5)');
  assert.equal(h.ack, 1001);
  return h;
}

test('TCP: a peer at its connection cap is refused, counted, others connect, and a RST gives the slot back', () => {
  const i = iface({ tcp: { maxConnectionsPerPeer: 3 } });
  const tcp = i.tcp as TcpLayer;
  const l = tcp.listen({ port: 80 });
  let now = 0;
  // Three SYNs from three addresses of the same peer take its three slots.
  const synAcks = [0, 1, 2].map((n) => syn(i, now, hostile(n), 2000 + n));
  assert.ok(synAcks.every((h) => h !== undefined));
  assert.equal(tcp.connectionsOf('hostile'), 3);
  // A fourth, from yet another of its addresses, is dropped unanswered.
  assert.equal(syn(i, now, hostile(3), 2003), undefined, 'no SYN-ACK, no RST, no cookie');
  assert.equal(tcp.stats['drop.connectionsPerPeer'], 1);
  // Another peer connects: SYN, SYN-ACK, ACK, accepted.
  const f = syn(i, now, FRIEND, 3000)!;
  assert.ok(f, 'the other peer is answered');
  i.handleInput(now, seg(FRIEND, 3000, ['ACK'], 1001, f.seq + 1));
  const c = l.accept();
  assert.ok(c, 'and its connection is accepted');
  assert.equal(c.state, 'ESTABLISHED');
  // RFC 5961 §3.2: a RST at exactly RCV.NXT resets one of the hostile peer's connections...
  i.handleInput(now, seg(hostile(0), 2000, ['RST'], 1001));
  assert.equal(tcp.connectionsOf('hostile'), 2);
  // ...and its next SYN gets in again.
  now += 1000;
  assert.ok(syn(i, now, hostile(3), 2003), 'the budget came back');
  assert.equal(tcp.stats['drop.connectionsPerPeer'], 1, 'no new refusal');
  assert.equal(syn(i, now, hostile(4), 2004), undefined, 'and it is full again');
  assert.equal(tcp.stats['drop.connectionsPerPeer'], 2);
});

test('TCP: connections that expire give the budget back; connections we open do not count', () => {
  const i = iface({ tcp: { maxConnectionsPerPeer: 2 } });
  const tcp = i.tcp as TcpLayer;
  tcp.listen({ port: 80 });
  let now = 0;
  assert.ok(syn(i, now, hostile(0), 2000));
  assert.ok(syn(i, now, hostile(1), 2001));
  assert.equal(syn(i, now, hostile(2), 2002), undefined);
  // A connection we open to the hostile peer is ours, not its: it does not count.
  const ours = tcp.connect(now, { remoteAddr: hostile(5), remotePort: 22 });
  drain(i, now);
  assert.equal(tcp.connectionsOf('hostile'), 2);
  ours.abort(now);
  drain(i, now);
  // The peer never completes its handshakes: SYN-RECEIVED gives up after its SYN-ACK
  // retransmissions (RFC 9293 §3.8.1, RFC 6298 backoff), and the slots are free again.
  for (let d = i.pollTimeout(); d && tcp.connectionCount > 0; d = i.pollTimeout()) {
    now = Math.max(now, d.at);
    i.handleTimeout(now);
    drain(i, now);
  }
  assert.equal(tcp.connectionCount, 0, 'every embryonic connection timed out');
  assert.ok(now > 60_000 && now < 600_000, `gone at ${now} ms`);
  assert.equal(tcp.connectionsOf('hostile'), 0);
  assert.ok(syn(i, now, hostile(2), 2002), 'its SYN is answered again');
  assert.ok(syn(i, now, hostile(3), 2003));
  assert.equal(tcp.stats['drop.connectionsPerPeer'], 1);
});

test('TCP: SYN cookies count too, and a valid cookie ACK at the cap is dropped silently, then gets in when a slot frees (RFC 4987 §3.6)', () => {
  // The peer may fill this small SYN queue (its share is the whole of it): the cookies here
  // come from a full queue, not from the per-peer share tested below.
  const i = iface({ tcp: { maxConnectionsPerPeer: 3, maxSynQueuePerPeer: 2 } });
  const tcp = i.tcp as TcpLayer;
  const l = tcp.listen({ port: 80, backlog: 2 });
  const now = 0;
  // Two SYNs fill the SYN queue; the next two are answered with cookies (no state).
  syn(i, now, hostile(0), 2000);
  syn(i, now, hostile(1), 2001);
  const c = syn(i, now, hostile(2), 2002)!;
  const d = syn(i, now, hostile(3), 2003)!;
  assert.equal(tcp.stats.synCookiesSent, 2);
  assert.equal(tcp.connectionsOf('hostile'), 2, 'a cookie holds no slot');
  // The first cookie ACK makes the third connection.
  i.handleInput(now, seg(hostile(2), 2002, ['ACK'], 1001, c.seq + 1));
  assert.equal(tcp.stats.synCookiesAccepted, 1);
  assert.equal(tcp.connectionsOf('hostile'), 3);
  // The second comes at the cap: no connection, no RST.
  i.handleInput(now, seg(hostile(3), 2003, ['ACK'], 1001, d.seq + 1));
  assert.deepEqual(drain(i, now), [], 'dropped silently, so the client retransmits');
  assert.equal(tcp.stats.synCookiesAccepted, 1);
  assert.equal(tcp.stats['drop.connectionsPerPeer'], 1);
  // A slot frees (the first connection is reset); the retransmitted ACK now gets in.
  i.handleInput(now, seg(hostile(0), 2000, ['RST'], 1001));
  assert.equal(tcp.connectionsOf('hostile'), 2);
  i.handleInput(now, seg(hostile(3), 2003, ['ACK'], 1001, d.seq + 1));
  assert.equal(tcp.stats.synCookiesAccepted, 2);
  assert.equal(tcp.connectionsOf('hostile'), 3);
  const accepted: TcpConnection[] = [];
  for (let x = l.accept(); x; x = l.accept()) accepted.push(x);
  assert.equal(accepted.length, 2, 'both cookie connections wait in the accept queue');
});

test('TCP: without peerOf every source address is its own peer', () => {
  const i = new Interface({ addresses: ['10.0.0.1/24'], rng: new SeededRng(18), tcp: { maxConnectionsPerPeer: 1 } });
  const tcp = i.tcp as TcpLayer;
  tcp.listen({ port: 80 });
  assert.ok(syn(i, 0, hostile(0), 2000));
  assert.equal(syn(i, 0, hostile(0), 2001), undefined, 'the same address again: refused');
  assert.ok(syn(i, 0, hostile(1), 2000), 'another address: its own budget');
  assert.equal(tcp.stats['drop.connectionsPerPeer'], 1);
});

test('TCP: a connection in TIME-WAIT no longer counts against its peer', () => {
  const i = iface({ tcp: { maxConnectionsPerPeer: 1 } });
  const tcp = i.tcp as TcpLayer;
  const l = tcp.listen({ port: 80 });
  let now = 0;
  const h = syn(i, now, hostile(0), 2000)!;
  i.handleInput(now, seg(hostile(0), 2000, ['ACK'], 1001, h.seq + 1));
  const c = l.accept()!;
  // We close first (FIN-WAIT-1), the peer ACKs our FIN and sends its own: TIME-WAIT (RFC 9293 §3.6).
  c.shutdown(now);
  const fin = tcpFields(expectIp(drain(i, now).at(-1), { proto: PROTO.TCP }));
  assert.ok(fin.flags & TCP_FLAG.FIN);
  const finAck = buildTcp(hostile(0), US, { srcPort: 2000, dstPort: 80, seq: 1001, ack: fin.seq + 1, flags: ['FIN', 'ACK'] });
  i.handleInput(now, buildIPv4(hostile(0), US, PROTO.TCP, finAck));
  drain(i, now);
  assert.equal(c.state, 'TIME-WAIT');
  assert.equal(tcp.connectionsOf('hostile'), 0);
  now += 10;
  assert.ok(syn(i, now, hostile(1), 2001), 'a new connection is answered while the old one waits');
});

// ---- a listener's SYN queue, shared per peer ----------------------------------------------

/** Option kinds (RFC 9293 §3.2; RFC 7323 §2.2 window scale; RFC 2018 §2 SACK-permitted). */
const OPT = { END: 0, NOP: 1, MSS: 2, WSCALE: 3, SACK_PERMITTED: 4, TIMESTAMPS: 8 } as const;
/** What a SYN from a modern client carries: MSS 1380, SACK-permitted, window scale 7. */
const SYN_OPTIONS = [OPT.MSS, 4, 0x05, 0x64, OPT.SACK_PERMITTED, 2, OPT.WSCALE, 3, 7, OPT.NOP];

/** The option kinds in a TCP header, walked as RFC 9293 §3.2 lays them out. */
function optionKinds(t: Uint8Array): number[] {
  const end = (t[12]! >> 4) * 4;
  const kinds: number[] = [];
  for (let o = 20; o < end; ) {
    const k = t[o]!;
    if (k === OPT.END) break;
    if (k === OPT.NOP) {
      o++;
      continue;
    }
    kinds.push(k);
    o += Math.max(2, t[o + 1]!);
  }
  return kinds;
}

/** A SYN with SYN_OPTIONS from `src`:`sport` to US:80; returns our answer's TCP segment. */
function synWithOptions(i: Interface, now: number, src: IpAddr, sport: number, seq: number): Uint8Array {
  i.handleInput(now, buildIPv4(src, US, PROTO.TCP, buildTcp(src, US, { srcPort: sport, dstPort: 80, seq, flags: ['SYN'], options: SYN_OPTIONS })));
  const out = drain(i, now);
  assert.equal(out.length, 1, 'one answer per SYN');
  const t = expectIp(out[0], { src: US, dst: src, proto: PROTO.TCP });
  assert.equal(tcpFields(t).flags, TCP_FLAG.SYN | TCP_FLAG.ACK);
  assert.equal(tcpFields(t).ack, (seq + 1) >>> 0);
  return t;
}

test('TCP: 10,000 spoofed SYNs from one peer take only its share of the SYN queue; another peer still gets full state, window scaling and SACK', () => {
  const i = iface();
  const tcp = i.tcp as TcpLayer;
  const l = tcp.listen({ port: 80 }) as Listener;
  // The default share: a quarter of the default backlog of 128.
  const SHARE = 32;
  let now = 0;
  let full = 0;
  let cookies = 0;
  for (let k = 0; k < 10_000; k++) {
    // Spoofed: every source port, and every address of the peer's range, never completing.
    const a = synWithOptions(i, now, hostile(k), 1024 + (k % 60_000), k * 7919);
    // A SYN-ACK from state echoes the client's window scale and SACK-permitted (RFC 7323 §2.2,
    // RFC 2018 §2); a cookie carries only MSS, since it remembers nothing else (RFC 4987 §3.6).
    const kinds = optionKinds(a);
    if (kinds.includes(OPT.WSCALE) && kinds.includes(OPT.SACK_PERMITTED)) full++;
    else {
      assert.deepEqual(kinds, [OPT.MSS], 'a cookie SYN-ACK');
      cookies++;
    }
    if (k % 1000 === 999) now += 10; // a flood, not an instant: 10 s of SYNs
  }
  assert.equal(full, SHARE, 'full SYN-RECEIVED state for the peer\'s share only');
  assert.equal(cookies, 10_000 - SHARE);
  assert.equal(tcp.stats.synCookiesPerPeer, 10_000 - SHARE, 'each cookie past the share is counted');
  assert.equal(tcp.stats.synCookiesSent, 10_000 - SHARE, 'the queue itself never filled');
  assert.equal(l.synQueue, SHARE);
  assert.equal(l.synQueueOf('hostile'), SHARE);
  assert.equal(tcp.connectionCount, SHARE, 'cookies hold no state');
  assert.ok(tcp.timerEntries <= SHARE, `${tcp.timerEntries} timer entries`);

  // The other peer, in the middle of the flood: a SYN-ACK from state, with every option.
  const a = synWithOptions(i, now, FRIEND, 40000, 5000);
  const kinds = optionKinds(a);
  assert.ok(kinds.includes(OPT.WSCALE), `window scale in the SYN-ACK: ${kinds}`);
  assert.ok(kinds.includes(OPT.SACK_PERMITTED), `SACK-permitted in the SYN-ACK: ${kinds}`);
  assert.equal(tcp.stats.synCookiesPerPeer, 10_000 - SHARE, 'no cookie for it');
  assert.equal(l.synQueueOf(FRIEND_KEY), 1);
  i.handleInput(now, buildIPv4(FRIEND, US, PROTO.TCP, buildTcp(FRIEND, US, { srcPort: 40000, dstPort: 80, seq: 5001, ack: tcpFields(a).seq + 1, flags: ['ACK'], window: 1000 })));
  const c = l.accept() as Conn | undefined;
  assert.ok(c, 'accepted');
  assert.equal(c.remotePort, 40000);
  assert.equal(c.state, 'ESTABLISHED');
  assert.ok(c.wscaleOk && c.sackOk, 'window scaling and SACK agreed');
  assert.equal(c.sndWnd, 1000 << 7, 'its window is scaled by the shift it offered (RFC 7323 §2.3)');
  assert.equal(l.synQueueOf(FRIEND_KEY), 0, 'established: out of the SYN queue');

  // The flood's embryonic connections give up (RFC 9293 §3.8.1 retransmissions, then gone): the
  // queue, the per-peer table and the timers are empty again; the accepted connection stays.
  for (let d = i.pollTimeout(); d && l.synQueue > 0; d = i.pollTimeout()) {
    now = Math.max(now, d.at);
    i.handleTimeout(now);
    drain(i, now);
  }
  assert.equal(l.synQueue, 0);
  assert.equal(l.synQueueOf('hostile'), 0);
  assert.equal((l as unknown as { synPerPeer: Map<unknown, number> }).synPerPeer.size, 0, 'no per-peer entry left behind');
  assert.equal(tcp.connectionCount, 1, 'only the accepted connection');
  assert.equal(tcp.connectionsOf('hostile'), 0);
  // And the hostile peer is served from state again, up to its share.
  assert.ok(optionKinds(synWithOptions(i, now, hostile(0), 7, 1)).includes(OPT.WSCALE));
});

test('TCP: the SYN-queue share follows maxSynQueuePerPeer and frees as handshakes complete', () => {
  const i = iface({ tcp: { maxSynQueuePerPeer: 2 } });
  const tcp = i.tcp as TcpLayer;
  const l = tcp.listen({ port: 80 }) as Listener;
  const now = 0;
  const first = synWithOptions(i, now, hostile(0), 2000, 100);
  synWithOptions(i, now, hostile(1), 2001, 100);
  assert.deepEqual(optionKinds(synWithOptions(i, now, hostile(2), 2002, 100)), [OPT.MSS], 'past the share: a cookie');
  assert.equal(tcp.stats.synCookiesPerPeer, 1);
  // One handshake completes: that peer has room in the queue again.
  i.handleInput(now, buildIPv4(hostile(0), US, PROTO.TCP, buildTcp(hostile(0), US, { srcPort: 2000, dstPort: 80, seq: 101, ack: tcpFields(first).seq + 1, flags: ['ACK'] })));
  assert.ok(l.accept());
  assert.equal(l.synQueueOf('hostile'), 1);
  assert.ok(optionKinds(synWithOptions(i, now, hostile(3), 2003, 100)).includes(OPT.SACK_PERMITTED), 'from state again');
  assert.equal(tcp.stats.synCookiesPerPeer, 1);
  // Infinity turns the share off: the queue is first come, first served, as before.
  const j = iface({ tcp: { maxSynQueuePerPeer: Infinity } });
  (j.tcp as TcpLayer).listen({ port: 80, backlog: 8 });
  for (let k = 0; k < 8; k++) assert.ok(optionKinds(synWithOptions(j, now, hostile(k), 3000 + k, 1)).includes(OPT.WSCALE));
  assert.equal((j.tcp as TcpLayer).stats.synCookiesPerPeer, 0);
});

// ---- IP reassembly ----------------------------------------------------------------------------

/** An IPv4 fragment (RFC 791 §3.1): `part` at byte `offset` of the datagram `id`, MF if `more`. */
function fragment(src: IpAddr, id: number, offset: number, more: boolean, part: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + part.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[4] = id >> 8;
  p[5] = id & 0xff;
  p[6] = (more ? 0x20 : 0) | ((offset >> 11) & 0x1f);
  p[7] = (offset >> 3) & 0xff;
  p[8] = 64;
  p[9] = PROTO.UDP;
  p.set(src, 12);
  p.set(US, 16);
  const c = checksum(p, 0, 20);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p.set(part, 20);
  return p;
}

/** A UDP datagram to US:9000 of `size` payload bytes, cut at 1480 bytes into two fragments. */
function twoFragments(src: IpAddr, id: number, size: number, fill: number): [Uint8Array, Uint8Array] {
  const u = buildUdp(src, US, 5000, 9000, new Uint8Array(size).fill(fill));
  return [fragment(src, id, 0, true, u.subarray(0, 1480)), fragment(src, id, 1480, false, u.subarray(1480))];
}

/** `n` first fragments of 1 KiB from the hostile peer, rotating over its addresses, that never complete. */
function flood(i: Interface, now: number, from: number, n: number): void {
  for (let k = from; k < from + n; k++) i.handleInput(now, fragment(hostile(k), k & 0xffff, 0, true, new Uint8Array(1024)));
}

test('reassembly: a peer flooding fragments evicts only its own, so another peer\'s datagram survives 8 MiB of flood between its fragments', () => {
  const i = iface();
  const server = i.udpBind({ family: 4, port: 9000 });
  let now = 0;
  for (let round = 0; round < 3; round++) {
    const [first, last] = twoFragments(FRIEND, 100 + round, 3000, round + 1);
    i.handleInput(now, first);
    // Twice the global cap (4 MiB) of incomplete datagrams: without a per-peer cap the
    // friend's first fragment, the oldest, would be evicted long before its last came.
    flood(i, now, round * 8192, 8192);
    i.handleInput(now, last);
    const got = server.recv();
    assert.ok(got, `round ${round}: the other peer's datagram was reassembled`);
    assert.equal(got.data.length, 3000);
    assert.ok(got.data.every((b) => b === round + 1));
    now += 1000;
  }
  const s = i.stats;
  // Each flood datagram is charged 1024 + 128 + 256 bytes, so about 745 fit in 1 MiB; the rest went.
  assert.ok((s['ip.reassembly.evictedPerSource'] ?? 0) >= 3 * 8192 - 800, JSON.stringify(s));
  assert.equal(s['ip.reassembly.evicted'], s['ip.reassembly.evictedPerSource'], 'the global cap was never reached');
});

test('reassembly: once the hostile peer\'s datagrams time out, its budget is back (RFC 791 §3.2: 30 s here)', () => {
  const counted: string[] = [];
  const r = new Reassembler({ peerOf, maxBytesPerSource: 64 * 1024, count: (w) => counted.push(w) });
  const add = (now: number, pkt: Uint8Array): unknown => {
    const info = parseIPv4(pkt);
    assert.ok(typeof info !== 'string');
    return r.add(now, pkt, info);
  };
  for (let k = 0; k < 200; k++) add(0, fragment(hostile(k), k, 0, true, new Uint8Array(1024)));
  assert.ok(r.bytesHeldBy(hostile(0)) <= 64 * 1024, `${r.bytesHeldBy(hostile(0))} bytes held`);
  assert.equal(r.bytesHeldBy(hostile(0)), r.bytesHeldBy(hostile(61)), 'one bucket for the whole range');
  assert.equal(r.bytesHeldBy(FRIEND), 0);
  // 1024 + 128 + 256 bytes charged each: 46 fit in 64 KiB, the other 154 were evicted.
  assert.equal(counted.filter((w) => w === 'ip.reassembly.evictedPerSource').length, 200 - Math.floor((64 * 1024) / 1408));
  assert.equal(r.datagrams, Math.floor((64 * 1024) / 1408));
  r.expire(30_000);
  assert.equal(r.bytesHeld, 0);
  assert.equal(r.bytesHeldBy(hostile(0)), 0, 'nothing left charged to the peer');
  // Its own complete datagram now passes, and a new flood is capped the same way.
  const [first, last] = twoFragments(hostile(7), 9, 3000, 7);
  assert.equal(add(30_000, first), undefined);
  const whole = add(30_000, last) as { payload: Uint8Array } | null;
  assert.ok(whole && whole.payload.length === 3008, 'reassembled');
});

// ---- a UDP socket's queue ----------------------------------------------------------------

function udp(src: IpAddr, sport: number, size: number, fill: number): Uint8Array {
  return buildIPv4(src, US, PROTO.UDP, buildUdp(src, US, sport, 53, new Uint8Array(size).fill(fill)));
}

test('UDP: a full socket queue drops from the peer holding the most, so another peer gets an equal part', () => {
  const i = iface();
  const s = i.udpBind({ family: 4, port: 53, recvQueueBytes: 10 * 1024 });
  // The hostile peer fills the queue while the reader sleeps, from many addresses.
  for (let k = 0; k < 100; k++) i.handleInput(0, udp(hostile(k), 4000, 1024, 0xee));
  assert.equal(i.stats['drop.udp.queueFull'], 90, 'with one peer: plain tail drop, as before');
  assert.equal(i.stats['drop.udp.queueShare'] ?? 0, 0);
  // Another peer's datagrams push the hostile peer's oldest out, down to equal shares.
  for (let k = 0; k < 20; k++) i.handleInput(0, udp(FRIEND, 5000, 1024, k));
  assert.equal(i.stats['drop.udp.queueShare'], 5);
  assert.equal(i.stats['drop.udp.queueFull'], 90 + 15, 'the friend stops at its half');
  for (let k = 0; k < 10; k++) i.handleInput(0, udp(hostile(k), 4000, 1024, 0xee));
  assert.equal(i.stats['drop.udp.queueFull'], 90 + 15 + 10, 'and so does the hostile peer');
  const got: { data: Uint8Array; addr: IpAddr }[] = [];
  for (let m = s.recv(); m; m = s.recv()) got.push(m);
  assert.equal(got.length, 10);
  assert.equal(got.filter((m) => m.addr[3] === 2).length, 5, 'five of the friend\'s');
  assert.deepEqual(
    got.filter((m) => m.addr[3] === 2).map((m) => m.data[0]),
    [0, 1, 2, 3, 4],
    'in order, whole',
  );
  assert.ok(got.filter((m) => m.addr[3] !== 2).every((m) => m.data.length === 1024 && m.data[0] === 0xee), 'the survivors of the hostile peer are intact');
  // Read empty, the queue is anybody's again: the hostile peer's budget is back.
  for (let k = 0; k < 10; k++) i.handleInput(0, udp(hostile(k), 4000, 1024, 0xee));
  assert.equal(i.stats['drop.udp.queueFull'], 90 + 15 + 10, 'ten more fit');
  // Full again: the friend's datagram still pushes one of the hostile peer's out.
  i.handleInput(0, udp(FRIEND, 5000, 1024, 99));
  assert.equal(i.stats['drop.udp.queueShare'], 6);
  const again: { data: Uint8Array; addr: IpAddr }[] = [];
  for (let m = s.recv(); m; m = s.recv()) again.push(m);
  assert.equal(again.length, 10);
  assert.equal(again.at(-1)!.data[0], 99);
});

test('UDP: dropped entries do not pile up behind a reader that never reads', () => {
  const i = iface();
  const s = i.udpBind({ family: 4, port: 53, recvQueueBytes: 4 * 1024 });
  for (let k = 0; k < 20_000; k++) i.handleInput(0, udp(k % 2 ? FRIEND : hostile(k), 4000, 1024, k & 0xff));
  const inner = s as unknown as { queue: unknown[]; queued: number };
  assert.ok(inner.queue.length <= 4 + 128, `${inner.queue.length} entries held`);
  assert.equal(inner.queued, 4 * 1024);
  let n = 0;
  for (let m = s.recv(); m; m = s.recv()) n++;
  assert.equal(n, 4);
});

// ---- gateway mode's flow table -----------------------------------------------------------

test('flow table: UDP flows and held SYNs for other destinations are capped per peer (the whole range is one peer); others get theirs; entries give the share back', () => {
  const i = iface({ flows: { peerOf, maxUdpFlowsPerPeer: 3, maxHeldSynsPerPeer: 2, synHoldMs: 30_000 } });
  i.forwarding = true;
  const FAR = new Uint8Array([192, 0, 2, 1]); // not ours: a gateway flow
  const flows: UdpFlow[] = [];
  const held: TcpFlow[] = [];
  const events = (): void => {
    for (let e = i.pollEvent(); e; e = i.pollEvent()) {
      if (e.type === 'udp-flow') flows.push(e.flow);
      else if (e.type === 'tcp-flow') held.push(e.flow);
    }
  };
  const datagram = (src: IpAddr, sport: number): void => i.handleInput(0, buildIPv4(src, FAR, PROTO.UDP, buildUdp(src, FAR, sport, 53, new Uint8Array(8))));
  const synTo = (now: number, src: IpAddr, sport: number): void => i.handleInput(now, buildIPv4(src, FAR, PROTO.TCP, buildTcp(src, FAR, { srcPort: sport, dstPort: 443, seq: 1, flags: ['SYN'] })));
  // UDP: ten source ports over ten addresses of one peer make three flows.
  for (let k = 0; k < 10; k++) datagram(hostile(k), 5000 + k);
  events();
  assert.equal(flows.length, 3);
  assert.equal(i.stats['drop.flow.udpPerPeer'], 7);
  assert.equal(i.flows.heldBy(hostile(40)).udpFlows, 3, 'any of its addresses names the same share');
  datagram(hostile(0), 5000);
  assert.equal(i.stats['drop.flow.udpPerPeer'], 7, 'an open flow still carries datagrams');
  datagram(FRIEND, 6000);
  events();
  assert.equal(flows.length, 4, 'the other peer opens its flow');
  assert.deepEqual([...flows[3]!.srcAddr], [...FRIEND]);
  flows[0]!.close();
  datagram(hostile(20), 5020);
  events();
  assert.equal(flows.length, 5, 'a closed flow gave its entry back');
  assert.equal(i.stats['drop.flow.udpPerPeer'], 7);
  // TCP: SYNs held for a decision, two for the peer.
  for (let k = 0; k < 6; k++) synTo(0, hostile(k), 7000 + k);
  events();
  assert.equal(held.length, 2);
  assert.equal(i.stats['drop.flow.synPerPeer'], 4);
  assert.equal(drain(i, 0).length, 0, 'unanswered: the client retries');
  synTo(0, FRIEND, 8000);
  events();
  assert.equal(held.length, 3, 'the other peer\'s SYN is held');
  assert.equal(i.flows.heldSyns, 3);
  // A refusal, then expiry, give the peer's held entries back.
  i.flows.refuseTcp(0, held[0]!, 'drop');
  synTo(1, hostile(10), 7010);
  events();
  assert.equal(held.length, 4);
  i.flows.expire(30_001);
  assert.equal(i.flows.heldSyns, 0);
  assert.deepEqual(i.flows.heldBy(hostile(0)), { udpFlows: 3, heldSyns: 0 }, 'its UDP share full, its SYN share empty');
  for (let k = 0; k < 2; k++) synTo(30_001, hostile(30 + k), 7030 + k);
  events();
  assert.equal(held.length, 6);
  assert.equal(i.stats['drop.flow.synPerPeer'], 4);
});

// ---- the tunnel names peers by their AllowedIPs ---------------------------------------------

test('a tunnel counts a peer\'s whole AllowedIPs as one peer (whitepaper §2)', async () => {
  const me = keyPair();
  const [x, y] = [keyPair(), keyPair()];
  const t = await Tunnel.create(
    `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.66.0.1/16\n` +
      `[Peer]\nPublicKey = ${x.publicKey}\nAllowedIPs = 10.66.1.0/24, fd66:1::/64\n` +
      `[Peer]\nPublicKey = ${y.publicKey}\nAllowedIPs = 10.66.2.5/32\n`,
  );
  try {
    const tcp = t.engine.iface.tcp as TcpLayer;
    const key = (s: string): unknown => tcp.peerKey(mustParseIp(s));
    assert.equal(key('10.66.1.7'), key('10.66.1.200'), 'one /24, one peer');
    assert.equal(key('10.66.1.7'), key('fd66:1::1234'), 'and its IPv6 range too');
    assert.notEqual(key('10.66.1.7'), key('10.66.2.5'), 'another peer is another bucket');
    assert.equal(typeof key('10.66.1.7'), 'object', 'the peer itself, not an address');
  } finally {
    await t.close();
  }
});
