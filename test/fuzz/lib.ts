/**
 * Shared pieces of the fuzz targets (test/fuzz/*.test.ts): the run budget, the
 * committed corpus, and byte-level mutation.
 *
 * Every target is a fast-check property with invariants (no exception, every
 * drop counted, state bounded, a legitimate exchange still works afterwards).
 * Under `npm test` each runs a fixed number of cases from a fixed seed, so CI is
 * deterministic and bounded; `npm run fuzz -- TARGET --time N` (scripts/fuzz.mjs)
 * sets WGNET_FUZZ_TIME and a random WGNET_FUZZ_SEED, printed so that a failure
 * reproduces with `--seed S` (fast-check also prints the seed and the shrunk
 * counterexample's path).
 */
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';

/** fast-check parameters for a target: deterministic in CI, time-bounded in long runs. */
export function budget(target: string, ciRuns: number): fc.Parameters<unknown> {
  const time = Number(process.env.WGNET_FUZZ_TIME ?? 0);
  const envSeed = process.env.WGNET_FUZZ_SEED;
  const seed = envSeed !== undefined && envSeed !== '' ? Number(envSeed) | 0 : seedOf(target);
  const runs = process.env.WGNET_FUZZ_RUNS ? Number(process.env.WGNET_FUZZ_RUNS) : undefined;
  if (time > 0) {
    // A long run: as many cases as fit in the time; an interrupted run is a pass.
    return { seed, numRuns: runs ?? 1_000_000_000, interruptAfterTimeLimit: time * 1000, markInterruptAsFailure: false };
  }
  return { seed, numRuns: runs ?? ciRuns };
}

/** A stable seed per target name (FNV-1a), so CI always runs the same cases. */
function seedOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h | 0;
}

const CORPUS = new URL('./corpus/', import.meta.url);

/**
 * The committed corpus of a target: test/fuzz/corpus/TARGET/*.hex (whitespace and
 * `#` comments ignored) as bytes, *.txt as UTF-8 text bytes. Sorted by file name.
 */
export function corpus(target: string): { name: string; data: Uint8Array }[] {
  const dir = new URL(`${target}/`, CORPUS);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  const out: { name: string; data: Uint8Array }[] = [];
  for (const name of names) {
    const text = readFileSync(new URL(name, dir), 'utf8');
    if (name.endsWith('.hex')) {
      const hex = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
      out.push({ name, data: new Uint8Array(Buffer.from(hex, 'hex')) });
    } else if (name.endsWith('.txt')) out.push({ name, data: new Uint8Array(Buffer.from(text, 'utf8')) });
  }
  return out;
}

/** Text corpus entries with `\n` escapes kept literal in files turned into newlines (for line protocols). */
export function textCorpus(target: string): { name: string; text: string }[] {
  return corpus(target).map((c) => ({ name: c.name, text: Buffer.from(c.data).toString('utf8') }));
}

export type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; n: number }
  | { op: 'truncate'; at: number }
  | { op: 'dup'; at: number; n: number };

/** One byte-level mutation; positions are taken modulo the input's length. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('dup' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 32 }) }),
);

/** Applies mutations in order to a copy of `input`. */
export function mutate(input: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b = input.slice();
  for (const m of ms) {
    const n = b.length;
    const at = n === 0 ? 0 : m.at % n;
    switch (m.op) {
      case 'flip':
        if (n > 0) b[at]! ^= 1 << m.bit;
        break;
      case 'set':
        if (n > 0) b[at] = m.value;
        break;
      case 'insert': {
        const c = new Uint8Array(n + m.bytes.length);
        c.set(b.subarray(0, at));
        c.set(m.bytes, at);
        c.set(b.subarray(at), at + m.bytes.length);
        b = c;
        break;
      }
      case 'delete': {
        const c = new Uint8Array(Math.max(0, n - Math.min(m.n, n - at)));
        c.set(b.subarray(0, at));
        c.set(b.subarray(Math.min(n, at + m.n)), at);
        b = c;
        break;
      }
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'dup': {
        const piece = b.slice(at, Math.min(n, at + m.n));
        const c = new Uint8Array(n + piece.length);
        c.set(b.subarray(0, at + piece.length));
        c.set(piece, at + piece.length);
        c.set(b.subarray(at + piece.length), at + 2 * piece.length);
        b = c;
        break;
      }
    }
  }
  return b;
}

/** `base` bytes with 0-`max` mutations. */
export function mutated(base: fc.Arbitrary<Uint8Array>, max = 4): fc.Arbitrary<Uint8Array> {
  return fc.tuple(base, fc.array(mutationArb, { maxLength: max })).map(([b, ms]) => mutate(b, ms));
}

/** Copies `b` to an odd byte offset of a fresh buffer (DESIGN §3: codecs must not assume alignment). */
export function unaligned(b: Uint8Array): Uint8Array {
  const c = new Uint8Array(b.length + 1).subarray(1);
  c.set(b);
  return c;
}

/** Process-wide: fails the current property if anything escaped as an uncaught exception or rejection. */
export function watchUncaught(): { check(): void; stop(): void } {
  const errors: unknown[] = [];
  const onErr = (e: unknown): void => void errors.push(e);
  process.on('uncaughtException', onErr);
  process.on('unhandledRejection', onErr);
  return {
    check() {
      if (errors.length > 0) throw new Error(`uncaught: ${String((errors[0] as Error)?.stack ?? errors[0])}`);
    },
    stop() {
      process.off('uncaughtException', onErr);
      process.off('unhandledRejection', onErr);
    },
  };
}

/**
 * fc.assert, with the failing invariant's own message (fast-check keeps it as the
 * error's cause, which node:test's reporter does not print) in the error.
 */
export function check<T>(prop: fc.IProperty<T>, params: fc.Parameters<T>): void {
  try {
    fc.assert(prop, params);
  } catch (err) {
    throw withCause(err);
  }
}

export async function checkAsync<T>(prop: fc.IAsyncProperty<T>, params: fc.Parameters<T>): Promise<void> {
  try {
    await fc.assert(prop, params);
  } catch (err) {
    throw withCause(err);
  }
}

function withCause(err: unknown): unknown {
  const cause = (err as { cause?: unknown }).cause;
  if (!(err instanceof Error) || !cause) return err;
  const c = cause as Error;
  err.message = `${err.message}\n\nInvariant broken: ${c.stack ?? String(c)}`;
  return err;
}
