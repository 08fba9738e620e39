/**
 * A tunnel's peers as programs may see them: what `wg show` prints, public facts only
 * (DESIGN §5: no private or preshared key leaves the device through the API).
 */
import type { Engine } from '../io/engine.js';
import type { Device } from '../wireguard/device.js';
import { toBase64 } from '../util/bytes.js';
import { formatPrefix } from '../util/ip.js';

export interface PeerStatus {
  /** The peer's public key, base64. */
  publicKey: string;
  /** Where its datagrams go now (configured, or learnt by roaming); undefined until it is known. */
  endpoint: { address: string; port: number } | undefined;
  allowedIps: string[];
  /** Wall-clock time of the last completed handshake, ms since the epoch (as Date.now()); 0 if none yet. */
  lastHandshakeTime: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds; 0 when off. */
  persistentKeepalive: number;
  /** Whether a preshared key is set (never the key). */
  presharedKey: boolean;
}

export function peerStatus(device: Device): PeerStatus[] {
  return [...device.peers()].map((p) => ({
    publicKey: toBase64(p.publicKey),
    endpoint: p.endpoint ? { address: p.endpoint.address, port: p.endpoint.port } : undefined,
    allowedIps: device.allowedIps.prefixesOf(p).map(formatPrefix),
    lastHandshakeTime: p.lastHandshakeWallMs,
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
    persistentKeepalive: p.persistentKeepalive,
    presharedKey: p.presharedKey !== undefined,
  }));
}

/** Initiates a handshake with every peer that has an endpoint, and sends the initiations. */
export function startHandshakes(engine: Engine): void {
  const now = engine.now();
  for (const p of engine.device.peers()) if (p.endpoint) engine.device.initiateHandshake(now, p);
  engine.pump();
}
