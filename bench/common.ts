/** Shared shapes for benchmarks: each row is reported next to a reference measured in the same run. */
import { performance } from 'node:perf_hooks';

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  ref?: string;
  ratio?: number;
}

/** Runs `fn` repeatedly for at least `minMs` after a warm-up; returns calls per second. */
export function measure(fn: () => void, opts: { minMs?: number } = {}): number {
  const minMs = opts.minMs ?? 500;
  for (let i = 0; i < 100; i++) fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < minMs) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}
