/**
 * Ephemeral ports for TCP connects and UDP binds, picked as RFC 6056 §3.3.1 (algorithm 1,
 * simple port randomization) says: a random place in the range, then the next port the
 * caller finds free, wrapping at the end, so a port is hard to guess (RFC 6056 §1) and a
 * free one is found whenever one exists. The range is IANA's dynamic ports (RFC 6335 §6),
 * as on Windows and BSD (Linux's default starts at 32768).
 */
import { randomInt, type Rng } from '../util/rng.js';

export const EPHEMERAL_LOW = 49152;
export const EPHEMERAL_COUNT = 65536 - EPHEMERAL_LOW;

/**
 * The first port p from a random start for which `inUse(p)` is false; undefined when every
 * port of the range is in use (the caller throws its own errno: EADDRNOTAVAIL for a connect,
 * EADDRINUSE for a bind, as Linux does). One random number per call.
 */
export function pickEphemeralPort(rng: Rng, inUse: (port: number) => boolean, low = EPHEMERAL_LOW, count = EPHEMERAL_COUNT): number | undefined {
  const start = randomInt(rng, count);
  for (let i = 0; i < count; i++) {
    const p = low + ((start + i) % count);
    if (!inUse(p)) return p;
  }
  return undefined;
}
