/** `wgnet genkey/pubkey/genpsk` are byte-for-byte interchangeable with `wg`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/wgnet.js', import.meta.url));
const wgnet = (args: string[], input?: string): string => execFileSync(process.execPath, [BIN, ...args], { input, encoding: 'utf8' });
const hasWg = spawnSync('sh', ['-c', 'command -v wg']).status === 0;
const skipWg = hasWg ? false : process.env.CI ? assert.fail('CI=true but wg (wireguard-tools) is missing') : "needs 'wg' (wireguard-tools)";

test('genkey prints a clamped 32-byte key in base64; genpsk 32 bytes', () => {
  const k = Buffer.from(wgnet(['genkey']).trim(), 'base64');
  assert.equal(k.length, 32);
  assert.equal(k[0]! & 7, 0);
  assert.equal(k[31]! & 0x80, 0);
  assert.equal(k[31]! & 0x40, 0x40);
  assert.equal(Buffer.from(wgnet(['genpsk']).trim(), 'base64').length, 32);
});

test('wgnet pubkey rejects a bad key with wg pubkey\'s message', () => {
  const r = spawnSync(process.execPath, [BIN, 'pubkey'], { input: 'not a key\n', encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /Key is not the correct length or format/);
});

test('wgnet genkey | wg pubkey == wgnet pubkey, and wg genkey | wgnet pubkey == wg pubkey', { skip: skipWg }, () => {
  for (let i = 0; i < 5; i++) {
    const k1 = wgnet(['genkey']);
    assert.equal(wgnet(['pubkey'], k1), execFileSync('wg', ['pubkey'], { input: k1, encoding: 'utf8' }));
    const k2 = execFileSync('wg', ['genkey'], { encoding: 'utf8' });
    assert.equal(wgnet(['pubkey'], k2), execFileSync('wg', ['pubkey'], { input: k2, encoding: 'utf8' }));
  }
});
