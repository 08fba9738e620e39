/**
 * What the proxy and forward servers need from a network: TCP connections
 * that resolve once connected, and name resolution. A tunnel provides it;
 * so does the host's own stack (for the other side of a `-R` forward).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Tunnel } from '../api/tunnel.js';

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

export function tunnelDialer(t: Tunnel, timeoutMs = 20_000): Dialer {
  return {
    connect: (host, port) => {
      const s = t.connect({ host, port });
      const timer = setTimeout(() => s.destroy(Object.assign(new Error(`connect ETIMEDOUT ${host}:${port}`), { code: 'ETIMEDOUT' })), timeoutMs);
      return whenConnected(s).finally(() => clearTimeout(timer));
    },
    udp: (family) => t.createSocket(family === 6 ? 'udp6' : 'udp4'),
  };
}

export function systemDialer(): Dialer {
  return { connect: (host, port) => whenConnected(net.connect({ host, port })) };
}

/** Pipes both ways with backpressure; half-close passes through; an error ends both. */
export function splice(a: Duplex, b: Duplex, count?: (dir: 'up' | 'down', n: number) => void): void {
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
  a.on('close', () => b.destroyed || b.end());
  b.on('close', () => a.destroyed || a.end());
}
