/**
 * Idle timeouts on established relays (issue 18, limits): a SOCKS5 CONNECT, an HTTP CONNECT
 * and a `forward` TCP connection with no byte either way for --idle-timeout are closed at
 * both ends, counted and logged; traffic, in either direction alone, keeps one open; 0
 * turns it off. The default is 2 h 4 min (RFC 5382 REQ-5's floor for a NAT; limits.ts).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SocksClient } from 'socks';
import { Tunnel } from '../../src/index.js';
import { tunnelPair, keyPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { freePort } from '../harness/ports.js';
import { bookkeeping, waitFor } from '../harness/churn.js';
import { createSocks5Server } from '../../src/cli/socks5.js';
import { createHttpProxyServer } from '../../src/cli/http-proxy.js';
import { tunnelDialer } from '../../src/cli/dialer.js';
import { DEFAULT_LIMITS } from '../../src/cli/limits.js';
import { parseCommon } from '../../src/cli/serve.js';

const BIN = fileURLToPath(new URL('../../bin/wgnet.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const port = (s: net.Server): number => (s.address() as net.AddressInfo).port;

/** Resolves with the ms from now until `s` closes, or 'open' if it is still open after `ms`. */
function closesWithin(s: net.Socket, ms: number): Promise<number | 'open'> {
  const t0 = performance.now();
  return Promise.race([new Promise<number>((r) => s.once('close', () => r(performance.now() - t0))), sleep(ms).then(() => 'open' as const)]);
}

