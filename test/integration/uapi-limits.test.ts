/**
 * The UAPI socket against a hostile or broken local client (issue 18): an
 * unterminated 60 MB request is refused with errno=-22 after the 1 MiB bound,
 * the server's memory stays bounded (measured as the peak RSS of a real
 * `wgnet proxy --uapi` process), and `get=1` from another client still answers
 * fast; idle clients are cut by the read timeout; clients over the cap are closed.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';
import { UapiServer } from '../../src/io/uapi-server.js';

const BIN = fileURLToPath(new URL('../../bin/wgnet.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One request on a fresh connection; the answer up to its errno line, and how long it took. */
async function ask(path: string, req: string): Promise<{ text: string; ms: number }> {
  const t0 = performance.now();
  const s = net.connect(path);
  s.on('error', () => {});
  let text = '';
  s.setEncoding('latin1');
  s.on('data', (d: string) => (text += d));
  s.write(req);
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (/errno=-?\d+\n\n$/.test(text)) resolve();
    };
    s.on('data', check);
    s.once('close', () => resolve());
  });
  s.destroy();
  return { text, ms: performance.now() - t0 };
}

/** Sends `set=1\n` and then `total` bytes with no blank line, as fast as the server reads; returns what came back and how much was written. */
async function flood(path: string, total: number): Promise<{ answer: string; written: number }> {
  const s = net.connect(path);
  s.on('error', () => {});
  let answer = '';
  s.setEncoding('latin1');
  s.on('data', (d: string) => (answer += d));
  let closed = false;
  const onClose = new Promise<void>((r) => s.once('close', () => r((closed = true) as unknown as void)));
  await new Promise((r) => s.once('connect', r));
  const chunk = Buffer.alloc(64 * 1024, 'public_key=' + 'a'.repeat(64) + '\n');
  let written = 0;
  s.write('set=1\n');
  while (written < total && !closed) {
    written += chunk.length;
    if (!s.write(chunk)) await Promise.race([new Promise((r) => s.once('drain', r)), onClose]);
  }
  await Promise.race([onClose, sleep(5000)]);
  s.destroy();
  return { answer, written };
}

