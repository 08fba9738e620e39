/**
 * Waiting for and ending a tunnel (issue 13): ready() after a handshake or a clear error
 * naming the peer, Symbol.asyncDispose, AbortSignal on ping/lookup/fetch, close() settling
 * what is pending.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Writable } from 'node:stream';
import { once } from 'node:events';
import { tunnelPair, keyPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { Tunnel } from '../../src/index.js';

/** A tunnel whose only peer (10.99.0.0/24, DNS 10.99.0.53) never answers: its endpoint is a UDP port nobody reads. */
async function deadPeerTunnel(): Promise<{ t: Tunnel; peerKey: string; endpoint: string; close: () => Promise<void> }> {
  const sink = dgram.createSocket('udp4');
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
  const endpoint = `127.0.0.1:${sink.address().port}`;
  const peer = keyPair();
  const t = await Tunnel.create({
    privateKey: keyPair().privateKey,
    address: '10.99.0.2/24',
    dns: '10.99.0.53',
    peers: [{ publicKey: peer.publicKey, allowedIps: '10.99.0.0/24', endpoint }],
  });
  return {
    t,
    peerKey: peer.publicKey,
    endpoint,
    close: async () => {
      await t.close();
      sink.close();
    },
  };
}

const code = (c: string) => (e: unknown): boolean => (e as { code?: string }).code === c;
const aborted = (e: unknown): boolean => (e as Error).name === 'AbortError';

describe('ready()', () => {
  let p: TunnelPair;
  before(async () => {
    p = await tunnelPair();
  });
  after(async () => {
    await p.close();
  });

  test('resolves after a handshake (started by ready itself), then at once; peer: waits for that peer', async () => {
    await p.b.ready({ timeout: 5000 });
    const t0 = performance.now();
    await p.b.ready();
    await p.a.ready({ peer: p.b.publicKey });
    assert.ok(performance.now() - t0 < 50);
    await assert.rejects(p.a.ready({ peer: 'not-a-peer' }), (e: Error) => code('ERR_WGNET_INVALID_ARGUMENT')(e) && !e.message.includes('not-a-peer'));
  });

  test('no answer: ERR_WGNET_NO_HANDSHAKE naming the peer, its endpoint and what was tried', async () => {
    const d = await deadPeerTunnel();
    try {
      const err = await d.t.ready({ timeout: 300 }).then(() => assert.fail('resolved'), (e: Error & { code?: string }) => e);
      assert.equal(err.code, 'ERR_WGNET_NO_HANDSHAKE');
      assert.ok(err.message.includes(d.peerKey), err.message);
      assert.ok(err.message.includes(d.endpoint), err.message);
      assert.match(err.message, /no handshake within 300 ms: .*1 initiation sent, nothing received from it/);
      assert.ok(err.message.includes(d.t.publicKey));
      // close() ends a wait
      const waiting = d.t.ready({ timeout: 10_000 });
      await d.t.close();
      await assert.rejects(waiting, code('ERR_WGNET_CLOSED'));
      await assert.rejects(d.t.ready(), code('ERR_WGNET_CLOSED'));
    } finally {
      await d.close();
    }
  });

  test('signal aborts the wait', async () => {
    const d = await deadPeerTunnel();
    try {
      const ac = new AbortController();
      const w = d.t.ready({ signal: ac.signal });
      ac.abort();
      await assert.rejects(w, aborted);
    } finally {
      await d.close();
    }
  });
});

