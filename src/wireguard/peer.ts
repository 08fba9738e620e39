/**
 * A peer (whitepaper §2: a public key, its endpoint and allowed IPs) and its
 * sessions' keypairs (§5.4.6): the state the Device keeps per peer, with the
 * §6 timers stored as deadlines. The Device's methods drive it.
 */
import type { CryptoProvider } from '../crypto/provider.js';
import type { Instant } from '../util/time.js';
import { toBase64 } from '../util/bytes.js';
import type { IpPrefix } from '../util/ip.js';
import { ReplayWindow } from './replay.js';
import { CookieGenerator } from './cookie.js';
import type { InitiatorState } from './noise.js';
import { NEVER, noPeerTimers, type PeerTimers } from './timers.js';

export { NEVER } from './timers.js';

export interface Endpoint {
  address: string; // textual IP as node:dgram reports it (IPv6 without brackets)
  port: number;
}

export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  allowedIps?: IpPrefix[];
  persistentKeepalive?: number;
  reserved?: Uint8Array;
}

/** One session's keys (§5.4.6). */
export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  constructor(
    readonly send: Uint8Array,
    readonly recv: Uint8Array,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly created: Instant,
    readonly initiator: boolean,
  ) {}
  /** Session keys never reach logs (DESIGN §5). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Keypair(${this.localIndex})`;
  }
  toJSON(): string {
    return `Keypair(${this.localIndex})`;
  }
  wipe(): void {
    this.send.fill(0);
    this.recv.fill(0);
  }
}

/** What a receiver index (§5.4.2) stands for. */
export interface IndexEntry {
  peer: Peer;
  keypair: Keypair | undefined; // undefined: a handshake we initiated
}

export class Peer {
  readonly publicKey: Uint8Array;
  presharedKey: Uint8Array | undefined;
  endpoint: Endpoint | undefined;
  persistentKeepalive = 0;
  reserved: Uint8Array | undefined;
  lastHandshakeWallMs = 0;
  txBytes = 0;
  rxBytes = 0;

  /** @internal DH(S_us, S_peer), the same for every handshake. */ ss: Uint8Array | undefined;
  /** @internal */ cookie: CookieGenerator;
  /** @internal */ pending: { state: InitiatorState; localIndex: number } | undefined;
  /** @internal */ lastTimestamp: Uint8Array | undefined;
  /** @internal */ lastInitiationConsumed = -NEVER;
  /** @internal */ lastSentHandshake = -NEVER;
  /** @internal */ current: Keypair | undefined;
  /** @internal */ previous: Keypair | undefined;
  /** @internal */ next: Keypair | undefined;
  /** @internal */ staged: Uint8Array[] = [];
  /** @internal */ attempts = 0;
  /** @internal The §6 timers as deadlines in `now` units, NEVER when off; written only through the hooks in peer-timers.ts. */
  readonly timers: PeerTimers = noPeerTimers();
  /** @internal Their entries in the Device's timer heap (timers.ts). */
  readonly queued: PeerTimers = noPeerTimers();

  constructor(publicKey: Uint8Array, crypto: CryptoProvider) {
    this.publicKey = publicKey;
    this.cookie = new CookieGenerator(crypto, publicKey);
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Peer(${toBase64(this.publicKey)})`;
  }
}

