/**
 * The sans-IO WireGuard device (DESIGN §2): datagrams and IP packets in,
 * datagrams and IP packets out, `now` passed in, timers stored as deadlines.
 *
 * Cryptokey routing (whitepaper §2), the handshake (§5.4) and its timers (§6)
 * live here; per-peer state and keypairs are in peer.ts, the Noise steps in
 * noise.ts, macs and cookies in cookie.ts.
 * Nothing from the network ever throws: it is dropped and counted in `stats`.
 */
import type { CryptoProvider } from '../crypto/provider.js';
import { tai64n, compareTai64n, TAI64N_LEN } from '../crypto/hash.js';
import type { Rng } from '../util/rng.js';
import { randomInt, randomU32 } from '../util/rng.js';
import type { Deadline, Instant } from '../util/time.js';
import { noTrace, type Trace } from '../util/trace.js';
import { WgnetError } from '../util/errors.js';
import { equalBytes, isZero, toBase64, headroomOf, tailroomOf, WG_HEADROOM } from '../util/bytes.js';
import { isLowOrderPoint } from '../crypto/keys.js';
import { parseIp } from '../util/ip.js';
import {
  COOKIE_REPLY_LEN,
  CookieReply,
  INITIATION_LEN,
  Initiation,
  messageType,
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  MSG_TRANSPORT,
  readU32,
  readU64,
  Response,
  RESPONSE_LEN,
  Transport,
  TRANSPORT_HEADER_LEN,
  writeHeader,
  writeU32,
  writeU64,
} from '../wire/wireguard.js';
import * as K from './constants.js';
import { AllowedIps } from './allowed-ips.js';
import { HandshakeRateLimiter } from './ratelimiter.js';
import { CookieChecker } from './cookie.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse } from './noise.js';
import { Keypair, NEVER, Peer, type Endpoint, type IndexEntry, type PeerConfig } from './peer.js';
import { PeerTimerHeap, TIMER_REASON } from './timers.js';

export { Peer, type Endpoint, type PeerConfig } from './peer.js';

export interface DeviceOptions {
  privateKey?: Uint8Array;
  crypto: CryptoProvider;
  rng: Rng;
  wallClock: () => number;
  trace?: Trace;
  /**
   * Handshake messages that may wait for their turn (receiveDatagram): wireguard-go's
   * QueueHandshakeSize, 1,024. One that finds the queue full is dropped ('handshakeQueueFull').
   */
  handshakeQueueLength?: number;
  /**
   * Under load (§5.3: mac2 demanded, else a cookie reply; the per-source limit) while at
   * least this many handshake messages wait behind the one being processed, and for
   * UnderLoadAfterTime (1 s) after, as wireguard-go's IsUnderLoad. Default 128
   * (QueueHandshakeSize / 8); 0: always under load.
   */
  underLoadBacklog?: number;
  /**
   * A handshake message that waited longer than this is dropped unanswered ('handshakeStale').
   * Default RekeyTimeout (5 s): by then its sender has retried with a new sender index and
   * forgotten this one, so an answer (response or cookie reply) could only be dropped there.
   */
  handshakeMaxAge?: number;
  /**
   * Also under load above this many handshake messages per second. Off by default: the rule
   * before the handshake queue, kept so a test can force the cookie path (0: always).
   */
  underLoadRate?: number;
}

export type DeviceEvent =
  | { type: 'handshake'; peer: Peer }
  | { type: 'handshake-failed'; peer: Peer }
  | { type: 'endpoint-changed'; peer: Peer };

export type DropReason =
  | 'malformed'
  | 'noPrivateKey'
  | 'badMac1'
  | 'cookieSent'
  | 'rateLimited'
  | 'badHandshake'
  | 'unknownPeer'
  | 'replayedTimestamp'
  | 'initiationFlood'
  | 'unknownIndex'
  | 'badCookie'
  | 'expiredKeypair'
  | 'badAuth'
  | 'replay'
  | 'badInnerPacket'
  | 'sourceNotAllowed'
  | 'noRoute'
  | 'noEndpoint'
  | 'stagedOverflow'
  | 'handshakeQueueFull'
  | 'handshakeStale';

export interface DeviceStats {
  rxDatagrams: number;
  rxPackets: number;
  rxBytes: number;
  txDatagrams: number;
  txPackets: number;
  txBytes: number;
  handshakesInitiated: number;
  handshakesCompleted: number;
  cookieRepliesSent: number;
  /** The most handshake messages ever waiting at once (receiveDatagram). */
  handshakeBacklogMax: number;
  dropped: Record<DropReason, number>;
}

/** A handshake message waiting for its turn (receiveDatagram). */
interface QueuedHandshake {
  data: Uint8Array;
  from: Endpoint;
  at: Instant;
}

/** wireguard-go's UnderLoadAfterTime: under load for this long after the backlog was last high. */
const UNDER_LOAD_AFTER_TIME = 1000;

const keyId = (k: Uint8Array): string => toBase64(k);

