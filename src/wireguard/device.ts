/**
 * The sans-IO WireGuard device (DESIGN §2): datagrams and IP packets in,
 * datagrams and IP packets out, `now` passed in, timers stored as deadlines.
 *
 * Cryptokey routing (whitepaper §2) and transport data (§5.4.6) live here, with the
 * configuration and the sans-IO outputs. Elsewhere, one file per job: the handshake
 * messages and the §5.3 defences in handshake.ts, the §6 timers in peer-timers.ts (the
 * heap that stores them in timers.ts), per-peer state and keypairs in peer.ts, the Noise
 * steps in noise.ts, macs and cookies in cookie.ts.
 * Nothing from the network ever throws: it is dropped and counted in `stats`.
 */
import type { CryptoProvider } from '../crypto/provider.js';
import type { Rng } from '../util/rng.js';
import type { Deadline, Instant } from '../util/time.js';
import { noTrace, type Trace } from '../util/trace.js';
import { WgnetError } from '../util/errors.js';
import { equalBytes, isZero, toBase64, headroomOf, tailroomOf, WG_HEADROOM } from '../util/bytes.js';
import { isLowOrderPoint } from '../crypto/keys.js';
import {
  COOKIE_REPLY_LEN,
  messageType,
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  MSG_TRANSPORT,
  readU32,
  readU64,
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
import { Keypair, NEVER, Peer, type Endpoint, type IndexEntry, type PeerConfig } from './peer.js';
import { PeerTimerHeap, TIMER_REASON } from './timers.js';
import {
  expireTimers,
  timersAnyAuthenticatedPacketReceived,
  timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal,
  timersDataReceived,
  timersDataSent,
  timersPersistentKeepaliveOff,
  timersSessionsCleared,
  timersStop,
} from './peer-timers.js';
import { completeHandshake, enqueueHandshake, handleCookieReply, handleHandshakes, HandshakeQueue, initiateHandshake } from './handshake.js';

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

const keyId = (k: Uint8Array): string => toBase64(k);

export class Device {
  readonly allowedIps = new AllowedIps<Peer>();
  readonly stats: DeviceStats;
  // Shared with handshake.ts and peer-timers.ts, not part of the API.
  /** @internal */ readonly crypto: CryptoProvider;
  /** @internal */ readonly rng: Rng;
  /** @internal */ readonly wallClock: () => number;
  /** @internal What each receiver index (§5.4.2) stands for: a session or a handshake we initiated. */
  readonly index = new Map<number, IndexEntry>();
  /** @internal */ readonly checker: CookieChecker;
  /** @internal */ readonly limiter = new HandshakeRateLimiter();
  /** @internal Handshake messages waiting for handleHandshakes (handshake.ts). */
  readonly handshakes: HandshakeQueue;
  private readonly trace: Trace;
  private priv: Uint8Array | undefined;
  private pub: Uint8Array | undefined;
  private readonly peerMap = new Map<string, Peer>();
  /** @internal Every peer's §6 timers; written only by the timers* hooks of peer-timers.ts. */
  readonly timers = new PeerTimerHeap<Peer>(this.peerMap);
  /** Peers with `reserved` bytes: while any, every datagram's reserved field is zeroed first. */
  private reservedPeers = 0;
  /*
   * The output queues: entries [head, len) are waiting. The arrays are kept, each slot cleared
   * as it is taken (no packet stays referenced), rather than replaced by a new array once
   * drained: the engine drains them after every datagram, and a fresh array and its backing
   * store per drain were a tenth of what a ping round trip allocated.
   */
  private readonly txq: ({ to: Endpoint; data: Uint8Array } | undefined)[] = [];
  private txHead = 0;
  private txLen = 0;
  private readonly rxq: (Uint8Array | undefined)[] = [];
  private rxHead = 0;
  private rxLen = 0;
  private events: DeviceEvent[] = [];
  private eventHead = 0;
  private cachedDeadline: Deadline | undefined;

  constructor(opts: DeviceOptions) {
    this.crypto = opts.crypto;
    this.rng = opts.rng;
    this.wallClock = opts.wallClock;
    this.trace = opts.trace ?? noTrace;
    this.handshakes = new HandshakeQueue(opts.handshakeQueueLength ?? 1024, opts.handshakeMaxAge ?? K.REKEY_TIMEOUT, opts.underLoadBacklog ?? 128, opts.underLoadRate);
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
      if (v === 0) timersPersistentKeepaliveOff(this, peer);
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
    timersStop(this, peer);
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

  /** @internal Drops every session and handshake of `peer`, and their timers. */
  clearSessions(peer: Peer): void {
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
    timersSessionsCleared(this, peer);
  }

  // --- sans-IO outputs -------------------------------------------------------

  pollTransmit(): { to: Endpoint; data: Uint8Array } | undefined {
    if (this.txHead < this.txLen) {
      const d = this.txq[this.txHead];
      this.txq[this.txHead++] = undefined;
      return d;
    }
    this.txHead = this.txLen = 0;
    return undefined;
  }

  pollPacket(): Uint8Array | undefined {
    if (this.rxHead < this.rxLen) {
      const p = this.rxq[this.rxHead];
      this.rxq[this.rxHead++] = undefined;
      return p;
    }
    this.rxHead = this.rxLen = 0;
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

  /**
   * An instant before which nothing of this device is due: pollTimeout() is never earlier, and
   * right after handleTimeout the two are equal (it fixes up the timer heap's top). O(1) and
   * allocation-free (no heap fix-up, no Deadline): a driver that re-arms after every batch of
   * packets arms at this (io/engine) and at worst wakes early once, runs handleTimeout, and
   * finds the exact deadline there.
   */
  deadlineBound(): Instant {
    const at = this.timers.lowerBound();
    const lc = this.limiter.nextCollect();
    return lc !== undefined && lc < at ? lc : at;
  }

  /** Timer-heap entries held (tests: bounded by the peers, not by the packets). */
  get timerEntries(): number {
    return this.timers.size;
  }

  /** @internal Counts (and traces) a datagram or packet dropped: never a throw on network input (DESIGN §5). */
  drop(reason: DropReason, detail?: Record<string, unknown>): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
    if (this.trace.enabled('debug')) this.trace.log('debug', `drop ${reason}`, detail);
  }

  /** @internal */
  send(peer: Peer, data: Uint8Array, to: Endpoint | undefined = peer.endpoint): void {
    if (!to) return;
    if (peer.reserved) data.set(peer.reserved, 1);
    this.txq[this.txLen++] = { to, data };
    this.stats.txDatagrams++;
    peer.txBytes += data.length;
  }

  /** @internal A cookie reply (§5.4.7) goes back to the datagram's source, which may be no peer's. */
  sendCookieReply(to: Endpoint, data: Uint8Array): void {
    this.txq[this.txLen++] = { to, data };
    this.stats.txDatagrams++;
    this.stats.cookieRepliesSent++;
  }

  /** @internal */
  emit(ev: DeviceEvent): void {
    this.events.push(ev);
  }

  /** Runs every deadline at or before `now`: the peers' §6 timers (peer-timers.ts), the rate limiter's sweep. */
  handleTimeout(now: Instant): void {
    expireTimers(this, now);
    const lc = this.limiter.nextCollect();
    if (lc !== undefined && lc <= now) this.limiter.collect(now);
  }

  // --- handshake (handshake.ts) -----------------------------------------------------

  /** Starts a handshake unless one was sent less than RekeyTimeout ago (§6.1). */
  initiateHandshake(now: Instant, peer: Peer): void {
    initiateHandshake(this, now, peer);
  }

  /** @internal */
  setEndpoint(peer: Peer, from: Endpoint): void {
    const e = peer.endpoint;
    if (e && e.port === from.port && e.address === from.address) return;
    peer.endpoint = { address: from.address, port: from.port };
    if (e) this.emit({ type: 'endpoint-changed', peer });
  }

  // --- data path ---------------------------------------------------------------

  /**
   * A datagram handled completely before this returns, handshakes included: the plain
   * sans-IO form (tests, simulators). An I/O loop uses receiveDatagram + handleHandshakes.
   */
  handleDatagram(now: Instant, data: Uint8Array, from: Endpoint): void {
    this.receiveDatagram(now, data, from);
    if (this.handshakes.length > 0) this.handleHandshakes(now);
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
        return enqueueHandshake(this, now, data, from);
      case MSG_COOKIE_REPLY:
        if (data.length === COOKIE_REPLY_LEN) return handleCookieReply(this, now, data);
        return this.drop('malformed');
      default:
        return this.drop('malformed', { length: data.length });
    }
  }

  /** Handshake messages waiting for handleHandshakes. */
  get handshakeBacklog(): number {
    return this.handshakes.length;
  }

  /**
   * Processes up to `max` queued handshake messages, oldest first, and returns how many it
   * took off the queue. One that waited longer than `handshakeMaxAge` is dropped
   * ('handshakeStale'): its sender has given up on it.
   */
  handleHandshakes(now: Instant, max = Infinity): number {
    return handleHandshakes(this, now, max);
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
      // §5.4.6: the initiator used the new session (key confirmation); it becomes current.
      if (peer.previous) {
        this.index.delete(peer.previous.localIndex);
        peer.previous.wipe();
      }
      peer.previous = peer.current;
      peer.current = kp;
      peer.next = undefined;
      completeHandshake(this, now, peer);
      this.flushStaged(now, peer);
    }
    this.setEndpoint(peer, from);
    peer.rxBytes += data.length;
    timersAnyAuthenticatedPacketReceived(this, peer);
    timersAnyAuthenticatedPacketTraversal(this, now, peer);
    // §6.2: an initiator whose session is getting old rekeys on receive too.
    if (kp === peer.current && kp.initiator && now - kp.created >= K.REKEY_ON_RECEIVE_AFTER) this.initiateHandshake(now, peer);

    if (pt.length === 0) return; // keepalive
    timersDataReceived(this, now, peer);
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
    // A view into the datagram, whose padding and tag after the packet are the room encrypt()
    // needs to send it on in place (gateway routing). A sender that padded less than §5.4.6's
    // multiple of 16 leaves less, and the buffer past the datagram is the next datagram of the
    // batch: such a packet is copied, so nothing ever writes past its own datagram.
    this.rxq[this.rxLen++] = pt.length >= ((len + 15) & ~15) ? pt.subarray(0, len) : pt.slice(0, len);
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

  /** @internal Sends what waited for the handshake; false if nothing did. */
  flushStaged(now: Instant, peer: Peer): boolean {
    const kp = peer.current;
    if (!kp || peer.staged.length === 0) return false;
    const staged = peer.staged;
    peer.staged = [];
    for (const p of staged) this.encrypt(now, peer, kp, p);
    return true;
  }

  /** @internal A keepalive (§6.5): transport data with an empty payload, or a handshake if no session can carry it. */
  sendKeepalive(now: Instant, peer: Peer): void {
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
      timersDataSent(this, now, peer);
    }
    timersAnyAuthenticatedPacketSent(this, peer);
    timersAnyAuthenticatedPacketTraversal(this, now, peer);
    // §6.2: the initiator rekeys after RekeyAfterTime or RekeyAfterMessages.
    if (kp.initiator && (now - kp.created >= K.REKEY_AFTER_TIME || counter >= K.REKEY_AFTER_MESSAGES)) this.initiateHandshake(now, peer);
  }
}

const EMPTY = new Uint8Array(0);
function lowOrder(pk: Uint8Array): WgnetError {
  return new WgnetError('ERR_WGNET_INVALID_KEY', `peer ${keyId(pk)}: the public key is a low-order point (no shared secret is possible)`);
}
