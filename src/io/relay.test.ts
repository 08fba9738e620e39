/**
 * relay.reset: a host socket is closed (and its descriptor released) whatever state its
 * write side is in, including the moment its FIN is queued, where libuv refuses a reset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { reset } from './relay.js';

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
