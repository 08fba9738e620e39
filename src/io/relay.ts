/**
 * The host side of gateway flows (DESIGN §1: io/relay): a peer's TCP connection, UDP flow or
 * echo request (that one in ./ping.ts), terminated by the netstack, continued through the
 * host's own sockets.
 * Nothing here decides whether a flow may go out; the gateway has already checked its
 * policy and limits before any of these functions opens a socket.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import type { Duplex } from 'node:stream';

export interface HostTarget {
  address: string;
  port: number;
}

/** How a host connect failed, as the peer should hear it: a RST, or ICMP unreachable. */
export type ConnectFailure = 'refused' | 'unreachable' | 'timeout';

/**
 * Connect-first TCP (as wiretap does): the host connection is made before the peer's
 * handshake completes, so a refused port becomes a RST to the peer and a silent one
 * becomes ICMP unreachable instead of a connection that accepts and then drops.
 */
export function connectHost(target: HostTarget, timeoutMs: number, done: (err: ConnectFailure | undefined, sock: net.Socket) => void): net.Socket {
  const sock = net.connect({ host: target.address, port: target.port, allowHalfOpen: true, noDelay: true });
  let settled = false;
  const finish = (err: ConnectFailure | undefined): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    sock.off('error', onError);
    if (err) sock.destroy();
    done(err, sock);
  };
  const onError = (e: NodeJS.ErrnoException): void => finish(e.code === 'ECONNREFUSED' ? 'refused' : 'unreachable');
  const timer = setTimeout(() => finish('timeout'), timeoutMs);
  timer.unref();
  sock.once('connect', () => finish(undefined));
  sock.on('error', onError);
  return sock;
}

/**
 * Joins two byte streams both ways with backpressure and half-close: an end from either
 * side becomes a FIN on the other, and the pair closes once both directions are done. An
 * error or reset on one side resets the other (RST for RST, as a NAT would).
 *
 * Not stream.pipe(): pipe is made for any number of destinations and for destinations that
 * go away on their own, and sets up and tears down about ten listeners per direction; a
 * relayed connection is two fixed ends whose errors and closes are handled here, and at the
 * gateway's connection rate (a connection per short request) that bookkeeping cost more
 * than the data path. Three listeners per direction do what pipe did for this pair.
 */
export function splice(a: Resettable, b: Resettable, onClose: () => void): void {
  a.on('error', () => reset(b));
  b.on('error', () => reset(a));
  forward(a, b);
  forward(b, a);
  let open = 2;
  const closed = (): void => {
    if (--open === 0) onClose();
  };
  a.once('close', closed);
  b.once('close', closed);
}

/**
 * One direction of a splice: what `from` reads is written to `to`, `from` paused while `to`
 * is over its high-water mark, and `from`'s end is `to`'s end(): a FIN in this direction
 * only, since both ends are allowHalfOpen. A write after `to` was destroyed (it was reset,
 * and `from` follows) is dropped by the stream without an error.
 */
function forward(from: Resettable, to: Resettable): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.once('end', () => to.end());
}

type Resettable = Duplex & { resetAndDestroy?: () => unknown };

/**
 * Closes a stream with a RST where it can. A host socket whose FIN is already queued
 * (end() called, shutdown not yet done) is destroyed instead: libuv refuses to reset a
 * handle that is shutting down (uv_tcp_close_reset: EINVAL) and Node then never closes
 * it, so the descriptor leaked and the process could not exit.
 */
export function reset(s: Resettable): void {
  if (s.destroyed) return;
  const shuttingDown = s instanceof net.Socket && s.writableEnded && !s.writableFinished;
  if (s.resetAndDestroy && !shuttingDown) s.resetAndDestroy();
  else s.destroy();
}

/** A connected host UDP socket for one flow. */
export interface HostUdp {
  send(data: Uint8Array): void;
  close(): void;
}

/** Datagrams held while the host socket connects (connect() is asynchronous in Node). */
const MAX_EARLY = 64;

export function openUdp(target: HostTarget, onMessage: (data: Buffer) => void, onError: (kind: 'refused' | 'unreachable') => void): HostUdp {
  const sock = dgram.createSocket(net.isIPv6(target.address) ? 'udp6' : 'udp4');
  let early: Uint8Array[] | undefined = [];
  let closed = false;
  sock.on('message', (m) => onMessage(m));
  sock.on('error', (e: NodeJS.ErrnoException) => {
    if (!closed) onError(e.code === 'ECONNREFUSED' ? 'refused' : 'unreachable');
  });
  sock.connect(target.port, target.address, () => {
    const q = early ?? [];
    early = undefined;
    for (const m of q) if (!closed) sock.send(m);
  });
  return {
    send(data: Uint8Array): void {
      if (closed) return;
      if (early) {
        if (early.length < MAX_EARLY) early.push(data);
      } else sock.send(data);
    },
    close(): void {
      if (closed) return;
      closed = true;
      sock.close();
    },
  };
}