/** An HTTP CONNECT through the proxy at `p`; resolves the socket once the 200 is read. */
async function httpConnect(p: number, target: string): Promise<net.Socket> {
  const s = net.connect(p, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n\r\n`);
  let head = '';
  while (!head.includes('\r\n\r\n')) head += String((await once(s, 'data'))[0]);
  assert.match(head, /^HTTP\/1\.1 200/);
  return s;
}

describe('idle timeout on established relays', () => {
  let p: TunnelPair;
  before(async () => {
    p = await tunnelPair();
    // An echo service behind the tunnel.
    p.b.createServer((c) => {
      c.on('error', () => {});
      c.pipe(c);
    }).listen(7);
    await p.a.ping('10.66.0.2');
  });
  after(async () => {
    await p.close();
  });

  test('the default is RFC 5382 REQ-5 (2 h 4 min); --idle-timeout takes seconds, 0 for never', () => {
    assert.equal(DEFAULT_LIMITS.idleTimeoutMs, (2 * 60 + 4) * 60 * 1000);
    assert.equal(parseCommon([], () => false).limits.idleTimeoutMs, 7_440_000);
    assert.equal(parseCommon(['--idle-timeout', '90'], () => false).limits.idleTimeoutMs, 90_000);
    assert.equal(parseCommon(['--idle-timeout', '0'], () => false).limits.idleTimeoutMs, 0);
    assert.throws(() => parseCommon(['--idle-timeout', 'soon'], () => false), /--idle-timeout: expected seconds/);
  });

  test('SOCKS5 and HTTP CONNECT: quiet for the timeout, closed at both ends and counted; traffic one way only keeps a relay open', { timeout: 30_000 }, async () => {
    const limits = { idleTimeoutMs: 600 };
    const hits: string[] = [];
    const socks = createSocks5Server({ dialer: tunnelDialer(p.a), limits, onLimit: (l) => void hits.push(`socks5 ${l}`) });
    const hp = createHttpProxyServer({ dialer: tunnelDialer(p.a), limits, onLimit: (l) => void hits.push(`http ${l}`) });
    await Promise.all([socks, hp].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
    try {
      const open = async (): Promise<net.Socket[]> => {
        const { socket } = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: port(socks), type: 5 }, command: 'connect', destination: { host: '10.66.0.2', port: 7 } });
        socket.on('error', () => {});
        return [socket, await httpConnect(port(hp), '10.66.0.2:7')];
      };
      // Quiet: both closed after ~0.6 s; each still echoed before that.
      const quiet = await open();
      for (const s of quiet) {
        s.write('ping');
        assert.equal(String((await once(s, 'data'))[0]), 'ping');
      }
      const closed = await Promise.all(quiet.map((s) => closesWithin(s, 3000)));
      for (const ms of closed) assert.ok(ms !== 'open' && ms > 400 && ms < 1500, `closed after ${ms} ms`);
      assert.deepEqual(hits.sort(), ['http idleTimeout', 'socks5 idleTimeout']);
      assert.equal(socks.stats.limited!.idleTimeout, 1);
      assert.equal(hp.stats.limited!.idleTimeout, 1);
      // The tunnel side was closed too: the proxy holds no tunnel socket any more.
      await waitFor(() => bookkeeping(p.a).apiSockets === 0, 3000, 'the relays\' tunnel sockets closed');
      // Busy one way only (the client writes, the echo's answers are discarded): stays open.
      const busy = await open();
      for (const s of busy) s.resume();
      const writer = setInterval(() => busy.forEach((s) => s.write('x')), 100);
      try {
        for (const r of await Promise.all(busy.map((s) => closesWithin(s, 1800)))) assert.equal(r, 'open');
      } finally {
        clearInterval(writer);
      }
      for (const s of busy) s.destroy();
    } finally {
      socks.close();
      hp.close();
    }
  });

  test('0 turns it off', { timeout: 30_000 }, async () => {
    const socks = createSocks5Server({ dialer: tunnelDialer(p.a), limits: { idleTimeoutMs: 0 } });
    await new Promise<void>((r) => socks.listen(0, '127.0.0.1', () => r()));
    try {
      const { socket } = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: port(socks), type: 5 }, command: 'connect', destination: { host: '10.66.0.2', port: 7 } });
      assert.equal(await closesWithin(socket, 1000), 'open');
      socket.destroy();
    } finally {
      socks.close();
    }
  });
});

describe('wgnet forward --idle-timeout', () => {
  test('-L: a quiet forwarded connection is closed after the timeout, logged, and counted in the exit stats', { timeout: 40_000 }, async () => {
    const me = keyPair();
    const them = keyPair();
    const far = await Tunnel.create(`[Interface]\nPrivateKey = ${them.privateKey}\nAddress = 10.66.0.2/24\n\n[Peer]\nPublicKey = ${me.publicKey}\nAllowedIPs = 10.66.0.1/32\n`);
    far.createServer((c) => {
      c.on('error', () => {});
      c.pipe(c);
    }).listen(7);
    const dir = mkdtempSync(join(tmpdir(), 'wgnet-idle-'));
    const conf = join(dir, 'wg0.conf');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.66.0.1/24\n\n[Peer]\nPublicKey = ${them.publicKey}\nAllowedIPs = 10.66.0.0/24\nEndpoint = 127.0.0.1:${far.listenPort}\n`, { mode: 0o600 });
    const lp = await freePort();
    const child = spawn(process.execPath, [BIN, 'forward', '-c', conf, '--idle-timeout', '0.8', '-L', `127.0.0.1:${lp}:10.66.0.2:7`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ready line: ${out}${err}`)), 20_000);
        child.stdout!.on('data', (d) => {
          out += d;
          if (out.includes('ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const s = net.connect(lp, '127.0.0.1');
      s.on('error', () => {});
      await once(s, 'connect');
      s.write('ping');
      assert.equal(String((await once(s, 'data'))[0]), 'ping');
      const ms = await closesWithin(s, 5000);
      assert.ok(ms !== 'open' && ms > 500 && ms < 3000, `closed after ${ms} ms`);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
      await far.close();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.match(err, /limit reached: idleTimeout/);
    assert.match(err, /forward stats .*idleTimeouts=1/);
  });
});
