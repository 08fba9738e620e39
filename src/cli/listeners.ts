/**
 * The listeners of `wgnet proxy` and `wgnet forward`: SOCKS5 and HTTP proxies, TCP and UDP
 * forwards both ways, each started from one ListenerRule (config/rules.ts), whether it came
 * from a flag or from a section of the config file.
 *
 * Flag rules are fixed for the life of the process. Config rules follow the file: on SIGHUP,
 * `reload()` keeps a rule that is unchanged (its listener and connections are not touched),
 * stops one that is gone and starts one that is new. A changed rule is a removed one plus a new
 * one. A stopped TCP listener stops accepting and lets its open connections run to their end,
 * as nginx's old workers and HAProxy's old process do on a reload: a reload is not a reason to
 * cut a transfer. A stopped UDP forward closes its socket and flows at once: UDP has no
 * connection to finish, and the bound port is the listener.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import type { Duplex } from 'node:stream';
import type { Tunnel } from '../api/tunnel.js';
import { tunnelDialer, systemDialer, splice, dial, type DatagramSocket, type Dialer } from './dialer.js';
import { createSocks5Server, type ProxyStats } from './socks5.js';
import { createHttpProxyServer } from './http-proxy.js';
import { forwardUdp, type UdpForwardCounters } from './udp-forward.js';
import { limitReporter, type ListenerLimits } from './limits.js';
import type { ListenerCounters } from '../io/metrics.js';
import { WgnetError } from '../util/errors.js';
import { parseIp } from '../util/ip.js';
import { describeRule, ruleId, type ListenerRule } from '../config/index.js';
import type { CliLog } from './serve.js';

export function listen(server: net.Server, host: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new WgnetError(err.code === 'EADDRINUSE' ? 'ERR_WGNET_IN_USE' : 'ERR_WGNET_INVALID_ARGUMENT', `${what}: cannot listen on ${host || '*'}:${port}: ${err.code === 'EADDRINUSE' ? 'address in use' : err.message}`)),
    );
    // host '' is every interface, as Go's ':1080' in a wireproxy file.
    server.listen({ port, ...(host ? { host } : {}) }, () => resolve());
  });
}

export interface ListenerDeps {
  t: Tunnel;
  log: CliLog;
  limits: ListenerLimits;
  /** UDP forwards' flow idle time (--udp-timeout), unless a rule has its own (InactivityTimeout). */
  udpIdleMs: number;
  /** --max-udp-flows-per-peer for tunnel-side UDP forwards. */
  udpFlowsPerPeer?: number;
}

/** A started listener. */
interface Running {
  rule: ListenerRule;
  /** The metrics label and log name (flags keep the ones they had before config rules existed). */
  label: string;
  kind: 'socks5' | 'http' | 'forward' | 'forward-udp';
  /** Its part of the ready line. */
  ready: string;
  stats(): ListenerCounters;
  /** Logged once at shutdown. */
  final(): Record<string, unknown>;
  close(): void;
}

interface TcpForwardCounters {
  connections: number;
  active: number;
  errors: number;
  up: number;
  down: number;
  limited: number;
  idleTimeouts: number;
}

/** Where a rule is written, for logs: `[TCPClientTunnel] wg0.conf:12`, or its flag form. */
export function ruleWhere(r: ListenerRule): string {
  const o = r.origin;
  return o ? `[${o.section}] ${o.file ?? '<config>'}:${o.line}` : describeRule(r);
}

export class ListenerSet {
  private readonly fixed: Running[] = [];
  private readonly fromConfig = new Map<string, Running>();
  private readonly viaTunnel: Dialer;
  private readonly local = systemDialer();
  /** Set by closeAll: a reload still under way when the process stops must not start anything. */
  private closed = false;

  constructor(private readonly d: ListenerDeps) {
    this.viaTunnel = tunnelDialer(d.t);
  }

  /** Flag rules, started in order; the first that fails throws (the caller closes the rest: closeAll). */
  async startFixed(entries: readonly { rule: ListenerRule; label?: string; ready?: string }[]): Promise<void> {
    for (const e of entries) this.fixed.push(await this.start(e.rule, e.label, e.ready));
  }

