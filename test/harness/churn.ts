/** What a tunnel keeps per connection, flow or request: leak checks read it after churn. */
import type { Tunnel } from '../../src/index.js';

export interface Bookkeeping {
  tcpConnections: number;
  tcpTimers: number;
  udpFlows: number;
  heldSyns: number;
  gatewayFlows: number;
  apiSockets: number;
  apiServers: number;
  apiUdpSockets: number;
  /** Ports with a UDP socket bound in the netstack. */
  netUdpPorts: number;
  pendingDns: number;
  /** The DNS client's queries in flight and TCP connections closing. */
  dnsAttempts: number;
  pendingPings: number;
}

/** The tunnel's tables by name (private maps read through a cast: this is a test's view). */
export function bookkeeping(t: Tunnel): Bookkeeping {
  const priv = t as unknown as { conns: Map<unknown, unknown>; servers: Map<unknown, unknown>; udps: Map<unknown, unknown>; resolver: { waiters: Map<unknown, unknown>; dns?: { attempts: Set<unknown>; closing: Map<unknown, unknown>; bySocket: Map<unknown, unknown> } }; pinger: { pending: Map<unknown, unknown> } };
  const dns = priv.resolver.dns;
  const iface = t.engine.iface as unknown as { flows?: { udpFlows: number; heldSyns: number }; udpFlowCount?: number; heldSynCount?: number; udp: Map<unknown, unknown> };
  const tcp = tcpOf(t);
  return {
    tcpConnections: tcp.connectionCount,
    tcpTimers: tcp.timerEntries,
    udpFlows: iface.flows?.udpFlows ?? iface.udpFlowCount ?? 0,
    heldSyns: iface.flows?.heldSyns ?? iface.heldSynCount ?? 0,
    gatewayFlows: t.gatewayStats()?.flows ?? 0,
    apiSockets: priv.conns.size,
    apiServers: priv.servers.size,
    apiUdpSockets: priv.udps.size,
    netUdpPorts: iface.udp.size,
    pendingDns: priv.resolver.waiters.size,
    dnsAttempts: dns ? dns.attempts.size + dns.closing.size + dns.bySocket.size : 0,
    pendingPings: priv.pinger.pending.size,
  };
}

/** The tunnel's TcpLayer with its test-facing counters (the Interface types it as TcpLayerApi). */
export function tcpOf(t: Tunnel): { connectionCount: number; timerEntries: number } {
  return t.engine.iface.tcp as unknown as { connectionCount: number; timerEntries: number };
}

/** Polls `cond` every 50 ms until true, or fails after `ms` naming `what`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readdirSync } from 'node:fs';
import { memoryTrimStats, trimPolicy } from '../../src/io/memory.js';

/** A full GC, also when node runs without --expose-gc (the test runner's processes do). */
export function collectGarbage(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g();
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Memory after a full GC (MB): heap used and RSS. */
export async function memoryAfterGc(): Promise<{ heapMB: number; rssMB: number; externalMB: number }> {
  // A timer turn between collections, not just an immediate: what timers still hold is free
  // only after they ran.
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 100));
  }
  const m = process.memoryUsage();
  return { heapMB: m.heapUsed / 1024 / 1024, rssMB: m.rss / 1024 / 1024, externalMB: m.external / 1024 / 1024 };
}

/** Samples RSS every 100 ms until stopped: the peak between two memoryAfterGc() readings. */
export function rssPeak(): { stop(): number } {
  let peak = process.memoryUsage.rss();
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 100);
  return {
    stop: () => {
      clearInterval(t);
      return Math.max(peak, process.memoryUsage.rss()) / 1024 / 1024;
    },
  };
}

/**
 * Memory once the process has settled: a full GC, then (where src/io/memory.ts trims)
 * the trim its own check decides on, with the rate limit lifted so it is not up to 30 s
 * away, then until RSS stops falling (V8 gives back the heap pages the GC emptied). Without
 * the addon, or with `awaitTrim` false (a baseline), no trim is waited for.
 */
export async function settledMemory(awaitTrim = true): Promise<{ heapMB: number; rssMB: number; externalMB: number; trims: number }> {
  await memoryAfterGc();
  const before = memoryTrimStats();
  if (awaitTrim && before.enabled) {
    const saved = trimPolicy.minIntervalMs;
    trimPolicy.minIntervalMs = 0;
    try {
      // The timer's next check sees the GC's release; nothing to see (a small run) is no trim.
      await waitFor(() => memoryTrimStats().trims > before.trims, 3 * trimPolicy.checkMs, 'a trim').catch(() => {});
    } finally {
      trimPolicy.minIntervalMs = saved;
    }
  }
  // V8 returns the pages its GC emptied from a background task, and shrinks its heap once
  // allocation has stopped for a while (its memory reducer), seconds later: wait until RSS
  // has not fallen for 4 s (at most 30 s).
  let last = process.memoryUsage.rss();
  for (let still = 0, i = 0; still < 8 && i < 60; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const now = process.memoryUsage.rss();
    still = now < last - 1024 * 1024 ? 0 : still + 1;
    last = Math.min(last, now);
  }
  return { ...(await memoryAfterGc()), trims: memoryTrimStats().trims };
}

/** Handles of this process: libuv resources by kind (sockets, timers, ...) and open file descriptors. */
export function handleCounts(): { resources: number; fds: number } {
  let fds = 0;
  try {
    fds = readdirSync('/proc/self/fd').length;
  } catch {
    // not Linux: resources alone
  }
  return { resources: process.getActiveResourcesInfo().length, fds };
}
