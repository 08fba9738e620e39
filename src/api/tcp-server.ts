/**
 * A TCP listener on the tunnel's addresses, shaped like `net.Server`:
 * `listen()`, `'listening'`, `'connection'`, `address()`, `close()`.
 * To serve HTTP on the tunnel, hand its connections to an http.Server:
 *   tunnel.createServer((s) => httpServer.emit('connection', s)).listen(80)
 */
import { EventEmitter } from 'node:events';
import type { TcpListener } from '../netstack/types.js';
import { formatIp, mustParseIp, familyOf } from '../util/ip.js';
import { systemError, invalidArgument } from '../util/errors.js';
import type { Engine } from '../io/engine.js';
import { systemRng } from '../io/clock.js';
import { randomInt } from '../util/rng.js';
import { TcpSocket, type TcpSocketOptions } from './tcp-socket.js';

export interface TcpServerHost {
  engine: Engine;
  registerListener(listener: TcpListener, server: TcpServer): void;
  unregisterListener(listener: TcpListener): void;
  registerConnection(sock: TcpSocket): void;
}

export interface TcpServerOptions extends TcpSocketOptions {
  pauseOnConnect?: boolean;
}

/** listen()'s options object, net.ListenOptions' subset that means something on a tunnel. */
export interface ListenOptions {
  /** 0 or omitted: a free port. A numeric string is accepted, as net.Server takes it. */
  port?: number | string;
  /** One of the tunnel's addresses; omitted, '0.0.0.0' or '::': all of them. */
  host?: string;
  backlog?: number;
}

type Port = number | string;

/**
 * listen()'s backlog when none is given: net.Server's (511, its documented default), not the
 * stack's 128. A program moved from net to a tunnel keeps the queue it had, and the backlog
 * also sets one WireGuard peer's share of the SYN queue (a quarter: 128 here, 32 with 128).
 * With the smaller share, a single peer running 100 clients (bench/connrate.ts) had most of
 * its connections answered with SYN cookies, which carry no timestamps, window scaling or
 * SACK and give no RTT sample, so a lost response waited for the 1 s initial RTO.
 */
const NET_DEFAULT_BACKLOG = 511;

export class TcpServer extends EventEmitter {
  private listener: TcpListener | undefined;
  private readonly sockets = new Set<TcpSocket>();
  private closing = false;
  maxConnections = Infinity;

  constructor(
    private readonly host: TcpServerHost,
    private readonly opts: TcpServerOptions = {},
    connectionListener?: (socket: TcpSocket) => void,
  ) {
    super();
    if (connectionListener) this.on('connection', connectionListener);
  }

  get listening(): boolean {
    return this.listener !== undefined;
  }

