/**
 * DoS mitigation (whitepaper §5.3, §5.4.4, §5.4.7): mac1 proves knowledge of the
 * responder's public key and is checked before any Diffie-Hellman; under load,
 * mac2 must carry a cookie bound to the sender's IP address and port.
 */
import type { CryptoProvider } from '../crypto/provider.js';
import { hash, mac, MAC_LEN } from '../crypto/hash.js';
import { constantTimeEqual } from '../util/bytes.js';
import type { Rng } from '../util/rng.js';
import type { Instant } from '../util/time.js';
import { COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1 } from './constants.js';
import { CookieReply, COOKIE_REPLY_LEN, MSG_COOKIE_REPLY, writeHeader, writeU32 } from '../wire/wireguard.js';

const enc = new TextEncoder();
const ZERO_MAC = new Uint8Array(MAC_LEN);

export function mac1Key(publicKey: Uint8Array): Uint8Array {
  return hash(enc.encode(LABEL_MAC1), publicKey);
}
export function cookieKey(publicKey: Uint8Array): Uint8Array {
  return hash(enc.encode(LABEL_COOKIE), publicKey);
}

/** The responder side: checks macs on handshake messages addressed to us, makes cookie replies. */
export class CookieChecker {
  private mac1Key: Uint8Array | undefined;
  private cookieKey: Uint8Array | undefined;
  private secret = new Uint8Array(32);
  private secretAt = -Infinity;

  constructor(
    private readonly crypto: CryptoProvider,
    private readonly rng: Rng,
  ) {}

  setPublicKey(pub: Uint8Array | undefined): void {
    this.mac1Key = pub ? mac1Key(pub) : undefined;
    this.cookieKey = pub ? cookieKey(pub) : undefined;
  }

  /** mac1 covers everything before it; constant-time comparison (§5.4.4). */
  checkMac1(msg: Uint8Array, mac1Off: number): boolean {
    if (!this.mac1Key) return false;
    return constantTimeEqual(mac(this.mac1Key, msg.subarray(0, mac1Off)), msg.subarray(mac1Off, mac1Off + MAC_LEN));
  }

  private cookieFor(now: Instant, src: Uint8Array): Uint8Array {
    if (now - this.secretAt >= COOKIE_REFRESH_TIME) {
      this.rng.fill(this.secret);
      this.secretAt = now;
    }
    return mac(this.secret, src);
  }

  /** mac2 covers everything before it, keyed with the cookie of the sender's address. */
  checkMac2(now: Instant, msg: Uint8Array, mac2Off: number, src: Uint8Array): boolean {
    const m2 = msg.subarray(mac2Off, mac2Off + MAC_LEN);
    if (constantTimeEqual(m2, ZERO_MAC)) return false;
    return constantTimeEqual(mac(this.cookieFor(now, src), msg.subarray(0, mac2Off)), m2);
  }

  /** A cookie reply to `msg` (its sender index and mac1 are the AD), §5.4.7. */
  createReply(now: Instant, msg: Uint8Array, mac1Off: number, senderIndex: number, src: Uint8Array): Uint8Array {
    const out = new Uint8Array(COOKIE_REPLY_LEN);
    writeHeader(out, MSG_COOKIE_REPLY);
    writeU32(out, CookieReply.receiver, senderIndex);
    const nonce = out.subarray(CookieReply.nonce, CookieReply.nonce + 24);
    this.rng.fill(nonce);
    const cookie = this.cookieFor(now, src);
    this.crypto.xaeadSeal(out.subarray(CookieReply.encCookie), this.cookieKey!, nonce, cookie, msg.subarray(mac1Off, mac1Off + MAC_LEN));
    return out;
  }
}

/** The initiator side, one per peer: adds macs to our handshake messages, stores received cookies. */
export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private cookie: Uint8Array | undefined;
  private cookieAt = -Infinity;
  private lastMac1: Uint8Array | undefined;

  constructor(
    private readonly crypto: CryptoProvider,
    peerPublic: Uint8Array,
  ) {
    this.mac1Key = mac1Key(peerPublic);
    this.cookieKey = cookieKey(peerPublic);
  }

  /** Writes mac1, and mac2 when we hold a fresh cookie (else zeros). */
  addMacs(now: Instant, msg: Uint8Array, mac1Off: number): void {
    const m1 = mac(this.mac1Key, msg.subarray(0, mac1Off));
    msg.set(m1, mac1Off);
    this.lastMac1 = m1;
    const mac2Off = mac1Off + MAC_LEN;
    if (this.cookie && now - this.cookieAt < COOKIE_REFRESH_TIME) msg.set(mac(this.cookie, msg.subarray(0, mac2Off)), mac2Off);
    else msg.fill(0, mac2Off, mac2Off + MAC_LEN);
  }

  /** Takes a cookie reply answering our last message. False if it does not decrypt. */
  consumeReply(now: Instant, reply: Uint8Array): boolean {
    if (!this.lastMac1) return false;
    const cookie = new Uint8Array(16);
    const nonce = reply.subarray(CookieReply.nonce, CookieReply.nonce + 24);
    if (!this.crypto.xaeadOpen(cookie, this.cookieKey, nonce, reply.subarray(CookieReply.encCookie, COOKIE_REPLY_LEN), this.lastMac1)) return false;
    this.cookie = cookie;
    this.cookieAt = now;
    return true;
  }
}
