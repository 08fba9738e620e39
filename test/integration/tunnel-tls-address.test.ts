/**
 * A TLS socket over a tunnel socket knows both ends' addresses, as one over a kernel socket
 * does: an https server hosted on the tunnel the README's way (`server.emit('connection', sock)`)
 * sees `req.socket.remoteAddress`, and so does a `tls.connect({ socket })` client.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { privateCa, type PrivateCa } from '../harness/tls-ca.js';

type Ends = { remoteAddress?: string; remotePort?: number; remoteFamily?: string; localAddress?: string; localPort?: number };
const ends = (s: Ends): Ends => ({ remoteAddress: s.remoteAddress, remotePort: s.remotePort, remoteFamily: s.remoteFamily, localAddress: s.localAddress, localPort: s.localPort });

let p: TunnelPair;
let pki: PrivateCa;
let served: Ends | undefined;

before(async () => {
  pki = privateCa(['IP:10.66.0.2', 'IP:fd66::2']);
  p = await tunnelPair();
  const web = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
    served = ends(req.socket);
    res.end('ok');
  });
  p.b.createServer((s) => web.emit('connection', s)).listen(443);
  await p.a.ready();
});
after(async () => {
  await p.close();
});

function get(host: string): Promise<Ends> {
  return new Promise((resolve, reject) => {
    https
      .get({ agent: p.a.httpsAgent, host, port: 443, path: '/', ca: pki.ca }, (res) => {
        const client = ends(res.socket);
        res.resume();
        res.on('end', () => resolve(client));
      })
      .on('error', reject);
  });
}

test('https server on the tunnel: req.socket has the client address and port; the client sees the server', async () => {
  const client = await get('10.66.0.2');
  assert.equal(served?.remoteAddress, '10.66.0.1');
  assert.equal(served?.remoteFamily, 'IPv4');
  assert.equal(served?.localAddress, '10.66.0.2');
  assert.equal(served?.localPort, 443);
  assert.equal(client.remoteAddress, '10.66.0.2');
  assert.equal(client.remotePort, 443);
  assert.equal(client.localAddress, '10.66.0.1');
  assert.equal(typeof client.localPort, 'number');
  assert.equal(served?.remotePort, client.localPort);
});

test('IPv6: the same, with family IPv6', async () => {
  const client = await get('fd66::2');
  assert.deepEqual(
    { address: served?.remoteAddress, family: served?.remoteFamily, port: served?.remotePort },
    { address: 'fd66::1', family: 'IPv6', port: client.localPort },
  );
});

test('tls.connect({ socket }) over tunnel.connect() and a tls.Server fed the accepted socket', async () => {
  const server = tls.createServer({ key: pki.key, cert: pki.cert }, (s) => s.end('hi'));
  const accepted = new Promise<Ends>((resolve) => server.once('secureConnection', (s) => resolve(ends(s))));
  p.b.createServer((s) => server.emit('connection', s)).listen(8443);
  const c = tls.connect({ socket: p.a.connect(8443, '10.66.0.2'), ca: pki.ca, host: '10.66.0.2' });
  await once(c, 'secureConnect');
  const s = await accepted;
  assert.equal(s.remoteAddress, '10.66.0.1');
  assert.equal(c.remoteAddress, '10.66.0.2');
  assert.equal(c.remotePort, 8443);
  assert.equal(s.remotePort, c.localPort);
  c.destroy();
});

test('a TLS socket over any other stream reports no address, as before', () => {
  const t = new tls.TLSSocket(new Duplex({ read() {}, write: (_c, _e, cb) => cb() }));
  assert.equal(t.remoteAddress, undefined);
  assert.equal(t.localAddress, undefined);
  t.destroy();
});
