/**
 * What the proxy and forward servers need from a network: TCP connections
 * that resolve once connected, and name resolution. A tunnel provides it;
 * so does the host's own stack (for the other side of a `-R` forward).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Tunnel } from '../api/tunnel.js';
import { WgnetError } from '../util/errors.js';

/** A UDP socket of the dialer's network, shaped like dgram.Socket (what SOCKS5 UDP ASSOCIATE relays through). */
export interface DatagramSocket {
  send(msg: Uint8Array, port: number, address: string, cb?: (err: Error | null) => void): void;
  on(ev: 'message', fn: (msg: Buffer, rinfo: { address: string; port: number }) => void): unknown;
  on(ev: 'error', fn: (err: Error) => void): unknown;
  close(): void;
}

export interface Dialer {
  /** Resolves once connected; rejects with a Node-style error (err.code). */
  connect(host: string, port: number): Promise<Duplex & { localAddress?: string; localPort?: number }>;
  /** A UDP socket; names given to its send() resolve like connect()'s. */
  udp?(family: 4 | 6): DatagramSocket;
}

function whenConnected<T extends Duplex>(s: T): Promise<T> {
  return new Promise((resolve, reject) => {
    const onErr = (e: Error): void => reject(e);
    s.once('error', onErr);
    s.once('connect', () => {
      s.off('error', onErr);
      resolve(s);
    });
  });
}

/** Whether `port` is a TCP/UDP destination port (1-65535); port 0 and anything else are refused before any dial. */
export function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** A rejection with code ERR_WGNET_INVALID_ARGUMENT (the listeners answer it as a bad request, 400 / SOCKS 0x01). */
function badRequest(message: string): Promise<never> {
  return Promise.reject(new WgnetError('ERR_WGNET_INVALID_ARGUMENT', message));
}

/**
 * `d.connect(host, port)` that never throws synchronously. Every listener dials
 * through this: host and port come from a local client (a SOCKS request, a
 * CONNECT line), and an exception thrown from a socket's 'data' handler or an
 * http server's 'connect' event is uncaught and ends the process.
 */
