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

/**
 * The addon's own functions under sodium-native's JS wrappers, for the two calls of the data path.
 * Each wrapper checks every argument with ArrayBuffer.isView and assert(), and reports a failed
 * tag as an exception; for a 96-byte ping that is about 100 ns of a 600-700 ns call, paid four
 * times per round trip, and a thrown Error per forged packet. The raw functions take `undefined`
 * for no additional data and return a negative status instead of throwing.
 */
interface SodiumBinding {
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | undefined, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Uint8Array, c: Uint8Array, ad: Uint8Array | undefined, npub: Uint8Array, k: Uint8Array): number;
}

/**
 * The raw binding if it has the shape this file expects, else undefined (the wrappers are used).
 * Its C code only assert()s sizes, so the callers below check them before every call: a wrong size
 * is a bug to throw on, never a reason to abort the process. The shape is proven by sealing and
 * opening one known message both ways, so a sodium-native release that changes the binding's
 * argument order falls back to the wrappers instead of producing wrong ciphertext.
 */
function loadBinding(req: NodeRequire, s: Sodium): SodiumBinding | undefined {
  let b: Partial<SodiumBinding>;
  try {
    b = req('sodium-native/binding.js') as Partial<SodiumBinding>;
  } catch {
    return undefined;
  }
  if (typeof b.crypto_aead_chacha20poly1305_ietf_encrypt !== 'function' || typeof b.crypto_aead_chacha20poly1305_ietf_decrypt !== 'function') return undefined;
  const raw = b as SodiumBinding;
  try {
    const key = new Uint8Array(32).fill(7);
    const npub = new Uint8Array(12).fill(1);
    const m = new Uint8Array(20).fill(3);
    const viaWrapper = new Uint8Array(36);
    const viaBinding = new Uint8Array(36);
    s.crypto_aead_chacha20poly1305_ietf_encrypt(viaWrapper, m, null, null, npub, key);
    if (raw.crypto_aead_chacha20poly1305_ietf_encrypt(viaBinding, m, undefined, npub, key) !== 36) return undefined;
    for (let i = 0; i < 36; i++) if (viaWrapper[i] !== viaBinding[i]) return undefined;
    const back = new Uint8Array(20);
    if (raw.crypto_aead_chacha20poly1305_ietf_decrypt(back, viaBinding, undefined, npub, key) !== 20 || back[19] !== 3) return undefined;
    viaBinding[0]! ^= 1;
    if (raw.crypto_aead_chacha20poly1305_ietf_decrypt(back, viaBinding, undefined, npub, key) >= 0) return undefined;
  } catch {
    return undefined;
  }
  return raw;
}

export function createNativeProvider(): CryptoProvider | undefined {
  let s: Sodium;
  const req = createRequire(import.meta.url);
  try {
    s = req('sodium-native') as Sodium;
  } catch {
    return undefined;
  }
  const raw = loadBinding(req, s);
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
      const c = out.length === plaintext.length + 16 ? out : out.subarray(0, plaintext.length + 16);
      if (raw === undefined) {
        s.crypto_aead_chacha20poly1305_ietf_encrypt(c, plaintext, ad, null, nonce, key);
        return;
      }
      if (c.length !== plaintext.length + 16 || key.length !== 32) throw new RangeError('aeadSeal: out must hold plaintext.length + 16 bytes, key 32');
      if (raw.crypto_aead_chacha20poly1305_ietf_encrypt(c, plaintext, ad ?? undefined, nonce, key) < 0) throw new Error('aeadSeal: could not encrypt');
    },
    aeadOpen(out, key, counter, ciphertext, ad) {
      if (ciphertext.length < 16) return false;
      setCounter(counter);
      const m = out.length === ciphertext.length - 16 ? out : out.subarray(0, ciphertext.length - 16);
      if (raw === undefined) {
        try {
          s.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, ciphertext, ad, nonce, key);
          return true;
        } catch {
          return false;
        }
      }
      if (m.length !== ciphertext.length - 16 || key.length !== 32) throw new RangeError('aeadOpen: out must hold ciphertext.length - 16 bytes, key 32');
      return raw.crypto_aead_chacha20poly1305_ietf_decrypt(m, ciphertext, ad ?? undefined, nonce, key) >= 0;
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
