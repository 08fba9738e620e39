/**
 * The primitives WireGuard needs (whitepaper §5.4), behind one interface with two
 * backends: `native` (sodium-native) and `portable` (node:crypto + @noble/*).
 * Hashing (BLAKE2s, HMAC, KDF) is backend-independent and lives in ./hash.ts.
 *
 * Conventions, chosen so the data path allocates nothing:
 * - Callers pass the output buffer. In-place operation is allowed when `out`
 *   and the input start at the same byte of the same ArrayBuffer.
 * - `counter` is the 64-bit WireGuard message counter as a JS number: the
 *   nonce is 32 zero bits followed by the counter, little-endian (§5.4.6).
 *   A session dies at RejectAfterTime long before 2^53 messages.
 */
export interface CryptoProvider {
  readonly name: 'native' | 'portable';

  /**
   * X25519 (RFC 7748) of `scalar` and `point` into `out` (32 bytes).
   * Returns false, with `out` zeroed, when the result is all zero (a low-order
   * point): WireGuard rejects such a shared secret (whitepaper §5.4.2).
   */
  x25519(out: Uint8Array, scalar: Uint8Array, point: Uint8Array): boolean;

  /** The public key of a private key: X25519 with the base point 9. */
  x25519Base(out: Uint8Array, scalar: Uint8Array): void;

  /**
   * ChaCha20-Poly1305 (RFC 8439) sealing `plaintext` into `out`, which must hold
   * plaintext.length + 16 bytes (ciphertext, then tag).
   */
  aeadSeal(out: Uint8Array, key: Uint8Array, counter: number, plaintext: Uint8Array, ad: Uint8Array | null): void;

  /**
   * Opens `ciphertext` (with its 16-byte tag) into `out` (ciphertext.length - 16
   * bytes). Returns false, and leaves `out` unspecified, when the tag is wrong.
   */
  aeadOpen(out: Uint8Array, key: Uint8Array, counter: number, ciphertext: Uint8Array, ad: Uint8Array | null): boolean;

  /** XChaCha20-Poly1305 with a 24-byte nonce (draft-irtf-cfrg-xchacha), for cookie replies. */
  xaeadSeal(out: Uint8Array, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array | null): void;
  xaeadOpen(out: Uint8Array, key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array | null): boolean;
}

export const AEAD_TAG_LEN = 16;
