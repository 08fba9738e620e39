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

/** A full GC, also when node runs without --expose-gc (the test runner's processes do). */
export function collectGarbage(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g();
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Memory after a full GC (MB): heap used and RSS. */
export async function memoryAfterGc(): Promise<{ heapMB: number; rssMB: number; externalMB: number }> {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return { heapMB: m.heapUsed / 1024 / 1024, rssMB: m.rss / 1024 / 1024, externalMB: m.external / 1024 / 1024 };
}
