/**
 * Health of a tunnel, for `/livez`, `/readyz` and `tunnel.health()`:
 *
 * - ready when every configured peer (or every one named) has a handshake younger than
 *   180 s (RejectAfterTime: older than that no session key can carry data, so the
 *   tunnel is down for that peer whatever else is true), and
 * - with an active probe (`--health-check IP[:PORT]`: an ICMP echo or a TCP connect through
 *   the tunnel, once per interval), when the last probe succeeded within the interval plus
 *   its timeout.
 *
 * And the small HTTP server that serves them with `/metrics` (`--metrics HOST:PORT`).
 */
import http from 'node:http';
import type { Device } from '../wireguard/device.js';
import { toBase64 } from '../util/bytes.js';
import { WgnetError } from '../util/errors.js';
import { parseIp } from '../util/ip.js';

/** RejectAfterTime (whitepaper §6.1), restated: a handshake older than this carries nothing. */
export const HANDSHAKE_FRESH_MS = 180_000;

export interface HealthOptions {
  /** Base64 public keys of the peers that must be up; default every configured peer. */
  peers?: string[];
  /** Default 180 s. */
  maxHandshakeAgeMs?: number;
}

export interface PeerHealth {
  publicKey: string;
  ok: boolean;
  /** ISO time of the last handshake, null if none. */
  lastHandshake: string | null;
  ageSeconds: number | null;
}

export interface ProbeStatus {
  target: string;
  ok: boolean;
  lastSuccess: string | null;
  lastError: string | null;
  intervalMs: number;
}

export interface HealthReport {
  ready: boolean;
  /** Why not ready (absent when ready). */
  reason?: string;
  peers: PeerHealth[];
  probe?: ProbeStatus;
}

/**
 * Checks that every key in `peers` names a configured peer; throws a message that lists the
 * configured ones. `configured` is what the public API lists (tunnel.peers(), base64 keys).
 */
export function checkPeerNames(configured: Iterable<{ publicKey: string }>, peers: string[]): void {
  const have = new Set(Array.from(configured, (p) => p.publicKey));
  for (const k of peers) {
    if (!have.has(k)) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `--ready-peers: '${k.slice(0, 60)}' is not a configured peer (configured: ${[...have].join(', ') || 'none'})`);
  }
}

export function healthReport(device: Device, wallNow: number, opts: HealthOptions = {}, probe?: HealthProbe): HealthReport {
  const maxAge = opts.maxHandshakeAgeMs ?? HANDSHAKE_FRESH_MS;
  const wanted = opts.peers && opts.peers.length > 0 ? new Set(opts.peers) : undefined;
  const peers: PeerHealth[] = [];
  for (const p of device.peers()) {
    const publicKey = toBase64(p.publicKey);
    if (wanted && !wanted.has(publicKey)) continue;
    const t = p.lastHandshakeWallMs;
    const age = t > 0 ? Math.max(0, wallNow - t) : null;
    peers.push({ publicKey, ok: age !== null && age < maxAge, lastHandshake: t > 0 ? new Date(t).toISOString() : null, ageSeconds: age === null ? null : Math.round(age / 100) / 10 });
  }
  const reasons: string[] = [];
  if (wanted) for (const k of wanted) if (!peers.some((p) => p.publicKey === k)) reasons.push(`peer ${k} is not configured`);
  if (peers.length === 0 && !wanted) reasons.push('no peers configured');
  for (const p of peers) {
    if (!p.ok) reasons.push(p.lastHandshake === null ? `peer ${p.publicKey}: no handshake yet` : `peer ${p.publicKey}: last handshake ${p.ageSeconds} s ago (limit ${maxAge / 1000} s)`);
  }
  const ps = probe?.status(wallNow);
  if (ps && !ps.ok) reasons.push(`health check ${ps.target}: ${ps.lastError ?? 'no success yet'}${ps.lastSuccess ? ` (last success ${ps.lastSuccess})` : ''}`);
  const r: HealthReport = { ready: reasons.length === 0, peers };
  if (reasons.length) r.reason = reasons.join('; ');
  if (ps) r.probe = ps;
  return r;
}

