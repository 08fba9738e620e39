/**
 * Limits on the listeners that local clients reach (`proxy`, `forward`): how
 * many client connections at once, how long a SOCKS5/HTTP request may take to
 * arrive, how large HTTP headers may be, how many UDP flows at once. A client
 * over a limit is refused alone; everyone else keeps being served. Every hit is
 * counted, and logged at most once per interval per limit, so a flood cannot
 * turn into a flood of log lines.
 */

export interface ListenerLimits {
  /** Client connections open at once per listener; a new one over the cap is closed at once. */
  maxConnections: number;
  /** Time for a SOCKS5 greeting + request, or HTTP request headers, to arrive (slowloris). */
  requestTimeoutMs: number;
  /** HTTP proxy: bytes of request line + headers (431 above it). */
  maxHeaderBytes: number;
  /** UDP flows at once per listener: `forward --udp` flows, SOCKS5 UDP associations. */
  maxUdpFlows: number;
  /**
   * An established relay (SOCKS5 CONNECT, HTTP CONNECT, a TCP forward) with no byte either way
   * for this long is closed at both ends; 0: never. See DEFAULT_LIMITS for the default.
   */
  idleTimeoutMs: number;
}

export const DEFAULT_LIMITS: Readonly<ListenerLimits> = {
  maxConnections: 1024,
  requestTimeoutMs: 10_000,
  maxHeaderBytes: 16 * 1024, // Node's own default, stated
  maxUdpFlows: 1024,
  // 2 h 4 min, RFC 5382 REQ-5's floor for a NAT's established-TCP idle timeout: what
  // applications are built to survive (TCP keepalives every 2 h, RFC 1122 §4.2.3.6, keep a
  // NAT mapping alive, and a quiet SSH session survives a compliant NAT). A proxy ends the
  // client's TCP itself, so the client's keepalives never cross it and cannot reset this;
  // a shorter default (Envoy's 1 h, nginx stream's 10 min) would cut sessions that every
  // NAT on the path lets live. What it reclaims: relays whose far end vanished without a
  // FIN or RST (a peer gone for good, a laptop that never came back), which nothing else
  // frees. Operators of short-lived traffic set less; 0 turns it off.
  idleTimeoutMs: 7_440_000,
};

export type LimitName = 'connections' | 'requestTimeout' | 'headerSize' | 'udpFlows' | 'udpFlowsPerPeer' | 'idleTimeout';

/** Times each limit was hit; a typed snapshot tests read by name. */
export type LimitCounters = Record<LimitName, number>;

export function zeroLimitCounters(): LimitCounters {
  return { connections: 0, requestTimeout: 0, headerSize: 0, udpFlows: 0, udpFlowsPerPeer: 0, idleTimeout: 0 };
}

/** Called when a client hits a limit: counts it and (rate-limited) logs it. */
export type OnLimit = (limit: LimitName, fields?: Record<string, unknown>) => void;

export type Log = (level: 'info' | 'debug' | 'warn', msg: string, fields?: Record<string, unknown>) => void;

/**
 * An OnLimit that logs one warning per limit per `intervalMs` at most, with the
 * number of hits since the last line, and calls `count` on every hit.
 */
export function limitReporter(what: string, log: Log | undefined, count?: (limit: LimitName) => void, intervalMs = 10_000, now: () => number = Date.now): OnLimit {
  const last = new Map<LimitName, { at: number; suppressed: number }>();
  return (limit, fields) => {
    count?.(limit);
    if (!log) return;
    const t = now();
    const l = last.get(limit);
    if (l && t - l.at < intervalMs) {
      l.suppressed++;
      return;
    }
    log('warn', `${what}: limit reached: ${limit}`, { ...fields, ...(l && l.suppressed > 0 ? { more: l.suppressed } : {}) });
    last.set(limit, { at: t, suppressed: 0 });
  };
}

/** Parses a positive integer flag value. */
export function positiveInt(v: string, flag: string, fail: (msg: string) => Error): number {
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw fail(`${flag}: expected an integer >= 1, got '${v.slice(0, 20)}'`);
  return Number(v);
}
