/**
 * Every peer's §6 timers in one binary min-heap (util/heap.ts, as netstack/tcp/timers.ts), so
 * the Device finds its next deadline and its due peers in O(log n) with 50,000 peers, not
 * with a walk over all of them after every batch of packets.
 *
 * The five timers are wireguard-go's (timers.go): retransmitHandshake, sendKeepalive,
 * newHandshake, zeroKeyMaterial, persistentKeepalive. Each peer stores its deadlines in
 * `timers` (NEVER when off); every write goes through `arm` / `cancel` / `cancelAll`,
 * which only the wireguard-go-named hooks of peer-timers.ts call (the §6 rules live there).
 *
 * Lazy in both directions, so the data path costs a field write per packet:
 * - an entry is the one the heap holds for its (peer, timer) while `queued[t] === at`;
 *   an older one left by an earlier `arm` is skipped when it surfaces;
 * - a deadline moved later (the persistent keepalive moves on every packet) keeps its
 *   earlier entry: when that surfaces, the entry is pushed again at the real deadline.
 *   A cancelled one is dropped when it surfaces.
 * Invariant: a timer that is on has `queued[t] <= timers[t]` and a heap entry at `queued[t]`.
 */
import { MinHeap } from '../util/heap.js';

/** A timer that is off. */
export const NEVER = Infinity;

export type PeerTimer = 'retransmitHandshake' | 'sendKeepalive' | 'newHandshake' | 'zeroKeyMaterial' | 'persistentKeepalive';
export type PeerTimers = Record<PeerTimer, number>;

export const PEER_TIMERS: readonly PeerTimer[] = ['retransmitHandshake', 'sendKeepalive', 'newHandshake', 'zeroKeyMaterial', 'persistentKeepalive'];

/** Deadline reasons, made once: pollTimeout runs after every batch of packets. */
export const TIMER_REASON: Record<PeerTimer, string> = {
  retransmitHandshake: 'wireguard retransmit handshake',
  sendKeepalive: 'wireguard keepalive',
  newHandshake: 'wireguard new handshake',
  zeroKeyMaterial: 'wireguard zero key material',
  persistentKeepalive: 'wireguard persistent keepalive',
};

export function noPeerTimers(): PeerTimers {
  return { retransmitHandshake: NEVER, sendKeepalive: NEVER, newHandshake: NEVER, zeroKeyMaterial: NEVER, persistentKeepalive: NEVER };
}

export interface PeerTimed {
  /** The deadlines, NEVER when off. */
  readonly timers: PeerTimers;
  /** @internal the deadline of the heap entry that stands for each timer, NEVER if none. */
  readonly queued: PeerTimers;
}

/*
 * A timer's field by name. arm() and cancel() run for several timers on every packet, and
 * `timers[t]` with `t` varying makes a keyed access whose inline cache goes megamorphic
 * (a hash lookup of the name each time, ~10x a field access, measured); a switch over the five
 * names compiles to pointer compares and plain field accesses.
 */
function getTimer(ts: PeerTimers, t: PeerTimer): number {
  switch (t) {
    case 'sendKeepalive':
      return ts.sendKeepalive;
    case 'newHandshake':
      return ts.newHandshake;
    case 'persistentKeepalive':
      return ts.persistentKeepalive;
    case 'retransmitHandshake':
      return ts.retransmitHandshake;
    case 'zeroKeyMaterial':
      return ts.zeroKeyMaterial;
  }
}

function setTimer(ts: PeerTimers, t: PeerTimer, at: number): void {
  switch (t) {
    case 'sendKeepalive':
      ts.sendKeepalive = at;
      return;
    case 'newHandshake':
      ts.newHandshake = at;
      return;
    case 'persistentKeepalive':
      ts.persistentKeepalive = at;
      return;
    case 'retransmitHandshake':
      ts.retransmitHandshake = at;
      return;
    case 'zeroKeyMaterial':
      ts.zeroKeyMaterial = at;
      return;
  }
}

interface Entry<O> {
  at: number;
  o: O;
  t: PeerTimer;
}

