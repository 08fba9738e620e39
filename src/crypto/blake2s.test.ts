/**
 * BLAKE2s against RFC 7693's vector, OpenSSL's blake2s256 (unkeyed, lengths 0-300 in
 * one piece and split; HMAC), and the BLAKE2 reference package's keyed known answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { Blake2s } from './blake2s.js';
import { hmac } from './hash.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('RFC 7693 Appendix B: BLAKE2s-256("abc")', () => {
  const d = new Blake2s().init(32).update(new TextEncoder().encode('abc')).digest();
  assert.equal(hex(d), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
});

test('unkeyed BLAKE2s-256 equals OpenSSL for lengths 0-300, in one piece and split', () => {
  const s = new Blake2s();
  for (let n = 0; n <= 300; n++) {
    const msg = randomBytes(n);
    const want = createHash('blake2s256').update(msg).digest('hex');
    assert.equal(hex(s.init(32).update(msg).digest()), want, `length ${n}`);
    const cut = n === 0 ? 0 : (n * 7) % n;
    assert.equal(hex(s.init(32).update(msg.subarray(0, cut)).update(msg.subarray(cut)).digest()), want, `length ${n} split at ${cut}`);
  }
});

test('keyed BLAKE2s: the reference known answer, and every key byte matters', () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i);
  const msg = Uint8Array.from({ length: 64 }, (_, i) => i);
  // blake2s-kat.txt from the BLAKE2 reference package, entry in=00..3f, key=00..1f.
  const d = new Blake2s().init(32, key).update(msg).digest();
  assert.equal(hex(d), '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4');
  const base = hex(d);
  for (let i = 0; i < 32; i++) {
    const k2 = key.slice();
    k2[i]! ^= 1;
    assert.notEqual(hex(new Blake2s().init(32, k2).update(msg).digest()), base);
  }
});

test('output lengths: a 16-byte hash is not a prefix of the 32-byte one (outlen is in the parameter block)', () => {
  const m = randomBytes(40);
  const a = new Blake2s().init(16).update(m).digest();
  const b = new Blake2s().init(32).update(m).digest();
  assert.equal(a.length, 16);
  assert.notEqual(hex(a), hex(b).slice(0, 32));
  assert.throws(() => new Blake2s().init(33), RangeError);
  assert.throws(() => new Blake2s().init(32, new Uint8Array(33)), RangeError);
});

test('HMAC-BLAKE2s equals OpenSSL HMAC with blake2s256, for short and over-long keys', () => {
  for (const keyLen of [0, 1, 32, 64, 65, 100]) {
    const key = randomBytes(keyLen);
    const msg = randomBytes(77);
    const want = createHmac('blake2s256', key).update(msg).digest('hex');
    assert.equal(hex(hmac(key, msg.subarray(0, 10), msg.subarray(10))), want, `key length ${keyLen}`);
  }
});