export class Device {
  readonly allowedIps = new AllowedIps<Peer>();
  readonly stats: DeviceStats;
  private readonly crypto: CryptoProvider;
  private readonly rng: Rng;
  private readonly wallClock: () => number;
  private readonly trace: Trace;
  private priv: Uint8Array | undefined;
  private pub: Uint8Array | undefined;
  private readonly peerMap = new Map<string, Peer>();
  private readonly index = new Map<number, IndexEntry>();
  private readonly checker: CookieChecker;
  private readonly limiter = new HandshakeRateLimiter();
  /** Every peer's §6 timers; written only by the timers* hooks below. */
  private readonly timers = new PeerTimerHeap<Peer>(this.peerMap);
  private readonly underLoadRate: number | undefined;
  private readonly underLoadBacklog: number;
  private readonly handshakeMaxAge: number;
  private loadWindowStart = -NEVER;
  private loadCount = 0;
  private underLoadUntil = -NEVER;
  /** The handshake queue: a ring of `hsCap` slots. */
  private readonly hsq: (QueuedHandshake | undefined)[];
  private readonly hsCap: number;
  private hsHead = 0;
  private hsLen = 0;
  /** Peers with `reserved` bytes: while any, every datagram's reserved field is zeroed first. */
  private reservedPeers = 0;
  private txq: { to: Endpoint; data: Uint8Array }[] = [];
  private txHead = 0;
  private rxq: Uint8Array[] = [];
  private rxHead = 0;
  private events: DeviceEvent[] = [];
  private eventHead = 0;
  private cachedDeadline: Deadline | undefined;

  constructor(opts: DeviceOptions) {
    this.crypto = opts.crypto;
    this.rng = opts.rng;
    this.wallClock = opts.wallClock;
    this.trace = opts.trace ?? noTrace;
    this.underLoadRate = opts.underLoadRate;
    this.underLoadBacklog = opts.underLoadBacklog ?? 128;
    this.handshakeMaxAge = opts.handshakeMaxAge ?? K.REKEY_TIMEOUT;
    this.hsCap = Math.max(1, opts.handshakeQueueLength ?? 1024);
    this.hsq = new Array<QueuedHandshake | undefined>(this.hsCap).fill(undefined);
    this.checker = new CookieChecker(this.crypto, this.rng);
    const dropped = {} as Record<DropReason, number>;
    this.stats = {
      rxDatagrams: 0,
      rxPackets: 0,
      rxBytes: 0,
      txDatagrams: 0,
      txPackets: 0,
      txBytes: 0,
      handshakesInitiated: 0,
      handshakesCompleted: 0,
      cookieRepliesSent: 0,
      handshakeBacklogMax: 0,
      dropped,
    };
    if (opts.privateKey) this.setPrivateKey(opts.privateKey);
  }

  /** The default inspect view would print the private key's bytes (DESIGN §5). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Device(${this.pub ? keyId(this.pub) : 'no key'}, ${this.peerMap.size} peers)`;
  }

  // --- configuration ---------------------------------------------------------

  get publicKey(): Uint8Array | undefined {
    return this.pub;
  }
  get privateKey(): Uint8Array | undefined {
    return this.priv;
  }

  /** A new static key: precomputed DH redone for every peer, sessions dropped (as wireguard-go). */
  setPrivateKey(key: Uint8Array | undefined): void {
    if (key && key.length !== 32) throw new WgnetError('ERR_WGNET_INVALID_KEY', 'private key: expected 32 bytes');
    if (key && this.priv && equalBytes(key, this.priv)) return;
    this.priv = key ? new Uint8Array(key) : undefined;
    this.pub = undefined;
    if (this.priv) {
      this.pub = new Uint8Array(32);
      this.crypto.x25519Base(this.pub, this.priv);
    }
    this.checker.setPublicKey(this.pub);
    for (const peer of [...this.peerMap.values()]) {
      if (this.pub && equalBytes(peer.publicKey, this.pub)) {
        this.removePeer(peer.publicKey);
        continue;
      }
      this.clearSessions(peer);
      peer.ss = this.computeSs(peer.publicKey);
    }
  }

  private computeSs(peerPublic: Uint8Array): Uint8Array | undefined {
    if (!this.priv) return undefined;
    const ss = new Uint8Array(32);
    return this.crypto.x25519(ss, this.priv, peerPublic) ? ss : undefined;
  }

  /**
   * Throws what addPeer throws for a key no peer can have (wrong length, a low-order point),
   * adding nothing. No Diffie-Hellman: X25519 with a clamped scalar gives zero exactly for
   * the points of order 1, 2, 4 and 8 and their non-canonical encodings, which are listed.
   */
  checkPeerKey(publicKey: Uint8Array): void {
    if (publicKey.length !== 32) throw new WgnetError('ERR_WGNET_INVALID_KEY', 'peer public key: expected 32 bytes');
    if (isLowOrderPoint(publicKey)) throw lowOrder(publicKey);
  }

