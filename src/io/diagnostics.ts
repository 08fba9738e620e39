/**
 * node:diagnostics_channel channels, so APM and OpenTelemetry code can subscribe to what a
 * tunnel does without patching it. Published only when someone subscribes (hasSubscribers),
 * so they cost one property read otherwise. The names are a contract (README):
 *
 * - `wgnet:handshake`          { tunnel?, interface?, publicKey }   a handshake with a peer completed
 * - `wgnet:handshake-failed`   { tunnel?, interface?, publicKey }   a peer gave up after 90 s of retries
 * - `wgnet:endpoint-changed`   { tunnel?, interface?, publicKey, endpoint }  a peer roamed
 *
 * `tunnel` is the Tunnel (library, proxy, forward, gateway); `interface` the TUN name (`up`).
 */
import diagnostics from 'node:diagnostics_channel';

export const handshakeChannel = diagnostics.channel('wgnet:handshake');
export const handshakeFailedChannel = diagnostics.channel('wgnet:handshake-failed');
export const endpointChangedChannel = diagnostics.channel('wgnet:endpoint-changed');

export interface PeerMessage {
  tunnel?: unknown;
  interface?: string;
  publicKey: string;
  endpoint?: { address: string; port: number };
}

/** Publishes a device event on its channel when the channel has subscribers. */
export function publishPeerEvent(type: 'handshake' | 'handshake-failed' | 'endpoint-changed', msg: PeerMessage): void {
  const ch = type === 'handshake' ? handshakeChannel : type === 'handshake-failed' ? handshakeFailedChannel : endpointChangedChannel;
  if (ch.hasSubscribers) ch.publish(msg);
}
