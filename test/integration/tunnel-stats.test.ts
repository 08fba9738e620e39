/**
 * The public operations API the CLI uses instead of a tunnel's engine and device (issue 13):
 * stats(), one JSON-safe snapshot of every layer's counters, and syncConfig(), `wg syncconf`
 * for a running tunnel (wg(8): only what differs changes; all or nothing here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Tunnel, ConfigError, type TunnelStats } from '../../src/index.js';
import type { TcpSocket } from '../../src/api/tcp-socket.js';
import { keyPair } from '../harness/tunnel-pair.js';

const hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');

/** Every leaf a number, string, boolean or null (undefined fields aside): nothing JSON would mangle, no byte arrays. */
function assertPlain(v: unknown, path = 'stats'): void {
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') {
    if (typeof v === 'number') assert.ok(Number.isFinite(v), `${path} is ${v}`);
    return;
  }
  assert.ok(!ArrayBuffer.isView(v), `${path} holds bytes`);
  if (Array.isArray(v)) return v.forEach((x, i) => assertPlain(x, `${path}[${i}]`));
  assert.equal(Object.getPrototypeOf(v), Object.prototype, `${path} is a plain object`);
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) assertPlain(x, `${path}.${k}`);
}

/** Echoes every byte back until the client ends. */
function echoServer(t: Tunnel): Promise<void> {
  const srv = t.createServer((s) => s.pipe(s));
  return new Promise((resolve) => srv.listen(7, () => resolve()));
}