/** Parses `IP[:PORT]` (IPv6 as `[addr]:port` or bare). */
export function parseProbeTarget(s: string): { host: string; port?: number } {
  const m = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(s) ?? /^([0-9.]+)(?::(\d{1,5}))?$/.exec(s) ?? /^([0-9a-fA-F:]+)()$/.exec(s);
  if (!m || !parseIp(m[1]!) || (m[2] && (Number(m[2]) < 1 || Number(m[2]) > 65535))) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `--health-check: expected IP or IP:PORT, got '${s.slice(0, 60)}'`);
  return m[2] ? { host: m[1]!, port: Number(m[2]) } : { host: m[1]! };
}

/**
 * An active probe run once per interval (one unref'd timer). `run` resolves when the
 * target answered and rejects with why it did not (its own timeout included).
 */
export class HealthProbe {
  private timer: NodeJS.Timeout | undefined;
  private lastOk = 0;
  private lastError: string | null = null;
  private running = false;
  private stopped = false;
  private reported: boolean | undefined;

  constructor(
    readonly target: string,
    private readonly run: () => Promise<void>,
    readonly intervalMs: number,
    readonly timeoutMs: number,
    private readonly onChange?: (ok: boolean, error: string | null) => void,
    private readonly wallClock: () => number = Date.now,
  ) {}

  start(): this {
    this.tick();
    return this;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private tick = (): void => {
    if (this.stopped) return;
    this.timer = setTimeout(this.tick, this.intervalMs);
    this.timer.unref();
    if (this.running) return;
    this.running = true;
    this.run().then(
      () => {
        this.lastOk = this.wallClock();
        this.lastError = null;
      },
      (err: Error & { code?: string }) => {
        this.lastError = err.code ?? err.message;
      },
    ).finally(() => {
      this.running = false;
      // Told of the first result and of every change after it, not of every probe.
      const now = this.status(this.wallClock());
      if (now.ok !== this.reported) {
        this.reported = now.ok;
        if (!this.stopped) this.onChange?.(now.ok, now.lastError);
      }
    });
  };

  status(wallNow: number): ProbeStatus {
    const fresh = this.lastOk > 0 && wallNow - this.lastOk <= this.intervalMs + this.timeoutMs;
    return {
      target: this.target,
      ok: fresh && this.lastError === null,
      lastSuccess: this.lastOk > 0 ? new Date(this.lastOk).toISOString() : null,
      lastError: this.lastError,
      intervalMs: this.intervalMs,
    };
  }
}

export interface OpsSource {
  metrics(): string;
  health(): HealthReport;
}

/**
 * A request listener for `/metrics`, `/livez` and `/readyz`, to mount in any node:http server
 * (or use `serveOps`). Answers 404 for other paths, 405 for methods other than GET/HEAD.
 */
export function opsHandler(src: OpsSource): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
    try {
      if (path === '/metrics') return send(200, 'text/plain; version=0.0.4; charset=utf-8', src.metrics());
      if (path === '/livez' || path === '/healthz') return send(200, 'text/plain; charset=utf-8', 'ok\n');
      if (path === '/readyz') {
        const h = src.health();
        return send(h.ready ? 200 : 503, 'application/json', JSON.stringify(h) + '\n');
      }
      send(404, 'text/plain; charset=utf-8', 'not found: try /metrics, /livez or /readyz\n');
    } catch (err) {
      send(500, 'text/plain; charset=utf-8', `${(err as Error).message}\n`);
    }
  };
}

/** Listens on host:port with `opsHandler`; rejects with ERR_WGNET_IN_USE or a clear message. */
export function serveOps(host: string, port: number, src: OpsSource): Promise<http.Server> {
  const server = http.createServer(opsHandler(src));
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new WgnetError(err.code === 'EADDRINUSE' ? 'ERR_WGNET_IN_USE' : 'ERR_WGNET_INVALID_ARGUMENT', `--metrics: cannot listen on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'address in use' : err.message}`)),
    );
    server.listen(port, host, () => resolve(server));
  });
}
