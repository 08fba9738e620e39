/**
 * Fuzz target: the SOCKS5 (RFC 1928/1929) and HTTP proxy listeners, driven through their
 * servers on loopback by clients that send structured, mutated and random requests in
 * random chunks. The dialer behind them is in-process: port 7 is an echo, port 9 times
 * out, a name under .unreachable fails to route, anything else is refused.
 * Invariants:
 * - nothing escapes as an uncaught exception or rejection (one client must not end the proxy);
 * - every answer is the protocol's (SOCKS method/auth/reply bytes, an HTTP/1.1 status line);
 * - once the client has sent its last byte and half-closed, the proxy closes the connection
 *   within a bound (the request timeout or a protocol answer, never a leak);
 * - bytes after a successful CONNECT come back exactly (the echo), and
 * - afterwards no connection is open and legitimate CONNECTs still work.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import { PassThrough, type Duplex } from 'node:stream';
import { EventEmitter, once } from 'node:events';
import fc from 'fast-check';
import { createSocks5Server } from '../../src/cli/socks5.js';
import { createHttpProxyServer } from '../../src/cli/http-proxy.js';
import type { Dialer, DatagramSocket } from '../../src/cli/dialer.js';
import { budget, checkAsync, corpus, mutate, mutationArb, type Mutation, watchUncaught } from './lib.js';

const TIMEOUT = 200;
/** After the client's FIN: a protocol answer and close (endWith), or the request timeout, with room for a loaded machine. */
const CLOSE_BOUND = 3000;

const dialer: Dialer = {
  connect: (host, port) =>
    new Promise((resolve, reject) => {
      const fail = (code: string): void => reject(Object.assign(new Error(`connect ${code} ${host}:${port}`), { code }));
      if (host.endsWith('.unreachable')) return setImmediate(() => fail('EHOSTUNREACH'));
      if (port === 9) return setTimeout(() => fail('ETIMEDOUT'), 20);
      if (port !== 7) return setImmediate(() => fail('ECONNREFUSED'));
      const echo = new PassThrough() as PassThrough & { localAddress?: string; localPort?: number };
      echo.localAddress = '10.66.0.1';
      echo.localPort = 40000;
      setImmediate(() => resolve(echo as unknown as Duplex));
    }),
};

// --- SOCKS5 requests ----------------------------------------------------------------------------

interface SocksReq {
  ver: number;
  methods: number[];
  auth: { ver: number; user: string; pass: string } | undefined;
  reqVer: number;
  cmd: number;
  atyp: number;
  host: string;
  port: number;
  after: Uint8Array;
}

const socksArb: fc.Arbitrary<SocksReq> = fc.record({
  ver: fc.constantFrom(5, 5, 5, 5, 4, 0),
  methods: fc.oneof(fc.constant([0]), fc.constant([2]), fc.constant([0, 2]), fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 5 })),
  auth: fc.option(fc.record({ ver: fc.constantFrom(1, 1, 1, 5), user: fc.constantFrom('u', 'user', '', 'x'.repeat(255)), pass: fc.constantFrom('p', 'pass', '', 'wrong') }), { nil: undefined }),
  reqVer: fc.constantFrom(5, 5, 5, 1),
  cmd: fc.constantFrom(1, 1, 1, 1, 2, 3, 0, 9),
  atyp: fc.constantFrom(1, 1, 3, 3, 4, 0, 2, 5),
  host: fc.constantFrom('10.66.0.2', 'example.test', 'a.unreachable', '', 'x'.repeat(255), '\u0000', '::1'),
  port: fc.constantFrom(7, 7, 7, 9, 80, 0, 65535),
  after: fc.uint8Array({ maxLength: 40 }),
}).map((x) => ({ ...x, methods: [...x.methods] }) as SocksReq);

