/**
 * Hands memory that glibc's malloc keeps after a burst of releases back to the kernel
 * (native/memory.c's malloc_trim), rate-limited.
 *
 * Why: every ArrayBuffer's backing store is a malloc() chunk, and short TCP connections
 * make many of them (rings, RACK's and BBR's per-connection arrays, a few KiB each), freed
 * in bulk when V8 collects their wrappers. glibc returns memory to the kernel only from
 * the top of an arena; one live chunk above the freed ones keeps all of them resident.
 * Measured on 20,000 short connections through two in-process tunnels: the JS heap and
 * external memory came back to their start, but RSS stayed at 230-290 MB (start 105 MB)
 * with the main arena holding 150 MB of free chunks; no MALLOC_* environment variable
 * changed that, one malloc_trim(0) brought RSS to 96 MB in 18 ms.
 *
 * When: a check every trimPolicy.checkMs on an unref'd timer reads V8's external memory
 * (ArrayBuffer backing stores and other malloc'd memory V8 knows of; process.memoryUsage(),
 * some microseconds). Its falls, summed since the last trim, are what went back to malloc; once
 * they reach releaseBytes the addon trims, at most once per minIntervalMs. A sum, not the
 * fall from a peak: under churn each GC frees some MB and the next connections take them
 * again, so the arena's resident high-water mark grows by many small cycles, none of them
 * large (a first version that waited for one 16 MB fall left `wgnet forward` at 275 MB after
 * 100,000 connections, start 100 MB). The allocator's own statistics (mallinfo2) are not
 * polled: they walk every free chunk under the arena locks, 1-2 ms once the arena is fragmented and once
 * 136 ms while V8's background sweeper was freeing. A trim costs what it releases (18 ms
 * for 150 MB, 0.3 ms when there is nothing to give back); during sustained churn the
 * pages it returns are faulted back in as allocation resumes, so the interval bounds that
 * cost to one trim per minIntervalMs. The check stops itself after idleChecks checks in which
 * external memory moved less than 1 MB, and is re-armed by watchMemory() (each new TcpSocket
 * calls it).
 *
 * Only where the addon loads and exports trim (Linux with glibc; musl's mallocng gives
 * freed groups back by itself). WGNET_MALLOC_TRIM=0 turns it off.
 */
import { performance } from 'node:perf_hooks';
import { probeAddon } from './native.js';

export interface MemoryAddon {
  /** Bytes in use and free inside malloc's arenas (mallinfo2). */
  stats(): { inUse: number; free: number };
  /** malloc_trim(0): whether any memory went back to the kernel. */
  trim(): boolean;
}

const MiB = 1024 * 1024;

/** When the checks run and trim; a test may shorten the interval to see the end state sooner. */
export const trimPolicy = {
  /** How often external memory is sampled. */
  checkMs: 2000,
  /** Releases seen in external memory that add up to this much are worth a trim. */
  releaseBytes: 16 * MiB,
  /** At most one trim per this interval: it blocks the event loop while it runs, and pages it returns during churn come back as faults. */
  minIntervalMs: 30_000,
  /** Quiet checks in a row (external memory moved less than 1 MB, no trim owed) before the timer stops (a minute). */
  idleChecks: 30,
};

export interface MemoryTrimStats {
  /** Whether the checks run in this process (addon present, not turned off). */
  enabled: boolean;
  /** Trims done, and the last one's time (performance.now()) and duration. */
  trims: number;
  lastTrimAt: number | undefined;
  lastTrimMs: number | undefined;
}

let addon: MemoryAddon | undefined | null; // null: probed, unavailable
let timer: NodeJS.Timeout | undefined;
/** External memory at the previous check. */
let last = 0;
/** Bytes external memory fell by, summed over the checks since the last trim. */
let released = 0;
let idle = 0;
const stats: MemoryTrimStats = { enabled: false, trims: 0, lastTrimAt: undefined, lastTrimMs: undefined };

/** The addon when it loads and can trim; undefined elsewhere (cached). */
export function memoryAddon(): MemoryAddon | undefined {
  if (addon === undefined) {
    const p = probeAddon<Partial<MemoryAddon>>('wgnet_memory');
    addon = p.ok && typeof p.addon.trim === 'function' && typeof p.addon.stats === 'function' ? (p.addon as MemoryAddon) : null;
  }
  return addon ?? undefined;
}

/** Starts the checks if they are not running (cheap to call often: one comparison when they are). */
export function watchMemory(): void {
  if (timer !== undefined || addon === null) return;
  if (process.env.WGNET_MALLOC_TRIM === '0' || !memoryAddon()) {
    addon = null;
    return;
  }
  stats.enabled = true;
  last = process.memoryUsage().external;
  idle = 0;
  timer = setInterval(check, trimPolicy.checkMs);
  timer.unref();
}

/** One check (exported for tests, which call it without waiting for the timer). */
export function check(): void {
  const a = memoryAddon();
  if (!a) return;
  const ext = process.memoryUsage().external;
  const moved = Math.abs(ext - last) >= MiB;
  if (ext < last) released += last - ext;
  last = ext;
  if (released < trimPolicy.releaseBytes) {
    idle = moved ? 0 : idle + 1;
    if (idle >= trimPolicy.idleChecks && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
    return;
  }
  idle = 0;
  const now = performance.now();
  if (stats.lastTrimAt !== undefined && now - stats.lastTrimAt < trimPolicy.minIntervalMs) return; // owed: taken once the interval has passed
  a.trim();
  stats.trims++;
  stats.lastTrimAt = now;
  stats.lastTrimMs = performance.now() - now;
  released = 0;
}

/** What the checks have done in this process. */
export function memoryTrimStats(): Readonly<MemoryTrimStats> {
  return { ...stats };
}
