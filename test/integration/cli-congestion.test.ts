/**
 * --congestion-control on the long-running commands: a bad name is one clear line and exit 1;
 * 'bbr' reaches the tunnel (a gateway started with it relays a download through BBR's sender).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';

const BIN = fileURLToPath(new URL('../../bin/wgnet.js', import.meta.url));

test('a bad --congestion-control name is refused with the names that work', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-cc-'));
  try {
    const conf = join(dir, 'wg0.conf');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${keyPair().privateKey}\nAddress = 10.90.0.1/24\n`, { mode: 0o600 });
    for (const cmd of ['proxy', 'gateway']) {
      const r = spawnSync(process.execPath, [BIN, cmd, '-c', conf, '--congestion-control', 'vegas'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 1, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /--congestion-control: expected cubic, bbr or newreno, got 'vegas'/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('wgnet gateway --congestion-control bbr relays a 2 MB download to a peer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-cc-'));
  const kg = keyPair();
  const kc = keyPair();
  const data = Buffer.alloc(2 * 1024 * 1024, 7);
  const server = net.createServer((s) => s.on('error', () => {}).end(data));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const conf = join(dir, 'gw.conf');
  writeFileSync(conf, `[Interface]\nPrivateKey = ${kg.privateKey}\nAddress = 10.90.0.2/24\nListenPort = 0\n[Peer]\nPublicKey = ${kc.publicKey}\nAllowedIPs = 10.90.0.1/32\n`, { mode: 0o600 });
  const gw = spawn(process.execPath, [BIN, 'gateway', '-c', conf, '--allow', '127.0.0.0/8', '--congestion-control', 'bbr'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let c: Tunnel | undefined;
  try {
    let out = '';
    gw.stdout!.on('data', (d: Buffer) => (out += d));
    gw.stderr!.resume();
    while (!/listen=(\d+)/.test(out)) await new Promise((r) => setTimeout(r, 50));
    const gport = Number(/listen=(\d+)/.exec(out)![1]);
    c = await Tunnel.create(`[Interface]\nPrivateKey = ${kc.privateKey}\nAddress = 10.90.0.1/24\n[Peer]\nPublicKey = ${kg.publicKey}\nAllowedIPs = 10.90.0.0/24, 127.0.0.0/8\nEndpoint = 127.0.0.1:${gport}\n`);
    const s = c.connect(port, '127.0.0.1');
    let n = 0;
    for await (const d of s) n += (d as Buffer).length;
    assert.equal(n, data.length);
  } finally {
    await c?.close();
    gw.kill('SIGTERM');
    // A gateway stopped while a relayed flow may still be open exits promptly and cleanly.
    const exited = await Promise.race([once(gw, 'exit').then(([code]) => code as number), new Promise<string>((r) => setTimeout(() => r('timeout'), 5000))]);
    if (exited === 'timeout') gw.kill('SIGKILL');
    assert.equal(exited, 0, 'the gateway exits with 0 on SIGTERM');
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
