/** Keys as `wg genkey`, `wg pubkey` and `wg genpsk` make them. */
import type { Rng } from '../util/rng.js';
import type { CryptoProvider } from './provider.js';

/** 32 random bytes clamped as RFC 7748 §5 decodes scalars (wg genkey clamps too). */
export function generatePrivateKey(rng: Rng): Uint8Array {
  const k = new Uint8Array(32);
  rng.fill(k);
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

export function publicKeyFromPrivate(crypto: CryptoProvider, priv: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  crypto.x25519Base(out, priv);
  return out;
}

export function generatePresharedKey(rng: Rng): Uint8Array {
  const k = new Uint8Array(32);
  rng.fill(k);
  return k;
}