export function dial(d: Dialer, host: string, port: number): ReturnType<Dialer['connect']> {
  if (!isPort(port)) return badRequest(`port must be 1-65535, got ${String(port)}`);
  if (typeof host !== 'string' || host.length === 0 || host.length > 255) return badRequest('bad host');
  try {
    return d.connect(host, port);
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

export function tunnelDialer(t: Tunnel, timeoutMs = 20_000): Dialer {
  return {
    connect: (host, port) => {
      let s: ReturnType<Tunnel['connect']>;
      try {
        s = t.connect({ host, port });
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      const timer = setTimeout(() => s.destroy(Object.assign(new Error(`connect ETIMEDOUT ${host}:${port}`), { code: 'ETIMEDOUT' })), timeoutMs);
      return whenConnected(s).finally(() => clearTimeout(timer));
    },
    udp: (family) => t.createSocket(family === 6 ? 'udp6' : 'udp4'),
  };
}

export function systemDialer(): Dialer {
  return {
    connect: (host, port) => {
      try {
        return whenConnected(net.connect({ host, port }));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
  };
}

/**
 * How a proxied request ended: the `outcome` of the one line each proxy logs per request
 * (SOCKS5 and HTTP alike, so one grep or one JSON query reads both).
 */
export type Outcome = 'ok' | 'aborted' | 'dns-failed' | 'refused' | 'unreachable' | 'timeout' | 'reset' | 'failed' | 'bad-request';

/** Outcomes of a dial that failed on the far side: logged at info, as forward's failures; the rest at debug. */
const DIAL_FAILED: ReadonlySet<Outcome> = new Set(['dns-failed', 'refused', 'unreachable', 'timeout', 'reset', 'failed']);

/**
 * Whether a dial failed in the name lookup rather than in the connect: Node's dns.lookup and
 * the tunnel's lookup (which mimics it) both fail with syscall 'getaddrinfo'; Node's
 * resolver (dns.resolve*) names the query ('queryA', 'queryAaaa', ...).
 */
export function isDnsFailure(err: NodeJS.ErrnoException): boolean {
  return err.syscall === 'getaddrinfo' || (typeof err.syscall === 'string' && err.syscall.startsWith('query'));
}

/**
 * A failed dial as an outcome and a code. A lookup failure keeps the name of what failed
 * ('dns-failed'), and its code is what getaddrinfo(3) would give, the codes Node's
 * dns.lookup users know: ENOTFOUND when the name does not exist (or the tunnel has no DNS
 * server), EAI_AGAIN when the servers did not answer, refused or timed out. The tunnel's
 * resolver reports an unreachable server as ECONNREFUSED (c-ares' dns.CONNREFUSED), which in
 * a proxy log read as "the destination refused the connection" (issue 15).
 */
export function dialFailure(err: NodeJS.ErrnoException): { outcome: Outcome; error: string } {
  const code = typeof err.code === 'string' ? err.code : err.message;
  if (isDnsFailure(err)) return { outcome: 'dns-failed', error: code === 'ENOTFOUND' || code.startsWith('EAI_') ? code : 'EAI_AGAIN' };
  switch (code) {
    case 'ECONNREFUSED':
      return { outcome: 'refused', error: code };
    case 'ETIMEDOUT':
      return { outcome: 'timeout', error: code };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { outcome: 'unreachable', error: code };
    case 'ECONNRESET':
      return { outcome: 'reset', error: code };
    case 'ERR_WGNET_INVALID_ARGUMENT':
      return { outcome: 'bad-request', error: code };
    default:
      return { outcome: 'failed', error: code };
  }
}

/** `host:port`, with an IPv6 literal in brackets (RFC 3986 §3.2.2). */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export type ProxyLog = (level: 'info' | 'debug' | 'warn', msg: string, fields?: Record<string, unknown>) => void;

/** One proxied request, as logged when it ends. */
export interface RequestRecord {
  /** The local client, `address:port`. */
  client: string;
  /** 'CONNECT', 'UDP ASSOCIATE' (SOCKS5), or the HTTP method. */
  method: string;
  /** `host:port` asked for (a name as given, before any lookup). */
  target: string;
  outcome: Outcome;
  /** The Node-style code of a failure. */
  error?: string;
  /** HTTP: the status the client got. */
  status?: number;
  /** Bytes from the client to the target and back (for UDP ASSOCIATE, datagram payload bytes). */
  up: number;
  down: number;
  /** Date.now() when the request arrived: `ms` is the request's whole life. */
  started: number;
}

/** Logs a finished request: `<listener> request client=… method=… target=… outcome=… [error=…] [status=…] up=… down=… ms=…`. */
export function logRequest(log: ProxyLog | undefined, listener: 'socks5' | 'http proxy', r: RequestRecord): void {
  if (!log) return;
  const fields: Record<string, unknown> = { client: r.client, method: r.method, target: r.target, outcome: r.outcome };
  if (r.error !== undefined) fields.error = r.error;
  if (r.status !== undefined) fields.status = r.status;
  fields.up = r.up;
  fields.down = r.down;
  fields.ms = Date.now() - r.started;
  log(DIAL_FAILED.has(r.outcome) ? 'info' : 'debug', `${listener} request`, fields);
}

/** How long a client may keep its side open after we ended ours (answered a failure, or the other side closed). */
export const CLOSE_GRACE_MS = 5_000;

/**
 * Ends a client connection with a last answer (a SOCKS reply, an HTTP status)
 * and makes sure it is freed. Three things are needed, and missing any one
 * leaks the socket and its fd:
 * - read on: a paused socket with unread bytes (the client sent data after its
 *   request, before our answer) never sees the client's FIN, so it never closes;
 *   resume() discards them and lets the EOF through;
 * - end() rather than destroy(): closing with unread data would send a RST that
 *   can overtake the answer;
 * - a deadline: a client that never closes its side is destroyed after graceMs.
 */
export function endWith(sock: Duplex, answer?: Uint8Array | string, graceMs = CLOSE_GRACE_MS): void {
  if (sock.destroyed) return;
  sock.on('error', () => {});
  sock.on('data', () => {}); // discard, and flow
  sock.resume();
  if (answer !== undefined) sock.end(answer);
  else sock.end();
  const t = setTimeout(() => sock.destroy(), graceMs);
  t.unref();
  sock.once('close', () => clearTimeout(t));
  sock.once('end', () => {
    // Half-open sockets (http.Server's allow it) stay open after the client's FIN until we destroy them.
    if ((sock as Duplex & { writableFinished?: boolean }).writableFinished) sock.destroy();
    else sock.once('finish', () => sock.destroy());
  });
}

/**
 * Pipes both ways with backpressure; half-close passes through; an error on
 * either side destroys both; once either side has closed, the other is ended
 * (endWith: drained, and destroyed after a grace period if it lingers).
 * With `idle.ms` > 0, both are destroyed once no byte has moved either way for
 * that long (limits.ts idleTimeoutMs), and `idle.onIdle` is told.
 */
export function splice(a: Duplex, b: Duplex, count?: (dir: 'up' | 'down', n: number) => void, idle?: { ms: number; onIdle?: () => void }): void {
  const done = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', done);
  b.on('error', done);
  if (count) {
    a.on('data', (d: Buffer) => count('up', d.length));
    b.on('data', (d: Buffer) => count('down', d.length));
  }
  a.pipe(b);
  b.pipe(a);
  let timer: NodeJS.Timeout | undefined;
  if (idle && idle.ms > 0) {
    // One timer per relay, not one reset per chunk: a chunk only notes the time, and the
    // timer, when it fires early, sleeps for the rest of the quiet period.
    let last = performance.now();
    const touch = (): void => void (last = performance.now());
    a.on('data', touch);
    b.on('data', touch);
    const check = (): void => {
      const quiet = performance.now() - last;
      if (quiet < idle.ms) {
        timer = setTimeout(check, idle.ms - quiet);
        timer.unref();
        return;
      }
      timer = undefined;
      idle.onIdle?.();
      done();
    };
    timer = setTimeout(check, idle.ms);
    timer.unref();
  }
  const closed = (other: Duplex): void => {
    clearTimeout(timer);
    timer = undefined;
    endWith(other);
  };
  a.on('close', () => closed(b));
  b.on('close', () => closed(a));
}
