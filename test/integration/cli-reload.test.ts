/**
 * Live reload of listener rules (issue 15): `wgnet forward` / `wgnet proxy` take listeners from
 * the config file's wireproxy sections, and SIGHUP starts new ones, stops removed ones and
 * leaves unchanged ones (and the connections through them) alone. The CLI runs as a real
 * process against a far Tunnel in this process.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import http from 'node:http';
import dgram from 'node:dgram';
import { SocksClient } from 'socks';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';
import { freePort } from '../harness/ports.js';
import { BIN, startCli, until } from '../harness/cli.js';



/** A TCP connection to a local port whose far end echoes; `echo()` checks one round trip. */
async function echoClient(port: number): Promise<{ echo(text: string): Promise<void>; close(): void }> {
  const s = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  let got = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => (got += d));
  return {
    echo: async (text) => {
      got = '';
      s.write(text);
      await until(`the echo of '${text}'`, () => got === text);
    },
    close: () => s.destroy(),
  };
}

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve('connected')));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('wgnet forward / proxy: listener rules in the config file, reloaded on SIGHUP', () => {
  let far: Tunnel;
  let dir: string;
  let head: string;
  const me = keyPair();

  before(async () => {
    const them = keyPair();
    far = await Tunnel.create(`[Interface]\nPrivateKey = ${them.privateKey}\nAddress = 10.70.0.2/24\n\n[Peer]\nPublicKey = ${me.publicKey}\nAllowedIPs = 10.70.0.1/32\n`);
    // An echo server; a client that goes away resets its side.
    far.createServer((s) => s.on('error', () => {}).pipe(s)).listen(7);
    const web = http.createServer((req, res) => res.end(`far side ${req.url}\n`));
    far.createServer((s) => web.emit('connection', s)).listen(80);
    const udpEcho = far.createSocket('udp4');
    udpEcho.on('message', (m, r) => udpEcho.send(m, r.port, r.address));
    await new Promise<void>((r) => udpEcho.bind(7, () => r()));
    dir = mkdtempSync(join(tmpdir(), 'wgnet-reload-'));
    head = `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.70.0.1/24\n\n[Peer]\nPublicKey = ${them.publicKey}\nAllowedIPs = 10.70.0.0/24\nEndpoint = 127.0.0.1:${far.listenPort}\n`;
  });
  after(async () => {
    await far?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a rule added starts, an unchanged one keeps its connection, a removed one stops listening while its connection finishes', async () => {
    const conf = join(dir, 'forward.conf');
    const [p1, p2] = [await freePort(), await freePort()];
    const first = `[TCPClientTunnel]\nBindAddress = 127.0.0.1:${p1}\nTarget = 10.70.0.2:7\n`;
    const second = `[TCPClientTunnel]\nBindAddress = 127.0.0.1:${p2}\nTarget = 10.70.0.2:7\n`;
    writeFileSync(conf, `${head}\n${first}`, { mode: 0o600 });
    const cli = await startCli(['forward', '-c', conf]);
    const old = await echoClient(p1);
    try {
      assert.match(cli.ready, new RegExp(`^ready -L 127\\.0\\.0\\.1:${p1}:10\\.70\\.0\\.2:7 udp=(batched|dgram) handshake=ok$`));
      await old.echo('before');

      // The second rule added; a comment above the first moves its line, which is no change.
      writeFileSync(conf, `${head}\n# moved down a line\n${first}\n${second}`);
      cli.child.kill('SIGHUP');
      await until('the reload with one rule added', () => /INFO listeners reloaded file=\S+forward\.conf started=1 stopped=0 unchanged=1 failed=0/.test(cli.stderr()));
      assert.match(cli.stderr(), new RegExp(`INFO listener started listener=-L 127\\.0\\.0\\.1:${p2}:10\\.70\\.0\\.2:7 rule=\\[TCPClientTunnel\\] forward\\.conf:15`));
      assert.match(cli.stderr(), /INFO config reloaded file=\S+ added=0 removed=0 changed=0 unchanged=1/);
      const added = await echoClient(p2);
      await added.echo('through the new rule');
      added.close();
      await old.echo('after the add: the same connection');

      // The first rule removed: its port stops listening; the connection it accepted goes on.
      writeFileSync(conf, `${head}\n${second}`);
      cli.child.kill('SIGHUP');
      await until('the reload with one rule removed', () => /INFO listeners reloaded file=\S+ started=0 stopped=1 unchanged=1 failed=0/.test(cli.stderr()));
      assert.match(cli.stderr(), new RegExp(`INFO listener stopped; its open connections go on until they end listener=-L 127\\.0\\.0\\.1:${p1}:10\\.70\\.0\\.2:7 rule=\\[TCPClientTunnel\\] forward\\.conf:11`));
      assert.equal(await refused(p1), 'ECONNREFUSED');
      await old.echo('draining');
      const kept = await echoClient(p2);
      await kept.echo('the second rule is unchanged');
      kept.close();
    } finally {
      old.close();
      assert.equal(await cli.stop(), 0);
    }
  });

  test('a rule whose port is taken logs one line and the rest applies; a bad file changes nothing and names file:line; a changed rule rebinds its port', async () => {
    const conf = join(dir, 'partial.conf');
    const [p1, p2, busyPort] = [await freePort(), await freePort(), await freePort()];
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(busyPort, '127.0.0.1', () => r()));
    const rule = (port: number): string => `[TCPClientTunnel]\nBindAddress = 127.0.0.1:${port}\nTarget = 10.70.0.2:7\n`;
    writeFileSync(conf, `${head}\n${rule(p1)}`, { mode: 0o600 });
    const cli = await startCli(['forward', '-c', conf]);
    const old = await echoClient(p1);
    try {
      writeFileSync(conf, `${head}\n${rule(p1)}\n${rule(busyPort)}\n${rule(p2)}`);
      cli.child.kill('SIGHUP');
      await until('the partial reload', () => /INFO listeners reloaded file=\S+ started=1 stopped=0 unchanged=1 failed=1/.test(cli.stderr()));
      const lines = cli.stderr().split('\n').filter((l) => l.includes('listener not started'));
      assert.equal(lines.length, 1, cli.stderr());
      assert.match(lines[0]!, new RegExp(`^ERROR listener not started, the rest of the config applies: \\[TCPClientTunnel\\] partial\\.conf:14: cannot listen on 127\\.0\\.0\\.1:${busyPort}: address in use$`));
      const c2 = await echoClient(p2);
      await c2.echo('the rule after the failed one');
      c2.close();

      // A bad file: the error names file:line; every listener and the connection stay.
      writeFileSync(conf, `${head}\n${rule(p1)}\n[TCPClientTunnel]\nBindAddress = 127.0.0.1:${p2}\nTarget = nowhere\n`);
      cli.child.kill('SIGHUP');
      await until('the reload error', () => /ERROR config reload failed, the running config stays: partial\.conf:16: Target: expected host:port or \[IPv6\]:port, got 'nowhere'$/m.test(cli.stderr()));
      await old.echo('after the bad file');
      const c3 = await echoClient(p2);
      await c3.echo('still listening');
      c3.close();

      // A rule changed in place (same port, new Target): stopped, then started on the same port.
      writeFileSync(conf, `${head}\n${rule(p1)}\n[TCPClientTunnel]\nBindAddress = 127.0.0.1:${p2}\nTarget = 10.70.0.2:80\n`);
      cli.child.kill('SIGHUP');
      await until('the reload with a changed rule', () => /INFO listeners reloaded file=\S+ started=1 stopped=1 unchanged=1 failed=0/.test(cli.stderr()));
      const web = net.connect(p2, '127.0.0.1');
      web.write('GET /changed HTTP/1.1\r\nHost: 10.70.0.2\r\nConnection: close\r\n\r\n');
      let page = '';
      for await (const d of web) page += String(d);
      assert.match(page, /far side \/changed/);
      await old.echo('the unchanged rule kept its connection throughout');
    } finally {
      old.close();
      busy.close();
      assert.equal(await cli.stop(), 0);
    }
  });

  test('wgnet proxy -c runs a wireproxy file unchanged: [Socks5] with a password and [http], no flags, no default port', async () => {
    const conf = join(dir, 'wireproxy.conf');
    const [sp, hp] = [await freePort(), await freePort()];
    writeFileSync(conf, `${head}\n[Socks5]\nBindAddress = 127.0.0.1:${sp}\nUsername = alice\nPassword = s3cret-pass\n\n[http]\nBindAddress = 127.0.0.1:${hp}\n`, { mode: 0o600 });
    const cli = await startCli(['proxy', '-c', conf]);
    try {
      assert.match(cli.ready, new RegExp(`^ready socks5=127\\.0\\.0\\.1:${sp} http=127\\.0\\.0\\.1:${hp} udp=`));
      const { socket } = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: sp, type: 5, userId: 'alice', password: 's3cret-pass' }, command: 'connect', destination: { host: '10.70.0.2', port: 80 } });
      socket.write('GET /socks HTTP/1.1\r\nHost: 10.70.0.2\r\nConnection: close\r\n\r\n');
      let got = '';
      for await (const d of socket) got += String(d);
      assert.match(got, /far side \/socks/);
      await assert.rejects(SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: sp, type: 5 }, command: 'connect', destination: { host: '10.70.0.2', port: 80 } }));
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: hp, path: 'http://10.70.0.2/http', agent: false }, (res) => {
            let b = '';
            res.on('data', (d) => (b += d));
            res.on('end', () => resolve(b));
          })
          .on('error', reject);
      });
      assert.match(body, /far side \/http/);
      assert.ok(!cli.stderr().includes('s3cret-pass'));
    } finally {
      assert.equal(await cli.stop(), 0);
    }
  });
  test('[UDPProxyTunnel] added by SIGHUP carries datagrams; removed, its socket closes and the port is free', async () => {
    const conf = join(dir, 'udp.conf');
    const [tp, up] = [await freePort(), await freePort()];
    const tcp = `[TCPClientTunnel]\nBindAddress = 127.0.0.1:${tp}\nTarget = 10.70.0.2:7\n`;
    writeFileSync(conf, `${head}\n${tcp}`, { mode: 0o600 });
    const cli = await startCli(['forward', '-c', conf]);
    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    try {
      writeFileSync(conf, `${head}\n${tcp}\n[UDPProxyTunnel]\nBindAddress = 127.0.0.1:${up}\nTarget = 10.70.0.2:7\nInactivityTimeout = 30\n`);
      cli.child.kill('SIGHUP');
      await until('the UDP rule started', () => /INFO listeners reloaded file=\S+ started=1 stopped=0 unchanged=1 failed=0/.test(cli.stderr()));
      let got = '';
      client.on('message', (m) => (got = String(m)));
      client.send('ping', up, '127.0.0.1');
      await until('the UDP echo', () => got === 'ping');

      writeFileSync(conf, `${head}\n${tcp}`);
      cli.child.kill('SIGHUP');
      await until('the UDP rule stopped', () => /INFO listeners reloaded file=\S+ started=0 stopped=1 unchanged=1 failed=0/.test(cli.stderr()));
      const again = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => again.once('error', reject).bind(up, '127.0.0.1', () => resolve()));
      again.close();
    } finally {
      client.close();
      assert.equal(await cli.stop(), 0);
    }
  });

  test('--check counts the listener sections for proxy and forward; gateway refuses them, naming file:line', () => {
    const conf = join(dir, 'check.conf');
    writeFileSync(conf, `${head}\n[Socks5]\nBindAddress = 127.0.0.1:1080\n\n[TCPServerTunnel]\nListenPort = 80\nTarget = 127.0.0.1:8080\n`, { mode: 0o600 });
    for (const cmd of ['proxy', 'forward']) {
      const r = spawnSync(process.execPath, [BIN, cmd, '-c', conf, '--check'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${conf}: ok (1 peer, 1 address, 2 listeners)\n`);
    }
    const g = spawnSync(process.execPath, [BIN, 'gateway', '-c', conf, '--check'], { encoding: 'utf8' });
    assert.equal(g.status, 1);
    assert.match(g.stderr, /^wgnet: check\.conf:10: \[Socks5\] is a listener section: a Tunnel opens no listeners/);
  });
});
