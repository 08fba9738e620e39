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

/** What wallClock() answered last, and the monotonic time then. */
let lastWall = 0;
let lastMono = 0;

/**
 * Milliseconds since the Unix epoch, for TAI64N and "latest handshake", never behind its
 * last answer plus the monotonic time since. A responder refuses an initiation whose
 * timestamp is not newer than the last it accepted from that initiator (whitepaper §5.1);
 * with Date.now() alone, a wall clock stepped back (NTP correcting a clock that ran ahead,
 * a VM restored from a snapshot) by an hour would have every peer refuse our handshakes
 * for that hour. After a step back this clock runs on at the monotonic rate until the wall
 * clock catches up, then follows it again; a step forward is followed at once. It cannot
 * help across a restart of the process (nor can wireguard-go or the kernel).
 */
export function wallClock(): number {
  const wall = Date.now();
  const mono = performance.now();
  const floor = lastWall + (mono - lastMono);
  const t = wall >= floor ? wall : floor;
  lastWall = t;
  lastMono = mono;
  return t;
}

/** The operating system's CSPRNG. */
export const systemRng: Rng = {
  fill(buf: Uint8Array): void {
    randomFillSync(buf);
  },
};