  /** Adds a peer: one X25519 (the static-static secret, §5.4.2 `ss`), none without a private key. */
  addPeer(cfg: PeerConfig): Peer {
    const id = keyId(cfg.publicKey);
    if (cfg.publicKey.length !== 32) throw new WgnetError('ERR_WGNET_INVALID_KEY', 'peer public key: expected 32 bytes');
    if (this.peerMap.has(id)) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `peer ${id} is already configured`);
    if (this.pub && equalBytes(this.pub, cfg.publicKey)) throw new WgnetError('ERR_WGNET_INVALID_KEY', `peer ${id} has this device's own public key`);
    this.checkPeerKey(cfg.publicKey);
    const peer = new Peer(new Uint8Array(cfg.publicKey), this.crypto);
    if (this.priv) {
      const ss = new Uint8Array(32);
      if (!this.crypto.x25519(ss, this.priv, peer.publicKey)) throw lowOrder(peer.publicKey); // not reached: the list is complete
      peer.ss = ss;
    }
    this.peerMap.set(id, peer);
    this.updatePeer(peer.publicKey, cfg);
    return peer;
  }

  updatePeer(publicKey: Uint8Array, cfg: Partial<Omit<PeerConfig, 'publicKey'>> & { replaceAllowedIps?: boolean }): Peer {
    const peer = this.peerMap.get(keyId(publicKey));
    if (!peer) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `no peer ${keyId(publicKey)}`);
    if ('presharedKey' in cfg) {
      if (cfg.presharedKey && cfg.presharedKey.length !== 32) throw new WgnetError('ERR_WGNET_INVALID_KEY', 'preshared key: expected 32 bytes');
      peer.presharedKey = cfg.presharedKey && !isZero(cfg.presharedKey) ? new Uint8Array(cfg.presharedKey) : undefined;
    }
    if (cfg.endpoint) peer.endpoint = { address: cfg.endpoint.address, port: cfg.endpoint.port };
    if (cfg.persistentKeepalive !== undefined) {
      const v = cfg.persistentKeepalive;
      if (!Number.isInteger(v) || v < 0 || v > 65535) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `persistent keepalive: 0-65535 seconds, got ${v}`);
      peer.persistentKeepalive = v;
      if (v === 0) this.timers.cancel(peer, 'persistentKeepalive');
    }
    if (cfg.reserved !== undefined) {
      if (cfg.reserved && cfg.reserved.length !== 3) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', 'reserved: expected exactly 3 bytes');
      if (peer.reserved) this.reservedPeers--;
      peer.reserved = cfg.reserved && !isZero(cfg.reserved) ? new Uint8Array(cfg.reserved) : undefined;
      if (peer.reserved) this.reservedPeers++;
    }
    if (cfg.replaceAllowedIps) this.allowedIps.removeByValue(peer);
    for (const p of cfg.allowedIps ?? []) this.allowedIps.insert(p, peer);
    return peer;
  }

  removePeer(publicKey: Uint8Array): boolean {
    const id = keyId(publicKey);
    const peer = this.peerMap.get(id);
    if (!peer) return false;
    this.clearSessions(peer);
    this.timers.cancelAll(peer);
    this.allowedIps.removeByValue(peer);
    this.peerMap.delete(id);
    if (peer.reserved) this.reservedPeers--;
    peer.ss?.fill(0);
    return true;
  }

  getPeer(publicKey: Uint8Array): Peer | undefined {
    return this.peerMap.get(keyId(publicKey));
  }

  peers(): IterableIterator<Peer> {
    return this.peerMap.values();
  }

  private clearSessions(peer: Peer): void {
    for (const kp of [peer.previous, peer.current, peer.next]) {
      if (kp) {
        this.index.delete(kp.localIndex);
        kp.wipe();
      }
    }
    if (peer.pending) this.index.delete(peer.pending.localIndex);
    peer.previous = peer.current = peer.next = undefined;
    peer.pending = undefined;
    peer.staged = [];
    // Every timer but the persistent keepalive, which belongs to the configuration.
    this.timers.cancel(peer, 'retransmitHandshake');
    this.timers.cancel(peer, 'sendKeepalive');
    this.timers.cancel(peer, 'newHandshake');
    this.timers.cancel(peer, 'zeroKeyMaterial');
    peer.attempts = 0;
  }

  // --- sans-IO outputs -------------------------------------------------------

  pollTransmit(): { to: Endpoint; data: Uint8Array } | undefined {
    if (this.txHead < this.txq.length) return this.txq[this.txHead++];
    if (this.txHead > 0) {
      this.txq = [];
      this.txHead = 0;
    }
    return undefined;
  }

  pollPacket(): Uint8Array | undefined {
    if (this.rxHead < this.rxq.length) return this.rxq[this.rxHead++];
    if (this.rxHead > 0) {
      this.rxq = [];
      this.rxHead = 0;
    }
    return undefined;
  }

  pollEvent(): DeviceEvent | undefined {
    if (this.eventHead < this.events.length) return this.events[this.eventHead++];
    if (this.eventHead > 0) {
      this.events = [];
      this.eventHead = 0;
    }
    return undefined;
  }

  /** The earliest deadline: the top of the timer heap (or the rate limiter's sweep). O(1) unless timers moved. */
  pollTimeout(): Deadline | undefined {
    const e = this.timers.peek();
    let at = e?.at ?? NEVER;
    let reason: string = e ? TIMER_REASON[e.t] : 'wireguard ratelimiter';
    const lc = this.limiter.nextCollect();
    if (lc !== undefined && lc < at) {
      at = lc;
      reason = 'wireguard ratelimiter';
    }
    if (at === NEVER) return (this.cachedDeadline = undefined);
    const c = this.cachedDeadline;
    if (c === undefined || c.at !== at || c.reason !== reason) this.cachedDeadline = { at, reason };
    return this.cachedDeadline;
  }

  /** Timer-heap entries held (tests: bounded by the peers, not by the packets). */
  get timerEntries(): number {
    return this.timers.size;
  }

  private drop(reason: DropReason, detail?: Record<string, unknown>): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
    if (this.trace.enabled('debug')) this.trace.log('debug', `drop ${reason}`, detail);
  }

  private send(peer: Peer, data: Uint8Array, to: Endpoint | undefined = peer.endpoint): void {
    if (!to) return;
    if (peer.reserved) data.set(peer.reserved, 1);
    this.txq.push({ to, data });
    this.stats.txDatagrams++;
    peer.txBytes += data.length;
  }

  // --- timers (§6) ---------------------------------------------------------------
  //
  // The hooks are wireguard-go's (timers.go), by name, and every timer write goes through
  // them, so §6 reads line by line here. The deadlines live in one heap (timers.ts).
  // Where wgnet differs from wireguard-go it says so.

  /** After an authenticated data packet is sent: expect an answer within KeepaliveTimeout + RekeyTimeout (§6.2). */
  private timersDataSent(now: Instant, peer: Peer): void {
    // wireguard-go adds 0-333 ms of jitter here; wgnet keeps the whitepaper's exact 15 s.
    if (peer.timers.newHandshake === NEVER) this.timers.arm(peer, 'newHandshake', now + K.KEEPALIVE_TIMEOUT + K.REKEY_TIMEOUT);
  }

  /** After an authenticated data packet is received: owe a keepalive if nothing is sent within KeepaliveTimeout (§6.5). */
  private timersDataReceived(now: Instant, peer: Peer): void {
    // wireguard-go also notes "needAnotherKeepalive" when the timer is pending; wgnet does not.
    if (peer.timers.sendKeepalive === NEVER) this.timers.arm(peer, 'sendKeepalive', now + K.KEEPALIVE_TIMEOUT);
  }

  /** After any authenticated packet is sent (keepalive or data; wgnet: not after a handshake message). */
  private timersAnyAuthenticatedPacketSent(peer: Peer): void {
    this.timers.cancel(peer, 'sendKeepalive');
  }

  /** After any authenticated packet is received (keepalive or data). */
  private timersAnyAuthenticatedPacketReceived(peer: Peer): void {
    this.timers.cancel(peer, 'newHandshake');
  }

  /** After an initiation is sent: retry after RekeyTimeout plus jitter (§6.1). */
  private timersHandshakeInitiated(now: Instant, peer: Peer): void {
    this.timers.arm(peer, 'retransmitHandshake', now + K.REKEY_TIMEOUT + randomInt(this.rng, K.REKEY_TIMEOUT_JITTER_MAX + 1));
  }

  /** After a response is consumed, or the first data under a session we answered (key confirmation). */
  private timersHandshakeComplete(peer: Peer): void {
    this.timers.cancel(peer, 'retransmitHandshake');
    peer.attempts = 0;
    peer.lastHandshakeWallMs = this.wallClock();
  }

  /** After session keys are derived: zero them after 3 × RejectAfterTime without a new handshake (§6.3). */
  private timersSessionDerived(now: Instant, peer: Peer): void {
    this.timers.arm(peer, 'zeroKeyMaterial', now + K.ZERO_KEYS_AFTER);
  }

  /** Before any authenticated packet is sent, or after one is received (handshakes too): the persistent keepalive restarts (§6.5). */
  private timersAnyAuthenticatedPacketTraversal(now: Instant, peer: Peer): void {
    if (peer.persistentKeepalive > 0) this.timers.arm(peer, 'persistentKeepalive', now + peer.persistentKeepalive * 1000);
  }

  /** Runs every deadline at or before `now`: the due peers come off the heap, O(log n) each. */
  handleTimeout(now: Instant): void {
    const due = new Set<Peer>();
    this.timers.collectDue(now, due);
    for (const peer of due) this.expired(now, peer);
    const lc = this.limiter.nextCollect();
    if (lc !== undefined && lc <= now) this.limiter.collect(now);
  }

  /** The expired* functions of wireguard-go's timers.go, for one peer, in a fixed order. */
  private expired(now: Instant, peer: Peer): void {
    const t = peer.timers;
    // expiredZeroKeyMaterial first: when timers run late (suspend, clock jump) it may be due together with a
    // handshake retry, and it must not forget a handshake sent in this same run (found by test/fuzz).
    if (t.zeroKeyMaterial <= now) {
      this.timers.cancel(peer, 'zeroKeyMaterial');
      const staged = peer.staged;
      const handshaking = peer.pending !== undefined;
      this.clearSessions(peer);
      peer.staged = staged;
      if (handshaking || staged.length > 0) this.sendInitiation(now, peer, true);
    }
    // expiredRetransmitHandshake
    if (t.retransmitHandshake <= now) {
      this.timers.cancel(peer, 'retransmitHandshake');
      if (peer.attempts >= K.MAX_TIMER_HANDSHAKES) {
        // §6.4: give up after RekeyAttemptTime; packets waiting are dropped.
        this.stats.dropped.stagedOverflow = (this.stats.dropped.stagedOverflow ?? 0) + peer.staged.length;
        peer.staged = [];
        if (peer.pending) this.index.delete(peer.pending.localIndex);
        peer.pending = undefined;
        peer.attempts = 0;
        // Residue of the partial exchange goes after 3 × RejectAfterTime, as wireguard-go.
        if (t.zeroKeyMaterial === NEVER) this.timersSessionDerived(now, peer);
        this.events.push({ type: 'handshake-failed', peer });
      } else {
        peer.attempts++;
        this.sendInitiation(now, peer, true);
      }
    }
    // expiredSendKeepalive
    if (t.sendKeepalive <= now) {
      this.timers.cancel(peer, 'sendKeepalive');
      this.sendKeepalive(now, peer);
    }
    // expiredNewHandshake: data was sent and nothing came back for KeepaliveTimeout + RekeyTimeout (§6.2).
    if (t.newHandshake <= now) {
      this.timers.cancel(peer, 'newHandshake');
      this.initiateHandshake(now, peer);
    }
    // expiredPersistentKeepalive
    if (t.persistentKeepalive <= now) {
      this.timers.cancel(peer, 'persistentKeepalive');
      if (peer.persistentKeepalive > 0) this.sendKeepalive(now, peer);
    }
  }

  // --- handshake ---------------------------------------------------------------

  /** Starts a handshake unless one was sent less than RekeyTimeout ago (§6.1). */
  initiateHandshake(now: Instant, peer: Peer): void {
    if (now - peer.lastSentHandshake < K.REKEY_TIMEOUT) return;
    peer.attempts = 0;
    this.sendInitiation(now, peer, false);
  }

  private newIndex(entry: IndexEntry): number {
    for (;;) {
      const i = randomU32(this.rng);
      if (!this.index.has(i)) {
        this.index.set(i, entry);
        return i;
      }
    }
  }

  private sendInitiation(now: Instant, peer: Peer, retry: boolean): void {
    if (!this.priv || !this.pub || !peer.ss || !peer.endpoint) return;
    if (!retry && now - peer.lastSentHandshake < K.REKEY_TIMEOUT) return;
    if (peer.pending) this.index.delete(peer.pending.localIndex);
    const msg = new Uint8Array(INITIATION_LEN);
    writeHeader(msg, MSG_INITIATION);
    const localIndex = this.newIndex({ peer, keypair: undefined });
    writeU32(msg, Initiation.sender, localIndex);
    const eph = new Uint8Array(32);
    this.rng.fill(eph);
    const ts = tai64n(this.wallClock());
    const state = createInitiation(this.crypto, { privateKey: this.priv, publicKey: this.pub }, peer.publicKey, peer.ss, eph, ts, msg);
    if (!state) {
      this.index.delete(localIndex);
      return;
    }
    peer.pending = { state, localIndex };
    peer.cookie.addMacs(now, msg, Initiation.mac1);
    peer.lastSentHandshake = now;
    this.stats.handshakesInitiated++;
    this.send(peer, msg);
    this.timersAnyAuthenticatedPacketTraversal(now, peer);
    this.timersHandshakeInitiated(now, peer);
  }

  /** Bytes that stand for the sender's address in its cookie (IP, then port big-endian). */
  private sourceBytes(from: Endpoint): Uint8Array {
    const ip = parseIp(from.address) ?? new Uint8Array(16);
    const out = new Uint8Array(ip.length + 2);
    out.set(ip);
    out[ip.length] = from.port >> 8;
    out[ip.length + 1] = from.port & 0xff;
    return out;
  }

  /**
   * wireguard-go's IsUnderLoad: at least `underLoadBacklog` handshake messages wait behind
   * this one, or did within UnderLoadAfterTime. (Or, if set, the old per-second rate.)
   */
  private isUnderLoad(now: Instant): boolean {
    if (this.hsLen >= this.underLoadBacklog) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    else if (this.underLoadRate !== undefined) {
      if (now - this.loadWindowStart >= 1000) {
        this.loadWindowStart = now;
        this.loadCount = 0;
      }
      if (++this.loadCount > this.underLoadRate) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    }
    return now < this.underLoadUntil;
  }

  /**
   * §5.3: mac1 always; under load, a valid mac2 (else a cookie reply) and the
   * per-source rate limit. True if the message may go on to the expensive part.
   */
  private admitHandshake(now: Instant, msg: Uint8Array, mac1Off: number, senderIndex: number, from: Endpoint): boolean {
    if (!this.priv) {
      this.drop('noPrivateKey');
      return false;
    }
    if (!this.checker.checkMac1(msg, mac1Off)) {
      this.drop('badMac1');
      return false;
    }
    if (this.isUnderLoad(now)) {
      const src = this.sourceBytes(from);
      if (!this.checker.checkMac2(now, msg, mac1Off + 16, src)) {
        const reply = this.checker.createReply(now, msg, mac1Off, senderIndex, src);
        this.txq.push({ to: from, data: reply });
        this.stats.txDatagrams++;
        this.stats.cookieRepliesSent++;
        this.drop('cookieSent');
        return false;
      }
      if (!this.limiter.allow(now, src.subarray(0, src.length - 2))) {
        this.drop('rateLimited');
        return false;
      }
    }
    return true;
  }

  private handleInitiation(now: Instant, msg: Uint8Array, from: Endpoint): void {
    const sender = readU32(msg, Initiation.sender);
    if (!this.admitHandshake(now, msg, Initiation.mac1, sender, from)) return;
    const us = { privateKey: this.priv!, publicKey: this.pub! };
    let found: Peer | undefined;
    const init = consumeInitiation(this.crypto, us, msg, (pk) => {
      found = this.peerMap.get(keyId(pk));
      return found?.ss;
    });
    if (!init || !found) {
      this.drop(found === undefined && init === undefined ? 'badHandshake' : 'unknownPeer');
      return;
    }
    const peer = found;
    // §5.1: a timestamp not newer than the last accepted one is a replay.
    if (peer.lastTimestamp && compareTai64n(init.payload, peer.lastTimestamp) <= 0) {
      this.drop('replayedTimestamp');
      return;
    }
    if (now - peer.lastInitiationConsumed < K.HANDSHAKE_INITIATION_RATE) {
      this.drop('initiationFlood');
      return;
    }
    peer.lastTimestamp = init.payload.slice(0, TAI64N_LEN);
    peer.lastInitiationConsumed = now;

    const resp = new Uint8Array(RESPONSE_LEN);
    writeHeader(resp, MSG_RESPONSE);
    writeU32(resp, Response.receiver, sender);
    const eph = new Uint8Array(32);
    this.rng.fill(eph);
    const r = createResponse(this.crypto, init, peer.presharedKey, eph, new Uint8Array(0), resp);
    eph.fill(0);
    if (!r) {
      this.drop('badHandshake');
      return;
    }
    const entry: IndexEntry = { peer, keypair: undefined };
    const localIndex = this.newIndex(entry);
    writeU32(resp, Response.sender, localIndex);
    const kp = new Keypair(r.keys.send, r.keys.recv, localIndex, sender, now, false);
    entry.keypair = kp;
    // §5.4.7: the responder keeps the new session as `next` until the initiator uses it.
    if (peer.next) {
      this.index.delete(peer.next.localIndex);
      peer.next.wipe();
    }
    peer.next = kp;
    this.setEndpoint(peer, from);
    peer.cookie.addMacs(now, resp, Response.mac1);
    this.send(peer, resp);
    this.timersAnyAuthenticatedPacketTraversal(now, peer);
    this.timersSessionDerived(now, peer);
  }

  private handleResponse(now: Instant, msg: Uint8Array, from: Endpoint): void {
    const sender = readU32(msg, Response.sender);
    if (!this.admitHandshake(now, msg, Response.mac1, sender, from)) return;
    const receiver = readU32(msg, Response.receiver);
    const entry = this.index.get(receiver);
    const peer = entry?.peer;
    if (!entry || entry.keypair || !peer || !peer.pending || peer.pending.localIndex !== receiver) {
      this.drop('unknownIndex');
      return;
    }
    const r = consumeResponse(this.crypto, { privateKey: this.priv!, publicKey: this.pub! }, peer.pending.state, peer.presharedKey, msg);
    if (!r) {
      this.drop('badHandshake');
      return;
    }
    peer.pending.state.ephemeralPrivate.fill(0);
    peer.pending = undefined;
    const kp = new Keypair(r.keys.send, r.keys.recv, receiver, sender, now, true);
    entry.keypair = kp;
    this.rotateAsInitiator(peer, kp);
    this.setEndpoint(peer, from);
    this.completeHandshake(now, peer);
    this.timersAnyAuthenticatedPacketTraversal(now, peer);
    // The responder only trusts the session once it sees data: send the staged packets, or a keepalive.
    if (!this.flushStaged(now, peer)) this.sendKeepalive(now, peer);
  }

  private rotateAsInitiator(peer: Peer, kp: Keypair): void {
    const retire = (k: Keypair | undefined): void => {
      if (k) {
        this.index.delete(k.localIndex);
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
  private completeHandshake(now: Instant, peer: Peer): void {
    this.timersHandshakeComplete(peer);
    // wgnet restarts the zeroing timer at confirmation too (wireguard-go: only at derivation).
    this.timersSessionDerived(now, peer);
    this.stats.handshakesCompleted++;
    this.events.push({ type: 'handshake', peer });
  }

  private handleCookieReply(now: Instant, msg: Uint8Array): void {
    const entry = this.index.get(readU32(msg, CookieReply.receiver));
    if (!entry) {
      this.drop('unknownIndex');
      return;
    }
    if (!entry.peer.cookie.consumeReply(now, msg)) this.drop('badCookie');
  }

  private setEndpoint(peer: Peer, from: Endpoint): void {
    const e = peer.endpoint;
    if (e && e.port === from.port && e.address === from.address) return;
    peer.endpoint = { address: from.address, port: from.port };
    if (e) this.events.push({ type: 'endpoint-changed', peer });
  }

  // --- data path ---------------------------------------------------------------

  /**
   * A datagram handled completely before this returns, handshakes included: the plain
   * sans-IO form (tests, simulators). An I/O loop uses receiveDatagram + handleHandshakes.
   */
  handleDatagram(now: Instant, data: Uint8Array, from: Endpoint): void {
    this.receiveDatagram(now, data, from);
    if (this.hsLen > 0) this.handleHandshakes(now);
  }

  /**
   * A datagram as an I/O loop feeds them (io/engine): transport data and cookie replies are
   * handled at once; handshake messages wait in the handshake queue until handleHandshakes,
   * which the loop runs after the data, a few at a time. As wireguard-go's separate, bounded
   * handshake queue: live traffic never waits behind handshakes; under a flood the backlog
   * puts the device under load (cookies, per-source limits), and beyond the queue's capacity
   * messages are dropped and counted ('handshakeQueueFull'), never buffered without bound.
   */
  receiveDatagram(now: Instant, data: Uint8Array, from: Endpoint): void {
    this.stats.rxDatagrams++;
    // sing-box/WARP peers put their own bytes in the reserved field (§5.4 says zero).
    if (this.reservedPeers > 0 && data.length >= 4) {
      data[1] = 0;
      data[2] = 0;
      data[3] = 0;
    }
    switch (messageType(data)) {
      case MSG_TRANSPORT:
        return this.handleTransport(now, data, from);
      case MSG_INITIATION:
      case MSG_RESPONSE:
        return this.enqueueHandshake(now, data, from);
      case MSG_COOKIE_REPLY:
        if (data.length === COOKIE_REPLY_LEN) return this.handleCookieReply(now, data);
        return this.drop('malformed');
      default:
        return this.drop('malformed', { length: data.length });
    }
  }

  /** Handshake messages waiting for handleHandshakes. */
  get handshakeBacklog(): number {
    return this.hsLen;
  }

  private enqueueHandshake(now: Instant, data: Uint8Array, from: Endpoint): void {
    if (this.hsLen >= this.hsCap) return this.drop('handshakeQueueFull');
    // A copy: 92 or 148 bytes, where a view would pin the whole receive batch's buffer.
    this.hsq[(this.hsHead + this.hsLen) % this.hsCap] = { data: data.slice(), from, at: now };
    if (++this.hsLen > this.stats.handshakeBacklogMax) this.stats.handshakeBacklogMax = this.hsLen;
  }

  /**
   * Processes up to `max` queued handshake messages, oldest first, and returns how many it
   * took off the queue. One that waited longer than `handshakeMaxAge` is dropped
   * ('handshakeStale'): its sender has given up on it.
   */
  handleHandshakes(now: Instant, max = Infinity): number {
    let n = 0;
    while (this.hsLen > 0 && n < max) {
      const e = this.hsq[this.hsHead]!;
      this.hsq[this.hsHead] = undefined;
      this.hsHead = this.hsHead + 1 === this.hsCap ? 0 : this.hsHead + 1;
      this.hsLen--;
      n++;
      if (now - e.at > this.handshakeMaxAge) this.drop('handshakeStale');
      else if (e.data[0] === MSG_INITIATION) this.handleInitiation(now, e.data, e.from);
      else this.handleResponse(now, e.data, e.from);
    }
    return n;
  }

  private handleTransport(now: Instant, data: Uint8Array, from: Endpoint): void {
    const entry = this.index.get(readU32(data, Transport.receiver));
    const kp = entry?.keypair;
    if (!entry || !kp) return this.drop('unknownIndex');
    const peer = entry.peer;
    const counter = readU64(data, Transport.counter);
    if (now - kp.created >= K.REJECT_AFTER_TIME || counter >= K.REJECT_AFTER_MESSAGES) return this.drop('expiredKeypair');
    const ct = data.subarray(TRANSPORT_HEADER_LEN);
    const pt = data.subarray(TRANSPORT_HEADER_LEN, data.length - 16);
    if (!this.crypto.aeadOpen(pt, kp.recv, counter, ct, null)) return this.drop('badAuth');
    if (!kp.replay.accept(counter, K.REJECT_AFTER_MESSAGES)) return this.drop('replay');

    if (kp === peer.next) {
      // §5.4.7: the initiator used the new session; it becomes current.
      if (peer.previous) {
        this.index.delete(peer.previous.localIndex);
        peer.previous.wipe();
      }
      peer.previous = peer.current;
      peer.current = kp;
      peer.next = undefined;
      this.completeHandshake(now, peer);
      this.flushStaged(now, peer);
    }
    this.setEndpoint(peer, from);
    peer.rxBytes += data.length;
    this.timersAnyAuthenticatedPacketReceived(peer);
    this.timersAnyAuthenticatedPacketTraversal(now, peer);
    // §6.2: an initiator whose session is getting old rekeys on receive too.
    if (kp === peer.current && kp.initiator && now - kp.created >= K.REKEY_ON_RECEIVE_AFTER) this.initiateHandshake(now, peer);

    if (pt.length === 0) return; // keepalive
    this.timersDataReceived(now, peer);
    // The inner packet's own length drops the padding (§5.4.6).
    const v = pt[0]! >> 4;
    let len: number;
    let srcOff: number;
    if (v === 4 && pt.length >= 20) {
      len = (pt[2]! << 8) | pt[3]!;
      srcOff = 12;
      if (len < 20) return this.drop('badInnerPacket');
    } else if (v === 6 && pt.length >= 40) {
      len = ((pt[4]! << 8) | pt[5]!) + 40;
      srcOff = 8;
    } else return this.drop('badInnerPacket');
    if (len > pt.length) return this.drop('badInnerPacket');
    // Cryptokey routing on receive (§2): the source must belong to the sending peer.
    if (this.allowedIps.lookup(v === 4 ? 4 : 6, pt, srcOff) !== peer) return this.drop('sourceNotAllowed');
    this.stats.rxPackets++;
    this.stats.rxBytes += len;
    this.rxq.push(pt.subarray(0, len));
  }

  handlePacket(now: Instant, packet: Uint8Array): void {
    const v = packet.length > 0 ? packet[0]! >> 4 : 0;
    let peer: Peer | undefined;
    if (v === 4 && packet.length >= 20) peer = this.allowedIps.lookup(4, packet, 16);
    else if (v === 6 && packet.length >= 40) peer = this.allowedIps.lookup(6, packet, 24);
    else return this.drop('badInnerPacket');
    if (!peer) return this.drop('noRoute');
    if (!peer.endpoint) return this.drop('noEndpoint');
    const kp = peer.current;
    if (!kp || !this.usable(now, kp)) {
      this.stage(peer, packet);
      this.initiateHandshake(now, peer);
      return;
    }
    this.encrypt(now, peer, kp, packet);
  }

  private usable(now: Instant, kp: Keypair): boolean {
    return now - kp.created < K.REJECT_AFTER_TIME && kp.sendCounter < K.REJECT_AFTER_MESSAGES;
  }

  private stage(peer: Peer, packet: Uint8Array): void {
    if (peer.staged.length >= K.MAX_STAGED_PACKETS) {
      peer.staged.shift();
      this.drop('stagedOverflow');
    }
    peer.staged.push(packet);
  }

  /** Sends what waited for the handshake; false if nothing did. */
  private flushStaged(now: Instant, peer: Peer): boolean {
    const kp = peer.current;
    if (!kp || peer.staged.length === 0) return false;
    const staged = peer.staged;
    peer.staged = [];
    for (const p of staged) this.encrypt(now, peer, kp, p);
    return true;
  }

  private sendKeepalive(now: Instant, peer: Peer): void {
    const kp = peer.current;
    if (!kp || !this.usable(now, kp)) {
      this.initiateHandshake(now, peer);
      return;
    }
    this.encrypt(now, peer, kp, EMPTY);
  }

  /**
   * Transport data (§5.4.6): header, counter, the packet padded to a multiple of
   * 16, sealed. In place when the packet's buffer has the room, else one copy.
   */
  private encrypt(now: Instant, peer: Peer, kp: Keypair, packet: Uint8Array): void {
    const len = packet.length;
    const padded = (len + 15) & ~15;
    const total = TRANSPORT_HEADER_LEN + padded + 16;
    let msg: Uint8Array;
    let body: Uint8Array;
    if (len > 0 && headroomOf(packet) >= WG_HEADROOM && tailroomOf(packet) >= padded - len + 16) {
      msg = new Uint8Array(packet.buffer, packet.byteOffset - WG_HEADROOM, total);
      body = msg.subarray(TRANSPORT_HEADER_LEN, TRANSPORT_HEADER_LEN + padded);
    } else {
      msg = new Uint8Array(total);
      body = msg.subarray(TRANSPORT_HEADER_LEN, TRANSPORT_HEADER_LEN + padded);
      body.set(packet);
    }
    body.fill(0, len);
    writeHeader(msg, MSG_TRANSPORT);
    writeU32(msg, Transport.receiver, kp.remoteIndex);
    const counter = kp.sendCounter++;
    writeU64(msg, Transport.counter, counter);
    this.crypto.aeadSeal(msg.subarray(TRANSPORT_HEADER_LEN), kp.send, counter, body, null);
    this.send(peer, msg);
    if (len > 0) {
      this.stats.txPackets++;
      this.stats.txBytes += len;
      this.timersDataSent(now, peer);
    }
    this.timersAnyAuthenticatedPacketSent(peer);
    this.timersAnyAuthenticatedPacketTraversal(now, peer);
    // §6.2: the initiator rekeys after RekeyAfterTime or RekeyAfterMessages.
    if (kp.initiator && (now - kp.created >= K.REKEY_AFTER_TIME || counter >= K.REKEY_AFTER_MESSAGES)) this.initiateHandshake(now, peer);
  }
}

const EMPTY = new Uint8Array(0);
function lowOrder(pk: Uint8Array): WgnetError {
  return new WgnetError('ERR_WGNET_INVALID_KEY', `peer ${keyId(pk)}: the public key is a low-order point (no shared secret is possible)`);
}
