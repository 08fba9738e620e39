/**
 * WireGuard's hashing (whitepaper §5.4): BLAKE2s-256 HASH, keyed BLAKE2s-128 MAC,
 * HMAC-BLAKE2s and the HKDF-style KDF, plus the TAI64N timestamp. The same for
 * both crypto backends (libsodium has no BLAKE2s).
 */
import { Blake2s } from './blake2s.js';

export const HASH_LEN = 32;
export const MAC_LEN = 16;

// One state and scratch for every call: JavaScript runs these to completion, one at a time.
const state = new Blake2s();
const pad = new Uint8Array(64);
const inner = new Uint8Array(HASH_LEN);

/** HASH(parts...) = BLAKE2s-256 of the concatenation. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  state.init(HASH_LEN);
  for (const p of parts) state.update(p);
  return state.digest();
}

/** MAC(key, parts...) = keyed BLAKE2s with a 16-byte output. */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  state.init(MAC_LEN, key);
  for (const p of parts) state.update(p);
  return state.digest();
}

/** HMAC(key, parts...) with BLAKE2s-256 (RFC 2104, 64-byte block). */
export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  // A key longer than the block is hashed first (RFC 2104 §2); WireGuard's are 32 bytes.
  const k = key.length > pad.length ? hash(key) : key;
  pad.fill(0x36);
  for (let i = 0; i < k.length; i++) pad[i]! ^= k[i]!;
  state.init(HASH_LEN).update(pad);
  for (const p of parts) state.update(p);
  state.digest(inner);
  pad.fill(0x5c);
  for (let i = 0; i < k.length; i++) pad[i]! ^= k[i]!;
  const out = state.init(HASH_LEN).update(pad).update(inner).digest();
  pad.fill(0);
  inner.fill(0);
  return out;
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/**
 * KDF_n(key, input) of the whitepaper §5.4: τ0 = HMAC(key, input),
 * τ1 = HMAC(τ0, 0x1), τi = HMAC(τ0, τi-1 || i). τ0 is zeroed afterwards.
 */
export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  t0.fill(0);
  return t1;
}

export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, t1, TWO);
  t0.fill(0);
  return [t1, t2];
}

export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, t1, TWO);
  const t3 = hmac(t0, t2, THREE);
  t0.fill(0);
  return [t1, t2, t3];
}

export const TAI64N_LEN = 12;
/** TAI64 labels count from 2^62; the +10 is the TAI−UTC offset of 1970, as wireguard-go writes it. */
const TAI64_BASE_HI = 0x40000000;
/**
 * The nanoseconds are rounded down to 2^24 ns (~16.8 ms), as wireguard-go does, so
 * the timestamp in an initiation does not leak a precise clock (whitepaper §5.1
 * only needs it to be monotonic per initiator).
 */
const WHITENER_MASK = 0x1000000 - 1;

/** The 12-byte TAI64N label of a wall-clock time given in ms since the epoch. */
export function tai64n(wallMs: number, out: Uint8Array = new Uint8Array(TAI64N_LEN)): Uint8Array {
  const secs = Math.floor(wallMs / 1000) + 10;
  const nanos = Math.floor((wallMs - Math.floor(wallMs / 1000) * 1000) * 1e6) & ~WHITENER_MASK;
  const v = new DataView(out.buffer, out.byteOffset, TAI64N_LEN);
  v.setUint32(0, TAI64_BASE_HI + Math.floor(secs / 0x100000000));
  v.setUint32(4, secs >>> 0);
  v.setUint32(8, nanos >>> 0);
  return out;
}

/** Compares two TAI64N labels as big-endian numbers: <0, 0, >0. */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TAI64N_LEN; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}