/** Rebuild once the heap holds this many entries and 8× more than there are owners. */
const REBUILD_MIN = 1024;
const REBUILD_RATIO = 8;

export class PeerTimerHeap<O extends PeerTimed> {
  private readonly heap = new MinHeap<Entry<O>>();

  /** `owners`: every owner that may have a timer on (the Device's peers), read by a rebuild. */
  constructor(private readonly owners: { values(): Iterable<O>; readonly size: number }) {}

  /** Entries held, stale ones included (tests: bounded by the peers, not by the packets). */
  get size(): number {
    return this.heap.size;
  }

  /** Sets `o`'s timer `t` to `at` (NEVER cancels it). O(1) unless it moves earlier. */
  arm(o: O, t: PeerTimer, at: number): void {
    setTimer(o.timers, t, at);
    if (at >= getTimer(o.queued, t)) return; // NEVER, or a later deadline that its earlier entry will find
    setTimer(o.queued, t, at);
    this.heap.push({ at, o, t });
    // Entries superseded by an earlier deadline, or left by removed owners, are dropped
    // when they surface; rebuild before they dominate the heap.
    const h = this.heap.size;
    if (h > REBUILD_MIN && h > REBUILD_RATIO * PEER_TIMERS.length * this.owners.size) this.rebuild();
  }

  cancel(o: O, t: PeerTimer): void {
    setTimer(o.timers, t, NEVER);
  }

  /** Turns off every timer of `o`. */
  cancelAll(o: O): void {
    const ts = o.timers;
    ts.retransmitHandshake = ts.sendKeepalive = ts.newHandshake = ts.zeroKeyMaterial = ts.persistentKeepalive = NEVER;
  }

  /**
   * The earliest deadline that is on (NEVER if none) and which timer it is. Fixes up the
   * top of the heap on the way: O(1) when nothing moved, O(log n) per moved entry.
   */
  peek(): Entry<O> | undefined {
    for (;;) {
      const e = this.heap.top;
      if (e === undefined) return undefined;
      const { o, t } = e;
      if (o.queued[t] !== e.at) {
        this.heap.pop(); // superseded by a later arm() to an earlier deadline
        continue;
      }
      const real = o.timers[t];
      if (real === e.at) return e;
      this.heap.pop();
      if (real === NEVER) {
        o.queued[t] = NEVER;
        continue;
      }
      // Moved later (never earlier: that would have pushed a new entry).
      o.queued[t] = real;
      this.heap.push({ at: real, o, t });
    }
  }

  /**
   * No timer that is on is due before this (NEVER if none): the top entry as it stands, without
   * peek()'s fix-ups. An entry is never later than the deadline it stands for (the invariant), so
   * this is a lower bound, O(1) and allocation-free; the data path moves a deadline on nearly every
   * packet, and a driver that only asks "anything before my armed timer?" need not fix the heap.
   */
  lowerBound(): number {
    const e = this.heap.top;
    return e === undefined ? NEVER : e.at;
  }

  /** The earliest deadline that is on, NEVER if none. */
  next(): number {
    return this.peek()?.at ?? NEVER;
  }

  /**
   * Adds to `due` each owner with a timer due at `now`, removing those entries; the caller
   * then turns each due timer off or re-arms it (a due timer left as it is would be lost).
   */
  collectDue(now: number, due: Set<O>): void {
    for (let e = this.peek(); e !== undefined && e.at <= now; e = this.peek()) {
      this.heap.pop();
      e.o.queued[e.t] = NEVER;
      due.add(e.o);
    }
  }

  /** Drops every stale entry: one entry per timer that is on, for the current owners only. */
  private rebuild(): void {
    for (const e of this.heap.entries()) e.o.queued[e.t] = NEVER;
    this.heap.clear();
    for (const o of this.owners.values()) {
      for (const t of PEER_TIMERS) {
        const at = o.timers[t];
        if (at !== NEVER) {
          o.queued[t] = at;
          this.heap.push({ at, o, t });
        }
      }
    }
  }
}
