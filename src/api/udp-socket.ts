/**
 * A UDP socket on the tunnel, shaped like `dgram.Socket`: bind, send, connect,
 * 'message' with an rinfo, close. Host names are resolved through the tunnel's DNS.
 */
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import type { UdpSocket as NetUdpSocket } from '../netstack/interface.js';
import { formatIp, parseIp, mustParseIp, type IpAddr } from '../util/ip.js';
import { systemError, invalidArgument, WgnetError } from '../util/errors.js';
import type { Engine } from '../io/engine.js';

export interface UdpSocketHost {
  engine: Engine;
  registerUdp(sock: NetUdpSocket, owner: TunnelUdpSocket): void;
  unregisterUdp(sock: NetUdpSocket): void;
  resolve(host: string, family: 4 | 6): Promise<string>;
}

/** What 'message' listeners get with each datagram: dgram's own type. */
export type RemoteInfo = dgram.RemoteInfo;

/** A port as dgram takes it: a number or a numeric string. */
function toPort(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return /^\s*[0-9]+\s*$/.test(v) ? Number(v) : NaN;
  return typeof v === 'number' ? v : NaN;
}

export interface UdpSocketEvents {
  message: [msg: Buffer, rinfo: dgram.RemoteInfo];
  listening: [];
  connect: [];
  close: [];
  error: [err: Error];
}

/** As dgram's: on an error, `bytes` is not passed (typed as dgram.Socket types it). */
type SendCallback = (error: Error | null, bytes: number) => void;
type Message = string | NodeJS.ArrayBufferView | ReadonlyArray<string | NodeJS.ArrayBufferView>;

export class TunnelUdpSocket extends EventEmitter<UdpSocketEvents> {
  private sock: NetUdpSocket | undefined;
  private closed = false;
  private connected: { addr: IpAddr; port: number } | undefined;
  readonly family: 4 | 6;

  constructor(
    private readonly host: UdpSocketHost,
    type: 'udp4' | 'udp6',
  ) {
    super();
    this.family = type === 'udp4' ? 4 : 6;
  }

