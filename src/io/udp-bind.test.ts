/**
 * The outer UDP bind on both backends, over loopback: batches that the native
 * backend turns into GSO sends and receives as GRO runs must still arrive as
 * the same datagrams, in order, with the right sender.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { UdpBind, type UdpBackend } from './udp-bind.js';

const nativeBuilt = existsSync(new URL('../../native/build/Release/wgnet_udp.node', import.meta.url));
const backends: UdpBackend[] = ['dgram', 'native'];

function datagram(i: number, len: number): Uint8Array {
  const d = new Uint8Array(len);
  d.fill(i & 0xff);
  if (len >= 2) new DataView(d.buffer).setUint16(0, i);
  return d;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const backend of backends) {
  const skip = backend === 'native' && !nativeBuilt ? (process.env.CI ? false : 'native/udp.c is not built (npm run build:native)') : false;

  test(`${backend}: a batch of same-size and mixed datagrams to two receivers arrives intact and in order`, { skip }, async () => {
    const got: { from: number; data: Buffer }[][] = [[], []];
    const rx = await Promise.all(
      [0, 1].map(
        (k) =>
          new Promise<dgram.Socket>((resolve) => {
            const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
            s.on('message', (m, r) => got[k]!.push({ from: r.port, data: m }));
            s.bind(0, '127.0.0.1', () => resolve(s));
          }),
      ),
    );
    const b = await UdpBind.open({ backend, host4: '127.0.0.1', host6: '::1', onMessage: () => {} });
    assert.equal(b.backend, backend);
    // 100 full-size datagrams to one receiver (a GSO run), then a short one
    // (ends the run), then alternating receivers and sizes (no runs).
    const plan: { to: number; len: number }[] = [];
    for (let i = 0; i < 100; i++) plan.push({ to: 0, len: 1452 });
    plan.push({ to: 0, len: 100 });
    for (let i = 0; i < 60; i++) plan.push({ to: i % 2, len: 32 + ((i * 97) % 1400) });
    plan.forEach((p, i) => b.send(datagram(i, p.len), '127.0.0.1', rx[p.to]!.address().port));
    b.flush();
    await until(() => got[0]!.length + got[1]!.length === plan.length);
    const expect0 = plan.map((p, i) => ({ ...p, i })).filter((p) => p.to === 0);
    const expect1 = plan.map((p, i) => ({ ...p, i })).filter((p) => p.to === 1);
    for (const [k, exp] of [expect0, expect1].entries()) {
      assert.equal(got[k]!.length, exp.length);
      exp.forEach((p, j) => {
        const m = got[k]![j]!;
        assert.equal(m.from, b.port);
        assert.deepEqual(new Uint8Array(m.data), datagram(p.i, p.len), `receiver ${k}, datagram ${j}`);
      });
    }
    await b.close();
    for (const s of rx) s.close();
  });

  test(`${backend}: a burst from one sender (a GRO run) arrives as separate datagrams with the sender's address, IPv4 and IPv6`, { skip }, async () => {
    const got: { data: Uint8Array; address: string; port: number }[] = [];
    let batches = 0;
    const b = await UdpBind.open({
      backend,
      host4: '127.0.0.1',
      host6: '::1',
      onMessage: (data, address, port) => got.push({ data: new Uint8Array(data), address, port }),
      onBatchEnd: () => batches++,
    });
    for (const [type, host] of [
      ['udp4', '127.0.0.1'],
      ['udp6', '::1'],
    ] as const) {
      got.length = 0;
      const tx = dgram.createSocket(type);
      await new Promise<void>((r) => tx.bind(0, host, () => r()));
      const n = 200;
      for (let i = 0; i < n; i++) tx.send(datagram(i, i === n - 1 ? 77 : 1200), b.port, host);
      await until(() => got.length === n);
      got.forEach((g, i) => {
        assert.equal(g.address, host);
        assert.equal(g.port, tx.address().port);
        assert.deepEqual(g.data, datagram(i, i === n - 1 ? 77 : 1200));
      });
      tx.close();
    }
    assert.ok(batches > 0);
    await b.close();
  });
}

for (const backend of backends) {
  const skip = backend === 'native' && !nativeBuilt ? (process.env.CI ? false : 'native/udp.c is not built (npm run build:native)') : false;
  test(`${backend} to ${backend}: a GSO send received with GRO comes out as the original datagrams`, { skip }, async () => {
    const got: Uint8Array[] = [];
    const rx = await UdpBind.open({ backend, host4: '127.0.0.1', host6: '::1', onMessage: (d) => got.push(new Uint8Array(d)) });
    const tx = await UdpBind.open({ backend, host4: '127.0.0.1', host6: '::1', onMessage: () => {} });
    const sizes = [...Array.from({ length: 120 }, () => 1452), 600, ...Array.from({ length: 30 }, () => 900)];
    sizes.forEach((len, i) => tx.send(datagram(i, len), '127.0.0.1', rx.port));
    tx.flush();
    await until(() => got.length === sizes.length);
    sizes.forEach((len, i) => assert.deepEqual(got[i], datagram(i, len), `datagram ${i}`));
    await tx.close();
    await rx.close();
  });
}

/**
 * Which path a wake-up of the native reader takes (native/poll_reader.h), seen from
 * JavaScript: a datagram sent from the check phase, with an immediate queued right after,
 * reaches onMessage before that immediate only if the poll callback called JavaScript
 * directly; the queued call runs one loop iteration later, after it.
 */
