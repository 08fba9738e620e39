/**
 * Faults (issue 18): what a user sees when the world around a tunnel misbehaves, and
 * that the tunnel survives it. Each test names the behaviour chosen and why.
 *
 * - The peer restarts mid-transfer: a new session at once (its first initiation carries a
 *   newer TAI64N timestamp, whitepaper §5.1); a TCP connection that the restarted netstack
 *   terminated is gone with it, so the survivor's next segment draws a RST and the
 *   application gets ECONNRESET promptly, as from a rebooted host (RFC 9293 §3.5.2); a
 *   connection that only passed through the restarted tunnel (peer-to-peer routing) keeps
 *   its state at both ends and completes byte-exact.
 * - The peer's endpoint roams (address, port, even address family): the endpoint follows
 *   the latest authenticated datagram (whitepaper §2) and the transfer completes.
 * - The clock jumps: deadlines use the monotonic clock only; after a long stall every
 *   expired deadline fires once (no catch-up storm); a wall clock that steps back does not
 *   make the peer refuse our handshakes as replays (whitepaper §5.1's timestamp rule).
 * - The outer socket fails (ENOBUFS, EPERM, ENETUNREACH): datagrams are dropped and counted,
 *   never an exception; WireGuard and TCP retransmit, so traffic resumes when it heals.
 * - An application callback throws: the exception reaches 'uncaughtException' as Node's own
 *   would, and the tunnel, the other connections and the same emitter keep working.
 * - A corrupt, truncated or greedy UAPI client cannot wedge the UAPI socket.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import type { Tunnel } from '../../src/index.js';
import { UdpBind } from '../../src/io/udp-bind.js';
import type { TcpSocket } from '../../src/api/tcp-socket.js';
import { tunnelPair } from '../harness/tunnel-pair.js';
import { waitFor } from '../harness/churn.js';
import { fillPattern } from '../harness/tcp-sim.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Pattern bytes [offset, offset + n). */
function pattern(offset: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  fillPattern(b, offset);
  return b;
}

/**
 * Runs `fn` with the test runner's 'uncaughtException' listeners set aside and one of ours
 * in their place, as an application that handles the event would have. Node's rule: an
 * exception thrown by an event listener is an 'uncaughtException'.
 */
async function handlingUncaught<T>(fn: (caught: unknown[]) => Promise<T>): Promise<T> {
  const saved = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  const caught: unknown[] = [];
  const mine = (err: unknown): void => void caught.push(err);
  process.on('uncaughtException', mine);
  try {
    return await fn(caught);
  } finally {
    await sleep(20); // exceptions rethrown on a later tick land here, not in the runner
    process.off('uncaughtException', mine);
    for (const l of saved) process.on('uncaughtException', l);
  }
}

/** Sends `total` pattern bytes on `s` and resolves with the SHA-256 and length of what came back. */
function echoRoundTrip(s: TcpSocket, total: number, chunk = 64 * 1024): Promise<{ ok: boolean; n: number }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let got = 0;
    let ok = true;
    s.on('data', (d: Buffer) => {
      if (ok && !d.equals(pattern(got, d.length))) ok = false;
      got += d.length;
      if (got >= total) {
        s.end();
        resolve({ ok, n: got });
      }
    });
    s.once('error', reject);
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(chunk, total - sent);
        const more = s.write(pattern(sent, n));
        sent += n;
        if (!more) return void s.once('drain', pump);
      }
    };
    if (s.connecting) s.once('connect', pump);
    else pump();
  });
}

