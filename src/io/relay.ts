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
import type { TcpConnection, TcpErrorCode } from '../netstack/types.js';
import type { Instant } from '../util/time.js';

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

/** What a relayed connection needs from the engine that runs the netstack. */
export interface StackDriver {
  now(): Instant;
  /** A pump soon, for changes made outside one (a write, a read that reopened the window). */
  schedule(): void;
}

/**
 * A relayed TCP flow: the netstack connection the gateway accepted for the peer, joined to
 * the host socket it connected first, with no stream in between. What splice() does for a
 * TcpSocket and a host socket, done on the connection itself: bytes each way with
 * backpressure (the connection's receive window closes while the host socket is over its
 * high-water mark; the host socket stops being read while the connection's send buffer is
 * full), half-close (each side's FIN becomes a FIN on the other, in that direction only),
 * and RST for RST. A TcpSocket per relayed flow (a Duplex with both stream states, its
 * listeners, ticks and the tunnel's bookkeeping) cost more than the relaying itself at a
 * connection per short request; the gateway still relays through a TcpSocket when
 * wgnet:tcp:open or wgnet:tcp:close has subscribers, whose messages carry the socket.
 *
 * The connection's events come from the gateway (tcp-connected, -readable, -writable,
 * -closed, inside the engine's pump); the host socket's from Node.
 */
export class TcpRelay {
  /** The peer's handshake has completed: host bytes may go into the send buffer. */
  private connected = false;
  /** Host bytes the send buffer has not taken yet; the host socket is paused meanwhile. */
  private pending: Uint8Array | undefined;
  /** The host sent FIN; it is passed on once `pending` is in the send buffer. */
  private hostEof = false;
  /** conn.shutdown() was called: the host's FIN is queued to the peer. */
  private finQueued = false;
  /** host.end() was called: the peer's FIN is on its way to the host. */
  private hostEnded = false;
  /** host.write() returned false: the connection is not read until 'drain'. */
  private hostFull = false;
  /** Nothing more goes to or comes from the connection; its later events are not ours. */
  private tunnelDone = false;
  private hostClosed = false;
  private finished = false;

  constructor(
    readonly conn: TcpConnection,
    readonly host: net.Socket,
    private readonly stack: StackDriver,
    private readonly events: {
      /** The tunnel side is done (its events may go elsewhere now). */
      detached(): void;
      /** Both sides are done. */
      closed(): void;
    },
  ) {
    host.on('data', (chunk: Buffer) => this.fromHost(chunk));
    host.on('end', () => this.hostEnd());
    host.on('drain', () => {
      this.hostFull = false;
      if (this.tunnelDone) return;
      this.pull();
      this.stack.schedule(); // the reads may have reopened the window
    });
    // RST for RST (as a NAT would): a host socket that fails resets the peer's connection.
    host.on('error', () => this.abortTunnel());
    host.once('close', () => {
      this.hostClosed = true;
      this.check();
    });
  }

  // --- the connection's events (inside the pump) -----------------------------------------

  /** The peer's ACK of our SYN-ACK arrived (RFC 9293 §3.5): what the host sent meanwhile may go. */
  onConnected(): void {
    this.connected = true;
    this.sendPending();
  }

  onReadable(): void {
    this.pull();
  }

  /** Send space was freed. */
  onWritable(): void {
    this.sendPending();
  }

  /**
   * The connection is gone. With an error (the peer's RST, a timeout) the host socket is
   * reset; gracefully, what is left is written to the host and its write side ended, and
   * host bytes that can no longer be delivered reset it (as a write to a closed TcpSocket
   * failed with EPIPE).
   */
  onClosed(error: TcpErrorCode | undefined): void {
    if (this.tunnelDone) return;
    if (error || this.pending) reset(this.host);
    else this.pull(true);
    this.detach();
  }

  /** Ends both sides with a RST (the gateway closing, the peer removed). */
  reset(): void {
    this.abortTunnel();
    reset(this.host);
  }

  // --- both directions ------------------------------------------------------------------

  /** Peer to host: what the connection has received, while the host socket takes it. */
  private pull(force = false): void {
    const conn = this.conn;
    while (force || !this.hostFull) {
      const chunk = conn.recv();
      if (chunk === undefined) break;
      if (!this.host.write(chunk)) this.hostFull = true;
    }
    if ((force || conn.recvEnded) && !this.hostEnded) {
      this.hostEnded = true;
      this.host.end();
      this.check();
    }
  }

  /** Host to peer: a chunk read from the host socket. */
  private fromHost(chunk: Buffer): void {
    if (this.tunnelDone) return; // the connection is gone; the host socket is being closed
    if (this.pending || !this.connected) {
      this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
      this.host.pause();
      return;
    }
    const n = this.conn.send(this.stack.now(), chunk);
    if (n < chunk.length) {
      this.pending = chunk.subarray(n);
      this.host.pause();
    }
    this.stack.schedule();
  }

  private hostEnd(): void {
    this.hostEof = true;
    if (!this.tunnelDone) this.sendPending();
    this.stack.schedule();
    this.check();
  }

  /** Moves held host bytes into the send buffer, then the host's FIN once they are all in. */
  private sendPending(): void {
    if (!this.connected || this.tunnelDone) return;
    const p = this.pending;
    if (p) {
      const n = this.conn.send(this.stack.now(), p);
      if (n < p.length) {
        this.pending = p.subarray(n);
        return;
      }
      this.pending = undefined;
      if (!this.hostEof) this.host.resume();
    }
    if (this.hostEof && !this.finQueued) {
      this.finQueued = true;
      this.conn.shutdown(this.stack.now());
    }
    this.check();
  }

  private abortTunnel(): void {
    if (this.tunnelDone) return;
    const conn = this.conn;
    if (conn.state !== 'CLOSED') {
      conn.abort(this.stack.now());
      this.stack.schedule();
    }
    this.detach();
  }

  private detach(): void {
    if (this.tunnelDone) return;
    this.tunnelDone = true;
    this.pending = undefined;
    this.events.detached();
    this.check();
  }

  /**
   * The tunnel side is done once the peer's FIN has gone to the host and the host's FIN to
   * the peer (what a TcpSocket waits for before it closes); the flow, once the host socket
   * has closed too.
   */
  private check(): void {
    if (!this.tunnelDone && this.hostEnded && this.finQueued) this.detach();
    if (this.tunnelDone && this.hostClosed && !this.finished) {
      this.finished = true;
      this.events.closed();
    }
  }
}

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
