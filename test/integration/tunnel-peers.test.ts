/**
 * What the CLI reads of a tunnel, through public methods rather than its engine and device
 * (issue 13): peers() as `wg show` lists them (public facts only), startHandshakes(), and the
 * outer socket's backend; peers configured by host name looked up again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { tunnelPair, keyPair } from '../harness/tunnel-pair.js';
import { Tunnel } from '../../src/index.js';

test('startHandshakes() handshakes with no packet sent; peers() lists public facts only; udpBackend', async () => {
  const p = await tunnelPair();
  try {
    const [before] = p.b.peers();
    assert.equal(before!.publicKey, p.a.publicKey);
    assert.equal(before!.lastHandshakeTime, 0);
    assert.deepEqual(before!.allowedIps, ['10.66.0.1/32', 'fd66::1/128']);
    assert.deepEqual(before!.endpoint, { address: '127.0.0.1', port: p.a.listenPort });
    assert.equal(before!.presharedKey, false);
    assert.equal(before!.persistentKeepalive, 0);

    const hs = once(p.a, 'handshake');
    const t0 = Date.now();
    p.b.startHandshakes();
    await hs;
    const [after] = p.b.peers();
    const [onA] = p.a.peers();
    assert.ok(onA!.lastHandshakeTime >= t0 - 1000 && onA!.lastHandshakeTime <= Date.now() + 1000, String(onA!.lastHandshakeTime));
    assert.ok(after!.txBytes > 0);
    // Only public keys, and exactly the fields documented.
    assert.deepEqual(Object.keys(after!).sort(), ['allowedIps', 'endpoint', 'lastHandshakeTime', 'persistentKeepalive', 'presharedKey', 'publicKey', 'rxBytes', 'txBytes']);

    assert.ok(p.a.udpBackend === 'batched' || p.a.udpBackend === 'dgram', String(p.a.udpBackend));
    await p.a.pause();
    assert.equal(p.a.udpBackend, undefined);
    await p.a.resume();
    assert.ok(p.a.udpBackend !== undefined);
  } finally {
    await p.close();
  }
  assert.equal(p.a.udpBackend, undefined);
  assert.throws(() => p.a.startHandshakes(), (e: Error & { code?: string }) => e.code === 'ERR_WGNET_CLOSED');
});

test('a peer configured by host name is looked up again on resume() (a new network may answer differently)', async () => {
  const peer = keyPair();
  const t = await Tunnel.create({ privateKey: keyPair().privateKey, address: '10.98.0.2/24', peers: [{ publicKey: peer.publicKey, allowedIps: '10.98.0.0/24', endpoint: 'localhost:51999' }] });
  try {
    const looked = t.peers()[0]!.endpoint;
    assert.equal(looked?.port, 51999);
    assert.ok(looked?.address === '127.0.0.1' || looked?.address === '::1', String(looked?.address));
    // The peer moved (as roaming or wg set would move it); resume() asks the name again.
    await t.ipcSet(`public_key=${Buffer.from(peer.publicKey, 'base64').toString('hex')}\nendpoint=192.0.2.9:1\n`);
    assert.deepEqual(t.peers()[0]!.endpoint, { address: '192.0.2.9', port: 1 });
    await t.pause();
    await t.resume();
    assert.deepEqual(t.peers()[0]!.endpoint, looked);
  } finally {
    await t.close();
  }
});
