/**
 * `wgnet forward --udp` flows, in process: -L (a local UDP port carried through
 * the tunnel) and -R (a tunnel UDP port carried to a local service), with the
 * idle timeout, and -R's flows shared per WireGuard peer.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { keyPair, tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { Tunnel } from '../../src/index.js';
import { parseIp } from '../../src/util/ip.js';
import { forwardUdp, type UdpForwardCounters } from '../../src/cli/udp-forward.js';
import { tunnelDialer } from '../../src/cli/dialer.js';

function ask(sock: { send(m: Buffer, port: number, host: string): void; once(ev: 'message', f: (m: Buffer) => void): unknown }, port: number, host: string, text: string, ms = 2000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    sock.once('message', (m: Buffer) => {
      clearTimeout(t);
      resolve(m.toString());
    });
    sock.send(Buffer.from(text), port, host);
  });
}

const zero = (): UdpForwardCounters => ({ flows: 0, up: 0, down: 0, expired: 0, limited: 0 });

/** Resolves once `f` holds, polling (the datagrams cross real loopback sockets). */
async function waitUntil(f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('forward --udp', () => {
  let p: TunnelPair;
  before(async () => {
    p = await tunnelPair();
    const echo = p.b.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('b:'), m]), r.port, r.address));
    echo.bind(7);
    await p.a.ping('10.66.0.2');
  });
  after(async () => {
    await p.close();
  });

  test('-L: two local clients get their own flows through the tunnel; idle flows expire', async () => {
    const listener = dgram.createSocket('udp4');
    await new Promise<void>((r) => listener.bind(0, '127.0.0.1', () => r()));
    const counters = zero();
    const fwd = forwardUdp({ listener, outbound: () => tunnelDialer(p.a).udp!(4), host: '10.66.0.2', port: 7, idleMs: 300, counters });
    const lp = listener.address().port;
    const c1 = dgram.createSocket('udp4');
    const c2 = dgram.createSocket('udp4');
    assert.equal(await ask(c1, lp, '127.0.0.1', 'one'), 'b:one');
    assert.equal(await ask(c2, lp, '127.0.0.1', 'two'), 'b:two');
    assert.equal(await ask(c1, lp, '127.0.0.1', 'three'), 'b:three');
    assert.equal(counters.flows, 2);
    assert.equal(fwd.active, 2);
    assert.deepEqual([counters.up, counters.down], [3, 3]);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(fwd.active, 0, 'idle flows were not expired');
    assert.equal(counters.expired, 2);
    // A new datagram after expiry opens a new flow.
    assert.equal(await ask(c1, lp, '127.0.0.1', 'again'), 'b:again');
    assert.equal(counters.flows, 3);
    fwd.close();
    c1.close();
    c2.close();
  });

  test('-R: a UDP port on the tunnel address is carried to a local service', async () => {
    const local = dgram.createSocket('udp4');
    local.on('message', (m, r) => local.send(Buffer.concat([Buffer.from('local:'), m]), r.port, r.address));
    await new Promise<void>((r) => local.bind(0, '127.0.0.1', () => r()));
    const listener = p.b.createSocket('udp4');
    listener.bind(5353);
    const counters = zero();
    const fwd = forwardUdp({ listener, outbound: () => dgram.createSocket('udp4'), host: '127.0.0.1', port: local.address().port, idleMs: 60_000, counters });
    const client = p.a.createSocket('udp4');
    assert.equal(await ask(client, 5353, '10.66.0.2', 'ping'), 'local:ping');
    assert.equal(await ask(client, 5353, '10.66.0.2', 'pong'), 'local:pong');
    assert.deepEqual([counters.flows, counters.up, counters.down], [1, 2, 2]);
    fwd.close();
    client.close();
    local.close();
  });
});

