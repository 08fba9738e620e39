/**
 * Many peers and handshake storms (issue 17), in virtual time: a device with 10,000 peers
 * keeps an established peer's packets flowing through a flood of initiations (data first,
 * handshakes in a bounded queue, stale ones dropped), demands cookies only when the
 * backlog says so (wireguard-go: 128 of a 1,024 queue), keeps one timer-heap entry per
 * timer however often the timers move, and adds a peer with one X25519.
 * Constants are restated here, not imported.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Device, type Endpoint } from '../../src/wireguard/device.js';
import { isLowOrderPoint } from '../../src/crypto/keys.js';
import { getCryptoProvider } from '../../src/crypto/index.js';
import type { CryptoProvider } from '../../src/crypto/provider.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../src/crypto/keys.js';
import { SeededRng } from '../../src/util/rng.js';
import { parsePrefix } from '../../src/util/ip.js';
import { fromHex } from '../../src/util/bytes.js';
import { WgSim } from '../harness/wg-sim.js';
import { Engine, type PacketLayer } from '../../src/io/engine.js';

const QUEUE = 1024; // wireguard-go QueueHandshakeSize
const UNDER_LOAD_BACKLOG = QUEUE / 8;
const REKEY_TIMEOUT = 5000;
const WALL = 1_700_000_000_000;

const crypto = getCryptoProvider('native');

interface Client {
  d: Device;
  from: Endpoint;
  pub: Uint8Array;
}

/** A server with `n` peers, the first `clients` of them real devices that know the server. */
function world(n: number, clients: number, opts: { underLoadBacklog?: number } = {}) {
  const rng = new SeededRng(17);
  let wall = WALL;
  const sk = generatePrivateKey(rng);
  const server = new Device({ privateKey: sk, crypto, rng, wallClock: () => wall, ...opts });
  const se: Endpoint = { address: '192.0.2.1', port: 51820 };
  const cs: Client[] = [];
  for (let i = 0; i < n; i++) {
    const ck = generatePrivateKey(rng);
    const pub = publicKeyFromPrivate(crypto, ck);
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    server.addPeer({ publicKey: pub, allowedIps: [parsePrefix(`${ip}/32`)!] });
    if (i < clients) {
      const d = new Device({ privateKey: ck, crypto, rng, wallClock: () => wall });
      d.addPeer({ publicKey: publicKeyFromPrivate(crypto, sk), endpoint: se, allowedIps: [parsePrefix('0.0.0.0/0')!] });
      cs.push({ d, pub, from: { address: `198.51.${(i >> 8) & 255}.${i & 255}`, port: 40000 + (i % 20000) } });
    }
  }
  return { server, se, clients: cs, advanceWall: (ms: number) => (wall += ms) };
}

const initiation = (c: Client, now: number): Uint8Array => {
  c.d.initiateHandshake(now, [...c.d.peers()][0]!);
  return c.d.pollTransmit()!.data;
};

function packetFrom(i: number, seq: number): Uint8Array {
  return WgSim.packet(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, '10.255.255.254', seq);
}