async function deliveredBeforeImmediate(tx: UdpBind, port: number, n: number, seen: () => number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    setImmediate(() => {
      const want = seen() + n;
      for (let i = 0; i < n; i++) tx.send(datagram(i, 64), '127.0.0.1', port);
      tx.flush();
      setImmediate(() => {
        const direct = seen() >= want;
        until(() => seen() >= want).then(() => resolve(direct), reject);
      });
    });
  });
}

async function withPollDirect<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const old = process.env.WGNET_POLL_DIRECT;
  if (value === undefined) delete process.env.WGNET_POLL_DIRECT;
  else process.env.WGNET_POLL_DIRECT = value;
  try {
    return await fn();
  } finally {
    if (old === undefined) delete process.env.WGNET_POLL_DIRECT;
    else process.env.WGNET_POLL_DIRECT = old;
  }
}

test('native: a datagram alone reaches onMessage in the loop turn that finds it; after a burst the next goes through the queued call; WGNET_POLL_DIRECT=0 always queues', { skip: nativeBuilt ? false : process.env.CI ? false : 'native/udp.c is not built (npm run build:native)' }, async () => {
  // Counted over several tries: the ordering needs the kernel to have queued the datagram
  // by the time sendmsg returns, which loopback does unless softirqs are deferred under load.
  const TRIES = 10;
  const run = (env: string | undefined) =>
    withPollDirect(env, async () => {
      let seen = 0;
      // The variable is read when the reader starts, so the binds are opened inside.
      const rx = await UdpBind.open({ backend: 'native', host4: '127.0.0.1', host6: '::1', onMessage: () => seen++ });
      const tx = await UdpBind.open({ backend: 'native', host4: '127.0.0.1', host6: '::1', onMessage: () => {} });
      let alone = 0;
      let afterBurst = 0;
      try {
        for (let i = 0; i < TRIES; i++) if (await deliveredBeforeImmediate(tx, rx.port, 1, () => seen)) alone++;
        for (let i = 0; i < TRIES; i++) {
          await deliveredBeforeImmediate(tx, rx.port, 16, () => seen);
          if (await deliveredBeforeImmediate(tx, rx.port, 1, () => seen)) afterBurst++;
        }
      } finally {
        await tx.close();
        await rx.close();
      }
      return { alone, afterBurst };
    });
  const adaptive = await run(undefined);
  assert.ok(adaptive.alone > TRIES / 2, `a datagram alone was delivered directly ${adaptive.alone} of ${TRIES} times`);
  assert.ok(adaptive.afterBurst < TRIES / 2, `the datagram after a burst was delivered directly ${adaptive.afterBurst} of ${TRIES} times`);
  const queued = await run('0');
  assert.deepEqual(queued, { alone: 0, afterBurst: 0 });
});
