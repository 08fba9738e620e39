/**
 * The contract between the netstack's parts and the layers above it.
 *
 * `Interface` (./interface.ts) owns the IP layer, ICMP and UDP and holds a
 * `TcpLayer` (./tcp/index.ts). The two talk only through these shapes:
 * the Interface validates IP headers and hands TCP segments to the TcpLayer;
 * the TcpLayer hands back segments (checksummed over the pseudo-header) with
 * room in front for the IP header, which the Interface writes in place.
 *
 * The io/api layers drive everything through the sans-IO methods (DESIGN §2)
 * and the socket objects below.
 */
import type { Deadline, Instant } from '../util/time.js';
import type { IpAddr } from '../util/ip.js';
import type { IcmpErrorKind } from '../wire/icmp.js';

/**
 * Who a packet's source address belongs to, for per-peer limits (TCP connections, reassembly
 * memory, a UDP socket's queue). The netstack does not know WireGuard peers, but every inner
 * packet's source lies in exactly one peer's AllowedIPs (cryptokey routing, whitepaper §2), so
 * the tunnel can name the peer (any value compared by identity: the Peer object, its key
 * string) and a peer holding a /24 or a /64 is one bucket, not one per address.
 */
export type PeerKey = string | number | object;

/** Maps a source address to its peer; undefined means "no peer known": the address is its own bucket. */
export type PeerOf = (addr: IpAddr) => PeerKey | undefined;

/**
 * The bucket of a source address when no peer is known: the address itself, an IPv4 address
 * as a 32-bit integer (no string is built per packet), an IPv6 address as text.
 */
export function addressKey(addr: IpAddr): PeerKey {
  return addr.length === 4 ? (addr[0]! << 24) | (addr[1]! << 16) | (addr[2]! << 8) | addr[3]! : addr.join(':');
}

/** RFC 9293 §3.3.2 state names. */
export type TcpState =
  | 'CLOSED'
  | 'LISTEN'
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT';

/** Node-style error codes a connection can end with. */
export type TcpErrorCode = 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT' | 'EHOSTUNREACH' | 'ENETUNREACH' | 'ECONNABORTED';

export interface TcpConnectOptions {
  remoteAddr: IpAddr;
  remotePort: number;
  /** Defaults to the interface's first address of the remote's family. */
  localAddr?: IpAddr;
  /** 0 or absent: an ephemeral port chosen at random (RFC 6056). */
  localPort?: number;
  noDelay?: boolean;
}

export interface TcpListenOptions {
  /** Absent: every local address of every family. */
  addr?: IpAddr;
  port: number;
  backlog?: number;
}

/** A TCP connection as the API layer sees it. All methods are non-blocking. */
export interface TcpConnection {
  readonly id: number;
  readonly state: TcpState;
  readonly localAddr: IpAddr;
  readonly localPort: number;
  readonly remoteAddr: IpAddr;
  readonly remotePort: number;
  /** Bytes the send buffer can take now. */
  readonly sendSpace: number;
  /** Bytes queued and not yet acknowledged. */
  readonly sendQueued: number;
  /** Bytes ready to read. */
  readonly recvAvailable: number;
  /** The peer sent FIN and every byte before it has been read. */
  readonly recvEnded: boolean;
  /** Set once the connection is finished; the reason if it failed. */
  readonly error: TcpErrorCode | undefined;
  /** Copies as much of `data` as fits into the send buffer; returns the count taken. */
  send(now: Instant, data: Uint8Array): number;
  /** Takes up to `max` bytes (default: all available) from the receive buffer; undefined if none. */
  recv(max?: number): Uint8Array | undefined;
  /** Sends FIN after the queued data (half-close). */
  shutdown(now: Instant): void;
  /** Sends RST and drops all state. */
  abort(now: Instant): void;
  setNoDelay(noDelay: boolean): void;
  /** 0 disables; otherwise idle milliseconds before the first probe. */
  setKeepAlive(enable: boolean, idleMs?: number): void;
}

