/**
 * The Noise_IKpsk2 handshake of WireGuard (whitepaper §5.4.2–§5.4.5), as pure
 * functions over explicit state. The device keeps one `InitiatorState` per peer
 * while waiting for a response; the responder side needs no state beyond the
 * message it answers.
 *
 * Prologue and payloads are parameters of the internal steps so the same code
 * is checked against the generic Noise IKpsk2 test vectors.
 */
import type { CryptoProvider } from '../crypto/provider.js';
import { hash, kdf1, kdf2, kdf3 } from '../crypto/hash.js';
import { CONSTRUCTION, IDENTIFIER } from './constants.js';

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);
const ZERO32 = new Uint8Array(32);

/** C0 = HASH(CONSTRUCTION), H0 = HASH(C0 || IDENTIFIER): the same for every handshake. */
export function initialChainingKey(): Uint8Array {
  return hash(enc.encode(CONSTRUCTION));
}
const C0 = initialChainingKey();
const H0 = hash(C0, enc.encode(IDENTIFIER));

export interface Keys {
  /** Our static private key and its public key. */
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** State of the initiator between sending an initiation and consuming the response. */
export interface InitiatorState {
  c: Uint8Array;
  h: Uint8Array;
  ephemeralPrivate: Uint8Array;
}

export interface TransportKeys {
  send: Uint8Array;
  recv: Uint8Array;
}

function aeadSeal(crypto: CryptoProvider, key: Uint8Array, pt: Uint8Array, ad: Uint8Array, out: Uint8Array): void {
  crypto.aeadSeal(out, key, 0, pt, ad);
}

/**
 * Fills bytes 8..116 of an initiation (ephemeral, encrypted static, encrypted
 * timestamp) and returns the state to keep. `ephemeralPrivate` comes from the rng.
 * `ssPrecomputed` is DH(S_i, S_r), the same for every handshake with this peer.
 * Returns undefined if a DH result is all zero (low-order peer key).
 */
export function createInitiation(
  crypto: CryptoProvider,
  us: Keys,
  peerPublic: Uint8Array,
  ssPrecomputed: Uint8Array,
  ephemeralPrivate: Uint8Array,
  payload: Uint8Array,
  msg: Uint8Array, // the 148-byte message; writes [8, 116)
  prologue: Uint8Array = enc.encode(IDENTIFIER),
): InitiatorState | undefined {
  let h = prologue === undefined ? H0 : hash(C0, prologue);
  let c = C0;
  h = hash(h, peerPublic);
  const ePub = msg.subarray(8, 40);
  crypto.x25519Base(ePub, ephemeralPrivate);
  c = kdf1(c, ePub);
  h = hash(h, ePub);
  const es = new Uint8Array(32);
  if (!crypto.x25519(es, ephemeralPrivate, peerPublic)) return undefined;
  let k: Uint8Array;
  [c, k] = kdf2(c, es);
  es.fill(0);
  const encStatic = msg.subarray(40, 88);
  aeadSeal(crypto, k, us.publicKey, h, encStatic);
  h = hash(h, encStatic);
  [c, k] = kdf2(c, ssPrecomputed);
  const encPayload = msg.subarray(88, 88 + payload.length + 16);
  aeadSeal(crypto, k, payload, h, encPayload);
  h = hash(h, encPayload);
  k.fill(0);
  return { c, h, ephemeralPrivate };
}

export interface ConsumedInitiation {
  peerPublic: Uint8Array;
  payload: Uint8Array; // the timestamp in WireGuard
  c: Uint8Array;
  h: Uint8Array;
  peerEphemeral: Uint8Array;
}

/**
 * Decrypts an initiation addressed to `us`. `ssFor(peerPublic)` returns the
 * precomputed DH(S_r, S_i) for a known peer, or undefined for an unknown one.
 */
export function consumeInitiation(
  crypto: CryptoProvider,
  us: Keys,
  msg: Uint8Array,
  ssFor: (peerPublic: Uint8Array) => Uint8Array | undefined,
  payloadLen = 12,
  prologue: Uint8Array = enc.encode(IDENTIFIER),
): ConsumedInitiation | undefined {
  let h = hash(C0, prologue);
  let c = C0;
  h = hash(h, us.publicKey);
  const ePub = msg.slice(8, 40);
  c = kdf1(c, ePub);
  h = hash(h, ePub);
  const es = new Uint8Array(32);
  if (!crypto.x25519(es, us.privateKey, ePub)) return undefined;
  let k: Uint8Array;
  [c, k] = kdf2(c, es);
  es.fill(0);
  const encStatic = msg.subarray(40, 88);
  const peerPublic = new Uint8Array(32);
  if (!crypto.aeadOpen(peerPublic, k, 0, encStatic, h)) return undefined;
  h = hash(h, encStatic);
  const ss = ssFor(peerPublic);
  if (!ss) return undefined;
  [c, k] = kdf2(c, ss);
  const encPayload = msg.subarray(88, 88 + payloadLen + 16);
  const payload = new Uint8Array(payloadLen);
  if (!crypto.aeadOpen(payload, k, 0, encPayload, h)) return undefined;
  h = hash(h, encPayload);
  k.fill(0);
  return { peerPublic, payload, c, h, peerEphemeral: ePub };
}

/**
 * Fills bytes 12..60 of a response (ephemeral, encrypted empty) and returns the
 * transport keys of the responder. Undefined on an all-zero DH.
 */
export function createResponse(
  crypto: CryptoProvider,
  init: ConsumedInitiation,
  psk: Uint8Array | undefined,
  ephemeralPrivate: Uint8Array,
  payload: Uint8Array,
  msg: Uint8Array,
): { keys: TransportKeys; c: Uint8Array; h: Uint8Array } | undefined {
  let { c, h } = init;
  const ePub = msg.subarray(12, 44);
  crypto.x25519Base(ePub, ephemeralPrivate);
  c = kdf1(c, ePub);
  h = hash(h, ePub);
  const dh = new Uint8Array(32);
  if (!crypto.x25519(dh, ephemeralPrivate, init.peerEphemeral)) return undefined;
  c = kdf1(c, dh);
  if (!crypto.x25519(dh, ephemeralPrivate, init.peerPublic)) return undefined;
  c = kdf1(c, dh);
  dh.fill(0);
  let tau: Uint8Array;
  let k: Uint8Array;
  [c, tau, k] = kdf3(c, psk ?? ZERO32);
  h = hash(h, tau);
  tau.fill(0);
  const encEmpty = msg.subarray(44, 44 + payload.length + 16);
  crypto.aeadSeal(encEmpty, k, 0, payload, h);
  h = hash(h, encEmpty);
  k.fill(0);
  const [recv, send] = kdf2(c, EMPTY); // responder: T_recv = τ1, T_send = τ2
  return { keys: { send, recv }, c, h };
}

/** Consumes a response with the state kept since the initiation; the initiator's transport keys. */
export function consumeResponse(
  crypto: CryptoProvider,
  us: Keys,
  state: InitiatorState,
  psk: Uint8Array | undefined,
  msg: Uint8Array,
  payloadLen = 0,
): { keys: TransportKeys; c: Uint8Array; h: Uint8Array; payload: Uint8Array } | undefined {
  let { c, h } = state;
  const ePub = msg.subarray(12, 44);
  c = kdf1(c, ePub);
  h = hash(h, ePub);
  const dh = new Uint8Array(32);
  if (!crypto.x25519(dh, state.ephemeralPrivate, ePub)) return undefined;
  c = kdf1(c, dh);
  if (!crypto.x25519(dh, us.privateKey, ePub)) return undefined;
  c = kdf1(c, dh);
  dh.fill(0);
  let tau: Uint8Array;
  let k: Uint8Array;
  [c, tau, k] = kdf3(c, psk ?? ZERO32);
  h = hash(h, tau);
  tau.fill(0);
  const encEmpty = msg.subarray(44, 44 + payloadLen + 16);
  const payload = new Uint8Array(payloadLen);
  if (!crypto.aeadOpen(payload, k, 0, encEmpty, h)) return undefined;
  h = hash(h, encEmpty);
  k.fill(0);
  const [send, recv] = kdf2(c, EMPTY); // initiator: T_send = τ1, T_recv = τ2
  return { keys: { send, recv }, c, h, payload };
}