describe('AbortSignal, close() and Symbol.asyncDispose', () => {
  test('ping: signal aborts it; close() rejects a pending one with ERR_WGNET_CLOSED', async () => {
    const d = await deadPeerTunnel();
    const ac = new AbortController();
    const a = d.t.ping('10.99.0.1', { timeout: 10_000, signal: ac.signal });
    ac.abort();
    await assert.rejects(a, aborted);
    await assert.rejects(d.t.ping('10.99.0.1', { signal: AbortSignal.abort() }), aborted);
    const pending = d.t.ping('10.99.0.1', { timeout: 10_000 });
    const t0 = performance.now();
    await d.close();
    await assert.rejects(pending, code('ERR_WGNET_CLOSED'));
    assert.ok(performance.now() - t0 < 2000);
  });

  test('lookup: signal aborts a query that waits on an unanswering DNS server', async () => {
    const d = await deadPeerTunnel();
    try {
      const ac = new AbortController();
      const l = d.t.lookup('db.example', { signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      await assert.rejects(l, aborted);
    } finally {
      await d.close();
    }
  });

  test('fetch: init.signal aborts a request', async () => {
    const d = await deadPeerTunnel();
    try {
      await assert.rejects(d.t.fetch('http://10.99.0.1/', { signal: AbortSignal.timeout(100) }), (e: Error) => e.name === 'TimeoutError' || e.name === 'AbortError');
    } finally {
      await d.close();
    }
  });

  test('Symbol.asyncDispose closes the tunnel (await using)', async () => {
    const d = await deadPeerTunnel();
    let closed = false;
    d.t.once('close', () => (closed = true));
    await d.t[Symbol.asyncDispose]();
    assert.ok(closed);
    assert.throws(() => d.t.connect(80, '10.99.0.1'), code('ERR_WGNET_CLOSED'));
    await d.close();
  });
});

describe('pause() / resume() (device sleep, network change)', () => {
  type Dev = { peers(): Iterable<{ publicKey: Uint8Array; persistentKeepalive: number; current?: { created: number }; previous?: { created: number }; next?: { created: number } }>; stats: { rxDatagrams: number; handshakesInitiated: number; dropped: Record<string, number | undefined> } };
  const dev = (t: Tunnel): Dev => (t as unknown as { engine: { device: Dev } }).engine.device;
  let p: TunnelPair;
  before(async () => {
    p = await tunnelPair();
    const echo = p.b.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(7200, () => r()));
  });
  after(async () => {
    await p.close();
  });

  async function echoed(c: ReturnType<Tunnel['connect']>, text: string, within: number): Promise<void> {
    const got = new Promise<string>((resolve) => {
      let acc = '';
      const on = (d: Buffer): void => {
        acc += d;
        if (acc.length >= text.length) {
          c.off('data', on);
          resolve(acc);
        }
      };
      c.on('data', on);
    });
    c.write(text);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no echo of ${text} within ${within} ms`)), within)));
    try {
      assert.equal(await Promise.race([got, late]), text);
    } finally {
      clearTimeout(timer);
    }
  }

  test('paused: nothing leaves, keepalives off; resume: a handshake at once, keepalives back, the connection carries on', async () => {
    await p.a.ipcSet(`public_key=${Buffer.from(p.b.publicKey, 'base64').toString('hex')}\npersistent_keepalive_interval=25\n`);
    const c = p.a.connect(7200, '10.66.0.2');
    await once(c, 'connect');
    await echoed(c, 'before', 2000);
    const paused = once(p.a, 'pause');
    await p.a.pause();
    await paused;
    assert.equal(p.a.paused, true);
    await p.a.pause(); // idempotent
    assert.equal([...dev(p.a).peers()][0]!.persistentKeepalive, 0);
    await new Promise((r) => setTimeout(r, 100)); // what A sent before pause() has arrived
    const rx = dev(p.b).stats.rxDatagrams;
    c.write('during');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(dev(p.b).stats.rxDatagrams, rx, 'B received datagrams from a paused tunnel');
    // Listening before resume(): what waited in the send buffer goes out, and is echoed, at once.
    let got = '';
    const during = new Promise<void>((resolve) => {
      const on = (d: Buffer): void => {
        got += d;
        if (got.includes('during')) (c.off('data', on), resolve());
      };
      c.on('data', on);
    });
    const hs = once(p.a, 'handshake');
    await p.a.resume();
    assert.equal(p.a.paused, false);
    await Promise.race([hs, new Promise((_, reject) => setTimeout(() => reject(new Error('no handshake at once after resume()')), 2000))]);
    assert.equal([...dev(p.a).peers()][0]!.persistentKeepalive, 25);
    await during;
    await echoed(c, 'after', 5000);
    c.destroy();
  });

  test('a pause longer than RejectAfterTime: a fresh handshake, and no packet under the stale keys', async () => {
    const c = p.a.connect(7200, '10.66.0.2');
    await once(c, 'connect');
    await echoed(c, 'one', 2000);
    await p.a.pause();
    await new Promise((r) => setTimeout(r, 100)); // what A sent before pause() has arrived
    // 200 s asleep, as both devices see it: every keypair is older than RejectAfterTime (180 s).
    for (const t of [p.a, p.b]) {
      for (const peer of dev(t).peers()) for (const kp of [peer.current, peer.previous, peer.next]) if (kp) kp.created -= 200_000;
    }
    const initiated = dev(p.a).stats.handshakesInitiated;
    const hs = once(p.b, 'handshake');
    await p.a.resume();
    await hs;
    assert.ok(dev(p.a).stats.handshakesInitiated > initiated);
    await echoed(c, 'two', 5000);
    assert.equal(dev(p.b).stats.dropped.expiredKeypair ?? 0, 0, 'B got packets sealed with keys past RejectAfterTime');
    assert.equal(dev(p.a).stats.dropped.expiredKeypair ?? 0, 0, 'A got packets sealed with keys past RejectAfterTime');
    c.destroy();
  });

  test('paused, the engine stops: no packet is made, not even by its timers (retransmission, keepalive, handshake retry), and no timer is armed; resume() sends what waited', async () => {
    const c = p.a.connect(7200, '10.66.0.2');
    await once(c, 'connect');
    await echoed(c, 'awake', 2000);
    // Every inner packet A makes or takes, seen where it crosses the Device (the pcap tap).
    const cap = p.a.capture(new Writable({ write: (_chunk, _enc, cb) => cb() }));
    const stats = (): { txPackets: number; handshakesInitiated: number } => dev(p.a).stats as unknown as { txPackets: number; handshakesInitiated: number };
    await p.a.pause();
    const at = { packets: cap.stats.packets, tx: stats().txPackets, initiated: stats().handshakesInitiated };
    c.write('asleep'); // into the send buffer; an engine still running makes the segment, then retransmits it every RTO
    await p.a.ready({ timeout: 50 }).catch(() => {}); // a handshake asked for while paused
    await new Promise((r) => setTimeout(r, 1500)); // several retransmission timeouts (at least 200 ms each)
    assert.equal(cap.stats.packets, at.packets, 'inner packets were made while paused');
    assert.equal(stats().txPackets, at.tx, 'packets were encrypted while paused');
    assert.equal(stats().handshakesInitiated, at.initiated, 'a handshake initiation was made while paused');
    assert.equal((p.a.engine as unknown as { timer?: unknown }).timer, undefined, 'the engine kept a timer armed while paused');
    let got = '';
    const echoedAfter = new Promise<void>((resolve) => {
      const on = (d: Buffer): void => {
        got += d;
        if (got.includes('asleep')) (c.off('data', on), resolve());
      };
      c.on('data', on);
    });
    await p.a.resume();
    await echoedAfter;
    assert.ok(cap.stats.packets > at.packets);
    await cap.close();
    c.destroy();
  });

  test('close() while paused; pause() after close() throws ERR_WGNET_CLOSED', async () => {
    const d = await deadPeerTunnel();
    await d.t.pause();
    await d.close();
    await assert.rejects(d.t.pause(), code('ERR_WGNET_CLOSED'));
    await assert.rejects(d.t.resume(), code('ERR_WGNET_CLOSED'));
  });
});

describe('connect timeout', () => {
  test('no handshake possible: ETIMEDOUT after connectTimeout, naming the peer, its endpoint and what was tried', async () => {
    const d = await deadPeerTunnel();
    try {
      const t0 = performance.now();
      const c = d.t.connect({ port: 80, host: '10.99.0.1', connectTimeout: 300 });
      const [err] = (await once(c, 'error').catch((e: unknown) => [e])) as [Error & { code?: string }];
      assert.equal(err.code, 'ETIMEDOUT');
      assert.ok(performance.now() - t0 < 2000);
      assert.ok(err.message.startsWith('connect ETIMEDOUT 10.99.0.1:80 after 300 ms: no handshake with peer '), err.message);
      assert.ok(err.message.includes(`${d.peerKey} at ${d.endpoint} (1 initiation sent, nothing received from it)`), err.message);
      assert.throws(() => d.t.connect({ port: 80, host: '10.99.0.1', connectTimeout: -1 }), code('ERR_WGNET_INVALID_ARGUMENT'));
    } finally {
      await d.close();
    }
  });

  test('session up but the SYN unanswered: ETIMEDOUT says so', async () => {
    const p = await tunnelPair();
    try {
      // A routes 10.66.9.0/24 to B, which has no such address and drops the SYN.
      await p.a.ipcSet(`public_key=${Buffer.from(p.b.publicKey, 'base64').toString('hex')}\nallowed_ip=10.66.9.0/24\n`);
      await p.a.ready();
      const c = p.a.connect({ port: 80, host: '10.66.9.1', connectTimeout: 400 });
      const [err] = (await once(c, 'error').catch((e: unknown) => [e])) as [Error & { code?: string }];
      assert.equal(err.code, 'ETIMEDOUT');
      assert.match(err.message, /^connect ETIMEDOUT 10\.66\.9\.1:80 after 400 ms: the WireGuard session with peer .+ is up, but nothing answered the SYN$/);
    } finally {
      await p.close();
    }
  });
});
