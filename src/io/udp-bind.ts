/**
 * The outer UDP sockets a tunnel speaks WireGuard over. Like wireguard-go's
 * StdNetBind: one IPv4 and one IPv6 socket on the same port, so endpoints of
 * either family work and `ListenPort` means one number.
 *
 * Two backends with one behaviour on the wire:
 *   - 'native' (Linux, when native/udp.c is built): recvmmsg/sendmmsg with
 *     UDP GRO/GSO, one call into JavaScript per batch of datagrams received and
 *     one syscall per batch sent. Like wireguard-go's batched Linux bind.
 *   - 'dgram': node:dgram, one datagram per call; works everywhere.
 * Sends are queued until flush() (the engine flushes after each drain), so a
 * burst of datagrams leaves in one batch.
 *
 * A send that fails is dropped and counted (sendErrors, lastSendError), never thrown: the
 * engine sends from inside pump(), and an exception there would unwind through the
 * datagram handler that called it. What fails is the host's business, not the peer's:
 * ENOBUFS/EAGAIN (a full queue) are waited out (libuv queues the datagram; the addon
 * polls for POLLOUT a bounded number of times), EPERM (a firewall), ENETUNREACH /
 * EHOSTUNREACH (the network is down), EMSGSIZE and Node's own refusals (port 0, a socket
 * closed under us) drop the datagram. Nothing is resent here: as in wireguard-go, which
 * logs a failed send and goes on, WireGuard's handshake retries (whitepaper §6.4) and
 * TCP's retransmissions above recover once the host can send again.
 */
import dgram from 'node:dgram';
import { WgnetError } from '../util/errors.js';
import { loadAddon } from './native.js';

export interface Datagram {
  data: Uint8Array;
  address: string;
  port: number;
}

export type UdpBackend = 'auto' | 'native' | 'dgram';

export interface UdpBindOptions {
  port?: number; // 0 or absent: random
  /** Bind address for IPv4 (default 0.0.0.0). */
  host4?: string;
  /** Bind address for IPv6 (default ::). */
  host6?: string;
  /** Socket buffer sizes: large so bursts at line rate are not dropped by the kernel. */
  bufferBytes?: number;
  /** 'auto' (default; the WGNET_UDP environment variable may force one): native when it loads. */
  backend?: UdpBackend;
  onMessage: (data: Uint8Array, address: string, port: number) => void;
  /** Called after each batch of onMessage calls (after each one with 'dgram'). */
  onBatchEnd?: () => void;
  onError?: (err: Error) => void;
}

const DEFAULT_BUFFER = 4 * 1024 * 1024;
/** Datagrams queued before a send batch goes out without waiting for flush(); native/udp.c's SEND_BATCH. */
const SEND_BATCH = 128;

interface UdpAddon {
  open(family: 4 | 6, host: string, port: number, bufferBytes: number): { fd: number; port: number; gro: boolean };
  /** The callback gets one datagram as it is, several as arrays (native/udp.c's deliver). */
  startReader(fd: number, cb: (data: Uint8Array | Uint8Array[], addresses: string | string[], ports: number | number[]) => void): { stop(): void };
  /** Datagrams sent; an object only when GSO failed (native/udp.c's udp_send). */
  send(fd: number, family: 4 | 6, data: Uint8Array[], addresses: string[], ports: number[], count: number, gso: boolean): number | { sent: number; gsoFailed: boolean };
  close(fd: number): void;
}

/** One bound socket of one family. */
interface OuterSocket {
  readonly port: number;
  queue(data: Uint8Array, address: string, port: number): void;
  flush(): void;
  close(): Promise<void>;
}

class DgramSocket implements OuterSocket {
  private constructor(
    private readonly s: dgram.Socket,
    readonly port: number,
    private readonly owner: UdpBind,
  ) {}

  static async open(family: 4 | 6, host: string, port: number, o: UdpBindOptions, owner: UdpBind): Promise<DgramSocket> {
    const size = o.bufferBytes ?? DEFAULT_BUFFER;
    const type = family === 6 ? 'udp6' : 'udp4';
    // Deno's node:dgram allocates a receive buffer of recvBufferSize for every datagram
    // (4 MiB per packet here: 7 Mbit/s); there the kernel's default buffers serve better.
    const sizes = isDeno ? {} : { recvBufferSize: size, sendBufferSize: size };
    const s = dgram.createSocket({ type, ipv6Only: family === 6, ...sizes, lookup: literalLookup });
    s.on('message', (msg, rinfo) => {
      o.onMessage(msg, rinfo.address, rinfo.port);
      o.onBatchEnd?.();
    });
    let bound: DgramSocket | undefined;
    // Bind errors are the binder's to report; only errors of a bound socket go to onError.
    s.on('error', (err) => {
      if (bound && owner.isCurrent(bound)) o.onError?.(err);
    });
    const p = await bindSocket(s, port, host).catch((err: unknown) => {
      s.close();
      throw err;
    });
    bound = new DgramSocket(s, p, owner);
    return bound;
  }

