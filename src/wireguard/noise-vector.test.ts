/**
 * WireGuard's handshake code against the public Noise test vector for
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (cacophony, test/vectors/noise-ikpsk2.json).
 * WireGuard fixes the prologue (its identifier) and the payloads (a TAI64N
 * timestamp, then nothing); the vector uses others, which noise.ts takes as
 * parameters. The Noise part of each WireGuard message is compared byte for
 * byte: initiation [8, ...) = e, s, payload; response [12, ...) = e, payload.
 * The transport messages check the split: ChaChaPoly's nonce is WireGuard's
 * 64-bit little-endian counter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createInitiation, consumeInitiation, createResponse, consumeResponse, type Keys } from './noise.js';
import { getCryptoProvider } from '../crypto/index.js';
import { publicKeyFromPrivate } from '../crypto/keys.js';

const { vector: v } = JSON.parse(readFileSync(new URL('../../test/vectors/noise-ikpsk2.json', import.meta.url), 'utf8')) as {
  vector: {
    init_prologue: string;
    init_psks: string[];
    init_static: string;
    init_ephemeral: string;
    init_remote_static: string;
    resp_static: string;
    resp_ephemeral: string;
    handshake_hash: string;
    messages: { payload: string; ciphertext: string }[];
  };
};
const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
const str = (b: Uint8Array): string => Buffer.from(b).toString('hex');

for (const backend of ['native', 'portable'] as const) {
  test(`the Noise IKpsk2 vector, byte for byte (${backend} crypto)`, () => {
    const crypto = getCryptoProvider(backend);
    const keysOf = (priv: string): Keys => ({ privateKey: hex(priv), publicKey: publicKeyFromPrivate(crypto, hex(priv)) });
    const ini = keysOf(v.init_static);
    const resp = keysOf(v.resp_static);
    assert.equal(str(resp.publicKey), v.init_remote_static);
    const prologue = hex(v.init_prologue);
    const psk = hex(v.init_psks[0]!);
    const ss = new Uint8Array(32);
    assert.ok(crypto.x25519(ss, ini.privateKey, resp.publicKey));

    // Message 1: -> e, es, s, ss, {payload}
    const p1 = hex(v.messages[0]!.payload);
    const m1 = new Uint8Array(8 + 32 + 48 + p1.length + 16);
    const st = createInitiation(crypto, ini, resp.publicKey, ss, hex(v.init_ephemeral), p1, m1, prologue);
    assert.ok(st);
    assert.equal(str(m1.subarray(8)), v.messages[0]!.ciphertext);
    const got = consumeInitiation(crypto, resp, m1, () => ss, p1.length, prologue);
    assert.ok(got);
    assert.deepEqual(got.payload, p1);

    // Message 2: <- e, ee, se, psk, {payload}
    const p2 = hex(v.messages[1]!.payload);
    const m2 = new Uint8Array(12 + 32 + p2.length + 16);
    const r = createResponse(crypto, got, psk, hex(v.resp_ephemeral), p2, m2);
    assert.ok(r);
    assert.equal(str(m2.subarray(12)), v.messages[1]!.ciphertext);
    const fin = consumeResponse(crypto, ini, st, psk, m2, p2.length);
    assert.ok(fin);
    assert.deepEqual(fin.payload, p2);
    assert.equal(str(fin.h), v.handshake_hash);
    assert.equal(str(r.h), v.handshake_hash);

    // Transport: even messages initiator -> responder, odd ones back; one counter per direction.
    const counters = [0, 0];
    for (let i = 2; i < v.messages.length; i++) {
      const fromInitiator = i % 2 === 0;
      const key = fromInitiator ? fin.keys.send : r.keys.send;
      const pt = hex(v.messages[i]!.payload);
      const out = new Uint8Array(pt.length + 16);
      crypto.aeadSeal(out, key, counters[i % 2]!++, pt, new Uint8Array(0));
      assert.equal(str(out), v.messages[i]!.ciphertext, `transport message ${i}`);
      const back = new Uint8Array(pt.length);
      assert.ok(crypto.aeadOpen(back, fromInitiator ? r.keys.recv : fin.keys.recv, counters[i % 2]! - 1, out, new Uint8Array(0)));
    }
  });
}
