/**
 * Limits on the proxy and forward listeners (issue 18): client connections at
 * once, the request phase (slowloris), HTTP header size, UDP flows. A client
 * over a limit is refused alone and counted; the others keep being served.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { execFile, spawnSync } from 'node:child_process';
import { SocksClient } from 'socks';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { createSocks5Server } from '../../src/cli/socks5.js';
import { createHttpProxyServer } from '../../src/cli/http-proxy.js';
import { tunnelDialer } from '../../src/cli/dialer.js';
import { forwardUdp } from '../../src/cli/udp-forward.js';
import { limitReporter, type LimitName } from '../../src/cli/limits.js';

const hasCurl = spawnSync('sh', ['-c', 'command -v curl']).status === 0;
const port = (s: net.Server): number => (s.address() as net.AddressInfo).port;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function curl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout }));
  });
}

/** A connection that sends `first` and then nothing; resolves its close time (ms after connect) or undefined if still open at `ms`. */
async function idleClient(p: number, first: string | readonly number[]): Promise<{ sock: net.Socket; closed: Promise<number | undefined> }> {
  const sock = net.connect(p, '127.0.0.1');
  sock.on('error', () => {});
  await once(sock, 'connect');
  const t0 = Date.now();
  sock.resume();
  if (first.length) sock.write(typeof first === 'string' ? first : Buffer.from(first as number[]));
  const closed = new Promise<number | undefined>((resolve) => sock.once('close', () => resolve(Date.now() - t0)));
  return { sock, closed };
}

function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return Promise.race([p, sleep(ms).then(() => 'timeout' as const)]);
}

