/**
 * TunnelOptions.limits (issue 18): the netstack's per-peer shares as a library user sets
 * them, checked where the value arrives, and in force on real connections; peerFor().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Tunnel, type TcpSocket } from '../../src/index.js';
import { tunnelPair, keyPair } from '../harness/tunnel-pair.js';

test('limits.tcpConnectionsPerPeer: a peer over its share is refused alone; a closed connection gives its place back', async () => {
  const p = await tunnelPair({ limits: { tcpConnectionsPerPeer: 2 } });
  const held: TcpSocket[] = [];
  const srv = p.a.createServer((s) => {
    s.on('error', () => {});
    held.push(s);
  });
  srv.listen(7000);
  try {
    const open = async (): Promise<TcpSocket> => {
      const s = p.b.connect(7000, '10.66.0.1');
      await once(s, 'connect');
      return s;
    };
    const c1 = await open();
    await open();
    // The third SYN from the same peer goes unanswered (as a full accept queue's), so the connect times out.
    const c3 = p.b.connect({ port: 7000, host: '10.66.0.1', connectTimeout: 1500 });
    const err = await new Promise<NodeJS.ErrnoException | 'connected'>((resolve) => {
      c3.once('error', resolve);
      c3.once('connect', () => resolve('connected'));
    });
    assert.notEqual(err, 'connected', 'the third connection of one peer must be refused');
    assert.equal((err as NodeJS.ErrnoException).code, 'ETIMEDOUT');
    c1.destroy();
    held[0]!.destroy();
    // Once the first connection is gone (RST both ways: no TIME-WAIT held), a new one fits.
    const deadline = Date.now() + 5000;
    for (;;) {
      const s = p.b.connect({ port: 7000, host: '10.66.0.1', connectTimeout: 1000 });
      const ok = await new Promise<boolean>((resolve) => {
        s.once('connect', () => resolve(true));
        s.once('error', () => resolve(false));
      });
      if (ok) break;
      assert.ok(Date.now() < deadline, 'a place was given back');
    }
  } finally {
    srv.close();
    await p.close();
  }
});

test('limits are checked when the tunnel is created: a clear error, nothing opened', async () => {
  const k = keyPair();
  const peer = keyPair();
  const conf = `[Interface]\nPrivateKey = ${k.privateKey}\nAddress = 10.9.0.1/24\n[Peer]\nPublicKey = ${peer.publicKey}\nAllowedIPs = 10.9.0.0/24\n`;
  await assert.rejects(Tunnel.create(conf, { limits: { tcpConnectionsPerPeer: 0 } }), { code: 'ERR_WGNET_INVALID_ARGUMENT', message: /limits\.tcpConnectionsPerPeer: expected an integer >= 1/ });
  await assert.rejects(Tunnel.create(conf, { limits: { synQueuePerPeer: 1.5 } }), { code: 'ERR_WGNET_INVALID_ARGUMENT' });
  await assert.rejects(Tunnel.create(conf, { limits: { tcpConnectionPerPeer: 5 } as never }), { code: 'ERR_WGNET_INVALID_ARGUMENT', message: /limits\.tcpConnectionPerPeer: unknown limit/ });
  const t = await Tunnel.create(conf, { limits: { reassemblyBytes: 1 << 20, reassemblyBytesPerPeer: 1 << 18, synQueuePerPeer: 4 } });
  try {
    assert.equal(t.peerFor('10.9.0.77'), peer.publicKey);
    assert.equal(t.peerFor('10.10.0.1'), undefined);
    assert.throws(() => t.peerFor('nope'), { code: 'ERR_WGNET_INVALID_ARGUMENT' });
  } finally {
    await t.close();
  }
});
