/**
 * Peers configured by host name (`Endpoint = vpn.example.com:51820`): the name is looked up again
 * when a peer's handshakes keep failing (the host may have moved; wg-quick users run
 * reresolve-dns.sh for the same reason) and on resume() (a new network may answer differently).
 */
import type { Device, Peer } from '../wireguard/device.js';
import type { TunnelConfig } from '../config/model.js';
import { resolveEndpoint } from '../io/endpoint.js';
import { toBase64 } from '../util/bytes.js';
import { parseIp } from '../util/ip.js';

type HostSpec = { publicKey: Uint8Array; host: string; port: number };

export class HostEndpoints {
  /** By public key (base64), built on first use: config.peers never changes. */
  private byKey: Map<string, HostSpec> | undefined;
  private readonly resolving = new Set<Peer>();

  constructor(
    private readonly config: TunnelConfig,
    private readonly device: Device,
    private readonly closed: () => boolean,
    private readonly warn: (err: Error) => void,
  ) {}

  private specs(): Map<string, HostSpec> {
    this.byKey ??= new Map(
      this.config.peers.flatMap((p) => (p.endpoint && !parseIp(p.endpoint.host) ? [[toBase64(p.publicKey), { publicKey: p.publicKey, ...p.endpoint }] as const] : [])),
    );
    return this.byKey;
  }

  /** After a peer's handshake gave up: O(1) per call (issue 17), one lookup per peer at a time. */
  async reresolve(peer: Peer): Promise<void> {
    const spec = this.specs().get(toBase64(peer.publicKey));
    if (!spec || this.resolving.has(peer) || this.closed()) return;
    this.resolving.add(peer);
    try {
      const ep = await resolveEndpoint(spec.host, spec.port);
      if (!this.closed()) this.device.updatePeer(peer.publicKey, { endpoint: ep });
    } catch (err) {
      this.warn(err as Error);
    } finally {
      this.resolving.delete(peer);
    }
  }

  /** Every peer configured by host name, at once (resume()); a peer removed meanwhile is skipped. */
  async resolveAll(): Promise<void> {
    await Promise.all(
      [...this.specs().values()].map(async (spec) => {
        try {
          const ep = await resolveEndpoint(spec.host, spec.port);
          if (!this.closed() && this.device.getPeer(spec.publicKey)) this.device.updatePeer(spec.publicKey, { endpoint: ep });
        } catch (err) {
          this.warn(err as Error);
        }
      }),
    );
  }
}