  queue(data: Uint8Array, address: string, port: number): void {
    // With no callback, node:dgram drops a failed send without a word (no 'error' either):
    // EPERM from a firewall would be invisible. The callback is one shared function (no
    // closure per datagram); Node still queues a tick per send for it, which cost 2-8 %
    // of this slow path's send rate (loopback, 1400 B), and the batched backend nothing.
    this.s.send(data, port, address, this.sent);
  }

  /** send()'s callback: counts failures on the owning bind. */
  private readonly sent = (err: Error | null): void => {
    if (err) this.owner.sendFailed(err);
  };

  flush(): void {}

  close(): Promise<void> {
    return closeSocket(this.s);
  }
}

class NativeSocket implements OuterSocket {
  private reader: { stop(): void } | undefined;
  private data: Uint8Array[] = [];
  private addrs: string[] = [];
  private ports: number[] = [];
  private gso = true;
  private closed = false;

  private constructor(
    private readonly a: UdpAddon,
    private readonly family: 4 | 6,
    private readonly fd: number,
    readonly port: number,
    private readonly owner: UdpBind,
  ) {}

  static open(a: UdpAddon, family: 4 | 6, host: string, port: number, o: UdpBindOptions, owner: UdpBind): NativeSocket {
    const r = a.open(family, host, port, o.bufferBytes ?? DEFAULT_BUFFER);
    const s = new NativeSocket(a, family, r.fd, r.port, owner);
    // An exception from onMessage surfaces as uncaught, as from any event handler.
    s.reader = a.startReader(r.fd, (data, addrs, ports) => {
      if (data instanceof Uint8Array) o.onMessage(data, addrs as string, ports as number);
      else for (let i = 0; i < data.length; i++) o.onMessage(data[i]!, (addrs as string[])[i]!, (ports as number[])[i]!);
      o.onBatchEnd?.();
    });
    return s;
  }

  queue(data: Uint8Array, address: string, port: number): void {
    this.data.push(data);
    this.addrs.push(address);
    this.ports.push(port);
    if (this.data.length >= SEND_BATCH) this.flush();
  }

  flush(): void {
    const n = this.data.length;
    if (n === 0 || this.closed) return;
    try {
      const r = this.a.send(this.fd, this.family, this.data, this.addrs, this.ports, n, this.gso);
      let sent: number;
      if (typeof r === 'number') sent = r;
      else {
        sent = r.sent;
        if (r.gsoFailed) this.gso = false; // the route's device cannot segment; the addon resent them singly
      }
      // The addon skips a datagram the kernel refuses (after waiting out ENOBUFS/EAGAIN) and
      // sends the rest; it reports how many went, not why the others did not.
      if (sent < n) this.owner.sendFailed(undefined, n - sent);
    } catch (err) {
      // Only a misuse of the addon throws (a bad argument): count the batch, keep the tunnel.
      this.owner.sendFailed(err as Error, n);
    } finally {
      this.data = [];
      this.addrs = [];
      this.ports = [];
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.flush();
      this.closed = true;
      this.reader?.stop();
      this.a.close(this.fd);
    }
    return Promise.resolve();
  }
}

const isDeno = 'Deno' in globalThis;

/** Why this runtime cannot run the batched addon at all, if it cannot. */
export function batchedUdpUnsupported(): string | undefined {
  // Bun's N-API lacks uv_poll_init, which the addon's reader needs: it panics the process.
  return typeof (process.versions as Record<string, string | undefined>).bun === 'string' ? 'Bun has no uv_poll, which the addon needs' : undefined;
}

function nativeAddon(backend: UdpBackend): UdpAddon | undefined {
  const want = backend === 'auto' ? ((process.env.WGNET_UDP as UdpBackend | undefined) ?? 'auto') : backend;
  if (want === 'dgram' || (want === 'auto' && batchedUdpUnsupported())) return undefined;
  try {
    return loadAddon<UdpAddon>('wgnet_udp', 'the batched UDP socket', want === 'auto' ? 'node:dgram' : undefined);
  } catch (err) {
    if (want === 'native') throw err;
    return undefined; // 'auto': node:dgram does the same job, one datagram at a time
  }
}

export class UdpBind {
  private v4: OuterSocket | undefined;
  private v6: OuterSocket | undefined;
  private _port = 0;
  private closed = false;
  private readonly addon: UdpAddon | undefined;
  /** Datagrams that could not be sent (refused by the kernel or by node:dgram): dropped and counted. */
  sendErrors = 0;
  /** The code of the latest failure that said why (node:dgram's; the batched addon reports only a count). */
  lastSendError: string | undefined = undefined;

