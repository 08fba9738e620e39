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
  onError?: (err: Error) => void;
}

interface Flow {
  out: DatagramSocket;
  last: number;
}

export function forwardUdp(o: UdpForwardOptions): { close(): void; readonly active: number } {
  const flows = new Map<string, Flow>();
  let closed = false;
  o.listener.on('message', (msg, rinfo) => {
    if (closed) return;
    const key = `${rinfo.address}|${rinfo.port}`;
    let f = flows.get(key);
    if (!f) {
      const out = o.outbound();
      const flow: Flow = { out, last: Date.now() };
      out.on('error', (e) => o.onError?.(e)); // one unreachable destination must not end the forward
      out.on('message', (reply) => {
        if (closed || flows.get(key) !== flow) return;
        flow.last = Date.now();
        o.counters.down++;
        o.listener.send(reply, rinfo.port, rinfo.address, () => {});
      });
      flows.set(key, (f = flow));
      o.counters.flows++;
    }
    f.last = Date.now();
    o.counters.up++;
    f.out.send(msg, o.port, o.host, () => {});
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
