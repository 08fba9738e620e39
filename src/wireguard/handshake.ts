/**
 * The handshake messages on the wire (whitepaper §5.4.2-§5.4.4, §5.4.7) and the DoS
 * defences around them (§5.3): sending an initiation, admitting a message (mac1; under
 * load, mac2 or a cookie reply, and the per-source limit), consuming an initiation and
 * answering it, consuming a response, a cookie reply, and the queue that keeps handshakes
 * from delaying data (wireguard-go's handshake queue and IsUnderLoad).
 *
 * The Noise steps themselves are in noise.ts, macs and cookies in cookie.ts, the §6 timers
 * that these steps start and stop in peer-timers.ts; device.ts owns the state shared with
 * the data path (the index of receiver indices, the peers, the counters).
 */
import { tai64n, compareTai64n, TAI64N_LEN } from '../crypto/hash.js';
import { randomU32 } from '../util/rng.js';
import type { Instant } from '../util/time.js';
import { parseIp } from '../util/ip.js';
import { CookieReply, INITIATION_LEN, Initiation, MSG_INITIATION, MSG_RESPONSE, readU32, Response, RESPONSE_LEN, writeHeader, writeU32 } from '../wire/wireguard.js';
import * as K from './constants.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse } from './noise.js';
import { Keypair, NEVER, type Endpoint, type IndexEntry, type Peer } from './peer.js';
import { timersAnyAuthenticatedPacketTraversal, timersHandshakeComplete, timersHandshakeInitiated, timersSessionDerived } from './peer-timers.js';
import type { Device } from './device.js';

/** wireguard-go's UnderLoadAfterTime: under load for this long after the backlog was last high. */
const UNDER_LOAD_AFTER_TIME = 1000;

/** A handshake message waiting for its turn (Device.receiveDatagram). */
export interface QueuedHandshake {
  data: Uint8Array;
  from: Endpoint;
  at: Instant;
}

/**
 * The handshake queue, a ring of fixed capacity (wireguard-go's QueueHandshakeSize), and
 * whether the device is under load (§5.3), which wireguard-go judges by its length.
 */
export class HandshakeQueue {
  private readonly ring: (QueuedHandshake | undefined)[];
  private readonly cap: number;
  private head = 0;
  private len = 0;
  private loadWindowStart = -NEVER;
  private loadCount = 0;
  private underLoadUntil = -NEVER;

  /**
   * `maxAge`: a message that waited longer is dropped unanswered. `underLoadBacklog`,
   * `underLoadRate`: see DeviceOptions.
   */
  constructor(
    capacity: number,
    readonly maxAge: number,
    private readonly underLoadBacklog: number,
    private readonly underLoadRate: number | undefined,
  ) {
    this.cap = Math.max(1, capacity);
    this.ring = new Array<QueuedHandshake | undefined>(this.cap).fill(undefined);
  }

  get length(): number {
    return this.len;
  }

  /** Queues a copy of `data`; false, and nothing queued, when the queue is full. */
  push(data: Uint8Array, from: Endpoint, at: Instant): boolean {
    if (this.len >= this.cap) return false;
    // A copy: 92 or 148 bytes, where a view would pin the whole receive batch's buffer.
    this.ring[(this.head + this.len) % this.cap] = { data: data.slice(), from, at };
    this.len++;
    return true;
  }

  /** The oldest message, off the queue. */
  shift(): QueuedHandshake | undefined {
    if (this.len === 0) return undefined;
    const e = this.ring[this.head]!;
    this.ring[this.head] = undefined;
    this.head = this.head + 1 === this.cap ? 0 : this.head + 1;
    this.len--;
    return e;
  }

  /**
   * wireguard-go's IsUnderLoad: at least `underLoadBacklog` handshake messages wait behind
   * this one, or did within UnderLoadAfterTime. (Or, if set, the old per-second rate.)
   */
  isUnderLoad(now: Instant): boolean {
    if (this.len >= this.underLoadBacklog) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    else if (this.underLoadRate !== undefined) {
      if (now - this.loadWindowStart >= 1000) {
        this.loadWindowStart = now;
        this.loadCount = 0;
      }
      if (++this.loadCount > this.underLoadRate) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    }
    return now < this.underLoadUntil;
  }
}

export function enqueueHandshake(d: Device, now: Instant, data: Uint8Array, from: Endpoint): void {
  const q = d.handshakes;
  if (!q.push(data, from, now)) return d.drop('handshakeQueueFull');
  if (q.length > d.stats.handshakeBacklogMax) d.stats.handshakeBacklogMax = q.length;
}

/**
 * Processes up to `max` queued handshake messages, oldest first, and returns how many it
 * took off the queue. One that waited longer than the queue's `maxAge` is dropped
 * ('handshakeStale'): its sender has given up on it.
 */
