/**
 * `wgnet proxy` and `wgnet forward` as real processes, with curl as the client:
 * the far side is a wgnet tunnel in this process serving HTTP on its own stack.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { spawn, execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';
import { freePort } from '../harness/ports.js';
import { BIN, startCli } from '../harness/cli.js';

const hasCurl = spawnSync('sh', ['-c', 'command -v curl']).status === 0;
const skip = hasCurl ? false : process.env.CI ? assert.fail('CI=true but curl is missing') : 'needs curl';
const BODY = Buffer.alloc(20 * 1024 * 1024);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 2654435761) >>> 24;
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');

function curl(args: string[]): Promise<{ code: number; out: Buffer }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '30', ...args], { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout }));
  });
}

/** Writes each chunk and collects everything the server sends until it closes (or 3 s pass). */
async function rawExchange(port: number, chunks: (string | Buffer)[]): Promise<Buffer> {
  const s = net.connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  let got = Buffer.alloc(0);
  s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  s.on('error', () => {});
  for (const c of chunks) s.write(c);
  await Promise.race([new Promise((r) => s.once('close', r)), new Promise((r) => setTimeout(r, 3000))]);
  s.destroy();
  return got;
}


describe('wgnet proxy and forward with curl', { skip }, () => {
  let far: Tunnel;
  let dir: string;
  let conf: string;
  let local: http.Server;
  let localPort: number;
  const me = keyPair();

  before(async () => {
    const them = keyPair();
    far = await Tunnel.create(`[Interface]\nPrivateKey = ${them.privateKey}\nAddress = 10.66.0.2/24\n\n[Peer]\nPublicKey = ${me.publicKey}\nAllowedIPs = 10.66.0.1/32\n`);
    const web = http.createServer((req, res) => (req.url === '/big' ? res.end(BODY) : res.end(`far side ${req.method} ${req.url}\n`)));
    far.createServer((s) => web.emit('connection', s)).listen(80);
    dir = mkdtempSync(join(tmpdir(), 'wgnet-cli-'));
    conf = join(dir, 'wg0.conf');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.66.0.1/24\n\n[Peer]\nPublicKey = ${them.publicKey}\nAllowedIPs = 10.66.0.0/24\nEndpoint = 127.0.0.1:${far.listenPort}\n`, { mode: 0o600 });
    local = http.createServer((_req, res) => res.end('local service\n'));
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
    localPort = (local.address() as net.AddressInfo).port;
  });
  after(async () => {
    await far?.close();
    local?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('SOCKS5 (curl --socks5-hostname) and HTTP proxy (curl -x, and CONNECT with -p): 20 MB sha256 equal', async () => {
    const [sp, hp] = [await freePort(), await freePort()];
    const { child, ready } = await startCli(['proxy', '-c', conf, '--socks5', `127.0.0.1:${sp}`, '--http', `127.0.0.1:${hp}`]);
    try {
      assert.match(ready, /udp=(batched|dgram) handshake=ok/, 'the ready line names the outer socket backend');
      const a = await curl(['--socks5-hostname', `127.0.0.1:${sp}`, 'http://10.66.0.2/big']);
      assert.equal(createHash('sha256').update(a.out).digest('hex'), BODY_SHA);
      const b = await curl(['-x', `http://127.0.0.1:${hp}`, 'http://10.66.0.2/big']);
      assert.equal(createHash('sha256').update(b.out).digest('hex'), BODY_SHA);
      const c = await curl(['-p', '-x', `http://127.0.0.1:${hp}`, 'http://10.66.0.2/tunnelled']);
      assert.equal(c.out.toString(), 'far side GET /tunnelled\n');
      // Refused through the tunnel: SOCKS reply 5 (curl exit 97), HTTP 502.
      const d = await curl(['--socks5-hostname', `127.0.0.1:${sp}`, 'http://10.66.0.2:81/']);
      assert.notEqual(d.code, 0);
      const e = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${hp}`, 'http://10.66.0.2:81/']);
      assert.equal(e.out.toString(), '502');
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 0, 'clean exit on SIGTERM');
  });

  test('-L carries a local port through the tunnel; -R serves a local service on the tunnel address', async () => {
    const lp = await freePort();
    const { child } = await startCli(['forward', '-c', conf, '-L', `127.0.0.1:${lp}:10.66.0.2:80`, '-R', `8081:127.0.0.1:${localPort}`]);
    try {
      const a = await curl([`http://127.0.0.1:${lp}/via-L`]);
      assert.equal(a.out.toString(), 'far side GET /via-L\n');
      const res = await far.fetch('http://10.66.0.1:8081/');
      assert.equal(await res.text(), 'local service\n');
    } finally {
      child.kill('SIGTERM');
    }
  });

  test('forward --udp: -L carries a local UDP port through the tunnel, -R a tunnel UDP port to a local service; counters on exit', async () => {
    const echo = far.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('far:'), m]), r.port, r.address));
    echo.bind(7);
    const localEcho = dgram.createSocket('udp4');
    localEcho.on('message', (m, r) => localEcho.send(Buffer.concat([Buffer.from('local:'), m]), r.port, r.address));
    await new Promise<void>((r) => localEcho.bind(0, '127.0.0.1', () => r()));
    const lp = await freePort();
    const { child, ready } = await startCli(['forward', '-c', conf, '--udp', '--udp-timeout', '30', '-L', `127.0.0.1:${lp}:10.66.0.2:7`, '-R', `5353:127.0.0.1:${localEcho.address().port}`]);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const ask = (sock: { send(m: Buffer, port: number, host: string): void; once(ev: 'message', f: (m: Buffer) => void): unknown }, port: number, host: string, text: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no UDP answer to '${text}'`)), 3000);
        sock.once('message', (m: Buffer) => {
          clearTimeout(t);
          resolve(m.toString());
        });
        sock.send(Buffer.from(text), port, host);
      });
    const c = dgram.createSocket('udp4');
    const fromFar = far.createSocket('udp4');
    try {
      assert.match(ready, / udp udp=(batched|dgram) handshake=ok/);
      assert.equal(await ask(c, lp, '127.0.0.1', 'hello'), 'far:hello');
      assert.equal(await ask(fromFar, 5353, '10.66.0.1', 'back'), 'local:back');
    } finally {
      child.kill('SIGTERM');
      c.close();
      fromFar.close();
      echo.close();
      localEcho.close();
    }
    assert.equal(await new Promise<number | null>((r) => child.once('exit', (code) => r(code))), 0);
    assert.match(stderr, /forward stats.*udp/);
  });

  test('a local client cannot kill the proxy: CONNECT to port 0 / 99999 and SOCKS5 to port 0 get 400 / reply 1', async () => {
    const [sp, hp] = [await freePort(), await freePort()];
    const { child } = await startCli(['proxy', '-c', conf, '--socks5', `127.0.0.1:${sp}`, '--http', `127.0.0.1:${hp}`]);
    let exited = false;
    child.once('exit', () => (exited = true));
    try {
      for (const target of ['10.66.0.2:0', '10.66.0.2:99999']) {
        const r = await rawExchange(hp, [`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`]);
        assert.match(r.toString(), /^HTTP\/1\.1 400 /, target);
      }
      const s = await rawExchange(sp, [Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 1, 10, 66, 0, 2, 0, 0])]);
      assert.deepEqual([...s.subarray(0, 4)], [5, 0, 5, 1]);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(exited, false, 'the proxy exited');
      const ok = await curl(['-x', `http://127.0.0.1:${hp}`, 'http://10.66.0.2/still']);
      assert.equal(ok.out.toString(), 'far side GET /still\n');
      const ok2 = await curl(['--socks5-hostname', `127.0.0.1:${sp}`, 'http://10.66.0.2/still']);
      assert.equal(ok2.out.toString(), 'far side GET /still\n');
    } finally {
      child.kill('SIGTERM');
    }
  });

  test('limits from flags: --max-connections and --request-timeout refuse the excess, log once per interval, and curl still gets through', async () => {
    const help = spawnSync(process.execPath, [BIN, 'proxy', '--help'], { encoding: 'utf8' }).stdout;
    for (const f of ['--max-connections', '--request-timeout', '--max-header-size', '--max-udp-flows']) assert.ok(help.includes(f), `proxy --help lacks ${f}`);
    const fhelp = spawnSync(process.execPath, [BIN, 'forward', '--help'], { encoding: 'utf8' }).stdout;
    for (const f of ['--max-connections', '--max-udp-flows']) assert.ok(fhelp.includes(f), `forward --help lacks ${f}`);
    const sp = await freePort();
    const { child } = await startCli(['proxy', '-c', conf, '--socks5', `127.0.0.1:${sp}`, '--max-connections', '3', '--request-timeout', '1']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    try {
      const open = async (): Promise<Promise<void>> => {
        const s = net.connect(sp, '127.0.0.1');
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        s.resume();
        return new Promise<void>((r) => s.once('close', () => r()));
      };
      const held = [await open(), await open(), await open()];
      await new Promise((r) => setTimeout(r, 100));
      const extra = await Promise.all(Array.from({ length: 10 }, open));
      await Promise.all(extra); // closed at once by the cap
      const t0 = Date.now();
      await Promise.all(held); // closed by the request timeout
      assert.ok(Date.now() - t0 < 2500);
      const d = await curl(['--socks5-hostname', `127.0.0.1:${sp}`, 'http://10.66.0.2/after']);
      assert.equal(d.out.toString(), 'far side GET /after\n');
      assert.equal(stderr.match(/limit reached: connections/g)?.length, 1, stderr);
      assert.equal(stderr.match(/limit reached: requestTimeout/g)?.length, 1, stderr);
    } finally {
      child.kill('SIGTERM');
    }
    await new Promise((r) => child.once('exit', r));
    assert.match(stderr, /proxy stats.*limited/);
  });

  test('a bad config and a busy port exit non-zero with one line', async () => {
    writeFileSync(join(dir, 'bad.conf'), '[Interface]\nPrivateKey = short\n');
    const r = spawnSync(process.execPath, [BIN, 'proxy', '-c', join(dir, 'bad.conf')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr.trim(), /^wgnet: bad\.conf:2: PrivateKey: expected 32 bytes of base64/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const busy = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r2) => busy.once('listening', r2));
    const port = (busy.address() as net.AddressInfo).port;
    const r3 = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [BIN, 'proxy', '-c', conf, '--socks5', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      let e = '';
      c.stderr!.on('data', (d) => (e += d));
      c.on('exit', (status) => resolve({ status, stderr: e }));
    });
    busy.close();
    assert.equal(r3.status, 1);
    assert.match(r3.stderr, /address in use/);
  });
});
