/**
 * net.Socket / dgram.Socket / net.Server parity where client libraries notice it
 * (issue 13): pg calls connect() on the stream it is handed, ws passes ports as
 * strings, and libraries read destroySoon, bufferSize, readyState, pending and friends.
 * Two wgnet tunnels in one process over loopback UDP.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type net from 'node:net';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import type { TcpSocket } from '../../src/index.js';

describe('socket parity with net.Socket and dgram.Socket', () => {
  let p: TunnelPair;
  before(async () => {
    p = await tunnelPair();
    const echo = p.b.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen('7100', () => r()));
  });
  after(async () => {
    await p.close();
  });

  test("string ports: connect('7100', host), connect({ port: '7100' }), createConnection as ws calls it", async () => {
    const socks = [
      p.a.connect('7100', '10.66.0.2'),
      p.a.connect({ port: '7100', host: 'fd66::2' }),
      p.a.createConnection({ port: '7100', host: '10.66.0.2' }),
      p.a.createConnection('7100', '10.66.0.2'),
    ];
    await Promise.all(socks.map((c) => once(c, 'connect')));
    for (const c of socks) {
      assert.equal(c.remotePort, 7100);
      c.destroy();
    }
    assert.throws(() => p.a.connect('http', '10.66.0.2'), { code: 'ERR_WGNET_INVALID_ARGUMENT', message: /port must be 1-65535, got http/ });
    assert.throws(() => p.a.connect('0', '10.66.0.2'), { code: 'ERR_WGNET_INVALID_ARGUMENT' });
    assert.throws(() => p.a.createConnection({ path: '/tmp/x.sock' }), { code: 'ERR_WGNET_INVALID_ARGUMENT', message: /no Unix sockets/ });
  });

  test('connect() on the socket it was handed (as pg does) while connecting and after it connected', async () => {
    // pg: new Client({ stream }) then stream.connect(port, host) with its own defaults (localhost:5432)
    const c = p.a.connect(7100, '10.66.0.2');
    assert.equal(c.connecting, true);
    assert.equal(c.pending, true);
    assert.equal(c.readyState, 'opening');
    let fired = 0;
    assert.equal(c.connect(5432, 'localhost', () => fired++), c);
    await once(c, 'connect');
    assert.equal(fired, 1);
    assert.equal(c.remoteAddress, '10.66.0.2'); // the tunnel's destination, not pg's default
    // Already connected: 'connect' comes again after connect() returns, where pg listens for it.
    const again = once(c.connect({ port: 7100, host: '10.66.0.2' }), 'connect');
    await again;
    c.end('x');
    let got = '';
    for await (const d of c) got += d;
    assert.equal(got, 'x');
  });

  test('properties and chaining: readyState, pending, bytes, address(), remoteFamily, bufferSize, attempted addresses', async () => {
    const c: TcpSocket = p.a.connect(7100, 'fd66::2');
    assert.equal(c.setTimeout(60_000).setNoDelay(true).setKeepAlive(true, 30_000), c);
    await once(c, 'connect');
    assert.equal(c.pending, false);
    assert.equal(c.connecting, false);
    assert.equal(c.readyState, 'open');
    assert.equal(c.remoteFamily, 'IPv6');
    assert.deepEqual(c.autoSelectFamilyAttemptedAddresses, ['fd66::2:7100']);
    const a = c.address() as net.AddressInfo;
    assert.equal(a.address, 'fd66::1');
    assert.equal(a.family, 'IPv6');
    assert.equal(a.port, c.localPort);
    assert.equal(typeof c.bufferSize, 'number');
    c.write('hello');
    await once(c, 'data');
    assert.equal(c.bytesWritten, 5);
    assert.equal(c.bytesRead, 5);
    c.end();
    assert.equal(c.readyState, 'readOnly');
    await once(c, 'close');
    assert.equal(c.readyState, 'closed');
    assert.equal(c.setTimeout(0), c);
  });

  test('destroySoon() flushes what is written, then destroys', async () => {
    let got = '';
    const done = new Promise<string>((resolve) => {
      const srv = p.b.createServer((s) => {
        s.on('data', (d: Buffer) => (got += d));
        s.on('end', () => {
          resolve(got);
          srv.close();
        });
      });
      srv.listen(7102);
    });
    const c = p.a.connect(7102, '10.66.0.2');
    c.write('a'.repeat(100_000));
    c.destroySoon();
    await once(c, 'close');
    assert.equal((await done).length, 100_000);
  });

  test('signal: an aborted connect destroys the socket with an AbortError', async () => {
    const ac = new AbortController();
    const c = p.a.connect({ port: 7100, host: '10.66.0.2', signal: ac.signal });
    ac.abort();
    const [err] = (await once(c, 'error').catch((e: unknown) => [e])) as [Error & { code?: string }];
    assert.equal(err.name, 'AbortError');
    assert.equal(err.code, 'ABORT_ERR');
    const pre = p.a.connect({ port: 7100, host: '10.66.0.2', signal: AbortSignal.abort() });
    const [err2] = (await once(pre, 'error').catch((e: unknown) => [e])) as [Error];
    assert.equal(err2.name, 'AbortError');
  });

  test("net.Server listen overloads: listen('0'), listen({ port: '7103' }), listen(cb)", async () => {
    for (const args of [['0'], [{ port: '7103' }], []] as const) {
      const s = p.b.createServer();
      await new Promise<void>((r) => (s.listen as (...a: unknown[]) => void)(...args, () => r()));
      assert.ok(s.address()!.port > 0);
      s.close();
    }
    assert.throws(() => p.b.createServer().listen('http' as never), { code: 'ERR_WGNET_INVALID_ARGUMENT' });
  });

  test('UDP: string ports in bind, send and connect; rinfo as dgram.RemoteInfo', async () => {
    const srv = p.b.createSocket('udp4');
    await new Promise<void>((r) => srv.bind('7104', () => r()));
    srv.on('message', (m, rinfo) => srv.send(m, String(rinfo.port), rinfo.address));
    const c = p.a.createSocket('udp4');
    const got = once(c, 'message');
    c.send('ping', '7104', '10.66.0.2');
    const [msg, rinfo] = (await got) as [Buffer, { address: string; port: number; family: string; size: number }];
    assert.equal(String(msg), 'ping');
    assert.deepEqual(rinfo, { address: '10.66.0.2', family: 'IPv4', port: 7104, size: 4 });
    const cc = p.a.createSocket('udp4');
    cc.connect('7104', '10.66.0.2');
    await once(cc, 'connect');
    assert.deepEqual(cc.remoteAddress(), { address: '10.66.0.2', family: 'IPv4', port: 7104 });
    c.close();
    cc.close();
    srv.close();
  });

  test("UDP: the rest of dgram.Socket: TTL, buffer sizes, send queue, multicast refused, any ArrayBufferView sent, asyncDispose", async () => {
    const srv = p.b.createSocket('udp4');
    await new Promise<void>((r) => srv.bind(7105, () => r()));
    const c = p.a.createSocket('udp4');
    assert.equal(c.setTTL(32), 32);
    assert.throws(() => c.setTTL(0), { code: 'ERR_WGNET_INVALID_ARGUMENT' });
    c.setRecvBufferSize(1 << 20);
    assert.equal(c.getRecvBufferSize(), 1 << 20);
    assert.equal(typeof c.getSendBufferSize(), 'number');
    assert.equal(c.getSendQueueSize(), 0);
    assert.equal(c.getSendQueueCount(), 0);
    c.setBroadcast(true);
    assert.throws(() => c.addMembership('239.1.2.3'), { code: 'ERR_WGNET_UNSUPPORTED', message: /multicast/ });
    const got = once(srv, 'message');
    const dv = new DataView(new ArrayBuffer(4));
    dv.setUint32(0, 0x01020304);
    const sent = new Promise<number>((r) => c.send(dv, 7105, '10.66.0.2', (_e, n) => r(n)));
    assert.equal(await sent, 4);
    const [msg] = (await got) as [Buffer];
    assert.deepEqual([...msg], [1, 2, 3, 4]);
    await c[Symbol.asyncDispose]();
    assert.throws(() => c.address());
    srv.close();
  });

  test('lookupFunction answers in both dns.lookup shapes', async () => {
    const one = await new Promise<unknown[]>((r) => p.a.lookupFunction('10.66.0.2', {}, (...a) => r(a)));
    assert.deepEqual(one, [null, '10.66.0.2', 4]);
    const all = await new Promise<unknown[]>((r) => p.a.lookupFunction('fd66::2', { all: true }, (...a) => r(a)));
    assert.deepEqual(all, [null, [{ address: 'fd66::2', family: 6 }]]);
  });
});
