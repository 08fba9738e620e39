/**
 * Time is an argument (DESIGN §2). `Instant` is monotonic milliseconds given by
 * the caller: the real driver reads a monotonic clock, tests a virtual one.
 */
export type Instant = number;

/** The earliest deadline a core wants to be woken at, with why (for tracing). */
export interface Deadline {
  at: Instant;
  reason: string;
}

/** The earlier of two optional deadlines. */
export function earliest(a: Deadline | undefined, b: Deadline | undefined): Deadline | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return b.at < a.at ? b : a;
}
