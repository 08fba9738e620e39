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

export class UapiServer {
  private constructor(
    private readonly server: net.Server,
    readonly path: string,
  ) {}

  static async listen(name: string, host: UapiHost, onKick: (peers: Peer[]) => void, dir = UAPI_DIR): Promise<UapiServer> {
    const path = uapiSocketPath(name, dir);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (existsSync(path)) {
      if (await isLive(path)) throw new WgnetError('ERR_WGNET_IN_USE', `${path} is in use by another running interface`);
      unlinkSync(path);
    }
    const server = net.createServer((sock) => {
      sock.setEncoding('latin1');
      const conn = new UapiConnection(
        host,
        (s) => {
          if (!sock.destroyed) sock.write(s);
        },
        () => sock.end(),
        onKick,
      );
      sock.on('data', (d: string) => conn.feed(d));
      sock.on('error', () => sock.destroy());
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
    return new UapiServer(server, path);
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
