/**
 * The real clock and randomness, given to the sans-IO cores as arguments
 * (DESIGN §2). Only src/io reads the time or draws random bytes.
 */
import { performance } from 'node:perf_hooks';
import { randomFillSync } from 'node:crypto';
import type { Rng } from '../util/rng.js';
import type { Instant } from '../util/time.js';

/** Monotonic milliseconds: never jumps with the wall clock. */
export function monotonicNow(): Instant {
  return performance.now();
}

/** Milliseconds since the Unix epoch: for TAI64N and "latest handshake". */
export function wallClock(): number {
  return Date.now();
}

/** The operating system's CSPRNG. */
export const systemRng: Rng = {
  fill(buf: Uint8Array): void {
    randomFillSync(buf);
  },
};
