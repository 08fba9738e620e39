/**
 * `tunnel.stats()`: every counter the tunnel's layers keep, as one typed, JSON-safe snapshot
 * (numbers, strings and plain objects only), for logs, dashboards and the CLI's SIGUSR1 dump.
 *
 * Nothing is counted for it: each layer already keeps typed counters (DESIGN §6: Device.stats
 * with DropReason, the Interface's NetCounter, the TcpLayer's TcpCounter, the gateway's
 * GatewayCounter), and the snapshot copies them through the same readers the Prometheus
 * metrics use (io/metrics.ts), so the two never disagree. Peers appear as peers() shows them:
 * by base64 public key, with whether a preshared key is set and never a key's bytes (§5).
 */
import type { Engine } from '../io/engine.js';
import type { DeviceStats } from '../wireguard/device.js';
import type { NetCounter } from '../netstack/interface.js';
import type { Counters } from '../util/counters.js';
import { deviceCounters, netstackCounters, type TcpSnapshot } from '../io/metrics.js';
import { peerStatus, type PeerStatus } from './peers.js';
import type { GatewayCounter } from './gateway-types.js';

export type { TcpSnapshot } from '../io/metrics.js';

/** Gateway mode (onFlow()): flows open now and the gateway's counters by name. */
export interface GatewayStats {
  /** Flows open (TCP, UDP, ICMP). */
  flows: number;
  /** TCP SYNs held while the host connects. */
  heldSyns: number;
  /** UDP flows in the netstack's flow table. */
  udpFlows: number;
  /** By GatewayCounter name; a name appears once counted. */
  counters: Record<GatewayCounter, number>;
}

export interface TunnelStats {
  /**
   * The WireGuard device: datagrams, inner packets and bytes each way, handshakes initiated
   * and completed, cookie replies, and drops by DropReason (every reason present, 0 if none).
   */
  device: DeviceStats;
  /** Each peer as peers() lists it (public key base64, endpoint, AllowedIPs, bytes, last handshake). */
  peers: PeerStatus[];
  /** IP, ICMP, UDP, reassembly and flow counters by NetCounter name (drops are `drop.*`); a name appears once counted. */
  netstack: Counters<NetCounter>;
  /** TCP connections now, by RFC 9293 state, and TCP's counters (every TcpCounter present). */
  tcp?: TcpSnapshot;
  /** Present once onFlow() made this tunnel a gateway. */
  gateway?: GatewayStats;
}

/** One snapshot: copies, so the caller may keep or change it while the tunnel runs on. */
export function tunnelStats(engine: Engine, gateway: GatewayStats | undefined): TunnelStats {
  const out: TunnelStats = { device: deviceCounters(engine.device), peers: peerStatus(engine.device), ...netstackCounters(engine.iface) };
  if (gateway) out.gateway = gateway;
  return out;
}
