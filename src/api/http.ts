/**
 * The HTTP clients of a tunnel: undici dispatchers and node:http/https agents whose every
 * connection is a tunnel connection, made lazily and closed with the tunnel.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { Agent as UndiciAgent, type Dispatcher } from 'undici';
import { undiciHonoursDispatcher, dispatcherUnsupported } from './http-fetch.js';
import { parseIp } from '../util/ip.js';
import { invalidArgument, systemError } from '../util/errors.js';
import type { TcpSocket } from './tcp-socket.js';

/** TLS's servername is a host name (RFC 6066 §3: IP literals are not permitted; Node warns, DEP0123). */
function serverName(host: string | null | undefined): string | undefined {
  return typeof host !== 'string' || host === '' || parseIp(host.replace(/^\[(.*)\]$/, '$1')) ? undefined : host;
}

/**
 * How a dispatcher's connections are made: tls.connect's options for https origins (a private
 * `ca`, a client `cert`/`key`, `rejectUnauthorized`, a `servername` other than the URL's host...)
 * and `timeout`, the milliseconds for the whole connect: lookup, WireGuard handshake, TCP and
 * TLS handshakes (default 10000, undici's connect timeout).
 */
export type TunnelConnectOptions = Omit<tls.ConnectionOptions, 'socket' | 'host' | 'port' | 'path' | 'timeout' | 'lookup' | 'ALPNProtocols'> & {
  timeout?: number;
};

/**
 * tunnel.createDispatcher()'s options: undici Agent's (keepAliveTimeout, connections,
 * pipelining, ...), with `connect` as above and `allowH2` offering HTTP/2 in ALPN (RFC 7301)
 * beside http/1.1, used when the server picks it.
 */
export interface TunnelDispatcherOptions extends Omit<UndiciAgent.Options, 'connect' | 'allowH2'> {
  connect?: TunnelConnectOptions;
  allowH2?: boolean;
}

type Dial = (o: { host: string; port: number; connectTimeout?: number }) => TcpSocket;

export class TunnelHttp {
  private agent: Dispatcher | undefined;
  /** Every dispatcher made and not yet closed: close() destroys them with the tunnel. */
  private readonly agents = new Set<UndiciAgent>();
  private http: http.Agent | undefined;
  private https: https.Agent | undefined;

  constructor(private readonly connect: Dial) {}

  /** The tunnel's default dispatcher (tunnel.dispatcher, tunnel.fetch): the system's CAs, http/1.1. */
  dispatcher(): Dispatcher {
    this.agent ??= this.createDispatcher({});
    return this.agent;
  }

  createDispatcher(opts: TunnelDispatcherOptions): Dispatcher {
    if (!undiciHonoursDispatcher()) throw dispatcherUnsupported();
    if (opts === null || typeof opts !== 'object') throw invalidArgument(`createDispatcher: expected an options object, got ${opts === null ? 'null' : typeof opts}`);
    const { connect: connectOpts = {}, allowH2 = false, ...agentOpts } = opts;
    const { timeout = 10_000, servername: fixedName, ...tlsOpts } = connectOpts;
    if (typeof timeout !== 'number' || !(timeout >= 0)) throw invalidArgument(`createDispatcher: connect.timeout must be a number of milliseconds >= 0, got ${String(timeout).slice(0, 40)}`);
    const dial = this.connect;
    const agents = this.agents;
    const agent: UndiciAgent = new (class extends UndiciAgent {
      // Forgotten once closed, so a program that makes and closes dispatchers does not pile them up here.
      override close(...args: unknown[]): never {
        agents.delete(agent);
        return (UndiciAgent.prototype.close as (...a: unknown[]) => never).apply(this, args);
      }
      override destroy(...args: unknown[]): never {
        agents.delete(agent);
        return (UndiciAgent.prototype.destroy as (...a: unknown[]) => never).apply(this, args);
      }
    })({
      ...agentOpts,
      allowH2,
      connect: (o, cb) => {
        const port = Number(o.port) || (o.protocol === 'https:' ? 443 : 80);
        let sock: TcpSocket;
        try {
          sock = dial({ host: o.hostname, port, connectTimeout: timeout });
        } catch (err) {
          return void cb(err as Error, null);
        }
        let done = false;
        let t: tls.TLSSocket | undefined;
        const finish = (err: Error | null): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          sock.off('error', finish);
          t?.off('error', finish);
          if (!err) return void cb(null, (t ?? sock) as never);
          t?.destroy();
          sock.destroy();
          cb(err, null);
        };
        // tunnel.connect's own timer covers lookup, handshake and SYN; this one the TLS handshake too.
        const timer =
          timeout > 0 && o.protocol === 'https:'
            ? setTimeout(() => {
                const e = systemError('ETIMEDOUT', 'connect', o.hostname, port);
                e.message = `connect ETIMEDOUT ${o.hostname}:${port} after ${timeout} ms: the TLS handshake did not finish`;
                finish(e);
              }, timeout)
            : undefined;
        sock.once('error', finish);
        if (o.protocol === 'https:') {
          try {
            t = tls.connect({
              ...tlsOpts,
              socket: sock as unknown as Duplex,
              // The name the certificate is checked against (tls.checkServerIdentity): the URL's host, an IP included.
              host: o.hostname,
              servername: serverName(fixedName) ?? serverName(o.servername) ?? serverName(o.hostname),
              ALPNProtocols: allowH2 ? ['h2', 'http/1.1'] : ['http/1.1'],
            });
          } catch (err) {
            return void finish(err as Error); // options tls.connect refuses (a malformed ca, key or cert)
          }
          t.once('secureConnect', () => finish(null));
          t.once('error', finish);
        } else {
          sock.once('connect', () => finish(null));
        }
      },
    });
    agents.add(agent);
    return agent;
  }

  httpAgent(): http.Agent {
    const connect = this.connect;
    this.http ??= new (class extends http.Agent {
      override createConnection(o: http.ClientRequestArgs, cb?: (err: Error | null, s: Duplex) => void): Duplex {
        const s = connect({ host: o.hostname ?? o.host ?? 'localhost', port: Number(o.port) || 80 });
        if (cb) {
          s.once('connect', () => cb(null, s));
          s.once('error', (e) => cb(e, s));
        }
        return s;
      }
    })({ keepAlive: true });
    return this.http;
  }

  httpsAgent(): https.Agent {
    const connect = this.connect;
    this.https ??= new (class extends https.Agent {
      override createConnection(o: https.RequestOptions & { servername?: string }): Duplex {
        const host = o.hostname ?? o.host ?? 'localhost';
        const raw = connect({ host, port: Number(o.port) || 443 });
        return tls.connect({ ...(o as tls.ConnectionOptions), socket: raw as unknown as Duplex, servername: serverName(o.servername) ?? serverName(host) });
      }
    })({ keepAlive: true });
    return this.https;
  }

  close(): void {
    for (const a of [...this.agents]) a.destroy().catch(() => {});
    this.agents.clear();
    this.http?.destroy();
    this.https?.destroy();
  }
}
