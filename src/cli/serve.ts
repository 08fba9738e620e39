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

const LIMITS_HELP = (which: 'proxy' | 'forward'): string =>
  which === 'proxy'
    ? `Limits (per listener; a client over one is refused alone, counted, and logged at most once per 10 s):
  --max-connections N        client connections at once (default ${DEFAULT_LIMITS.maxConnections}; more are closed at once)
  --request-timeout SECONDS  for the SOCKS5 greeting + request or the HTTP request headers to arrive (default ${DEFAULT_LIMITS.requestTimeoutMs / 1000})
  --max-header-size BYTES    HTTP request line + headers (default ${DEFAULT_LIMITS.maxHeaderBytes}; larger get 431)
  --max-udp-flows N          SOCKS5 UDP associations at once (default ${DEFAULT_LIMITS.maxUdpFlows}; more get reply 1)`
    : `Limits (per listener; over one, a new client or flow is refused alone, counted, and logged at most once per 10 s):
  --max-connections N  TCP client connections at once (default ${DEFAULT_LIMITS.maxConnections}; more are closed at once)
  --max-udp-flows N    --udp flows at once (default ${DEFAULT_LIMITS.maxUdpFlows}; a new source's datagrams are dropped, existing flows go on)`;

export const PROXY_USAGE = `Usage: wgnet proxy -c FILE [--socks5 HOST:PORT] [--http HOST:PORT] [--auth USER:PASS] [--uapi NAME] [--log-level info|debug|warn] [--log-format text|json]
                   [--max-connections N] [--request-timeout SECONDS] [--max-header-size BYTES] [--max-udp-flows N]

Runs a SOCKS5 (RFC 1928: CONNECT and UDP ASSOCIATE; names resolved through the tunnel's DNS) and/or an
HTTP proxy (CONNECT and http:// requests) whose connections go through the WireGuard
tunnel of FILE (wg-quick or sing-box JSON). No root, no OS interface.

${LIMITS_HELP('proxy')}

Example: wgnet proxy -c wg0.conf --socks5 127.0.0.1:1080 --http 127.0.0.1:8080
         curl --socks5-hostname 127.0.0.1:1080 http://10.0.0.1/`;

export const FORWARD_USAGE = `Usage: wgnet forward -c FILE [-L [BIND:]PORT:HOST:PORT ...] [-R PORT:HOST:PORT ...] [--udp [--udp-timeout SECONDS]] [--uapi NAME] [--log-level ...]
                     [--max-connections N] [--max-udp-flows N]

-L  listens on this machine (BIND defaults to 127.0.0.1) and carries each connection
    through the tunnel to HOST:PORT (HOST may be a name, resolved through the tunnel).
-R  listens on the tunnel's own address, PORT, and carries each connection to HOST:PORT
    on this machine: hosting a service behind WireGuard with no root.

--udp  the forwards of this command carry UDP instead of TCP: each client address and
       port is a flow with its own socket on the other side, closed after
       --udp-timeout seconds without traffic (default 60). Run a second forward for TCP.

${LIMITS_HELP('forward')}

Example: wgnet forward -c wg0.conf -L 8022:10.0.0.5:22 -R 8080:127.0.0.1:3000
         wgnet forward -c wg0.conf --udp -L 5353:10.0.0.1:53`;

