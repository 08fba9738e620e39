/** Keys as `wg genkey`, `wg pubkey` and `wg genpsk` make them. */
import type { Rng } from '../util/rng.js';
import { fromHex } from '../util/bytes.js';
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

/**
 * The Curve25519 u-coordinates X25519 maps to zero under any clamped scalar: the points of
 * order 1, 2, 4 and 8 and the non-canonical encodings p-1, p, p+1 (libsodium's list, the
 * low-order vectors in test/vectors/x25519.json). Bit 255 is ignored, as X25519 ignores it.
 */
const LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => fromHex(h)!);

/** Whether a public key is a low-order point (no shared secret is possible), without a Diffie-Hellman. */
export function isLowOrderPoint(pk: Uint8Array): boolean {
  if (pk.length !== 32) return false;
  for (const lo of LOW_ORDER) {
    let d = (pk[31]! & 0x7f) ^ lo[31]!;
    for (let i = 0; i < 31; i++) d |= pk[i]! ^ lo[i]!;
    if (d === 0) return true;
  }
  return false;
}