describe('faults: an exception in an application callback', () => {
  test("throwing 'data', 'connection', 'message' and 'handshake' listeners: uncaught, and the tunnel, other connections and the same emitters go on", { timeout: 60_000 }, async () => {
    const pair = await tunnelPair();
    const { a, b } = pair;
    try {
      await handlingUncaught(async (caught) => {
        // 'handshake' on both sides throws once.
        let handshakes = 0;
        const boom = (): void => {
          if (handshakes++ < 2) throw new Error('handshake listener');
        };
        a.on('handshake', boom);
        b.on('handshake', boom);

        // B: an echo server whose connection listener throws for the first connection, before
        // wiring it (that one is left alone), and serves the others.
        let conns = 0;
        const unwired: TcpSocket[] = [];
        const srv = b.createServer((c) => {
          if (conns++ === 0) {
            unwired.push(c);
            throw new Error('connection listener');
          }
          c.on('error', () => {});
          c.pipe(c);
        });
        await new Promise<void>((r) => srv.listen(7000, () => r()));

        // Five connections at once: they reach the accept queue together, the throw comes first.
        const socks = Array.from({ length: 5 }, () => a.connect({ host: '10.66.0.2', port: 7000 }));
        for (const s of socks) s.on('error', () => {});
        await Promise.all(socks.map((s) => new Promise((r) => s.once('connect', r))));
        await waitFor(() => conns === 5, 5000, 'all five connections accepted');

        // A connection whose 'data' listener throws on every 4th chunk, beside one that does not.
        const thrower = socks.find((s) => s.localPort !== unwired[0]!.remotePort)!;
        const quiet = socks.find((s) => s !== thrower && s.localPort !== unwired[0]!.remotePort)!;
        // The throwing listener comes after the counting one (listeners after a throwing one do
        // not run for that chunk, in Node as here).
        const total = 4 << 20;
        const rounds = Promise.all([echoRoundTrip(thrower, total), echoRoundTrip(quiet, total)]);
        let chunks = 0;
        thrower.on('data', () => {
          if (chunks++ % 4 === 0) throw new Error('data listener');
        });
        const [r1, r2] = await rounds;
        assert.deepEqual(r1, { ok: true, n: total }, 'the connection whose listener threw still gets every byte, in order');
        assert.deepEqual(r2, { ok: true, n: total });

        // UDP: B's 'message' listener throws on every message; every datagram still arrives.
        const ub = b.createSocket('udp4');
        let messages = 0;
        ub.on('message', () => {
          messages++;
          throw new Error('message listener');
        });
        await new Promise<void>((r) => ub.bind(7001, () => r()));
        const ua = a.createSocket('udp4');
        for (let i = 0; i < 20; i++) ua.send(Buffer.from(`m${i}`), 7001, '10.66.0.2');
        await waitFor(() => messages === 20, 5000, `20 datagrams delivered (got ${messages})`);

        // Later connections to the same server are still accepted and served.
        const late = a.connect({ host: '10.66.0.2', port: 7000 });
        assert.deepEqual(await echoRoundTrip(late, 100_000), { ok: true, n: 100_000 });

        await sleep(20);
        const messagesOf = caught.map((e) => (e as Error).message);
        assert.ok(messagesOf.includes('connection listener'), messagesOf.join(','));
        assert.ok(messagesOf.includes('data listener'));
        assert.equal(messagesOf.filter((m) => m === 'message listener').length, 20);
        assert.ok(a.engine.callbackErrors + b.engine.callbackErrors >= caught.length - 2);
        for (const s of [...socks, late, ...unwired]) s.destroy();
        ua.close();
        ub.close();
        srv.close();
      });
    } finally {
      await pair.close();
    }
  });

  test('an onFlow handler or accept callback that throws refuses that flow only; the tunnel is not taken down', { timeout: 30_000 }, async () => {
    const pair = await tunnelPair();
    const { a, b } = pair;
    try {
      // A routes 198.18.0.0/24 to B; B terminates flows there (gateway mode).
      await a.ipcSet(`public_key=${Buffer.from(b.publicKey, 'base64').toString('hex')}\nallowed_ip=198.18.0.0/24\n`);
      b.onFlow((f) => {
        if (f.destination.port === 1) throw new Error('flow handler');
        if (f.destination.port === 2) return { accept: () => { throw new Error('accept callback'); } };
        return {
          accept: (s) => {
            const sock = s as TcpSocket;
            sock.on('error', () => {});
            sock.pipe(sock);
          },
        };
      });
      const failed = async (port: number): Promise<string> =>
        new Promise((resolve) => {
          const s = a.connect({ host: '198.18.0.1', port });
          s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
          s.once('close', () => resolve('closed'));
        });
      assert.match(await failed(1), /ECONNREFUSED|ECONNRESET/);
      assert.match(await failed(2), /ECONNREFUSED|ECONNRESET|closed/);
      const ok = a.connect({ host: '198.18.0.1', port: 3 });
      assert.deepEqual(await echoRoundTrip(ok, 200_000), { ok: true, n: 200_000 });
      assert.equal(b.gatewayStats()!.counters['refused.handler'], 1);
    } finally {
      await pair.close();
    }
  });
});

const nativeBuilt = existsSync(new URL('../../native/build/Release/wgnet_udp.node', import.meta.url));

