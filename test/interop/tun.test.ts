/**
 * Daemon mode: `wgnet up` on a kernel TUN in one namespace, the real
 * wireguard-go in another, the kernel's ping, iperf3 and curl across; and
 * wg-quick driving `wgnet-tun` as its userspace implementation.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync, symlinkSync, readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { interopSkipReason, startWgGo, makeNamespace, genKeyPair, secretFile, waitFor, type WgGoPeer } from './harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ADDON = join(ROOT, 'native/build/Release/wgnet_tun.node');

function skipReason(): string | false {
  const r = interopSkipReason();
  if (r) return r;
  if (!existsSync(ADDON)) {
    if (process.env.CI) throw new Error(`CI=true but the TUN addon is not built (${ADDON}): npm run build:native`);
    return `the TUN addon is not built: npm run build:native`;
  }
  return false;
}
const skip = skipReason();

function waitExit(c: ChildProcess, ms: number): Promise<number | null> {
  if (c.exitCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), ms);
    c.once('exit', (code) => {
      clearTimeout(t);
      resolve(code ?? -1);
    });
  });
}

describe('wgnet up (TUN) <-> wireguard-go', { skip }, () => {
  let nsA: ReturnType<typeof makeNamespace>;
  let peer: WgGoPeer;
  let daemon: ChildProcess;
  let stderr = '';
  const name = `wgt${process.pid.toString(36)}`.slice(0, 15);
  let dir: string;

  before(async () => {
    nsA = makeNamespace();
    peer = await startWgGo({ otherNs: nsA.ns });
    dir = mkdtempSync(join(tmpdir(), 'wgnet-tun-'));
    // An APM-style subscriber loaded with --import, as one would be into the daemon: it
    // appends every wgnet:drop message to a file the drop test reads.
    writeFileSync(
      join(dir, 'drops.mjs'),
      `import dc from 'node:diagnostics_channel'; import { appendFileSync } from 'node:fs';\n` +
        `dc.subscribe('wgnet:drop', (m) => appendFileSync(${JSON.stringify(join(dir, 'drops.jsonl'))}, JSON.stringify({ interface: m.interface, layer: m.layer, reason: m.reason }) + '\\n'));\n`,
    );
    daemon = spawn('ip', ['netns', 'exec', nsA.ns, process.execPath, '--import', join(dir, 'drops.mjs'), join(ROOT, 'bin/wgnet.js'), 'up', '-f', name], { stdio: ['ignore', 'ignore', 'pipe'] });
    daemon.stderr!.on('data', (d) => (stderr += d));
    await waitFor(() => existsSync(`/var/run/wireguard/${name}.sock`), 15_000, 'UAPI socket');
    const keys = genKeyPair();
    const n = peer.inner4.split('.')[2];
    nsA.exec('wg', ['set', name, 'private-key', secretFile(keys.privateKey), 'listen-port', '51900', 'peer', peer.publicKey, 'endpoint', `${peer.outer4}:${peer.listenPort}`, 'allowed-ips', `10.77.${n}.0/24,fd77:${n}::/64`]);
    nsA.exec('ip', ['addr', 'add', `${peer.peerInner4}/24`, 'dev', name]);
    nsA.exec('ip', ['-6', 'addr', 'add', `${peer.peerInner6}/64`, 'dev', name, 'nodad']);
    nsA.exec('ip', ['link', 'set', name, 'up']);
    peer.addPeer(keys.publicKey, { endpoint: `${peer.outer4.replace(/\.2$/, '.1')}:51900` });
  });
  after(async () => {
    daemon?.kill('SIGTERM');
    if (daemon) await waitExit(daemon, 3000);
    peer?.close();
    nsA?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('ping both ways over IPv4 and IPv6', () => {
    assert.match(nsA.exec('ping', ['-c', '3', '-i', '0.2', '-W', '3', peer.inner4]), /3 received/, stderr);
    assert.match(peer.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', peer.peerInner4]), /3 received/);
    assert.match(nsA.exec('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '2', peer.inner6]), /2 received/);
  });

  test('iperf3 TCP both ways', async () => {
    const srv = peer.spawn('iperf3', ['-s', '-1', '-B', peer.inner4]);
    await new Promise((r) => setTimeout(r, 300));
    const up = JSON.parse(nsA.exec('iperf3', ['-c', peer.inner4, '-t', '2', '-J'])) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    assert.ok(up.end.sum_received.bytes > 1_000_000, 'upload moved data');
    await waitExit(srv, 3000);
    const srv2 = peer.spawn('iperf3', ['-s', '-1', '-B', peer.inner4]);
    await new Promise((r) => setTimeout(r, 300));
    const down = JSON.parse(nsA.exec('iperf3', ['-c', peer.inner4, '-t', '2', '-R', '-J'])) as { end: { sum_received: { bytes: number } } };
    assert.ok(down.end.sum_received.bytes > 1_000_000, 'download moved data');
    await waitExit(srv2, 3000);
  });

  test('curl of a 20 MB file through the TUN: sha256 equal', async () => {
    const body = randomBytes(20 * 1024 * 1024);
    writeFileSync(join(dir, 'f.bin'), body);
    const srv = peer.spawn('python3', ['-u', '-m', 'http.server', '8090', '--bind', peer.inner4, '--directory', dir]);
    await waitFor(() => {
      try {
        nsA.exec('curl', ['-sS', '-o', '/dev/null', '--max-time', '2', `http://${peer.inner4}:8090/`]);
        return true;
      } catch {
        return false;
      }
    }, 10_000, 'http server');
    nsA.exec('curl', ['-sS', '--max-time', '30', '-o', join(dir, 'got.bin'), `http://${peer.inner4}:8090/f.bin`]);
    assert.equal(createHash('sha256').update(readFileSync(join(dir, 'got.bin'))).digest('hex'), createHash('sha256').update(body).digest('hex'));
    srv.kill();
  });

  test('the device\'s drops reach wgnet:drop, named by interface (issue 15)', async () => {
    // Ten bytes are no WireGuard message: the device drops and counts them (DESIGN §5).
    nsA.exec('python3', ['-c', 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x" * 10, ("127.0.0.1", 51900))']);
    const file = join(dir, 'drops.jsonl');
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('"layer":"wireguard"'), 5000, 'a wgnet:drop message');
    const m = JSON.parse(readFileSync(file, 'utf8').split('\n').find((l) => l.includes('"layer":"wireguard"'))!);
    assert.equal(m.interface, name);
    assert.equal(typeof m.reason, 'string');
  });

  test('wg show on the wgnet interface shows the peer with a handshake and transfer', () => {
    const out = nsA.exec('wg', ['show', name]);
    assert.match(out, new RegExp(`peer: ${peer.publicKey.replace(/[+/=]/g, (c) => '\\' + c)}`));
    assert.match(out, /latest handshake: /);
    assert.match(out, /transfer: .* received, .* sent/);
  });

  test('deleting the interface stops the daemon cleanly and removes its socket', async () => {
    nsA.exec('ip', ['link', 'del', name]);
    const code = await waitExit(daemon, 5000);
    assert.equal(code, 0, stderr);
    assert.equal(existsSync(`/var/run/wireguard/${name}.sock`), false);
  });
});

describe('wgnet up exits when its UAPI socket is removed', { skip }, () => {
  test('removing /var/run/wireguard/NAME.sock stops the daemon and removes the interface', async () => {
    const nsA = makeNamespace();
    const name = `wgs${process.pid.toString(36)}`.slice(0, 15);
    const d = spawn('ip', ['netns', 'exec', nsA.ns, process.execPath, join(ROOT, 'bin/wgnet.js'), 'up', '-f', name], { stdio: 'ignore' });
    try {
      await waitFor(() => existsSync(`/var/run/wireguard/${name}.sock`), 15_000, 'UAPI socket');
      rmSync(`/var/run/wireguard/${name}.sock`);
      assert.equal(await waitExit(d, 5000), 0);
      assert.doesNotMatch(nsA.exec('ip', ['link']), new RegExp(name));
    } finally {
      d.kill('SIGKILL');
      nsA.close();
    }
  });
});

describe('wg-quick with WG_QUICK_USERSPACE_IMPLEMENTATION=wgnet-tun', { skip }, () => {
  test('wg-quick up brings the tunnel up through wgnet-tun; wg-quick down removes it', async () => {
    const nsA = makeNamespace();
    const peer = await startWgGo({ otherNs: nsA.ns });
    const dir = mkdtempSync(join(tmpdir(), 'wgnet-wgq-'));
    const name = `wgq${process.pid.toString(36)}`.slice(0, 15);
    try {
      symlinkSync(join(ROOT, 'bin/wgnet-tun.js'), join(dir, 'wgnet-tun'));
      const keys = genKeyPair();
      const n = peer.inner4.split('.')[2];
      writeFileSync(
        join(dir, `${name}.conf`),
        `[Interface]\nPrivateKey = ${keys.privateKey}\nAddress = ${peer.peerInner4}/24\nListenPort = 51901\n\n[Peer]\nPublicKey = ${peer.publicKey}\nEndpoint = ${peer.outer4}:${peer.listenPort}\nAllowedIPs = 10.77.${n}.0/24\n`,
        { mode: 0o600 },
      );
      peer.addPeer(keys.publicKey, { endpoint: `${peer.outer4.replace(/\.2$/, '.1')}:51901` });
      const env = ['env', `PATH=${dir}:${process.env.PATH}`, 'WG_QUICK_USERSPACE_IMPLEMENTATION=wgnet-tun'];
      nsA.exec(env[0]!, [...env.slice(1), 'wg-quick', 'up', join(dir, `${name}.conf`)]);
      assert.match(nsA.exec('ping', ['-c', '2', '-i', '0.2', '-W', '3', peer.inner4]), /2 received/);
      assert.match(nsA.exec('wg', ['show', name]), /latest handshake/);
      nsA.exec(env[0]!, [...env.slice(1), 'wg-quick', 'down', join(dir, `${name}.conf`)]);
      await waitFor(() => !existsSync(`/var/run/wireguard/${name}.sock`), 5000, 'daemon exit');
    } finally {
      peer.close();
      nsA.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