export function handleHandshakes(d: Device, now: Instant, max: number): number {
  const q = d.handshakes;
  let n = 0;
  while (q.length > 0 && n < max) {
    const e = q.shift()!;
    n++;
    if (now - e.at > q.maxAge) d.drop('handshakeStale');
    else if (e.data[0] === MSG_INITIATION) handleInitiation(d, now, e.data, e.from);
    else handleResponse(d, now, e.data, e.from);
  }
  return n;
}

/** A fresh random receiver index (§5.4.2) for `entry`. */
function newIndex(d: Device, entry: IndexEntry): number {
  for (;;) {
    const i = randomU32(d.rng);
    if (!d.index.has(i)) {
      d.index.set(i, entry);
      return i;
    }
  }
}

/** A new handshake, not a retry: its RekeyAttemptTime starts afresh (§6.4), unless one was sent less than RekeyTimeout ago. */
export function initiateHandshake(d: Device, now: Instant, peer: Peer): void {
  if (now - peer.lastSentHandshake < K.REKEY_TIMEOUT) return;
  peer.attempts = 0;
  sendInitiation(d, now, peer, false);
}

/** §5.4.2: a new initiation to `peer`, unless one was sent less than RekeyTimeout ago (a retry goes regardless). */
export function sendInitiation(d: Device, now: Instant, peer: Peer, retry: boolean): void {
  const privateKey = d.privateKey;
  const publicKey = d.publicKey;
  if (!privateKey || !publicKey || !peer.ss || !peer.endpoint) return;
  if (!retry && now - peer.lastSentHandshake < K.REKEY_TIMEOUT) return;
  if (peer.pending) d.index.delete(peer.pending.localIndex);
  const msg = new Uint8Array(INITIATION_LEN);
  writeHeader(msg, MSG_INITIATION);
  const localIndex = newIndex(d, { peer, keypair: undefined });
  writeU32(msg, Initiation.sender, localIndex);
  const eph = new Uint8Array(32);
  d.rng.fill(eph);
  const ts = tai64n(d.wallClock());
  const state = createInitiation(d.crypto, { privateKey, publicKey }, peer.publicKey, peer.ss, eph, ts, msg);
  if (!state) {
    d.index.delete(localIndex);
    return;
  }
  peer.pending = { state, localIndex };
  peer.cookie.addMacs(now, msg, Initiation.mac1);
  peer.lastSentHandshake = now;
  d.stats.handshakesInitiated++;
  d.send(peer, msg);
  timersAnyAuthenticatedPacketTraversal(d, now, peer);
  timersHandshakeInitiated(d, now, peer);
}

/** Bytes that stand for the sender's address in its cookie (IP, then port big-endian). */
function sourceBytes(from: Endpoint): Uint8Array {
  const ip = parseIp(from.address) ?? new Uint8Array(16);
  const out = new Uint8Array(ip.length + 2);
  out.set(ip);
  out[ip.length] = from.port >> 8;
  out[ip.length + 1] = from.port & 0xff;
  return out;
}

/**
 * §5.3: mac1 always; under load, a valid mac2 (else a cookie reply) and the
 * per-source rate limit. True if the message may go on to the expensive part.
 */
function admitHandshake(d: Device, now: Instant, msg: Uint8Array, mac1Off: number, senderIndex: number, from: Endpoint): boolean {
  if (!d.privateKey) {
    d.drop('noPrivateKey');
    return false;
  }
  if (!d.checker.checkMac1(msg, mac1Off)) {
    d.drop('badMac1');
    return false;
  }
  if (d.handshakes.isUnderLoad(now)) {
    const src = sourceBytes(from);
    if (!d.checker.checkMac2(now, msg, mac1Off + 16, src)) {
      d.sendCookieReply(from, d.checker.createReply(now, msg, mac1Off, senderIndex, src));
      d.drop('cookieSent');
      return false;
    }
    if (!d.limiter.allow(now, src.subarray(0, src.length - 2))) {
      d.drop('rateLimited');
      return false;
    }
  }
  return true;
}

