/**
 * Known-answer tests for both crypto backends (RFC 7748, RFC 8439 via the
 * WireGuard nonce layout, draft-irtf-cfrg-xchacha), hashing vectors, and the
 * backends checked against each other on random input.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createCipheriv } from 'node:crypto';
import { createNativeProvider } from './native.js';
import { createPortableProvider } from './portable.js';
import { getCryptoProvider } from './index.js';
import { hash, mac, hmac, kdf1, kdf2, kdf3, tai64n, compareTai64n } from './hash.js';
import { generatePrivateKey, publicKeyFromPrivate } from './keys.js';
import type { CryptoProvider } from './provider.js';
import { SeededRng } from '../util/rng.js';
import { fromHex, toHex } from '../util/bytes.js';

const vec = (name: string): any => JSON.parse(readFileSync(new URL(`../../test/vectors/${name}`, import.meta.url), 'utf8'));
const x = (s: string): Uint8Array => fromHex(s)!;
/** A copy of `b` at an odd offset inside a larger buffer, so every codec sees byteOffset != 0. */
const unaligned = (b: Uint8Array, extra = 0): Uint8Array => {
  const ab = new ArrayBuffer(b.length + 3 + extra);
  const v = new Uint8Array(ab, 3, b.length);
  v.set(b);
  return v;
};

const providers: CryptoProvider[] = [createPortableProvider()];
const native = createNativeProvider();
assert.ok(native, 'sodium-native loads on this machine');
providers.unshift(native);

