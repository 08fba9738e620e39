/**
 * Counters by name (DESIGN §6). Each layer declares the union of its names (a list
 * `as const`, or a union type), so a misspelled name fails to compile where it is
 * counted and where a test or the metrics read it.
 *
 * Two shapes, one per kind of layer:
 * - `Counters<N>` holds a name once it was counted: layers with many names that are
 *   mostly never hit (drop reasons) export and log just those seen, and a reader
 *   treats an absent name as 0.
 * - `zeroCounters(names)` has every name at 0 from the start: an object of one fixed
 *   shape, so a counter bumped per packet is a plain property store (the TcpLayer's).
 */
export type Counters<N extends string> = { [K in N]?: number };

/** Adds `n` (default 1) to the counter `name`. */
export function increment<N extends string>(counters: Counters<N>, name: N, n = 1): void {
  counters[name] = (counters[name] ?? 0) + n;
}

/** Every name at 0. */
export function zeroCounters<N extends string>(names: readonly N[]): Record<N, number> {
  const c = {} as Record<N, number>;
  for (const k of names) c[k] = 0;
  return c;
}
