/**
 * The native backend: libsodium through sodium-native. Loaded lazily so that
 * a machine where the addon cannot load still gets the portable backend.
 */
import { createRequire } from 'node:module';
import type { CryptoProvider } from './provider.js';

interface Sodium {
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
}

export function createNativeProvider(): CryptoProvider | undefined {
  let s: Sodium;
  try {
    s = createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return undefined;
  }
  // One nonce buffer, rewritten per call: 4 zero bytes then the LE64 counter (whitepaper §5.4.6).
  const nonce = new Uint8Array(12);
  const nonceView = new DataView(nonce.buffer);
  const setCounter = (counter: number): void => {
    nonceView.setUint32(4, counter >>> 0, true);
    nonceView.setUint32(8, Math.floor(counter / 0x100000000), true);
  };
  return {
    name: 'native',
    x25519(out, scalar, point) {
      try {
        s.crypto_scalarmult(out, scalar, point);
      } catch {
        // libsodium refuses an all-zero result (a low-order point).
        out.fill(0);
        return false;
      }
      let d = 0;
      for (let i = 0; i < 32; i++) d |= out[i]!;
      return d !== 0;
    },
    x25519Base(out, scalar) {
      s.crypto_scalarmult_base(out, scalar);
    },
    aeadSeal(out, key, counter, plaintext, ad) {
      setCounter(counter);
      s.crypto_aead_chacha20poly1305_ietf_encrypt(out.subarray(0, plaintext.length + 16), plaintext, ad, null, nonce, key);
    },
    aeadOpen(out, key, counter, ciphertext, ad) {
      if (ciphertext.length < 16) return false;
      setCounter(counter);
      try {
        s.crypto_aead_chacha20poly1305_ietf_decrypt(out.subarray(0, ciphertext.length - 16), null, ciphertext, ad, nonce, key);
        return true;
      } catch {
        return false;
      }
    },
    xaeadSeal(out, key, n, plaintext, ad) {
      s.crypto_aead_xchacha20poly1305_ietf_encrypt(out.subarray(0, plaintext.length + 16), plaintext, ad, null, n, key);
    },
    xaeadOpen(out, key, n, ciphertext, ad) {
      if (ciphertext.length < 16) return false;
      try {
        s.crypto_aead_xchacha20poly1305_ietf_decrypt(out.subarray(0, ciphertext.length - 16), null, ciphertext, ad, n, key);
        return true;
      } catch {
        return false;
      }
    },
  };
}
