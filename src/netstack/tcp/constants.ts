/**
 * TCP constants in one place, each with where its value comes from, and the layer's
 * options. Nothing here has state.
 */
import type { Rng } from '../../util/rng.js';
import type { Trace } from '../../util/trace.js';
import type { IpAddr } from '../../util/ip.js';
import type { PeerOf } from '../types.js';

export interface TcpOptions {
  rng: Rng;
  trace: Trace;
  mtu: number;
  isLocal: (addr: IpAddr) => boolean;
  sourceFor: (dst: IpAddr) => IpAddr | undefined;
  /** Bytes the send buffer may hold (default 4 MiB). */
  sendBufferMax: number;
  /** Bytes the receive buffer may hold; also the largest window advertised (default 4 MiB). */
  recvBufferMax: number;
  /** 'bbr' (bbr.ts, paced; the default), 'cubic' (RFC 9438) or 'newreno' (RFC 5681/6582). */
  congestionControl: 'bbr' | 'cubic' | 'newreno';
  /** TIME-WAIT length; 2×MSL in RFC 9293, shortened here (default 2 s). */
  timeWaitMs: number;
  synRetries: number;
  /** Data retransmissions before the connection fails with ETIMEDOUT (RFC 1122 R2: at least 100 s). */
  maxRetries: number;
  delayedAckMs: number;
  keepaliveIntervalMs: number;
  keepaliveProbes: number;
  defaultBacklog: number;
  /**
   * Connections that one peer may hold at once through our listeners, from its SYN until
   * the connection is gone or in TIME-WAIT (default 4096). Past it the peer's new SYNs are
   * dropped unanswered and counted (`drop.connectionsPerPeer`); its client retries the SYN
   * (RFC 9293 §3.8.1) and gets in once one of its connections closes. Other peers are not
   * affected. Infinity turns the cap off. Connections we open, and gateway flows (which the
   * gateway caps per peer itself), do not count.
   */
  maxConnectionsPerPeer: number;
  /**
   * Half-open connections (SYN-RECEIVED) that one peer may hold in one listener's SYN queue.
   * Past it that peer's SYNs are answered with SYN cookies (RFC 4987 §3.6), counted
   * `synCookiesPerPeer`, while other peers still get full SYN-RECEIVED state, with window
   * scaling and SACK. Absent: synQueueShare() (a quarter of the listener's backlog).
   * Infinity turns the share off (the queue is then shared first come, first served).
   */
  maxSynQueuePerPeer?: number;
  /** The peer a remote address belongs to (types.ts); absent or undefined: each address is its own peer. */
  peerOf?: PeerOf;
}

/**
 * Default of TcpOptions.maxConnectionsPerPeer. A peer is a WireGuard peer: one client host,
 * or a site behind it. 4096 is more than a browser or a connection pool opens to one server
 * (Chrome: 6 per host, 256 in all) and 32 times a listener's default backlog, while what a
 * hostile peer can pin is bounded by the peer instead of by the process's memory (issue 18
 * measured ~2.5 KB per connection in SYN-RECEIVED; 4096 of them are ~10 MB).
 */
export const DEFAULT_MAX_CONNECTIONS_PER_PEER = 4096;

/**
 * A peer's share of a listener's SYN queue: `maxSynQueuePerPeer` when set, else a quarter of
 * the backlog, at least 1 (32 of the default 128). Why a quarter: a peer is one client or one
 * site behind it, whose handshakes complete within a round trip, so even a burst (a browser
 * opens 6 connections per host, a pool a few dozen) stays under it; one hostile peer, however
 * fast it sends SYNs, leaves three quarters of the queue to everyone else; and the share scales
 * with a backlog the application chose, where a fixed number would be all of a small queue.
 * A peer past its share still connects, through cookies, losing only what a cookie cannot
 * carry (window scaling, SACK, timestamps).
 */
export function synQueueShare(backlog: number, maxSynQueuePerPeer: number | undefined): number {
  return maxSynQueuePerPeer ?? Math.max(1, Math.ceil(backlog / 4));
}

export const IP4_TCP = 40; // IPv4 + TCP header bytes
export const IP6_TCP = 60;
/** RFC 9293 §3.7.1: the MSS assumed when a SYN carries none. */
export const DEFAULT_MSS = 536;
export const MIN_RTO = 200; // Linux's floor; RFC 6298 says 1 s, which stalls short transfers
export const MAX_RTO = 60_000;
export const INITIAL_RTO = 1_000;
export const OUR_WSCALE = 7; // 65535 << 7 = 8 MiB: room for the 4 MiB default buffer
export const MAX_SACK_BLOCKS = 3; // with timestamps: 40 bytes of options
/** The timestamps option (RFC 7323 §3) as sent in every segment once agreed: 10 bytes + 2 NOPs. */
export const TS_OPTION_LEN = 12;
/**
 * RFC 5681 §3.2 / RFC 6675 §2 DupThresh: three duplicate ACKs, or more than
 * (DupThresh - 1) × SMSS bytes SACKed above a hole (RFC 6675 §4 IsLost), mean loss.
 */
export const DUP_THRESH = 3;
/** Retransmissions of one recovery tracked for undo; a bigger episode is not undone. */
export const MAX_UNDO_TRACKED = 64;
/**
 * Ranges in a scoreboard or an out-of-order map. Real losses make a few holes per window;
 * a peer that SACKs or sends thousands of scattered fragments would make every ACK cost a
 * walk over them, so beyond this new ranges are ignored (and counted).
 */
export const MAX_RANGES = 256;
export const CHALLENGE_ACKS_PER_SEC = 10; // RFC 5961 §7 (per connection here)
export const NEVER = Infinity;

/** How long drained send/receive buffers are kept for reuse before their memory is freed. */
export const TRIM_MS = 1000;
