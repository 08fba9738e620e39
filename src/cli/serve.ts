/**
 * `wgnet proxy` and `wgnet forward`: long-running commands on a userspace tunnel.
 * A readiness line on stdout once the handshake is up (or after 5 s without one),
 * logs on stderr, clean shutdown on SIGINT/SIGTERM, one-line errors.
 */
import type net from 'node:net';
import { Tunnel } from '../api/tunnel.js';
import { parseForwardSpec, forwardFlagRule, type ForwardSpec } from './forward.js';
import { WgnetError } from '../util/errors.js';
import { DEFAULT_LIMITS, positiveInt, type ListenerLimits } from './limits.js';
import { listenerMetrics, type ListenerCounters } from '../io/metrics.js';
import { serveOps, checkPeerNames, parseProbeTarget } from '../io/health.js';
import { levelEnabled, type Trace } from '../util/trace.js';
import { loadConfig, loadConfigWithRules, proxyAuth, RULE_SECTIONS, type ListenerRule, type ProxyAuth, type TunnelConfig } from '../config/index.js';
import { ListenerSet } from './listeners.js';
import { memoryTrimStats, watchMemory } from '../io/memory.js';
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
         connections untouched (proxy and forward: its listener sections too); a bad file
         keeps the running config and logs file:line.
         SIGUSR1 prints the live counters and memory to stderr, labelled; when node runs with
         --expose-gc (node --expose-gc $(which wgnet) ...), a full garbage collection first, so
         the memory line shows what is retained, not what is yet to be collected (leak checks).
         SIGINT and SIGTERM stop.`;

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

/** The config file's listener sections (config/rules.ts), in both proxy's and forward's help. */
const RULES_HELP = `Listeners in the config file (wireproxy's sections, any number; proxy and forward both run every
kind, alongside their flags):
  [Socks5]           BindAddress = 127.0.0.1:1080   (Username = U, Password = P: optional, both)
  [http]             BindAddress = 127.0.0.1:8080   (Username, Password as [Socks5])
  [TCPClientTunnel]  BindAddress = 127.0.0.1:2222   Target = 10.0.0.5:22     as -L
  [TCPServerTunnel]  ListenPort = 8080              Target = 127.0.0.1:3000  as -R
  [UDPProxyTunnel]   BindAddress = 127.0.0.1:5353   Target = 10.0.0.1:53     as --udp -L (InactivityTimeout = SECONDS)
BindAddress ':PORT' is every interface. On SIGHUP an unchanged section keeps its listener and
connections; a removed one stops listening and lets its open TCP connections run to their end
(as an nginx or HAProxy reload; UDP flows close at once); a new one starts; one that cannot
listen logs one line and the rest applies. The flags' listeners stay as started.`;

export const PROXY_USAGE = `Usage: wgnet proxy -c FILE [--socks5 HOST:PORT] [--http HOST:PORT] [--auth USER:PASS] [--uapi NAME] [--log-level LEVEL] [--log-format text|json]
                   [--max-connections N] [--request-timeout SECONDS] [--max-header-size BYTES] [--max-udp-flows N] [--idle-timeout SECONDS]
                   [--metrics HOST:PORT] [--ready-peers KEY,...] [--health-check IP[:PORT]] [--pcap FILE]

Runs a SOCKS5 (RFC 1928: CONNECT and UDP ASSOCIATE; names resolved through the tunnel's DNS) and/or an
HTTP proxy (CONNECT and http:// requests) whose connections go through the WireGuard
tunnel of FILE (wg-quick or sing-box JSON). No root, no OS interface. With no --socks5, --http
or listener section in FILE: --socks5 127.0.0.1:1080. --auth is for the flags' listeners; a
section has its own Username and Password.

${RULES_HELP}

${LIMITS_HELP('proxy')}

${OPS_HELP}

Example: wgnet proxy -c wg0.conf --socks5 127.0.0.1:1080 --http 127.0.0.1:8080
         curl --socks5-hostname 127.0.0.1:1080 http://10.0.0.1/
         wgnet proxy -c wireproxy.conf      # its [Socks5], [http], ... sections; kill -HUP to reload`;