  /** bind([port][, address][, cb]) or bind({ port, address }[, cb]), as dgram.Socket#bind. */
  bind(port?: number | string, address?: string, callback?: () => void): this;
  bind(port?: number | string, callback?: () => void): this;
  bind(callback?: () => void): this;
  bind(options: dgram.BindOptions | { port?: number | string; address?: string }, callback?: () => void): this;
  bind(...args: unknown[]): this {
    let port = 0;
    let address: string | undefined;
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    const a0 = args[0];
    if (a0 !== null && typeof a0 === 'object') {
      port = toPort((a0 as { port?: unknown }).port) ?? 0;
      address = (a0 as { address?: string }).address;
    } else {
      port = toPort(a0) ?? 0;
      if (typeof args[1] === 'string') address = args[1];
    }
    if (cb) this.once('listening', cb);
    try {
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`bind: port must be 0-65535, got ${String(a0 && typeof a0 === 'object' ? (a0 as { port?: unknown }).port : a0).slice(0, 40)}`);
      this.doBind(port, address);
    } catch (err) {
      process.nextTick(() => this.emit('error', err as Error));
      return this;
    }
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  private doBind(port: number, address?: string): NetUdpSocket {
    if (this.closed) throw systemError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'bind');
    if (this.sock) throw systemError('ERR_SOCKET_ALREADY_BOUND', 'bind');
    const unspecified = address === undefined || address === '0.0.0.0' || address === '::';
    const addr = unspecified ? undefined : mustParseIp(address!, 'bind address');
    this.sock = this.host.engine.iface.udpBind({ family: this.family, addr, port });
    this.host.registerUdp(this.sock, this);
    return this.sock;
  }

  /** send(msg[, offset, length], port[, address][, cb]) as dgram.Socket#send; the port may be a numeric string. */
  send(msg: Message, port?: number | string, address?: string, callback?: SendCallback): void;
  send(msg: Message, port?: number | string, callback?: SendCallback): void;
  send(msg: Message, callback?: SendCallback): void;
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, port?: number | string, address?: string, callback?: SendCallback): void;
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, port?: number | string, callback?: SendCallback): void;
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, callback?: SendCallback): void;
  send(msg: Message, ...rest: unknown[]): void {
    let cb: SendCallback | undefined;
    if (typeof rest[rest.length - 1] === 'function') cb = rest.pop() as SendCallback;
    let data: Uint8Array;
    if (typeof msg === 'string') data = Buffer.from(msg);
    else if (Array.isArray(msg)) data = Buffer.concat((msg as ReadonlyArray<string | NodeJS.ArrayBufferView>).map((m) => (typeof m === 'string' ? Buffer.from(m) : bytesOf(m))));
    else data = bytesOf(msg as NodeJS.ArrayBufferView);
    if (typeof rest[0] === 'number' && typeof rest[1] === 'number' && (rest.length >= 3 || (this.connected !== undefined && rest.length === 2))) {
      const off = rest.shift() as number;
      const len = rest.shift() as number;
      data = data.subarray(off, off + len);
    }
    const port = toPort(rest[0]);
    const address = rest[1] as string | undefined;
    const done = (err: Error | null): void => {
      if (cb) (cb as (e: Error | null, n?: number) => void)(err, err ? undefined : data.length);
      else if (err) this.emit('error', err);
    };
    if (this.closed) return process.nextTick(done, systemError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'send'));
    if (this.connected && port !== undefined) return process.nextTick(done, systemError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'send'));
    if (!this.connected && (port === undefined || !Number.isInteger(port) || port <= 0 || port > 65535)) {
      return process.nextTick(done, invalidArgument(`send: port must be 1-65535, got ${String(port)}`));
    }
    const go = (dst: IpAddr | undefined): void => {
      try {
        const s = this.sock ?? this.doBindImplicit();
        if (this.connected) s.send(this.host.engine.now(), data);
        else s.send(this.host.engine.now(), data, dst, port);
        this.host.engine.schedule();
        done(null);
      } catch (err) {
        done(err as Error);
      }
    };
    if (this.connected) return go(undefined);
    const host = address ?? (this.family === 4 ? '127.0.0.1' : '::1');
    const lit = parseIp(host);
    if (lit) return go(lit);
    this.host.resolve(host, this.family).then(
      (a) => go(mustParseIp(a)),
      (err: Error) => done(err),
    );
  }

  private doBindImplicit(): NetUdpSocket {
    const s = this.doBind(0);
    process.nextTick(() => this.emit('listening'));
    return s;
  }

  connect(port: number | string, address?: string | (() => void), cb?: () => void): void {
    const portText = String(port).slice(0, 40);
    port = toPort(port) ?? NaN;
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw invalidArgument(`connect: port must be 1-65535, got ${portText}`);
    if (typeof address === 'function') {
      cb = address;
      address = undefined;
    }
    if (cb) this.once('connect', cb);
    const host = (address as string | undefined) ?? (this.family === 4 ? '127.0.0.1' : '::1');
    const finish = (a: IpAddr): void => {
      try {
        const s = this.sock ?? this.doBindImplicit();
        s.connect(a, port);
        this.connected = { addr: a, port };
        this.emit('connect');
      } catch (err) {
        this.emit('error', err as Error);
      }
    };
    const lit = parseIp(host);
    if (lit) process.nextTick(finish, lit);
    else this.host.resolve(host, this.family).then((a) => finish(mustParseIp(a)), (err: Error) => this.emit('error', err));
  }

  disconnect(): void {
    if (!this.connected) throw systemError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'disconnect');
    this.connected = undefined;
    if (this.sock) this.sock.remote = undefined;
  }

  /** @internal Datagrams are waiting. */
  onReadable(): void {
    const s = this.sock;
    if (!s) return;
    for (let m = s.recv(); m; m = s.recv()) {
      const rinfo: RemoteInfo = {
        address: formatIp(m.addr),
        family: m.addr.length === 4 ? 'IPv4' : 'IPv6',
        port: m.port,
        size: m.data.length,
      };
      // As in TcpServer.onAccept: a throwing listener must not leave datagrams queued with no
      // 'udp-readable' to come; the exception goes to 'uncaughtException', as from dgram.
      try {
        this.emit('message', Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), rinfo);
      } catch (err) {
        this.host.engine.callbackError(err);
      }
    }
  }

  /** @internal An ICMP error for a connected socket. */
  onError(code: string): void {
    this.emit('error', systemError(code, 'recv', this.connected ? formatIp(this.connected.addr) : undefined, this.connected?.port));
  }

  address(): { address: string; family: string; port: number } {
    const s = this.sock;
    if (!s) throw systemError('EBADF', 'getsockname');
    return {
      address: s.localAddr ? formatIp(s.localAddr) : this.family === 4 ? '0.0.0.0' : '::',
      family: this.family === 4 ? 'IPv4' : 'IPv6',
      port: s.localPort,
    };
  }

  remoteAddress(): { address: string; family: string; port: number } {
    if (!this.connected) throw systemError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'getpeername');
    return { address: formatIp(this.connected.addr), family: this.family === 4 ? 'IPv4' : 'IPv6', port: this.connected.port };
  }

  close(cb?: () => void): this {
    if (this.closed) return this;
    this.closed = true;
    if (this.sock) {
      this.host.unregisterUdp(this.sock);
      this.sock.close();
      this.sock = undefined;
    }
    if (cb) this.once('close', cb);
    process.nextTick(() => this.emit('close'));
    return this;
  }

  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  // --- the rest of dgram.Socket, so a TunnelUdpSocket is assignable where one is expected ---------

  private ttl = 64;
  private bufferSizes = { recv: 212_992, send: 212_992 }; // Linux's default rmem/wmem

  /** Accepted and reported; datagrams leave the tunnel's stack with its own TTL. */
  setTTL(ttl: number): number {
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw invalidArgument(`setTTL: expected 1-255, got ${String(ttl).slice(0, 40)}`);
    this.ttl = ttl;
    return this.ttl;
  }
  /** Broadcast does not cross a WireGuard tunnel (AllowedIPs route unicast); accepted as a no-op. */
  setBroadcast(_flag: boolean): void {}
  /** Sizes are recorded for getRecvBufferSize()/getSendBufferSize(); the stack's own buffers apply. */
  setRecvBufferSize(size: number): void {
    this.bufferSizes.recv = this.checkSize('setRecvBufferSize', size);
  }
  setSendBufferSize(size: number): void {
    this.bufferSizes.send = this.checkSize('setSendBufferSize', size);
  }
  getRecvBufferSize(): number {
    return this.bufferSizes.recv;
  }
  getSendBufferSize(): number {
    return this.bufferSizes.send;
  }
  /** send() hands datagrams to the stack at once: nothing waits in a send queue. */
  getSendQueueSize(): number {
    return 0;
  }
  getSendQueueCount(): number {
    return 0;
  }
  setMulticastTTL(ttl: number): number {
    return ttl;
  }
  setMulticastLoopback(flag: boolean): boolean {
    return flag;
  }
  setMulticastInterface(_multicastInterface: string): void {
    throw noMulticast('setMulticastInterface');
  }
  addMembership(_multicastAddress: string, _multicastInterface?: string): void {
    throw noMulticast('addMembership');
  }
  dropMembership(_multicastAddress: string, _multicastInterface?: string): void {
    throw noMulticast('dropMembership');
  }
  addSourceSpecificMembership(_sourceAddress: string, _groupAddress: string, _multicastInterface?: string): void {
    throw noMulticast('addSourceSpecificMembership');
  }
  dropSourceSpecificMembership(_sourceAddress: string, _groupAddress: string, _multicastInterface?: string): void {
    throw noMulticast('dropSourceSpecificMembership');
  }
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.closed) await new Promise<void>((resolve) => this.close(() => resolve()));
  }

  private checkSize(what: string, size: number): number {
    if (!Number.isInteger(size) || size <= 0 || size > 0x7fffffff) throw invalidArgument(`${what}: expected a positive size in bytes, got ${String(size).slice(0, 40)}`);
    return size;
  }
}

/** A view of any ArrayBufferView's bytes (a Buffer, a DataView, a Float32Array), as dgram sends them; no copy. */
function bytesOf(v: NodeJS.ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function noMulticast(what: string): WgnetError {
  return new WgnetError('ERR_WGNET_UNSUPPORTED', `${what}: multicast does not cross a WireGuard tunnel (peers' AllowedIPs route unicast)`);
}