describe('forward --udp -R: flows per peer', () => {
  test('one peer opening flows from many source ports stops at its share, counted; another peer still gets a flow', async () => {
    // S serves the forward on its tunnel address; X and Y are two peers of it.
    const [ks, kx, ky] = [keyPair(), keyPair(), keyPair()];
    const srv = await Tunnel.create(
      `[Interface]\nPrivateKey = ${ks.privateKey}\nAddress = 10.67.0.1/24\n` +
        `[Peer]\nPublicKey = ${kx.publicKey}\nAllowedIPs = 10.67.0.2/32\n` +
        `[Peer]\nPublicKey = ${ky.publicKey}\nAllowedIPs = 10.67.0.3/32\n`,
    );
    const client = (k: { privateKey: string }, addr: string): Promise<Tunnel> =>
      Tunnel.create(`[Interface]\nPrivateKey = ${k.privateKey}\nAddress = ${addr}/24\n[Peer]\nPublicKey = ${ks.publicKey}\nAllowedIPs = 10.67.0.1/32\nEndpoint = 127.0.0.1:${srv.listenPort}\n`);
    const x = await client(kx, '10.67.0.2');
    const y = await client(ky, '10.67.0.3');
    const local = dgram.createSocket('udp4');
    local.on('message', (m, r) => local.send(Buffer.concat([Buffer.from('local:'), m]), r.port, r.address));
    await new Promise<void>((r) => local.bind(0, '127.0.0.1', () => r()));
    const listener = srv.createSocket('udp4');
    listener.bind(5353);
    const counters = zero();
    const limits: Record<string, unknown>[] = [];
    // The peer a datagram's inner source belongs to, as cryptokey routing names it (whitepaper §2).
    const peerOf = (address: string): unknown => {
      const a = parseIp(address);
      return a && srv.device.allowedIps.lookup(a.length === 4 ? 4 : 6, a);
    };
    const fwd = forwardUdp({ listener, outbound: () => dgram.createSocket('udp4'), host: '127.0.0.1', port: local.address().port, idleMs: 60_000, counters, maxFlows: 100, maxFlowsPerPeer: 3, peerOf, onLimit: (f) => limits.push(f) });
    const socks: ReturnType<Tunnel['createSocket']>[] = [];
    try {
      await x.ping('10.67.0.1');
      await y.ping('10.67.0.1');
      // X: ten sockets, ten source ports, ten would-be flows.
      const replies: Promise<string | undefined>[] = [];
      for (let i = 0; i < 10; i++) {
        const s = x.createSocket('udp4');
        socks.push(s);
        replies.push(ask(s, 5353, '10.67.0.1', `x${i}`, 1500));
      }
      await waitUntil(() => counters.limitedPerPeer === 7);
      const got = await Promise.all(replies);
      assert.equal(got.filter((r) => r !== undefined).length, 3, `answers: ${got}`);
      assert.equal(fwd.active, 3);
      assert.equal(fwd.flowsOf('10.67.0.2'), 3);
      assert.equal(counters.limited, 0, 'the forward as a whole had room');
      assert.deepEqual(limits[0], { maxPerPeer: 3, client: limits[0]!.client });
      // An open flow of X still carries datagrams.
      const first = got.findIndex((r) => r !== undefined);
      assert.equal(await ask(socks[first]!, 5353, '10.67.0.1', 'again'), 'local:again');
      // Y is another peer: its flow opens and is answered.
      const ys = y.createSocket('udp4');
      socks.push(ys);
      assert.equal(await ask(ys, 5353, '10.67.0.1', 'from y'), 'local:from y');
      assert.equal(fwd.flowsOf('10.67.0.3'), 1);
      assert.equal(counters.limitedPerPeer, 7);
      assert.equal(counters.flows, 4);
    } finally {
      for (const s of socks) s.close();
      fwd.close();
      local.close();
      await x.close();
      await y.close();
      await srv.close();
    }
  });

  test('without peerOf (-L: local programs) there is no per-peer cap, only maxFlows', async () => {
    const listener = dgram.createSocket('udp4');
    await new Promise<void>((r) => listener.bind(0, '127.0.0.1', () => r()));
    const sink = dgram.createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    const counters = zero();
    const fwd = forwardUdp({ listener, outbound: () => dgram.createSocket('udp4'), host: '127.0.0.1', port: sink.address().port, idleMs: 60_000, counters, maxFlows: 6, maxFlowsPerPeer: 2 });
    const lp = listener.address().port;
    const clients = Array.from({ length: 8 }, () => dgram.createSocket('udp4'));
    try {
      for (const c of clients) c.send('x', lp, '127.0.0.1');
      await waitUntil(() => counters.flows + counters.limited === 8);
      assert.equal(counters.flows, 6, 'every 127.0.0.1 client is its own flow, up to maxFlows');
      assert.equal(counters.limited, 2);
      assert.equal(counters.limitedPerPeer, 0);
      assert.equal(fwd.flowsOf('127.0.0.1'), 0);
    } finally {
      for (const c of clients) c.close();
      fwd.close();
      sink.close();
    }
  });
});
