/**
 * The HTTP proxy's failure answers (RFC 9110 §15.6.3 / §15.6.5): 504 when the
 * tunnel cannot reach the host in time, 502 when the connection is refused,
 * 407 without credentials.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { Tunnel } from '../../src/index.js';
import { keyPair, tunnelPair } from '../harness/tunnel-pair.js';
import { createHttpProxyServer } from '../../src/cli/http-proxy.js';
import { tunnelDialer } from '../../src/cli/dialer.js';

async function rawConnect(port: number, target: string, auth?: string): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}\r\n`);
  const [d] = (await once(s, 'data')) as [Buffer];
  s.destroy();
  return d.toString().split('\r\n')[0]!;
}

function get(port: number, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: url, headers: { 'proxy-authorization': 'Basic ' + Buffer.from('u:p').toString('base64') } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    }).on('error', reject);
  });
}

test('HTTP proxy: 504 when the peer never answers, 502 when refused, 407 without credentials', async () => {
  // A tunnel whose only peer's endpoint is a UDP port nobody listens on: nothing ever answers.
  const me = keyPair();
  const ghost = keyPair();
  const dead = await Tunnel.create(`[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.99.0.1/24\n\n[Peer]\nPublicKey = ${ghost.publicKey}\nAllowedIPs = 10.99.0.0/24\nEndpoint = 127.0.0.1:9\n`);
  const p = await tunnelPair();
  const auth = { username: 'u', password: 'p' };
  const slow = createHttpProxyServer({ dialer: tunnelDialer(dead, 400), auth });
  const live = createHttpProxyServer({ dialer: tunnelDialer(p.a, 5000), auth });
  await Promise.all([slow, live].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
  const port = (s: http.Server): number => (s.address() as net.AddressInfo).port;
  const basic = 'Basic ' + Buffer.from('u:p').toString('base64');
  try {
    assert.match(await rawConnect(port(slow), '10.99.0.2:80', basic), /^HTTP\/1\.1 504 /);
    assert.equal(await get(port(slow), 'http://10.99.0.2/x'), 504);
    assert.match(await rawConnect(port(live), '10.66.0.2:81', basic), /^HTTP\/1\.1 502 /);
    assert.equal(await get(port(live), 'http://10.66.0.2:81/'), 502);
    assert.match(await rawConnect(port(live), '10.66.0.2:81'), /^HTTP\/1\.1 407 /);
  } finally {
    slow.close();
    live.close();
    await dead.close();
    await p.close();
  }
});

test('HTTP proxy: each request logged once with method, target, outcome, status and bytes (the SOCKS5 shape); a failed lookup is a DNS failure', async () => {
  // A's DNS server is B, which has nothing on port 53 (ICMP port unreachable: the resolver's ECONNREFUSED).
  const p = await tunnelPair({ extraA: 'DNS = 10.66.0.2\n' });
  type Line = { level: string; msg: string; fields: Record<string, unknown> };
  const lines: Line[] = [];
  const proxy = createHttpProxyServer({ dialer: tunnelDialer(p.a, 5000), log: (level, msg, fields) => void lines.push({ level, msg, fields: fields ?? {} }) });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  const port = (proxy.address() as net.AddressInfo).port;
  const web = p.b.createServer((sock) => {
    sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello'));
  });
  web.listen(80);
  const lineFor = async (pred: (l: Line) => boolean): Promise<Line> => {
    const until = Date.now() + 5000;
    for (;;) {
      const l = lines.find(pred);
      if (l) return l;
      if (Date.now() > until) throw new Error(`no such line in ${JSON.stringify(lines)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    // An absolute-URI GET.
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: 'http://10.66.0.2/path?token=secret', agent: false }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.equal(body, 'hello');
    const get = await lineFor((l) => l.fields.method === 'GET');
    assert.equal(get.level, 'debug');
    assert.equal(get.msg, 'http proxy request');
    assert.deepEqual(Object.keys(get.fields), ['client', 'method', 'target', 'outcome', 'status', 'up', 'down', 'ms']);
    assert.deepEqual([get.fields.target, get.fields.outcome, get.fields.status, get.fields.up, get.fields.down], ['10.66.0.2:80', 'ok', 200, 0, 5]);
    assert.ok(!JSON.stringify(get).includes('secret'), 'no query string in the log');

    // CONNECT, bytes both ways, logged when the tunnel closes.
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    s.write('CONNECT 10.66.0.2:80 HTTP/1.1\r\nHost: 10.66.0.2:80\r\n\r\n');
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d;
      if (got.endsWith('\r\n\r\n') && got.startsWith('HTTP/1.1 200') && !got.includes('hello')) s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    });
    await once(s, 'end');
    s.destroy();
    const conn = await lineFor((l) => l.fields.method === 'CONNECT' && l.fields.target === '10.66.0.2:80');
    assert.deepEqual([conn.level, conn.fields.outcome, conn.fields.status, conn.fields.up], ['debug', 'ok', 200, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n'.length]);
    assert.equal(conn.fields.down, 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello'.length);

    // A name that does not resolve: 502 saying so, logged as a DNS failure, not ECONNREFUSED.
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: 'http://nowhere.example/', agent: false }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: b }));
      }).on('error', reject);
    });
    assert.equal(r.status, 502);
    assert.equal(r.body, 'bad gateway: dns EAI_AGAIN\n');
    const dns = await lineFor((l) => l.fields.target === 'nowhere.example:80');
    assert.deepEqual([dns.level, dns.fields.method, dns.fields.outcome, dns.fields.error, dns.fields.status], ['info', 'GET', 'dns-failed', 'EAI_AGAIN', 502]);
    assert.match(await rawConnect(port, 'nowhere.example:443'), /^HTTP\/1\.1 502 /);
    const dnsConnect = await lineFor((l) => l.fields.target === 'nowhere.example:443');
    assert.deepEqual([dnsConnect.fields.method, dnsConnect.fields.outcome, dnsConnect.fields.error], ['CONNECT', 'dns-failed', 'EAI_AGAIN']);
    assert.ok(!JSON.stringify(lines).includes('ECONNREFUSED'), JSON.stringify(lines));
    assert.equal(lines.filter((l) => l.fields.method === 'GET' && l.fields.target === '10.66.0.2:80').length, 1, 'one line per request');
  } finally {
    web.close();
    proxy.close();
    await p.close();
  }
});
