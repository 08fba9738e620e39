/**
 * The `wgnet` CLI as users run it, against the real wireguard-go: `wgnet proxy`
 * and `wgnet forward` as processes, curl and the socks npm client as clients,
 * the kernel's HTTP server and a UDP echo behind wireguard-go in a namespace.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import dgram from 'node:dgram';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SocksClient } from 'socks';
import { interopSkipReason, startWgGo, genKeyPair, startServer, type WgGoPeer } from './harness.js';
import { freePort } from '../harness/ports.js';

const skip = interopSkipReason();
const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = join(HERE, '../../bin/wgnet.js');
const SERVERS = join(HERE, 'servers.py');
const MB = 1024 * 1024;

/** ssh, sshd and an OpenBSD nc (for -X 5) are needed; CI installs them, elsewhere the test says why it skips. */
function hasSsh(): string | false {
  const missing = ['ssh', 'nc', 'ssh-keygen'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (!existsSync('/usr/sbin/sshd')) missing.push('sshd');
  if (missing.length === 0) return false;
  if (process.env.CI) throw new Error(`CI=true but ${missing.join(', ')} missing (.ci/run installs openssh-server, openssh-client, netcat-openbsd)`);
  return `needs ${missing.join(', ')}`;
}


function curl(args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '60', ...args], { encoding: 'buffer', maxBuffer: 64 * MB }, (err, out, errOut) => (err ? reject(new Error(`curl ${args.join(' ')}: ${errOut.toString()}`)) : resolve(out)));
  });
}

/** Starts the CLI and waits for its ready line with a handshake; on any failure the process is killed, so a failing test cannot leave it holding the test file open. */
async function startCli(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`wgnet ${args[0]}: no ready line in 20 s: ${out}${err}`)), 20_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        if (/ready.*handshake=ok/.test(out)) {
          clearTimeout(timer);
          resolve();
        } else if (/ready/.test(out)) reject(new Error(`no handshake: ${out}`));
      });
      child.stderr!.on('data', (d: Buffer) => (err += d));
      child.once('exit', (code) => reject(new Error(`wgnet ${args[0]} exited ${code}: ${err}`)));
    });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return child;
}