export interface Common {
  limits: ListenerLimits;
  config?: string;
  uapi?: string;
  level: 'debug' | 'info' | 'warn';
  json: boolean;
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

export function makeLog(c: Common): (level: 'debug' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void {
  const order = { debug: 0, info: 1, warn: 2 };
  return (level, msg, fields) => {
    if (order[level] < order[c.level]) return;
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

async function upTunnel(c: Common, log: ReturnType<typeof makeLog>): Promise<Tunnel> {
  if (!c.config) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', '-c FILE is required');
  const t = await Tunnel.create({ file: c.config }, c.uapi ? { uapi: c.uapi } : {});
  for (const w of t.config.warnings) log('warn', w);
  t.on('handshake', (e: { publicKey: string }) => log('info', 'handshake', { peer: e.publicKey }));
  t.on('warning', (e: Error) => log('warn', e.message));
  // Start handshakes now so readiness means "the tunnel works".
  const now = t.engine.now();
  for (const p of t.device.peers()) if (p.endpoint) t.device.initiateHandshake(now, p);
  t.engine.pump();
  return t;
}

export function waitHandshake(t: Tunnel, ms: number): Promise<boolean> {
  if ([...t.device.peers()].some((p) => p.lastHandshakeWallMs > 0)) return Promise.resolve(true);
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
  const c: Common = { level: 'info', json: false, limits: { ...DEFAULT_LIMITS } };
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
    else if (a === '--log-level') c.level = next() as Common['level'];
    else if (a === '--log-format') c.json = next() === 'json';
    else if (a === '--max-connections') c.limits.maxConnections = positiveInt(next(), a, bad);
    else if (a === '--max-udp-flows') c.limits.maxUdpFlows = positiveInt(next(), a, bad);
    else if (!extra(a, next)) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `unknown option '${a}'`);
  }
  return c;
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
  const hs = await waitHandshake(t, 5000);
  const where = servers.map((s) => {
    const a = s.address() as net.AddressInfo;
    return `${s === servers[0] && socks ? 'socks5' : 'http'}=${a.address}:${a.port}`;
  });
  process.stdout.write(`ready ${where.join(' ')} handshake=${hs ? 'ok' : 'pending'}\n`);
  return untilSignal(async () => {
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
  const c = parseCommon(args, (a, next) => {
    if (a === '-L' || a === '-R') specs.push(parseForwardSpec(next(), a === '-L' ? 'L' : 'R'));
    else if (a === '--udp') udp = true;
    else if (a === '--udp-timeout') udpIdleMs = seconds(next(), a);
    else return false;
    return true;
  });
  if (specs.length === 0) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', 'give at least one -L or -R');
  const log = makeLog(c);
  const t = await upTunnel(c, log);
  const viaTunnel = tunnelDialer(t);
  const local = systemDialer();
  const closers: (() => void)[] = [];
  const counters: Record<string, { connections: number; errors: number; up: number; down: number; limited: number }> = {};
  const tcpCounters = (spec: ForwardSpec): (typeof counters)[string] => (counters[`-${spec.kind} ${spec.bindPort}:${spec.host}:${spec.port}`] ??= { connections: 0, errors: 0, up: 0, down: 0, limited: 0 });
  const serve = (spec: ForwardSpec, sock: import('node:stream').Duplex): void => {
    const key = `-${spec.kind} ${spec.bindPort}:${spec.host}:${spec.port}`;
    const ctr = tcpCounters(spec);
    sock.on('error', () => {});
    sock.pause();
    dial(spec.kind === 'L' ? viaTunnel : local, spec.host, spec.port).then(
      (up) => {
        ctr.connections++;
        splice(sock, up, (dir, n) => (dir === 'up' ? (ctr.up += n) : (ctr.down += n)));
        sock.resume();
      },
      (err: NodeJS.ErrnoException) => {
        ctr.errors++;
        log('info', 'forward connect failed', { forward: key, error: err.code ?? err.message });
        sock.destroy();
      },
    );
  };
  const udpCounters: Record<string, UdpForwardCounters> = {};
  try {
    for (const spec of specs) {
      if (udp) {
        const key = `-${spec.kind} ${spec.bindPort}:${spec.host}:${spec.port} udp`;
        const counters = (udpCounters[key] = { flows: 0, up: 0, down: 0, expired: 0, limited: 0 });
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
          onLimit: (fields) => onLimit('udpFlows', fields),
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
  const hs = await waitHandshake(t, 5000);
  process.stdout.write(`ready ${specs.map((s) => `-${s.kind} ${s.bindHost ? s.bindHost + ':' : ''}${s.bindPort}:${s.host}:${s.port}`).join(' ')}${udp ? ' udp' : ''} handshake=${hs ? 'ok' : 'pending'}\n`);
  return untilSignal(async () => {
    for (const cl of closers) cl();
    for (const [k, v] of Object.entries(counters)) log('info', 'forward stats', { forward: k, ...v });
    for (const [k, v] of Object.entries(udpCounters)) log('info', 'forward stats', { forward: k, ...v });
    await t.close();
  });
}
