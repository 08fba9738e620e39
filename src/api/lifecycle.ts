/**
 * A tunnel's lifecycle beyond create/close: ready() waits for a session, with an error that
 * says what failed (which peer, its endpoint, how many initiations went out, whether it ever
 * answered); pause()/resume() for sleep and network changes.
 */
import type { Peer } from '../wireguard/device.js';
import { REJECT_AFTER_TIME } from '../wireguard/constants.js';
import { toBase64 } from '../util/bytes.js';
import { invalidArgument, WgnetError } from '../util/errors.js';
import type { Tunnel } from './tunnel.js';
import { UdpBind } from '../io/udp-bind.js';

export /** What an aborted `signal` rejects with, as Node's own APIs: an AbortError whose cause is the reason. */
function abortError(signal: AbortSignal): Error {
  const e = new Error('The operation was aborted', { cause: signal.reason }) as Error & { code: string };
  e.name = 'AbortError';
  e.code = 'ABORT_ERR';
  return e;
}

export async function waitReady(t: Tunnel, opts: { timeout?: number; peer?: string; signal?: AbortSignal }): Promise<void> {
  const { signal } = opts;
  if (signal?.aborted) throw abortError(signal);
  const timeout = opts.timeout ?? 10_000;
  if (typeof timeout !== 'number' || !(timeout > 0)) throw invalidArgument(`ready: timeout must be a number of milliseconds > 0, got ${String(timeout).slice(0, 40)}`);
  const device = t.engine.device;
  const all = [...device.peers()];
  const want = opts.peer === undefined ? all : all.filter((p) => toBase64(p.publicKey) === opts.peer);
  if (all.length === 0) throw new WgnetError('ERR_WGNET_NO_HANDSHAKE', 'ready: the tunnel has no peers to handshake with (add one with ipcSet or in the config)');
  // Not echoed: a caller who passes the wrong key may be passing a private one.
  if (want.length === 0) throw invalidArgument(`ready: no peer has the public key given (${all.length} peer${all.length === 1 ? '' : 's'} configured)`);
  const now = t.engine.now();
  if (want.some((p) => p.current !== undefined && now - p.current.created < REJECT_AFTER_TIME)) return;
  const keys = new Set(want.map((p) => toBase64(p.publicKey)));
  await new Promise<void>((resolve, reject) => {
    const failed = new Set<string>();
    const done = (err?: Error): void => {
      clearTimeout(timer);
      t.off('handshake', onHandshake);
      t.off('handshake-failed', onFailed);
      t.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onHandshake = (e: { publicKey: string }): void => {
      if (keys.has(e.publicKey)) done();
    };
    const onFailed = (e: { publicKey: string }): void => {
      if (!keys.has(e.publicKey)) return;
      failed.add(e.publicKey);
      if (failed.size === keys.size) done(notReady(t, want, 'every handshake attempt went unanswered for 90 s (REKEY_ATTEMPT_TIME)'));
    };
    const onClose = (): void => done(new WgnetError('ERR_WGNET_CLOSED', 'ready: the tunnel was closed before a handshake'));
    const onAbort = (): void => done(abortError(signal!));
    const timer = setTimeout(() => done(notReady(t, want, `no handshake within ${timeout} ms`)), timeout);
    t.on('handshake', onHandshake);
    t.on('handshake-failed', onFailed);
    t.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    // While paused the engine is stopped; resume() starts the handshakes this waits for.
    if (t.paused) return;
    const at = t.engine.now();
    for (const p of want) if (p.endpoint) device.initiateHandshake(at, p);
    t.engine.pump();
  });
}

/** ready()'s error: per peer, its endpoint, how many initiations went out and whether it ever answered. */
function notReady(t: Tunnel, peers: Peer[], what: string): WgnetError {
  const lines = peers.slice(0, 8).map((p) => {
    const ep = p.endpoint ? `endpoint ${p.endpoint.address.includes(':') ? `[${p.endpoint.address}]` : p.endpoint.address}:${p.endpoint.port}` : 'no endpoint (it has to connect to this tunnel first)';
    const sent = p.pending ? p.attempts + 1 : 0; // initiations of the handshake under way (attempts counts its retries)
    const tried = p.endpoint ? `, ${sent} initiation${sent === 1 ? '' : 's'} sent` : '';
    const heard = p.rxBytes > 0 ? ', it answered before' : p.endpoint ? ', nothing received from it' : '';
    return `peer ${toBase64(p.publicKey)} (${ep}${tried}${heard})`;
  });
  if (peers.length > 8) lines.push(`and ${peers.length - 8} more`);
  const e = new WgnetError(
    'ERR_WGNET_NO_HANDSHAKE',
    `ready: ${what}: ${lines.join('; ')}. Check that the endpoint is reachable over UDP and that the peer has this tunnel's public key ${t.publicKey} with AllowedIPs covering ${t.addresses.join(', ')}.`,
  );
  return e;
}

/**
 * pause()/resume() (sing-box's pause manager: Down()/Up()): what a pause took away, to give back.
 * The engine is suspended (no pump, no timer: no keepalive, retransmission, handshake retry or
 * rekey runs, and the process is not woken), and the outer socket is closed.
 */
export class TunnelPause {
  private state: { port: number; keepalives: Map<Peer, number> } | undefined;

  constructor(
    private readonly t: Tunnel,
    private readonly closed: () => boolean,
    /** Looks up the peers configured by host name again (a new network may answer differently). */
    private readonly resolveHostEndpoints: () => Promise<void>,
  ) {}

  get paused(): boolean {
    return this.state !== undefined;
  }

  async pause(): Promise<void> {
    if (this.state) return;
    const bind = this.t.engine.bind;
    const keepalives = new Map<Peer, number>();
    for (const p of this.t.engine.device.peers()) {
      if (p.persistentKeepalive) {
        keepalives.set(p, p.persistentKeepalive);
        this.t.engine.device.updatePeer(p.publicKey, { persistentKeepalive: 0 });
      }
    }
    this.state = { port: bind?.port ?? 0, keepalives };
    this.t.engine.suspend();
    this.t.engine.bind = undefined; // and the engine sends through bind?.: nothing could leave
    await bind?.close();
    this.t.emit('pause');
  }

  async resume(): Promise<void> {
    const st = this.state;
    if (!st) return;
    const engine = this.t.engine;
    const bind = await UdpBind.open({
      port: st.port,
      onMessage: (data, address, port) => engine.receive(data, address, port),
      onBatchEnd: () => engine.pump(),
      onError: (err) => void (this.t.listenerCount('error') > 0 ? this.t.emit('error', err) : this.t.emit('warning', err)),
    });
    if (this.closed()) return void (await bind.close());
    this.state = undefined;
    engine.bind = bind;
    engine.unsuspend(); // deadlines that passed while paused fire now
    const device = engine.device;
    await this.resolveHostEndpoints();
    if (this.closed()) return;
    for (const [p, seconds] of st.keepalives) if (device.getPeer(p.publicKey) === p) device.updatePeer(p.publicKey, { persistentKeepalive: seconds });
    const now = engine.now();
    for (const p of device.peers()) {
      if (!p.endpoint) continue;
      // As wireguard-go's peer.Start(): forget when the last initiation went out, so RekeyTimeout
      // does not hold back the handshake a new network needs.
      p.lastSentHandshake = -Infinity;
      device.initiateHandshake(now, p);
    }
    engine.pump();
    this.t.emit('resume');
  }
}