async function stop(child: ChildProcess): Promise<number | null> {
  child.kill('SIGTERM');
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

describe('wgnet proxy / forward (CLI) <-> wireguard-go', { skip }, () => {
  let peer: WgGoPeer;
  let dir: string;
  let conf: string;
  let bigHash: string;

  before(async () => {
    peer = await startWgGo();
    const me = genKeyPair();
    const n = peer.inner4.split('.')[2];
    dir = mkdtempSync(join(tmpdir(), 'wgnet-cli-interop-'));
    conf = join(dir, 'wg0.conf');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = ${peer.peerInner4}/24\n\n[Peer]\nPublicKey = ${peer.publicKey}\nAllowedIPs = 10.77.${n}.0/24\nEndpoint = ${peer.outer4}:${peer.listenPort}\n`, { mode: 0o600 });
    // No endpoint for us: wireguard-go learns it from our first handshake (roaming).
    peer.addPeer(me.publicKey);
    const big = randomBytes(20 * MB);
    bigHash = createHash('sha256').update(big).digest('hex');
    writeFileSync(join(dir, 'big.bin'), big);
    await startServer(peer, 'python3', ['-u', '-m', 'http.server', '8080', '--bind', peer.inner4, '--directory', dir]);
    await startServer(peer, 'python3', ['-u', SERVERS, 'udpecho', peer.inner4, '7']);
  });
  after(() => {
    peer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('proxy: curl through SOCKS5 and the HTTP proxy (20 MB, sha256 equal), and a UDP ASSOCIATE round trip with the socks client', async () => {
    const [sp, hp] = [await freePort(), await freePort()];
    const child = await startCli(['proxy', '-c', conf, '--socks5', `127.0.0.1:${sp}`, '--http', `127.0.0.1:${hp}`]);
    try {
      const url = `http://${peer.inner4}:8080/big.bin`;
      const a = await curl(['--socks5-hostname', `127.0.0.1:${sp}`, url]);
      assert.equal(createHash('sha256').update(a).digest('hex'), bigHash);
      const b = await curl(['-x', `http://127.0.0.1:${hp}`, url]);
      assert.equal(createHash('sha256').update(b).digest('hex'), bigHash);

      const u = dgram.createSocket('udp4');
      await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
      const sc = new SocksClient({ proxy: { host: '127.0.0.1', port: sp, type: 5 }, command: 'associate', destination: { host: '0.0.0.0', port: u.address().port } });
      const assoc = await new Promise<{ socket: Socket; remoteHost?: { host: string; port: number } }>((resolve, reject) => {
        sc.once('established', resolve);
        sc.once('error', reject);
        sc.connect();
      });
      const answer = new Promise<Buffer>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no UDP answer from behind wireguard-go')), 5000);
        u.once('message', (m) => {
          clearTimeout(t);
          resolve(m);
        });
      });
      u.send(SocksClient.createUDPFrame({ remoteHost: { host: peer.inner4, port: 7 }, data: Buffer.from('through wireguard-go') }), assoc.remoteHost!.port, '127.0.0.1');
      const f = SocksClient.parseUDPFrame(await answer);
      assert.equal(f.remoteHost.host, peer.inner4);
      assert.equal(f.data.toString(), 'through wireguard-go');
      u.close();
      assoc.socket.destroy();
    } finally {
      assert.equal(await stop(child), 0);
    }
  });

  test('ssh with ProxyCommand through the SOCKS5 proxy runs a command on an sshd behind wireguard-go', { skip: hasSsh() }, async () => {
    // A throwaway sshd in the namespace: its own host key, one authorized client key, no PAM.
    const keys = join(dir, 'ssh');
    execFileSync('mkdir', ['-p', keys, '/run/sshd']);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'host')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'client')]);
    writeFileSync(join(keys, 'authorized_keys'), readFileSync(join(keys, 'client.pub')));
    writeFileSync(
      join(keys, 'sshd_config'),
      [`ListenAddress ${peer.inner4}:22`, `HostKey ${join(keys, 'host')}`, `AuthorizedKeysFile ${join(keys, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'UsePAM no', 'StrictModes no', `PidFile ${join(keys, 'sshd.pid')}`, ''].join('\n'),
    );
    const sshd = peer.spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(keys, 'sshd_config')]);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(sshd.exitCode, null, 'sshd did not start');
    const sp = await freePort();
    const child = await startCli(['proxy', '-c', conf, '--socks5', `127.0.0.1:${sp}`]);
    try {
      const out = await new Promise<string>((resolve, reject) => {
        execFile(
          'ssh',
          ['-i', join(keys, 'client'), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', `ProxyCommand=nc -X 5 -x 127.0.0.1:${sp} %h %p`, `root@${peer.inner4}`, 'echo', 'hello-from-sshd'],
          { encoding: 'utf8', timeout: 20_000 },
          (err, stdout, stderr) => (err ? reject(new Error(`ssh failed: ${stderr}`)) : resolve(stdout)),
        );
      });
      assert.equal(out.trim(), 'hello-from-sshd');
    } finally {
      assert.equal(await stop(child), 0);
      sshd.kill();
    }
  });

  test('forward -L: curl on a local port gets the kernel server behind wireguard-go', async () => {
    const lp = await freePort();
    const child = await startCli(['forward', '-c', conf, '-L', `127.0.0.1:${lp}:${peer.inner4}:8080`]);
    try {
      const body = await curl([`http://127.0.0.1:${lp}/big.bin`]);
      assert.equal(createHash('sha256').update(body).digest('hex'), bigHash);
    } finally {
      assert.equal(await stop(child), 0);
    }
  });
});
