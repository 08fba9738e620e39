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
import { tunnelDialer } from '../../src/cli/dialer.js';

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
