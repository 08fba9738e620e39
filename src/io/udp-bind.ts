/**
 * The outer UDP sockets a tunnel speaks WireGuard over. Like wireguard-go's
 * StdNetBind: one IPv4 and one IPv6 socket on the same port, so endpoints of
 * either family work and `ListenPort` means one number.
 */
import dgram from 'node:dgram';
import { WgnetError } from '../util/errors.js';

export interface Datagram {
  data: Uint8Array;
  address: string;
  port: number;
}

export interface UdpBindOptions {
  port?: number; // 0 or absent: random
  /** Bind address for IPv4 (default 0.0.0.0). */
  host4?: string;
  /** Bind address for IPv6 (default ::). */
  host6?: string;
  /** Socket buffer sizes: large so bursts at line rate are not dropped by the kernel. */
  bufferBytes?: number;
  onMessage: (data: Buffer, address: string, port: number) => void;
  onError?: (err: Error) => void;
}

const DEFAULT_BUFFER = 4 * 1024 * 1024;

export class UdpBind {
  private v4: dgram.Socket | undefined;
  private v6: dgram.Socket | undefined;
  private _port = 0;
  private closed = false;
  /** Datagrams the kernel refused (buffer full, no route): counted, as wireguard-go logs them. */
  sendErrors = 0;

  private constructor(private readonly opts: UdpBindOptions) {}

  get port(): number {
    return this._port;
  }

  static async open(opts: UdpBindOptions): Promise<UdpBind> {
    const b = new UdpBind(opts);
    await b.bind(opts.port ?? 0);
    return b;
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
    await Promise.all([closeSocket(old4), closeSocket(old6)]);
  }

  private async bind(port: number): Promise<void> {
    // With a random port the IPv6 socket must take the port the IPv4 one got;
    // if it is taken on IPv6, start over (wireguard-go does the same).
    for (let attempt = 0; attempt < 10; attempt++) {
      const v4 = this.makeSocket('udp4');
      const p = await bindSocket(v4, port, this.opts.host4 ?? '0.0.0.0').catch((err: NodeJS.ErrnoException) => {
        v4.close();
        throw inUse(err, port);
      });
      const v6 = this.makeSocket('udp6');
      try {
        await bindSocket(v6, p, this.opts.host6 ?? '::');
      } catch (err) {
        v6.close();
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') {
          // No IPv6 on this host: run IPv4-only.
          this.v4 = v4;
          this._port = p;
          return;
        }
        v4.close();
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

  private makeSocket(type: 'udp4' | 'udp6'): dgram.Socket {
    const size = this.opts.bufferBytes ?? DEFAULT_BUFFER;
    const s = dgram.createSocket({ type, ipv6Only: type === 'udp6', recvBufferSize: size, sendBufferSize: size });
    s.on('message', (msg, rinfo) => this.opts.onMessage(msg, rinfo.address, rinfo.port));
    // Bind errors are the binder's to report; only errors of a bound socket go to onError.
    s.on('error', (err) => {
      if (s === this.v4 || s === this.v6) this.opts.onError?.(err);
    });
    return s;
  }

  /** Sends one datagram; IPv4-mapped IPv6 destinations go out the IPv4 socket. */
  send(data: Uint8Array, address: string, port: number): void {
    if (this.closed) return;
    let sock: dgram.Socket | undefined;
    let addr = address;
    if (address.includes(':')) {
      if (address.toLowerCase().startsWith('::ffff:') && address.includes('.')) {
        sock = this.v4;
        addr = address.slice(7);
      } else sock = this.v6;
    } else sock = this.v4;
    if (!sock) {
      this.sendErrors++;
      return;
    }
    sock.send(data, port, addr, (err) => {
      if (err) this.sendErrors++;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([closeSocket(this.v4), closeSocket(this.v6)]);
    this.v4 = this.v6 = undefined;
  }
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
