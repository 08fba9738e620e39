/**
 * The proxy listeners against hostile or broken local clients (issue 18):
 * a bad request gets a protocol answer (HTTP 400, SOCKS5 reply 0x01), never an
 * exception out of a handler (which would end `wgnet proxy`); failed CONNECTs
 * leave no socket open on the proxy's side.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { SocksClient } from 'socks';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { createSocks5Server } from '../../src/cli/socks5.js';
import { createHttpProxyServer } from '../../src/cli/http-proxy.js';
import { tunnelDialer, type Dialer } from '../../src/cli/dialer.js';

/** Connects, writes each chunk, collects everything until the proxy closes (or `ms` passes). */
async function talk(port: number, chunks: (string | number[])[], ms = 2000): Promise<Buffer> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  let got = Buffer.alloc(0);
  s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  s.on('error', () => {});
  for (const c of chunks) s.write(typeof c === 'string' ? c : Buffer.from(c));
  await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, ms))]);
  s.destroy();
  return got;
}

const port = (s: net.Server): number => (s.address() as net.AddressInfo).port;

describe('proxy listeners: bad requests get protocol answers', () => {
  let p: TunnelPair;
  let socks: ReturnType<typeof createSocks5Server>;
  let httpProxy: ReturnType<typeof createHttpProxyServer>;
  let web: ReturnType<TunnelPair['b']['createServer']>;
  before(async () => {
    p = await tunnelPair();
    web = p.b.createServer((sock) => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
    web.listen(80);
    socks = createSocks5Server({ dialer: tunnelDialer(p.a, 3000) });
    httpProxy = createHttpProxyServer({ dialer: tunnelDialer(p.a, 3000) });
    await Promise.all([socks, httpProxy].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
    await p.a.ping('10.66.0.2');
  });
  after(async () => {
    socks.close();
    httpProxy.close();
    web.close();
    await p.close();
  });

  test('HTTP CONNECT to port 0, 99999, 65536 or an empty host: 400, and the proxy keeps serving', async () => {
    for (const target of ['10.66.0.2:0', '10.66.0.2:99999', '10.66.0.2:65536', 'example.com:00000', '[]:80', ':80', '10.66.0.2:-1']) {
      const r = await talk(port(httpProxy), [`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`]);
      assert.match(r.toString().split('\r\n')[0]!, /^HTTP\/1\.1 400 /, `CONNECT ${target}`);
    }
    // An absolute-form request to port 0 is a bad request too (it used to go to port 80).
    const r = await talk(port(httpProxy), ['GET http://10.66.0.2:0/ HTTP/1.1\r\nHost: 10.66.0.2:0\r\n\r\n']);
    assert.match(r.toString().split('\r\n')[0]!, /^HTTP\/1\.1 400 /);
    const ok = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: port(httpProxy), path: 'http://10.66.0.2/' }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve(t));
      }).on('error', reject);
    });
    assert.equal(ok, 'ok');
  });

  test('SOCKS5 CONNECT to port 0 or an empty name: reply 0x01, and the proxy keeps serving', async () => {
    const ipv4Port0 = await talk(port(socks), [[5, 1, 0], [5, 1, 0, 1, 10, 66, 0, 2, 0, 0]]);
    assert.deepEqual([...ipv4Port0.subarray(0, 4)], [5, 0, 5, 1], 'IPv4, port 0');
    const name0 = await talk(port(socks), [[5, 1, 0], [5, 1, 0, 3, 4, ...Buffer.from('host'), 0, 0]]);
    assert.deepEqual([...name0.subarray(0, 4)], [5, 0, 5, 1], 'name, port 0');
    const emptyName = await talk(port(socks), [[5, 1, 0], [5, 1, 0, 3, 0, 0, 80]]);
    assert.deepEqual([...emptyName.subarray(0, 4)], [5, 0, 5, 1], 'empty name');
    const { socket } = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: port(socks), type: 5 }, command: 'connect', destination: { host: '10.66.0.2', port: 80 } });
    socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    let text = '';
    for await (const d of socket) text += d;
    assert.match(text, /\r\n\r\nok$/);
  });
});

/** Open connections a net.Server still holds. */
function openConnections(s: net.Server): Promise<number> {
  return new Promise((resolve, reject) => s.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

async function settlesAtZero(s: net.Server, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let n = await openConnections(s);
  while (n > 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    n = await openConnections(s);
  }
  return n;
}

describe('proxy listeners: failed CONNECTs leave nothing open', () => {
  let p: TunnelPair;
  let socks: ReturnType<typeof createSocks5Server>;
  let httpProxy: ReturnType<typeof createHttpProxyServer>;
  before(async () => {
    p = await tunnelPair();
    // The tunnel answers a closed port within a millisecond; 50 ms more makes sure the
    // client's early bytes arrive before the answer every time, not only sometimes.
    const real = tunnelDialer(p.a, 3000);
    const slow: Dialer = { connect: (host, port) => new Promise((r) => setTimeout(r, 50)).then(() => real.connect(host, port)) };
    socks = createSocks5Server({ dialer: slow });
    httpProxy = createHttpProxyServer({ dialer: slow });
    await Promise.all([socks, httpProxy].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
    await p.a.ping('10.66.0.2');
  });
  after(async () => {
    socks.close();
    httpProxy.close();
    await p.close();
  });

  /** A client that sends its request and, before the answer, a few bytes of what it means to send next; reads the answer, then closes. */
  async function eager(port: number, request: Buffer[], early: string, want: number, close: 'destroy' | 'end'): Promise<Buffer> {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    for (const r of request) s.write(r);
    await new Promise((r) => setTimeout(r, 10));
    s.write(early);
    let got = Buffer.alloc(0);
    while (got.length < want) got = Buffer.concat([got, ((await once(s, 'data')) as [Buffer])[0]]);
    if (close === 'end') s.end();
    else s.destroy();
    return got;
  }
  const both = <T>(f: (close: 'destroy' | 'end') => Promise<T>): Promise<T>[] => Array.from({ length: N }, (_, i) => f(i % 2 ? 'end' : 'destroy'));

  const N = 80; // half close with end(), half with destroy()
  test(`${N} SOCKS5 CONNECTs to a closed port, each with early bytes: all answered 0x05, the proxy holds 0 connections afterwards`, async () => {
    const req = Buffer.from([5, 1, 0, 5, 1, 0, 1, 10, 66, 0, 2, 0, 81]); // greeting and request in one write, as curl does
    const replies = await Promise.all(both((close) => eager(port(socks), [req], 'GET / HTTP/1.1\r\n\r\n', 12, close)));
    for (const r of replies) assert.deepEqual([...r.subarray(0, 4)], [5, 0, 5, 5], `reply ${r.toString('hex')}`);
    assert.equal(await settlesAtZero(socks, 3000), 0, 'SOCKS5 client connections still open');
  });

  test(`${N} HTTP CONNECTs to a closed port, each with early bytes: all answered 502, the proxy holds 0 connections afterwards`, async () => {
    const replies = await Promise.all(both((close) => eager(port(httpProxy), [Buffer.from('CONNECT 10.66.0.2:81 HTTP/1.1\r\nHost: 10.66.0.2:81\r\n\r\n')], '\x16\x03\x01\x00\x05hello', 12, close)));
    for (const r of replies) assert.match(r.toString(), /^HTTP\/1\.1 502 /);
    assert.equal(await settlesAtZero(httpProxy, 3000), 0, 'HTTP client connections still open');
  });
});
