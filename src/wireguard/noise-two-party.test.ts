/**
 * Noise IKpsk2 as WireGuard runs it (whitepaper §5.4.2–§5.4.4), both parties in
 * one test: after every message both hold the same chaining key and hash, the
 * transport keys match crosswise, and every corruption fails cleanly
 * (undefined, never a throw: this is the network path).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createInitiation, consumeInitiation, createResponse, consumeResponse, type Keys } from './noise.js';
import { getCryptoProvider } from '../crypto/index.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../crypto/keys.js';
import { SeededRng } from '../util/rng.js';

const crypto = getCryptoProvider('auto');

function keys(rng: SeededRng): Keys {
  const privateKey = generatePrivateKey(rng);
  return { privateKey, publicKey: publicKeyFromPrivate(crypto, privateKey) };
}

function dh(a: Keys, b: Keys): Uint8Array {
  const out = new Uint8Array(32);
  assert.ok(crypto.x25519(out, a.privateKey, b.publicKey));
  return out;
}

function handshake(opts: { psk?: Uint8Array; respPsk?: Uint8Array; seed?: number; tamperInit?: number; tamperResp?: number; responder?: Keys } = {}) {
  const rng = new SeededRng(opts.seed ?? 42);
  const ini = keys(rng);
  const resp = keys(rng);
  const responder = opts.responder ?? resp;
  const timestamp = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
  const m1 = new Uint8Array(148);
  const st = createInitiation(crypto, ini, resp.publicKey, dh(ini, resp), generatePrivateKey(rng), timestamp, m1);
  assert.ok(st);
  if (opts.tamperInit !== undefined) m1[opts.tamperInit]! ^= 1;
  const got = consumeInitiation(crypto, responder, m1, (p) => (Buffer.compare(Buffer.from(p), Buffer.from(ini.publicKey)) === 0 ? dh(responder, ini) : undefined));
  if (!got) return { ini, resp, st, got };
  const m2 = new Uint8Array(92);
  const r = createResponse(crypto, got, opts.respPsk ?? opts.psk, generatePrivateKey(rng), new Uint8Array(0), m2);
  assert.ok(r);
  if (opts.tamperResp !== undefined) m2[opts.tamperResp]! ^= 1;
  const fin = consumeResponse(crypto, ini, st, opts.psk, m2);
  return { ini, resp, st, got, r, fin, timestamp };
}

for (const psk of [undefined, Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i)]) {
  test(`both parties hold the same state after each message, keys match crosswise (${psk ? 'with' : 'without'} PSK)`, () => {
    const { ini, st, got, r, fin, timestamp } = handshake({ psk });
    assert.ok(got && r && fin);
    // After the initiation: the responder learned the initiator's static key and payload...
    assert.deepEqual(got.peerPublic, ini.publicKey);
    assert.deepEqual(got.payload, timestamp);
    // ...and both sides hold the same chaining key and hash.
    assert.deepEqual(got.c, st.c);
    assert.deepEqual(got.h, st.h);
    // After the response: same again, and the transport keys are each other's mirror.
    assert.deepEqual(fin.c, r.c);
    assert.deepEqual(fin.h, r.h);
    assert.deepEqual(fin.keys.send, r.keys.recv);
    assert.deepEqual(fin.keys.recv, r.keys.send);
    assert.notDeepEqual(fin.keys.send, fin.keys.recv);
  });
}

test('different PSKs, an unknown initiator or the wrong responder fail cleanly', () => {
  const a = Uint8Array.from({ length: 32 }, () => 1);
  const b = Uint8Array.from({ length: 32 }, () => 2);
  assert.equal(handshake({ psk: a, respPsk: b }).fin, undefined, 'PSK mismatch');
  assert.equal(handshake({ psk: a, respPsk: new Uint8Array(32) }).fin, undefined, 'PSK on one side only (none is all zeros, §5.4.3)');
  const stranger = keys(new SeededRng(99));
  assert.equal(handshake({ responder: stranger }).got, undefined, 'initiation to another responder key');
});

test('a flipped bit in any field of either message is refused, never thrown', () => {
  // Initiation: unencrypted ephemeral [8,40), encrypted static [40,88), encrypted timestamp [88,116).
  for (const i of [8, 39, 40, 87, 88, 115]) assert.equal(handshake({ tamperInit: i }).got, undefined, `initiation byte ${i}`);
  // Response: ephemeral [12,44), encrypted empty [44,60).
  for (const i of [12, 43, 44, 59]) assert.equal(handshake({ tamperResp: i }).fin, undefined, `response byte ${i}`);
});

test('a low-order ephemeral (all-zero DH) is refused, never thrown', () => {
  const rng = new SeededRng(7);
  const resp = keys(rng);
  const m1 = new Uint8Array(148); // ephemeral = 0: the identity point, DH is all zeros
  assert.equal(consumeInitiation(crypto, resp, m1, () => new Uint8Array(32)), undefined);
});