/** §5.4.2-§5.4.3: an initiation consumed, answered with a response; the responder's session waits as `next`. */
function handleInitiation(d: Device, now: Instant, msg: Uint8Array, from: Endpoint): void {
  const sender = readU32(msg, Initiation.sender);
  if (!admitHandshake(d, now, msg, Initiation.mac1, sender, from)) return;
  const us = { privateKey: d.privateKey!, publicKey: d.publicKey! };
  let found: Peer | undefined;
  const init = consumeInitiation(d.crypto, us, msg, (pk) => {
    found = d.getPeer(pk);
    return found?.ss;
  });
  if (!init || !found) {
    d.drop(found === undefined && init === undefined ? 'badHandshake' : 'unknownPeer');
    return;
  }
  const peer = found;
  // §5.1: a timestamp not newer than the last accepted one is a replay.
  if (peer.lastTimestamp && compareTai64n(init.payload, peer.lastTimestamp) <= 0) {
    d.drop('replayedTimestamp');
    return;
  }
  if (now - peer.lastInitiationConsumed < K.HANDSHAKE_INITIATION_RATE) {
    d.drop('initiationFlood');
    return;
  }
  peer.lastTimestamp = init.payload.slice(0, TAI64N_LEN);
  peer.lastInitiationConsumed = now;

  const resp = new Uint8Array(RESPONSE_LEN);
  writeHeader(resp, MSG_RESPONSE);
  writeU32(resp, Response.receiver, sender);
  const eph = new Uint8Array(32);
  d.rng.fill(eph);
  const r = createResponse(d.crypto, init, peer.presharedKey, eph, new Uint8Array(0), resp);
  eph.fill(0);
  if (!r) {
    d.drop('badHandshake');
    return;
  }
  const entry: IndexEntry = { peer, keypair: undefined };
  const localIndex = newIndex(d, entry);
  writeU32(resp, Response.sender, localIndex);
  const kp = new Keypair(r.keys.send, r.keys.recv, localIndex, sender, now, false);
  entry.keypair = kp;
  // §5.4.6: the responder keeps the new session as `next` until the initiator uses it (key confirmation).
  if (peer.next) {
    d.index.delete(peer.next.localIndex);
    peer.next.wipe();
  }
  peer.next = kp;
  d.setEndpoint(peer, from);
  peer.cookie.addMacs(now, resp, Response.mac1);
  d.send(peer, resp);
  timersAnyAuthenticatedPacketTraversal(d, now, peer);
  timersSessionDerived(d, now, peer);
}

/** §5.4.3-§5.4.5: a response to our pending initiation consumed; the initiator's session is current at once. */
function handleResponse(d: Device, now: Instant, msg: Uint8Array, from: Endpoint): void {
  const sender = readU32(msg, Response.sender);
  if (!admitHandshake(d, now, msg, Response.mac1, sender, from)) return;
  const receiver = readU32(msg, Response.receiver);
  const entry = d.index.get(receiver);
  const peer = entry?.peer;
  if (!entry || entry.keypair || !peer || !peer.pending || peer.pending.localIndex !== receiver) {
    d.drop('unknownIndex');
    return;
  }
  const r = consumeResponse(d.crypto, { privateKey: d.privateKey!, publicKey: d.publicKey! }, peer.pending.state, peer.presharedKey, msg);
  if (!r) {
    d.drop('badHandshake');
    return;
  }
  peer.pending.state.ephemeralPrivate.fill(0);
  peer.pending = undefined;
  const kp = new Keypair(r.keys.send, r.keys.recv, receiver, sender, now, true);
  entry.keypair = kp;
  rotateAsInitiator(d, peer, kp);
  d.setEndpoint(peer, from);
  completeHandshake(d, now, peer);
  timersAnyAuthenticatedPacketTraversal(d, now, peer);
  // The responder only trusts the session once it sees data: send the staged packets, or a keepalive.
  if (!d.flushStaged(now, peer)) d.sendKeepalive(now, peer);
}

/** The initiator's new session becomes current (§6.3's previous, current, next); an unconfirmed `next` is dropped. */
function rotateAsInitiator(d: Device, peer: Peer, kp: Keypair): void {
  const retire = (k: Keypair | undefined): void => {
    if (k) {
      d.index.delete(k.localIndex);
      k.wipe();
    }
  };
  if (peer.next) {
    retire(peer.previous);
    peer.previous = peer.next;
    peer.next = undefined;
    retire(peer.current);
  } else {
    retire(peer.previous);
    peer.previous = peer.current;
  }
  peer.current = kp;
}

/** A session is confirmed: by the response (initiator) or its first data (responder). */
export function completeHandshake(d: Device, now: Instant, peer: Peer): void {
  timersHandshakeComplete(d, peer);
  // wgnet restarts the zeroing timer at confirmation too (wireguard-go: only at derivation).
  timersSessionDerived(d, now, peer);
  d.stats.handshakesCompleted++;
  d.emit({ type: 'handshake', peer });
}

/** §5.4.7: a cookie reply is stored for the next handshake message's mac2; nothing is resent now (§6.6). */
export function handleCookieReply(d: Device, now: Instant, msg: Uint8Array): void {
  const entry = d.index.get(readU32(msg, CookieReply.receiver));
  if (!entry) {
    d.drop('unknownIndex');
    return;
  }
  if (!entry.peer.cookie.consumeReply(now, msg)) d.drop('badCookie');
}
