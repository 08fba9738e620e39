/**
 * node:diagnostics_channel (issue 15): a subscriber to every wgnet:* channel sees a real
 * transfer over a tunnel pair (handshake, endpoint change, TCP open/close with 4-tuple, bytes,
 * duration and reason, drops by layer and reason) and a gateway's flows (opened, refused,
 * closed). The names are restated here, not imported: they are a contract (README).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { Tunnel, diagnosticsChannels } from '../../src/index.js';
import { keyPair, tunnelPair } from '../harness/tunnel-pair.js';
import { buildIPv4, buildTcp, PROTO } from '../harness/packets.js';
import { parseIp } from '../../src/util/ip.js';

const NAMES = ['wgnet:handshake', 'wgnet:handshake-failed', 'wgnet:endpoint-changed', 'wgnet:tcp:open', 'wgnet:tcp:close', 'wgnet:flow', 'wgnet:drop'] as const;
type Name = (typeof NAMES)[number];
type Msg = Record<string, any>;

/** Subscribes to every channel; `seen[name]` collects the messages. */
function subscribeAll(): { seen: Record<Name, Msg[]>; stop(): void } {
  const seen = Object.fromEntries(NAMES.map((n) => [n, [] as Msg[]])) as Record<Name, Msg[]>;
  const fns = NAMES.map((n) => [n, (m: unknown) => void seen[n].push(m as Msg)] as const);
  for (const [n, f] of fns) diagnostics.subscribe(n, f);
  return { seen, stop: () => fns.forEach(([n, f]) => diagnostics.unsubscribe(n, f)) };
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');

test('the channel names are exported as documented', () => {
  assert.deepEqual(Object.values(diagnosticsChannels).sort(), [...NAMES].sort());
});

describe('diagnostics_channel over a tunnel pair', () => {
  test('handshake, endpoint change, TCP open/close with 4-tuple, bytes, duration and reason, and drops', async () => {
    const p = await tunnelPair();
    const { a, b } = p;
    const sub = subscribeAll();
    try {
      // A believes B is somewhere else: B's handshake from its real port is a roam (whitepaper §2.1).
      await a.ipcSet(`public_key=${hex(b.publicKey)}\nendpoint=127.0.0.1:9\n`);
      const size = 200_000;
      const server = a.createServer((s) => {
        let n = 0;
        s.on('data', (d: Buffer) => (n += d.length));
        s.on('end', () => s.end(`got ${n}`));
      });
      server.listen(80);
      const c = b.connect(80, '10.66.0.1');
      await once(c, 'connect');
      c.end(Buffer.alloc(size, 7));
      let reply = '';
      for await (const d of c) reply += d;
      assert.equal(reply, `got ${size}`);
      await until('both tcp:close messages', () => sub.seen['wgnet:tcp:close'].length >= 2);

      const hs = sub.seen['wgnet:handshake'];
      assert.ok(hs.some((m) => m.tunnel === a && m.publicKey === b.publicKey), 'A saw the handshake with B');
      assert.ok(hs.some((m) => m.tunnel === b && m.publicKey === a.publicKey), 'B saw the handshake with A');
      const ep = sub.seen['wgnet:endpoint-changed'].find((m) => m.tunnel === a);
      assert.ok(ep, 'A saw B roam');
      assert.equal(ep.publicKey, b.publicKey);
      assert.deepEqual(ep.endpoint, { address: '127.0.0.1', port: b.listenPort });

      const opens = sub.seen['wgnet:tcp:open'];
      const out = opens.find((m) => m.tunnel === b);
      const inb = opens.find((m) => m.tunnel === a);
      assert.ok(out && inb, 'both ends published tcp:open');
      assert.equal(out.socket, c);
      assert.equal(out.direction, 'outbound');
      assert.equal(inb.direction, 'inbound');
      assert.deepEqual([out.localAddress, out.remoteAddress, out.remotePort], ['10.66.0.2', '10.66.0.1', 80]);
      assert.deepEqual([inb.localAddress, inb.localPort, inb.remoteAddress, inb.remotePort], ['10.66.0.1', 80, '10.66.0.2', out.localPort]);

      const closes = sub.seen['wgnet:tcp:close'];
      const cc = closes.find((m) => m.tunnel === b)!;
      const sc = closes.find((m) => m.tunnel === a)!;
      assert.equal(cc.established, true);
      assert.equal(cc.bytesWritten, size);
      assert.equal(cc.bytesRead, `got ${size}`.length);
      assert.equal(sc.bytesRead, size);
      assert.equal(cc.reason, 'end', 'FIN each way');
      assert.equal(sc.reason, 'end');
      assert.ok(cc.durationMs >= 0 && cc.durationMs < 10_000, `durationMs ${cc.durationMs}`);
      assert.equal(cc.remotePort, 80);

      // A refused connection: tcp:close without tcp:open, with the error as the reason.
      const refused = b.connect(81, '10.66.0.1');
      await assert.rejects(once(refused, 'connect'), { code: 'ECONNREFUSED' });
      await until('the refused close', () => sub.seen['wgnet:tcp:close'].some((m) => m.socket === refused));
      const rc = sub.seen['wgnet:tcp:close'].find((m) => m.socket === refused)!;
      assert.deepEqual([rc.established, rc.reason, rc.remotePort, rc.direction], [false, 'ECONNREFUSED', 81, 'outbound']);
      assert.ok(!sub.seen['wgnet:tcp:open'].some((m) => m.socket === refused));

      // Drops: a datagram that is not WireGuard (Device), and an inner packet for an address A does not have (netstack IP).
      const junk = dgram.createSocket('udp4');
      junk.send(Buffer.from('not wireguard'), a.listenPort, '127.0.0.1');
      await until('a wireguard drop', () => sub.seen['wgnet:drop'].some((m) => m.tunnel === a && m.layer === 'wireguard'));
      junk.close();
      assert.equal(sub.seen['wgnet:drop'].find((m) => m.layer === 'wireguard')!.reason, 'malformed');
      await b.ipcSet(`public_key=${hex(a.publicKey)}\nallowed_ip=10.66.0.99/32\n`);
      await b.ping('10.66.0.99', { timeout: 300 }).catch(() => {});
      await until('an ip drop', () => sub.seen['wgnet:drop'].some((m) => m.tunnel === a && m.layer === 'ip'));
      assert.equal(sub.seen['wgnet:drop'].find((m) => m.layer === 'ip')!.reason, 'notForUs');
      // A TCP segment with a wrong checksum, put straight into A's netstack (as if B had sent it).
      const src = parseIp('10.66.0.2')!;
      const dst = parseIp('10.66.0.1')!;
      a.engine.iface.handleInput(a.engine.now(), buildIPv4(src, dst, PROTO.TCP, buildTcp(src, dst, { srcPort: 4000, dstPort: 80, seq: 1, flags: ['SYN'], badChecksum: true })));
      const tcpDrop = sub.seen['wgnet:drop'].find((m) => m.layer === 'tcp');
      assert.ok(tcpDrop, JSON.stringify(sub.seen['wgnet:drop'].map((m) => [m.layer, m.reason])));
      assert.deepEqual([tcpDrop.tunnel, tcpDrop.reason], [a, 'checksum']);

      // A peer that gave up (90 s of retries) arrives as the tunnel's event; the channel follows it.
      a.emit('handshake-failed', { publicKey: b.publicKey });
      assert.deepEqual(sub.seen['wgnet:handshake-failed'], [{ tunnel: a, publicKey: b.publicKey }]);
      server.close();
    } finally {
      sub.stop();
      await p.close();
    }
  });

  test('without subscribers nothing is published: a transfer and a drop call no publish()', async () => {
    for (const n of NAMES) assert.equal(diagnostics.channel(n).hasSubscribers, false, n);
    const calls: string[] = [];
    // An own publish() over the prototype's; deleted after, so the channel's own switch between
    // its inactive and active prototypes (Node swaps them on subscribe) keeps working.
    const saved = NAMES.map((n) => {
      const ch = diagnostics.channel(n) as diagnostics.Channel & { publish: (m: unknown) => void };
      ch.publish = () => void calls.push(n);
      return () => void delete (ch as Partial<typeof ch>).publish;
    });
    const p = await tunnelPair();
    try {
      const server = p.a.createServer((s) => s.pipe(s));
      server.listen(80);
      const c = p.b.connect(80, '10.66.0.1');
      c.end('x'.repeat(10_000));
      let n = 0;
      for await (const d of c) n += (d as Buffer).length;
      assert.equal(n, 10_000);
      const junk = dgram.createSocket('udp4');
      junk.send(Buffer.from('not wireguard'), p.a.listenPort, '127.0.0.1');
      await until('the drop counted', () => p.a.device.stats.dropped.malformed > 0);
      junk.close();
      server.close();
    } finally {
      saved.forEach((restore) => restore());
      await p.close();
    }
    assert.deepEqual(calls, []);
  });
});

describe('diagnostics_channel: gateway flows', () => {
  test('a relayed TCP flow (opened, closed with bytes), a refused one, and a UDP flow closed with the tunnel', async () => {
    const ka = keyPair();
    const kb = keyPair();
    const b = await Tunnel.create(`[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.88.0.2/24\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.88.0.1/32\n`);
    const a = await Tunnel.create(`[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.88.0.1/24\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.88.0.0/24, 127.0.0.0/8\nEndpoint = 127.0.0.1:${b.listenPort}\n`);
    const host = net.createServer((s) => s.pipe(s));
    host.listen(0, '127.0.0.1');
    await once(host, 'listening');
    const port = (host.address() as net.AddressInfo).port;
    const echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    echo.bind(0, '127.0.0.1');
    await once(echo, 'listening');
    b.onFlow((f) => (f.destination.port === 13 ? 'reject' : 'relay'), { allow: ['127.0.0.0/8'] });
    const sub = subscribeAll();
    let closed = false;
    try {
      const s = a.connect(port, '127.0.0.1');
      await once(s, 'connect');
      s.end('hello gateway');
      let back = '';
      for await (const d of s) back += d;
      assert.equal(back, 'hello gateway');
      await until('the flow closed', () => sub.seen['wgnet:flow'].some((m) => m.event === 'closed' && m.protocol === 'tcp'));
      const flows = sub.seen['wgnet:flow'];
      const opened = flows.find((m) => m.event === 'opened' && m.protocol === 'tcp')!;
      assert.equal(opened.tunnel, b);
      assert.equal(opened.decision, 'relay');
      assert.equal(opened.peer, a.publicKey);
      assert.deepEqual(opened.destination, { address: '127.0.0.1', port });
      assert.deepEqual(opened.to, { address: '127.0.0.1', port });
      assert.equal(opened.source.address, '10.88.0.1');
      const fc = flows.find((m) => m.event === 'closed' && m.protocol === 'tcp')!;
      assert.deepEqual([fc.bytesUp, fc.bytesDown], [13, 13]);
      // The gateway's in-tunnel end of the flow is a TCP connection too.
      assert.ok(sub.seen['wgnet:tcp:open'].some((m) => m.tunnel === b && m.direction === 'inbound' && m.localPort === port));

      const r = a.connect(13, '127.0.0.1');
      await assert.rejects(once(r, 'connect'));
      const ref = flows.find((m) => m.event === 'refused');
      assert.ok(ref, 'refused flow published');
      assert.deepEqual([ref.protocol, ref.reason, ref.destination.port], ['tcp', 'refused.handler', 13]);

      const u = a.createSocket('udp4');
      u.send('ping', echo.address().port, '127.0.0.1');
      await once(u, 'message');
      u.close();
      assert.ok(flows.some((m) => m.event === 'opened' && m.protocol === 'udp' && m.decision === 'relay'));
      await b.close();
      closed = true;
      assert.ok(flows.some((m) => m.event === 'closed' && m.protocol === 'udp' && m.destination.port === echo.address().port), 'UDP flow closed with the gateway');
    } finally {
      sub.stop();
      host.close();
      echo.close();
      await a.close();
      if (!closed) await b.close();
    }
  });
});
