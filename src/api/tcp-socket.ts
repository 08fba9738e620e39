/**
 * A TCP connection over the tunnel as a `stream.Duplex` that behaves like
 * `net.Socket`, so `http`, `tls`, undici and ssh clients use it unchanged.
 *
 * Backpressure follows the netstack's send buffer: `_write` completes when the
 * chunk is wholly inside the TCP send buffer, so `write()` returns false and
 * `'drain'` fires exactly as with a kernel socket. Reads are pulled from the
 * receive buffer only while the readable side wants more (the TCP window closes
 * when the application stops reading).
 */
import { Duplex } from 'node:stream';
import type net from 'node:net';
import type { TcpConnection, TcpErrorCode } from '../netstack/types.js';
import { formatIp, familyOf } from '../util/ip.js';
import { systemError, WgnetError } from '../util/errors.js';
import type { Engine } from '../io/engine.js';
import { watchMemory } from '../io/memory.js';
import { installTlsPeerInfo } from './tls-peer.js';
import { tcpOpenChannel, tcpCloseChannel, tcpMessage, tunnelOf } from './diagnostics.js';

export interface TcpSocketOptions {
  allowHalfOpen?: boolean;
  /** Buffered bytes above which write() returns false (net.Socket's default is 16 KiB). */
  writableHighWaterMark?: number;
  readableHighWaterMark?: number;
}

/** net.Socket#connect's arguments: (port[, host][, listener]), (options[, listener]) or (path[, listener]). */
type ConnectArgs =
  | [port: number | string, host?: string, connectionListener?: () => void]
  | [port: number | string, connectionListener?: () => void]
  | [options: net.SocketConnectOpts | { port: number | string; host?: string }, connectionListener?: () => void];

type PendingWrite = { data: Uint8Array; cb: (err?: Error | null) => void };

export class TcpSocket extends Duplex {
  /** @internal */ conn: TcpConnection | undefined;
  connecting = false;
  bytesRead = 0;
  /** As net.Socket: the `address:port` tried, once the destination is known (the tunnel dials one address). */
  autoSelectFamilyAttemptedAddresses: string[] = [];
  /** @internal The destination tunnel.connect() gave this socket; connect() on the socket keeps it. */
  dialled: { host: string; port: number } | undefined;
  private written = 0;
  private queued: PendingWrite | undefined;
  private finalCb: ((err?: Error | null) => void) | undefined;
  private wantRead = false;
  private ended = false;
  private eofScheduled = false;
  /** The peer's FIN (or a graceful close) has been seen: EOF follows the data. */
  private finSeen = false;
  private timeoutMs = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private noDelay = true;
  private keepAlive: { enable: boolean; ms: number } | undefined;
  private remote: { address: string; port: number } | undefined;
  /** engine.now() at attach (the first SYN): wgnet:tcp:close's durationMs. */
  private startedAt = 0;

  constructor(
    private readonly engine: Engine,
    opts: TcpSocketOptions = {},
  ) {
    super({
      allowHalfOpen: opts.allowHalfOpen ?? false,
      writableHighWaterMark: opts.writableHighWaterMark ?? 64 * 1024,
      readableHighWaterMark: opts.readableHighWaterMark ?? 64 * 1024,
      decodeStrings: true,
      emitClose: true,
      autoDestroy: true,
    });
    // So that a TLSSocket over this socket reports its addresses (./tls-peer.ts); once per process.
    installTlsPeerInfo(TcpSocket);
    // Connections are what leave malloc holding freed pages (../io/memory.ts): the first
    // socket starts the checks, and restarts them once they have stopped while idle.
    watchMemory();
  }

  /** @internal Binds the socket to a netstack connection (dialled or accepted). */
  attach(conn: TcpConnection, established: boolean): void {
    this.conn = conn;
    this.remote = { address: formatIp(conn.remoteAddr), port: conn.remotePort };
    conn.setNoDelay(this.noDelay);
    if (this.keepAlive) conn.setKeepAlive(this.keepAlive.enable, this.keepAlive.ms);
    this.connecting = !established;
    this.startedAt = this.engine.now();
    if (established && tcpOpenChannel.hasSubscribers) tcpOpenChannel.publish(this.diagnostics());
  }

  /** @internal The handshake finished (active open). */
  onConnected(): void {
    if (!this.connecting) return;
    this.connecting = false;
    this.touch();
    if (tcpOpenChannel.hasSubscribers) tcpOpenChannel.publish(this.diagnostics());
    this.emit('connect');
    this.emit('ready');
    this.flushPending();
  }

  /** @internal Data or FIN arrived. */
  onReadable(): void {
    if (this.wantRead) this.pull();
  }

  /** @internal Send space was freed. */
  onWritable(): void {
    this.flushPending();
  }

