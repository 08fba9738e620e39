/**
 * The HTTP clients of a tunnel: an undici dispatcher and node:http/https agents whose every
 * connection is a tunnel connection, made lazily and closed with the tunnel.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { Agent as UndiciAgent, type Dispatcher } from 'undici';
import { undiciHonoursDispatcher, dispatcherUnsupported } from './http-fetch.js';
import { parseIp } from '../util/ip.js';
import type { TcpSocket } from './tcp-socket.js';

/** TLS's servername is a host name (RFC 6066 §3: IP literals are not permitted; Node warns, DEP0123). */
function serverName(host: string | undefined): string | undefined {
  return host === undefined || parseIp(host) ? undefined : host;
}

export class TunnelHttp {
  private agent: UndiciAgent | undefined;
  private http: http.Agent | undefined;
  private https: https.Agent | undefined;

  constructor(private readonly connect: (o: { host: string; port: number }) => TcpSocket) {}

  dispatcher(): Dispatcher {
    if (!undiciHonoursDispatcher()) throw dispatcherUnsupported();
    this.agent ??= new UndiciAgent({
      connect: (opts, cb) => {
        const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
        const sock = this.connect({ host: opts.hostname, port });
        const onError = (err: Error): void => cb(err, null);
        if (opts.protocol === 'https:') {
          const t = tls.connect({ socket: sock as unknown as Duplex, servername: opts.servername ?? serverName(opts.hostname), ALPNProtocols: ['http/1.1'] });
          t.once('secureConnect', () => {
            t.off('error', onError);
            cb(null, t);
          });
          t.once('error', onError);
        } else {
          sock.once('connect', () => {
            sock.off('error', onError);
            cb(null, sock as never);
          });
          sock.once('error', onError);
        }
      },
    });
    return this.agent;
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
        return tls.connect({ ...(o as tls.ConnectionOptions), socket: raw as unknown as Duplex, servername: o.servername ?? serverName(host) });
      }
    })({ keepAlive: true });
    return this.https;
  }

  close(): void {
    // Bun's built-in undici Agent may lack destroy (its dispatcher is never made there, but be safe).
    if (typeof this.agent?.destroy === 'function') this.agent.destroy().catch(() => {});
    this.http?.destroy();
    this.https?.destroy();
  }
}