export const FORWARD_USAGE = `Usage: wgnet forward -c FILE [-L [BIND:]PORT:HOST:PORT ...] [-R PORT:HOST:PORT ...] [--udp [--udp-timeout SECONDS]] [--uapi NAME] [--log-level ...]
                     [--max-connections N] [--max-udp-flows N] [--idle-timeout SECONDS] [--metrics HOST:PORT] [--health-check IP[:PORT]] [--pcap FILE]

-L  listens on this machine (BIND defaults to 127.0.0.1) and carries each connection
    through the tunnel to HOST:PORT (HOST may be a name, resolved through the tunnel).
-R  listens on the tunnel's own address, PORT, and carries each connection to HOST:PORT
    on this machine: hosting a service behind WireGuard with no root.

--udp  the forwards of this command carry UDP instead of TCP: each client address and
       port is a flow with its own socket on the other side, closed after
       --udp-timeout seconds without traffic (default 60). Run a second forward for TCP,
       or put the UDP ones in FILE as [UDPProxyTunnel] sections: --udp is for the flags only.

At least one -L, -R or listener section in FILE.

${RULES_HELP}

${LIMITS_HELP('forward')}

${OPS_HELP}

Example: wgnet forward -c wg0.conf -L 8022:10.0.0.5:22 -R 8080:127.0.0.1:3000
         wgnet forward -c wg0.conf --udp -L 5353:10.0.0.1:53
         wgnet forward -c tunnels.conf      # its [TCPClientTunnel], ... sections; kill -HUP to reload`;

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

/**
 * The -c file of proxy / forward, read once for both the tunnel and its listener sections
 * (config/rules.ts): the library's Tunnel.create rejects those sections, so the CLI hands it
 * the parsed tunnel part.
 */
async function loadCliConfig(c: Common): Promise<{ config: TunnelConfig; rules: ListenerRule[] }> {
  if (!c.config) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', '-c FILE is required');
  return loadConfigWithRules({ file: c.config });
}

