/**
 * The gateway's public shapes (DESIGN §8): what a flow handler is told and may decide, the
 * options and counters, and the in-process UDP flow object. The relay logic is gateway.ts.
 */
import { EventEmitter } from 'node:events';
import type { Interface, UdpFlow } from '../netstack/interface.js';
import type { Device } from '../wireguard/device.js';
import type { Engine } from '../io/engine.js';
import type { PingPath } from '../io/ping.js';
import type { PolicyRule, RefusalReason } from '../config/gateway-policy.js';
import type { Trace } from '../util/trace.js';
import type { TcpSocket } from './tcp-socket.js';

export type FlowProtocol = 'tcp' | 'udp' | 'icmp';

/** What a flow handler is told about a flow. */
export interface FlowInfo {
  protocol: FlowProtocol;
  /** The sender inside the tunnel. For ICMP, port is the echo identifier. */
  source: { address: string; port: number };
  /** Where it is going. For ICMP, port is 0. */
  destination: { address: string; port: number };
  /** The sending peer's public key (base64). */
  peer: string;
}

/** A UDP flow accepted in-process: datagrams from the tunnel-side sender, replies back to it. */
export class FlowUdpSocket extends EventEmitter {
  /** @internal */
  constructor(
    private readonly flow: UdpFlow,
    private readonly engine: Engine,
    readonly info: FlowInfo,
  ) {
    super();
  }
  /** Sends a datagram back to the flow's source, from its original destination. */
  send(data: string | Uint8Array): void {
    this.flow.send(this.engine.now(), typeof data === 'string' ? Buffer.from(data) : data);
    this.engine.schedule();
  }
  close(): void {
    if (this.flow.closed) return;
    this.flow.close();
    this.emit('close');
  }
  get closed(): boolean {
    return this.flow.closed;
  }
}

/** What an accepted flow is handed as: a socket for TCP, a datagram socket for UDP, nothing for ICMP (answered locally). */
export type AcceptedFlow = TcpSocket | FlowUdpSocket | undefined;

/** 'relay' through the host (the policy still applies), 'reject', or accept in-process. */
export type FlowDecision = 'relay' | 'reject' | { accept: (flow: AcceptedFlow) => void };
export type FlowHandler = (flow: FlowInfo) => FlowDecision | Promise<FlowDecision>;

export interface GatewayOptions {
  /** Rules `CIDR[:PORTS]` (or objects, optionally per peer): see config/gateway-policy.ts. */
  allow?: ReadonlyArray<string | PolicyRule>;
  deny?: ReadonlyArray<string | PolicyRule>;
  /** Flows to the gateway's own tunnel addresses reach the host's loopback (and loopback is allowed). Default false. */
  exposeLocalhost?: boolean;
  /** Concurrent flows (TCP + UDP + echo) in total. Default 65536. */
  maxFlows?: number;
  /** Concurrent flows per peer. Default 8192. */
  maxFlowsPerPeer?: number;
  /** TCP flows waiting for a decision or a host connect, in total. Default 4096. */
  maxPendingTcp?: number;
  /** The same per peer. Default 128: a few peers flooding SYNs to black holes cannot fill the total. */
  maxPendingTcpPerPeer?: number;
  /**
   * UDP flows one peer may hold in the netstack's flow table (flows.ts) at once, decided or
   * not: a datagram that would open one more is dropped before the gateway sees it, counted in
   * the netstack's `drop.flow.udpPerPeer`; the peer's open flows go on. Default 8192
   * (FLOW_TABLE_DEFAULTS in netstack/flows.ts, which says why).
   */
  maxUdpFlowsPerPeer?: number;
  /**
   * SYNs one peer may have held in the flow table at once, waiting for the gateway to see
   * them: more are dropped unanswered (the client retries), counted in the netstack's
   * `drop.flow.synPerPeer`. It bounds a burst that arrives faster than the gateway decides,
   * which maxPendingTcpPerPeer cannot see yet. Default 1024 (FLOW_TABLE_DEFAULTS).
   */
  maxHeldSynsPerPeer?: number;
  /** Host connect timeout (ms); a timeout answers ICMP unreachable. Default 10000. */
  connectTimeout?: number;
  /** How long a handler's Promise may take (ms); then the flow is refused. Default 10000. */
  decisionTimeout?: number;
  /** UDP flows close after this long without a datagram (ms). Default 60000; port 53: 15000. */
  udpTimeout?: number;
  dnsTimeout?: number;
  /** The host's own addresses, refused unless allowed; default: every address of this host. */
  hostAddresses?: string[];
  /**
   * Route packets between peers at the IP level, as a WireGuard server with ip_forward does:
   * a packet to an address in another peer's AllowedIPs goes to that peer, TTL decremented,
   * not through the host. The policy is for host-relayed flows; this is all or nothing. Default false.
   */
  peerToPeer?: boolean;
}

/** Counter names, typed (DESIGN §6). `refused.*` and `limit.*` say why a flow went nowhere. */
export type GatewayCounter =
  | 'tcp.flows'
  | 'udp.flows'
  | 'icmp.echoes'
  | 'relayed'
  | 'accepted'
  | 'relay.connectFailed'
  | 'relay.bytesUp'
  | 'relay.bytesDown'
  | `refused.${RefusalReason | 'handler' | 'ownAddress' | 'decisionTimeout'}`
  | 'limit.flows'
  | 'limit.flowsPerPeer'
  | 'limit.pendingTcp'
  | 'limit.pendingTcpPerPeer'
  | 'limit.pings'
  | `icmp.${PingPath}`
  | 'icmp.timeout'
  | 'udp.idleClosed'
  | 'peer.removed'
  | 'routed'
  | 'routed.ttlExceeded';

export interface GatewayHost {
  engine: Engine;
  iface: Interface;
  device: Device;
  trace: Trace;
  /** Registers an in-tunnel TCP socket so the tunnel routes its events. */
  registerSocket(sock: TcpSocket): void;
}
