/**
 * tunnel.connect(): net.connect's argument shapes, a lookup through the tunnel's DNS, an
 * immediate EHOSTUNREACH where no peer routes the address, and a connect timeout whose
 * ETIMEDOUT says which step (lookup, WireGuard handshake, SYN) never finished.
 */
import type net from 'node:net';
import type { Engine } from '../io/engine.js';
import { formatIp, parseIp, mustParseIp, type IpAddr } from '../util/ip.js';
import { toBase64 } from '../util/bytes.js';
import { systemError, invalidArgument } from '../util/errors.js';
import { REJECT_AFTER_TIME } from '../wireguard/constants.js';
import { TcpSocket, type TcpSocketOptions } from './tcp-socket.js';
import { abortError } from './lifecycle.js';
import type { LookupResult } from './resolver.js';

export interface ConnectOptions extends TcpSocketOptions {
  host?: string;
  /** A number or a numeric string, as net.connect takes it (ws passes `'8080'`). */
  port: number | string;
  family?: 0 | 4 | 6;
  localAddress?: string;
  localPort?: number;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  timeout?: number;
  /**
   * Milliseconds for the whole connect (lookup, handshake, SYN/SYN-ACK) before the socket is destroyed
   * with ETIMEDOUT saying what was missing (no handshake with the peer, or no answer to the SYN).
   * Default 10000, as undici's; 0 waits as long as TCP retries (about two minutes).
   */
  connectTimeout?: number;
  /** Destroys the socket with an AbortError when aborted (before or after it connects), as net.Socket's `signal`. */
  signal?: AbortSignal;
}

/** What a connect needs from its tunnel. */
export interface Dialer {
  readonly engine: Engine;
  assertOpen(): void;
  /** Whether a peer's AllowedIPs (or the tunnel itself) cover the address. */
  routes(address: string): boolean;
  lookup(host: string, opts: { family: 0 | 4 | 6 }): Promise<LookupResult>;
  /** Delivers the connection's events to the socket until it closes. */
  register(id: number, sock: TcpSocket): void;
}

/** connect(port[, host][, cb]) or connect(options[, cb]) as net.connect; see Tunnel#connect. */
export function openConnection(
  d: Dialer,
  portOrOpts: number | string | ConnectOptions | net.NetConnectOpts,
  hostOrCb?: string | (() => void),
  cb?: () => void,
): TcpSocket {
  const opts: ConnectOptions =
    typeof portOrOpts === 'number' || typeof portOrOpts === 'string'
      ? { port: portOrOpts, host: typeof hostOrCb === 'string' ? hostOrCb : undefined }
      : (portOrOpts as ConnectOptions);
  if (opts && typeof opts === 'object' && 'path' in opts && (opts as { port?: unknown }).port === undefined) {
    throw invalidArgument('connect: a tunnel has no Unix sockets (path); give a port and host');
  }
  if (opts === null || typeof opts !== 'object') throw invalidArgument(`connect: expected a port or an options object, got ${opts === null ? 'null' : typeof opts}`);
  const done = typeof hostOrCb === 'function' ? hostOrCb : cb;
  d.assertOpen();
  const engine = d.engine;
  const sock = new TcpSocket(engine, opts);
  if (done) sock.once('connect', done);
  const signal = opts.signal;
  if (signal) {
    const onAbort = (): void => void sock.destroy(abortError(signal));
    if (signal.aborted) process.nextTick(onAbort);
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      sock.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }
  if (opts.noDelay === false) sock.setNoDelay(false);
  if (opts.keepAlive) sock.setKeepAlive(true, opts.keepAliveInitialDelay ?? 0);
  if (opts.timeout) sock.setTimeout(opts.timeout);
  sock.connecting = true;
  const port = typeof opts.port === 'string' && !/^\s*[0-9]+\s*$/.test(opts.port) ? NaN : Number(opts.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw invalidArgument(`connect: port must be 1-65535, got ${String(opts.port).slice(0, 40)}`);
  const host = opts.host || 'localhost';
  sock.dialled = { host, port };
  const connectTimeout = opts.connectTimeout ?? 10_000;
  if (typeof connectTimeout !== 'number' || !(connectTimeout >= 0)) throw invalidArgument(`connect: connectTimeout must be a number of milliseconds >= 0, got ${String(connectTimeout).slice(0, 40)}`);
  let target: IpAddr | undefined;
  if (connectTimeout > 0) {
    const timer = setTimeout(() => {
      if (!sock.destroyed && sock.connecting) sock.destroy(connectTimedOut(engine, target, host, port, connectTimeout));
    }, connectTimeout);
    const clear = (): void => clearTimeout(timer);
    sock.once('connect', clear);
    sock.once('close', clear);
  }
  const start = (addr: IpAddr): void => {
    if (sock.destroyed) return;
    target = addr;
    sock.autoSelectFamilyAttemptedAddresses = [`${formatIp(addr)}:${port}`];
    // No peer's AllowedIPs covers it: nothing could carry the SYN, so fail now as the
    // kernel does for a route-less destination, not after two minutes of retries.
    if (!d.routes(formatIp(addr))) return void sock.destroy(systemError('EHOSTUNREACH', 'connect', formatIp(addr), port));
    try {
      const conn = engine.iface.tcp.connect(engine.now(), {
        remoteAddr: addr,
        remotePort: port,
        localAddr: opts.localAddress ? mustParseIp(opts.localAddress, 'localAddress') : undefined,
        localPort: opts.localPort,
        noDelay: opts.noDelay !== false,
      });
      sock.attach(conn, false);
      d.register(conn.id, sock);
      engine.schedule();
    } catch (err) {
      sock.destroy(err as Error);
    }
  };
  const lit = parseIp(host);
  if (lit) start(lit);
  else {
    d.lookup(host, { family: opts.family ?? 0 }).then(
      (r) => {
        sock.emit('lookup', null, r.address, r.family, host);
        start(mustParseIp(r.address));
      },
      (err: Error) => sock.destroy(err),
    );
  }
  return sock;
}

/** connect()'s ETIMEDOUT: which of lookup, handshake or SYN never finished, and with which peer. */
function connectTimedOut(engine: Engine, addr: IpAddr | undefined, host: string, port: number, ms: number): Error {
  const where = addr ? formatIp(addr) : host;
  const e = systemError('ETIMEDOUT', 'connect', where, port);
  let why = addr ? '' : `: '${host.slice(0, 60)}' did not resolve in time`;
  const peer = addr ? engine.device.allowedIps.lookup(addr.length === 4 ? 4 : 6, addr) : undefined;
  if (peer) {
    const key = toBase64(peer.publicKey);
    const up = peer.current !== undefined && engine.now() - peer.current.created < REJECT_AFTER_TIME;
    if (up) why = `: the WireGuard session with peer ${key} is up, but nothing answered the SYN`;
    else if (!peer.endpoint) why = `: no handshake with peer ${key}, which has no endpoint (it has to connect to this tunnel first)`;
    else {
      const ep = `${peer.endpoint.address.includes(':') ? `[${peer.endpoint.address}]` : peer.endpoint.address}:${peer.endpoint.port}`;
      const sent = peer.pending ? peer.attempts + 1 : 0;
      why = `: no handshake with peer ${key} at ${ep} (${sent} initiation${sent === 1 ? '' : 's'} sent${peer.rxBytes > 0 ? '' : ', nothing received from it'})`;
    }
  }
  e.message = `connect ETIMEDOUT ${where}:${port} after ${ms} ms${why}`;
  return e;
}
