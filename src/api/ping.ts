/**
 * tunnel.ping(): ICMP echo requests through the tunnel, matched to their replies by
 * (address, sequence) under one identifier per tunnel, as ping(8) uses its pid.
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

type Reply = { ttl: number; bytes: number; from: IpAddr };

export class TunnelPing {
  /** Echoes waiting for a reply, by `address/seq` (the churn tests read its size). */
  readonly pending = new Map<string, (r: Reply) => void>();
  /** Rejects a pending ping(); cancelAll() calls each. */
  private readonly cancels = new Set<(err: Error) => void>();
  private readonly id = randomInt(systemRng, 0x10000);
  private seq = 0;

  constructor(private readonly engine: Engine) {}

  /** One echo to `addr`; see Tunnel#ping for the contract. */
  send(addr: IpAddr, opts: { timeout?: number; size?: number; signal?: AbortSignal }): Promise<PingResult> {
    const signal = opts.signal;
    const seq = (this.seq = (this.seq + 1) & 0xffff);
    const size = opts.size ?? 56;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = i & 0xff;
    const key = `${formatIp(addr)}/${seq}`;
    const start = monotonicNow();
    return new Promise<PingResult>((resolve, reject) => {
      const settle = (err?: Error): void => {
        clearTimeout(timer);
        this.pending.delete(key);
        this.cancels.delete(settle);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
      };
      const onAbort = (): void => settle(abortError(signal!));
      const timer = setTimeout(() => settle(systemError('ETIMEDOUT', 'ping', formatIp(addr))), opts.timeout ?? 3000);
      this.cancels.add(settle);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(key, (r) => {
        settle();
        resolve({ address: formatIp(addr), seq, ttl: r.ttl, bytes: r.bytes, time: monotonicNow() - start });
      });
      this.engine.iface.ping(this.engine.now(), addr, this.id, seq, data);
      this.engine.pump();
    });
  }

  /** An echo reply from the netstack: settles the ping it answers, if it is ours. */
  onReply(id: number, seq: number, from: IpAddr, ttl: number, bytes: number): void {
    if (id !== this.id) return;
    const key = `${formatIp(from)}/${seq}`;
    const w = this.pending.get(key);
    if (w) {
      this.pending.delete(key);
      w({ ttl, bytes, from });
    }
  }

  /** Rejects every pending ping with `err` (tunnel.close()). */
  cancelAll(err: () => Error): void {
    for (const cancel of [...this.cancels]) cancel(err());
  }
}