describe('proxy limits', () => {
  let p: TunnelPair;
  let web: ReturnType<TunnelPair['b']['createServer']>;
  before(async () => {
    p = await tunnelPair();
    web = p.b.createServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
    });
    web.listen(80);
    await p.a.ping('10.66.0.2');
  });
  after(async () => {
    web.close();
    await p.close();
  });

  test('max connections: over the cap new clients are closed at once and counted; under it, service resumes', async () => {
    const socks = createSocks5Server({ dialer: tunnelDialer(p.a), limits: { maxConnections: 5 } });
    const hp = createHttpProxyServer({ dialer: tunnelDialer(p.a), limits: { maxConnections: 5 } });
    await Promise.all([socks, hp].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
    try {
      for (const [s, first] of [[socks, [5]], [hp, 'GET http://10.66.0.2/ HTTP/1.1\r\n']] as const) {
        const held = await Promise.all(Array.from({ length: 5 }, () => idleClient(port(s), first)));
        await sleep(50);
        const extra = await Promise.all(Array.from({ length: 10 }, () => idleClient(port(s), first)));
        for (const e of extra) assert.notEqual(await within(e.closed, 1000), 'timeout', 'a client over the cap was not closed');
        for (const h of held) assert.equal(await within(h.closed, 50), 'timeout', 'a client under the cap was closed');
        assert.equal(s.stats.limited!.connections, 10);
        for (const h of held) h.sock.destroy();
        await sleep(50);
      }
      // Under the cap again: real clients get through.
      const { socket } = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: port(socks), type: 5 }, command: 'connect', destination: { host: '10.66.0.2', port: 80 } });
      socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      let text = '';
      for await (const d of socket) text += d;
      assert.match(text, /ok$/);
      if (hasCurl) assert.equal((await curl(['-x', `http://127.0.0.1:${port(hp)}`, 'http://10.66.0.2/'])).out, 'ok');
    } finally {
      socks.close();
      hp.close();
    }
  });

  test('request timeout: slowloris clients of both protocols are closed after it and counted; a real client meanwhile is served', { skip: hasCurl ? false : 'needs curl' }, async () => {
    const socks = createSocks5Server({ dialer: tunnelDialer(p.a), limits: { requestTimeoutMs: 600 } });
    const hp = createHttpProxyServer({ dialer: tunnelDialer(p.a), limits: { requestTimeoutMs: 600 } });
    await Promise.all([socks, hp].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
    try {
      const slow = [
        ...(await Promise.all(Array.from({ length: 20 }, () => idleClient(port(socks), [5, 1])))), // a greeting that never ends
        ...(await Promise.all(Array.from({ length: 20 }, () => idleClient(port(socks), [])))), // nothing at all
        ...(await Promise.all(Array.from({ length: 20 }, () => idleClient(port(hp), 'GET http://10.66.0.2/ HTTP/1.1\r\nHost: 10.66.0.2\r\n')))),
        ...(await Promise.all(Array.from({ length: 20 }, () => idleClient(port(hp), '')))),
      ];
      // Trickle a header byte now and then, as slowloris does: it must not reset the deadline.
      const trickle = setInterval(() => {
        for (const s of slow.slice(40, 60)) if (!s.sock.destroyed) s.sock.write('X');
      }, 100);
      const a = await curl(['--socks5-hostname', `127.0.0.1:${port(socks)}`, 'http://10.66.0.2/']);
      const b = await curl(['-x', `http://127.0.0.1:${port(hp)}`, 'http://10.66.0.2/']);
      assert.equal(a.out, 'ok');
      assert.equal(b.out, 'ok');
      const times = await Promise.all(slow.map((s) => within(s.closed, 3000)));
      clearInterval(trickle);
      for (const t of times) {
        assert.notEqual(t, 'timeout', 'a slowloris client was still open after 3 s');
        assert.ok((t as number) >= 500, `closed after ${String(t)} ms, before the timeout`);
      }
      assert.equal(socks.stats.limited!.requestTimeout, 40);
      assert.equal(hp.stats.limited!.requestTimeout, 40);
    } finally {
      socks.close();
      hp.close();
    }
  });

  test('max header size: 431 and counted; normal requests pass', { skip: hasCurl ? false : 'needs curl' }, async () => {
    const hp = createHttpProxyServer({ dialer: tunnelDialer(p.a), limits: { maxHeaderBytes: 4096 } });
    await new Promise<void>((r) => hp.listen(0, '127.0.0.1', () => r()));
    try {
      const big = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `X-Big: ${'a'.repeat(8000)}`, '-x', `http://127.0.0.1:${port(hp)}`, 'http://10.66.0.2/']);
      assert.equal(big.out, '431');
      assert.equal(hp.stats.limited!.headerSize, 1);
      assert.equal((await curl(['-H', `X-Small: ${'a'.repeat(1000)}`, '-x', `http://127.0.0.1:${port(hp)}`, 'http://10.66.0.2/'])).out, 'ok');
    } finally {
      hp.close();
    }
  });

  test('SOCKS5 UDP ASSOCIATE: over the cap a new association gets reply 1 and is counted; existing ones keep working', async () => {
    const echo = p.b.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    echo.bind(7);
    const socks = createSocks5Server({ dialer: tunnelDialer(p.a), limits: { maxUdpFlows: 2 } });
    await new Promise<void>((r) => socks.listen(0, '127.0.0.1', () => r()));
    const proxy = { host: '127.0.0.1', port: port(socks), type: 5 as const };
    const assoc = async (): Promise<{ socket: net.Socket; remoteHost?: { host: string; port: number } }> => {
      const sc = new SocksClient({ proxy, command: 'associate', destination: { host: '0.0.0.0', port: 0 } });
      return new Promise((resolve, reject) => {
        sc.once('established', resolve);
        sc.once('error', reject);
        sc.connect();
      });
    };
    try {
      const a1 = await assoc();
      const a2 = await assoc();
      await assert.rejects(assoc(), /General SOCKS server failure|Socks5 proxy rejected/i);
      assert.equal(socks.stats.limited!.udpFlows, 1);
      const u = dgram.createSocket('udp4');
      await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
      u.send(SocksClient.createUDPFrame({ remoteHost: { host: '10.66.0.2', port: 7 }, data: Buffer.from('still') }), a1.remoteHost!.port, '127.0.0.1');
      const [m] = (await once(u, 'message')) as [Buffer];
      assert.equal(SocksClient.parseUDPFrame(m).data.toString(), 'still');
      u.close();
      a1.socket.destroy();
      await sleep(50);
      const a3 = await assoc(); // a slot freed
      a2.socket.destroy();
      a3.socket.destroy();
    } finally {
      echo.close();
      socks.close();
    }
  });

  test('forward --udp: over maxFlows a new source is dropped and counted; existing flows keep working', async () => {
    const echo = p.b.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    echo.bind(9);
    const listener = dgram.createSocket('udp4');
    await new Promise<void>((r) => listener.bind(0, '127.0.0.1', () => r()));
    const counters = { flows: 0, up: 0, down: 0, expired: 0, limited: 0 };
    const hits: unknown[] = [];
    const fwd = forwardUdp({ listener, outbound: () => tunnelDialer(p.a).udp!(4), host: '10.66.0.2', port: 9, idleMs: 60_000, counters, maxFlows: 3, onLimit: (f) => hits.push(f) });
    const lp = listener.address().port;
    const clients = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const c = dgram.createSocket('udp4');
        await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
        return c;
      }),
    );
    const ask = (c: dgram.Socket, text: string): Promise<string | undefined> =>
      new Promise((resolve) => {
        const t = setTimeout(() => resolve(undefined), 500);
        c.once('message', (m) => {
          clearTimeout(t);
          resolve(m.toString());
        });
        c.send(text, lp, '127.0.0.1');
      });
    try {
      for (const c of clients.slice(0, 3)) assert.equal(await ask(c, 'in'), 'in');
      const over = await Promise.all(clients.slice(3).map((c) => ask(c, 'over')));
      assert.deepEqual(over, Array(7).fill(undefined));
      assert.equal(counters.limited, 7);
      assert.equal(hits.length, 7);
      assert.equal(fwd.active, 3);
      for (const c of clients.slice(0, 3)) assert.equal(await ask(c, 'again'), 'again');
    } finally {
      fwd.close();
      for (const c of clients) c.close();
      echo.close();
    }
  });
});

test('limitReporter: every hit counted, one log line per limit per interval with the number suppressed', () => {
  let now = 0;
  const lines: [string, Record<string, unknown> | undefined][] = [];
  const counted: LimitName[] = [];
  const hit = limitReporter('socks5', (_lvl, msg, f) => lines.push([msg, f]), (l) => counted.push(l), 10_000, () => now);
  for (let i = 0; i < 1000; i++) hit('connections', { max: 5 });
  hit('requestTimeout');
  assert.equal(counted.length, 1001);
  assert.deepEqual(lines.map((l) => l[0]), ['socks5: limit reached: connections', 'socks5: limit reached: requestTimeout']);
  now = 10_000;
  hit('connections', { max: 5 });
  assert.equal(lines.length, 3);
  assert.equal(lines[2]![1]!.more, 999);
});
