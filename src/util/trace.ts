/**
 * Structured tracing passed into the cores (DESIGN §2). Dropped network input is
 * traced at debug level, per-packet and per-timer chatter at trace; the default sink
 * discards everything at no cost.
 */
export type TraceLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

export interface Trace {
  /** Whether `level` is emitted, so hot paths can skip building fields. */
  enabled(level: TraceLevel): boolean;
  log(level: TraceLevel, event: string, fields?: Record<string, unknown>): void;
}

export const noTrace: Trace = {
  enabled: () => false,
  log: () => {},
};

const ORDER: Record<TraceLevel, number> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

/** A trace that keeps entries in memory: for tests that assert on what was logged. */
export class MemoryTrace implements Trace {
  readonly entries: { level: TraceLevel; event: string; fields?: Record<string, unknown> }[] = [];
  constructor(private readonly level: TraceLevel = 'debug') {}
  enabled(level: TraceLevel): boolean {
    return ORDER[level] <= ORDER[this.level];
  }
  log(level: TraceLevel, event: string, fields?: Record<string, unknown>): void {
    if (this.enabled(level)) this.entries.push(fields ? { level, event, fields } : { level, event });
  }
}

export function levelEnabled(threshold: TraceLevel, level: TraceLevel): boolean {
  return ORDER[level] <= ORDER[threshold];
}
