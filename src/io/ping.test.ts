/**
 * pingHost against this host's loopback, on whichever path this process may use (ping socket,
 * raw socket or the system ping): answered, numbered per echo, cancellable, and the socket
 * closed once nothing is in flight (the file would not finish otherwise: an open ICMP socket
 * keeps the event loop alive).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pingHost, type PingOutcome } from './ping.js';

function ping(address: string, data: Uint8Array, timeoutMs = 3000): Promise<PingOutcome> {
  return new Promise((resolve) => pingHost(address, data, timeoutMs, resolve));
}

test('an echo to 127.0.0.1 and to ::1 is answered', async () => {
  const r4 = await ping('127.0.0.1', new Uint8Array(56).fill(7));
  assert.equal(r4.ok, true, JSON.stringify(r4));
  const r6 = await ping('::1', new Uint8Array(0));
  assert.equal(r6.ok, true, JSON.stringify(r6));
});

test('20 echoes in flight at once, each with its own data, all answered by the one socket', async () => {
  const all = await Promise.all(Array.from({ length: 20 }, (_, i) => ping('127.0.0.1', new Uint8Array(100 + i).fill(i))));
  for (const r of all) assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(new Set(all.map((r) => r.path)).size, 1);
});

test('cancel settles the echo at once, exactly once, as cancelled', async () => {
  const seen: PingOutcome[] = [];
  const cancel = pingHost('127.0.0.1', new Uint8Array(8), 3000, (r) => seen.push(r));
  cancel();
  cancel();
  await new Promise((r) => setTimeout(r, 200)); // a reply arriving now changes nothing
  assert.equal(seen.length, 1);
  assert.deepEqual([seen[0]!.ok, !seen[0]!.ok && seen[0]!.failure], [false, 'cancelled']);
});

test('not an IP address: unavailable, reported at once', () => {
  let r: PingOutcome | undefined;
  pingHost('example.com', new Uint8Array(0), 1000, (x) => (r = x));
  assert.deepEqual(r && !r.ok && r.failure, 'unavailable');
});
