/**
 * The §6 timer hooks, one by one, against the whitepaper's numbers (restated here, not
 * imported), and the rule that keeps §6 auditable in one file: no other file of this
 * directory arms, cancels or writes a peer's deadline.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Device } from './device.js';
import type { Peer } from './peer.js';
import {
  timersAnyAuthenticatedPacketReceived,
  timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal,
  timersDataReceived,
  timersDataSent,
  timersHandshakeComplete,
  timersHandshakeInitiated,
  timersSessionDerived,
  timersSessionsCleared,
  timersStop,
} from './peer-timers.js';
import { getCryptoProvider } from '../crypto/index.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../crypto/keys.js';
import { SeededRng } from '../util/rng.js';

// Whitepaper §6.1, in milliseconds.
const REKEY_TIMEOUT = 5_000;
const KEEPALIVE_TIMEOUT = 10_000;
const REJECT_AFTER_TIME = 180_000;
const JITTER_MAX = 333; // §6.4: 0-333 ms added to each retry

function setup(keepalive = 0): { d: Device; peer: Peer; wall: { ms: number } } {
  const rng = new SeededRng(12);
  const crypto = getCryptoProvider('native');
  const wall = { ms: 1_700_000_000_000 };
  const d = new Device({ privateKey: generatePrivateKey(rng), crypto, rng, wallClock: () => wall.ms });
  const peer = d.addPeer({ publicKey: publicKeyFromPrivate(crypto, generatePrivateKey(rng)), persistentKeepalive: keepalive });
  return { d, peer, wall };
}

describe('§6 timer hooks', () => {
  test('data sent and no reply: a new handshake KeepaliveTimeout + RekeyTimeout after the first unanswered packet (§6.5)', () => {
    const { d, peer } = setup();
    timersDataSent(d, 1_000, peer);
    assert.equal(peer.timers.newHandshake, 1_000 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT);
    timersDataSent(d, 4_000, peer); // more data does not push the deadline back
    assert.equal(peer.timers.newHandshake, 1_000 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT);
    timersAnyAuthenticatedPacketReceived(d, peer); // the reply came
    assert.equal(peer.timers.newHandshake, Infinity);
    assert.equal(d.pollTimeout(), undefined);
  });

  test('data received: a keepalive is owed KeepaliveTimeout later unless something is sent first (§6.5)', () => {
    const { d, peer } = setup();
    timersDataReceived(d, 2_000, peer);
    timersDataReceived(d, 3_000, peer);
    assert.equal(peer.timers.sendKeepalive, 2_000 + KEEPALIVE_TIMEOUT);
    assert.equal(d.pollTimeout()?.at, 2_000 + KEEPALIVE_TIMEOUT);
    timersAnyAuthenticatedPacketSent(d, peer);
    assert.equal(peer.timers.sendKeepalive, Infinity);
  });

  test('an initiation is retried after RekeyTimeout plus 0-333 ms of jitter (§6.4)', () => {
    const { d, peer } = setup();
    const seen = new Set<number>();
    for (let i = 0; i < 2_000; i++) {
      timersHandshakeInitiated(d, 0, peer);
      const extra = peer.timers.retransmitHandshake - REKEY_TIMEOUT;
      assert.ok(Number.isInteger(extra) && extra >= 0 && extra <= JITTER_MAX, `jitter ${extra}`);
      seen.add(extra);
    }
    assert.ok(seen.size > 250, `${seen.size} distinct jitters`);
    peer.attempts = 7;
    timersHandshakeComplete(d, peer);
    assert.equal(peer.timers.retransmitHandshake, Infinity);
    assert.equal(peer.attempts, 0);
  });

  test('a completed handshake is stamped with the wall clock (wg show: latest handshake)', () => {
    const { d, peer, wall } = setup();
    wall.ms += 42_000;
    timersHandshakeComplete(d, peer);
    assert.equal(peer.lastHandshakeWallMs, wall.ms);
  });

  test('keys are zeroed 3 × RejectAfterTime after the last session was derived (§6.3)', () => {
    const { d, peer } = setup();
    timersSessionDerived(d, 10, peer);
    timersSessionDerived(d, 500, peer); // a newer session moves it
    assert.equal(peer.timers.zeroKeyMaterial, 500 + 3 * REJECT_AFTER_TIME);
  });

  test('the persistent keepalive restarts on every authenticated packet, only when configured', () => {
    const off = setup(0);
    timersAnyAuthenticatedPacketTraversal(off.d, 100, off.peer);
    assert.equal(off.peer.timers.persistentKeepalive, Infinity);
    const on = setup(25);
    timersAnyAuthenticatedPacketTraversal(on.d, 100, on.peer);
    timersAnyAuthenticatedPacketTraversal(on.d, 900, on.peer);
    assert.equal(on.peer.timers.persistentKeepalive, 900 + 25_000);
    assert.equal(on.d.pollTimeout()?.at, 900 + 25_000);
  });

  test('clearing the sessions stops every timer but the persistent keepalive; removing the peer stops all', () => {
    const { d, peer } = setup(25);
    timersDataSent(d, 0, peer);
    timersDataReceived(d, 0, peer);
    timersHandshakeInitiated(d, 0, peer);
    timersSessionDerived(d, 0, peer);
    timersAnyAuthenticatedPacketTraversal(d, 0, peer);
    timersSessionsCleared(d, peer);
    assert.deepEqual(peer.timers, { retransmitHandshake: Infinity, sendKeepalive: Infinity, newHandshake: Infinity, zeroKeyMaterial: Infinity, persistentKeepalive: 25_000 });
    timersStop(d, peer);
    assert.equal(peer.timers.persistentKeepalive, Infinity);
  });
});

test('only peer-timers.ts (and the heap, timers.ts) changes a peer timer, so §6 reads in one file', () => {
  const dir = new URL('.', import.meta.url);
  const writes = [
    /\btimers\.(arm|cancel|cancelAll|collectDue)\(/, // the heap's writers
    /\.(timers|queued)\.\w+\s*=[^=]/, // a deadline written by name
    /\.(timers|queued)\[[^\]]+\]\s*=[^=]/, // or by key
  ];
  const offenders: string[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.ts') || f.endsWith('.test.ts') || f === 'peer-timers.ts' || f === 'timers.ts') continue;
    readFileSync(new URL(f, dir), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (writes.some((re) => re.test(line))) offenders.push(`${f}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(offenders, []);
});