function socksBytes(r: SocksReq): { bytes: Buffer; reqEnd: number } {
  const parts: number[] = [r.ver, r.methods.length, ...r.methods];
  if (r.auth) {
    const u = [...Buffer.from(r.auth.user)].slice(0, 255);
    const p = [...Buffer.from(r.auth.pass)].slice(0, 255);
    parts.push(r.auth.ver, u.length, ...u, p.length, ...p);
  }
  parts.push(r.reqVer, r.cmd, 0, r.atyp);
  if (r.atyp === 1) parts.push(10, 66, 0, 2);
  else if (r.atyp === 4) parts.push(0xfd, 0x66, ...new Array(13).fill(0), 2);
  else if (r.atyp === 3) {
    const h = [...Buffer.from(r.host)].slice(0, 255);
    parts.push(h.length, ...h);
  } else parts.push(1, 2, 3, 4);
  parts.push(r.port >> 8, r.port & 0xff);
  return { bytes: Buffer.concat([Buffer.from(parts), r.after]), reqEnd: parts.length };
}

// --- HTTP requests ------------------------------------------------------------------------------

const httpArb = fc
  .record({
    method: fc.constantFrom('CONNECT', 'CONNECT', 'CONNECT', 'GET', 'POST', 'OPTIONS', 'G ET', ''),
    target: fc.constantFrom('10.66.0.2:7', 'echo.test:7', '[fd66::2]:7', '10.66.0.2:9', 'a.unreachable:7', '10.66.0.2:0', '10.66.0.2:99999', ':7', '[]:7', '10.66.0.2', 'http://10.66.0.2:7/', 'http://10.66.0.2:0/', 'https://x/', '/', '*', 'http://[::1', '%zz:7', 'x'.repeat(300) + ':7'),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 extra', ''),
    headers: fc.array(
      fc.oneof(
        fc.constantFrom('Host: 10.66.0.2:7', 'Proxy-Authorization: Basic dTpw', 'Proxy-Authorization: Basic', 'Content-Length: 5', 'Content-Length: -1', 'Content-Length: 99999999999', 'Transfer-Encoding: chunked', 'Connection: close', 'X: \u0001', ': empty name', 'no colon'),
        fc.integer({ min: 1, max: 6000 }).map((n) => `X-Big: ${'a'.repeat(n)}`),
      ),
      { maxLength: 5 },
    ),
    lineEnd: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n'),
    body: fc.uint8Array({ maxLength: 40 }),
  })
  .map((o) => {
    const head = `${o.method} ${o.target} ${o.version}${o.lineEnd}${o.headers.map((h) => h + o.lineEnd).join('')}${o.lineEnd}`;
    return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), o.body]), reqEnd: Buffer.byteLength(head, 'latin1'), connect: o.method === 'CONNECT' };
  });

// --- one client -------------------------------------------------------------------------------

interface Conversation {
  got: Buffer;
  closedAfterFinMs: number;
}

/** Sends `bytes` in chunks (cut points), half-closes, and collects until the proxy closes. */
async function converse(port: number, bytes: Buffer, cuts: number[]): Promise<Conversation> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  let got = Buffer.alloc(0);
  s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  await new Promise<void>((r, j) => {
    s.once('connect', () => r());
    s.once('error', j);
  });
  let at = 0;
  for (let i = 0; at < bytes.length && !s.destroyed; i++) {
    const n = Math.max(1, cuts.length ? cuts[i % cuts.length]! : bytes.length);
    s.write(bytes.subarray(at, at + n));
    at += n;
    if (i % 3 === 2) await new Promise((r) => setTimeout(r, 2));
  }
  await new Promise((r) => setTimeout(r, 5));
  const fin = Date.now();
  if (!s.destroyed) s.end();
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), CLOSE_BOUND).unref());
  const how = await Promise.race([closed.then(() => 'closed' as const), timer]);
  s.destroy();
  return { got, closedAfterFinMs: how === 'closed' ? Date.now() - fin : Infinity };
}

