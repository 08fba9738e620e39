/**
 * TCP's timers as data (DESIGN §2): each connection stores one deadline per kind, and a
 * binary min-heap on the deadline finds the next one and the due connections in
 * O(log n) with thousands of connections, not a scan of all of them per event-loop turn.
 *
 * Every write to a deadline goes through `arm` / `cancel` / `cancelAll`. A moved or
 * cancelled deadline leaves its old heap entry behind (the RTO moves on every ACK, and
 * removing from the middle of a heap costs more than skipping): an entry is live only
 * while `owner.timers[kind] === at`, stale ones are dropped when they reach the top, and
 * the heap is rebuilt from the live deadlines before stale entries dominate it.
 */
import { NEVER } from './constants.js';
import { MinHeap } from '../../util/heap.js';

/** 'pace': the next release of paced segments (snd.ts); one deadline per connection, never one per segment. */
export type Timer = 'rto' | 'delack' | 'persist' | 'keepalive' | 'timewait' | 'trim' | 'reo' | 'pace';
export type TimerSet = Record<Timer, number>;

/** Deadline reasons, made once: pollTimeout runs after every batch of packets. */
export const TIMER_REASON: Record<Timer, string> = { rto: 'tcp rto', delack: 'tcp delack', persist: 'tcp persist', keepalive: 'tcp keepalive', timewait: 'tcp timewait', trim: 'tcp trim', reo: 'tcp reordering', pace: 'tcp pacing' };

export function noTimers(): TimerSet {
  return { rto: NEVER, delack: NEVER, persist: NEVER, keepalive: NEVER, timewait: NEVER, trim: NEVER, reo: NEVER, pace: NEVER };
}

export interface Timed {
  readonly timers: TimerSet;
}

export interface TimerEntry<O> {
  at: number;
  c: O;
  t: Timer;
}

/** Rebuild once the heap holds this many entries and 8× more than owners with a deadline. */
const REBUILD_MIN = 1024;
const REBUILD_RATIO = 8;

export class TimerHeap<O extends Timed> {
  private readonly heap = new MinHeap<TimerEntry<O>>();
  /** Owners that may have a live deadline (a superset: pruned on rebuild). */
  private readonly timed = new Set<O>();

  /** Entries held, stale ones included: bounded by live owners (tests, leak checks). */
  get size(): number {
    return this.heap.size;
  }

  /** Sets `o`'s `t` deadline to `at` (NEVER cancels it). */
  arm(o: O, t: Timer, at: number): void {
    o.timers[t] = at;
    if (at === NEVER) return;
    this.timed.add(o);
    this.heap.push({ at, c: o, t });
    // Moved and cancelled timers leave stale entries behind (RTO moves on every
    // ACK); rebuild from the live ones before they dominate the heap.
    if (this.heap.size > REBUILD_MIN && this.heap.size > REBUILD_RATIO * this.timed.size) this.rebuild();
  }

  cancel(o: O, t: Timer): void {
    o.timers[t] = NEVER;
  }

  /** Cancels every deadline of `o` (it is going away). */
  cancelAll(o: O): void {
    this.timed.delete(o);
    const ts = o.timers;
    ts.rto = ts.delack = ts.persist = ts.keepalive = ts.timewait = ts.trim = ts.reo = ts.pace = NEVER;
  }

  /** The earliest live entry, dropping stale ones from the top. */
  peek(): TimerEntry<O> | undefined {
    for (;;) {
      const e = this.heap.top;
      if (e === undefined || e.c.timers[e.t] === e.at) return e;
      this.heap.pop();
    }
  }

  /** Adds to `due` every owner with a live deadline at or before `now`, removing those entries. */
  collectDue(now: number, due: Set<O>): void {
    for (let e = this.peek(); e !== undefined && e.at <= now; e = this.peek()) {
      this.heap.pop();
      due.add(e.c);
    }
  }



  private rebuild(): void {
    const live: TimerEntry<O>[] = [];
    for (const c of this.timed) {
      let any = false;
      for (const t of Object.keys(c.timers) as Timer[]) {
        const at = c.timers[t];
        if (at !== NEVER) {
          any = true;
          live.push({ at, c, t });
        }
      }
      if (!any) this.timed.delete(c);
    }
    this.heap.clear();
    for (const e of live) this.heap.push(e);
  }
}