  /** The config's rules at start-up: all or nothing, as flags (a port in use is an exit, not a log line). */
  async startConfig(rules: readonly ListenerRule[]): Promise<void> {
    for (const r of rules) this.fromConfig.set(ruleId(r), await this.start(r));
  }

  /**
   * SIGHUP: the config's new rules. Gone ones stop first, so a rule changed in place can bind
   * its port again; a new one that cannot listen logs one line and the rest applies (it is
   * tried again on the next reload, since it is not running).
   */
  async reload(rules: readonly ListenerRule[]): Promise<{ started: number; stopped: number; unchanged: number; failed: number }> {
    const next = new Map(rules.map((r) => [ruleId(r), r] as const));
    if (this.closed) return { started: 0, stopped: 0, unchanged: 0, failed: 0 };
    let stopped = 0;
    for (const [id, run] of this.fromConfig) {
      if (next.has(id)) continue;
      this.fromConfig.delete(id);
      run.close();
      stopped++;
      this.d.log('info', 'listener stopped; its open connections go on until they end', { listener: run.label, rule: ruleWhere(run.rule) });
    }
    // The closed sockets' ports are free once their handles close, on the next turn of the loop.
    if (stopped) await new Promise((r) => setImmediate(r));
    let started = 0;
    let failed = 0;
    for (const [id, rule] of next) {
      const run = this.fromConfig.get(id);
      if (run) {
        run.rule = rule; // the same listener; its line in the file may have moved
        continue;
      }
      try {
        const r = await this.start(rule);
        if (this.closed) {
          r.close();
          break;
        }
        this.fromConfig.set(id, r);
        started++;
        this.d.log('info', 'listener started', { listener: r.label, rule: ruleWhere(rule) });
      } catch (err) {
        failed++;
        // Bind errors already start with where the rule is written (listen()'s `what`).
        const where = ruleWhere(rule);
        const msg = (err as Error).message;
        this.d.log('error', `listener not started, the rest of the config applies: ${msg.startsWith(where) ? msg : `${where}: ${msg}`}`);
      }
    }
    return { started, stopped, unchanged: next.size - started - failed, failed };
  }

  get size(): number {
    return this.fixed.length + this.fromConfig.size;
  }

  /** Ready-line parts: the flags' listeners, then the config's. */
  readyParts(): { fixed: string[]; config: string[] } {
    return { fixed: this.fixed.map((r) => r.ready), config: [...this.fromConfig.values()].map((r) => r.ready) };
  }

  /** For /metrics and SIGUSR1 (serve.ts ListenerSource). */
  list(): { listener: string; kind: string; stats: ListenerCounters }[] {
    return [...this.fixed, ...this.fromConfig.values()].map((r) => ({ listener: r.label, kind: r.kind, stats: r.stats() }));
  }

  /** Shutdown: every listener stops; with `log`, each one's totals are logged. */
  closeAll(log?: CliLog): void {
    for (const r of [...this.fixed, ...this.fromConfig.values()]) {
      r.close();
      if (log) log('info', r.kind === 'socks5' || r.kind === 'http' ? 'proxy stats' : 'forward stats', r.final());
    }
    this.fixed.length = 0;
    this.fromConfig.clear();
    this.closed = true;
  }

  private async start(rule: ListenerRule, label?: string, ready?: string): Promise<Running> {
    switch (rule.kind) {
      case 'socks5':
      case 'http':
        return this.startProxy(rule, label, ready);
      case 'tcp-client':
      case 'tcp-server':
        return this.startTcpForward(rule, label, ready);
      case 'udp-client':
      case 'udp-server':
        return this.startUdpForward(rule, label, ready);
    }
  }

