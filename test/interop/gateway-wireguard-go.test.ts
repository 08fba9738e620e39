/**
 * `wgnet gateway` (the CLI, as a process in the root namespace) serving real wireguard-go
 * clients in network namespaces that route a test "internet" (another namespace, 198.19.M.0/30
 * and fdef:M::/64, reached from the root namespace over a veth) through it. The kernel's
 * curl, iperf3, ping and python sockets on both ends; wgnet relays through host sockets.
 * Every address is inside namespaces and veths this file creates and removes.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { interopSkipReason, sh, startWgGo, genKeyPair, waitFor, makeInet, type Inet, type WgGoPeer } from './harness.js';
import { probeAddon } from '../../src/io/native.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const WGNET = join(HERE, '..', '..', 'bin', 'wgnet.js');
const skip = interopSkipReason();

function ready(c: ChildProcess, what: RegExp, ms = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`not ready: ${out}`)), ms);
    const on = (d: Buffer): void => {
      out += d.toString();
      const m = what.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[0]);
      }
    };
    c.stdout!.on('data', on);
    c.stderr!.on('data', on);
  });
}

/**
 * The counter a relayed ping must raise in the gateway (run as root here): a ping socket if
 * net.ipv4.ping_group_range admits group 0 (icmp(7)), else a raw socket (root holds
 * CAP_NET_RAW); the system ping only without the addon.
 */
function expectedPingMetric(): string {
  const addon = probeAddon<{ pingOpen?: unknown }>('wgnet_udp');
  if (!addon.ok || typeof addon.addon.pingOpen !== 'function') return 'wgnet_gateway_icmp_ping_process_total';
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
  return lo <= 0 && 0 <= hi ? 'wgnet_gateway_icmp_ping_socket_total' : 'wgnet_gateway_icmp_raw_socket_total';
}