  /** listen(port[, host][, backlog][, cb]) or listen({ port, host, backlog }[, cb]), as net.Server#listen. */
  listen(port?: Port, hostname?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: Port, hostname?: string, listeningListener?: () => void): this;
  listen(port?: Port, backlog?: number, listeningListener?: () => void): this;
  listen(port?: Port, listeningListener?: () => void): this;
  listen(options: ListenOptions, listeningListener?: () => void): this;
  listen(listeningListener?: () => void): this;
  listen(...args: unknown[]): this {
    let port = 0;
    let hostName: string | undefined;
    let backlog: number | undefined;
    let cb: (() => void) | undefined;
    const a0 = args[0];
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    const toPort = (v: unknown): number => (typeof v === 'string' && !/^\s*[0-9]+\s*$/.test(v) ? NaN : Number(v));
    if (a0 !== null && typeof a0 === 'object') {
      const o = a0 as ListenOptions;
      port = o.port === undefined ? 0 : toPort(o.port);
      hostName = o.host;
      backlog = o.backlog;
    } else {
      if (args[0] !== undefined && typeof args[0] !== 'function') port = typeof args[0] === 'number' || typeof args[0] === 'string' ? toPort(args[0]) : NaN;
      if (typeof args[1] === 'string') hostName = args[1];
      if (typeof args[1] === 'number') backlog = args[1];
      if (typeof args[2] === 'number') backlog = args[2];
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`listen: port must be 0-65535, got ${typeof a0 === 'object' && a0 !== null ? String((a0 as ListenOptions).port).slice(0, 40) : String(a0).slice(0, 40)}`);
    if (this.listener) throw invalidArgument('listen: server is already listening');
    const addr = hostName && hostName !== '0.0.0.0' && hostName !== '::' ? mustParseIp(hostName, 'listen host') : undefined;
    backlog ??= NET_DEFAULT_BACKLOG;
    try {
      this.listener = port === 0 ? this.listenEphemeral(addr, backlog) : this.host.engine.iface.tcp.listen({ addr, port, backlog });
    } catch (err) {
      const e = (err as { code?: string }).code === 'EADDRINUSE' ? systemError('EADDRINUSE', 'listen', hostName ?? '::', port) : (err as Error);
      process.nextTick(() => this.emit('error', e));
      return this;
    }
    this.host.registerListener(this.listener!, this);
    if (cb) this.once('listening', cb);
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  /** Port 0, as net.Server: a free port from the dynamic range (RFC 6335), the stack choosing none itself. */
  private listenEphemeral(addr: ReturnType<typeof mustParseIp> | undefined, backlog: number | undefined): TcpListener {
    const tcp = this.host.engine.iface.tcp;
    const base = 49152 + randomInt(systemRng, 16384);
    for (let i = 0; i < 16384; i++) {
      const port = 49152 + ((base - 49152 + i) % 16384);
      try {
        return tcp.listen({ addr, port, backlog });
      } catch (err) {
        if ((err as { code?: string }).code !== 'EADDRINUSE') throw err;
      }
    }
    throw systemError('EADDRINUSE', 'listen', addr ? formatIp(addr) : '::', 0);
  }

  /** @internal Connections are waiting in the accept queue. */
  onAccept(): void {
    const l = this.listener;
    if (!l) return;
    for (let conn = l.accept(); conn; conn = l.accept()) {
      if (this.sockets.size >= this.maxConnections) {
        conn.abort(this.host.engine.now());
        continue;
      }
      const sock = new TcpSocket(this.host.engine, this.opts);
      sock.attach(conn, true);
      this.host.registerConnection(sock);
      this.sockets.add(sock);
      sock.once('close', () => {
        this.sockets.delete(sock);
        this.maybeClosed();
      });
      if (this.opts.pauseOnConnect) sock.pause();
      // A throwing listener must not end this loop: the listener's queue would keep the rest,
      // and no new 'tcp-accept' comes while it is not empty, so the server would accept no
      // more. The exception goes to 'uncaughtException', as from net.Server (engine.ts).
      try {
        this.emit('connection', sock);
      } catch (err) {
        this.host.engine.callbackError(err);
      }
    }
    this.host.engine.schedule();
  }

  address(): { address: string; family: string; port: number } | null {
    const l = this.listener;
    if (!l) return null;
    const addr = l.addr;
    return {
      address: addr ? formatIp(addr) : '::',
      family: addr && familyOf(addr) === 4 ? 'IPv4' : 'IPv6',
      port: l.port,
    };
  }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    process.nextTick(cb, null, this.sockets.size);
    return this;
  }

  /** Stops accepting; 'close' fires once every accepted connection has ended, as net.Server. */
  close(cb?: (err?: Error) => void): this {
    if (!this.listener) {
      if (cb) process.nextTick(cb, systemError('ERR_SERVER_NOT_RUNNING', 'close'));
      return this;
    }
    this.host.unregisterListener(this.listener);
    this.listener.close();
    this.listener = undefined;
    this.closing = true;
    if (cb) this.once('close', cb);
    this.host.engine.schedule();
    this.maybeClosed();
    return this;
  }

  /** Ends every accepted connection at once (RST), as server.closeAllConnections() does for http. */
  closeAllConnections(): void {
    for (const s of this.sockets) s.resetAndDestroy();
  }

  private maybeClosed(): void {
    if (this.closing && this.sockets.size === 0) {
      this.closing = false;
      process.nextTick(() => this.emit('close'));
    }
  }

  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}