  private constructor(private readonly opts: UdpBindOptions) {
    this.addon = nativeAddon(opts.backend ?? 'auto');
  }

  get port(): number {
    return this._port;
  }

  /** Which backend carries the datagrams. */
  get backend(): 'native' | 'dgram' {
    return this.addon ? 'native' : 'dgram';
  }

  static async open(opts: UdpBindOptions): Promise<UdpBind> {
    const b = new UdpBind(opts);
    await b.bind(opts.port ?? 0);
    return b;
  }

  /** Whether `s` is one of the sockets in use (not one being replaced or discarded). */
  isCurrent(s: OuterSocket): boolean {
    return s === this.v4 || s === this.v6;
  }

  /**
   * Rebinds to another port (UAPI `listen_port`), keeping the callbacks. The new
   * sockets are bound before the old ones close, so a port in use leaves the
   * tunnel on its old port instead of on none.
   */
  async rebind(port: number): Promise<void> {
    const old4 = this.v4;
    const old6 = this.v6;
    const oldPort = this._port;
    try {
      await this.bind(port);
    } catch (err) {
      this.v4 = old4;
      this.v6 = old6;
      this._port = oldPort;
      throw err;
    }
    await Promise.all([old4?.close(), old6?.close()]);
  }

  private async openSocket(family: 4 | 6, host: string, port: number): Promise<OuterSocket> {
    if (this.addon) return NativeSocket.open(this.addon, family, host, port, this.opts, this);
    return DgramSocket.open(family, host, port, this.opts, this);
  }

  private async bind(port: number): Promise<void> {
    // With a random port the IPv6 socket must take the port the IPv4 one got;
    // if it is taken on IPv6, start over (wireguard-go does the same).
    for (let attempt = 0; attempt < 10; attempt++) {
      const v4 = await this.openSocket(4, this.opts.host4 ?? '0.0.0.0', port).catch((err: NodeJS.ErrnoException) => {
        throw inUse(err, port);
      });
      const p = v4.port;
      let v6: OuterSocket;
      try {
        v6 = await this.openSocket(6, this.opts.host6 ?? '::', p);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') {
          // No IPv6 on this host: run IPv4-only.
          this.v4 = v4;
          this._port = p;
          return;
        }
        await v4.close();
        if (port !== 0) throw inUse(err as NodeJS.ErrnoException, port);
        continue;
      }
      this.v4 = v4;
      this.v6 = v6;
      this._port = p;
      return;
    }
    throw new WgnetError('ERR_WGNET_IN_USE', 'could not find a free UDP port for both IPv4 and IPv6');
  }

  /** Queues one datagram (sent at the next flush()); IPv4-mapped IPv6 destinations go out the IPv4 socket. */
  send(data: Uint8Array, address: string, port: number): void {
    if (this.closed) return;
    let sock: OuterSocket | undefined;
    let addr = address;
    if (address.includes(':')) {
      if (address.toLowerCase().startsWith('::ffff:') && address.includes('.')) {
        sock = this.v4;
        addr = address.slice(7);
      } else sock = this.v6;
    } else sock = this.v4;
    if (!sock) {
      this.sendFailed(undefined);
      return;
    }
    try {
      sock.queue(data, addr, port);
    } catch (err) {
      // node:dgram throws at once for what it refuses before the kernel sees it: port 0
      // (ERR_SOCKET_BAD_PORT: a handshake from source port 0 would be answered there),
      // a socket closed under us (ERR_SOCKET_DGRAM_NOT_RUNNING).
      this.sendFailed(err as Error);
    }
  }

  /** @internal A send failed: `n` datagrams dropped, counted, with why when known. */
  sendFailed(err: Error | undefined, n = 1): void {
    this.sendErrors += n;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code) this.lastSendError = code;
  }

  /** Sends what send() queued. */
  flush(): void {
    this.v4?.flush();
    this.v6?.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.v4?.close(), this.v6?.close()]);
    this.v4 = this.v6 = undefined;
  }
}

/**
 * dgram's default lookup resolves even an IP literal through dns.lookup, which
 * answers on the next tick: one deferred call per datagram sent. Endpoints here
 * are always literals (hostnames are resolved once, in config), so answer now.
 */
function literalLookup(address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

function bindSocket(s: dgram.Socket, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    s.once('error', onError);
    s.bind({ port, address: host, exclusive: true }, () => {
      s.off('error', onError);
      resolve(s.address().port);
    });
  });
}

function closeSocket(s: dgram.Socket | undefined): Promise<void> {
  if (!s) return Promise.resolve();
  return new Promise((resolve) => {
    try {
      s.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

function inUse(err: NodeJS.ErrnoException, port: number): Error {
  if (err.code === 'EADDRINUSE') {
    return new WgnetError('ERR_WGNET_IN_USE', `UDP port ${port} is already in use`, { cause: err });
  }
  return err;
}