describe('wgnet gateway with real wireguard-go clients', { skip }, () => {
  let client: WgGoPeer;
  let client2: WgGoPeer;
  let inet: Inet;
  let gw: ChildProcess;
  let dir: string;
  const gwKeys = genKeyPair();
  const uapi = `wgngw${process.pid.toString(36)}`.slice(0, 15);
  let port = 0;
  let metrics = '';

  /** Routes the inet subnets from a client namespace through its wireguard-go to the gateway. */
  function route(c: WgGoPeer): void {
    const n = c.inner4.split('.')[2];
    c.exec('wg', ['set', c.ifname, 'peer', gwKeys.publicKey, 'endpoint', `${c.outer4.replace(/\.2$/, '.1')}:${port}`, 'allowed-ips', `10.77.${n}.2/32,fd77:${n}::2/128,${inet.net4},${inet.net6}`, 'persistent-keepalive', '25']);
    c.exec('ip', ['route', 'add', inet.net4, 'dev', c.ifname]);
    c.exec('ip', ['-6', 'route', 'add', inet.net6, 'dev', c.ifname]);
  }

  before(async () => {
    inet = makeInet();
    client = await startWgGo();
    client2 = await startWgGo();
    dir = mkdtempSync(join(tmpdir(), 'wgnet-gw-'));
    port = 30000 + (process.pid % 20000);
    const n1 = client.inner4.split('.')[2];
    const n2 = client2.inner4.split('.')[2];
    const conf = join(dir, 'server.conf');
    writeFileSync(
      conf,
      `[Interface]\nPrivateKey = ${gwKeys.privateKey}\nAddress = 10.77.${n1}.2/24, fd77:${n1}::2/64\nListenPort = ${port}\n` +
        `[Peer]\nPublicKey = ${client.publicKey}\nAllowedIPs = 10.77.${n1}.1/32, fd77:${n1}::1/128\n` +
        `[Peer]\nPublicKey = ${client2.publicKey}\nAllowedIPs = 10.77.${n2}.1/32, fd77:${n2}::1/128\n`,
      { mode: 0o600 },
    );
    gw = spawn(process.execPath, [WGNET, 'gateway', '-c', conf, '--uapi', uapi, '--deny', `${inet.v4}/32:9`, '--log-level', 'info', '--metrics', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    metrics = /metrics=(\S+)/.exec(await ready(gw, /ready gateway[^\n]*\n/))![1]!;
    route(client);
    route(client2);
    // client2 also needs its own tunnel address on the gateway's side: 10.77.n2.0/24 routes there.
  });

  after(async () => {
    gw?.kill('SIGTERM');
    // Stopped with flows still open, the gateway exits cleanly (a safety net kills it otherwise).
    if (gw && gw.exitCode === null) await Promise.race([new Promise((r) => gw.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]);
    const code = gw?.exitCode;
    if (gw && gw.exitCode === null && gw.signalCode === null) gw.kill('SIGKILL');
    if (gw) assert.equal(code, 0, 'the gateway exits with 0 on SIGTERM');
    client?.close();
    client2?.close();
    inet?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('curl: 50 MB both ways through the gateway, IPv4 and IPv6, sha256 equal, each direction within 20 s', async (t) => {
    const sink = inet.spawn('python3', [join(HERE, 'servers.py'), 'sink', '::', '9100']);
    await ready(sink, /ready/);
    const http = inet.spawn('python3', ['-m', 'http.server', '--bind', '::', '9200', '--directory', dir]);
    await ready(http, /Serving HTTP/);
    const data = Buffer.alloc(50 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i * 2654435761 >>> 0, i);
    writeFileSync(join(dir, 'blob'), data);
    const want = createHash('sha256').update(data).digest('hex');
    const timed = async (what: string, f: () => Promise<string>): Promise<string> => {
      const t0 = Date.now();
      const out = await f();
      const ms = Date.now() - t0;
      t.diagnostic(`${what}: ${ms} ms (${((data.length * 8) / ms / 1e3).toFixed(0)} Mbit/s)`);
      assert.ok(ms < 20_000, `${what} took ${ms} ms`);
      return out;
    };
    for (const host of [inet.v4, `[${inet.v6}]`]) {
      const down = await timed(`download via ${host}`, () => client.run('sh', ['-c', `curl -sS --max-time 60 http://${host}:9200/blob | sha256sum`], { timeoutMs: 90_000 }));
      assert.equal(down.split(' ')[0], want, `download via ${host}`);
    }
    const up = await timed('upload', () =>
      client.run('sh', ['-c', `python3 -c "import sys; sys.stdout.buffer.write(open('${join(dir, 'blob')}','rb').read())" | python3 -c "
import socket,sys
s=socket.create_connection(('${inet.v4}',9100)); s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR); print(s.makefile().read().strip())"`], { timeoutMs: 90_000 }),
    );
    assert.equal(up.split(' ')[0], want, 'upload with half-close');
  });

  test('iperf3 through the gateway', async () => {
    const srv = inet.spawn('iperf3', ['-s', '-1', '--forceflush', '-p', '9300']);
    await ready(srv, /listening/i);
    const out = await client.run('iperf3', ['-c', inet.v4, '-p', '9300', '-t', '2', '-J'], { timeoutMs: 30_000 });
    const bps = JSON.parse(out).end.sum_received.bits_per_second as number;
    assert.ok(bps > 10e6, `${(bps / 1e6).toFixed(0)} Mbit/s`);
  });

  test('UDP request/response and ping are relayed (IPv4 and IPv6)', async () => {
    const echo = inet.spawn('python3', [join(HERE, 'servers.py'), 'udpecho', '::', '9400']);
    await new Promise((r) => setTimeout(r, 300));
    void echo;
    for (const host of [inet.v4, inet.v6]) {
      const out = await client.run('python3', ['-c', `import socket\nfam=socket.AF_INET6 if ':' in '${host}' else socket.AF_INET\ns=socket.socket(fam,socket.SOCK_DGRAM); s.settimeout(5)\nfor i in range(5):\n  s.sendto(b'q%d'%i,('${host}',9400)); print(s.recvfrom(100)[0].decode())`], { timeoutMs: 20_000 });
      assert.equal(out, 'q0\nq1\nq2\nq3\nq4');
    }
    const p4 = await client.run('ping', ['-c', '3', '-i', '0.2', '-W', '3', inet.v4], { timeoutMs: 20_000 });
    assert.match(p4, /3 received/);
    const p6 = await client.run('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '3', inet.v6], { timeoutMs: 20_000 });
    assert.match(p6, /2 received/);
    // All five through the path this host allows (the kernel's ping checks identifier and sequence).
    const text = await (await fetch(`http://${metrics}/metrics`)).text();
    const want = expectedPingMetric();
    assert.match(text, new RegExp(`^${want} 5$`, 'm'), text.split('\n').filter((l) => l.includes('icmp')).join('\n'));
  });

  test('a refused port is a RST within 1 s; a denied port is refused; loopback is refused by default', async () => {
    const t0 = Date.now();
    const out = await client.run('sh', ['-c', `curl -sS --max-time 5 http://${inet.v4}:9999/ 2>&1; true`], { timeoutMs: 20_000 });
    // curl says 'Connection refused' or, in newer versions, 'Couldn't connect to server' after a few ms
    assert.match(out, /refused|couldn't connect/i);
    assert.ok(Date.now() - t0 < 2000, `${Date.now() - t0} ms (curl's own start-up included)`);
    const denied = await client.run('sh', ['-c', `curl -sS --max-time 5 http://${inet.v4}:9/ 2>&1; true`], { timeoutMs: 20_000 });
    assert.match(denied, /refused|couldn't connect/i);
    const n = client.inner4.split('.')[2];
    const own = await client.run('sh', ['-c', `curl -sS --max-time 5 http://10.77.${n}.2:22/ 2>&1; true`], { timeoutMs: 20_000 });
    assert.match(own, /refused|couldn't connect/i, 'the gateway address does not reach host services without --expose-localhost');
  });

  test('10 clients at once from two peers', async () => {
    const http = inet.spawn('python3', ['-m', 'http.server', '--bind', '::', '9201', '--directory', dir]);
    await ready(http, /Serving HTTP/);
    const runs = [];
    for (let i = 0; i < 10; i++) runs.push((i % 2 ? client2 : client).run('sh', ['-c', `curl -sS --max-time 30 -o /dev/null -w '%{http_code}' http://${inet.v4}:9201/blob`], { timeoutMs: 60_000 }));
    assert.deepEqual(await Promise.all(runs), Array(10).fill('200'));
  });

  test('a peer removed with wg set ... remove loses access at once; the other keeps it', async () => {
    const http = inet.spawn('python3', ['-m', 'http.server', '--bind', '::', '9202', '--directory', dir]);
    await ready(http, /Serving HTTP/);
    sh('wg', ['set', uapi, 'peer', client2.publicKey, 'remove']);
    await waitFor(() => !sh('wg', ['show', uapi, 'peers']).includes(client2.publicKey), 5000, 'peer removal');
    const gone = await client2.run('sh', ['-c', `curl -sS --max-time 3 -o /dev/null -w '%{http_code}' http://${inet.v4}:9202/ 2>&1; true`], { timeoutMs: 20_000 });
    assert.doesNotMatch(gone, /^200/);
    const ok = await client.run('sh', ['-c', `curl -sS --max-time 10 -o /dev/null -w '%{http_code}' http://${inet.v4}:9202/`], { timeoutMs: 20_000 });
    assert.equal(ok, '200');
  });
});
