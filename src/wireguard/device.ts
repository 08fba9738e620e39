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

export { Peer, type Endpoint, type PeerConfig } from './peer.js';

export interface DeviceOptions {
  privateKey?: Uint8Array;
  crypto: CryptoProvider;
  rng: Rng;
  wallClock: () => number;
  trace?: Trace;
  /**
   * Handshake messages per second above which the device counts as under load
   * and demands cookies (§5.3). wireguard-go uses its queue length; a sans-IO
   * core sees a rate instead. Default 100.
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
  | 'stagedOverflow';

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
  dropped: Record<DropReason, number>;
}

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
  private readonly underLoadRate: number;
  private loadWindowStart = -NEVER;
  private loadCount = 0;
  private underLoadUntil = -NEVER;
  private anyReserved = false;
  private txq: { to: Endpoint; data: Uint8Array }[] = [];
  private txHead = 0;
  private rxq: Uint8Array[] = [];
  private rxHead = 0;
  private events: DeviceEvent[] = [];
  private deadlineDirty = true;
  private cachedDeadline: Deadline | undefined;

  constructor(opts: DeviceOptions) {
    this.crypto = opts.crypto;
    this.rng = opts.rng;
    this.wallClock = opts.wallClock;
    this.trace = opts.trace ?? noTrace;
    this.underLoadRate = opts.underLoadRate ?? 100;
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

  /** Throws what addPeer throws for a key no peer can have (wrong length, a low-order point), adding nothing. */
  checkPeerKey(publicKey: Uint8Array): void {
    if (publicKey.length !== 32) throw new WgnetError('ERR_WGNET_INVALID_KEY', 'peer public key: expected 32 bytes');
    const probe = new Uint8Array(32);
    if (!this.crypto.x25519(probe, this.priv ?? ONE_SCALAR, publicKey)) {
      throw new WgnetError('ERR_WGNET_INVALID_KEY', `peer ${keyId(publicKey)}: the public key is a low-order point (no shared secret is possible)`);
    }
  }