async function upTunnel(c: Common, log: CliLog, config: TunnelConfig): Promise<Tunnel> {
  const trace = coreTrace(c, log);
  const t = await Tunnel.create(config, tunnelOptions(c, trace));
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
export async function startOps(c: Common, t: Tunnel, log: CliLog, listeners: ListenerSource = () => [], rules?: ListenerSet): Promise<{ close(): Promise<void>; dump(write?: CliLog, collected?: boolean): void; metricsAddress?: string }> {
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
    const dump = (write: CliLog = makeLog({ level: 'trace', json: c.json }), collected = false): void => dumpStats(t, listeners(), write, collected);
    const onUsr1 = (): void => {
      // gc exists only under --expose-gc, an explicit debugging flag: a production process never collects on a signal.
      const gc = (globalThis as { gc?: () => void }).gc;
      if (typeof gc !== 'function') return void dump();
      void collectForDump(gc).then(() => dump(undefined, true));
    };
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
        running = reloadConfig(t, file, log, rules).finally(() => {
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
 * warning says they need a restart. With `listeners` (proxy, forward), the file's listener
 * sections are applied after the peers, from the same read (listeners.ts reload: unchanged ones
 * untouched, gone ones stopped, new ones started; one that cannot listen logs a line and the rest
 * applies). Resolves to whether the new config was applied.
 */
export async function reloadConfig(t: Tunnel, file: string, log: CliLog, listeners?: ListenerSet): Promise<boolean> {
  let r: SyncResult;
  let rules: ListenerRule[] | undefined;
  try {
    if (listeners) {
      const loaded = await loadConfigWithRules({ file });
      rules = loaded.rules;
      r = await t.syncConfig(loaded.config);
    } else r = await t.syncConfig({ file });
  } catch (err) {
    log('error', `config reload failed, the running config stays: ${(err as Error).message}`);
    return false;
  }
  for (const w of r.warnings) log('warn', w);
  if (r.privateKeyChanged) log('info', 'config reload: new PrivateKey; every session was dropped and is handshaken again', { file });
  if (r.restartNeeded.length) log('warn', `config reload: ${r.restartNeeded.join(', ')} changes take effect on restart; the running ones stay`, { file });
  log('info', 'config reloaded', { file, added: r.added, removed: r.removed, changed: r.changed, unchanged: r.unchanged });
  if (listeners && rules) log('info', 'listeners reloaded', { file, ...(await listeners.reload(rules)) });
  return true;
}

/**
 * --check: the config parses and validates (warnings printed); exits 0, or throws the error naming
 * file:line. `withRules` (proxy, forward): listener sections are accepted and counted.
 */
export async function checkConfig(c: Common, withRules = false): Promise<number> {
  if (!c.config) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', '-c FILE is required');
  const { config: cfg, rules } = withRules ? await loadConfigWithRules({ file: c.config }) : { config: await loadConfig({ file: c.config }), rules: [] };
  for (const w of cfg.warnings) process.stderr.write(`WARN ${w}\n`);
  const n = (k: number, one: string, many: string): string => `${k} ${k === 1 ? one : many}`;
  process.stdout.write(`${c.config}: ok (${n(cfg.peers.length, 'peer', 'peers')}, ${n(cfg.addresses.length, 'address', 'addresses')}${rules.length ? `, ${n(rules.length, 'listener', 'listeners')}` : ''}${cfg.warnings.length ? `, ${n(cfg.warnings.length, 'warning', 'warnings')}` : ''})\n`);
  return 0;
}

/**
 * Full collections with a timer turn between them: what the timers of closed connections still
 * held is free only once those timers have run. The memory checks (io/memory.ts) are re-armed
 * first, so the external memory the collections release is seen, and trimmed as their own policy
 * decides, as if connections were still coming in.
 */
async function collectForDump(gc: () => void): Promise<void> {
  watchMemory();
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The live counters, one labelled line per peer, device, TCP, gateway and listener, then memory;
 * `collected`: the memory line follows full collections (SIGUSR1 under --expose-gc).
 */
export function dumpStats(t: Tunnel, listeners: ReturnType<ListenerSource>, write: CliLog, collected = false): void {
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
  const m = process.memoryUsage();
  const mb = (n: number): number => Math.round((n / 1024 / 1024) * 10) / 10;
  write('info', 'stats memory', { rssMB: mb(m.rss), heapMB: mb(m.heapUsed), heapTotalMB: mb(m.heapTotal), externalMB: mb(m.external), mallocTrims: memoryTrimStats().trims, collected });
}

/** Starts `set`'s listeners, the flags' then the config's; on a failure, closes what started and the tunnel, and throws. */
async function startListeners(set: ListenerSet, t: Tunnel, flags: Parameters<ListenerSet['startFixed']>[0], rules: readonly ListenerRule[]): Promise<void> {
  try {
    await set.startFixed(flags);
    await set.startConfig(rules);
  } catch (err) {
    set.closeAll();
    await t.close();
    throw err;
  }
}

/** The shared tail of proxy and forward: ops, the ready line, then serving until a signal. */
async function serveListeners(c: Common, t: Tunnel, log: CliLog, set: ListenerSet, udpFlag: boolean): Promise<number> {
  let ops: Awaited<ReturnType<typeof startOps>>;
  try {
    ops = await startOps(c, t, log, () => set.list(), set);
  } catch (err) {
    set.closeAll();
    await t.close();
    throw err;
  }
  const hs = await waitHandshake(t, 5000, log);
  const parts = set.readyParts();
  const where = [...parts.fixed, ...(udpFlag && parts.fixed.length ? ['udp'] : []), ...parts.config].join(' ');
  process.stdout.write(`ready ${where}${ops.metricsAddress ? ` metrics=${ops.metricsAddress}` : ''} udp=${udpBackend(t)} handshake=${hs ? 'ok' : 'pending'}\n`);
  return untilSignal(async () => {
    await ops.close();
    set.closeAll(log);
    await t.close();
  });
}

export async function runProxy(args: string[]): Promise<number> {
  let socks: { host: string; port: number } | undefined;
  let httpAt: { host: string; port: number } | undefined;
  let auth: ProxyAuth | undefined;
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
      auth = proxyAuth(v.slice(0, i), v.slice(i + 1));
    } else return false;
    return true;
  });
  if (c.check) return checkConfig(c, true);
  if (requestTimeoutMs !== undefined) c.limits.requestTimeoutMs = requestTimeoutMs;
  if (maxHeaderBytes !== undefined) c.limits.maxHeaderBytes = maxHeaderBytes;
  const { config, rules } = await loadCliConfig(c);
  // The default SOCKS5 listener only when nothing else is asked for: a file with an [http]
  // section alone (as wireproxy runs it) gets no extra port.
  if (!socks && !httpAt && rules.length === 0) socks = { host: '127.0.0.1', port: 1080 };
  const flags: { rule: ListenerRule }[] = [];
  if (socks) flags.push({ rule: { kind: 'socks5', bind: socks, ...(auth ? { auth } : {}) } });
  if (httpAt) flags.push({ rule: { kind: 'http', bind: httpAt, ...(auth ? { auth } : {}) } });
  const log = makeLog(c);
  const t = await upTunnel(c, log, config);
  const set = new ListenerSet({ t, log, limits: c.limits, udpIdleMs: 60_000 });
  await startListeners(set, t, flags, rules);
  return serveListeners(c, t, log, set, false);
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
  if (c.check) return checkConfig(c, true);
  const { config, rules } = await loadCliConfig(c);
  if (specs.length === 0 && rules.length === 0) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `give at least one -L or -R, or a listener section (${RULE_SECTIONS.map((s) => `[${s}]`).join(', ')}) in the config file`);
  const log = makeLog(c);
  const t = await upTunnel(c, log, config);
  const set = new ListenerSet({ t, log, limits: c.limits, udpIdleMs, udpFlowsPerPeer });
  await startListeners(set, t, specs.map((s) => forwardFlagRule(s, udp)), rules);
  return serveListeners(c, t, log, set, udp);
}
