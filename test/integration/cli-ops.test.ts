/**
 * The operations side of the long-running commands as real processes (issue 15):
 * --metrics (/metrics, /livez, /readyz), --pcap read back by tcpdump, one set of log
 * levels, handshake state logged once per change, SIGUSR1's labelled counters, help CMD.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { SocksClient } from 'socks';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';
import { freePort } from '../harness/ports.js';
import { BIN, startCli, until } from '../harness/cli.js';
import { parseExposition, valueOf } from '../harness/prom.js';

const hasTcpdump = spawnSync('sh', ['-c', 'command -v tcpdump']).status === 0;
const needTcpdump = hasTcpdump ? false : process.env.CI ? assert.fail('CI=true but tcpdump is missing') : 'needs tcpdump';


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

/** One HTTP GET through the SOCKS5 proxy: the far side answers. */
async function socksGet(socksPort: number, path: string): Promise<string> {
  const { socket } = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: socksPort, type: 5 }, command: 'connect', destination: { host: '10.68.0.2', port: 80 } });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 10.68.0.2\r\nConnection: close\r\n\r\n`);
  let got = '';
  for await (const d of socket) got += String(d);
  return got;
}

describe('wgnet proxy / forward / gateway operations', () => {
  let far: Tunnel;
  let dir: string;
  let conf: string;
  const me = keyPair();

  before(async () => {
    const them = keyPair();
    far = await Tunnel.create(`[Interface]\nPrivateKey = ${them.privateKey}\nAddress = 10.68.0.2/24\n\n[Peer]\nPublicKey = ${me.publicKey}\nAllowedIPs = 10.68.0.1/32\n`);
    const web = http.createServer((req, res) => res.end(`far side ${req.url}\n`));
    // Half-open, as Node's own http.Server makes its sockets: a client's early FIN still gets the answer.
    far.createServer({ allowHalfOpen: true }, (s) => web.emit('connection', s)).listen(80);
    dir = mkdtempSync(join(tmpdir(), 'wgnet-ops-'));
    conf = join(dir, 'wg0.conf');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.68.0.1/24\n\n[Peer]\nPublicKey = ${them.publicKey}\nAllowedIPs = 10.68.0.0/24\nEndpoint = 127.0.0.1:${far.listenPort}\n`, { mode: 0o600 });
  });
  after(async () => {
    await far?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('proxy --metrics: valid /metrics with listener counters that rise, /livez, /readyz; handshake logged once; SIGUSR1 prints labelled counters', async () => {
    const [sp, mp] = [await freePort(), await freePort()];
    const cli = await startCli(['proxy', '-c', conf, '--socks5', `127.0.0.1:${sp}`, '--metrics', `127.0.0.1:${mp}`, '--health-check', '10.68.0.2:80', '--health-interval', '0.5']);
    try {
      assert.match(cli.ready, new RegExp(`metrics=127\\.0\\.0\\.1:${mp} udp=(batched|dgram) handshake=ok`));
      assert.equal((await get(mp, '/livez')).status, 200);
      await until('/readyz 200', async () => (await get(mp, '/readyz')).status === 200);
      const before = parseExposition((await get(mp, '/metrics')).body);
      const listener = { listener: `127.0.0.1:${sp}`, kind: 'socks5' };
      const c0 = valueOf(before, 'wgnet_listener_connections_total', listener);
      assert.match(await socksGet(sp, '/one'), /far side \/one/);
      const after = parseExposition((await get(mp, '/metrics')).body);
      assert.equal(valueOf(after, 'wgnet_listener_connections_total', listener), c0 + 1);
      assert.ok(valueOf(after, 'wgnet_listener_received_bytes_total', listener) > 0);
      assert.ok(valueOf(after, 'wgnet_peer_receive_bytes_total', { peer: far.publicKey }) > valueOf(before, 'wgnet_peer_receive_bytes_total', { peer: far.publicKey }));
      assert.equal(valueOf(after, 'wgnet_listener_limited_total', { ...listener, limit: 'connections' }), 0);
      cli.child.kill('SIGUSR1');
      await until('SIGUSR1 stats', () => /stats listener/.test(cli.stderr()));
      assert.match(cli.stderr(), new RegExp(`INFO stats peer peer=${far.publicKey.replace(/[+/]/g, '\\$&')} endpoint=127\\.0\\.0\\.1:${far.listenPort} handshake=\\d+s ago rxBytes=\\d+ txBytes=\\d+`));
      assert.match(cli.stderr(), /INFO stats device rxPackets=\d+/);
      assert.match(cli.stderr(), /INFO stats listener listener=127\.0\.0\.1:\d+ kind=socks5 connections=1/);
      assert.equal(cli.stderr().match(/handshake ok/g)?.length, 1, `one 'handshake ok' line:\n${cli.stderr()}`);
    } finally {
      assert.equal(await cli.stop(), 0);
    }
  });

  test('a silent peer is reported (no handshake yet) and /readyz stays 503 with the reason', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    const bad = join(dir, 'bad.conf');
    const them = keyPair();
    writeFileSync(bad, `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.68.0.1/24\n\n[Peer]\nPublicKey = ${them.publicKey}\nAllowedIPs = 10.68.0.0/24\nEndpoint = 127.0.0.1:${silent.address().port}\n`, { mode: 0o600 });
    const [sp, mp] = [await freePort(), await freePort()];
    const cli = await startCli(['proxy', '-c', bad, '--socks5', `127.0.0.1:${sp}`, '--metrics', `127.0.0.1:${mp}`]);
    try {
      assert.match(cli.ready, /handshake=pending/);
      await until('the no-handshake warning', () => /WARN no handshake yet/.test(cli.stderr()));
      assert.match(cli.stderr(), new RegExp(`peer=${them.publicKey.replace(/[+/]/g, '\\$&')} endpoint=127\\.0\\.0\\.1:${silent.address().port}`));
      const r = await get(mp, '/readyz');
      assert.equal(r.status, 503);
      assert.match((JSON.parse(r.body) as { reason: string }).reason, /no handshake yet/);
    } finally {
      await cli.stop();
      silent.close();
    }
  });

  test('forward --pcap: tcpdump -r reads the capture and shows the SYN and the HTTP request; each connection logged at debug with its bytes', { skip: needTcpdump }, async () => {
    const [lp, mp] = [await freePort(), await freePort()];
    const pcap = join(dir, 'fwd.pcap');
    const cli = await startCli(['forward', '-c', conf, '-L', `127.0.0.1:${lp}:10.68.0.2:80`, '--pcap', pcap, '--log-level', 'debug', '--metrics', `127.0.0.1:${mp}`]);
    try {
      const res = await fetch(`http://127.0.0.1:${lp}/captured-path`, { headers: { connection: 'close' } });
      assert.equal(await res.text(), 'far side /captured-path\n');
      await until('the connection closed line', () => /DEBUG forward connection closed forward=-L \d+:10\.68\.0\.2:80 client=127\.0\.0\.1:\d+ up=\d+ down=\d+ ms=\d+/.test(cli.stderr()));
      assert.match(cli.stderr(), /DEBUG forward connection opened/);
      // A dropped packet is logged at debug with its reason: a SYN from the peer to a port
      // nothing listens on is refused (RST) and traced by the TCP layer.
      await assert.rejects(new Promise((resolve, reject) => far.connect(9, '10.68.0.1').once('connect', resolve).once('error', reject)), { code: 'ECONNREFUSED' });
      await until('the refused SYN traced', () => /DEBUG tcp rstNoConnection .*10\.68\.0\.2:\d+/.test(cli.stderr()));
      assert.doesNotMatch(cli.stderr(), /netstack rxPackets|TRACE/, 'per-packet chatter stays at trace');
      const m = parseExposition((await get(mp, '/metrics')).body);
      assert.equal(valueOf(m, 'wgnet_listener_connections_total', { kind: 'forward' }), 1);
      assert.equal(valueOf(m, 'wgnet_listener_active_connections', { kind: 'forward' }), 0);
      assert.ok(valueOf(m, 'wgnet_capture_packets_total') >= 6);
    } finally {
      assert.equal(await cli.stop(), 0);
    }
    assert.ok(statSync(pcap).size > 24);
    const text = execFileSync('tcpdump', ['-nn', '-r', pcap, '-A'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(text, /IP 10\.68\.0\.1\.\d+ > 10\.68\.0\.2\.80: Flags \[S\]/, 'the SYN, outbound');
    assert.match(text, /IP 10\.68\.0\.2\.80 > 10\.68\.0\.1\.\d+: Flags \[S\.\]/, 'the SYN-ACK, inbound');
    assert.match(text, /GET \/captured-path HTTP\/1\.1/, 'the HTTP request');
  });

  test('SIGHUP reloads the config as wg syncconf (a peer added, then removed), a bad file keeps the running config and names file:line, connections go on', async () => {
    const rc = join(dir, 'reload.conf');
    const base = readFileSync(conf, 'utf8');
    writeFileSync(rc, base, { mode: 0o600 });
    const [sp, mp] = [await freePort(), await freePort()];
    const cli = await startCli(['proxy', '-c', rc, '--socks5', `127.0.0.1:${sp}`, '--metrics', `127.0.0.1:${mp}`]);
    const peers = async (): Promise<number> => valueOf(parseExposition((await get(mp, '/metrics')).body), 'wgnet_peers');
    // A connection open across the reloads: HTTP keep-alive through the SOCKS5 proxy.
    const { socket } = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: sp, type: 5 }, command: 'connect', destination: { host: '10.68.0.2', port: 80 } });
    let got = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (got += d));
    const ask = async (path: string): Promise<void> => {
      got = '';
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 10.68.0.2\r\n\r\n`);
      await until(`the answer to ${path}`, () => got.includes(`far side ${path}`));
    };
    try {
      await ask('/before');
      assert.equal(await peers(), 1);
      const extra = keyPair();
      writeFileSync(rc, `${base}\n[Peer]\nPublicKey = ${extra.publicKey}\nAllowedIPs = 10.69.0.0/24\nEndpoint = 127.0.0.1:9\n`);
      cli.child.kill('SIGHUP');
      await until('config reloaded (added)', () => /INFO config reloaded file=\S+reload\.conf added=1 removed=0 changed=0 unchanged=1/.test(cli.stderr()));
      assert.equal(await peers(), 2);
      await ask('/after-add');

      writeFileSync(rc, `[Interface]\nPrivateKey = ${me.privateKey}\nthis is not a config line\n`);
      cli.child.kill('SIGHUP');
      await until('the reload error', () => /ERROR config reload failed, the running config stays: reload\.conf:3/.test(cli.stderr()));
      assert.equal(await peers(), 2, 'the running config stays');
      await ask('/after-bad-file');
      assert.match(await socksGet(sp, '/new-connection'), /far side \/new-connection/);

      writeFileSync(rc, base);
      cli.child.kill('SIGHUP');
      await until('config reloaded (removed)', () => /INFO config reloaded file=\S+ added=0 removed=1 changed=0 unchanged=1/.test(cli.stderr()));
      assert.equal(await peers(), 1);
      await ask('/after-remove');
    } finally {
      socket.destroy();
      assert.equal(await cli.stop(), 0);
    }
  });

  test('forward --udp -R: one peer holds at most --max-udp-flows-per-peer flows; the rest are dropped and counted in /metrics', async () => {
    const echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
    const [rp, mp] = [await freePort(), await freePort()];
    const cli = await startCli(['forward', '-c', conf, '--udp', '-R', `${rp}:127.0.0.1:${echo.address().port}`, '--max-udp-flows-per-peer', '2', '--max-tcp-per-peer', '100', '--max-syn-queue-per-peer', '8', '--max-reassembly-per-peer', '65536', '--metrics', `127.0.0.1:${mp}`]);
    // Five sources on the peer's side: its first two get flows, the next three are over its share.
    const socks = Array.from({ length: 5 }, () => far.createSocket('udp4'));
    try {
      for (const s of socks) await new Promise<void>((r) => s.bind(0, () => r()));
      const ask = (s: (typeof socks)[number]): Promise<string | undefined> =>
        new Promise((resolve) => {
          const t = setTimeout(() => resolve(undefined), 1500);
          s.once('message', (m) => {
            clearTimeout(t);
            resolve(m.toString());
          });
          s.send('hi', rp, '10.68.0.1');
        });
      assert.equal(await ask(socks[0]!), 'hi');
      assert.equal(await ask(socks[1]!), 'hi');
      assert.deepEqual(await Promise.all(socks.slice(2).map(ask)), [undefined, undefined, undefined]);
      const m = parseExposition((await get(mp, '/metrics')).body);
      assert.equal(valueOf(m, 'wgnet_listener_limited_total', { kind: 'forward-udp', limit: 'udpFlowsPerPeer' }), 3);
      assert.equal(valueOf(m, 'wgnet_listener_limited_total', { kind: 'forward-udp', limit: 'udpFlows' }), 0);
      assert.equal(await ask(socks[0]!), 'hi', 'the peer\'s open flows go on');
      assert.match(cli.stderr(), /limit reached: udpFlowsPerPeer/);
    } finally {
      for (const s of socks) s.close();
      echo.close();
      assert.equal(await cli.stop(), 0);
    }
  });

  test('forward -L and proxy --socks5: a client that half-closes right after its request still gets the whole answer', async () => {
    // HTTP/1.0 with the write side shut at once (nc -N, curl --http1.0 through some proxies):
    // the answer must still come back through the half-open connection.
    const halfClose = async (sock: net.Socket): Promise<string> => {
      sock.end('GET /half HTTP/1.0\r\nHost: x\r\n\r\n');
      let got = '';
      for await (const d of sock) got += String(d);
      return got;
    };
    // One process at a time: both use this config's key, and the far side answers the latest endpoint.
    const lp = await freePort();
    const fwd = await startCli(['forward', '-c', conf, '-L', `127.0.0.1:${lp}:10.68.0.2:80`]);
    try {
      const a = net.connect(lp, '127.0.0.1');
      await once(a, 'connect');
      assert.match(await halfClose(a), /far side \/half/);
    } finally {
      assert.equal(await fwd.stop(), 0);
    }
    const sp = await freePort();
    const proxy = await startCli(['proxy', '-c', conf, '--socks5', `127.0.0.1:${sp}`]);
    try {
      const { socket } = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: sp, type: 5 }, command: 'connect', destination: { host: '10.68.0.2', port: 80 } });
      assert.match(await halfClose(socket), /far side \/half/);
    } finally {
      assert.equal(await proxy.stop(), 0);
    }
  });

  test('--check validates the config and exits: ok, or the error with file:line', () => {
    const good = spawnSync(process.execPath, [BIN, 'proxy', '-c', conf, '--check'], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /wg0\.conf: ok \(1 peer, 1 address\)/);
    const bad = join(dir, 'broken.conf');
    writeFileSync(bad, `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.0.0.300/24\n`, { mode: 0o600 });
    for (const cmd of [['proxy'], ['forward', '-L', '1:1.2.3.4:1'], ['gateway']]) {
      const r = spawnSync(process.execPath, [BIN, ...cmd, '-c', bad, '--check'], { encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /broken\.conf:3: Address:/);
    }
  });

  test('log levels: one set for every command, unknown ones refused with the list', () => {
    for (const cmd of [['proxy', '-c', 'x.conf'], ['forward', '-c', 'x.conf', '-L', '1:1.2.3.4:1'], ['gateway', '-c', 'x.conf']]) {
      const r = spawnSync(process.execPath, [BIN, ...cmd, '--log-level', 'verbose'], { encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /--log-level: expected one of error\|warn\|info\|debug\|trace, got 'verbose'/);
    }
    const r = spawnSync(process.execPath, [BIN, 'proxy', '-c', 'x.conf', '--log-format', 'yaml'], { encoding: 'utf8' });
    assert.match(r.stderr, /--log-format: expected text or json/);
    for (const v of ['10.0.0.300', '10.0.0.1:0', 'host.example:80', '[fd00::1]:70000']) {
      const h = spawnSync(process.execPath, [BIN, 'proxy', '-c', 'x.conf', '--health-check', v], { encoding: 'utf8' });
      assert.match(h.stderr, /--health-check: expected IP or IP:PORT/, v);
    }
  });

  test('wgnet help CMD prints that command\'s help', () => {
    for (const [cmd, re] of [['proxy', /Usage: wgnet proxy/], ['forward', /Usage: wgnet forward/], ['gateway', /Usage: wgnet gateway/], ['up', /Usage: wgnet up/], ['genkey', /Usage: wgnet genkey/]] as const) {
      const r = spawnSync(process.execPath, [BIN, 'help', cmd], { encoding: 'utf8' });
      assert.equal(r.status, 0);
      assert.match(r.stdout, re);
    }
    assert.match(spawnSync(process.execPath, [BIN, 'help', 'proxy'], { encoding: 'utf8' }).stdout, /--metrics HOST:PORT/);
    const bad = spawnSync(process.execPath, [BIN, 'help', 'nope'], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /no help for 'nope'/);
  });
});