  addPeer(cfg: PeerConfig): Peer {
    const id = keyId(cfg.publicKey);
    if (cfg.publicKey.length !== 32) throw new WgnetError('ERR_WGNET_INVALID_KEY', 'peer public key: expected 32 bytes');
    if (this.peerMap.has(id)) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `peer ${id} is already configured`);
    if (this.pub && equalBytes(this.pub, cfg.publicKey)) throw new WgnetError('ERR_WGNET_INVALID_KEY', `peer ${id} has this device's own public key`);
    this.checkPeerKey(cfg.publicKey);
    const peer = new Peer(new Uint8Array(cfg.publicKey), this.crypto);
    peer.ss = this.computeSs(peer.publicKey);
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
      if (v === 0) peer.tPersistent = NEVER;
      this.deadlineDirty = true;
    }
    if (cfg.reserved !== undefined) {
      if (cfg.reserved && cfg.reserved.length !== 3) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', 'reserved: expected exactly 3 bytes');
      peer.reserved = cfg.reserved && !isZero(cfg.reserved) ? new Uint8Array(cfg.reserved) : undefined;
      this.anyReserved = [...this.peerMap.values()].some((p) => p.reserved);
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
    this.allowedIps.removeByValue(peer);
    this.peerMap.delete(id);
    peer.ss?.fill(0);
    this.deadlineDirty = true;
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
    peer.tRetransmit = peer.tSendKeepalive = peer.tNewHandshake = peer.tZeroKeys = NEVER;
    peer.attempts = 0;
    this.deadlineDirty = true;
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
    return this.events.shift();
  }

  pollTimeout(): Deadline | undefined {
    if (this.deadlineDirty) {
      this.deadlineDirty = false;
      let at = NEVER;
      for (const p of this.peerMap.values()) at = Math.min(at, p.earliest());
      const lc = this.limiter.nextCollect();
      if (lc !== undefined) at = Math.min(at, lc);
      this.cachedDeadline = at === NEVER ? undefined : { at, reason: 'wireguard timers' };
    }
    return this.cachedDeadline;
  }

  private setTimer(peer: Peer, which: 'tRetransmit' | 'tSendKeepalive' | 'tNewHandshake' | 'tZeroKeys' | 'tPersistent', at: number): void {
    peer[which] = at;
    if (this.cachedDeadline === undefined || at < this.cachedDeadline.at || at === NEVER) this.deadlineDirty = true;
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

  // --- timers ------------------------------------------------------------------

  handleTimeout(now: Instant): void {
    for (const peer of [...this.peerMap.values()]) {
      if (peer.earliest() > now) continue;
      // Zeroing first: when timers run late (suspend, clock jump) it may be due together with a
      // handshake retry, and it must not forget a handshake sent in this same run (found by test/fuzz).
      if (peer.tZeroKeys <= now) {
        peer.tZeroKeys = NEVER;
        const staged = peer.staged;
        const handshaking = peer.pending !== undefined;
        this.clearSessions(peer);
        peer.staged = staged;
        if (handshaking || staged.length > 0) this.sendInitiation(now, peer, true);
      }
      if (peer.tRetransmit <= now) {
        peer.tRetransmit = NEVER;
        if (peer.attempts >= K.MAX_TIMER_HANDSHAKES) {
          // §6.4: give up after RekeyAttemptTime; packets waiting are dropped.
          this.stats.dropped.stagedOverflow = (this.stats.dropped.stagedOverflow ?? 0) + peer.staged.length;
          peer.staged = [];
          if (peer.pending) this.index.delete(peer.pending.localIndex);
          peer.pending = undefined;
          peer.attempts = 0;
          if (peer.tZeroKeys === NEVER) peer.tZeroKeys = now + K.ZERO_KEYS_AFTER;
          this.events.push({ type: 'handshake-failed', peer });
        } else {
          peer.attempts++;
          this.sendInitiation(now, peer, true);
        }
      }
      if (peer.tSendKeepalive <= now) {
        peer.tSendKeepalive = NEVER;
        this.sendKeepalive(now, peer);
      }
      if (peer.tNewHandshake <= now) {
        // §6.2: data was sent and nothing came back for KeepaliveTimeout + RekeyTimeout.
        peer.tNewHandshake = NEVER;
        this.initiateHandshake(now, peer);
      }
      if (peer.tPersistent <= now) {
        peer.tPersistent = NEVER;
        if (peer.persistentKeepalive > 0) this.sendKeepalive(now, peer);
      }
    }
    this.limiter.collect(now);
    this.deadlineDirty = true;
  }

  /** Any authenticated packet sent or received resets the persistent keepalive (§6.5). */
  private traversal(now: Instant, peer: Peer): void {
    if (peer.persistentKeepalive > 0) this.setTimer(peer, 'tPersistent', now + peer.persistentKeepalive * 1000);
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
    this.traversal(now, peer);
    // §6.1: retry after RekeyTimeout plus jitter.
    this.setTimer(peer, 'tRetransmit', now + K.REKEY_TIMEOUT + randomInt(this.rng, K.REKEY_TIMEOUT_JITTER_MAX + 1));
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

  private isUnderLoad(now: Instant): boolean {
    if (now - this.loadWindowStart >= 1000) {
      this.loadWindowStart = now;
      this.loadCount = 0;
    }
    if (++this.loadCount > this.underLoadRate) this.underLoadUntil = now + 1000;
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
        this.deadlineDirty = true;
        return false;
      }
      this.deadlineDirty = true;
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
    this.traversal(now, peer);
    this.setTimer(peer, 'tZeroKeys', now + K.ZERO_KEYS_AFTER);
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
    this.handshakeComplete(now, peer);
    this.traversal(now, peer);
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

  private handshakeComplete(now: Instant, peer: Peer): void {
    peer.attempts = 0;
    this.setTimer(peer, 'tRetransmit', NEVER);
    peer.lastHandshakeWallMs = this.wallClock();
    this.setTimer(peer, 'tZeroKeys', now + K.ZERO_KEYS_AFTER);
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

  handleDatagram(now: Instant, data: Uint8Array, from: Endpoint): void {
    this.stats.rxDatagrams++;
    // sing-box/WARP peers put their own bytes in the reserved field (§5.4 says zero).
    if (this.anyReserved && data.length >= 4) {
      data[1] = 0;
      data[2] = 0;
      data[3] = 0;
    }
    switch (messageType(data)) {
      case MSG_TRANSPORT:
        return this.handleTransport(now, data, from);
      case MSG_INITIATION:
        return this.handleInitiation(now, data, from);
      case MSG_RESPONSE:
        return this.handleResponse(now, data, from);
      case MSG_COOKIE_REPLY:
        if (data.length === COOKIE_REPLY_LEN) return this.handleCookieReply(now, data);
        return this.drop('malformed');
      default:
        return this.drop('malformed', { length: data.length });
    }
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
      this.handshakeComplete(now, peer);
      this.flushStaged(now, peer);
    }
    this.setEndpoint(peer, from);
    peer.rxBytes += data.length;
    this.setTimer(peer, 'tNewHandshake', NEVER);
    this.traversal(now, peer);
    // §6.2: an initiator whose session is getting old rekeys on receive too.
    if (kp === peer.current && kp.initiator && now - kp.created >= K.REKEY_ON_RECEIVE_AFTER) this.initiateHandshake(now, peer);

    if (pt.length === 0) return; // keepalive
    if (peer.tSendKeepalive === NEVER) this.setTimer(peer, 'tSendKeepalive', now + K.KEEPALIVE_TIMEOUT);
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
      if (peer.tNewHandshake === NEVER) this.setTimer(peer, 'tNewHandshake', now + K.KEEPALIVE_TIMEOUT + K.REKEY_TIMEOUT);
    }
    if (peer.tSendKeepalive !== NEVER) this.setTimer(peer, 'tSendKeepalive', NEVER);
    this.traversal(now, peer);
    // §6.2: the initiator rekeys after RekeyAfterTime or RekeyAfterMessages.
    if (kp.initiator && (now - kp.created >= K.REKEY_AFTER_TIME || counter >= K.REKEY_AFTER_MESSAGES)) this.initiateHandshake(now, peer);
  }
}

const EMPTY = new Uint8Array(0);
/** Any nonzero scalar works to probe whether a public key is low-order. */
const ONE_SCALAR = (() => {
  const s = new Uint8Array(32);
  s[0] = 8;
  s[31] = 64;
  return s;
})();
