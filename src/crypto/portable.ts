/**
 * The portable backend: node:crypto (OpenSSL) for ChaCha20-Poly1305 and X25519,
 * @noble/ciphers for XChaCha20-Poly1305 (OpenSSL has no XChaCha). Used when
 * sodium-native cannot load. X25519 goes through OpenSSL KeyObjects: measured
 * ~1.1k/s against ~0.5k/s for @noble/curves here. X25519 runs only per handshake;
 * building the KeyObjects per call is what keeps it far below libsodium's ~18k/s.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import type { CryptoProvider } from './provider.js';

// DER prefixes of an X25519 PKCS#8 private key and SPKI public key (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export function createPortableProvider(): CryptoProvider {
  const nonce = Buffer.alloc(12);
  const setCounter = (counter: number): void => {
    nonce.writeUInt32LE(counter >>> 0, 4);
    nonce.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
  };
  const x25519 = (out: Uint8Array, scalar: Uint8Array, point: Uint8Array): boolean => {
    try {
      const priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, scalar]), format: 'der', type: 'pkcs8' });
      const pub = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, point]), format: 'der', type: 'spki' });
      out.set(diffieHellman({ privateKey: priv, publicKey: pub }));
    } catch {
      // OpenSSL refuses an all-zero shared secret (a low-order point).
      out.fill(0);
      return false;
    }
    let d = 0;
    for (let i = 0; i < 32; i++) d |= out[i]!;
    return d !== 0;
  };
  return {
    name: 'portable',
    x25519,
    x25519Base(out, scalar) {
      const priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, scalar]), format: 'der', type: 'pkcs8' });
      const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
      out.set(spki.subarray(spki.length - 32));
    },
    aeadSeal(out, key, counter, plaintext, ad) {
      setCounter(counter);
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      if (ad) c.setAAD(ad, { plaintextLength: plaintext.length });
      // update() may write into out in place: OpenSSL's ChaCha20 streams byte for byte.
      const body = c.update(plaintext);
      c.final();
      out.set(body, 0);
      out.set(c.getAuthTag(), plaintext.length);
    },
    aeadOpen(out, key, counter, ciphertext, ad) {
      if (ciphertext.length < 16) return false;
      setCounter(counter);
      const n = ciphertext.length - 16;
      const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      d.setAuthTag(ciphertext.subarray(n));
      if (ad) d.setAAD(ad, { plaintextLength: n });
      const body = d.update(ciphertext.subarray(0, n));
      try {
        d.final();
      } catch {
        return false;
      }
      out.set(body, 0);
      return true;
    },
    xaeadSeal(out, key, n, plaintext, ad) {
      const sealed = xchacha20poly1305(key, n, ad ?? undefined).encrypt(plaintext);
      out.set(sealed, 0);
    },
    xaeadOpen(out, key, n, ciphertext, ad) {
      try {
        const pt = xchacha20poly1305(key, n, ad ?? undefined).decrypt(ciphertext);
        out.set(pt, 0);
        return true;
      } catch {
        return false;
      }
    },
  };
}
