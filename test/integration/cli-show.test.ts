/**
 * `wgnet show [NAME]` against a running `wgnet proxy --uapi NAME`, both real
 * processes; the UAPI directory is a temporary one (WGNET_UAPI_DIR), so no root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '../../bin/wgnet.js');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' }, (e, out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }));
  });
}

test('wgnet show lists a running tunnel from its UAPI socket; a missing name fails like wg show', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-show-'));
  const env = { WGNET_UAPI_DIR: join(dir, 'run') };
  const me = keyPair();
  const them = keyPair();
  const far = await Tunnel.create(`[Interface]\nPrivateKey = ${them.privateKey}\nAddress = 10.66.0.2/24\n\n[Peer]\nPublicKey = ${me.publicKey}\nAllowedIPs = 10.66.0.1/32\n`);
  writeFileSync(join(dir, 'wg0.conf'), `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.66.0.1/24\n\n[Peer]\nPublicKey = ${them.publicKey}\nAllowedIPs = 10.66.0.0/24\nEndpoint = 127.0.0.1:${far.listenPort}\nPersistentKeepalive = 25\n`, { mode: 0o600 });
  const child = spawn(process.execPath, [BIN, 'proxy', '-c', join(dir, 'wg0.conf'), '--socks5', '127.0.0.1:0', '--uapi', 'wgs0'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        if (/ready/.test(out)) resolve();
      });
      child.once('exit', (c) => reject(new Error(`proxy exited ${c}`)));
    });
    const all = await run(['show'], env);
    assert.equal(all.code, 0, all.err);
    assert.match(all.out, /^interface: wgs0$/m);
    assert.match(all.out, new RegExp(`^  public key: ${me.publicKey.replace(/[+/]/g, '\\$&')}$`, 'm'));
    assert.match(all.out, /^  private key: \(hidden\)$/m);
    assert.match(all.out, new RegExp(`^peer: ${them.publicKey.replace(/[+/]/g, '\\$&')}$`, 'm'));
    assert.match(all.out, new RegExp(`^  endpoint: 127\\.0\\.0\\.1:${far.listenPort}$`, 'm'));
    assert.match(all.out, /^  allowed ips: 10\.66\.0\.0\/24$/m);
    assert.match(all.out, /^  latest handshake: /m);
    assert.match(all.out, /^  persistent keepalive: every 25 seconds$/m);
    assert.ok(!all.out.includes(me.privateKey), 'the private key must never be printed');
    const one = await run(['show', 'wgs0'], env);
    // The two runs are moments apart: "latest handshake" may have moved from "Now" to "1 second ago".
    const steady = (s: string): string => s.replace(/^  latest handshake: .*$/m, '  latest handshake: -');
    assert.equal(steady(one.out), steady(all.out));
    const missing = await run(['show', 'nope0'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /Unable to access interface nope0: No such device/);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await far.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
