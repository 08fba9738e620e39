/**
 * TCP's counters: one list of names, so a misspelled name fails to compile (DESIGN §6),
 * and a snapshot with every counter present (0 until counted). Names starting with
 * `drop.` count segments dropped without effect, as the Interface's counters do.
 */
import { zeroCounters } from '../../util/counters.js';

const TCP_COUNTERS = [
  'rxSegments',
  'txSegments',
  'txRst',
  'rstNoConnection',
  'rstReceived',
  'challengeAcks',
  'challengeAckLimited',
  'timeWaitReused',
  'synCookiesSent',
  'synCookiesAccepted',
  /** SYN cookies sent because the SYN's peer held its share of the listener's SYN queue (also in synCookiesSent). */
  'synCookiesPerPeer',
  'oooSegments',
  'dsackSent',
  'dsackReceived',
  'fastRetransmits',
  'lostRetransmits',
  'spuriousRecoveries',
  'reorderingSeen',
  'tailLossProbes',
  'rtoExpired',
  'hystartExits',
  'pawsDisorderedAcks',
  'drop.short',
  'drop.checksum',
  'drop.header',
  'drop.flags',
  'drop.listenNoSyn',
  'drop.acceptQueueFull',
  'drop.connectionsPerPeer',
  'drop.paws',
  'drop.outOfWindow',
  'drop.rstOutOfWindow',
  'drop.noAck',
  'drop.synSentBadAck',
  'drop.ackUnsent',
  'drop.dataAfterFin',
  'drop.oooRanges',
  'drop.sackRanges',
  'drop.icmpSeq',
] as const;

export type TcpCounter = (typeof TCP_COUNTERS)[number];
/**
 * A segment dropped without effect (`drop.*`), or one for no connection answered with RST:
 * counted and traced at debug through TcpLayer.drop (DESIGN §5), never through count().
 */
export type TcpDrop = Extract<TcpCounter, `drop.${string}`> | 'rstNoConnection';
export type TcpStats = Record<TcpCounter, number>;

/** Every counter at 0: an object of one fixed shape, so counting is a plain property store. */
export function newTcpStats(): TcpStats {
  return zeroCounters(TCP_COUNTERS);
}