  /** @internal The connection is gone from the netstack. */
  onClosed(error: TcpErrorCode | undefined): void {
    const conn = this.conn;
    if (error) {
      const e = systemError(error, this.connecting ? 'connect' : 'read', this.remote?.address, this.remote?.port);
      this.destroy(e);
      return;
    }
    // Graceful: deliver what is left, then EOF.
    if (conn) this.pull(true);
    this.endSoon();
    if (this.queued) {
      const p = this.queued;
      this.queued = undefined;
      p.cb(systemError('EPIPE', 'write', this.remote?.address, this.remote?.port));
    }
    this.finishFinal();
  }

  /** Notices the read() that takes the last byte before a pending EOF (see endSoon). */
  override read(size?: number): any {
    const chunk: unknown = super.read(size);
    if (this.finSeen && !this.ended && this.readableLength === 0) this.endSoon();
    return chunk;
  }

  override _read(): void {
    this.wantRead = true;
    this.pull();
    if (this.finSeen) this.endSoon();
  }

  /**
   * EOF goes into the stream only once the consumer has taken every byte before
   * it. If EOF sat in the buffer behind the last data, the read() that returns
   * that data would also schedule 'end' — before the consumer has processed it.
   * undici's HTTP/1 parser asserts in exactly that case (it pauses on the last
   * body chunk, then sees 'end'); a kernel socket almost never shows it because
   * EOF arrives in a later read. So: push(null) a tick after the read() that
   * empties the buffer (see read() below), or at once if it is empty already.
   */
  private endSoon(): void {
    this.finSeen = true;
    if (this.ended || this.eofScheduled) return;
    this.eofScheduled = true;
    process.nextTick(() => {
      this.eofScheduled = false;
      if (this.ended || this.readableLength > 0) return; // the next _read() tries again
      this.ended = true;
      this.push(null);
    });
  }

  private pull(force = false): void {
    const conn = this.conn;
    if (!conn || this.ended || (this.connecting && !force)) return;
    for (;;) {
      const chunk = conn.recv();
      if (chunk === undefined) break;
      this.bytesRead += chunk.length;
      this.touch();
      const more = this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      // Taking data out of the receive buffer may reopen the window: let the stack say so.
      this.engine.schedule();
      if (!more) {
        this.wantRead = false;
        return;
      }
    }
    if (conn.recvEnded) this.endSoon();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.queued = { data: chunk, cb };
    if (!this.connecting) this.flushPending();
  }

