/**
 * SOCKS5 through a tunnel (UDP ASSOCIATE per RFC 1928 §7, CONNECT, bad input): a raw client speaks the
 * protocol byte by byte to the proxy on tunnel A; a UDP echo server listens on
 * tunnel B.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { SocksClient } from 'socks';
import { createSocks5Server } from '../../src/cli/socks5.js';
import { tunnelDialer, dialFailure } from '../../src/cli/dialer.js';

/** Reads exactly n bytes from a socket. */
async function readN(s: net.Socket, n: number): Promise<Buffer> {
  let buf = Buffer.alloc(0);
  while (buf.length < n) {
    const chunk = s.read() as Buffer | null;
    if (chunk) buf = Buffer.concat([buf, chunk]);
    else await once(s, 'readable');
  }
  if (buf.length > n) s.unshift(buf.subarray(n));
  return buf.subarray(0, n);
}

function udpHeader(atyp: 1 | 3, host: string, port: number, frag = 0): Buffer {
  const addr = atyp === 1 ? Buffer.from(host.split('.').map(Number)) : Buffer.concat([Buffer.from([host.length]), Buffer.from(host)]);
  const h = Buffer.alloc(4 + addr.length + 2);
  h[2] = frag;
  h[3] = atyp;
  addr.copy(h, 4);
  h.writeUInt16BE(port, 4 + addr.length);
  return h;
}

