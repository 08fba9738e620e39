/**
 * UDP port forwarding (`wgnet forward --udp`): datagrams arriving on a listener
 * are carried, per source address and port (a "flow"), over an outbound socket
 * of the other network to HOST:PORT; the answers go back to that source. Like
 * NAT, a flow ends after `idleMs` without traffic in either direction. Flows are
 * capped in all (each holds a socket) and, when sources belong to WireGuard peers
 * (-R), per peer, so one peer cannot take every flow from the others.
 */
import type { DatagramSocket } from './dialer.js';

export interface UdpForwardCounters {
  flows: number;
  up: number;
  down: number;
  expired: number;
  /** Datagrams that would have opened a flow over maxFlows: dropped. */
  limited: number;
  /** Datagrams that would have opened a flow over maxFlowsPerPeer: dropped. Set to 0 by forwardUdp if absent. */
  limitedPerPeer?: number;
}

/** The defaults of UdpForwardOptions, in one place. */
export const UDP_FORWARD_DEFAULTS = {
  maxFlows: 1024,
} as const;

/**
 * The default of maxFlowsPerPeer: a quarter of maxFlows, at least 1 (256 of 1024). A quarter,
 * as a listener's SYN queue is shared in the netstack: one peer, however many source ports or
 * addresses of its AllowedIPs it sends from, leaves three quarters of the forward to the
 * others; it follows maxFlows when an operator raises that; and a peer's own programs rarely
 * need hundreds of concurrent flows to one service. A forward that serves a single peer may
 * set it to maxFlows.
 */
export function defaultMaxFlowsPerPeer(maxFlows: number): number {
  return Math.max(1, Math.floor(maxFlows / 4));
}

export interface UdpForwardOptions {
  /** A bound socket receiving the clients' datagrams (dgram or tunnel). */
  listener: DatagramSocket;
  /** A fresh unbound socket on the other side, one per flow. */
  outbound: () => DatagramSocket;
  host: string;
  port: number;
  idleMs: number;
  counters: UdpForwardCounters;
  /** Flows at once (each holds a socket on the other side); over it, a new source's datagrams are dropped and counted, existing flows go on. Default 1024. */
  maxFlows?: number;
  /**
   * The peer a source address belongs to: for -R (a tunnel port), the WireGuard peer whose
   * AllowedIPs hold the datagram's inner source (cryptokey routing, whitepaper §2), as the
   * tunnel's device.allowedIps.lookup gives it; any value compared by identity. With it, one
   * peer holds at most maxFlowsPerPeer flows. Undefined for a source: the address is its own
   * peer. Without peerOf (-L, whose sources are local programs, often all 127.0.0.1) there is
   * no per-peer cap.
   */
  peerOf?: (address: string) => unknown;
  /**
   * Flows one peer may hold at once (with peerOf); over it, the peer's new sources are dropped
   * and counted (limitedPerPeer), its existing flows and other peers go on. Default
   * defaultMaxFlowsPerPeer(maxFlows).
   */
  maxFlowsPerPeer?: number;
  /** Told about each datagram dropped by maxFlows or maxFlowsPerPeer (after counting), e.g. to log it at most once per interval. */
  onLimit?: (fields: Record<string, unknown>) => void;
  onError?: (err: Error) => void;
}

interface Flow {
  out: DatagramSocket;
  last: number;
  /** The peer it is charged to (peerOf), kept so that the same peer gets it back. */
  peer: unknown;
}

export function forwardUdp(o: UdpForwardOptions): {
  close(): void;
  readonly active: number;
  /** Flows held by the peer that `address` belongs to (0 without peerOf). */
  flowsOf(address: string): number;
} {
  const flows = new Map<string, Flow>();
  const maxFlows = o.maxFlows ?? UDP_FORWARD_DEFAULTS.maxFlows;
  const maxFlowsPerPeer = o.maxFlowsPerPeer ?? defaultMaxFlowsPerPeer(maxFlows);
  /** Flows per peer; a peer with none has no entry, so this stays within maxFlows entries. */
  const perPeer = new Map<unknown, number>();
  o.counters.limitedPerPeer ??= 0;
  const release = (f: Flow): void => {
    if (!o.peerOf) return;
    const n = (perPeer.get(f.peer) ?? 1) - 1;
    if (n <= 0) perPeer.delete(f.peer);
    else perPeer.set(f.peer, n);
  };
  let closed = false;
  o.listener.on('message', (msg, rinfo) => {
    if (closed) return;
    const key = `${rinfo.address}|${rinfo.port}`;
    let f = flows.get(key);
    if (!f) {
      if (flows.size >= maxFlows) {
        // A flood of new sources (30,000 source ports once took every fd in 6 s) costs a counter, not a socket.
        o.counters.limited++;
        o.onLimit?.({ max: maxFlows, client: `${rinfo.address}:${rinfo.port}` });
        return;
      }
      // The peer is looked up for a new source only, never per datagram of a flow.
      const peer = o.peerOf ? (o.peerOf(rinfo.address) ?? rinfo.address) : undefined;
      const mine = o.peerOf ? (perPeer.get(peer) ?? 0) : 0;
      if (o.peerOf && mine >= maxFlowsPerPeer) {
        o.counters.limitedPerPeer!++;
        o.onLimit?.({ maxPerPeer: maxFlowsPerPeer, client: `${rinfo.address}:${rinfo.port}` });
        return;
      }
      let out: DatagramSocket;
      try {
        out = o.outbound();
      } catch (e) {
        return o.onError?.(e as Error); // e.g. EMFILE: this datagram is lost, the forward goes on
      }
      const flow: Flow = { out, last: Date.now(), peer };
      if (o.peerOf) perPeer.set(peer, mine + 1);
      out.on('error', (e) => o.onError?.(e)); // one unreachable destination must not end the forward
      out.on('message', (reply) => {
        if (closed || flows.get(key) !== flow) return;
        flow.last = Date.now();
        o.counters.down++;
        try {
          o.listener.send(reply, rinfo.port, rinfo.address, () => {});
        } catch (e) {
          o.onError?.(e as Error); // a source this socket cannot answer (port 0 from a peer): drop
        }
      });
      flows.set(key, (f = flow));
      o.counters.flows++;
    }
    f.last = Date.now();
    o.counters.up++;
    try {
      f.out.send(msg, o.port, o.host, () => {});
    } catch (e) {
      o.onError?.(e as Error);
    }
  });
  // One sweep for all flows (not a timer per datagram); flows live idleMs to idleMs * 1.25.
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const [k, f] of flows) {
        if (now - f.last >= o.idleMs) {
          flows.delete(k);
          release(f);
          f.out.close();
          o.counters.expired++;
        }
      }
    },
    Math.max(50, o.idleMs / 4),
  );
  sweep.unref();
  return {
    close: () => {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      for (const f of flows.values()) f.out.close();
      flows.clear();
      perPeer.clear();
      o.listener.close();
    },
    get active() {
      return flows.size;
    },
    flowsOf(address: string): number {
      return o.peerOf ? (perPeer.get(o.peerOf(address) ?? address) ?? 0) : 0;
    },
  };
}
