/**
 * node:diagnostics_channel channels, so APM and OpenTelemetry code can watch what a tunnel
 * does without patching it (https://nodejs.org/api/diagnostics_channel.html). Every channel
 * is defined here and nowhere else; the names and message fields are a contract (README,
 * "diagnostics_channel"), exported as `diagnosticsChannels` from the package.
 *
 * Cost when nobody listens: each publisher first reads `channel.hasSubscribers` (the Node
 * docs' advice: "check if there are active subscribers before preparing the message"),
 * so no message object is built and nothing is formatted. The sans-IO cores never import
 * this (DESIGN §1-2): their drops reach `wgnet:drop` through the Trace they are given
 * (CoreDiagnostics below), as they reach a log.
 *
 * | name                     | when                                              |
 * |--------------------------|---------------------------------------------------|
 * | `wgnet:handshake`        | a handshake with a peer completed (and each rekey) |
 * | `wgnet:handshake-failed` | a peer gave up after 90 s of retries (RekeyAttemptTime) |
 * | `wgnet:endpoint-changed` | a peer's endpoint changed (roaming, whitepaper §2.1) |
 * | `wgnet:tcp:open`         | a TCP connection on the tunnel is established     |
 * | `wgnet:tcp:close`        | a TCP socket that reached the netstack is closed  |
 * | `wgnet:flow`             | a gateway flow was opened, refused or closed      |
 * | `wgnet:drop`             | a core dropped a packet (layer + typed reason)    |
 *
 * The first three names were published before the rest and keep their spelling.
 */
import diagnostics from 'node:diagnostics_channel';
import type { Trace, TraceLevel } from '../util/trace.js';
import type { Tunnel } from './tunnel.js';
import type { TcpSocket } from './tcp-socket.js';
import type { FlowInfo, FlowProtocol } from './gateway.js';

/** The channel names, for `diagnostics_channel.subscribe(diagnosticsChannels.tcpClose, fn)`. */
export const diagnosticsChannels = Object.freeze({
  handshake: 'wgnet:handshake',
  handshakeFailed: 'wgnet:handshake-failed',
  endpointChanged: 'wgnet:endpoint-changed',
  tcpOpen: 'wgnet:tcp:open',
  tcpClose: 'wgnet:tcp:close',
  flow: 'wgnet:flow',
  drop: 'wgnet:drop',
} as const);

// Held for the life of the process: a Channel with no reference and no subscriber may be
// collected, and its hasSubscribers check must stay one property read on a live object.
export const handshakeChannel = diagnostics.channel(diagnosticsChannels.handshake);
export const handshakeFailedChannel = diagnostics.channel(diagnosticsChannels.handshakeFailed);
export const endpointChangedChannel = diagnostics.channel(diagnosticsChannels.endpointChanged);
export const tcpOpenChannel = diagnostics.channel(diagnosticsChannels.tcpOpen);
export const tcpCloseChannel = diagnostics.channel(diagnosticsChannels.tcpClose);
export const flowChannel = diagnostics.channel(diagnosticsChannels.flow);
export const dropChannel = diagnostics.channel(diagnosticsChannels.drop);

// --- messages ----------------------------------------------------------------------

/** `wgnet:handshake`, `wgnet:handshake-failed`, `wgnet:endpoint-changed`. */
export interface PeerMessage {
  /** The tunnel (library, proxy, forward, gateway); absent for `wgnet up`, which sets `interface`. */
  tunnel?: Tunnel;
  /** The TUN interface name (`wgnet up`). */
  interface?: string;
  /** The peer's public key, base64. */
  publicKey: string;
  /** `wgnet:endpoint-changed` only: where the peer is now. */
  endpoint?: { address: string; port: number };
}