describe('SOCKS5 through a tunnel: UDP ASSOCIATE, a real client, bad input', () => {
  let p: TunnelPair;
  let proxy: ReturnType<typeof createSocks5Server>;
  before(async () => {
    p = await tunnelPair();
    const echo = p.b.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    echo.bind(7);
    proxy = createSocks5Server({ dialer: tunnelDialer(p.a), auth: { username: 'u', password: 'p' } });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    await p.a.ping('10.66.0.2');
  });
  after(async () => {
    proxy.close();
    await p.close();
  });

  /** Greets, authenticates and asks for an association; returns the control socket and the relay port. */
  async function associate(clientPort = 0): Promise<{ ctl: net.Socket; relayPort: number }> {
    const ctl = net.connect((proxy.address() as net.AddressInfo).port, '127.0.0.1');
    await once(ctl, 'connect');
    ctl.write(Buffer.from([5, 1, 2]));
    assert.deepEqual([...(await readN(ctl, 2))], [5, 2]);
    ctl.write(Buffer.from([1, 1, 0x75, 1, 0x70]));
    assert.deepEqual([...(await readN(ctl, 2))], [1, 0]);
    const req = Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]);
    req.writeUInt16BE(clientPort, 8);
    ctl.write(req);
    const rep = await readN(ctl, 10);
    assert.equal(rep[1], 0, 'UDP ASSOCIATE succeeded');
    assert.equal(rep[3], 1);
    assert.equal([...rep.subarray(4, 8)].join('.'), '127.0.0.1');
    return { ctl, relayPort: rep.readUInt16BE(8) };
  }

  async function client(): Promise<dgram.Socket> {
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    return u;
  }

  function reply(u: dgram.Socket, ms = 2000): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(undefined), ms);
      u.once('message', (m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
  }

  test('a datagram to an IPv4 address comes back with the SOCKS header naming its source; an unresolvable name is dropped', async () => {
    const { ctl, relayPort } = await associate();
    const u = await client();
    u.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7), Buffer.from('one')]), relayPort, '127.0.0.1');
    const r1 = await reply(u);
    assert.ok(r1, 'no reply through the relay');
    assert.deepEqual([...r1.subarray(0, 4)], [0, 0, 0, 1]);
    assert.equal([...r1.subarray(4, 8)].join('.'), '10.66.0.2');
    assert.equal(r1.readUInt16BE(8), 7);
    assert.equal(r1.subarray(10).toString(), 'echo:one');
    // A domain name with no DNS server on the tunnel cannot resolve: dropped, and the association lives on.
    u.send(Buffer.concat([udpHeader(3, 'nowhere.invalid', 7), Buffer.from('x')]), relayPort, '127.0.0.1');
    u.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7), Buffer.from('two')]), relayPort, '127.0.0.1');
    assert.equal((await reply(u))?.subarray(10).toString(), 'echo:two');
    u.close();
    ctl.destroy();
  });

  test('fragments, malformed headers and other senders are dropped and counted', async () => {
    const { ctl, relayPort } = await associate();
    const u = await client();
    const before = proxy.stats.udpDropped!;
    u.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7, 1), Buffer.from('frag')]), relayPort, '127.0.0.1');
    u.send(Buffer.from([1, 2, 3]), relayPort, '127.0.0.1');
    assert.equal(await reply(u, 300), undefined);
    // Pin the client's port with a good datagram, then a second local socket is refused.
    u.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7), Buffer.from('ok')]), relayPort, '127.0.0.1');
    assert.equal((await reply(u))?.subarray(10).toString(), 'echo:ok');
    const other = await client();
    other.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7), Buffer.from('intruder')]), relayPort, '127.0.0.1');
    assert.equal(await reply(other, 300), undefined);
    assert.ok(proxy.stats.udpDropped! >= before + 3, `dropped ${proxy.stats.udpDropped! - before}`);
    other.close();
    u.close();
    ctl.destroy();
  });

  test('a client that announced its port is served only from that port', async () => {
    const u = await client();
    const other = await client();
    const { ctl, relayPort } = await associate(u.address().port);
    other.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7), Buffer.from('first')]), relayPort, '127.0.0.1');
    assert.equal(await reply(other, 300), undefined);
    u.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7), Buffer.from('mine')]), relayPort, '127.0.0.1');
    assert.equal((await reply(u))?.subarray(10).toString(), 'echo:mine');
    other.close();
    u.close();
    ctl.destroy();
  });

  test('the socks npm client: CONNECT to an HTTP server on the tunnel, and a UDP ASSOCIATE round trip with its frames', async () => {
    const web = p.b.createServer((sock) => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
    web.listen(80);
    const proxyAt = { host: '127.0.0.1', port: (proxy.address() as net.AddressInfo).port, type: 5 as const, userId: 'u', password: 'p' };
    const { socket } = await SocksClient.createConnection({ proxy: proxyAt, command: 'connect', destination: { host: '10.66.0.2', port: 80 } });
    socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    let text = '';
    for await (const d of socket) text += d;
    assert.match(text, /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nok$/);
    web.close();

    const u = await client();
    // The library offers UDP ASSOCIATE on a client instance, not on createConnection.
    const sc = new SocksClient({ proxy: proxyAt, command: 'associate', destination: { host: '0.0.0.0', port: u.address().port } });
    const assoc = await new Promise<{ socket: net.Socket; remoteHost?: { host: string; port: number } }>((resolve, reject) => {
      sc.once('established', resolve);
      sc.once('error', reject);
      sc.connect();
    });
    const frame = SocksClient.createUDPFrame({ remoteHost: { host: '10.66.0.2', port: 7 }, data: Buffer.from('via socks lib') });
    u.send(frame, assoc.remoteHost!.port, '127.0.0.1');
    const r = await reply(u);
    assert.ok(r, 'no UDP reply');
    const parsed = SocksClient.parseUDPFrame(r);
    assert.equal(parsed.remoteHost.host, '10.66.0.2');
    assert.equal(parsed.remoteHost.port, 7);
    assert.equal(parsed.data.toString(), 'echo:via socks lib');
    u.close();
    assoc.socket.destroy();
  });

  test('bad input on the control connection: clear replies or a clean close, and the proxy keeps serving', async () => {
    const port = (proxy.address() as net.AddressInfo).port;
    const talk = async (bytes: number[][], expectLen: number): Promise<Buffer> => {
      const s = net.connect(port, '127.0.0.1');
      await once(s, 'connect');
      let got = Buffer.alloc(0);
      s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
      for (const b of bytes) s.write(Buffer.from(b));
      await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, 500))]);
      s.destroy();
      assert.ok(got.length >= expectLen, `reply ${got.toString('hex')}`);
      return got;
    };
    assert.equal((await talk([[4, 1, 0, 80, 10, 66, 0, 2, 0]], 0)).length, 0, 'SOCKS4 is closed without a reply');
    assert.deepEqual([...(await talk([[5, 1, 0]], 2))], [5, 0xff], 'no acceptable method: 0xFF');
    assert.deepEqual([...(await talk([[5, 1, 2], [1, 1, 0x75, 1, 0x78]], 4))], [5, 2, 1, 1], 'wrong password: RFC 1929 failure');
    const badAtyp = await talk([[5, 1, 2], [1, 1, 0x75, 1, 0x70], [5, 1, 0, 9, 1, 2, 3, 4, 0, 80]], 6);
    assert.equal(badAtyp[4 + 1], 8, 'ATYP 9: reply 8, address type not supported');
    const bind = await talk([[5, 1, 2], [1, 1, 0x75, 1, 0x70], [5, 2, 0, 1, 10, 66, 0, 2, 0, 80]], 6);
    assert.equal(bind[4 + 1], 7, 'BIND: reply 7, command not supported');
    await talk([Array.from({ length: 2000 }, () => 5)], 0); // an oversized greeting is cut off
    // Still serving:
    const { ctl } = await associate();
    ctl.destroy();
  });

  test('closing the control connection ends the association', async () => {
    const { ctl, relayPort } = await associate();
    const u = await client();
    u.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7), Buffer.from('a')]), relayPort, '127.0.0.1');
    assert.ok(await reply(u));
    ctl.destroy();
    await new Promise((r) => setTimeout(r, 100));
    u.send(Buffer.concat([udpHeader(1, '10.66.0.2', 7), Buffer.from('b')]), relayPort, '127.0.0.1');
    assert.equal(await reply(u, 300), undefined);
    u.close();
  });
});

