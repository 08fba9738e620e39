/**
 * The real `wg` (wireguard-tools) drives wgnet's UAPI socket: show, set,
 * showconf/setconf round trip, live changes without dropping sessions.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Tunnel } from '../../src/index.js';
import { genKeyPair, shAsync } from './harness.js';

function wgMissing(): string | false {
  let why: string | undefined;
  if (process.getuid?.() !== 0) why = 'the UAPI socket lives in /var/run/wireguard: needs root';
  else {
    try {
      execFileSync('sh', ['-c', 'command -v wg'], { stdio: 'ignore' });
    } catch {
      why = "needs 'wg' (Debian package wireguard-tools)";
    }
  }
  if (!why) return false;
  if (process.env.CI) throw new Error(`CI=true but ${why}`);
  return why;
}
const skip = wgMissing();

// Async: `wg` talks to a socket this very process serves.
const wg = (...args: string[]): Promise<string> => shAsync('wg', args);
const name = (s: string): string => `wgn${process.pid.toString(36)}${s}`.slice(0, 15);

describe('UAPI with the real wg tool', { skip }, () => {
  let a: Tunnel;
  let b: Tunnel;
  const ka = genKeyPairSafe();
  const kb = genKeyPairSafe();
  const na = name('a');
  const nb = name('b');

  before(async () => {
    a = await Tunnel.create(
      `[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.98.0.1/24\n\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.98.0.2/32\n`,
      { uapi: na },
    );
    b = await Tunnel.create(
      `[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.98.0.2/24\n\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.98.0.1/32\nEndpoint = 127.0.0.1:${a.listenPort}\n`,
      { uapi: nb },
    );
    await b.ping('10.98.0.1', { timeout: 5000 });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    assert.equal(existsSync(`/var/run/wireguard/${na}.sock`), false, 'socket removed on close');
  });

  test('wg show lists the interface, the peer, its endpoint, allowed IPs, handshake and transfer', async () => {
    const out = await wg('show', nb);
    assert.match(out, new RegExp(`interface: ${nb}`));
    assert.match(out, new RegExp(`public key: ${escape(kb.publicKey)}`));
    assert.match(out, new RegExp(`listening port: ${b.listenPort}`));
    assert.match(out, new RegExp(`peer: ${escape(ka.publicKey)}`));
    assert.match(out, new RegExp(`endpoint: 127.0.0.1:${a.listenPort}`));
    assert.match(out, /allowed ips: 10\.98\.0\.1\/32/);
    assert.match(out, /latest handshake: /);
    assert.match(out, /transfer: [0-9.]+ \w*B received, [0-9.]+ \w*B sent/);
    assert.equal(await wg('show', nb, 'private-key'), kb.privateKey);
  });

  test('wg set changes take effect live; the session survives', async () => {
    const extra = genKeyPairSafe();
    await wg('set', nb, 'peer', extra.publicKey, 'allowed-ips', '10.98.1.0/24,fd98::/64', 'persistent-keepalive', '0', 'endpoint', '[::1]:9');
    const p = b.device.getPeer(Buffer.from(extra.publicKey, 'base64'));
    assert.ok(p, 'peer added');
    assert.deepEqual(p.endpoint, { address: '::1', port: 9 });
    assert.match(await wg('show', nb, 'allowed-ips'), /10\.98\.1\.0\/24 fd98::\/64/);
    await wg('set', nb, 'peer', ka.publicKey, 'allowed-ips', '10.98.0.1/32,10.98.7.0/24');
    assert.match(await wg('show', nb, 'allowed-ips'), /10\.98\.0\.1\/32 10\.98\.7\.0\/24/);
    await wg('set', nb, 'peer', extra.publicKey, 'remove');
    assert.equal(b.device.getPeer(Buffer.from(extra.publicKey, 'base64')), undefined);
    // The untouched session still carries traffic.
    await b.ping('10.98.0.1', { timeout: 3000 });
  });

  test('wg showconf | wg setconf round-trips onto another interface', async () => {
    const nc = name('c');
    const kc = genKeyPairSafe();
    const c = await Tunnel.create(`[Interface]\nPrivateKey = ${kc.privateKey}\nAddress = 10.98.0.3/24\n`, { uapi: nc });
    // Both interfaces live on this host: B's ListenPort is taken, so it is dropped from the copy.
    const conf = (await wg('showconf', nb)).replace(/ListenPort = \d+\n/, '');
    assert.match(conf, /\[Interface\]/);
    assert.match(conf, new RegExp(`PublicKey = ${escape(ka.publicKey)}`));
    const tmp = `/tmp/wgnet-showconf-${process.pid}.conf`;
    execFileSync('sh', ['-c', `umask 077; cat > ${tmp}`], { input: conf });
    await wg('setconf', nc, tmp);
    const again = await wg('showconf', nc);
    // syncconf applies only the difference: drop the peer, keep the rest.
    execFileSync('sh', ['-c', `umask 077; cat > ${tmp}`], { input: conf.replace(/\[Peer\][\s\S]*$/, '') });
    await wg('syncconf', nc, tmp);
    assert.doesNotMatch(await wg('show', nc), /peer:/);
    await c.close();
    const strip = (s: string): string => s.replace(/ListenPort = \d+\n?/, '').replace(/Endpoint = .*\n?/g, '');
    assert.equal(strip(again), strip(conf));
    execFileSync('rm', ['-f', tmp]);
  });

  test('wg set listen-port to a port in use fails with EADDRINUSE; the tunnel keeps its port and session', async () => {
    const before = a.listenPort;
    await assert.rejects(wg('set', na, 'listen-port', String(b.listenPort)), /Address already in use|failed/);
    assert.equal(a.listenPort, before);
    await b.ping('10.98.0.1', { timeout: 3000 });
  });

  test('ipcGet/ipcSet speak the same protocol in-process', async () => {
    const text = b.ipcGet();
    assert.match(text, /^private_key=[0-9a-f]{64}\n/);
    assert.match(text, /protocol_version=1\n/);
    await assert.rejects(b.ipcSet('listen_port=70000\n'), /errno=-22/);
    await assert.rejects(b.ipcSet('bogus\n'), /errno=-71/);
  });

  test('a second interface with the same name is refused while the first is live', async () => {
    await assert.rejects(Tunnel.create(
      `[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.98.0.9/24\n`,
      { uapi: na },
    ), /in use/);
  });
});

function escape(s: string): string {
  return s.replace(/[+/=]/g, (c) => `\\${c}`);
}

function genKeyPairSafe(): { privateKey: string; publicKey: string } {
  try {
    return genKeyPair();
  } catch {
    return { privateKey: '', publicKey: '' };
  }
}
