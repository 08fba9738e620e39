/**
 * Bun and Deno against the real wireguard-go (issue 16): a wgnet tunnel in each runtime
 * fetches from, connects to, pings and serves a kernel stack behind wireguard-go in a
 * network namespace; the namespace's servers must see the tunnel address. Needs root and
 * wireguard-go (interop), and bun/deno on PATH (CI installs both from npm).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { interopSkipReason, startWgGo, genKeyPair, startServer } from '../interop/harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const root = join(HERE, '..', '..');
const script = join(HERE, 'scripts', 'wireguard-go-peer.ts');
const SERVERS = join(root, 'test', 'interop', 'servers.py');
const interop = interopSkipReason();

const runtimes = [
  { name: 'bun', args: [script] },
  { name: 'deno', args: ['run', '-A', '--no-lock', '--unstable-sloppy-imports', script] },
];

function version(bin: string): string | undefined {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n')[0] : undefined;
}

describe('Bun and Deno against the real wireguard-go', { skip: interop }, () => {
  for (const rt of runtimes) {
    const v = version(rt.name);
    const ci = process.env.CI === 'true' || process.env.CI === '1';
    const skip = v === undefined && !ci ? `${rt.name} is not on PATH (CI installs it)` : false;
    test(`${rt.name}: fetch, connect, ping and createServer with wireguard-go; its servers see the tunnel address`, { skip, timeout: 120_000 }, async () => {
      assert.ok(v, `${rt.name} is not on PATH, and CI=true: .ci/run must install it`);
      const peer = await startWgGo();
      const dir = mkdtempSync(join(tmpdir(), 'wgnet-rt-'));
      try {
        const blob = Buffer.alloc(2 * 1024 * 1024);
        for (let i = 0; i < blob.length; i++) blob[i] = (i * 31) & 0xff;
        writeFileSync(join(dir, 'blob'), blob);
        // Both servers are waited for ('Serving HTTP', 'ready'): a fixed pause was too short for
        // python's start on a loaded machine, and the connect then met ECONNREFUSED.
        const http = await startServer(peer, 'python3', ['-u', '-m', 'http.server', '8080', '--bind', peer.inner4, '--directory', dir]);
        let httpLog = '';
        http.stderr!.on('data', (d: Buffer) => (httpLog += d));
        await startServer(peer, 'python3', ['-u', SERVERS, 'sink', peer.inner4, '9000']);
        const me = genKeyPair();
        const n = peer.inner4.split('.')[2];
        const port = 42000 + Number(n);
        const conf = `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = ${peer.peerInner4}/24\nListenPort = ${port}\n[Peer]\nPublicKey = ${peer.publicKey}\nAllowedIPs = 10.77.${n}.0/24\nEndpoint = ${peer.outer4}:${peer.listenPort}\n`;
        peer.addPeer(me.publicKey, { endpoint: `${peer.outer4.replace(/\.2$/, '.1')}:${port}` });
        const child = spawn(rt.name, rt.args, { cwd: root, env: { ...process.env, WGNET_CONF: conf, WGNET_SERVER: peer.inner4, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout!.on('data', (d: Buffer) => (out += d));
        child.stderr!.on('data', (d: Buffer) => (err += d));
        const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
        const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
        for (let i = 0; i < 600 && !out.includes('READY') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
        const curl = out.includes('READY') ? await peer.run('curl', ['-sS', '--max-time', '10', `http://${peer.peerInner4}:8081/`], { allowFail: true, timeoutMs: 20_000 }) : '';
        const code = await exited;
        clearTimeout(killer);
        const diag = `exit ${code}\nstdout: ${out}\nstderr: ${err.slice(-2000)}`;
        assert.equal(code, 0, `the process did not exit cleanly by itself\n${diag}`);
        const got = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
        assert.equal(got.error, undefined, diag);
        assert.equal(got.runtime, rt.name);
        assert.deepEqual(got.fetch, { status: 200, sha256: createHash('sha256').update(blob).digest('hex') });
        assert.equal(got.connect, true, 'connect: the sink saw exactly the bytes sent');
        assert.equal(got.ping, peer.inner4);
        assert.equal(curl, 'hello', 'createServer answered the kernel curl in the namespace');
        assert.deepEqual(got.serverSaw, [peer.inner4]);
        // The kernel's HTTP server logged the tunnel address as the client: nothing came through the host.
        assert.match(httpLog, new RegExp(`^${peer.peerInner4.replace(/\./g, '\\.')} - - .*GET /blob`, 'm'));
      } finally {
        peer.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
