/**
 * The UAPI unix socket at /var/run/wireguard/NAME.sock, where `wg` looks for
 * userspace implementations. Created with umask 077 like wireguard-go; a stale
 * socket (nobody answering) is replaced, a live one is refused.
 */
import net from 'node:net';
import { mkdirSync, unlinkSync, existsSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { UapiConnection, type UapiHost } from '../wireguard/uapi.js';
import type { Peer } from '../wireguard/device.js';
import { WgnetError } from '../util/errors.js';

export const UAPI_DIR = process.env.WGNET_UAPI_DIR ?? '/var/run/wireguard';

export function uapiSocketPath(name: string, dir = UAPI_DIR): string {
  if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(name)) {
    throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `interface name '${name}': 1-15 characters of [A-Za-z0-9_=+.-] (as Linux and wg require)`);
  }
  return join(dir, `${name}.sock`);
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * Bounds on what one local client can make the server hold. wireguard-go reads
 * a request line by line; here a request is buffered until its blank line, so
 * the bound is on the whole request.
 */
export interface UapiServerLimits {
  /** Bytes of one request (get=1 / set=1 up to its blank line); a larger one gets errno=-22 and the connection closes. */
  maxRequestBytes: number;
  /** Clients connected at once; more are closed at once. */
  maxClients: number;
  /** A request must arrive complete within this long of connecting or of the previous answer; then the connection closes. */
  readTimeoutMs: number;
}

/**
 * 16 MiB holds a `wg setconf` of ~80,000 peers (a peer with a key, an endpoint and a few
 * allowed IPs is ~200 bytes; a gateway with 10,000 peers sends ~2.5 MB in one request);
 * `wg` sends one request and closes, so a client needs far less than 10 s and few need to
 * be connected at once: 8 clients bound what unfinished requests can hold to 128 MiB.
 */
export const DEFAULT_UAPI_LIMITS: Readonly<UapiServerLimits> = { maxRequestBytes: 16 << 20, maxClients: 8, readTimeoutMs: 10_000 };

export class UapiServer {
  /** Clients refused or cut by a limit, by limit. */
  readonly limited = { clients: 0, requestBytes: 0, readTimeout: 0 };

  private constructor(
    private readonly server: net.Server,
    readonly path: string,
  ) {}

  static async listen(name: string, host: UapiHost, onKick: (peers: Peer[]) => void, dir = UAPI_DIR, limits: Partial<UapiServerLimits> = {}): Promise<UapiServer> {
    const lim: UapiServerLimits = { ...DEFAULT_UAPI_LIMITS, ...limits };
    const path = uapiSocketPath(name, dir);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (existsSync(path)) {
      if (await isLive(path)) throw new WgnetError('ERR_WGNET_IN_USE', `${path} is in use by another running interface`);
      unlinkSync(path);
    }
    let self: UapiServer | undefined;
    const server = net.createServer((sock) => {
      sock.setEncoding('latin1');
      sock.on('error', () => sock.destroy());
      // The read deadline: armed at connect and again after each answer (the client is then idle until its next request).
      let deadline: NodeJS.Timeout | undefined;
      const arm = (): void => {
        clearTimeout(deadline);
        deadline = setTimeout(() => {
          if (self) self.limited.readTimeout++;
          sock.destroy();
        }, lim.readTimeoutMs);
        deadline.unref();
      };
      arm();
      sock.once('close', () => clearTimeout(deadline));
      /**
       * Ends the connection after its last answer. Reading stops, so a client still sending (an
       * oversized request) blocks instead of us reading and dropping the rest; the answer is
       * flushed, then the socket is freed even if the client never reads it.
       */
      let shutting = false;
      const shut = (last?: string): void => {
        if (sock.destroyed) return;
        shutting = true; // reads stay paused (readOn below)
        sock.pause();
        const t = setTimeout(() => sock.destroy(), 1000);
        t.unref();
        sock.end(last ?? '', () => sock.destroy());
      };
      const conn = new UapiConnection(
        host,
        (s) => {
          if (sock.destroyed) return;
          const flushed = sock.write(s);
          if (!s.endsWith('\n\n')) return;
          arm(); // an answer: the request is done
          // The next request is read once this answer is on its way to the client.
          const next = (): void => {
            answering = false;
            readOn();
          };
          if (flushed) next();
          else sock.once('drain', next);
        },
        () => shut(),
        onKick,
        lim.maxRequestBytes, // UapiConnection buffers at most this (+ one chunk), then answers errno=-22 and closes
      );
      // Bytes since the blank line that ended the last request, to count refusals (and as a second bound).
      let pending = 0;
      let endsNl = false;
      const feed = (d: string): void => {
        const i = d.lastIndexOf('\n\n');
        const end = i >= 0 ? i + 2 : endsNl && d[0] === '\n' ? 1 : 0;
        pending = i >= 0 || end > 0 ? d.length - end : pending + d.length;
        endsNl = d.endsWith('\n');
        if (pending > lim.maxRequestBytes + 65536 && !conn.closed) {
          // UapiConnection did not refuse it (a request it does not bound): refuse here.
          if (self) self.limited.requestBytes++;
          return shut('errno=-22\n\n');
        }
        const wasOpen = !conn.closed;
        conn.feed(d);
        if (wasOpen && conn.closed && pending > lim.maxRequestBytes && self) self.limited.requestBytes++;
      };
      /**
       * One request at a time, as wireguard-go serves them (it reads a request, writes the
       * answer, reads on): the text after a request's blank line waits until that request's
       * answer is written and the socket has drained it, with the socket paused meanwhile.
       * Feeding whole reads instead let one 64 KiB read of pipelined `get=1\n\n` (9,362
       * requests) queue 9,362 listings for a client that reads none of them: with 100 peers,
       * 1 MiB of requests ran the process out of heap. Now a client that stops reading holds
       * one answer and the kernel's socket buffers, and the read timeout ends it.
       */
      const held: string[] = [];
      let answering = false; // a request was fed to its end and its answer is not out yet
      const readOn = (): void => {
        while (!answering && held.length > 0 && !shutting && !sock.destroyed && !conn.closed) {
          const d = held.shift()!;
          const straddle = endsNl && d[0] === '\n'; // the blank line began in the last read
          const i = straddle ? 0 : d.indexOf('\n\n');
          if (i < 0) {
            feed(d); // a request still arriving (a large set=1 comes in many reads)
            continue;
          }
          const cut = straddle ? 1 : i + 2;
          if (cut < d.length) held.unshift(d.slice(cut));
          answering = true;
          feed(d.slice(0, cut));
        }
        if (held.length > 0 || answering || shutting) sock.pause();
        else sock.resume();
      };
      sock.on('data', (d: string) => {
        held.push(d);
        readOn();
      });
    });
    server.maxConnections = lim.maxClients;
    server.on('drop', () => {
      if (self) self.limited.clients++;
    });
    const old = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    self = new UapiServer(server, path);
    return self;
  }

  /** Whether our socket file still exists (wireguard-go exits when it is removed). */
  exists(): boolean {
    return existsSync(this.path);
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}