  private flushPending(): void {
    const p = this.queued;
    const conn = this.conn;
    if (!p || !conn) return;
    if (conn.error) {
      this.queued = undefined;
      p.cb(systemError(conn.error, 'write', this.remote?.address, this.remote?.port));
      return;
    }
    const n = conn.send(this.engine.now(), p.data);
    if (n > 0) {
      this.written += n;
      this.touch();
      this.engine.schedule();
    }
    if (n >= p.data.length) {
      this.queued = undefined;
      p.cb();
      if (this.finalCb) this.finishFinal();
    } else {
      p.data = p.data.subarray(n);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finalCb = cb;
    if (!this.queued && !this.connecting) this.finishFinal();
  }

  private finishFinal(): void {
    const cb = this.finalCb;
    if (!cb || this.queued) return;
    this.finalCb = undefined;
    const conn = this.conn;
    if (conn && !conn.error && conn.state !== 'CLOSED') {
      conn.shutdown(this.engine.now());
      this.engine.schedule();
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.clearIdle();
    const conn = this.conn;
    if (conn && tcpCloseChannel.hasSubscribers) this.publishClose(err);
    if (conn && conn.state !== 'CLOSED' && conn.error === undefined) {
      // As the kernel does on close(): RST when data would be lost (an error,
      // unread input), else FIN after what is queued.
      const now = this.engine.now();
      if (err || conn.recvAvailable > 0) conn.abort(now);
      else if (conn.state === 'ESTABLISHED' || conn.state === 'CLOSE-WAIT' || conn.state === 'SYN-RECEIVED') conn.shutdown(now);
      else if (conn.state === 'SYN-SENT') conn.abort(now);
      this.engine.schedule();
    }
    if (this.queued) {
      const p = this.queued;
      this.queued = undefined;
      p.cb(err ?? systemError('EPIPE', 'write'));
    }
    this.connecting = false;
    cb(err);
  }

  // --- net.Socket compatibility -------------------------------------------

  /**
   * As net.Socket#connect, for libraries that are handed a socket and call connect() on it
   * themselves (pg's `stream` option calls `stream.connect(port, host)` with its own host and
   * port, which default to localhost:5432). A tunnel socket already has its destination from
   * tunnel.connect(), which started dialling it, so the arguments are not used: the listener
   * waits for 'connect', and 'connect' is emitted again if the socket is connected already
   * (the caller listens for it after this call returns).
   */
  connect(...args: ConnectArgs): this {
    const listener = args.find((a): a is () => void => typeof a === 'function');
    if (this.dialled === undefined && this.conn === undefined) {
      throw new WgnetError('ERR_WGNET_UNSUPPORTED', 'connect: a tunnel socket gets its destination from tunnel.connect(port, host)');
    }
    if (this.destroyed) {
      process.nextTick(() => this.emit('error', systemError('ERR_SOCKET_CLOSED', 'connect', this.remote?.address, this.remote?.port)));
      return this;
    }
    if (listener) this.once('connect', listener);
    if (!this.pending) {
      process.nextTick(() => {
        if (!this.destroyed) this.emit('connect');
      });
    }
    return this;
  }

  /** As net.Socket#destroySoon: end the writable side, destroy once everything is flushed. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Deprecated in net.Socket (use writableLength); kept for libraries that still read it. */
  get bufferSize(): number {
    return this.writableLength;
  }

  get remoteAddress(): string | undefined {
    return this.remote?.address;
  }
  get remotePort(): number | undefined {
    return this.remote?.port;
  }
  get remoteFamily(): string | undefined {
    return this.conn ? (familyOf(this.conn.remoteAddr) === 4 ? 'IPv4' : 'IPv6') : undefined;
  }
  get localAddress(): string | undefined {
    return this.conn ? formatIp(this.conn.localAddr) : undefined;
  }
  get localPort(): number | undefined {
    return this.conn?.localPort;
  }
  get localFamily(): string | undefined {
    return this.conn ? (familyOf(this.conn.localAddr) === 4 ? 'IPv4' : 'IPv6') : undefined;
  }
  get bytesWritten(): number {
    return this.written;
  }
  /** True until the connection is established, as net.Socket#pending. */
  get pending(): boolean {
    return this.conn === undefined || this.connecting;
  }
  get readyState(): net.SocketReadyState {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
  address(): net.AddressInfo | {} {
    if (!this.conn) return {};
    return { address: this.localAddress!, family: this.localFamily!, port: this.localPort! };
  }
  setNoDelay(noDelay = true): this {
    this.noDelay = noDelay;
    this.conn?.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable = false, initialDelay = 0): this {
    this.keepAlive = { enable, ms: initialDelay > 0 ? initialDelay : 7_200_000 };
    this.conn?.setKeepAlive(enable, this.keepAlive.ms);
    return this;
  }
  /** Idle timeout as net.Socket: emits 'timeout' after `ms` without activity; does not close. */
  setTimeout(ms: number, cb?: () => void): this {
    ms = Number(ms);
    if (!Number.isFinite(ms) || ms < 0) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `setTimeout: expected a number of milliseconds >= 0, got ${String(ms)}`);
    this.timeoutMs = ms;
    if (cb) {
      if (ms === 0) this.off('timeout', cb);
      else this.once('timeout', cb);
    }
    this.clearIdle();
    this.touch();
    return this;
  }
  get timeout(): number | undefined {
    return this.timeoutMs || undefined;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  resetAndDestroy(): this {
    const conn = this.conn;
    if (conn && conn.state !== 'CLOSED') {
      conn.abort(this.engine.now());
      this.engine.schedule();
    }
    this.destroy();
    return this;
  }

  /** wgnet:tcp:open's message (api/diagnostics.ts); a socket from tunnel.connect() is the outbound kind. */
  private diagnostics(): ReturnType<typeof tcpMessage> {
    return tcpMessage(tunnelOf(this.engine), this, this.dialled ? 'outbound' : 'inbound');
  }

  /**
   * wgnet:tcp:close, from _destroy (every close passes there once). The netstack's errors
   * arrive as destroy(err) with err.code (onClosed); a socket whose peer sent FIN and whose
   * own side has finished closed cleanly ('end'); anything else was the application's destroy().
   */
  private publishClose(err: Error | null): void {
    const reason = err ? String((err as NodeJS.ErrnoException).code ?? 'error') : this.finSeen && this.writableFinished ? 'end' : 'destroy';
    tcpCloseChannel.publish({
      ...this.diagnostics(),
      established: !this.connecting,
      bytesRead: this.bytesRead,
      bytesWritten: this.written,
      durationMs: this.engine.now() - this.startedAt,
      reason,
    });
  }

  private touch(): void {
    if (this.timeoutMs <= 0 || this.destroyed) return;
    if (this.idleTimer) this.idleTimer.refresh();
    else {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = undefined;
        this.emit('timeout');
      }, this.timeoutMs);
      this.idleTimer.unref();
    }
  }
  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
