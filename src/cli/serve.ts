/**
 * `wgnet proxy` and `wgnet forward`: long-running commands on a userspace tunnel.
 * A readiness line on stdout once the handshake is up (or after 5 s without one),
 * logs on stderr, clean shutdown on SIGINT/SIGTERM, one-line errors.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import { Tunnel } from '../api/tunnel.js';
import { tunnelDialer, systemDialer, splice, dial } from './dialer.js';
import { createSocks5Server } from './socks5.js';
import { forwardUdp, type UdpForwardCounters } from './udp-forward.js';
import type { DatagramSocket } from './dialer.js';
import { createHttpProxyServer } from './http-proxy.js';
import { parseForwardSpec, type ForwardSpec } from './forward.js';
import { WgnetError } from '../util/errors.js';
import { parseIp } from '../util/ip.js';
import { DEFAULT_LIMITS, limitReporter, positiveInt, type ListenerLimits } from './limits.js';
import { listenerMetrics, type ListenerCounters } from '../io/metrics.js';
import { serveOps, checkPeerNames, parseProbeTarget } from '../io/health.js';
import { levelEnabled, type Trace } from '../util/trace.js';
import { loadConfig } from '../config/index.js';
import type { SyncResult, TunnelLimits, TunnelOptions } from '../api/tunnel.js';

/** The log levels of every command, most severe first. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The outer socket in use, for the ready line: 'batched' (the addon) or 'dgram' (the slow path). */
export function udpBackend(t: Tunnel): 'batched' | 'dgram' {
  return t.udpBackend === 'batched' ? 'batched' : 'dgram';
}

export function parseCongestionControl(v: string): 'cubic' | 'bbr' | 'newreno' {
  if (v === 'cubic' || v === 'bbr' || v === 'newreno') return v;
  throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `--congestion-control: expected cubic, bbr or newreno, got '${v.slice(0, 20)}'`);
}

export function parseLogLevel(v: string, flag = '--log-level'): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `${flag}: expected one of ${LOG_LEVELS.join('|')}, got '${v.slice(0, 20)}'`);
}

/** The operations flags every long-running command takes (DESIGN §8), for each command's help. */
export const OPS_HELP = `Operations:
  --metrics HOST:PORT        serve GET /metrics (Prometheus text format), /livez and /readyz
  --ready-peers KEY[,KEY]    /readyz needs a handshake younger than 180 s with these peers (default: every peer)
  --health-check IP[:PORT]   /readyz also needs this probe through the tunnel to succeed: ping IP, or TCP connect IP:PORT
  --health-interval SECONDS  how often the probe runs (default 10)
  --pcap FILE                write the tunnel's inner IP packets, both directions, to FILE (pcap, LINKTYPE_RAW)
  --pcap-max-size BYTES      rotate FILE to FILE.1 at this size (default 104857600)
  --log-level LEVEL          error|warn|info|debug|trace (default info; debug adds each connection and each dropped packet with its reason; trace adds per-packet and timer traces)
  --log-format text|json
  --congestion-control NAME  TCP congestion control for the tunnel's connections: bbr (default), cubic, newreno
  --max-tcp-per-peer N       TCP connections one peer may hold through the tunnel's listeners (default 4096)
  --max-syn-queue-per-peer N half-open connections one peer may hold per listener; past it, SYN cookies (default 32)
  --max-reassembly-per-peer BYTES  IP fragments one peer may have waiting for reassembly (default 1048576)
  --check                    validate the config file (and these flags) and exit: 0 if good, else the error with file:line
Signals: SIGHUP re-reads the config file: peers added, removed or changed as 'wg syncconf' does, other
         connections untouched; a bad file keeps the running config and logs file:line.
         SIGUSR1 prints the live counters to stderr, labelled. SIGINT and SIGTERM stop.`;

const IDLE_HELP = `  --idle-timeout SECONDS     close an established connection (CONNECT, TCP forward) after this long with no
                             byte either way (default ${DEFAULT_LIMITS.idleTimeoutMs / 1000}: 2 h 4 min, RFC 5382's floor for a NAT; 0: never)`;

