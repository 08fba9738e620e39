/**
 * Per-source token bucket for handshake messages under load (whitepaper §5.3,
 * wireguard-go's ratelimiter): 20 per second with a burst of 5, IPv4 sources
 * by address, IPv6 by /64. The table is bounded: when full, new sources are
 * refused instead of evicting known ones, so a flood cannot push out a peer.
 */
import type { Instant } from '../util/time.js';

interface Bucket {
  tokens: number;
  last: Instant;
}

export class HandshakeRateLimiter {
  private readonly table = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;
  private readonly max: number;
  private lastCollect = 0;

  constructor(opts: { packetsPerSecond?: number; burst?: number; maxEntries?: number } = {}) {
    this.rate = opts.packetsPerSecond ?? 20;
    this.burst = opts.burst ?? 5;
    this.max = opts.maxEntries ?? 16_384;
  }

  get size(): number {
    return this.table.size;
  }

  private keyOf(addr: Uint8Array): string {
    const n = addr.length === 4 ? 4 : 8; // IPv6: the /64
    let k = '';
    for (let i = 0; i < n; i++) k += String.fromCharCode(addr[i]!);
    return k;
  }

  allow(now: Instant, addr: Uint8Array): boolean {
    const k = this.keyOf(addr);
    let b = this.table.get(k);
    if (!b) {
      if (this.table.size >= this.max) return false;
      b = { tokens: this.burst, last: now };
      this.table.set(k, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.last) * this.rate) / 1000);
      b.last = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets sources idle for over a second (their bucket is full again anyway). */
  collect(now: Instant): void {
    this.lastCollect = now;
    for (const [k, b] of this.table) if (now - b.last > 1000) this.table.delete(k);
  }

  nextCollect(): Instant | undefined {
    return this.table.size === 0 ? undefined : Math.max(this.lastCollect + 1000, 0);
  }
}
