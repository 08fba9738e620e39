/**
 * The Node API over a live tunnel: two wgnet tunnels in one process over
 * loopback UDP. net.Socket semantics (backpressure, half-close, errors),
 * http/https/undici on top, UDP, ping, lifecycle.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import type { TcpSocket } from '../../src/index.js';

const MB = 1024 * 1024;

describe('tunnel API over loopback', () => {
  let p: TunnelPair;
  before(async () => {
    p = await tunnelPair();
  });
  after(async () => {
    await p.close();
  });

  test('TCP echo: connect, data both ways, FIN both ways, address info', async () => {
    const server = p.b.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(7000, () => r()));
    assert.deepEqual(server.address(), { address: '::', family: 'IPv6', port: 7000 });
    const c = p.a.connect(7000, '10.66.0.2');
    await once(c, 'connect');
    assert.equal(c.remoteAddress, '10.66.0.2');
    assert.equal(c.remotePort, 7000);
    assert.equal(c.localAddress, '10.66.0.1');
    assert.ok(c.localPort! >= 1024);
    c.end('hello over wireguard');
    let got = '';
    for await (const d of c) got += d;
    assert.equal(got, 'hello over wireguard');
    server.close();
  });

  test('8 MB each way with backpressure: sha256 equal, write() returns false and drain fires', async () => {
    const data = randomBytes(8 * MB);
    const want = createHash('sha256').update(data).digest('hex');
    const server = p.b.createServer((s) => {
      const h = createHash('sha256');
      s.on('data', (d: Buffer) => h.update(d));
      s.on('end', () => s.end(h.digest('hex')));
    });
    await new Promise<void>((r) => server.listen(7001, () => r()));
    const c = p.a.connect({ port: 7001, host: 'fd66::2' });
    await once(c, 'connect');
    let sawFalse = false;
    let sawDrain = false;
    c.on('drain', () => (sawDrain = true));
    for (let off = 0; off < data.length; off += 256 * 1024) {
      if (!c.write(data.subarray(off, off + 256 * 1024))) {
        sawFalse = true;
        await once(c, 'drain');
      }
    }
    c.end();
    let reply = '';
    for await (const d of c) reply += d;
    assert.equal(reply, want);
    assert.ok(sawFalse && sawDrain, 'backpressure was exercised');
    server.close();
  });

  test("EOF waits behind unread data: 'end' comes only after a read() past the last byte (undici's parser relies on it)", async () => {
    const server = p.b.createServer((s) => s.end(Buffer.alloc(3000, 7)));
    await new Promise<void>((r) => server.listen(7002, () => r()));
    const c = p.a.connect(7002, '10.66.0.2');
    let ended = false;
    c.on('end', () => (ended = true));
    // Wait until both the data and the FIN are in, without reading.
    await new Promise((r) => setTimeout(r, 100));
    await once(c, 'readable');
    let got = 0;
    let chunk: Buffer | null;
    while ((chunk = c.read(1000) as Buffer | null) !== null) got += chunk.length;
    // The read that took the last byte must not have queued 'end' behind it...
    const last = c.read() as Buffer | null;
    if (last) got += last.length;
    assert.equal(got, 3000);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(ended, false, "'end' before the consumer read past the data");
    // ...the next read() (returning null) delivers it.
    for (let i = 0; i < 20 && !ended; i++) {
      assert.equal(c.read(), null);
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(ended, true, "no 'end' after reading past the data");
    c.destroy();
    server.close();
  });

  test('connecting to a closed port fails with ECONNREFUSED', async () => {
    const c = p.a.connect(7999, '10.66.0.2');
    const [err] = (await once(c, 'error').catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(err.syscall, 'connect');
  });

  test('half-close: the server keeps writing after the client ends (allowHalfOpen)', async () => {
    const server = p.b.createServer({ allowHalfOpen: true }, (s) => {
      s.on('end', () => {
        s.write('still ');
        setTimeout(() => s.end('here'), 20);
      });
      s.resume();
    });
    await new Promise<void>((r) => server.listen(7002, () => r()));
    const c = p.a.connect({ port: 7002, host: '10.66.0.2', allowHalfOpen: true });
    await once(c, 'connect');
    c.end('bye');
    let got = '';
    for await (const d of c) got += d;
    assert.equal(got, 'still here');
    server.close();
  });

  test('destroy() on one side resets the other with ECONNRESET', async () => {
    let serverSock: TcpSocket | undefined;
    const server = p.b.createServer((s) => {
      serverSock = s;
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(7003, () => r()));
    const c = p.a.connect(7003, '10.66.0.2');
    await once(c, 'connect');
    await new Promise((r) => setTimeout(r, 20));
    const err = new Promise<NodeJS.ErrnoException>((r) => c.on('error', r));
    serverSock!.resetAndDestroy();
    assert.equal((await err).code, 'ECONNRESET');
    server.close();
  });

  test('http.createServer on the tunnel; http.request, fetch and the http.Agent reach it', async () => {
    const hs = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
    });
    const ln = p.b.createServer((s) => hs.emit('connection', s));
    await new Promise<void>((r) => ln.listen(80, () => r()));
    const r1 = await p.a.fetch('http://10.66.0.2/a?x=1', { method: 'POST', body: 'payload' });
    assert.equal(await r1.text(), 'POST /a?x=1 payload');
    const r2 = await p.a.fetch('http://[fd66::2]/v6');
    assert.equal(await r2.text(), 'GET /v6 ');
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get('http://10.66.0.2/agent', { agent: p.a.httpAgent }, (res) => {
          let b = '';
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve(b));
        })
        .on('error', reject);
    });
    assert.equal(body, 'GET /agent ');
    ln.close();
    ln.closeAllConnections();
  });

  test('TLS over a tunnel socket: tls.connect({ socket }) and the https agent', async () => {
    // A throwaway self-signed certificate made for this test.
    const { key, cert } = selfSigned();
    const hs = https.createServer({ key, cert }, (_req, res) => res.end('secure hello'));
    const ln = p.b.createServer((s) => hs.emit('connection', s));
    await new Promise<void>((r) => ln.listen(443, () => r()));
    const raw = p.a.connect(443, '10.66.0.2');
    const t = tls.connect({ socket: raw as never, ca: cert, servername: 'wgnet.test' });
    await once(t, 'secureConnect');
    t.write('GET / HTTP/1.1\r\nHost: wgnet.test\r\nConnection: close\r\n\r\n');
    let resp = '';
    for await (const d of t) resp += d;
    assert.match(resp, /secure hello$/);
    ln.close();
    ln.closeAllConnections();
  });

  test('UDP: send, receive with rinfo, connect(), IPv6', async () => {
    const srv = p.b.createSocket('udp4');
    srv.on('message', (msg, rinfo) => srv.send(Buffer.concat([Buffer.from('echo:'), msg]), rinfo.port, rinfo.address));
    await new Promise<void>((r) => srv.bind(5000, () => r()));
    const cli = p.a.createSocket('udp4');
    const got = once(cli, 'message');
    cli.send('hi', 5000, '10.66.0.2');
    const [msg, rinfo] = (await got) as [Buffer, { address: string; port: number }];
    assert.equal(msg.toString(), 'echo:hi');
    assert.deepEqual([rinfo.address, rinfo.port], ['10.66.0.2', 5000]);
    const s6 = p.b.createSocket('udp6');
    s6.on('message', (m, ri) => s6.send(m, ri.port, ri.address));
    await new Promise<void>((r) => s6.bind(5001, () => r()));
    const c6 = p.a.createSocket('udp6');
    await new Promise<void>((r) => c6.connect(5001, 'fd66::2', () => r()));
    const got6 = once(c6, 'message');
    c6.send('v6');
    assert.equal(((await got6) as [Buffer])[0].toString(), 'v6');
    for (const s of [srv, cli, s6, c6]) s.close();
  });

  test('ping both families; an unanswered ping rejects with ETIMEDOUT', async () => {
    const r = await p.a.ping('10.66.0.2');
    assert.equal(r.address, '10.66.0.2');
    assert.ok(r.time >= 0);
    const r6 = await p.a.ping('fd66::2');
    assert.equal(r6.address, 'fd66::2');
    await assert.rejects(p.a.ping('10.66.0.77', { timeout: 300 }), (e: NodeJS.ErrnoException) => e.code === 'ETIMEDOUT');
  });

  test('lookup without DNS servers fails clearly; IP literals pass through', async () => {
    assert.deepEqual(await p.a.lookup('10.66.0.2'), { address: '10.66.0.2', family: 4 });
    await assert.rejects(p.a.lookup('example.test'), /ENOTFOUND.*no DNS servers/);
  });
});

test('lookup reports what dns.lookup would: EAI_AGAIN when the tunnel\'s DNS server refuses (no server on port 53)', async () => {
  // B has no DNS server: its netstack answers the query with ICMP port unreachable.
  const p = await tunnelPair({ extraA: 'DNS = 10.66.0.2\n' });
  try {
    await assert.rejects(p.a.lookup('example.test'), (e: NodeJS.ErrnoException) => e.code === 'EAI_AGAIN' && e.syscall === 'getaddrinfo' && /example\.test/.test(e.message));
  } finally {
    await p.close();
  }
});

test('a closed tunnel lets the process exit on its own (no leaked handles)', () => {
  const script = `
    import { tunnelPair } from ${JSON.stringify(fileURLToPath(new URL('../harness/tunnel-pair.ts', import.meta.url)))};
    const p = await tunnelPair();
    await p.a.ping('10.66.0.2');
    const s = p.b.createServer((c) => c.pipe(c)); s.listen(1);
    const c = p.a.connect(1, '10.66.0.2'); await new Promise((r) => c.once('connect', r));
    await p.close();
    console.log('closed');
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.signal, null, `process did not exit by itself: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /closed/);
});

function selfSigned(): { key: string; cert: string } {
  // Files, not /dev/stdout: node's stdio pipes are sockets, which /dev/stdout cannot open.
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-tls-'));
  try {
    const r = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-subj', '/CN=wgnet.test', '-days', '1', '-addext', 'subjectAltName=DNS:wgnet.test'],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    return { key: readFileSync(join(dir, 'k.pem'), 'utf8'), cert: readFileSync(join(dir, 'c.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
