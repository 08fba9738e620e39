/**
 * The real clock and randomness, given to the sans-IO cores as arguments
 * (DESIGN §2). Only src/io reads the time or draws random bytes.
 */
import { performance } from 'node:perf_hooks';
import { randomFillSync } from 'node:crypto';
import type { Rng } from '../util/rng.js';
import type { Instant } from '../util/time.js';

const CHECK_MS = 20;
/** Host suspension detected so far (ms), and the largest wall-minus-monotonic offset seen. */
let slept = 0;
let maxOffset = Date.now() - performance.now();
let lastSeen = performance.now();

/**
 * Monotonic milliseconds that also count time the host spent suspended, as Linux's
 * CLOCK_BOOTTIME does, which the kernel's WireGuard uses for its timers. Node's clock
 * (CLOCK_MONOTONIC) stands still while the machine sleeps: after a laptop's 10-minute
 * sleep its sessions would look 10 minutes younger than they are, keys older than
 * RejectAfterTime (180 s, whitepaper §6.2) would still be used, and the peer, which
 * expired them, would drop every packet until our own "no answer for 15 s" timer
 * started a handshake (25 s to resume an upload, measured). Node offers no boot-time
 * clock, so a suspension is inferred: the wall clock moved ahead of the monotonic one by
 * more than 1 s (plus 0.1 % of the time between two readings, far above NTP's slew of at
 * most 0.05 %) beyond the largest lead it ever had. A wall clock stepped back and later
 * forward again does not count; a step forward by more than that counts as a sleep of
 * that length, which costs a handshake and expires TCP timers early, nothing worse. It
 * never goes backwards: the wall clock only adds.
 */
export function monotonicNow(): Instant {
  const mono = performance.now();
  // The wall clock is read at most every CHECK_MS (the engine asks for the time per datagram;
  // Date.now() doubled that cost): a sleep is noticed within CHECK_MS of waking.
  if (mono - lastSeen < CHECK_MS) return mono + slept;
  const offset = Date.now() - mono;
  if (offset > maxOffset) {
    if (offset - maxOffset > 1000 + (mono - lastSeen) / 1000) slept += offset - maxOffset;
    maxOffset = offset;
  }
  lastSeen = mono;
  return mono + slept;
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