/** `wgnet:tcp:open`: the 4-tuple as the tunnel sees it (local = this tunnel's address). */
export interface TcpOpenMessage {
  tunnel?: Tunnel;
  socket: TcpSocket;
  /** 'outbound' for tunnel.connect(); 'inbound' for a server's or a gateway flow's connection. */
  direction: 'outbound' | 'inbound';
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

/**
 * `wgnet:tcp:close`: published once per socket that reached the netstack (a SYN was sent or
 * received), also when it never connected (`established: false`, reason ECONNREFUSED, ...).
 */
export interface TcpCloseMessage extends TcpOpenMessage {
  established: boolean;
  bytesRead: number;
  bytesWritten: number;
  /** Milliseconds from the first SYN (sent or received) to the close. */
  durationMs: number;
  /**
   * 'end': both sides finished (FIN each way); 'destroy': the application destroyed the
   * socket first (a FIN or a RST was sent, as close(2) would); otherwise the error code it
   * closed with: ECONNRESET, ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH, ... (Node's codes).
   */
  reason: string;
}

export type FlowEvent = 'opened' | 'refused' | 'closed';

/** `wgnet:flow`: a gateway flow (tunnel.onFlow). TCP and UDP flows; for ICMP echoes, refusals. */
export interface FlowMessage {
  tunnel?: Tunnel;
  event: FlowEvent;
  protocol: FlowProtocol;
  source: { address: string; port: number };
  destination: { address: string; port: number };
  /** The sending peer's public key, base64. */
  peer: string;
  /** opened: relayed through the host, or accepted in-process by the handler. */
  decision?: 'relay' | 'accept';
  /** opened + relay: the host address dialled (loopback for the gateway's own address). */
  to?: { address: string; port: number };
  /** refused: the gateway counter that says why ('refused.not-allowed', 'limit.flows', 'relay.connectFailed', ...). */
  reason?: string;
  /** closed, relayed TCP: bytes from the peer to the host and back. */
  bytesUp?: number;
  bytesDown?: number;
}

/** `wgnet:drop`: a packet a core dropped (DESIGN §5: dropped, counted, traced; never answered). */
export interface DropMessage {
  tunnel?: Tunnel;
  /** The TUN interface name (`wgnet up`, which has no Tunnel). */
  interface?: string;
  /** 'wireguard' (Device: DropReason), or the netstack's layer: 'ip', 'icmp', 'udp', 'tcp', 'flow'. */
  layer: string;
  /** The typed reason, as counted in the metrics (wgnet_device_dropped_total{reason}, wgnet_netstack_dropped_total). */
  reason: string;
  /** What the core added, e.g. `{ length }` for a malformed datagram. */
  detail?: Record<string, unknown>;
}

// --- publishers --------------------------------------------------------------------

/** Publishes a device event on its channel when the channel has subscribers. */
export function publishPeerEvent(type: 'handshake' | 'handshake-failed' | 'endpoint-changed', msg: PeerMessage): void {
  const ch = type === 'handshake' ? handshakeChannel : type === 'handshake-failed' ? handshakeFailedChannel : endpointChangedChannel;
  if (ch.hasSubscribers) ch.publish(msg);
}

/** The tunnel that owns an engine, for messages published where only the engine is known (sockets, gateway). */
const owners = new WeakMap<object, Tunnel>();

export function tunnelOf(engine: object): Tunnel | undefined {
  return owners.get(engine);
}

/** The 4-tuple part of a TCP message; callers check hasSubscribers first. */
export function tcpMessage(tunnel: Tunnel | undefined, socket: TcpSocket, direction: 'outbound' | 'inbound'): TcpOpenMessage {
  return {
    tunnel,
    socket,
    direction,
    localAddress: socket.localAddress ?? '',
    localPort: socket.localPort ?? 0,
    remoteAddress: socket.remoteAddress ?? '',
    remotePort: socket.remotePort ?? 0,
  };
}

/**
 * A gateway's flow log call as a `wgnet:flow` message. The gateway names its events as its
 * trace does ('relayed', 'accepted', 'refused', 'limit', 'closed'); here they become the
 * three public ones. Callers check flowChannel.hasSubscribers first.
 */
export function publishFlow(tunnel: Tunnel | undefined, event: string, info: FlowInfo, extra?: Record<string, unknown>): void {
  const msg: FlowMessage = { tunnel, event: 'opened', protocol: info.protocol, source: info.source, destination: info.destination, peer: info.peer };
  switch (event) {
    case 'relayed': {
      msg.decision = 'relay';
      const to = extra?.to;
      if (typeof to === 'string') {
        const i = to.lastIndexOf(':');
        msg.to = { address: to.slice(0, i), port: Number(to.slice(i + 1)) };
      }
      break;
    }
    case 'accepted':
      msg.decision = 'accept';
      break;
    case 'refused':
    case 'limit':
      msg.event = 'refused';
      msg.reason = String(extra?.reason ?? extra?.limit ?? event);
      break;
    case 'closed':
      msg.event = 'closed';
      if (typeof extra?.bytesUp === 'number') msg.bytesUp = extra.bytesUp;
      if (typeof extra?.bytesDown === 'number') msg.bytesDown = extra.bytesDown;
      break;
    default:
      return;
  }
  flowChannel.publish(msg);
}

/**
 * The Trace given to the sans-IO cores of a tunnel: it passes everything to the user's trace
 * (the CLI log, or none) and, while `wgnet:drop` has subscribers, turns the cores' drop
 * traces into messages. The cores trace a drop at debug as `drop <DropReason>` (Device),
 * `netstack drop.<layer>.<reason>` (Interface, flows, reassembly) or `tcp drop.<reason>`
 * (the TCP layer); they ask `enabled('debug')` first, so without a subscriber (and without
 * a debug log) no string is built and the cost is this one extra check.
 */
export class CoreDiagnostics implements Trace {
  private tunnel: Tunnel | undefined;

  /** `iface`: the TUN interface's name, for `wgnet up`, whose Device has no Tunnel. */
  constructor(
    private readonly inner: Trace,
    private readonly iface?: string,
  ) {}

  /** Names the tunnel in the drop messages, and for the sockets and flows of `engine`. */
  bind(tunnel: Tunnel, engine: object): void {
    this.tunnel = tunnel;
    owners.set(engine, tunnel);
  }

  enabled(level: TraceLevel): boolean {
    return this.inner.enabled(level) || (level === 'debug' && dropChannel.hasSubscribers);
  }

  log(level: TraceLevel, event: string, fields?: Record<string, unknown>): void {
    if (this.inner.enabled(level)) this.inner.log(level, event, fields);
    if (level !== 'debug' || !dropChannel.hasSubscribers) return;
    let layer: string;
    let reason: string;
    if (event.startsWith('drop ')) {
      layer = 'wireguard';
      reason = event.slice(5);
    } else if (event.startsWith('netstack drop.')) {
      const rest = event.slice(14);
      const dot = rest.indexOf('.');
      layer = dot < 0 ? 'ip' : rest.slice(0, dot);
      reason = dot < 0 ? rest : rest.slice(dot + 1);
    } else if (event.startsWith('tcp drop.')) {
      layer = 'tcp';
      reason = event.slice(9);
    } else return;
    const msg: DropMessage = this.iface === undefined ? { tunnel: this.tunnel, layer, reason } : { interface: this.iface, layer, reason };
    if (fields) msg.detail = fields;
    dropChannel.publish(msg);
  }
}
