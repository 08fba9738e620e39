/**
 * Two netstack Interfaces joined by a simulated link: seeded loss, reordering,
 * duplication, a bandwidth (serialization delay) and an RTT, with a virtual
 * clock that jumps to the next event. Used for TCP behaviour and throughput.
 */
import { Interface } from '../../src/netstack/interface.js';
import { SeededRng } from '../../src/util/rng.js';

export interface LinkSpec {
  rttMs: number;
  mbit: number; // bottleneck bandwidth each way
  loss?: number;
  reorder?: number; // share delayed by an extra half RTT
  duplicate?: number;
  queuePackets?: number; // drop-tail queue size
}

interface Pkt {
  at: number;
  seq: number;
  to: Interface;
  data: Uint8Array;
}

export class NetSim {
  now = 0;
  readonly a: Interface;
  readonly b: Interface;
  /** In flight, sorted by arrival time then send order; `head` is the next to deliver. */
  private q: Pkt[] = [];
  private head = 0;
  private seq = 0;
  private busyUntil = new Map<Interface, number>();
  private readonly rng: SeededRng;
  delivered = 0;
  dropped = 0;

  constructor(
    readonly link: LinkSpec,
    seed = 1,
    tcp: { congestionControl?: 'bbr' | 'cubic' | 'newreno' } = {},
  ) {
    this.rng = new SeededRng(seed);
    this.a = new Interface({ addresses: ['10.0.0.1/24', 'fd00::1/64'], rng: new SeededRng(seed + 100), tcp });
    this.b = new Interface({ addresses: ['10.0.0.2/24', 'fd00::2/64'], rng: new SeededRng(seed + 200), tcp });
  }

  private transmit(from: Interface, to: Interface): void {
    for (let p = from.pollTransmit(this.now); p; p = from.pollTransmit(this.now)) {
      const L = this.link;
      const ser = (p.length * 8) / (L.mbit * 1000); // ms on the wire
      const start = Math.max(this.now, this.busyUntil.get(from) ?? 0);
      const queued = (start - this.now) / ser;
      // A perfect link draws no random numbers (the stack benchmark); any impairment keeps
      // the seeded sequence of draws the throughput snapshot depends on.
      const perfect = !L.loss && !L.reorder && !L.duplicate;
      if (queued > (L.queuePackets ?? 1000) || (!perfect && this.rng.nextFloat() < (L.loss ?? 0))) {
        this.dropped++;
        continue;
      }
      this.busyUntil.set(from, start + ser);
      let at = start + ser + L.rttMs / 2;
      if (!perfect && this.rng.nextFloat() < (L.reorder ?? 0)) at += L.rttMs / 2;
      const copies = !perfect && this.rng.nextFloat() < (L.duplicate ?? 0) ? 2 : 1;
      // The sender keeps no reference to a polled packet, so it travels as is; a duplicate is a copy.
      for (let i = 0; i < copies; i++) this.insert({ at, seq: this.seq++, to, data: i === 0 ? p : p.slice() });
    }
  }

  private insert(p: Pkt): void {
    // Almost always the last: arrival times grow except for reordered packets.
    let i = this.q.length;
    while (i > this.head && (this.q[i - 1]!.at > p.at || (this.q[i - 1]!.at === p.at && this.q[i - 1]!.seq > p.seq))) i--;
    if (i === this.q.length) this.q.push(p);
    else this.q.splice(i, 0, p);
  }

  private expire(i: Interface): void {
    const d = i.pollTimeout();
    if (d && d.at <= this.now) i.handleTimeout(this.now);
  }

  /** Runs until `done()` or `until` virtual ms; `step` runs after every event (the application). */
  run(until: number, step: () => boolean): boolean {
    for (let guard = 0; guard < 50_000_000; guard++) {
      if (step()) return true;
      this.transmit(this.a, this.b);
      this.transmit(this.b, this.a);
      let next = this.head < this.q.length ? this.q[this.head]!.at : Infinity;
      const da = this.a.pollTimeout();
      if (da) next = Math.min(next, Math.max(da.at, this.now));
      const db = this.b.pollTimeout();
      if (db) next = Math.min(next, Math.max(db.at, this.now));
      if (next === Infinity || next > until) return false;
      this.now = next;
      // Deliver everything due, in order of arrival.
      while (this.head < this.q.length && this.q[this.head]!.at <= this.now) {
        const p = this.q[this.head++]!;
        this.delivered++;
        p.to.handleInput(this.now, p.data);
      }
      if (this.head > 4096 && this.head * 2 > this.q.length) {
        this.q = this.q.slice(this.head);
        this.head = 0;
      }
      this.expire(this.a);
      this.expire(this.b);
    }
    throw new Error('simulation did not finish');
  }
}

/** A deterministic byte pattern, so a receiver checks content without storing it. */
export function patternByte(i: number): number {
  return (i * 2654435761) >>> 24;
}
export function fillPattern(buf: Uint8Array, offset: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = patternByte(offset + i);
}