/** reqEnd < 0: where the request ends is not known (mutated bytes): the echo is not checked. */
function checkSocks(c: Conversation, bytes: Buffer, reqEnd: number): void {
  const g = c.got;
  const what = `SOCKS ${bytes.subarray(0, 40).toString('hex')}: answered ${g.subarray(0, 40).toString('hex')}`;
  assert.ok(c.closedAfterFinMs <= CLOSE_BOUND, `${what}: still open ${CLOSE_BOUND} ms after the client's FIN`);
  if (g.length === 0) return; // closed without a word: allowed for garbage
  assert.equal(g[0], 5, `${what}: method reply version`);
  assert.ok(g.length >= 2 && [0, 2, 0xff].includes(g[1]!), `${what}: method`);
  let off = 2;
  if (g[1] === 2 && g.length > off) {
    assert.ok(g[off] === 1 && (g[off + 1] === 0 || g[off + 1] === 1), `${what}: RFC 1929 status`);
    off += 2;
  }
  if (g.length > off) {
    assert.ok(g.length >= off + 10, `${what}: a short reply`);
    assert.equal(g[off], 5, `${what}: reply version`);
    assert.ok(g[off + 1]! <= 8, `${what}: reply code ${g[off + 1]}`);
    const rest = g.subarray(off + (g[off + 3] === 4 ? 22 : 10));
    if (g[off + 1] === 0) {
      // The echo returns exactly what followed the request (a UDP ASSOCIATE returns nothing).
      if (reqEnd >= 0) assert.ok(bytes.subarray(reqEnd).subarray(0, rest.length).equals(rest), `${what}: echo after CONNECT differs`);
    } else assert.equal(rest.length, 0, `${what}: bytes after a failure reply`);
  }
}

function checkHttp(c: Conversation, bytes: Buffer, reqEnd: number, connect: boolean): void {
  const g = c.got.toString('latin1');
  const what = `HTTP ${JSON.stringify(bytes.subarray(0, 80).toString('latin1'))}: answered ${JSON.stringify(g.slice(0, 80))}`;
  assert.ok(c.closedAfterFinMs <= CLOSE_BOUND, `${what}: still open ${CLOSE_BOUND} ms after the client's FIN`);
  if (g.length === 0) return;
  assert.match(g, /^HTTP\/1\.[01] [1-5]\d\d /, `${what}: a status line`);
  if (connect && g.startsWith('HTTP/1.1 200 Connection Established\r\n\r\n')) {
    const rest = c.got.subarray('HTTP/1.1 200 Connection Established\r\n\r\n'.length);
    assert.ok(bytes.subarray(reqEnd).subarray(0, rest.length).equals(rest), `${what}: echo after CONNECT differs`);
  }
}

const SOCKS_CORPUS = corpus('socks5').map((c) => c.data);
const HTTP_CORPUS = corpus('http-proxy').map((c) => c.data);