export interface TcpListener {
  readonly id: number;
  readonly addr: IpAddr | undefined;
  readonly port: number;
  /** The next fully established connection from the accept queue. */
  accept(): TcpConnection | undefined;
  close(): void;
}

export type TcpEvent =
  | { type: 'tcp-connected'; conn: TcpConnection } // active open reached ESTABLISHED
  | { type: 'tcp-readable'; conn: TcpConnection } // data or FIN to read
  | { type: 'tcp-writable'; conn: TcpConnection } // send space freed after being full
  | { type: 'tcp-closed'; conn: TcpConnection; error: TcpErrorCode | undefined } // finished, state gone
  | { type: 'tcp-accept'; listener: TcpListener } // a connection waits in the accept queue
  | { type: 'tcp-flow'; flow: TcpFlow }; // gateway mode: a SYN held for a decision (Interface.acceptTcpFlow / refuseTcpFlow)

/** Gateway mode: the two ends of a flow, as the tunnel-side sender addressed it. */
export interface FlowEnds {
  /** The sender inside the tunnel. */
  readonly srcAddr: IpAddr;
  readonly srcPort: number;
  /** Where it was going (the source of every answer). */
  readonly dstAddr: IpAddr;
  readonly dstPort: number;
}

/**
 * Gateway mode: a SYN to a destination that no connection or listener takes, held (not
 * answered) until the gateway accepts it, which opens the connection as the destination, or
 * refuses it with a RST or ICMP unreachable. Held SYNs are bounded in number and time.
 */
export interface TcpFlow extends FlowEnds {
  readonly id: number;
  /** Gone without a decision: the sender reset it, or it waited too long. */
  readonly closed: boolean;
}

/** A segment ready for the IP layer. */
export interface TcpOutput {
  src: IpAddr;
  dst: IpAddr;
  /**
   * The TCP header and payload with the checksum filled in. Its ArrayBuffer has at
   * least PACKET_HEADROOM bytes before it and WG_TAILROOM after (util/bytes.ts),
   * so the IP and WireGuard headers are written in place.
   */
  segment: Uint8Array;
}

/** ICMP errors that concern a TCP connection (RFC 9293 §3.9.1.4, RFC 5927); the codec in wire/icmp.ts reads them. */
export type { IcmpErrorKind } from '../wire/icmp.js';

export interface TcpLayerApi {
  /** A TCP segment addressed to one of our addresses. The TcpLayer verifies its checksum. */
  handleSegment(now: Instant, src: IpAddr, dst: IpAddr, segment: Uint8Array): void;
  /**
   * An ICMP error quoting one of our segments: `quoted` is the start of the original
   * TCP header (at least 8 bytes), `mtu` is set for packet-too-big.
   */
  handleIcmpError(now: Instant, kind: IcmpErrorKind, src: IpAddr, dst: IpAddr, quoted: Uint8Array, mtu?: number): void;
  handleTimeout(now: Instant): void;
  pollTransmit(now: Instant): TcpOutput | undefined;
  pollTimeout(): Deadline | undefined;
  pollEvent(): TcpEvent | undefined;
  connect(now: Instant, opts: TcpConnectOptions): TcpConnection;
  listen(opts: TcpListenOptions): TcpListener;
  /**
   * Whether a TCP segment (at least a header) from src to dst belongs to a connection here, or
   * to a listener on one of our addresses. A SYN that may reuse a TIME-WAIT 4-tuple (RFC 6191)
   * ends that TIME-WAIT here, so it reaches a listener or the gateway as a new flow.
   */
  claims(src: IpAddr, dst: IpAddr, segment: Uint8Array): boolean;
  /**
   * Opens the passive side of a connection from a SYN (a whole TCP segment, checksum
   * verified) as a listener would, but with no listener: SYN-RECEIVED, the SYN-ACK sent,
   * 'tcp-connected' when the handshake completes. The local address may be any address.
   */
  acceptSyn(now: Instant, src: IpAddr, dst: IpAddr, syn: Uint8Array): TcpConnection;
}