const LIMITS_HELP = (which: 'proxy' | 'forward'): string =>
  which === 'proxy'
    ? `Limits (per listener; a client over one is refused alone, counted, and logged at most once per 10 s):
  --max-connections N        client connections at once (default ${DEFAULT_LIMITS.maxConnections}; more are closed at once)
  --request-timeout SECONDS  for the SOCKS5 greeting + request or the HTTP request headers to arrive (default ${DEFAULT_LIMITS.requestTimeoutMs / 1000})
  --max-header-size BYTES    HTTP request line + headers (default ${DEFAULT_LIMITS.maxHeaderBytes}; larger get 431)
  --max-udp-flows N          SOCKS5 UDP associations at once (default ${DEFAULT_LIMITS.maxUdpFlows}; more get reply 1)
${IDLE_HELP}`
    : `Limits (per listener; over one, a new client or flow is refused alone, counted, and logged at most once per 10 s):
  --max-connections N  TCP client connections at once (default ${DEFAULT_LIMITS.maxConnections}; more are closed at once)
  --max-udp-flows N    --udp flows at once (default ${DEFAULT_LIMITS.maxUdpFlows}; a new source's datagrams are dropped, existing flows go on)
  --max-udp-flows-per-peer N  --udp -R flows one peer may hold at once (default a quarter of --max-udp-flows)
${IDLE_HELP}`;

export const PROXY_USAGE = `Usage: wgnet proxy -c FILE [--socks5 HOST:PORT] [--http HOST:PORT] [--auth USER:PASS] [--uapi NAME] [--log-level LEVEL] [--log-format text|json]
                   [--max-connections N] [--request-timeout SECONDS] [--max-header-size BYTES] [--max-udp-flows N] [--idle-timeout SECONDS]
                   [--metrics HOST:PORT] [--ready-peers KEY,...] [--health-check IP[:PORT]] [--pcap FILE]

Runs a SOCKS5 (RFC 1928: CONNECT and UDP ASSOCIATE; names resolved through the tunnel's DNS) and/or an
HTTP proxy (CONNECT and http:// requests) whose connections go through the WireGuard
tunnel of FILE (wg-quick or sing-box JSON). No root, no OS interface.

${LIMITS_HELP('proxy')}

${OPS_HELP}

Example: wgnet proxy -c wg0.conf --socks5 127.0.0.1:1080 --http 127.0.0.1:8080
         curl --socks5-hostname 127.0.0.1:1080 http://10.0.0.1/`;

export const FORWARD_USAGE = `Usage: wgnet forward -c FILE [-L [BIND:]PORT:HOST:PORT ...] [-R PORT:HOST:PORT ...] [--udp [--udp-timeout SECONDS]] [--uapi NAME] [--log-level ...]
                     [--max-connections N] [--max-udp-flows N] [--idle-timeout SECONDS] [--metrics HOST:PORT] [--health-check IP[:PORT]] [--pcap FILE]

-L  listens on this machine (BIND defaults to 127.0.0.1) and carries each connection
    through the tunnel to HOST:PORT (HOST may be a name, resolved through the tunnel).
-R  listens on the tunnel's own address, PORT, and carries each connection to HOST:PORT
    on this machine: hosting a service behind WireGuard with no root.

--udp  the forwards of this command carry UDP instead of TCP: each client address and
       port is a flow with its own socket on the other side, closed after
       --udp-timeout seconds without traffic (default 60). Run a second forward for TCP.

${LIMITS_HELP('forward')}

${OPS_HELP}

Example: wgnet forward -c wg0.conf -L 8022:10.0.0.5:22 -R 8080:127.0.0.1:3000
         wgnet forward -c wg0.conf --udp -L 5353:10.0.0.1:53`;

export interface Common {
  limits: ListenerLimits;
  config?: string;
  uapi?: string;
  level: LogLevel;
  json: boolean;
  metrics?: { host: string; port: number };
  /** Base64 keys of the peers /readyz waits for (default all). */
  readyPeers?: string[];
  healthCheck?: string;
  healthIntervalMs: number;
  pcap?: string;
  pcapMaxBytes: number;
  /** TCP congestion control for the tunnel's connections (--congestion-control). */
  congestionControl?: 'cubic' | 'bbr' | 'newreno';
  /** Per-peer shares of the netstack (--max-tcp-per-peer, ...). */
  peerLimits: TunnelLimits;
  /** --check: validate and exit. */
  check?: boolean;
}

export function seconds(v: string, flag: string): number {
  if (!/^\d{1,6}(\.\d{1,3})?$/.test(v) || Number(v) <= 0) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `${flag}: expected seconds > 0, got '${v.slice(0, 20)}'`);
  return Number(v) * 1000;
}

