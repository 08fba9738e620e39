/**
 * A Linux TUN device through wgnet's small N-API addon (native/tun.c), as the
 * plaintext side of a Device in daemon mode (`wgnet up`). The rest of wgnet
 * works without the addon: loading it is deferred to here, and a missing or
 * unbuildable addon is reported as such when a TUN is asked for.
 */
import { WgnetError } from '../util/errors.js';
import type { Deadline, Instant } from '../util/time.js';
import type { PacketLayer } from './engine.js';
import { loadAddon } from './native.js';
import type { NetEvent } from '../netstack/interface.js';

interface TunAddon {
  open(name: string): { fd: number; name: string };
  mtu(name: string): number;
  exists(name: string): boolean;
  startReader(fd: number, cb: (err: Error | null, packets: Uint8Array[]) => void): { stop(): void };
  write(fd: number, packet: Uint8Array): boolean;
  close(fd: number): void;
}

export function loadTunAddon(): TunAddon {
  try {
    return loadAddon<TunAddon>('wgnet_tun', 'TUN support');
  } catch (err) {
    // Say what still works, so a user without a compiler knows where to go.
    throw new WgnetError('ERR_WGNET_UNSUPPORTED', `${(err as Error).message}; userspace mode (proxy, forward, the library) works without it`, { cause: err });
  }
}

/** Packets from the TUN wait in `queue` until the engine pumps them into the Device. */
export class TunDevice implements PacketLayer {
  private readonly a: TunAddon;
  private reader: { stop(): void } | undefined;
  private queue: Uint8Array[] = [];
  private qHead = 0;
  private closed = false;
  /** Packets the kernel refused (its queue was full): dropped and counted. */
  writeDrops = 0;
  readErrors = 0;

  private constructor(
    readonly name: string,
    readonly fd: number,
  ) {
    this.a = loadTunAddon();
  }

  static open(name: string): TunDevice {
    const a = loadTunAddon();
    try {
      const r = a.open(name);
      return new TunDevice(r.name, r.fd);
    } catch (err) {
      const e = err as Error & { code?: string };
      const hint = e.code === 'EPERM' || e.code === 'EACCES' ? ' (creating a TUN device needs root or CAP_NET_ADMIN)' : '';
      throw new WgnetError('ERR_WGNET_UNSUPPORTED', `cannot create TUN device '${name}': ${e.message}${hint}`, { cause: err });
    }
  }

  /** Starts reading; `onPackets` is called after each batch is queued. */
  start(onPackets: () => void, onError: (err: Error) => void): void {
    this.reader = this.a.startReader(this.fd, (err, packets) => {
      if (err) {
        this.readErrors++;
        onError(err);
        return;
      }
      for (const p of packets) this.queue.push(p);
      onPackets();
    });
  }

  mtu(): number {
    return this.a.mtu(this.name);
  }

  exists(): boolean {
    return this.a.exists(this.name);
  }

  // PacketLayer: the Device's decrypted packets go to the kernel; the kernel's go to the Device.
  handleInput(_now: Instant, packet: Uint8Array): void {
    if (this.closed) return;
    if (!this.a.write(this.fd, packet)) this.writeDrops++;
  }
  pollTransmit(_now: Instant): Uint8Array | undefined {
    if (this.qHead >= this.queue.length) {
      if (this.qHead > 0) {
        this.queue = [];
        this.qHead = 0;
      }
      return undefined;
    }
    return this.queue[this.qHead++];
  }
  handleTimeout(_now: Instant): void {}
  pollTimeout(): Deadline | undefined {
    return undefined;
  }
  pollEvent(): NetEvent | undefined {
    return undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    this.a.close(this.fd);
  }
}