  private async startProxy(rule: Extract<ListenerRule, { kind: 'socks5' | 'http' }>, label?: string, ready?: string): Promise<Running> {
    const { log, limits } = this.d;
    const opts = { dialer: this.viaTunnel, auth: rule.auth, log, limits, onLimit: limitReporter(rule.kind === 'socks5' ? 'socks5' : 'http proxy', log) };
    const s: net.Server & { stats: ProxyStats } = rule.kind === 'socks5' ? createSocks5Server(opts) : createHttpProxyServer(opts);
    await listen(s, rule.bind.host, rule.bind.port, rule.origin ? ruleWhere(rule) : rule.kind === 'socks5' ? 'socks5' : 'http proxy');
    const a = s.address() as net.AddressInfo;
    const where = `${a.address}:${a.port}`;
    return {
      rule,
      label: label ?? where,
      kind: rule.kind,
      ready: ready ?? `${rule.kind}=${where}`,
      stats: () => {
        const st = s.stats;
        return { connections: st.connections, failures: st.failures, bytesUp: st.bytesUp, bytesDown: st.bytesDown, udpFlows: st.udpAssociations, datagramsUp: st.udpUp, datagramsDown: st.udpDown, limited: st.limited };
      },
      final: () => ({ ...s.stats }),
      close: () => void s.close(),
    };
  }

  /** The bound form of a -L rule for the ready line and label (port 0 becomes the port taken). */
  private bound(rule: Extract<ListenerRule, { kind: 'tcp-client' | 'udp-client' }>, port: number): string {
    return describeRule({ ...rule, bind: { host: rule.bind.host, port } });
  }

  private async startTcpForward(rule: Extract<ListenerRule, { kind: 'tcp-client' | 'tcp-server' }>, label?: string, ready?: string): Promise<Running> {
    const { t, log, limits } = this.d;
    const ctr: TcpForwardCounters = { connections: 0, active: 0, errors: 0, up: 0, down: 0, limited: 0, idleTimeouts: 0 };
    let name = label ?? describeRule(rule);
    const onLimit = limitReporter(`forward ${rule.kind === 'tcp-client' ? '-L' : '-R'} ${rule.kind === 'tcp-client' ? rule.bind.port : rule.port}`, log);
    let close: () => void;
    if (rule.kind === 'tcp-client') {
      // Half-open allowed: a client that shuts its write side after its request (nc -N, HTTP/1.0
      // clients) still gets the answer; splice passes the FIN on and closes when both sides are done.
      const s = net.createServer({ allowHalfOpen: true }, (sock) => this.carry(rule, name, ctr, sock));
      s.maxConnections = limits.maxConnections; // Node closes the excess at once and emits 'drop'
      s.on('drop', (dr?: { remoteAddress?: string }) => {
        ctr.limited++;
        onLimit('connections', { max: limits.maxConnections, client: dr?.remoteAddress });
      });
      await listen(s, rule.bind.host, rule.bind.port, rule.origin ? ruleWhere(rule) : `-L ${rule.bind.port}`);
      if (!label) name = this.bound(rule, (s.address() as net.AddressInfo).port);
      close = () => void s.close();
    } else {
      // The tunnel's TcpServer has maxConnections but reports no drops: count here instead.
      let open = 0;
      const s = t.createServer((sock) => {
        if (open >= limits.maxConnections) {
          ctr.limited++;
          onLimit('connections', { max: limits.maxConnections, client: sock.remoteAddress });
          sock.destroy();
          return;
        }
        open++;
        sock.once('close', () => open--);
        this.carry(rule, name, ctr, sock);
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', (e: Error) => reject(new WgnetError('ERR_WGNET_IN_USE', `${rule.origin ? ruleWhere(rule) : '-R'} ${rule.port}: ${e.message}`)));
        s.listen(rule.port, () => resolve());
      });
      close = () => void s.close();
    }
    return {
      rule,
      label: name,
      kind: 'forward',
      ready: ready ?? name,
      stats: () => ({ connections: ctr.connections, active: ctr.active, failures: ctr.errors, bytesUp: ctr.up, bytesDown: ctr.down, limited: { connections: ctr.limited, idleTimeout: ctr.idleTimeouts } }),
      final: () => ({ forward: name, ...ctr }),
      close,
    };
  }

