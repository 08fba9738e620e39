/**
 * tunnel.ping(): ICMP echo requests through the tunnel, matched to their replies by
 * (address, sequence) under one identifier per tunnel, as ping(8) uses its pid.
 *
 * A ping is a latency probe, so its own bookkeeping stays off the round trip it measures:
 * no timer per echo (a setTimeout/clearTimeout pair per ping created and deleted Node's
 * timer list and re-armed the libuv timer each time, since each ping emptied the list),
 * but one shared timer armed at the earliest deadline, as the engine keeps one for the
 * cores (DESIGN §2); the payload for a size is built once; one record and one closure per
 * echo instead of four closures.
 */
import type { Engine } from '../io/engine.js';
import { monotonicNow, systemRng } from '../io/clock.js';
import { formatIp, type IpAddr } from '../util/ip.js';
import { systemError } from '../util/errors.js';
import { randomInt } from '../util/rng.js';
import { abortError } from './lifecycle.js';

export interface PingResult {
  address: string;
  seq: number;
  ttl: number;
  bytes: number;
  /** Round-trip time in milliseconds. */
  time: number;
}

/** One echo in flight. */
interface Waiter {
  readonly key: string;
  readonly address: string;
  readonly seq: number;
  readonly start: number;
  /** When it fails with ETIMEDOUT (monotonic ms). */
  readonly deadline: number;
  readonly resolve: (r: PingResult) => void;
  readonly reject: (err: Error) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class TunnelPing {
  /** Echoes waiting for a reply, by `address/seq` (the churn tests read its size). */
  readonly pending = new Map<string, Waiter>();
  private readonly id = randomInt(systemRng, 0x10000);
  private seq = 0;
  /** The payload last built, for its size (ping(8)'s pattern: byte i is i mod 256). */
  private payload = new Uint8Array(0);
  /** The one timeout timer, armed at `timerAt`; it holds the event loop only while an echo waits. */
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(private readonly engine: Engine) {}

  /** One echo to `addr`; see Tunnel#ping for the contract. */
  send(addr: IpAddr, opts: { timeout?: number; size?: number; signal?: AbortSignal }): Promise<PingResult> {
    const seq = (this.seq = (this.seq + 1) & 0xffff);
    const size = opts.size ?? 56;
    if (this.payload.length !== size) {
      // The netstack copies it into the packet it builds, so one buffer serves every echo.
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i++) data[i] = i & 0xff;
      this.payload = data;
    }
    const address = formatIp(addr);
    const key = `${address}/${seq}`;
    const start = monotonicNow();
    const signal = opts.signal;
    return new Promise<PingResult>((resolve, reject) => {
      const w: Waiter = { key, address, seq, start, deadline: start + (opts.timeout ?? 3000), resolve, reject, signal, onAbort: undefined };
      this.pending.set(key, w);
      if (signal) {
        w.onAbort = () => this.settle(w, abortError(signal));
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.armFor(w.deadline);
      try {
        this.engine.iface.ping(this.engine.now(), addr, this.id, seq, this.payload);
      } catch (err) {
        this.settle(w, err as Error); // ENETUNREACH: no address of that family to send from
        return;
      }
      this.engine.pump();
    });
  }

  /** An echo reply from the netstack: settles the ping it answers, if it is ours. */
  onReply(id: number, seq: number, from: IpAddr, ttl: number, bytes: number): void {
    if (id !== this.id) return;
    const w = this.pending.get(`${formatIp(from)}/${seq}`);
    if (!w) return;
    this.forget(w);
    w.resolve({ address: w.address, seq, ttl, bytes, time: monotonicNow() - w.start });
  }

  /** Rejects every pending ping with `err` (tunnel.close()). */
  cancelAll(err: () => Error): void {
    for (const w of [...this.pending.values()]) this.settle(w, err());
    // Not left to fire: an armed timer would hold this tunnel in memory until it did.
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private settle(w: Waiter, err: Error): void {
    if (this.pending.get(w.key) !== w) return; // settled already
    this.forget(w);
    w.reject(err);
  }

  private forget(w: Waiter): void {
    this.pending.delete(w.key);
    if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort);
    // Left armed (firing early at worst finds nothing due), but no longer holding the loop open.
    if (this.pending.size === 0) this.timer?.unref();
  }

  /** Makes sure the timer fires by `deadline` and holds the loop while echoes wait. */
  private armFor(deadline: number): void {
    if (this.timer && this.timerAt <= deadline) {
      if (!this.timer.hasRef()) this.timer.ref();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = deadline;
    this.timer = setTimeout(this.onTimer, Math.max(0, Math.ceil(deadline - monotonicNow())));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = monotonicNow();
    let next = Infinity;
    for (const w of [...this.pending.values()]) {
      if (w.deadline <= now) this.settle(w, systemError('ETIMEDOUT', 'ping', w.address));
      else if (w.deadline < next) next = w.deadline;
    }
    if (next !== Infinity) this.armFor(next);
  };
}
