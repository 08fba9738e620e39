/**
 * DESIGN §5: secrets never appear in logs, errors, `inspect` or JSON. A tunnel with a
 * live session (so session keys exist too) is inspected, stringified and logged in every
 * way a user might, and no form of the private or preshared key may show up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import util from 'node:util';
import { once } from 'node:events';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';

function forms(b64: string): string[] {
  const bytes = Buffer.from(b64, 'base64');
  return [
    b64,
    b64.slice(0, 12),
    bytes.toString('hex'),
    bytes.toString('hex').slice(0, 16),
    // how util.inspect prints a Uint8Array / Buffer
    [...bytes.subarray(0, 6)].join(', '),
    [...bytes.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(' '),
  ];
}

test('no key material in inspect, console.log, JSON of the tunnel, its config, device and peers', async () => {
  const ka = keyPair();
  const kb = keyPair();
  const psk = keyPair().privateKey;
  const a = await Tunnel.create({
    privateKey: ka.privateKey,
    addresses: ['10.77.0.1/32'],
    peers: [{ publicKey: kb.publicKey, presharedKey: psk, allowedIps: ['10.77.0.2/32'] }],
  });
  const b = await Tunnel.create(
    `[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.77.0.2/32\n[Peer]\nPublicKey = ${ka.publicKey}\nPresharedKey = ${psk}\nAllowedIPs = 10.77.0.1/32\nEndpoint = 127.0.0.1:${a.listenPort}\n`,
  );
  try {
    const server = a.createServer((s) => s.end('ok'));
    server.listen(80);
    const c = b.connect(80, '10.77.0.1');
    await once(c, 'connect'); // both sides now hold session keys
    c.destroy();
    const views: string[] = [];
    for (const t of [a, b]) {
      views.push(util.inspect(t), util.inspect(t, { depth: Infinity, showHidden: true }), util.format('%o', t), JSON.stringify(t));
      views.push(util.inspect(t.config, { depth: Infinity }), JSON.stringify(t.config), JSON.stringify({ ...t.config }));
      views.push(util.inspect(t.device, { depth: Infinity }));
      for (const p of t.device.peers()) views.push(util.inspect(p, { depth: Infinity, showHidden: true }));
    }
    const all = views.join('\n');
    for (const secret of [ka.privateKey, kb.privateKey, psk]) {
      for (const f of forms(secret)) assert.ok(!all.includes(f), `a form of a secret key appears: ${f.slice(0, 4)}...`);
    }
    // Public facts stay visible.
    assert.match(util.inspect(a), new RegExp(ka.publicKey.replace(/[+/]/g, '\\$&')));
    assert.match(JSON.stringify(b), /10\.77\.0\.2/);
    // The keys are still there for code that asks for them by name.
    assert.equal(Buffer.from(a.config.privateKey).toString('base64'), ka.privateKey);
  } finally {
    await b.close();
    await a.close();
  }
});