  /** One accepted TCP connection of a forward: dial the other side and splice. */
  private carry(rule: Extract<ListenerRule, { kind: 'tcp-client' | 'tcp-server' }>, key: string, ctr: TcpForwardCounters, sock: Duplex): void {
    const { log, limits } = this.d;
    sock.on('error', () => {});
    sock.pause();
    const started = Date.now();
    const client = (sock as { remoteAddress?: string }).remoteAddress;
    const from = client ? `${client}:${(sock as { remotePort?: number }).remotePort}` : undefined;
    dial(rule.kind === 'tcp-client' ? this.viaTunnel : this.local, rule.target.host, rule.target.port).then(
      (up) => {
        ctr.connections++;
        ctr.active++;
        let bytesUp = 0;
        let bytesDown = 0;
        splice(sock, up, (dir, n) => (dir === 'up' ? ((ctr.up += n), (bytesUp += n)) : ((ctr.down += n), (bytesDown += n))), {
          ms: limits.idleTimeoutMs,
          onIdle: () => {
            ctr.idleTimeouts++;
            this.idleReporter(key)('idleTimeout', { timeoutMs: limits.idleTimeoutMs, client: from });
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
  }

  private readonly idleReporters = new Map<string, ReturnType<typeof limitReporter>>();
  private idleReporter(key: string): ReturnType<typeof limitReporter> {
    let r = this.idleReporters.get(key);
    if (!r) this.idleReporters.set(key, (r = limitReporter(`forward ${key}`, this.d.log)));
    return r;
  }

  private async startUdpForward(rule: Extract<ListenerRule, { kind: 'udp-client' | 'udp-server' }>, label?: string, ready?: string): Promise<Running> {
    const { t, log, limits } = this.d;
    let key = label ?? describeRule(rule);
    const counters: UdpForwardCounters = { flows: 0, up: 0, down: 0, expired: 0, limited: 0, limitedPerPeer: 0 };
    const family: 4 | 6 = parseIp(rule.target.host)?.length === 16 ? 6 : 4; // names: IPv4
    const what = rule.origin ? ruleWhere(rule) : rule.kind === 'udp-client' ? `-L ${rule.bind.port} (udp)` : `-R ${rule.port} (udp)`;
    let listener: DatagramSocket;
    if (rule.kind === 'udp-client') {
      const bindHost = rule.bind.host;
      const d = dgram.createSocket(bindHost.includes(':') || bindHost === '' ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        d.once('error', (e: Error) => reject(new WgnetError('ERR_WGNET_IN_USE', `${what}: ${e.message}`)));
        d.bind(rule.bind.port, bindHost || undefined, () => resolve());
      });
      if (!label) key = this.bound(rule, d.address().port);
      listener = d;
    } else {
      const u = t.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        u.once('error', (e: Error) => reject(new WgnetError('ERR_WGNET_IN_USE', `${what}: ${e.message}`)));
        u.bind(rule.port, () => resolve());
      });
      listener = u;
    }
    const onLimit = limitReporter(`forward ${key}`, log);
    const fwd = forwardUdp({
      listener,
      outbound: rule.kind === 'udp-client' ? () => this.viaTunnel.udp!(family) : () => dgram.createSocket(family === 6 ? 'udp6' : 'udp4'),
      host: rule.target.host,
      port: rule.target.port,
      idleMs: rule.idleMs ?? this.d.udpIdleMs,
      counters,
      maxFlows: limits.maxUdpFlows,
      // -R: the clients are peers, and one may hold only its share (whitepaper §2: a peer
      // is its AllowedIPs). -L's clients are local programs, all one address: no share.
      ...(rule.kind === 'udp-server' ? { peerOf: (a: string) => t.peerFor(a), maxFlowsPerPeer: this.d.udpFlowsPerPeer } : {}),
      onLimit: (fields) => onLimit('maxPerPeer' in fields ? 'udpFlowsPerPeer' : 'udpFlows', fields),
      onError: (e) => log('debug', 'forward udp error', { forward: key, error: e.message }),
    });
    return {
      rule,
      label: key,
      kind: 'forward-udp',
      ready: ready ?? key,
      stats: () => ({ udpFlows: counters.flows, datagramsUp: counters.up, datagramsDown: counters.down, limited: { udpFlows: counters.limited, udpFlowsPerPeer: counters.limitedPerPeer ?? 0 } }),
      final: () => ({ forward: key, ...counters }),
      close: () => fwd.close(),
    };
  }
}
