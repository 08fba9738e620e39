/**
 * Run by test/runtime/bun-deno.test.ts under Bun and Deno (and Node): two tunnels in
 * this process over loopback UDP, an HTTP server on B's stack, tunnel.fetch from A.
 * Prints one JSON line of what happened; never calls process.exit, so the test also
 * proves that close() lets the process end by itself.
 */
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { tunnelPair } from '../../harness/tunnel-pair.js';
import { fetchPath } from '../../../src/api/http-fetch.js';

const result: Record<string, unknown> = {
  runtime: 'Bun' in globalThis ? 'bun' : 'Deno' in globalThis ? 'deno' : 'node',
  fetchPath: fetchPath(),
};
const payload = Buffer.alloc(1024 * 1024 + 3);
for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff;
const seen: string[] = [];

// A server on the host's loopback: nothing tunnel.fetch does may ever reach it.
let canaryHits = 0;
const canary = net.createServer((s) => {
  canaryHits++;
  s.destroy();
});
await new Promise<void>((r) => canary.listen(0, '127.0.0.1', () => r()));
const canaryPort = (canary.address() as net.AddressInfo).port;

const p = await tunnelPair();
try {
  const hs = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.socket.remoteAddress}`);
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.url === '/big') return void res.end(payload);
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/echo' });
        return void res.end();
      }
      res.setHeader('x-remote', req.socket.remoteAddress ?? '');
      res.end(`${req.method} ${req.url} ${body}`);
    });
  });
  const ln = p.b.createServer((s) => hs.emit('connection', s));
  await new Promise<void>((r) => ln.listen(80, () => r()));

  const r1 = await p.a.fetch('http://10.66.0.2/echo', { method: 'POST', body: 'through the tunnel' });
  result.post = { status: r1.status, remote: r1.headers.get('x-remote'), body: await r1.text() };
  const r2 = await p.a.fetch('http://[fd66::2]/moved');
  result.redirect = { status: r2.status, url: r2.url, redirected: r2.redirected, remote: r2.headers.get('x-remote'), body: await r2.text() };
  const r3 = await p.a.fetch('http://10.66.0.2/big');
  const buf = new Uint8Array(await r3.arrayBuffer());
  result.big = {
    bytes: buf.byteLength,
    sha256Equal: createHash('sha256').update(buf).digest('hex') === createHash('sha256').update(payload).digest('hex'),
  };
  result.serverSaw = seen;

  // Addresses outside the tunnel: the fetch fails inside the tunnel (no peer has them,
  // the tunnel has no DNS), and the host's loopback server never sees a connection.
  const outside: unknown[] = [];
  for (const url of [`http://127.0.0.1:${canaryPort}/`, `http://localhost:${canaryPort}/`]) {
    try {
      const r = await p.a.fetch(url, { signal: AbortSignal.timeout(1000) });
      outside.push({ url, status: r.status });
    } catch (err) {
      const e = err as Error & { code?: unknown; cause?: { code?: string } };
      outside.push({ url, error: e.cause?.code ?? (typeof e.code === 'string' ? e.code : e.name) });
    }
  }
  result.outside = outside;

  try {
    void p.a.dispatcher;
    result.dispatcher = 'ok';
  } catch (err) {
    result.dispatcher = (err as { code?: string }).code;
  }
  ln.close();
  ln.closeAllConnections();
} finally {
  await p.close();
  canary.close();
}
result.canaryHits = canaryHits;
result.closed = true;
console.log(JSON.stringify(result));
