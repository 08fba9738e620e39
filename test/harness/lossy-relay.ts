/**
 * A UDP relay that loses, delays and reorders datagrams with a seeded RNG: the
 * loss test's stand-in for `tc netem`, which not every kernel has. It sits
 * between wgnet and a peer; datagrams from the peer go back to the last client.
 */
import dgram from 'node:dgram';
import { SeededRng } from '../../src/util/rng.js';

export interface LossyRelayOptions {
  target: { address: string; port: number };
  loss: number; // 0..1, each direction
  reorder: number; // 0..1: share of datagrams held back
  delayMs: number; // how long a held-back datagram waits
  seed?: number;
}

export class LossyRelay {
  readonly socket: dgram.Socket;
  private client: { address: string; port: number } | undefined;
  private readonly rng: SeededRng;
  private readonly held = new Set<NodeJS.Timeout>();
  private closed = false;
  dropped = 0;
  relayed = 0;

  private constructor(o: LossyRelayOptions, type: 'udp4' | 'udp6') {
    this.rng = new SeededRng(o.seed ?? 1);
    this.socket = dgram.createSocket({ type, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    this.socket.on('message', (msg, r) => {
      const fromTarget = r.address === o.target.address && r.port === o.target.port;
      if (!fromTarget) this.client = { address: r.address, port: r.port };
      const to = fromTarget ? this.client : o.target;
      if (!to) return;
      if (this.rng.nextFloat() < o.loss) {
        this.dropped++;
        return;
      }
      this.relayed++;
      if (this.rng.nextFloat() < o.reorder) {
        // Held-back datagrams must not outlive close(): a send on a closed socket throws.
        const t = setTimeout(() => {
          this.held.delete(t);
          this.send(msg, to);
        }, o.delayMs);
        this.held.add(t);
      } else this.send(msg, to);
    });
  }

  static async start(o: LossyRelayOptions, bind = '0.0.0.0'): Promise<LossyRelay> {
    const r = new LossyRelay(o, bind.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((res) => r.socket.bind(0, bind, () => res()));
    return r;
  }

  get port(): number {
    return this.socket.address().port;
  }

  private send(msg: Buffer, to: { address: string; port: number }): void {
    if (!this.closed) this.socket.send(msg, to.port, to.address);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.held) clearTimeout(t);
    this.held.clear();
    this.socket.close();
  }
}