describe('fuzz: SOCKS5 and HTTP proxy requests', () => {
  let socks: ReturnType<typeof createSocks5Server>;
  let socksAuth: ReturnType<typeof createSocks5Server>;
  let httpProxy: ReturnType<typeof createHttpProxyServer>;
  const ports = { socks: 0, socksAuth: 0, http: 0 };
  let uncaught: ReturnType<typeof watchUncaught>;
  before(async () => {
    uncaught = watchUncaught();
    const limits = { requestTimeoutMs: TIMEOUT, maxHeaderBytes: 4096, maxConnections: 256 };
    socks = createSocks5Server({ dialer, limits });
    socksAuth = createSocks5Server({ dialer, limits, auth: { username: 'u', password: 'p' } });
    httpProxy = createHttpProxyServer({ dialer, limits });
    for (const [k, s] of [['socks', socks], ['socksAuth', socksAuth], ['http', httpProxy]] as const) {
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      ports[k] = (s.address() as net.AddressInfo).port;
    }
  });
  after(async () => {
    uncaught.stop();
    for (const s of [socks, socksAuth, httpProxy]) s.close();
  });

  async function allClosed(): Promise<void> {
    for (const s of [socks, socksAuth, httpProxy]) {
      const until = Date.now() + 5000;
      for (;;) {
        const n = await new Promise<number>((r) => s.getConnections((_e, k) => r(k)));
        if (n === 0) break;
        assert.ok(Date.now() < until, `${n} connections still open on the proxy`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  async function stillWorks(): Promise<void> {
    const payload = Buffer.from('still works');
    const s = await converse(ports.socks, Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 1, 10, 66, 0, 2, 0, 7]), payload]), []);
    assert.ok(s.got.equals(Buffer.concat([Buffer.from([5, 0, 5, 0, 0, 1, 10, 66, 0, 1, 0x9c, 0x40]), payload])), `SOCKS5 CONNECT afterwards: ${s.got.toString('hex')}`);
    const h = await converse(ports.http, Buffer.concat([Buffer.from('CONNECT 10.66.0.2:7 HTTP/1.1\r\nHost: 10.66.0.2:7\r\n\r\n'), payload]), []);
    assert.equal(h.got.toString(), `HTTP/1.1 200 Connection Established\r\n\r\n${payload}`);
  }

  test('corpus requests', async () => {
    for (const b of SOCKS_CORPUS) checkSocks(await converse(ports.socks, Buffer.from(b), [3]), Buffer.from(b), -1);
    for (const b of HTTP_CORPUS) checkHttp(await converse(ports.http, Buffer.from(b), [7]), Buffer.from(b), b.length, false);
    await allClosed();
    uncaught.check();
    await stillWorks();
  });

  test('SOCKS5: greetings, RFC 1929 auth and requests, valid and not, in chunks', async () => {
    await checkAsync(
      fc.asyncProperty(fc.array(fc.tuple(socksArb, fc.array(mutationArb, { maxLength: 2 }), fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 3 }), fc.boolean()), { minLength: 1, maxLength: 6 }), async (clients) => {
        await Promise.all(
          clients.map(async ([r, muts, cuts, useAuth]) => {
            const { bytes, reqEnd } = socksBytes(r);
            const b = muts.length ? Buffer.from(mutate(bytes, muts as Mutation[])) : bytes;
            const c = await converse(useAuth ? ports.socksAuth : ports.socks, b, cuts);
            // Mutated bytes may move the request's end: only the echo check needs it, so skip it then.
            checkSocks(c, b, muts.length || (r.auth !== undefined) !== useAuth || r.methods.length !== new Set(r.methods).size ? -1 : reqEnd);
          }),
        );
        uncaught.check();
      }),
      budget('proxy-socks5', 400),
    );
    await allClosed();
    await stillWorks();
  });

  test('HTTP: CONNECT and absolute-form requests, odd targets, headers and sizes, in chunks', async () => {
    await checkAsync(
      fc.asyncProperty(fc.array(fc.tuple(httpArb, fc.array(mutationArb, { maxLength: 2 }), fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 3 })), { minLength: 1, maxLength: 6 }), async (clients) => {
        await Promise.all(
          clients.map(async ([r, muts, cuts]) => {
            const b = muts.length ? Buffer.from(mutate(r.bytes, muts as Mutation[])) : r.bytes;
            const c = await converse(ports.http, b, cuts);
            checkHttp(c, b, r.reqEnd, r.connect && muts.length === 0);
          }),
        );
        uncaught.check();
      }),
      budget('proxy-http', 250),
    );
    await allClosed();
    await stillWorks();
  });

  test('SOCKS5 UDP ASSOCIATE: random and mutated datagrams to the relay; answers well-formed, association freed with its connection', async () => {
    // A dialer whose UDP sockets echo every datagram back from where it was sent (a name answers from 10.66.0.9).
    let open = 0;
    const udpDialer: Dialer = {
      connect: dialer.connect,
      udp: () => {
        let closed = false;
        open++;
        const e = new EventEmitter() as EventEmitter & DatagramSocket;
        e.send = (msg, port, address, cb) => {
          setImmediate(() => {
            if (!closed) e.emit('message', Buffer.from(msg), { address: net.isIP(address) ? address : '10.66.0.9', port });
            cb?.(null);
          });
        };
        e.close = () => {
          if (!closed) open--;
          closed = true;
        };
        return e;
      },
    };
    let answered = 0;
    const server = createSocks5Server({ dialer: udpDialer, limits: { requestTimeoutMs: TIMEOUT, maxUdpFlows: 64 } });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const header = fc.record({
      rsv: fc.constantFrom([0, 0], [0, 0], [0, 0], [0, 1], [1, 0]),
      frag: fc.constantFrom(0, 0, 0, 1, 0x80, 255),
      atyp: fc.constantFrom(1, 1, 3, 4, 0, 2),
      name: fc.constantFrom('echo.test', '', 'x'.repeat(255), '\u0000'),
      port: fc.constantFrom(7, 53, 0, 65535),
      data: fc.uint8Array({ maxLength: 64 }),
    });
    const datagram = fc.tuple(header, fc.array(mutationArb, { maxLength: 2 })).map(([h, muts]) => {
      const addr = h.atyp === 1 ? [10, 66, 0, 2] : h.atyp === 4 ? [0xfd, 0x66, ...new Array(13).fill(0), 2] : h.atyp === 3 ? [Math.min(255, Buffer.byteLength(h.name)), ...Buffer.from(h.name)].slice(0, 256) : [1, 2, 3];
      const b = Buffer.concat([Buffer.from([...h.rsv, h.frag, h.atyp, ...addr, h.port >> 8, h.port & 0xff]), h.data]);
      return { bytes: muts.length ? Buffer.from(mutate(b, muts as Mutation[])) : b, data: Buffer.from(h.data) };
    });
    try {
      await checkAsync(
        fc.asyncProperty(fc.array(datagram, { minLength: 1, maxLength: 12 }), async (dgrams) => {
          const c = net.connect(port, '127.0.0.1');
          c.on('error', () => {});
          let got = Buffer.alloc(0);
          c.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
          await once(c, 'connect');
          c.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
          const until = Date.now() + 2000;
          while (got.length < 12 && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
          assert.equal(got.subarray(0, 4).toString('hex'), '05000500', `UDP ASSOCIATE answered ${got.toString('hex')}`);
          const relayPort = got.readUInt16BE(10);
          const u = dgram.createSocket('udp4');
          u.bind(0, '127.0.0.1');
          await once(u, 'listening');
          const replies: Buffer[] = [];
          u.on('message', (m) => {
            replies.push(m);
            answered++;
          });
          for (const d of dgrams) u.send(d.bytes, relayPort, '127.0.0.1');
          await new Promise((r) => setTimeout(r, 30));
          // Every answer: RSV 0 0, FRAG 0, an IPv4 or IPv6 source, then what some datagram carried.
          for (const m of replies) {
            assert.ok(m.length >= 10 && m[0] === 0 && m[1] === 0 && m[2] === 0 && (m[3] === 1 || m[3] === 4), `relay answer ${m.toString('hex')}`);
            const body = m.subarray(m[3] === 1 ? 10 : 22);
            assert.ok(dgrams.some((d) => d.bytes.subarray(d.bytes.length - body.length).equals(body)), `relay answer carries data nobody sent: ${body.toString('hex')}`);
          }
          u.close();
          c.destroy();
          const freeBy = Date.now() + 2000;
          while (open > 0 && Date.now() < freeBy) await new Promise((r) => setTimeout(r, 5));
          assert.equal(open, 0, 'the association\'s upstream sockets closed with its connection');
          uncaught.check();
        }),
        budget('proxy-socks5-udp', 150),
      );
      assert.ok(server.stats.udpAssociations! > 0 && answered > 0, `${server.stats.udpAssociations} associations, ${answered} datagrams relayed back`);
    } finally {
      server.close();
    }
  });
});
