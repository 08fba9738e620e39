/**
 * UDP port forwarding (`wgnet forward --udp`): datagrams arriving on a listener
 * are carried, per source address and port (a "flow"), over an outbound socket
 * of the other network to HOST:PORT; the answers go back to that source. Like
 * NAT, a flow ends after `idleMs` without traffic in either direction.
 */
import type { DatagramSocket } from './dialer.js';

export interface UdpForwardCounters {
  flows: number;
  up: number;
  down: number;
  expired: number;
  /** Datagrams that would have opened a flow over maxFlows: dropped. */
  limited: number;
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
  /** Told about each datagram dropped by maxFlows (after counting), e.g. to log it at most once per interval. */
  onLimit?: (fields: Record<string, unknown>) => void;
  onError?: (err: Error) => void;
}

interface Flow {
  out: DatagramSocket;
  last: number;
}

export function forwardUdp(o: UdpForwardOptions): { close(): void; readonly active: number } {
  const flows = new Map<string, Flow>();
  const maxFlows = o.maxFlows ?? 1024;
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
      let out: DatagramSocket;
      try {
        out = o.outbound();
      } catch (e) {
        return o.onError?.(e as Error); // e.g. EMFILE: this datagram is lost, the forward goes on
      }
      const flow: Flow = { out, last: Date.now() };
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
      o.listener.close();
    },
    get active() {
      return flows.size;
    },
  };
}