/** Writes `n` bytes and resolves once the echo of all of them came back. */
async function roundTrip(s: TcpSocket, n: number): Promise<void> {
  let got = 0;
  const done = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      got += d.length;
      if (got >= n) {
        s.off('data', onData);
        resolve();
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
  s.write(Buffer.alloc(n, 0x61));
  await done;
}

test('stats() counts real traffic through a tunnel pair, by layer, and carries no key bytes', async () => {
  const ka = keyPair();
  const kb = keyPair();
  const psk = keyPair().privateKey; // any 32 random bytes, base64
  const a = await Tunnel.create(`[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.71.0.1/24\n\n[Peer]\nPublicKey = ${kb.publicKey}\nPresharedKey = ${psk}\nAllowedIPs = 10.71.0.2/32\n`);
  const b = await Tunnel.create(`[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.71.0.2/24\n\n[Peer]\nPublicKey = ${ka.publicKey}\nPresharedKey = ${psk}\nAllowedIPs = 10.71.0.1/32\nEndpoint = 127.0.0.1:${a.listenPort}\n`);
  try {
    const zero = a.stats();
    assert.equal(zero.device.rxPackets, 0);
    assert.equal(zero.device.dropped.badAuth, 0, 'every drop reason present, 0 until counted');
    assert.equal(zero.gateway, undefined, 'no gateway section without onFlow()');

    await echoServer(a);
    const s = b.connect(7, '10.71.0.1');
    await once(s, 'connect');
    await roundTrip(s, 200_000);

    const sa: TunnelStats = a.stats();
    const sb = b.stats();
    // The device: inner packets and bytes both ways, one handshake each side.
    assert.ok(sa.device.rxBytes >= 200_000 && sb.device.txBytes >= 200_000, `a rx ${sa.device.rxBytes}, b tx ${sb.device.txBytes}`);
    assert.ok(sa.device.txBytes >= 200_000 && sb.device.rxBytes >= 200_000);
    assert.ok(sa.device.rxPackets > 100 && sa.device.txPackets > 100);
    assert.equal(sb.device.handshakesInitiated, 1);
    assert.equal(sb.device.handshakesCompleted, 1);
    assert.equal(sa.device.handshakesCompleted, 1);
    // Peers by base64 public key, with the bytes the device counted for them.
    assert.equal(sa.peers.length, 1);
    assert.equal(sa.peers[0]!.publicKey, kb.publicKey);
    assert.equal(sa.peers[0]!.presharedKey, true);
    assert.ok(sa.peers[0]!.rxBytes > 200_000);
    assert.ok(sa.peers[0]!.lastHandshakeTime > 0);
    // TCP: one established connection each side, segments both ways.
    assert.equal(sa.tcp?.connections, 1);
    assert.equal(sa.tcp?.byState.ESTABLISHED, 1);
    assert.ok(sa.tcp!.counters.rxSegments > 50 && sb.tcp!.counters.txSegments > 50);
    // The netstack's own counters.
    assert.ok((sa.netstack.rxPackets ?? 0) >= sa.tcp!.counters.rxSegments);
    // A copy: later traffic does not change a snapshot already taken.
    const frozen = JSON.stringify(sa);
    await roundTrip(s, 1000);
    assert.equal(JSON.stringify(sa), frozen);
    assert.ok(a.stats().device.rxBytes > sa.device.rxBytes);

    // Gateway counters appear once the tunnel is a gateway.
    a.onFlow(() => 'reject');
    assert.deepEqual(a.stats().gateway, { flows: 0, heldSyns: 0, udpFlows: 0, counters: {} });

    for (const st of [a.stats(), b.stats()]) {
      assertPlain(st);
      const json = JSON.stringify(st);
      assert.deepEqual(JSON.parse(json), st, 'JSON round-trips it unchanged');
      for (const secret of [ka.privateKey, kb.privateKey, psk]) {
        assert.ok(!json.includes(secret), 'no private or preshared key, base64');
        assert.ok(!json.includes(hex(secret)), 'no private or preshared key, hex');
      }
    }
    s.destroy();
  } finally {
    await b.close();
    await a.close();
  }
  assert.ok(a.stats().device.rxBytes > 0, 'the last counts stay readable after close()');
});

test('syncConfig(): a peer added, one removed, one changed in place; a TCP connection through the unchanged peer goes on; a bad config changes nothing', async () => {
  const ka = keyPair();
  const kb = keyPair();
  const changedKey = keyPair().publicKey;
  const removedKey = keyPair().publicKey;
  const addedKey = keyPair().publicKey;
  const iface = `[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.72.0.1/24\n`;
  const peerB = `[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.72.0.2/32\n`;
  const a = await Tunnel.create(`${iface}\n${peerB}\n[Peer]\nPublicKey = ${changedKey}\nAllowedIPs = 10.72.0.3/32\n\n[Peer]\nPublicKey = ${removedKey}\nAllowedIPs = 10.72.0.4/32\nEndpoint = 127.0.0.1:9\n`);
  const b = await Tunnel.create(`[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.72.0.2/24\n\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.72.0.1/32\nEndpoint = 127.0.0.1:${a.listenPort}\n`);
  try {
    await echoServer(a);
    const s = b.connect(7, '10.72.0.1');
    await once(s, 'connect');
    await roundTrip(s, 50_000);
    const handshakes = a.stats().device.handshakesCompleted;
    const endpointOfB = a.peers().find((p) => p.publicKey === kb.publicKey)!.endpoint;
    assert.ok(endpointOfB, 'b roamed to a: a learnt its endpoint');

    // b is listed without an Endpoint: it keeps the roamed one, as wg syncconf.
    const next = `${iface}\n${peerB}\n[Peer]\nPublicKey = ${changedKey}\nAllowedIPs = 10.72.0.3/32, 10.77.0.0/24\nPersistentKeepalive = 0\n\n[Peer]\nPublicKey = ${addedKey}\nAllowedIPs = 10.78.0.0/24\nEndpoint = 127.0.0.1:9\n`;
    const r = await a.syncConfig(next);
    assert.deepEqual(r, { added: 1, removed: 1, changed: 1, unchanged: 1, restartNeeded: [], privateKeyChanged: false, warnings: [] });
    const byKey = new Map(a.peers().map((p) => [p.publicKey, p]));
    assert.deepEqual([...byKey.keys()].sort(), [kb.publicKey, changedKey, addedKey].sort());
    assert.deepEqual(byKey.get(changedKey)!.allowedIps.sort(), ['10.72.0.3/32', '10.77.0.0/24']);
    assert.deepEqual(byKey.get(kb.publicKey)!.endpoint, endpointOfB);
    assert.ok(a.routes('10.77.0.9') && a.routes('10.78.0.9') && !a.routes('10.72.0.4'));
    assert.deepEqual(a.config.peers.map((p) => p.allowedIps.length), [1, 2, 1], 'config is the running one now');

    // The connection through the unchanged peer goes on, on the same session.
    await roundTrip(s, 50_000);
    assert.equal(a.stats().device.handshakesCompleted, handshakes, 'no new handshake: the session was untouched');

    // The same config again: nothing differs. Address and MTU changes are reported, not applied.
    assert.deepEqual(await a.syncConfig(next), { added: 0, removed: 0, changed: 0, unchanged: 3, restartNeeded: [], privateKeyChanged: false, warnings: [] });
    const moved = await a.syncConfig(next.replace('Address = 10.72.0.1/24', 'Address = 10.72.0.9/24\nMTU = 1280'));
    assert.deepEqual(moved.restartNeeded, ['Address', 'MTU']);
    assert.deepEqual(a.addresses, ['10.72.0.1']);

    // Bad configs: each rejects with its typed error, and the running config stays whole.
    const before = JSON.stringify(a.peers().map((p) => [p.publicKey, p.allowedIps, p.endpoint]));
    const extra = `\n[Peer]\nPublicKey = ${keyPair().publicKey}\nAllowedIPs = 10.79.0.0/24\n`;
    await assert.rejects(a.syncConfig(`${iface}this is not a config line\n`), (e: Error) => e instanceof ConfigError && (e as ConfigError).code === 'ERR_WGNET_CONFIG' && /^<config>:4: /.test(e.message));
    await assert.rejects(a.syncConfig(`${iface}${extra}\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.80.0.0/24\n`), { code: 'ERR_WGNET_INVALID_KEY' }, 'a peer with our own key');
    await assert.rejects(a.syncConfig(`${iface}${extra}\n[Peer]\nPublicKey = ${Buffer.alloc(32).toString('base64')}\nAllowedIPs = 10.81.0.0/24\n`), { code: 'ERR_WGNET_INVALID_KEY' }, 'a low-order key');
    assert.equal(JSON.stringify(a.peers().map((p) => [p.publicKey, p.allowedIps, p.endpoint])), before);
    await roundTrip(s, 10_000);

    // A peer removed by a sync loses its sessions; the tunnel keeps serving the others.
    const gone = await a.syncConfig(`${iface}\n[Peer]\nPublicKey = ${changedKey}\nAllowedIPs = 10.72.0.3/32\n`);
    assert.equal(gone.removed, 2);
    s.destroy();
    await a.close();
    await assert.rejects(a.syncConfig(next), { code: 'ERR_WGNET_CLOSED' });
  } finally {
    await b.close();
    await a.close();
  }
});
