/**
 * Operations against the real wireguard-go (issue 15): `wgnet proxy --metrics --health-check
 * --pcap` as a process; /metrics valid for promtool and its counters rising with a transfer;
 * /readyz 503 within the health interval when the wireguard-go side goes down and 200 again
 * when it comes back; tcpdump -r showing the SYN and the HTTP request of that transfer.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import http from 'node:http';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { interopSkipReason, startWgGo, genKeyPair, startServer, waitFor, makeNamespace, secretFile, type WgGoPeer } from './harness.js';
import { freePort } from '../harness/ports.js';
import { parseExposition, valueOf, hasPromtool, promtoolCheck } from '../harness/prom.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = join(HERE, '../../bin/wgnet.js');

function tools(): string | false {
  const r = interopSkipReason();
  if (r) return r;
  const missing = ['curl', 'tcpdump'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (!hasPromtool) missing.push('promtool');
  if (missing.length === 0) return false;
  if (process.env.CI) throw new Error(`CI=true but ${missing.join(', ')} missing (.ci/run installs curl, tcpdump, prometheus)`);
  return `needs ${missing.join(', ')}`;
}
const skip = tools();

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

describe('wgnet proxy --metrics / --health-check / --pcap <-> wireguard-go', { skip }, () => {
  let peer: WgGoPeer;
  let dir: string;
  let conf: string;
  let child: ChildProcess;
  let stderr = '';
  let sp: number;
  let mp: number;
  let pcap: string;

  before(async () => {
    peer = await startWgGo();
    const me = genKeyPair();
    const n = peer.inner4.split('.')[2];
    dir = mkdtempSync(join(tmpdir(), 'wgnet-ops-interop-'));
    conf = join(dir, 'wg0.conf');
    pcap = join(dir, 'cap.pcap');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = ${peer.peerInner4}/24\n\n[Peer]\nPublicKey = ${peer.publicKey}\nAllowedIPs = 10.77.${n}.0/24\nEndpoint = ${peer.outer4}:${peer.listenPort}\n`, { mode: 0o600 });
    peer.addPeer(me.publicKey);
    writeFileSync(join(dir, 'two.bin'), randomBytes(2 << 20));
    await startServer(peer, 'python3', ['-u', '-m', 'http.server', '8080', '--bind', peer.inner4, '--directory', dir]);
    [sp, mp] = [await freePort(), await freePort()];
    child = spawn(process.execPath, [BIN, 'proxy', '-c', conf, '--socks5', `127.0.0.1:${sp}`, '--metrics', `127.0.0.1:${mp}`, '--health-check', peer.inner4, '--health-interval', '1', '--pcap', pcap], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr!.on('data', (d) => (stderr += d));
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    await waitFor(() => /ready.*handshake=ok/.test(out), 20_000, `ready line: ${out}${stderr}`);
  });
  after(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    peer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('/metrics passes promtool and its counters rise with a 2 MB transfer', async () => {
    const t0 = (await get(mp, '/metrics')).body;
    const r = promtoolCheck(t0);
    assert.equal(r.status, 0, r.output);
    const before = parseExposition(t0);
    const body = await new Promise<Buffer>((resolve, reject) =>
      execFile('curl', ['-sS', '--max-time', '30', '--socks5-hostname', `127.0.0.1:${sp}`, `http://${peer.inner4}:8080/two.bin`], { encoding: 'buffer', maxBuffer: 8 << 20 }, (err, o) => (err ? reject(err) : resolve(o))),
    );
    assert.equal(body.length, 2 << 20);
    const after = parseExposition((await get(mp, '/metrics')).body);
    const p = { peer: peer.publicKey };
    assert.ok(valueOf(after, 'wgnet_peer_receive_bytes_total', p) - valueOf(before, 'wgnet_peer_receive_bytes_total', p) > 2 << 20);
    assert.ok(valueOf(after, 'wgnet_tcp_rx_segments_total') > valueOf(before, 'wgnet_tcp_rx_segments_total'));
    assert.equal(valueOf(after, 'wgnet_listener_connections_total', { kind: 'socks5' }), valueOf(before, 'wgnet_listener_connections_total', { kind: 'socks5' }) + 1);
    assert.ok(valueOf(after, 'wgnet_listener_received_bytes_total', { kind: 'socks5' }) >= 2 << 20);
    assert.ok(valueOf(after, 'wgnet_peer_handshakes_total', p) >= 1);
  });

  test('/readyz: 200, then 503 within the health interval when wireguard-go goes down, 200 again when it is back', async () => {
    await waitFor(async () => (await get(mp, '/readyz')).status === 200, 10_000, '/readyz 200');
    peer.exec('ip', ['link', 'set', peer.ifname, 'down']);
    const down = Date.now();
    await waitFor(async () => (await get(mp, '/readyz')).status === 503, 10_000, '/readyz 503');
    assert.ok(Date.now() - down < 4_000, `503 after ${Date.now() - down} ms: within interval (1 s) + timeout (1 s) + a probe in flight`);
    const j = JSON.parse((await get(mp, '/readyz')).body) as { reason: string };
    assert.match(j.reason, new RegExp(`health check ${peer.inner4.replace(/\./g, '\\.')}`));
    await waitFor(() => /WARN health check failing/.test(stderr), 5_000, 'the failing line');
    peer.exec('ip', ['link', 'set', peer.ifname, 'up']);
    // wireguard-go dropped its sessions when it went down: our side rehandshakes after
    // KeepaliveTimeout + RekeyTimeout (15 s) without an answer.
    await waitFor(async () => (await get(mp, '/readyz')).status === 200, 40_000, '/readyz 200 again');
    assert.match(stderr, /INFO health check ok/);
  });

  test('tcpdump -r of the --pcap file shows the SYN and the HTTP request of the transfer', async () => {
    child.kill('SIGTERM');
    assert.equal(await new Promise<number | null>((r) => child.once('exit', (c) => r(c))), 0);
    const text = execFileSync('tcpdump', ['-nn', '-A', '-r', pcap], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(text, new RegExp(`IP ${peer.peerInner4.replace(/\./g, '\\.')}\\.\\d+ > ${peer.inner4.replace(/\./g, '\\.')}\\.8080: Flags \\[S\\]`));
    assert.match(text, /GET \/two\.bin HTTP\/1\.1/);
    assert.match(text, /ICMP echo request/, 'the health probes');
  });
});

const ADDON = join(HERE, '../../native/build/Release/wgnet_tun.node');
const skipUp = skip || (existsSync(ADDON) ? false : process.env.CI ? assert.fail(`CI=true but the TUN addon is not built (${ADDON})`) : 'the TUN addon is not built: npm run build:native');

describe('wgnet up --metrics / --health-check / --pcap <-> wireguard-go', { skip: skipUp }, () => {
  let nsA: ReturnType<typeof makeNamespace>;
  let peer: WgGoPeer;
  let daemon: ChildProcess;
  let stderr = '';
  const name = `wgo${process.pid.toString(36)}`.slice(0, 15);
  let dir: string;
  const metrics = (path: string): { status: number; body: string } => {
    const out = nsA.exec('curl', ['-sS', '--max-time', '5', '-w', '\n%{http_code}', `http://127.0.0.1:9464${path}`], { allowFail: true });
    const i = out.lastIndexOf('\n');
    return { status: Number(out.slice(i + 1)), body: out.slice(0, i) };
  };

  before(async () => {
    nsA = makeNamespace();
    peer = await startWgGo({ otherNs: nsA.ns });
    dir = mkdtempSync(join(tmpdir(), 'wgnet-up-ops-'));
    daemon = spawn('ip', ['netns', 'exec', nsA.ns, process.execPath, BIN, 'up', '-f', name, '--log-level', 'info', '--metrics', '127.0.0.1:9464', '--health-check', peer.inner4, '--health-interval', '1', '--pcap', join(dir, 'up.pcap')], { stdio: ['ignore', 'ignore', 'pipe'] });
    daemon.stderr!.on('data', (d) => (stderr += d));
    await waitFor(() => existsSync(`/var/run/wireguard/${name}.sock`), 15_000, 'UAPI socket');
    const keys = genKeyPair();
    const n = peer.inner4.split('.')[2];
    nsA.exec('wg', ['set', name, 'private-key', secretFile(keys.privateKey), 'listen-port', '51901', 'peer', peer.publicKey, 'endpoint', `${peer.outer4}:${peer.listenPort}`, 'allowed-ips', `10.77.${n}.0/24`]);
    nsA.exec('ip', ['addr', 'add', `${peer.peerInner4}/24`, 'dev', name]);
    nsA.exec('ip', ['link', 'set', name, 'up']);
    peer.addPeer(keys.publicKey, { endpoint: `${peer.outer4.replace(/\.2$/, '.1')}:51901` });
  });
  after(async () => {
    daemon?.kill('SIGTERM');
    if (daemon && daemon.exitCode === null) await new Promise((r) => daemon.once('exit', r));
    peer?.close();
    nsA?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('/metrics (promtool-clean, counters rise with ping), /readyz 200 once the probe answers, handshake logged, pcap readable', async () => {
    assert.equal(metrics('/livez').status, 200);
    assert.match(nsA.exec('ping', ['-c', '3', '-i', '0.2', '-W', '3', peer.inner4]), /3 received/, stderr);
    await waitFor(() => metrics('/readyz').status === 200, 10_000, `/readyz 200: ${metrics('/readyz').body}`);
    const text = metrics('/metrics').body;
    const r = promtoolCheck(text);
    assert.equal(r.status, 0, r.output);
    const m = parseExposition(text);
    assert.ok(valueOf(m, 'wgnet_peer_receive_bytes_total', { peer: peer.publicKey }) > 0);
    assert.equal(valueOf(m, 'wgnet_peer_handshakes_total', { peer: peer.publicKey }), 1);
    assert.match(stderr, /INFO: \(\S+\) .* handshake ok/);
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    const dump = execFileSync('tcpdump', ['-nn', '-r', join(dir, 'up.pcap')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(dump, new RegExp(`IP ${peer.peerInner4.replace(/\./g, '\\.')} > ${peer.inner4.replace(/\./g, '\\.')}: ICMP echo request`));
    assert.match(dump, /ICMP echo reply/);
  });
});