for (const p of providers) {
  describe(`crypto backend: ${p.name}`, () => {
    const xv = vec('x25519.json');

    test('RFC 7748 §5.2 test vectors', () => {
      for (const v of xv.vectors) {
        const out = new Uint8Array(32);
        assert.equal(p.x25519(out, x(v.scalar), x(v.u)), true);
        assert.equal(toHex(out), v.out);
      }
    });

    test('RFC 7748 §5.2 iterated: 1 and 1,000 iterations', () => {
      let k = x('0900000000000000000000000000000000000000000000000000000000000000');
      let u = k;
      for (let i = 1; i <= 1000; i++) {
        const out = new Uint8Array(32);
        p.x25519(out, k, u);
        u = k;
        k = out;
        if (i === 1) assert.equal(toHex(k), xv.iterated['1']);
      }
      assert.equal(toHex(k), xv.iterated['1000']);
    });

    test('RFC 7748 §6.1 Diffie-Hellman', () => {
      const d = xv.dh;
      const pa = new Uint8Array(32);
      p.x25519Base(pa, x(d.alicePrivate));
      assert.equal(toHex(pa), d.alicePublic);
      const s1 = new Uint8Array(32);
      const s2 = new Uint8Array(32);
      assert.ok(p.x25519(s1, x(d.alicePrivate), x(d.bobPublic)));
      assert.ok(p.x25519(s2, unaligned(x(d.bobPrivate)), unaligned(x(d.alicePublic))));
      assert.equal(toHex(s1), d.shared);
      assert.equal(toHex(s2), d.shared);
    });

    test('low-order points give false and an all-zero output', () => {
      const priv = generatePrivateKey(new SeededRng(1));
      for (const pt of xv.lowOrder.points as string[]) {
        const out = new Uint8Array(32).fill(0xaa);
        assert.equal(p.x25519(out, priv, x(pt)), false, pt);
        assert.ok(out.every((b) => b === 0));
      }
    });

    test('ChaCha20-Poly1305 matches RFC 8439 AEAD (OpenSSL with the WireGuard nonce) and rejects tampering', () => {
      const key = x('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
      const ad = x('50515253c0c1c2c3c4c5c6c7');
      const pt = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
      const counter = 0x0123456789ab; // > 2^32: both halves of the 64-bit counter matter
      const nonce = new Uint8Array(12);
      new DataView(nonce.buffer).setBigUint64(4, BigInt(counter), true);
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      c.setAAD(ad, { plaintextLength: pt.length });
      const want = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
      const out = unaligned(new Uint8Array(pt.length + 16));
      p.aeadSeal(out, unaligned(key), counter, unaligned(pt), unaligned(ad));
      assert.equal(toHex(out), want.toString('hex'));
      const back = new Uint8Array(pt.length);
      assert.ok(p.aeadOpen(back, key, counter, out, ad));
      assert.deepEqual(back, pt);
      for (const flip of [0, pt.length - 1, pt.length, pt.length + 15]) {
        const bad = out.slice();
        bad[flip]! ^= 1;
        assert.equal(p.aeadOpen(new Uint8Array(pt.length), key, counter, bad, ad), false);
      }
      assert.equal(p.aeadOpen(new Uint8Array(pt.length), key, counter + 1, out, ad), false);
      assert.equal(p.aeadOpen(new Uint8Array(pt.length), key, counter, out, x('00')), false);
      assert.equal(p.aeadOpen(new Uint8Array(0), key, counter, out.subarray(0, 15), null), false);
    });

    test('seal and open in place, with headroom (the data path layout)', () => {
      const key = x('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
      const ab = new ArrayBuffer(16 + 100 + 16);
      const pt = new Uint8Array(ab, 16, 100);
      for (let i = 0; i < 100; i++) pt[i] = i;
      const orig = pt.slice();
      const sealed = new Uint8Array(ab, 16, 116);
      p.aeadSeal(sealed, key, 7, pt, null);
      const ref = new Uint8Array(116);
      p.aeadSeal(ref, key, 7, orig, null);
      assert.deepEqual(sealed, ref);
      const opened = new Uint8Array(ab, 16, 100);
      assert.ok(p.aeadOpen(opened, key, 7, sealed, null));
      assert.deepEqual(opened, orig);
    });

    test('XChaCha20-Poly1305: draft-irtf-cfrg-xchacha-03 §A.3.1 tag, round trip, tampering', () => {
      const key = x('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
      const nonce = x('404142434445464748494a4b4c4d4e4f5051525354555657');
      const ad = x('50515253c0c1c2c3c4c5c6c7');
      const pt = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
      const out = new Uint8Array(pt.length + 16);
      p.xaeadSeal(out, key, nonce, pt, ad);
      assert.equal(toHex(out.subarray(pt.length)), 'c0875924c1c7987947deafd8780acf49');
      assert.equal(toHex(out.subarray(0, 16)), 'bd6d179d3e83d43b9576579493c0e939');
      const back = new Uint8Array(pt.length);
      assert.ok(p.xaeadOpen(back, unaligned(key), unaligned(nonce), unaligned(out), unaligned(ad)));
      assert.deepEqual(back, pt);
      out[3]! ^= 0x80;
      assert.equal(p.xaeadOpen(back, key, nonce, out, ad), false);
    });
  });
}

test('native and portable agree on random input', () => {
  if (providers.length < 2) return;
  const [a, b] = providers as [CryptoProvider, CryptoProvider];
  const rng = new SeededRng(42);
  for (let i = 0; i < 50; i++) {
    const k = new Uint8Array(32);
    rng.fill(k);
    const len = i * 29;
    const pt = new Uint8Array(len);
    rng.fill(pt);
    const o1 = new Uint8Array(len + 16);
    const o2 = new Uint8Array(len + 16);
    a.aeadSeal(o1, k, i * 1000003, pt, i % 2 ? pt.subarray(0, 5) : null);
    b.aeadSeal(o2, k, i * 1000003, pt, i % 2 ? pt.subarray(0, 5) : null);
    assert.deepEqual(o1, o2);
    const s1 = generatePrivateKey(rng);
    const s2 = generatePrivateKey(rng);
    const pub = publicKeyFromPrivate(a, s2);
    assert.deepEqual(publicKeyFromPrivate(b, s2), pub);
    const d1 = new Uint8Array(32);
    const d2 = new Uint8Array(32);
    a.x25519(d1, s1, pub);
    b.x25519(d2, s1, pub);
    assert.deepEqual(d1, d2);
    const n = new Uint8Array(24);
    rng.fill(n);
    a.xaeadSeal(o1, k, n, pt, null);
    b.xaeadSeal(o2, k, n, pt, null);
    assert.deepEqual(o1, o2);
  }
});

test('auto picks native; portable on request', () => {
  assert.equal(getCryptoProvider('auto').name, 'native');
  assert.equal(getCryptoProvider('portable').name, 'portable');
});

describe('hashing (whitepaper §5.4)', () => {
  const hv = vec('hash.json');
  test('BLAKE2s-256 (RFC 7693 "abc") and the Noise construction hash', () => {
    assert.equal(toHex(hash(new TextEncoder().encode('abc'))), hv.blake2s_abc);
    assert.equal(toHex(hash(new TextEncoder().encode('a'), new TextEncoder().encode('bc'))), hv.blake2s_abc);
    assert.equal(toHex(hash()), hv.blake2s_empty);
    assert.equal(toHex(hash(new TextEncoder().encode('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'))), hv.construction_hash);
  });
  test('keyed BLAKE2s-128 (MAC)', () => {
    for (const v of hv.mac16) assert.equal(toHex(mac(unaligned(x(v.key)), unaligned(x(v.data)))), v.out);
  });
  test('HMAC-BLAKE2s, including a key longer than the block', () => {
    for (const v of hv.hmac) assert.equal(toHex(hmac(x(v.key), x(v.data))), v.out);
  });
  test('KDF1/2/3 are prefixes of one another and match the reference', () => {
    const k = x(hv.kdf3.key);
    const i = x(hv.kdf3.input);
    assert.deepEqual(kdf3(k, i).map(toHex), hv.kdf3.out);
    assert.deepEqual(kdf2(k, i).map(toHex), hv.kdf3.out.slice(0, 2));
    assert.equal(toHex(kdf1(k, i)), hv.kdf3.out[0]);
  });
  test('TAI64N: 2^62 + 10 + seconds, whitened nanoseconds, ordered', () => {
    const t = tai64n(1_700_000_000_123);
    assert.equal(toHex(t.subarray(0, 8)), (0x4000000000000000n + 10n + 1_700_000_000n).toString(16).padStart(16, '0'));
    const nanos = new DataView(t.buffer, t.byteOffset + 8, 4).getUint32(0);
    assert.equal(nanos % 0x1000000, 0);
    assert.ok(nanos <= 123_000_000);
    assert.ok(compareTai64n(tai64n(1_700_000_001_000), t) > 0);
    assert.equal(compareTai64n(tai64n(1_700_000_000_124), t), 0, 'whitened to the same value within 16 ms');
  });
});