function hostPort(s: string, flag: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `${flag}: expected HOST:PORT, got '${s}'`);
  return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
}

export type CliLog = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export function makeLog(c: Pick<Common, 'level' | 'json'>): CliLog {
  return (level, msg, fields) => {
    if (!levelEnabled(c.level, level)) return;
    if (c.json) process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
    else process.stderr.write(`${level.toUpperCase()} ${msg}${fields ? ' ' + Object.entries(fields).map(([k, v]) => `${k}=${v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ') : ''}\n`);
  };
}

function listen(server: net.Server, host: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new WgnetError(err.code === 'EADDRINUSE' ? 'ERR_WGNET_IN_USE' : 'ERR_WGNET_INVALID_ARGUMENT', `${what}: cannot listen on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'address in use' : err.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
}

/** The cores' traces into the log at its level: drops (with why) at debug, per-packet and timer chatter at trace. */
export function coreTrace(c: Pick<Common, 'level'>, log: CliLog): Trace {
  return { enabled: (level) => levelEnabled(c.level, level), log: (level, event, fields) => log(level, event, fields) };
}

/**
 * Handshake state per peer, logged once per change: 'handshake ok' at info when a peer
 * comes up, a warning when it gives up (90 s without an answer, RekeyAttemptTime) or when
 * none came within the start-up wait; rekeys at debug.
 */
const watchers = new WeakMap<Tunnel, { pending(): void }>();

export function watchHandshakes(t: Tunnel, log: CliLog): { pending(): void } {
  const state = new Map<string, 'up' | 'down'>();
  const endpointOf = (key: string): string | undefined => {
    const ep = t.peers().find((p) => p.publicKey === key)?.endpoint;
    return ep ? `${ep.address.includes(':') ? `[${ep.address}]` : ep.address}:${ep.port}` : undefined;
  };
  t.on('handshake', (e: { publicKey: string }) => {
    if (state.get(e.publicKey) === 'up') log('debug', 'handshake (rekey)', { peer: e.publicKey });
    else log('info', 'handshake ok', { peer: e.publicKey, endpoint: endpointOf(e.publicKey) });
    state.set(e.publicKey, 'up');
  });
  t.on('handshake-failed', (e: { publicKey: string }) => {
    if (state.get(e.publicKey) !== 'down') log('warn', 'handshake failed: no answer for 90 s; still retrying every 5 s', { peer: e.publicKey, endpoint: endpointOf(e.publicKey) });
    state.set(e.publicKey, 'down');
  });
  t.on('endpoint-changed', (e: { publicKey: string }) => log('debug', 'peer endpoint changed', { peer: e.publicKey, endpoint: endpointOf(e.publicKey) }));
  const w = {
    pending: (): void => {
      for (const p of t.peers()) {
        const key = p.publicKey;
        if (state.has(key) || !p.endpoint || p.lastHandshakeTime > 0) continue;
        state.set(key, 'down');
        log('warn', 'no handshake yet: no answer from the peer; retrying every 5 s (check Endpoint, keys and the peer)', { peer: key, endpoint: endpointOf(key) });
      }
    },
  };
  watchers.set(t, w);
  return w;
}

/** Tunnel.create's options from the common flags. */
export function tunnelOptions(c: Common, trace: Trace): TunnelOptions {
  return { trace, limits: c.peerLimits, ...(c.uapi ? { uapi: c.uapi } : {}), ...(c.congestionControl ? { congestionControl: c.congestionControl } : {}) };
}

async function upTunnel(c: Common, log: CliLog): Promise<Tunnel> {
  if (!c.config) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', '-c FILE is required');
  const trace = coreTrace(c, log);
  const t = await Tunnel.create({ file: c.config }, tunnelOptions(c, trace));
  for (const w of t.config.warnings) log('warn', w);
  watchHandshakes(t, log);
  t.on('warning', (e: Error) => log('warn', e.message));
  // Start handshakes now so readiness means "the tunnel works".
  t.startHandshakes();
  return t;
}

export function waitHandshake(t: Tunnel, ms: number, log?: CliLog): Promise<boolean> {
  if (t.peers().some((p) => p.lastHandshakeTime > 0)) return Promise.resolve(true);
  // After the wait, say which peers are silent (once), instead of 'pending' and then nothing.
  if (log) return waitHandshake(t, ms).then((ok) => (ok || watchers.get(t)?.pending(), ok));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    t.once('handshake', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export function untilSignal(cleanup: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    const stop = (): void => {
      void cleanup().then(() => resolve(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export function parseCommon(args: string[], extra: (flag: string, next: () => string) => boolean): Common {
  const c: Common = { level: 'info', json: false, limits: { ...DEFAULT_LIMITS }, peerLimits: {}, healthIntervalMs: 10_000, pcapMaxBytes: 100 * 1024 * 1024 };
  const bad = (m: string): WgnetError => new WgnetError('ERR_WGNET_INVALID_ARGUMENT', m);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = (): string => {
      const v = args[++i];
      if (v === undefined) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `${a} needs a value`);
      return v;
    };
    if (a === '-c' || a === '--config') c.config = next();
    else if (a === '--uapi') c.uapi = next();
    else if (a === '--log-level') c.level = parseLogLevel(next());
    else if (a === '--congestion-control') c.congestionControl = parseCongestionControl(next());
    else if (a === '--log-format') {
      const v = next();
      if (v !== 'json' && v !== 'text') throw bad(`--log-format: expected text or json, got '${v.slice(0, 20)}'`);
      c.json = v === 'json';
    } else if (a === '--metrics') c.metrics = hostPort(next(), a);
    else if (a === '--ready-peers') c.readyPeers = next().split(',').map((k) => k.trim()).filter(Boolean);
    else if (a === '--health-check') {
      c.healthCheck = next();
      parseProbeTarget(c.healthCheck); // fail now, naming the flag
    }
    else if (a === '--health-interval') c.healthIntervalMs = seconds(next(), a);
    else if (a === '--pcap') c.pcap = next();
    else if (a === '--pcap-max-size') c.pcapMaxBytes = positiveInt(next(), a, bad);
    else if (a === '--check' || a === '--configtest') c.check = true;
    else if (a === '--max-connections') c.limits.maxConnections = positiveInt(next(), a, bad);
    else if (a === '--max-udp-flows') c.limits.maxUdpFlows = positiveInt(next(), a, bad);
    else if (a === '--max-tcp-per-peer') c.peerLimits.tcpConnectionsPerPeer = positiveInt(next(), a, bad);
    else if (a === '--max-syn-queue-per-peer') c.peerLimits.synQueuePerPeer = positiveInt(next(), a, bad);
    else if (a === '--max-reassembly-per-peer') c.peerLimits.reassemblyBytesPerPeer = positiveInt(next(), a, bad);
    else if (a === '--idle-timeout') {
      const v = next();
      c.limits.idleTimeoutMs = v === '0' ? 0 : seconds(v, a);
    }
    else if (!extra(a, next)) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `unknown option '${a}'`);
  }
  return c;
}

/** What a command tells the operations side about its listeners (proxy, forward). */
export type ListenerSource = () => { listener: string; kind: string; stats: ListenerCounters }[];

/**
 * Starts what the operations flags ask for on a running tunnel: the /metrics, /livez,
 * /readyz server, the health probe, the pcap capture, and SIGUSR1's counter dump.
 * `close()` undoes all of it (before the tunnel closes).
 */
export async function startOps(c: Common, t: Tunnel, log: CliLog, listeners: ListenerSource = () => []): Promise<{ close(): Promise<void>; dump(write?: CliLog): void; metricsAddress?: string }> {
  if (c.readyPeers) checkPeerNames(t.peers(), c.readyPeers);
  const undo: (() => Promise<void> | void)[] = [];
  try {
    if (c.healthCheck) {
      let last: boolean | undefined;
      const probe = t.healthCheck(c.healthCheck, {
        interval: c.healthIntervalMs,
        onChange: (ok, error) => {
          if (ok === last) return;
          last = ok;
          if (ok) log('info', 'health check ok', { target: c.healthCheck });
          else log('warn', 'health check failing', { target: c.healthCheck, error });
        },
      });
      undo.push(() => probe.stop());
    }
    if (c.pcap) {
      const cap = t.capture(c.pcap, { maxBytes: c.pcapMaxBytes });
      log('info', 'capturing inner packets', { pcap: c.pcap, maxBytes: c.pcapMaxBytes });
      undo.push(() => cap.close());
    }
    let metricsAddress: string | undefined;
    if (c.metrics) {
      const extra = (): ReturnType<typeof listenerMetrics> => listenerMetrics(listeners());
      const server = await serveOps(c.metrics.host, c.metrics.port, { metrics: () => t.metrics({ extra: extra() }), health: () => t.health({ peers: c.readyPeers }) });
      const a = server.address() as net.AddressInfo;
      metricsAddress = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
      undo.push(() => new Promise<void>((resolve) => server.close(() => resolve()).closeAllConnections()));
    }
    const dump = (write: CliLog = makeLog({ level: 'trace', json: c.json })): void => dumpStats(t, listeners(), write);
    const onUsr1 = (): void => dump();
    process.on('SIGUSR1', onUsr1);
    undo.push(() => void process.off('SIGUSR1', onUsr1));
    if (c.config) {
      // One reload at a time; a SIGHUP during one runs another after it (the file may have changed again).
      let running: Promise<unknown> | undefined;
      let again = false;
      const file = c.config;
      const onHup = (): void => {
        if (running) {
          again = true;
          return;
        }
        running = reloadConfig(t, file, log).finally(() => {
          running = undefined;
          if (again) {
            again = false;
            onHup();
          }
        });
      };
      process.on('SIGHUP', onHup);
      undo.push(() => void process.off('SIGHUP', onHup));
    }
    return {
      metricsAddress,
      dump,
      close: async () => {
        for (const u of undo.reverse()) await u();
      },
    };
  } catch (err) {
    for (const u of undo.reverse()) await u();
    throw err;
  }
}

/**
 * SIGHUP: re-reads `file` and applies it to the running tunnel as `wg syncconf` does
 * (tunnel.syncConfig): peers not in the file are removed, new ones added, changed ones updated
 * (key, endpoint, allowed IPs, keepalive), unchanged ones left alone, so their sessions and
 * connections go on. A file that does not parse, or an endpoint that does not resolve, changes
 * nothing and logs one line naming file:line. Address, DNS and MTU belong to the netstack: a
 * warning says they need a restart. Resolves to whether the new config was applied.
 */
export async function reloadConfig(t: Tunnel, file: string, log: CliLog): Promise<boolean> {
  let r: SyncResult;
  try {
    r = await t.syncConfig({ file });
  } catch (err) {
    log('error', `config reload failed, the running config stays: ${(err as Error).message}`);
    return false;
  }
  for (const w of r.warnings) log('warn', w);
  if (r.privateKeyChanged) log('info', 'config reload: new PrivateKey; every session was dropped and is handshaken again', { file });
  if (r.restartNeeded.length) log('warn', `config reload: ${r.restartNeeded.join(', ')} changes take effect on restart; the running ones stay`, { file });
  log('info', 'config reloaded', { file, added: r.added, removed: r.removed, changed: r.changed, unchanged: r.unchanged });
  return true;
}

/** --check: the config parses and validates (warnings printed); exits 0, or throws the error naming file:line. */
export async function checkConfig(c: Common): Promise<number> {
  if (!c.config) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', '-c FILE is required');
  const cfg = await loadConfig({ file: c.config });
  for (const w of cfg.warnings) process.stderr.write(`WARN ${w}\n`);
  process.stdout.write(`${c.config}: ok (${cfg.peers.length} peer${cfg.peers.length === 1 ? '' : 's'}, ${cfg.addresses.length} address${cfg.addresses.length === 1 ? '' : 'es'}${cfg.warnings.length ? `, ${cfg.warnings.length} warning${cfg.warnings.length === 1 ? '' : 's'}` : ''})\n`);
  return 0;
}

/** The live counters, one labelled line per peer, device, TCP, gateway and listener. */
export function dumpStats(t: Tunnel, listeners: ReturnType<ListenerSource>, write: CliLog): void {
  const now = Date.now();
  const s = t.stats();
  for (const p of s.peers) {
    const ep = p.endpoint;
    write('info', 'stats peer', {
      peer: p.publicKey,
      endpoint: ep ? `${ep.address.includes(':') ? `[${ep.address}]` : ep.address}:${ep.port}` : 'none',
      handshake: p.lastHandshakeTime > 0 ? `${Math.round((now - p.lastHandshakeTime) / 1000)}s ago` : 'never',
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    });
  }
  const d = s.device;
  const nonzero = (o: Record<string, number | undefined>): Record<string, number> => Object.fromEntries(Object.entries(o).filter(([, v]) => v)) as Record<string, number>;
  write('info', 'stats device', { rxPackets: d.rxPackets, txPackets: d.txPackets, rxBytes: d.rxBytes, txBytes: d.txBytes, handshakesInitiated: d.handshakesInitiated, handshakesCompleted: d.handshakesCompleted, dropped: nonzero(d.dropped) });
  if (s.tcp) write('info', 'stats tcp', { connections: s.tcp.connections, ...nonzero(s.tcp.counters) });
  write('info', 'stats netstack', nonzero(s.netstack));
  const g = s.gateway;
  if (g) write('info', 'stats gateway', { flows: g.flows, heldSyns: g.heldSyns, udpFlows: g.udpFlows, ...nonzero(g.counters) });
  for (const l of listeners) write('info', 'stats listener', { listener: l.listener, kind: l.kind, ...l.stats });
}

export async function runProxy(args: string[]): Promise<number> {
  let socks: { host: string; port: number } | undefined;
  let httpAt: { host: string; port: number } | undefined;
  let auth: { username: string; password: string } | undefined;
  let requestTimeoutMs: number | undefined;
  let maxHeaderBytes: number | undefined;
  const c = parseCommon(args, (a, next) => {
    if (a === '--socks5') socks = hostPort(next(), a);
    else if (a === '--http') httpAt = hostPort(next(), a);
    else if (a === '--request-timeout') requestTimeoutMs = seconds(next(), a);
    else if (a === '--max-header-size') maxHeaderBytes = positiveInt(next(), a, (m) => new WgnetError('ERR_WGNET_INVALID_ARGUMENT', m));
    else if (a === '--auth') {
      const v = next();
      const i = v.indexOf(':');
      if (i < 0) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', '--auth: expected USER:PASS');
      auth = { username: v.slice(0, i), password: v.slice(i + 1) };
    } else return false;
    return true;
  });
  if (c.check) return checkConfig(c);
  if (!socks && !httpAt) socks = { host: '127.0.0.1', port: 1080 };
  if (requestTimeoutMs !== undefined) c.limits.requestTimeoutMs = requestTimeoutMs;
  if (maxHeaderBytes !== undefined) c.limits.maxHeaderBytes = maxHeaderBytes;
  const log = makeLog(c);
  const t = await upTunnel(c, log);
  const dialer = tunnelDialer(t);
  const servers: net.Server[] = [];
  try {
    if (socks) {
      const s = createSocks5Server({ dialer, auth, log, limits: c.limits, onLimit: limitReporter('socks5', log) });
      await listen(s, socks.host, socks.port, 'socks5');
      servers.push(s);
    }
    if (httpAt) {
      const s = createHttpProxyServer({ dialer, auth, log, limits: c.limits, onLimit: limitReporter('http proxy', log) });
      await listen(s, httpAt.host, httpAt.port, 'http proxy');
      servers.push(s);
    }
  } catch (err) {
    for (const s of servers) s.close();
    await t.close();
    throw err;
  }
  const kinds = servers.map((s) => (s === servers[0] && socks ? 'socks5' : 'http'));
  const where = servers.map((s, i) => {
    const a = s.address() as net.AddressInfo;
    return `${kinds[i]}=${a.address}:${a.port}`;
  });
  let ops: Awaited<ReturnType<typeof startOps>>;
  try {
    ops = await startOps(c, t, log, () =>
      servers.map((s, i) => {
        const st = (s as net.Server & { stats: import('./socks5.js').ProxyStats }).stats;
        return {
          listener: where[i]!.slice(kinds[i]!.length + 1),
          kind: kinds[i]!,
          stats: { connections: st.connections, failures: st.failures, bytesUp: st.bytesUp, bytesDown: st.bytesDown, udpFlows: st.udpAssociations, datagramsUp: st.udpUp, datagramsDown: st.udpDown, limited: st.limited },
        };
      }),
    );
  } catch (err) {
    for (const s of servers) s.close();
    await t.close();
    throw err;
  }
  const hs = await waitHandshake(t, 5000, log);
  process.stdout.write(`ready ${where.join(' ')}${ops.metricsAddress ? ` metrics=${ops.metricsAddress}` : ''} udp=${udpBackend(t)} handshake=${hs ? 'ok' : 'pending'}\n`);
  return untilSignal(async () => {
    await ops.close();
    for (const s of servers) {
      s.close();
      const st = (s as net.Server & { stats?: object }).stats;
      if (st) log('info', 'proxy stats', st as Record<string, unknown>);
    }
    await t.close();
  });
}

export async function runForward(args: string[]): Promise<number> {
  const specs: ForwardSpec[] = [];
  let udp = false;
  let udpIdleMs = 60_000;
  let udpFlowsPerPeer: number | undefined;
  const c = parseCommon(args, (a, next) => {
    if (a === '-L' || a === '-R') specs.push(parseForwardSpec(next(), a === '-L' ? 'L' : 'R'));
    else if (a === '--udp') udp = true;
    else if (a === '--udp-timeout') udpIdleMs = seconds(next(), a);
    else if (a === '--max-udp-flows-per-peer') udpFlowsPerPeer = positiveInt(next(), a, (m) => new WgnetError('ERR_WGNET_INVALID_ARGUMENT', m));
    else return false;
    return true;
  });
  if (specs.length === 0) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', 'give at least one -L or -R');
  if (c.check) return checkConfig(c);
  const log = makeLog(c);
  const t = await upTunnel(c, log);
  const viaTunnel = tunnelDialer(t);
  const local = systemDialer();
  const closers: (() => void)[] = [];
  const counters: Record<string, { connections: number; active: number; errors: number; up: number; down: number; limited: number; idleTimeouts: number }> = {};
  const tcpCounters = (spec: ForwardSpec): (typeof counters)[string] => (counters[`-${spec.kind} ${spec.bindPort}:${spec.host}:${spec.port}`] ??= { connections: 0, active: 0, errors: 0, up: 0, down: 0, limited: 0, idleTimeouts: 0 });
  const onIdle = new Map<string, ReturnType<typeof limitReporter>>();
  const serve = (spec: ForwardSpec, sock: import('node:stream').Duplex): void => {
    const key = `-${spec.kind} ${spec.bindPort}:${spec.host}:${spec.port}`;
    const ctr = tcpCounters(spec);
    sock.on('error', () => {});
    sock.pause();
    const started = Date.now();
    const client = (sock as { remoteAddress?: string; remotePort?: number }).remoteAddress;
    const from = client ? `${client}:${(sock as { remotePort?: number }).remotePort}` : undefined;
    dial(spec.kind === 'L' ? viaTunnel : local, spec.host, spec.port).then(
      (up) => {
        ctr.connections++;
        ctr.active++;
        let bytesUp = 0;
        let bytesDown = 0;
        splice(sock, up, (dir, n) => (dir === 'up' ? ((ctr.up += n), (bytesUp += n)) : ((ctr.down += n), (bytesDown += n))), {
          ms: c.limits.idleTimeoutMs,
          onIdle: () => {
            ctr.idleTimeouts++;
            let report = onIdle.get(key);
            if (!report) onIdle.set(key, (report = limitReporter(`forward ${key}`, log)));
            report('idleTimeout', { timeoutMs: c.limits.idleTimeoutMs, client: from });
          },
        });
        log('debug', 'forward connection opened', { forward: key, client: from });
        sock.once('close', () => {
          ctr.active--;
          log('debug', 'forward connection closed', { forward: key, client: from, up: bytesUp, down: bytesDown, ms: Date.now() - started });
        });
        sock.resume();
      },
      (err: NodeJS.ErrnoException) => {
        ctr.errors++;
        log('info', 'forward connect failed', { forward: key, client: from, error: err.code ?? err.message, ms: Date.now() - started });
        sock.destroy();
      },
    );
  };
  const udpCounters: Record<string, UdpForwardCounters> = {};
  try {
    for (const spec of specs) {
      if (udp) {
        const key = `-${spec.kind} ${spec.bindPort}:${spec.host}:${spec.port} udp`;
        const counters = (udpCounters[key] = { flows: 0, up: 0, down: 0, expired: 0, limited: 0, limitedPerPeer: 0 });
        const onLimit = limitReporter(`forward ${key}`, log);
        const family: 4 | 6 = parseIp(spec.host)?.length === 16 ? 6 : 4; // names: IPv4
        let listener: DatagramSocket;
        if (spec.kind === 'L') {
          const bindHost = spec.bindHost ?? '127.0.0.1';
          const d = dgram.createSocket(bindHost.includes(':') ? 'udp6' : 'udp4');
          await new Promise<void>((resolve, reject) => {
            d.once('error', (e: Error) => reject(new WgnetError('ERR_WGNET_IN_USE', `-L ${spec.bindPort} (udp): ${e.message}`)));
            d.bind(spec.bindPort, bindHost, () => resolve());
          });
          listener = d;
        } else {
          const u = t.createSocket('udp4');
          await new Promise<void>((resolve, reject) => {
            u.once('error', (e: Error) => reject(new WgnetError('ERR_WGNET_IN_USE', `-R ${spec.bindPort} (udp): ${e.message}`)));
            u.bind(spec.bindPort, () => resolve());
          });
          listener = u;
        }
        const fwd = forwardUdp({
          listener,
          outbound: spec.kind === 'L' ? () => viaTunnel.udp!(family) : () => dgram.createSocket(family === 6 ? 'udp6' : 'udp4'),
          host: spec.host,
          port: spec.port,
          idleMs: udpIdleMs,
          counters,
          maxFlows: c.limits.maxUdpFlows,
          // -R: the clients are peers, and one may hold only its share (whitepaper §2: a peer
          // is its AllowedIPs). -L's clients are local programs, all one address: no share.
          ...(spec.kind === 'R' ? { peerOf: (a: string) => t.peerFor(a), maxFlowsPerPeer: udpFlowsPerPeer } : {}),
          onLimit: (fields) => onLimit('maxPerPeer' in fields ? 'udpFlowsPerPeer' : 'udpFlows', fields),
          onError: (e) => log('debug', 'forward udp error', { forward: key, error: e.message }),
        });
        closers.push(() => fwd.close());
      } else if (spec.kind === 'L') {
        const s = net.createServer((sock) => serve(spec, sock));
        const onLimit = limitReporter(`forward -L ${spec.bindPort}`, log);
        s.maxConnections = c.limits.maxConnections; // Node closes the excess at once and emits 'drop'
        s.on('drop', (d?: { remoteAddress?: string }) => {
          tcpCounters(spec).limited++;
          onLimit('connections', { max: c.limits.maxConnections, client: d?.remoteAddress });
        });
        await listen(s, spec.bindHost ?? '127.0.0.1', spec.bindPort, `-L ${spec.bindPort}`);
        closers.push(() => s.close());
      } else {
        // The tunnel's TcpServer has maxConnections but reports no drops: count here instead.
        const onLimit = limitReporter(`forward -R ${spec.bindPort}`, log);
        let open = 0;
        const s = t.createServer((sock) => {
          if (open >= c.limits.maxConnections) {
            tcpCounters(spec).limited++;
            onLimit('connections', { max: c.limits.maxConnections, client: sock.remoteAddress });
            sock.destroy();
            return;
          }
          open++;
          sock.once('close', () => open--);
          serve(spec, sock);
        });
        await new Promise<void>((resolve, reject) => {
          s.once('error', (e: Error) => reject(new WgnetError('ERR_WGNET_IN_USE', `-R ${spec.bindPort}: ${e.message}`)));
          s.listen(spec.bindPort, () => resolve());
        });
        closers.push(() => s.close());
      }
    }
  } catch (err) {
    for (const cl of closers) cl();
    await t.close();
    throw err;
  }
  let ops: Awaited<ReturnType<typeof startOps>>;
  try {
    ops = await startOps(c, t, log, () => [
      ...Object.entries(counters).map(([listener, v]) => ({ listener, kind: 'forward', stats: { connections: v.connections, active: v.active, failures: v.errors, bytesUp: v.up, bytesDown: v.down, limited: { connections: v.limited, idleTimeout: v.idleTimeouts } } })),
      ...Object.entries(udpCounters).map(([listener, v]) => ({ listener, kind: 'forward-udp', stats: { udpFlows: v.flows, datagramsUp: v.up, datagramsDown: v.down, limited: { udpFlows: v.limited, udpFlowsPerPeer: v.limitedPerPeer ?? 0 } } })),
    ]);
  } catch (err) {
    for (const cl of closers) cl();
    await t.close();
    throw err;
  }
  const hs = await waitHandshake(t, 5000, log);
  process.stdout.write(`ready ${specs.map((s) => `-${s.kind} ${s.bindHost ? s.bindHost + ':' : ''}${s.bindPort}:${s.host}:${s.port}`).join(' ')}${udp ? ' udp' : ''}${ops.metricsAddress ? ` metrics=${ops.metricsAddress}` : ''} udp=${udpBackend(t)} handshake=${hs ? 'ok' : 'pending'}\n`);
  return untilSignal(async () => {
    await ops.close();
    for (const cl of closers) cl();
    for (const [k, v] of Object.entries(counters)) log('info', 'forward stats', { forward: k, ...v });
    for (const [k, v] of Object.entries(udpCounters)) log('info', 'forward stats', { forward: k, ...v });
    await t.close();
  });
}