/** A tunnel pair on one outer socket backend (the WGNET_UDP switch, read when a bind opens). */
async function pairOn(backend: 'dgram' | 'native', opts: Parameters<typeof tunnelPair>[0] = {}): Promise<Awaited<ReturnType<typeof tunnelPair>>> {
  const old = process.env.WGNET_UDP;
  process.env.WGNET_UDP = backend;
  try {
    return await tunnelPair(opts);
  } finally {
    if (old === undefined) delete process.env.WGNET_UDP;
    else process.env.WGNET_UDP = old;
  }
}

/**
 * Makes every send of `t`'s IPv4 outer socket fail as the host would, until the returned
 * function is called: node:dgram reports the errno to send()'s callback on a later tick;
 * the batched addon's send() reports how many datagrams went (none).
 */
function failOuterSends(t: Tunnel, code: string): () => void {
  const bind = t.engine.bind!;
  const v4 = (bind as unknown as { v4: { s?: dgram.Socket; a?: { send: (...args: unknown[]) => { sent: number; gsoFailed: boolean } } } }).v4;
  if (bind.backend === 'dgram') {
    const s = v4.s!;
    const fail = (_msg: unknown, port: number, address: string, cb?: (err: Error | null) => void): void => {
      const err = Object.assign(new Error(`send ${code} ${address}:${port}`), { code, syscall: 'send' });
      if (cb) process.nextTick(cb, err);
    };
    Object.defineProperty(s, 'send', { value: fail, configurable: true, writable: true });
    return () => void delete (s as unknown as { send?: unknown }).send;
  }
  const addon = v4.a!;
  // The addon's own properties are read-only: a new object that inherits the rest.
  v4.a = Object.create(addon, { send: { value: () => ({ sent: 0, gsoFailed: false }) } }) as typeof addon;
  return () => void (v4.a = addon);
}

describe('faults: the outer socket fails', () => {
  for (const backend of ['dgram', 'native'] as const) {
    const skip = backend === 'native' && !nativeBuilt ? 'native/udp.c is not built' : false;
    test(`${backend}: EPERM, then ENETUNREACH, then ENOBUFS from send for 0.5 s each mid-transfer: counted, never thrown, the transfer completes byte-exact`, { skip, timeout: 60_000 }, async () => {
      const pair = await pairOn(backend);
      const { a, b } = pair;
      const errors: Error[] = [];
      a.on('error', (e: Error) => errors.push(e));
      b.on('error', (e: Error) => errors.push(e));
      try {
        assert.equal(a.engine.bind!.backend, backend);
        const srv = b.createServer((c) => {
          c.on('error', () => {});
          c.pipe(c);
        });
        await new Promise<void>((r) => srv.listen(7100, () => r()));
        const s = a.connect({ host: '10.66.0.2', port: 7100 });
        const total = 8 << 20;
        const done = echoRoundTrip(s, total);
        await sleep(100);
        for (const [side, code] of [[a, 'EPERM'], [b, 'ENETUNREACH'], [a, 'ENOBUFS']] as const) {
          const heal = failOuterSends(side, code);
          await sleep(500);
          heal();
        }
        assert.deepEqual(await done, { ok: true, n: total });
        const bindA = a.engine.bind!;
        const bindB = b.engine.bind!;
        assert.ok(bindA.sendErrors > 0 && bindB.sendErrors > 0, `send errors counted: ${bindA.sendErrors}, ${bindB.sendErrors}`);
        if (backend === 'dgram') {
          assert.match(bindA.lastSendError ?? '', /^(EPERM|ENOBUFS)$/); // A may be waiting out an RTO, sending nothing, in the second
          assert.equal(bindB.lastSendError, 'ENETUNREACH');
        }
        assert.deepEqual(errors, [], 'no error event: a failed send is not the application\'s error');
        // Still a working tunnel: a fresh connection echoes.
        assert.deepEqual(await echoRoundTrip(a.connect({ host: '10.66.0.2', port: 7100 }), 100_000), { ok: true, n: 100_000 });
        s.destroy();
        srv.close();
      } finally {
        await pair.close();
      }
    });
  }

  test('dgram: a send node:dgram refuses at once (port 0: ERR_SOCKET_BAD_PORT) is counted, not thrown into the engine', async () => {
    // An initiation from source port 0 under load is answered with a cookie reply to port 0.
    const bind = await UdpBind.open({ backend: 'dgram', host4: '127.0.0.1', host6: '::1', onMessage: () => {} });
    try {
      assert.doesNotThrow(() => {
        bind.send(new Uint8Array(32), '127.0.0.1', 0);
        bind.flush();
      });
      assert.equal(bind.sendErrors, 1);
      assert.equal(bind.lastSendError, 'ERR_SOCKET_BAD_PORT');
    } finally {
      await bind.close();
    }
  });
});
