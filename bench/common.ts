/** Shared shapes for benchmarks: each row is reported next to a reference measured in the same run. */
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';

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

/** CPU time (user + system, ms) that process `pid` has used so far: /proc/PID/stat fields 14-15, in clock ticks counted after the ')' that ends the name. */
export function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // USER_HZ is 100 on Linux
}

/** Resolves with a child's output (stdout + stderr) once it matches `what`; rejects after `ms` or if the child exits first. */
export function ready(c: ChildProcess, what: RegExp, ms = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`not ready: ${out.slice(-300)}`)), ms);
    const on = (d: Buffer): void => {
      out += d.toString();
      if (what.test(out)) {
        clearTimeout(t);
        resolve(out);
      }
    };
    c.stdout?.on('data', on);
    c.stderr?.on('data', on);
    c.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`exited (${code}) before ready: ${out.slice(-300)}`));
    });
  });
}
