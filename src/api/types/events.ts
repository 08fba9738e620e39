/**
 * The events a `Tunnel` emits, as a map for Node's typed `EventEmitter<T>`:
 * `tunnel.on('handshake', (e) => e.publicKey)` is checked, and a misspelt event name
 * (`'handhsake'`) fails to compile instead of silently never firing.
 */

/** A peer, named by its public key (base64), as every tunnel event reports it. */
export interface PeerEventInfo {
  publicKey: string;
}

export interface TunnelEvents {
  /** A handshake with a peer completed (initiated by either side). */
  handshake: [info: PeerEventInfo];
  /** A handshake attempt with a peer gave up (90 s without an answer); hostname endpoints are resolved again. */
  'handshake-failed': [info: PeerEventInfo];
  /** A peer roamed: authenticated packets came from a new address. */
  'endpoint-changed': [info: PeerEventInfo & { endpoint: { address: string; port: number } | undefined }];
  /** The outer UDP socket failed (emitted as 'warning' when nobody listens for 'error'). */
  error: [err: Error];
  /** Something worth reporting that did not stop the tunnel (a socket error, a failed re-resolution). */
  warning: [err: Error];
  /** close() finished. */
  close: [];
  /** pause() stopped timers and the outer socket. */
  pause: [];
  /** resume() reopened the outer socket and started handshakes. */
  resume: [];
}