describe('UAPI server limits', () => {
  let dir: string;
  let far: Tunnel;
  let child: ChildProcess;
  const sockPath = (): string => join(dir, 'wgl0.sock');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgnet-uapi-'));
    const me = keyPair();
    const them = keyPair();
    far = await Tunnel.create(`[Interface]\nPrivateKey = ${them.privateKey}\nAddress = 10.67.0.2/24\n\n[Peer]\nPublicKey = ${me.publicKey}\nAllowedIPs = 10.67.0.1/32\n`);
    const conf = join(dir, 'wg0.conf');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${me.privateKey}\nAddress = 10.67.0.1/24\n\n[Peer]\nPublicKey = ${them.publicKey}\nAllowedIPs = 10.67.0.0/24\nEndpoint = 127.0.0.1:${far.listenPort}\n`, { mode: 0o600 });
    child = spawn(process.execPath, [BIN, 'proxy', '-c', conf, '--socks5', '127.0.0.1:0', '--uapi', 'wgl0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WGNET_UAPI_DIR: dir } });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('ready')) resolve();
      });
      child.once('exit', (c) => reject(new Error(`exited ${c}`)));
      setTimeout(() => reject(new Error('no ready line')), 20_000).unref();
    });
  });
  after(async () => {
    child?.kill('SIGTERM');
    await far?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const peakRssMb = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;

  test('four unterminated 60 MB requests: errno=-22 each, peak RSS bounded, get=1 from another client answers fast', async () => {
    const base = peakRssMb();
    assert.match((await ask(sockPath(), 'get=1\n\n')).text, /errno=0\n\n$/);
    let polling = true;
    const lat: number[] = [];
    const poller = (async () => {
      while (polling) {
        const r = await ask(sockPath(), 'get=1\n\n');
        assert.match(r.text, /^private_key=[0-9a-f]{64}\n[\s\S]*errno=0\n\n$/);
        lat.push(r.ms);
        await sleep(20);
      }
    })();
    const floods = await Promise.all(Array.from({ length: 4 }, () => flood(sockPath(), 60 * 1024 * 1024)));
    polling = false;
    await poller;
    for (const f of floods) {
      assert.equal(f.answer, 'errno=-22\n\n');
      assert.ok(f.written < 24 * 1024 * 1024, `the server read ${f.written >> 20} MB of an oversized request (bound: 16 MiB)`);
    }
    const grew = peakRssMb() - base;
    console.log(`peak RSS +${grew.toFixed(1)} MB, get=1 max ${Math.max(...lat).toFixed(0)} ms over ${lat.length}, read ${floods.map((f) => (f.written / 1048576).toFixed(1)).join("/")} MB`);
    // Four requests held to 16 MiB each (before the bound, 60 MB ones reached a 1.46 GB peak).
    assert.ok(grew < 200, `peak RSS grew ${grew.toFixed(0)} MB`);
    assert.ok(lat.length >= 1, "no get=1 answer during the flood");
    assert.ok(Math.max(...lat) < 1000, `get=1 took up to ${Math.max(...lat).toFixed(0)} ms`);
  });
});

describe('UAPI server: a large gateway fits', () => {
  test('a set=1 of 10,000 peers (~1.7 MB, as wg setconf sends it) is applied in one request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgnet-uapi-'));
    const t = await Tunnel.create(`[Interface]\nPrivateKey = ${keyPair().privateKey}\nAddress = 10.68.0.1/24\n`);
    const srv = await UapiServer.listen('wgl2', t.uapiHost(), () => {}, dir);
    try {
      let req = 'set=1\nreplace_peers=true\n';
      for (let i = 0; i < 10_000; i++) {
        const k = Buffer.alloc(32, 7);
        k.writeUInt32BE(i + 1, 0);
        req += `public_key=${k.toString('hex')}\nreplace_allowed_ips=true\nallowed_ip=10.${(i >> 8) & 255}.${i & 255}.0/24\n`;
      }
      assert.ok(req.length > 1 << 20, `${req.length} bytes`);
      assert.match((await ask(srv.path, req + '\n')).text, /^errno=0\n\n$/);
      assert.equal([...t.toJSON().peers].length, 10_000);
    } finally {
      await srv.close();
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('UAPI server limits, in process', () => {
  test('a client idle past the read timeout is closed; clients over maxClients are closed at once; both counted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgnet-uapi-'));
    const t = await Tunnel.create(`[Interface]\nPrivateKey = ${keyPair().privateKey}\nAddress = 10.68.0.1/24\n`);
    const srv = await UapiServer.listen('wgl1', t.uapiHost(), () => {}, dir, { readTimeoutMs: 1000, maxClients: 3 });
    try {
      const open = async (): Promise<{ s: net.Socket; closed: Promise<number> }> => {
        const s = net.connect(srv.path);
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        const t0 = Date.now();
        return { s, closed: new Promise((r) => s.once('close', () => r(Date.now() - t0))) };
      };
      const held = [await open(), await open(), await open()];
      held[0]!.s.write('set=1\npublic_key='); // a request that never ends
      held[1]!.s.write('g'); // a trickle
      await sleep(50);
      const extra = await open();
      // 'At once' is well before the read timeout, with room for a loaded machine.
      assert.ok((await extra.closed) < 700, 'a client over the cap was not closed at once');
      const times = await Promise.all(held.map((h) => h.closed));
      for (const ms of times) assert.ok(ms >= 950 && ms < 4000, `closed after ${ms} ms`);
      assert.deepEqual(srv.limited, { clients: 1, requestBytes: 0, readTimeout: 3 });
      // Served again afterwards.
      assert.match((await ask(srv.path, 'get=1\n\n')).text, /errno=0\n\n$/);
    } finally {
      await srv.close();
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