describe('SOCKS5 request log and DNS failures (issue 15)', () => {
  type Line = { level: string; msg: string; fields: Record<string, unknown> };

  /** Greets without auth and sends a CONNECT; returns the socket and the reply's code (RFC 1928 §6). */
  async function connectVia(port: number, atyp: 1 | 3, host: string, dport: number): Promise<{ s: net.Socket; rep: number }> {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    s.write(Buffer.from([5, 1, 0]));
    assert.deepEqual([...(await readN(s, 2))], [5, 0]);
    const addr = atyp === 1 ? Buffer.from(host.split('.').map(Number)) : Buffer.concat([Buffer.from([host.length]), Buffer.from(host)]);
    const req = Buffer.concat([Buffer.from([5, 1, 0, atyp]), addr, Buffer.from([dport >> 8, dport & 0xff])]);
    s.write(req);
    const head = await readN(s, 5);
    await readN(s, head[3] === 1 ? 5 : head[3] === 4 ? 17 : head[4]! + 2); // the rest of BND.ADDR + BND.PORT
    return { s, rep: head[1]! };
  }

  test('each CONNECT is logged once with method, target, outcome and bytes; a name the DNS server cannot resolve is a DNS failure answered 0x04', async () => {
    // A's DNS server is B, which has nothing on port 53: B answers ICMP port unreachable, which the
    // tunnel's resolver reports as ECONNREFUSED (getaddrinfo) — formerly logged and answered as a refused connection.
    const pair = await tunnelPair({ extraA: 'DNS = 10.66.0.2\n' });
    const lines: Line[] = [];
    const proxy = createSocks5Server({ dialer: tunnelDialer(pair.a), log: (level, msg, fields) => void lines.push({ level, msg, fields: fields ?? {} }) });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const port = (proxy.address() as net.AddressInfo).port;
    const web = pair.b.createServer((sock) => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
    web.listen(80);
    try {
      const dns = await connectVia(port, 3, 'nowhere.example', 80);
      assert.equal(dns.rep, 4, 'a failed lookup: X04 host unreachable (RFC 1928 §6), not X05 refused');
      dns.s.destroy();
      const fail = lines.find((l) => l.fields.target === 'nowhere.example:80')!;
      assert.ok(fail, JSON.stringify(lines));
      assert.equal(fail.msg, 'socks5 request');
      assert.equal(fail.level, 'info');
      assert.equal(fail.fields.outcome, 'dns-failed');
      assert.equal(fail.fields.error, 'EAI_AGAIN', 'what getaddrinfo says when the DNS server does not answer');
      assert.ok(!JSON.stringify(fail).includes('ECONNREFUSED'), JSON.stringify(fail));

      const refused = await connectVia(port, 1, '10.66.0.2', 81);
      assert.equal(refused.rep, 5, 'a RST from the target: X05 connection refused');
      refused.s.destroy();
      const rl = lines.find((l) => l.fields.target === '10.66.0.2:81')!;
      assert.deepEqual([rl.fields.outcome, rl.fields.error], ['refused', 'ECONNREFUSED']);

      const ok = await connectVia(port, 1, '10.66.0.2', 80);
      assert.equal(ok.rep, 0);
      ok.s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      let text = '';
      for await (const d of ok.s) text += d;
      assert.match(text, /\r\n\r\nok$/);
      const until = Date.now() + 5000;
      while (!lines.some((l) => l.fields.target === '10.66.0.2:80') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      const line = lines.find((l) => l.fields.target === '10.66.0.2:80')!;
      assert.ok(line, JSON.stringify(lines));
      assert.equal(line.level, 'debug');
      assert.equal(line.msg, 'socks5 request');
      assert.deepEqual(Object.keys(line.fields), ['client', 'method', 'target', 'outcome', 'up', 'down', 'ms']);
      assert.equal(line.fields.method, 'CONNECT');
      assert.equal(line.fields.outcome, 'ok');
      assert.equal(line.fields.up, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n'.length);
      assert.equal(line.fields.down, text.length);
      assert.match(String(line.fields.client), /^127\.0\.0\.1:\d+$/);
      assert.equal(lines.filter((l) => l.fields.target === '10.66.0.2:80').length, 1, 'one line per request');
    } finally {
      web.close();
      proxy.close();
      await pair.close();
    }
  });

  test('dialFailure: lookup failures keep their DNS name and getaddrinfo codes; connect failures keep theirs', () => {
    const e = (code: string, syscall: string): NodeJS.ErrnoException => Object.assign(new Error(`${syscall} ${code}`), { code, syscall });
    assert.deepEqual(dialFailure(e('ENOTFOUND', 'getaddrinfo')), { outcome: 'dns-failed', error: 'ENOTFOUND' });
    assert.deepEqual(dialFailure(e('ECONNREFUSED', 'getaddrinfo')), { outcome: 'dns-failed', error: 'EAI_AGAIN' });
    assert.deepEqual(dialFailure(e('ETIMEOUT', 'getaddrinfo')), { outcome: 'dns-failed', error: 'EAI_AGAIN' });
    assert.deepEqual(dialFailure(e('EAI_AGAIN', 'getaddrinfo')), { outcome: 'dns-failed', error: 'EAI_AGAIN' });
    assert.deepEqual(dialFailure(e('ECONNREFUSED', 'connect')), { outcome: 'refused', error: 'ECONNREFUSED' });
    assert.deepEqual(dialFailure(e('ETIMEDOUT', 'connect')), { outcome: 'timeout', error: 'ETIMEDOUT' });
    assert.deepEqual(dialFailure(e('EHOSTUNREACH', 'connect')), { outcome: 'unreachable', error: 'EHOSTUNREACH' });
  });
});