describe('many peers', () => {
  test('10,000 peers, a flood of initiations: the established peer is never delayed; the queue is bounded; cookies only under backlog; stale ones dropped', () => {
    const { server, se, clients } = world(10_000, 1_600);
    const live = clients[0]!;
    // The live peer's session, through the queue like everyone's.
    let now = 1000;
    server.receiveDatagram(now, initiation(live, now), live.from);
    assert.equal(server.handshakeBacklog, 1);
    server.handleHandshakes(now);
    for (let d = server.pollTransmit(); d; d = server.pollTransmit()) live.d.handleDatagram(now, d.data, se);
    assert.equal(server.stats.cookieRepliesSent, 0, 'one handshake is no load');
    const toServer = (): Uint8Array[] => {
      const out: Uint8Array[] = [];
      for (let d = live.d.pollTransmit(); d; d = live.d.pollTransmit()) out.push(d.data);
      return out;
    };
    const liveSend = (seq: number): Uint8Array => {
      live.d.handlePacket(now, packetFrom(0, seq));
      const m = toServer();
      return m[m.length - 1]!;
    };
    // First data confirms the session at the server.
    server.receiveDatagram(now, liveSend(0), live.from);
    assert.ok(server.pollPacket(), 'first packet delivered');

    // The flood: 1,500 initiations from distinct configured peers in one burst, the live
    // peer's packets among them. Each of its packets is delivered as it arrives.
    now += 10;
    const flood = clients.slice(1, 1501).map((c) => ({ data: initiation(c, now), from: c.from }));
    let seq = 1;
    for (let i = 0; i < flood.length; i++) {
      server.receiveDatagram(now, flood[i]!.data, flood[i]!.from);
      if (i % 50 === 0) {
        server.receiveDatagram(now, liveSend(seq++), live.from);
        const p = server.pollPacket();
        assert.ok(p, `live packet ${seq - 1} delivered at once, ${server.handshakeBacklog} handshakes waiting`);
        assert.equal(server.pollPacket(), undefined);
      }
    }
    assert.equal(server.handshakeBacklog, QUEUE, 'the queue holds at most 1,024');
    assert.equal(server.stats.dropped.handshakeQueueFull, flood.length - QUEUE, 'the rest dropped and counted');
    assert.equal(server.stats.handshakeBacklogMax, QUEUE);

    // Served a slice at a time: while 128 or more wait, the answers are cookie replies.
    let responses = 0;
    let cookies = 0;
    const drainTx = (): void => {
      for (let d = server.pollTransmit(); d; d = server.pollTransmit()) {
        if (d.data[0] === 2) responses++;
        else if (d.data[0] === 3) cookies++;
      }
    };
    server.handleHandshakes(now, QUEUE - UNDER_LOAD_BACKLOG);
    drainTx();
    assert.equal(cookies, QUEUE - UNDER_LOAD_BACKLOG, 'a backlog of 128+ is load: cookies');
    assert.equal(responses, 0);
    // Live traffic still goes straight through between slices.
    server.receiveDatagram(now, liveSend(seq++), live.from);
    assert.ok(server.pollPacket());

    // The rest waited past RekeyTimeout: their senders have retried, so they are dropped unanswered.
    now += REKEY_TIMEOUT + 1;
    const left = server.handshakeBacklog;
    server.handleHandshakes(now);
    drainTx();
    assert.equal(server.stats.dropped.handshakeStale, left);
    assert.equal(responses + cookies, QUEUE - UNDER_LOAD_BACKLOG);

    // After the flood (and UnderLoadAfterTime), a new initiation is answered with a response.
    now += 1001;
    const late = clients[1550]!;
    server.receiveDatagram(now, initiation(late, now), late.from);
    server.handleHandshakes(now);
    drainTx();
    assert.equal(responses, 1);
    assert.equal(server.stats.cookieRepliesSent, QUEUE - UNDER_LOAD_BACKLOG);
  });

  test('no fixed rate: 150 initiations in one second from distinct peers are all answered (the old rule sent cookies above 100/s)', () => {
    const { server, clients } = world(200, 150);
    let now = 0;
    let responses = 0;
    for (const c of clients) {
      now += 6;
      server.handleDatagram(now, initiation(c, now), c.from);
      for (let d = server.pollTransmit(); d; d = server.pollTransmit()) if (d.data[0] === 2) responses++;
    }
    assert.equal(responses, 150);
    assert.equal(server.stats.cookieRepliesSent, 0);
  });

  test('underLoadBacklog is configurable: 0 demands cookies always', () => {
    const { server, clients } = world(4, 2, { underLoadBacklog: 0 });
    const c = clients[0]!;
    server.handleDatagram(10, initiation(c, 10), c.from);
    assert.equal(server.stats.cookieRepliesSent, 1);
  });

  test('timers of 10,000 peers: one heap entry per timer however often they move; the next deadline is the earliest', () => {
    const { server, clients } = world(10_000, 1);
    const peers = [...server.peers()];
    // Every peer gets a persistent keepalive and a handshake in flight: two timers each.
    for (const p of peers) server.updatePeer(p.publicKey, { persistentKeepalive: 25, endpoint: { address: '203.0.113.1', port: 1 } });
    for (const p of peers) server.initiateHandshake(100, p);
    while (server.pollTransmit());
    assert.equal(server.pollTimeout()?.at, 100 + REKEY_TIMEOUT, 'the earliest retry (5 s plus 0-333 ms of jitter)');
    const entries = server.timerEntries;
    assert.ok(entries <= 2 * peers.length, `${entries} entries`);
    // The live peer's traffic moves its keepalive timer on every packet: no new entries.
    const live = clients[0]!;
    const se = { address: '192.0.2.1', port: 51820 };
    const livePeer = server.getPeer(live.pub)!;
    server.updatePeer(live.pub, { persistentKeepalive: 25 });
    let now = 200;
    server.handleDatagram(now, initiation(live, now), live.from);
    for (let d = server.pollTransmit(); d; d = server.pollTransmit()) live.d.handleDatagram(now, d.data, se);
    for (let i = 0; i < 5000; i++) {
      now += 0.5;
      live.d.handlePacket(now, packetFrom(0, i));
      for (let d = live.d.pollTransmit(); d; d = live.d.pollTransmit()) server.handleDatagram(now, d.data, live.from);
      while (server.pollPacket());
      server.pollTimeout();
    }
    assert.ok(server.timerEntries <= entries + 5, `${server.timerEntries} entries after 5,000 packets`);
    assert.equal(livePeer.timers.persistentKeepalive, now + 25_000);
    // Timers fire in order and only the due peers are touched: run 6 s of virtual time.
    let fired = 0;
    for (let d = server.pollTimeout(); d && d.at <= now + 6000; d = server.pollTimeout()) {
      server.handleTimeout(d.at);
      for (let t = server.pollTransmit(); t; t = server.pollTransmit()) fired++;
    }
    assert.ok(fired >= peers.length - 1, `${fired} retries sent`);
  });

  test('the engine: a batch of data and 1,000 initiations delivers the data first, then serves handshakes a slice per turn of the event loop', async () => {
    // 1,000 (below the queue's 1,024): enough that no 2 ms slice can serve them all, even as
    // cookie replies at ~10 µs each.
    const { server, se, clients } = world(1001, 1001);
    const live = clients[0]!;
    const delivered: number[] = [];
    const layer: PacketLayer = {
      handleInput: () => delivered.push(server.handshakeBacklog),
      pollTransmit: () => undefined,
      handleTimeout: () => {},
      pollTimeout: () => undefined,
      pollEvent: () => undefined,
    };
    const engine = new Engine(server, layer, undefined);
    // The engine's clock is the real one: the test's packets are made at its times.
    let now = engine.now();
    server.handleDatagram(now, initiation(live, now), live.from);
    for (let d = server.pollTransmit(); d; d = server.pollTransmit()) live.d.handleDatagram(now, d.data, se);
    now = engine.now();
    const batch = clients.slice(1).map((c) => ({ data: initiation(c, now), from: c.from }));
    live.d.handlePacket(now, packetFrom(0, 1));
    const fromLive: Uint8Array[] = [];
    for (let d = live.d.pollTransmit(); d; d = live.d.pollTransmit()) fromLive.push(d.data); // a keepalive, then the packet
    // One batch as UdpBind delivers it: the live packets last, behind 300 initiations.
    for (const m of batch) engine.receive(m.data, m.from.address, m.from.port);
    for (const m of fromLive) engine.receive(m, live.from.address, live.from.port);
    engine.pump();
    assert.deepEqual(delivered.slice(0, 1), [batch.length], 'the data went in before any handshake was served');
    const afterFirstTurn = server.handshakeBacklog;
    assert.ok(afterFirstTurn > 0 && afterFirstTurn < batch.length, `one slice served (${batch.length - afterFirstTurn} handshakes), the rest on later turns`);
    for (let i = 0; i < 2000 && server.handshakeBacklog > 0; i++) await new Promise((r) => setImmediate(r));
    assert.equal(server.handshakeBacklog, 0, 'all served');
    engine.close();
  });

  test('the engine: handshakes are not starved by an application that always has data to send', async () => {
    const { server, clients } = world(50, 41);
    let sending = true;
    const layer: PacketLayer = {
      handleInput: () => {},
      // Endless outgoing packets (to no peer: each is dropped as noRoute, but counts as sent).
      pollTransmit: () => (sending ? WgSim.packet('10.255.255.254', '192.0.2.99', 0) : undefined),
      handleTimeout: () => {},
      pollTimeout: () => undefined,
      pollEvent: () => undefined,
    };
    const engine = new Engine(server, layer, undefined);
    const now = engine.now();
    for (const c of clients.slice(1)) {
      const m = initiation(c, now);
      engine.receive(m, c.from.address, c.from.port);
    }
    const before = server.handshakeBacklog;
    engine.pump();
    for (let i = 0; i < 200 && server.handshakeBacklog > 0; i++) await new Promise((r) => setImmediate(r));
    sending = false;
    engine.close();
    assert.equal(before, 40);
    assert.equal(server.handshakeBacklog, 0, 'all served while the data never stopped');
    assert.ok((server.stats.dropped.noRoute ?? 0) > 64, 'the data did flow');
  });

  test('addPeer does one X25519; the low-order list answers as a Diffie-Hellman would', () => {
    let dh = 0;
    const counting: CryptoProvider = { ...crypto, x25519: (o, s, p) => (dh++, crypto.x25519(o, s, p)) };
    const rng = new SeededRng(3);
    const d = new Device({ privateKey: generatePrivateKey(rng), crypto: counting, rng, wallClock: () => WALL });
    dh = 0;
    for (let i = 0; i < 100; i++) d.addPeer({ publicKey: publicKeyFromPrivate(crypto, generatePrivateKey(rng)) });
    assert.equal(dh, 100);
    dh = 0;
    d.checkPeerKey(publicKeyFromPrivate(crypto, generatePrivateKey(rng)));
    assert.equal(dh, 0, 'checkPeerKey needs no Diffie-Hellman');
    // The 7 points of order dividing 8 and non-canonical encodings (libsodium's list), with and without bit 255.
    const low = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ].map((h) => fromHex(h)!);
    const priv = generatePrivateKey(rng);
    const candidates = [...low, ...low.map((k) => Uint8Array.from(k, (b, i) => (i === 31 ? b | 0x80 : b)))];
    for (let i = 0; i < 200; i++) candidates.push(Uint8Array.from({ length: 32 }, () => rng.nextU32() & 255));
    // Near misses: each low-order point with one bit flipped.
    for (const k of low) candidates.push(Uint8Array.from(k, (b, i) => (i === 5 ? b ^ 1 : b)));
    for (const k of candidates) {
      const out = new Uint8Array(32);
      assert.equal(isLowOrderPoint(k), !crypto.x25519(out, priv, k), Buffer.from(k).toString('hex'));
      if (isLowOrderPoint(k)) assert.throws(() => d.addPeer({ publicKey: k }), { code: 'ERR_WGNET_INVALID_KEY' });
    }
  });
});
