/**
 * relay.reset: a host socket is closed (and its descriptor released) whatever state its
 * write side is in, including the moment its FIN is queued, where libuv refuses a reset.
 * TcpRelay: a relayed connection's two directions, half-close, backpressure and resets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { reset, TcpRelay } from './relay.js';
import type { TcpConnection, TcpErrorCode, TcpState } from '../netstack/types.js';

async function pair(): Promise<{ a: net.Socket; b: net.Socket; server: net.Server }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const a = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [b] = (await once(server, 'connection')) as [net.Socket];
  await once(a, 'connect');
  return { a, b, server };
}

test('reset right after end() (shutdown in flight) still closes the socket, without an error', { timeout: 5000 }, async () => {
  const { a, b, server } = await pair();
  const errors: Error[] = [];
  a.on('error', (e) => errors.push(e));
  a.end(); // writes nothing: shutdown(2) is requested at once and completes on the next loop turn
  assert.ok(a.writableEnded && !a.writableFinished, 'the FIN is queued');
  reset(a);
  await once(a, 'close');
  assert.deepEqual(errors, []);
  b.destroy();
  server.close();
});

test('reset of an open socket is a RST the other side sees as ECONNRESET', async () => {
  const { a, b, server } = await pair();
  reset(a);
  const [err] = (await once(b, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNRESET');
  server.close();
});

/**
 * TcpRelay against a stand-in for the netstack connection (what the peer sent waits in
 * `received`; what the relay sends fills a send buffer of `space` bytes) and a real host
 * socket pair: the relay's end `host`, the far end `far` standing for the host's server.
 */
class FakeConn implements TcpConnection {
  readonly id = 1;
  readonly localAddr = new Uint8Array([10, 0, 0, 2]);
  readonly localPort = 80;
  readonly remoteAddr = new Uint8Array([10, 0, 0, 1]);
  readonly remotePort = 40000;
  state: TcpState = 'SYN-RECEIVED';
  error: TcpErrorCode | undefined;
  received: Uint8Array[] = [];
  finReceived = false;
  sent: Uint8Array[] = [];
  space = 1 << 20;
  shutdowns = 0;
  aborts = 0;
  get sendSpace(): number {
    return this.space;
  }
  get sendQueued(): number {
    return 0;
  }
  get recvAvailable(): number {
    return this.received.reduce((n, c) => n + c.length, 0);
  }
  get recvEnded(): boolean {
    return this.finReceived && this.received.length === 0;
  }
  send(_now: number, data: Uint8Array): number {
    const n = Math.min(data.length, this.space);
    if (n > 0) this.sent.push(data.slice(0, n));
    this.space -= n;
    return n;
  }
  recv(): Uint8Array | undefined {
    return this.received.shift();
  }
  shutdown(): void {
    this.shutdowns++;
  }
  abort(): void {
    this.aborts++;
    this.state = 'CLOSED';
  }
  setNoDelay(): void {}
  setKeepAlive(): void {}
  text(): string {
    return Buffer.concat(this.sent).toString();
  }
}

const stack = { now: () => 0, schedule: () => {} };

async function relayed(): Promise<{ conn: FakeConn; relay: TcpRelay; host: net.Socket; far: net.Socket; server: net.Server; closed: Promise<void> }> {
  const { a, b, server } = await pair();
  // The relay's host socket is half-open capable, as connectHost makes it.
  a.allowHalfOpen = true;
  b.allowHalfOpen = true;
  const conn = new FakeConn();
  let done!: () => void;
  const closed = new Promise<void>((r) => (done = r));
  const relay = new TcpRelay(conn, a, stack, { detached: () => {}, closed: () => done() });
  return { conn, relay, host: a, far: b, server, closed };
}

const until = async (what: string, ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(ok(), what);
};

test('TcpRelay: bytes both ways; the peer half-closes first, then the host; closed once both sides are done', async () => {
  const { conn, relay, far, server, closed } = await relayed();
  let atFar = '';
  far.on('data', (d) => (atFar += d));
  relay.onConnected();
  conn.state = 'ESTABLISHED';
  conn.received.push(Buffer.from('request'));
  conn.finReceived = true;
  relay.onReadable();
  await once(far, 'end'); // the peer's FIN reached the host's server
  assert.equal(atFar, 'request');
  far.end('answer'); // the server answers in its half of the connection, then closes it
  await until('the answer and the FIN in the send buffer', () => conn.shutdowns === 1);
  assert.equal(conn.text(), 'answer');
  await closed;
  assert.equal(conn.aborts, 0);
  server.close();
});

test('TcpRelay: what the host sends before the peer completes the handshake waits, then goes, with its FIN', async () => {
  const { conn, relay, far, server, closed } = await relayed();
  far.end('banner');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual([conn.sent.length, conn.shutdowns], [0, 0], 'nothing sent in SYN-RECEIVED');
  relay.onConnected();
  assert.equal(conn.text(), 'banner');
  assert.equal(conn.shutdowns, 1);
  conn.finReceived = true;
  relay.onReadable();
  await closed;
  server.close();
});

test('TcpRelay: a full send buffer pauses the host socket until send space is freed', async () => {
  const { conn, relay, far, server, closed } = await relayed();
  relay.onConnected();
  conn.space = 10;
  far.write('0123456789abcdefghij');
  await until('the first 10 bytes taken', () => conn.text() === '0123456789');
  far.end();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(conn.shutdowns, 0, 'no FIN while bytes are held');
  conn.space = 100;
  relay.onWritable();
  assert.equal(conn.text(), '0123456789abcdefghij');
  await until('the FIN after them', () => conn.shutdowns === 1);
  far.on('error', () => {}); // the reset below ends the test's connection
  relay.reset();
  await closed;
  server.close();
});

test('TcpRelay: the connection is read only while the host socket takes it (backpressure to the peer)', async () => {
  const { conn, relay, far, server, closed } = await relayed();
  relay.onConnected();
  far.pause();
  const chunk = Buffer.alloc(64 * 1024, 1);
  for (let i = 0; i < 64; i++) conn.received.push(chunk);
  relay.onReadable();
  assert.ok(conn.received.length > 0, 'reading stopped at the host socket high-water mark');
  const left = conn.received.length;
  far.resume();
  await until('read again after drain', () => conn.received.length === 0);
  assert.ok(left < 64);
  far.on('error', () => {});
  relay.reset();
  await closed;
  server.close();
});

test("TcpRelay: RST for RST: the peer's reset resets the host side, the host's reset aborts the connection", async () => {
  {
    const { relay, far, server, closed } = await relayed();
    relay.onConnected();
    relay.onClosed('ECONNRESET');
    const [err] = (await once(far, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNRESET');
    await closed;
    server.close();
  }
  {
    const { conn, relay, far, server, closed } = await relayed();
    relay.onConnected();
    far.resetAndDestroy();
    await closed;
    assert.equal(conn.aborts, 1);
    server.close();
  }
});

test('TcpRelay: a graceful close with host bytes still held resets the host socket (they cannot be delivered)', async () => {
  const { conn, relay, far, server, closed } = await relayed();
  relay.onConnected();
  conn.space = 0;
  far.write('undeliverable');
  await new Promise((r) => setTimeout(r, 50));
  conn.state = 'CLOSED';
  relay.onClosed(undefined);
  const [err] = (await once(far, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNRESET');
  await closed;
  server.close();
});
