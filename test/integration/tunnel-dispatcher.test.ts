/**
 * tunnel.createDispatcher() (issue 13): https through the tunnel to a server whose certificate
 * a private CA signed, TLS options as tls.connect takes them, no IP address as servername
 * (RFC 6066 §3), HTTP/2 by ALPN (RFC 7301) with allowH2, a connect timeout that covers the TLS
 * handshake; tunnel.fetch() honours the `dispatcher` it is given.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import http2 from 'node:http2';
import type tls from 'node:tls';
import { fetch as undiciFetch } from 'undici';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { privateCa, type PrivateCa } from '../harness/tls-ca.js';

/** What the https server on B saw of the last request. */
let seen: { servername: string | false | null | undefined } = { servername: undefined };

const causeCode = (code: string) => (e: unknown): boolean => {
  const c = (e as { cause?: { code?: string } }).cause;
  assert.equal(c?.code, code, `expected a fetch failure caused by ${code}, got ${String((e as Error).message)} / ${String(c?.code)}`);
  return true;
};

describe('createDispatcher', () => {
  let p: TunnelPair;
  let pki: PrivateCa;
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);

  before(async () => {
    pki = privateCa(['DNS:db.internal', 'IP:10.66.0.2']);
    p = await tunnelPair();
    const web = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
      seen = { servername: (req.socket as tls.TLSSocket).servername };
      res.end('hello over tls');
    });
    p.b.createServer((s) => web.emit('connection', s)).listen(443);
    // Accepts and never answers: a TLS handshake that does not finish.
    p.b.createServer(() => {}).listen(444);
    const h2 = http2.createSecureServer({ key: pki.key, cert: pki.cert, allowHTTP1: true }, (req, res) => res.end(req.httpVersion));
    p.b.createServer((s) => h2.emit('connection', s)).listen(8443);
    await p.a.ready();
    process.on('warning', onWarning);
  });
  after(async () => {
    process.off('warning', onWarning);
    await p.close();
  });

  test('a private CA: fetch with createDispatcher({ connect: { ca } }) succeeds; without the CA it fails with a certificate error', async () => {
    const d = p.a.createDispatcher({ connect: { ca: pki.ca } });
    const r = await p.a.fetch('https://10.66.0.2/', { dispatcher: d });
    assert.equal(await r.text(), 'hello over tls');
    // The same dispatcher with undici's own fetch.
    assert.equal(await (await undiciFetch('https://10.66.0.2/', { dispatcher: d })).text(), 'hello over tls');
    await assert.rejects(p.a.fetch('https://10.66.0.2/'), causeCode('UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
    await assert.rejects(p.a.fetch('https://10.66.0.2/', { dispatcher: p.a.createDispatcher() }), causeCode('UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
    // rejectUnauthorized: false, as tls.connect takes it.
    const lax = p.a.createDispatcher({ connect: { rejectUnauthorized: false } });
    assert.equal(await (await p.a.fetch('https://10.66.0.2/', { dispatcher: lax })).text(), 'hello over tls');
  });

  test('the certificate is checked against the URL host, an IP included; an IP is never sent as servername', async () => {
    const d = p.a.createDispatcher({ connect: { ca: pki.ca } });
    await (await p.a.fetch('https://10.66.0.2/', { dispatcher: d })).text();
    assert.equal(seen.servername, false, 'a servername (SNI) was sent for an IP address');
    // fd66::2 is the same server, but the certificate does not name it.
    await assert.rejects(p.a.fetch('https://[fd66::2]/', { dispatcher: d }), causeCode('ERR_TLS_CERT_ALTNAME_INVALID'));
    // An explicit servername is sent, and the certificate is checked against the host still.
    const named = p.a.createDispatcher({ connect: { ca: pki.ca, servername: 'db.internal' } });
    await (await p.a.fetch('https://10.66.0.2/', { dispatcher: named })).text();
    assert.equal(seen.servername, 'db.internal');
    // An IP given as servername is dropped, with no DEP0123 warning.
    const ipName = p.a.createDispatcher({ connect: { ca: pki.ca, servername: '10.66.0.2' } });
    await (await p.a.fetch('https://10.66.0.2/', { dispatcher: ipName })).text();
    assert.equal(seen.servername, false);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings.filter((w) => (w as { code?: string }).code === 'DEP0123'), []);
  });

  test('allowH2 negotiates h2 against an http2 secure server; without it, HTTP/1.1', async () => {
    const h2 = p.a.createDispatcher({ connect: { ca: pki.ca }, allowH2: true });
    assert.equal(await (await p.a.fetch('https://10.66.0.2:8443/', { dispatcher: h2 })).text(), '2.0');
    const h1 = p.a.createDispatcher({ connect: { ca: pki.ca } });
    assert.equal(await (await p.a.fetch('https://10.66.0.2:8443/', { dispatcher: h1 })).text(), '1.1');
  });

  test('connect.timeout bounds the TLS handshake too', async () => {
    const d = p.a.createDispatcher({ connect: { ca: pki.ca, timeout: 300 } });
    const t0 = performance.now();
    await assert.rejects(p.a.fetch('https://10.66.0.2:444/', { dispatcher: d }), causeCode('ETIMEDOUT'));
    assert.ok(performance.now() - t0 < 3000);
    assert.throws(() => p.a.createDispatcher({ connect: { timeout: -1 } }), (e: Error & { code?: string }) => e.code === 'ERR_WGNET_INVALID_ARGUMENT');
  });
});

test('dispatchers close with the tunnel; createDispatcher() on a closed tunnel throws ERR_WGNET_CLOSED', async () => {
  const p = await tunnelPair();
  const d = p.a.createDispatcher() as unknown as { destroyed: boolean };
  const closedEarly = p.a.createDispatcher();
  await closedEarly.close();
  await p.close();
  assert.equal(d.destroyed, true);
  assert.throws(() => p.a.createDispatcher(), (e: Error & { code?: string }) => e.code === 'ERR_WGNET_CLOSED');
});
