/**
 * The node:http-based fetch (src/api/http-fetch.ts), which tunnel.fetch uses where
 * undici ignores dispatchers (Bun), run here on Node so its logic is tested in the
 * normal suite: a server on tunnel B, the client on tunnel A, over loopback UDP.
 * The server reports the address it saw, which must be A's tunnel address.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { TunnelHttpClient, undiciHonoursDispatcher, fetchPath } from '../../src/api/http-fetch.js';
import type { TcpServer } from '../../src/index.js';

const BIG = randomBytes(3 * 1024 * 1024 + 17);
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');

/** What the server saw of each request. */
interface Seen {
  method: string;
  url: string;
  remote: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

describe('http-fetch: fetch on node:http over tunnel connections', () => {
  let p: TunnelPair;
  let client: TunnelHttpClient;
  let ln: TcpServer;
  let lns: TcpServer;
  const seen: Seen[] = [];
  let cert = '';
  let tlsRemote = '';

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      // A TLS socket over a tunnel socket does not know the address: the listener noted it.
      const remote = req.socket.remoteAddress ?? tlsRemote;
      const s: Seen = { method: req.method!, url: req.url!, remote, headers: req.headers, body };
      seen.push(s);
      const u = new URL(req.url!, 'http://x');
      const hop = Number(u.searchParams.get('hop') ?? 0);
      switch (u.pathname) {
        case '/big':
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-remote': s.remote });
          return void res.end(BIG);
        case '/echo':
          res.writeHead(200, { 'x-remote': s.remote, 'set-cookie': ['a=1', 'b=2'] });
          return void res.end(JSON.stringify({ method: s.method, body: body.toString(), ct: req.headers['content-type'] ?? null, len: req.headers['content-length'] ?? null, te: req.headers['transfer-encoding'] ?? null }));
        case '/redirect': // ?code=N&hops=K: K redirects, then /echo
          if (hop < Number(u.searchParams.get('hops') ?? 1)) {
            res.writeHead(Number(u.searchParams.get('code') ?? 302), { location: `/redirect?code=${u.searchParams.get('code')}&hops=${u.searchParams.get('hops')}&hop=${hop + 1}` });
            return void res.end('moved');
          }
          res.writeHead(307, { location: 'echo' }); // relative to the current URL
          return void res.end();
        case '/loop':
          res.writeHead(301, { location: '/loop' });
          return void res.end();
        case '/gzip':
          res.writeHead(200, { 'content-encoding': 'gzip' });
          return void res.end(zlib.gzipSync(BIG));
        case '/br':
          res.writeHead(200, { 'content-encoding': 'br' });
          return void res.end(zlib.brotliCompressSync(Buffer.from('brotli over wireguard')));
        case '/empty':
          res.writeHead(204);
          return void res.end();
        case '/slow': // headers, some body, then nothing
          res.writeHead(200);
          return void res.write(Buffer.alloc(1000, 1));
        default:
          res.writeHead(404);
          res.end();
      }
    });
  };

  before(async () => {
    p = await tunnelPair();
    const hs = http.createServer(handler);
    ln = p.b.createServer((s) => hs.emit('connection', s));
    await new Promise<void>((r) => ln.listen(80, () => r()));
    const pair = selfSigned();
    cert = pair.cert;
    const hss = https.createServer({ key: pair.key, cert: pair.cert }, handler);
    lns = p.b.createServer((s) => {
      tlsRemote = s.remoteAddress!;
      hss.emit('connection', s);
    });
    await new Promise<void>((r) => lns.listen(443, () => r()));
    client = new TunnelHttpClient((o) => p.a.connect(o), { ca: cert });
  });
  after(async () => {
    client.destroy();
    ln.close();
    ln.closeAllConnections();
    lns.close();
    lns.closeAllConnections();
    await p.close();
  });

  test('on Node the undici path is taken: undici honours the dispatcher', () => {
    assert.equal(undiciHonoursDispatcher(), true);
    assert.equal(fetchPath(), process.env.WGNET_FETCH === 'node-http' ? 'node-http' : 'undici');
  });

  test('GET 3 MB: status, headers, streamed body byte-exact, the server saw the tunnel address', async () => {
    seen.length = 0;
    const res = await client.fetch('http://10.66.0.2/big');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assert.equal(res.headers.get('x-remote'), '10.66.0.1');
    assert.equal(res.url, 'http://10.66.0.2/big');
    assert.equal(res.redirected, false);
    const h = createHash('sha256');
    let chunks = 0;
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      assert.ok(c instanceof Uint8Array);
      h.update(c);
      chunks++;
    }
    assert.equal(h.digest('hex'), BIG_SHA);
    assert.ok(chunks > 1, 'the body arrived as a stream, not one buffer');
    assert.equal(seen[0]!.remote, '10.66.0.1');
    assert.equal(seen[0]!.headers['accept'], '*/*');
    assert.match(String(seen[0]!.headers['accept-encoding']), /gzip/);
  });

  test('IPv6 URL: the server saw fd66::1', async () => {
    const res = await client.fetch('http://[fd66::2]/echo');
    assert.equal(res.headers.get('x-remote'), 'fd66::1');
    assert.deepEqual(res.headers.getSetCookie(), ['a=1', 'b=2']);
    assert.equal(JSON.parse(await res.text()).method, 'GET');
  });

  test('POST bodies: string, bytes, URLSearchParams, a Request, and a ReadableStream (chunked)', async () => {
    const r1 = await echo(client.fetch('http://10.66.0.2/echo', { method: 'POST', body: 'payload' }));
    assert.deepEqual(r1, { method: 'POST', body: 'payload', ct: 'text/plain;charset=UTF-8', len: '7', te: null });
    const r2 = await echo(client.fetch('http://10.66.0.2/echo', { method: 'PUT', body: new Uint8Array([104, 105]), headers: { 'content-type': 'x/y' } }));
    assert.deepEqual(r2, { method: 'PUT', body: 'hi', ct: 'x/y', len: '2', te: null });
    const r3 = await echo(client.fetch('http://10.66.0.2/echo', { method: 'POST', body: new URLSearchParams({ a: '1', b: 'x y' }) }));
    assert.deepEqual(r3, { method: 'POST', body: 'a=1&b=x+y', ct: 'application/x-www-form-urlencoded;charset=UTF-8', len: '9', te: null });
    const { Request } = await import('undici');
    const r4 = await echo(client.fetch(new Request('http://10.66.0.2/echo', { method: 'PATCH', body: 'from a Request' })));
    assert.equal(r4.method, 'PATCH');
    assert.equal(r4.body, 'from a Request');
    const parts = ['one ', 'two ', 'three'];
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        const next = parts.shift();
        if (next === undefined) c.close();
        else c.enqueue(new TextEncoder().encode(next));
      },
    });
    const r5 = await echo(client.fetch('http://10.66.0.2/echo', { method: 'POST', body: stream, duplex: 'half' } as never));
    assert.deepEqual(r5, { method: 'POST', body: 'one two three', ct: null, len: null, te: 'chunked' });
    const r6 = await echo(client.fetch('http://10.66.0.2/echo', { method: 'POST' }));
    assert.equal(r6.len, '0');
  });

  test('redirects: 302 POST becomes GET without body, 307 keeps method and body, url and redirected set', async () => {
    seen.length = 0;
    const r1 = await client.fetch('http://10.66.0.2/redirect?code=302&hops=2', { method: 'POST', body: 'x', headers: { 'x-keep': 'yes' } });
    assert.equal(r1.status, 200);
    assert.equal(r1.redirected, true);
    assert.equal(r1.url, 'http://10.66.0.2/echo');
    assert.deepEqual(await echo(r1), { method: 'GET', body: '', ct: null, len: null, te: null });
    assert.deepEqual(seen.map((s) => s.method), ['POST', 'GET', 'GET', 'GET']);
    assert.ok(seen.every((s) => s.headers['x-keep'] === 'yes'));
    const r2 = await client.fetch('http://10.66.0.2/redirect?code=307&hops=3', { method: 'POST', body: 'kept' });
    assert.deepEqual(await echo(r2), { method: 'POST', body: 'kept', ct: 'text/plain;charset=UTF-8', len: '4', te: null });
    const r3 = await client.fetch('http://10.66.0.2/redirect?code=303&hops=1', { method: 'PUT', body: 'gone' });
    assert.equal((await echo(r3)).method, 'GET');
  });

  test("redirect limits and modes: more than 20 rejects, 'manual' returns the 3xx, 'error' rejects", async () => {
    seen.length = 0;
    await assert.rejects(client.fetch('http://10.66.0.2/loop'), (e: Error) => e instanceof TypeError && /redirect count/.test(String((e.cause as Error).message)));
    assert.equal(seen.length, 21, 'the first request and 20 redirects');
    const m = await client.fetch('http://10.66.0.2/redirect?code=301&hops=1', { redirect: 'manual' });
    assert.equal(m.status, 301);
    assert.match(m.headers.get('location')!, /hop=1/);
    assert.equal(await m.text(), 'moved');
    await assert.rejects(client.fetch('http://10.66.0.2/redirect?code=301&hops=1', { redirect: 'error' }), TypeError);
    const s = new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array([1])), c.close()) });
    await assert.rejects(client.fetch('http://10.66.0.2/redirect?code=307&hops=1', { method: 'POST', body: s, duplex: 'half' } as never), /fetch failed/);
  });

  test('content-encoding gzip and br are decoded; 204 and HEAD have no body', async () => {
    const g = await client.fetch('http://10.66.0.2/gzip');
    assert.equal(createHash('sha256').update(new Uint8Array(await g.arrayBuffer())).digest('hex'), BIG_SHA);
    assert.equal(await (await client.fetch('http://10.66.0.2/br')).text(), 'brotli over wireguard');
    const e = await client.fetch('http://10.66.0.2/empty');
    assert.equal(e.status, 204);
    assert.equal(e.body, null);
    const h = await client.fetch('http://10.66.0.2/big', { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.body, null);
  });

  test('https over the tunnel: TLS on a tunnel connection, server saw the tunnel address', async () => {
    const res = await client.fetch('https://10.66.0.2/echo', { method: 'POST', body: 'secret' });
    assert.equal(res.headers.get('x-remote'), '10.66.0.1');
    assert.equal((await echo(res)).body, 'secret');
  });

  test('AbortSignal: before the response, and in the middle of the body', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(client.fetch('http://10.66.0.2/echo', { signal: ac.signal }), { name: 'AbortError' });
    const ac2 = new AbortController();
    const res = await client.fetch('http://10.66.0.2/slow', { signal: ac2.signal });
    const reader = res.body!.getReader();
    assert.equal((await reader.read()).value!.byteLength, 1000);
    const pending = reader.read();
    ac2.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    const ac3 = new AbortController();
    const t = setTimeout(() => ac3.abort(), 50);
    const res3 = await client.fetch('http://10.66.0.2/slow', { signal: ac3.signal });
    await assert.rejects(res3.text(), { name: 'AbortError' });
    clearTimeout(t);
  });

  test('errors: refused connection is TypeError with the cause; non-HTTP schemes are ERR_WGNET_UNSUPPORTED', async () => {
    await assert.rejects(client.fetch('http://10.66.0.2:81/'), (e: Error) => e instanceof TypeError && (e.cause as NodeJS.ErrnoException).code === 'ECONNREFUSED');
    await assert.rejects(client.fetch('data:text/plain,hi'), { code: 'ERR_WGNET_UNSUPPORTED' });
  });

  test('a request on a socket the agents did not make is refused before a byte is sent', async () => {
    class Leaky extends TunnelHttpClient {
      override isOurs(): boolean {
        return false; // as if node:http had ignored the agent's createConnection
      }
    }
    const leaky = new Leaky((o) => p.a.connect(o));
    seen.length = 0;
    await assert.rejects(leaky.fetch('http://10.66.0.2/echo', { method: 'POST', body: 'must not arrive' }), { code: 'ERR_WGNET_UNSUPPORTED' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(seen.length, 0);
    leaky.destroy();
  });

  test('tunnel.fetch takes this path with WGNET_FETCH=node-http', async () => {
    const prev = process.env.WGNET_FETCH;
    process.env.WGNET_FETCH = 'node-http';
    try {
      assert.equal(fetchPath(), 'node-http');
      const res = await p.a.fetch('http://10.66.0.2/echo', { method: 'POST', body: 'via tunnel.fetch' });
      assert.equal(res.headers.get('x-remote'), '10.66.0.1');
      assert.equal((await echo(res)).body, 'via tunnel.fetch');
    } finally {
      if (prev === undefined) delete process.env.WGNET_FETCH;
      else process.env.WGNET_FETCH = prev;
    }
  });
});

interface Echo {
  method: string;
  body: string;
  ct: string | null;
  len: string | null;
  te: string | null;
}

async function echo(res: Response | Promise<Response>): Promise<Echo> {
  return (await (await res).json()) as Echo;
}

function selfSigned(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-tls-'));
  try {
    const r = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-subj', '/CN=wgnet.test', '-days', '1', '-addext', 'subjectAltName=IP:10.66.0.2'],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    return { key: readFileSync(join(dir, 'k.pem'), 'utf8'), cert: readFileSync(join(dir, 'c.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
