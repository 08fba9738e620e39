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
