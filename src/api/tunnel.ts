/**
 * `Tunnel`: an in-process WireGuard interface with its own TCP/IP stack.
 * The operating system only ever sees encrypted UDP; programs get sockets,
 * listeners, UDP, ping, DNS and fetch over the tunnel (DESIGN §8).
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type dgram from 'node:dgram';
import type net from 'node:net';
import type dns from 'node:dns';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { fetchPath, httpClientFor, closeHttpClient, dispatcherUnsupported } from './http-fetch.js';
import { TunnelHttp, type TunnelDispatcherOptions } from './http.js';
import { Device, type DeviceEvent, type Peer } from '../wireguard/device.js';
import { Interface, type NetEvent, type UdpSocket as NetUdpSocket } from '../netstack/interface.js';
import { DnsClient } from '../netstack/dns.js';
import type { TcpListener } from '../netstack/types.js';
import { getCryptoProvider } from '../crypto/index.js';
import { loadConfig, type TunnelConfigInput } from '../config/index.js';
import type { TunnelConfig } from '../config/model.js';
import { Engine } from '../io/engine.js';
import { UdpBind } from '../io/udp-bind.js';
import { UapiServer } from '../io/uapi-server.js';
import { backends, type Backends } from '../io/backends.js';
import type { UapiHost } from '../wireguard/uapi.js';
import { resolveEndpoint } from '../io/endpoint.js';
import { monotonicNow, systemRng, wallClock } from '../io/clock.js';
import { formatIp, formatHostPort, parseIp, mustParseIp } from '../util/ip.js';
import { toBase64 } from '../util/bytes.js';
import { WgnetError, invalidArgument } from '../util/errors.js';
import { noTrace, type Trace } from '../util/trace.js';
import { CoreDiagnostics } from './diagnostics.js';
import type { TcpSocket } from './tcp-socket.js';
import { openConnection, type ConnectOptions, type Dialer } from './connect.js';
import { TunnelResolver, type LookupCallback, type LookupResult } from './resolver.js';
import { TunnelPing, type PingResult } from './ping.js';
import { HostEndpoints } from './endpoints.js';
import { TunnelIpc } from './ipc.js';
import { peerStatus, startHandshakes, type PeerStatus } from './peers.js';
import { tunnelStats, type GatewayStats, type TunnelStats } from './stats.js';
import { hideSecrets, syncConfig, type SyncResult } from './sync.js';
import { TcpServer, type TcpServerOptions } from './tcp-server.js';
import { TunnelUdpSocket } from './udp-socket.js';
import { Gateway, type FlowHandler, type GatewayOptions } from './gateway.js';
import type { Writable } from 'node:stream';
import type { MetricFamily } from '../io/metrics.js';
import type { HealthOptions, HealthReport } from '../io/health.js';
import type { CaptureOptions, CaptureStats } from '../io/pcap.js';
import { TunnelOps } from './ops.js';
import { watchMemory } from '../io/memory.js';
import { netstackOptions, type TunnelOptions } from './options.js';
import { abortError, TunnelPause, waitReady } from './lifecycle.js';
import type { TunnelEvents } from './types/events.js';

export type { TunnelOptions, TunnelLimits } from './options.js';
export type { ConnectOptions } from './connect.js';
export type { PingResult } from './ping.js';
export type { LookupResult } from './resolver.js';
export type { TunnelDispatcherOptions, TunnelConnectOptions } from './http.js';
export type { PeerStatus } from './peers.js';
export type { TunnelStats, GatewayStats, TcpSnapshot } from './stats.js';
export type { SyncResult, RestartField } from './sync.js';

export class Tunnel extends EventEmitter<TunnelEvents> {
  /** @internal */ readonly engine: Engine;
  /** The running config (keys hidden from inspect and JSON); syncConfig() replaces it. */
  get config(): TunnelConfig {
    return this.cfg;
  }
  private cfg: TunnelConfig;
  private readonly conns = new Map<number, TcpSocket>();
  private readonly servers = new Map<number, TcpServer>();
  private readonly udps = new Map<NetUdpSocket, TunnelUdpSocket>();
  private readonly resolver: TunnelResolver;
  private readonly pinger: TunnelPing;
  /** What connect() uses of this tunnel (./connect.ts). */
  private readonly dialer: Dialer;
  private closed = false;
  /** Set between pause() and resume(): the outer port to reopen and the persistent keepalives to restore. */
  private readonly pauser = new TunnelPause(this, () => this.closed, () => this.endpoints.resolveAll());
  private readonly http = new TunnelHttp((o) => this.connect(o));
  /** Peers configured by host name, looked up again after failed handshakes and on resume(). */
  private endpoints: HostEndpoints;
  private readonly ipc: TunnelIpc;
  private uapiServer: UapiServer | undefined;
  private gateway: Gateway | undefined;

  private constructor(engine: Engine, config: TunnelConfig, dns: DnsClient | undefined, private readonly trace: Trace = noTrace) {
    super();
    this.engine = engine;
    this.cfg = hideSecrets(config);
    this.resolver = new TunnelResolver(engine, dns, () => this.assertOpen());
    this.lookupFunction = this.resolver.lookupFunction;
    this.pinger = new TunnelPing(engine);
    this.endpoints = this.hostEndpoints();
    this.ipc = new TunnelIpc(engine, () => this.listenPort, (peers) => this.kick(peers));
    this.dialer = {
      engine,
      assertOpen: () => this.assertOpen(),
      routes: (address) => this.routes(address),
      lookup: (host, opts) => this.lookup(host, opts),
      register: (id, sock) => this.track(id, sock),
    };
    engine.handlers = {
      onNetEvent: (ev) => this.onNetEvent(ev),
      onDeviceEvent: (ev) => this.onDeviceEvent(ev),
    };
  }

  /**
   * Brings a tunnel up from a config object, wg-quick text, sing-box JSON (object or
   * text) or `{ file }`. Resolves once the UDP socket is bound; handshakes start on
   * the first packet (or at once for peers with a persistent keepalive).
   */
  static async create(input: TunnelConfigInput, opts: TunnelOptions = {}): Promise<Tunnel> {
    const cfg = await loadConfig(input, opts.tag === undefined ? {} : { tag: opts.tag });
    const trace = opts.trace ?? noTrace;
    const core = new CoreDiagnostics(trace); // the cores' drops also reach wgnet:drop (diagnostics.ts)
    const crypto = getCryptoProvider(opts.crypto ?? 'auto');
    const device = new Device({ privateKey: cfg.privateKey, crypto, rng: systemRng, wallClock, trace: core });
    for (const p of cfg.peers) {
      const endpoint = p.endpoint ? await resolveEndpoint(p.endpoint.host, p.endpoint.port) : undefined;
      device.addPeer({
        publicKey: p.publicKey,
        presharedKey: p.presharedKey,
        endpoint,
        allowedIps: p.allowedIps,
        persistentKeepalive: p.persistentKeepalive,
        reserved: p.reserved,
      });
    }
    if (cfg.addresses.length === 0) throw new WgnetError('ERR_WGNET_CONFIG', 'the tunnel needs at least one Address');
    const iface = new Interface({
      addresses: cfg.addresses.map((a) => `${formatIp(a.addr)}/${a.bits}`),
      mtu: cfg.mtu ?? 1420,
      rng: systemRng,
      trace: core,
      ...netstackOptions(opts),
      // Per-peer limits in the netstack count a peer's whole AllowedIPs as one (whitepaper §2).
      peerOf: (a) => device.allowedIps.lookup(a.length === 4 ? 4 : 6, a),
    });
    const engine = new Engine(device, iface, undefined, trace);
    const dns =
      cfg.dns.servers.length > 0 ? new DnsClient(iface, { servers: cfg.dns.servers, search: cfg.dns.search, rng: systemRng }) : undefined;
    const tunnel = new Tunnel(engine, cfg, dns, trace);
    core.bind(tunnel, engine);
    // Every tunnel, not only TCP sockets, can free memory in bursts (UDP flows, gateway relays): io/memory.ts.
    watchMemory();
    if (dns) {
      // The DNS client sees network events before the API and its results are delivered after each step.
      engine.addComponent(
        {
          handleTimeout: (now) => {
            dns.handleTimeout(now);
            tunnel.onDnsEvent();
          },
          pollTimeout: () => dns.pollTimeout(),
        },
        (now, ev) => {
          const taken = dns.handleEvent(now, ev);
          if (taken) tunnel.onDnsEvent();
          return taken;
        },
      );
    }
    engine.bind = await UdpBind.open({
      port: opts.listenPort ?? cfg.listenPort ?? 0,
      onMessage: (data, address, port) => engine.receive(data, address, port),
      onBatchEnd: () => engine.pump(),
      // An 'error' with no listener would throw; a socket error is worth a warning, not a crash.
      onError: (err) => tunnel.emit(tunnel.listenerCount('error') > 0 ? 'error' : 'warning', err),
    });
    tunnel.ipc.fwmark = cfg.fwMark ?? 0;
    const now = monotonicNow();
    for (const peer of device.peers()) {
      if (peer.persistentKeepalive && peer.endpoint) device.initiateHandshake(now, peer);
    }
    engine.pump();
    if (opts.uapi) {
      try {
        tunnel.uapiServer = await UapiServer.listen(opts.uapi, tunnel.uapiHost(), (peers) => tunnel.kick(peers));
      } catch (err) {
        await tunnel.close();
        throw err;
      }
    }
    return tunnel;
  }

  /**
   * What `util.inspect(tunnel)`, `console.log(tunnel)` and `JSON.stringify(tunnel)` show:
   * public facts only. The default view would walk into the device and print the private
   * key's bytes (DESIGN §5: secrets never appear in logs or `inspect`).
   */
  toJSON(): { publicKey: string; addresses: string[]; listenPort: number; closed: boolean; peers: { publicKey: string; endpoint: string | undefined; allowedIps: string[] }[] } {
    return {
      publicKey: this.publicKey,
      addresses: this.addresses,
      listenPort: this.listenPort,
      closed: this.closed,
      peers: this.peers().map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint && formatHostPort(p.endpoint.address, p.endpoint.port), allowedIps: p.allowedIps })),
    };
  }

  [Symbol.for('nodejs.util.inspect.custom')](_depth: number, options: { stylize?: unknown }, inspect: (v: unknown, o: unknown) => string): string {
    return `Tunnel ${inspect(this.toJSON(), options)}`;
  }

  /** The backends this process runs on (crypto, outer UDP, TUN) and why, as `wgnet --version` prints them. */
  static backends(): Backends { return backends(); }

  /** The UDP port WireGuard listens on. */
  get listenPort(): number {
    return this.engine.bind?.port ?? 0;
  }

  get publicKey(): string {
    const k = this.engine.device.publicKey;
    return k ? toBase64(k) : '';
  }

  /** The tunnel's own addresses, e.g. ['10.0.0.2'] */
  get addresses(): string[] {
    return this.engine.iface.addresses.map((a) => formatIp(a.addr));
  }

  /** @internal The WireGuard device (tests); not API. */
  get device(): Device {
    return this.engine.device;
  }

  /** Each peer as `wg show` lists it: public facts only (public key, endpoint, AllowedIPs, last handshake, bytes, keepalive). */
  peers(): PeerStatus[] {
    return peerStatus(this.engine.device);
  }

  /**
   * Starts a handshake with every peer that has an endpoint now, instead of at the first packet
   * (the CLI does, so that readiness means the tunnel works; ready() also waits for one).
   * Does nothing while paused: resume() starts them.
   */
  startHandshakes(): void {
    this.assertOpen();
    if (!this.paused) startHandshakes(this.engine);
  }

  /** The outer UDP socket in use: 'batched' (the wgnet_udp addon) or 'dgram' (node:dgram); undefined while paused or closed. */
  get udpBackend(): 'batched' | 'dgram' | undefined {
    const b = this.closed ? undefined : this.engine.bind;
    return b && (b.backend === 'native' ? 'batched' : 'dgram');
  }

  // --- TCP ---------------------------------------------------------------

  /**
   * connect(port[, host][, cb]) or connect(options[, cb]), as net.connect: a net.Socket-compatible
   * Duplex (assignable to `net.Socket`). The port may be a numeric string; host defaults to localhost.
   */
  connect(port: number | string, host?: string, connectionListener?: () => void): TcpSocket;
  connect(port: number | string, connectionListener?: () => void): TcpSocket;
  connect(options: ConnectOptions, connectionListener?: () => void): TcpSocket;
  /** net.connect's own options type, so `tunnel.createConnection.bind(tunnel)` is a `typeof net.createConnection` (ws's option); a `path` (Unix socket) is refused. */
  connect(options: net.NetConnectOpts, connectionListener?: () => void): TcpSocket;
  connect(portOrOpts: number | string | ConnectOptions | net.NetConnectOpts, hostOrCb?: string | (() => void), cb?: () => void): TcpSocket {
    return openConnection(this.dialer, portOrOpts, hostOrCb, cb);
  }

  /** Delivers a connection's events to its socket until the socket closes. */
  private track(id: number, sock: TcpSocket): void {
    this.conns.set(id, sock);
    sock.once('close', () => this.conns.delete(id));
  }

  /** The same as connect(), under net.createConnection's name (ws's `createConnection` option takes it as is). */
  createConnection(port: number | string, host?: string, connectionListener?: () => void): TcpSocket;
  createConnection(port: number | string, connectionListener?: () => void): TcpSocket;
  createConnection(options: ConnectOptions, connectionListener?: () => void): TcpSocket;
  createConnection(options: net.NetConnectOpts, connectionListener?: () => void): TcpSocket;
  createConnection(a: number | string | ConnectOptions | net.NetConnectOpts, b?: string | (() => void), c?: () => void): TcpSocket {
    return this.connect(a as number, b as string, c);
  }

  createServer(optsOrListener?: TcpServerOptions | ((s: TcpSocket) => void), listener?: (s: TcpSocket) => void): TcpServer {
    this.assertOpen();
    const opts = typeof optsOrListener === 'object' ? optsOrListener : {};
    const l = typeof optsOrListener === 'function' ? optsOrListener : listener;
    return new TcpServer(
      {
        engine: this.engine,
        registerListener: (tl: TcpListener, s: TcpServer) => this.servers.set(tl.id, s),
        unregisterListener: (tl: TcpListener) => this.servers.delete(tl.id),
        registerConnection: (sock: TcpSocket) => this.track(sock.conn!.id, sock),
      },
      opts,
      l,
    );
  }

  // --- UDP ---------------------------------------------------------------

  createSocket(type: 'udp4' | 'udp6' | { type: 'udp4' | 'udp6' }, onMessage?: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): TunnelUdpSocket {
    this.assertOpen();
    const t = typeof type === 'string' ? type : type.type;
    if (t !== 'udp4' && t !== 'udp6') throw invalidArgument(`createSocket: type must be 'udp4' or 'udp6', got ${String(t)}`);
    const s = new TunnelUdpSocket(
      {
        engine: this.engine,
        registerUdp: (ns, owner) => this.udps.set(ns, owner),
        unregisterUdp: (ns) => this.udps.delete(ns),
        resolve: (host, family) => this.lookup(host, { family }).then((r) => r.address),
      },
      t,
    );
    if (onMessage) s.on('message', onMessage);
    return s;
  }

  // --- ICMP --------------------------------------------------------------

  /**
   * One ICMP echo through the tunnel. Rejects with ETIMEDOUT after `timeout` ms (default 3000),
   * with an AbortError when `signal` aborts, with ERR_WGNET_CLOSED when the tunnel closes first.
   */
  ping(host: string, opts: { timeout?: number; size?: number; signal?: AbortSignal } = {}): Promise<PingResult> {
    const signal = opts.signal;
    try {
      this.assertOpen();
      if (signal?.aborted) throw abortError(signal);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    // An address goes straight to the pinger: no async wrapper, whose extra promise turns
    // were a measurable part of a loopback round trip (issue 14).
    const addr = parseIp(host);
    if (addr) return this.pinger.send(addr, opts);
    return this.lookup(host, { signal }).then((r) => {
      this.assertOpen();
      if (signal?.aborted) throw abortError(signal);
      return this.pinger.send(mustParseIp(r.address), opts);
    });
  }

  // --- DNS ---------------------------------------------------------------

  /** Resolves a name through the tunnel's DNS servers (never the system resolver); `signal` aborts the wait with an AbortError. */
  async lookup(host: string, opts: { family?: 0 | 4 | 6; all?: false; signal?: AbortSignal } = {}): Promise<LookupResult> {
    return this.resolver.lookup(host, opts);
  }

  async lookupAll(host: string, family: 0 | 4 | 6 = 0, opts: { signal?: AbortSignal } = {}): Promise<LookupResult[]> {
    return this.resolver.lookupAll(host, family, opts);
  }

  /** A `net.LookupFunction` for `http.request({ lookup })`, `net.connect` and undici (also callable as dns.lookup: options may be a family or omitted). */
  readonly lookupFunction: (hostname: string, options: dns.LookupOptions | number | LookupCallback, callback?: LookupCallback) => void;

  // --- HTTP ----------------------------------------------------------------

  /**
   * An undici dispatcher whose connections go through the tunnel. Throws
   * ERR_WGNET_UNSUPPORTED where undici ignores a dispatcher's connect (Bun's built-in
   * undici): requests made with it would leave through the host network.
   */
  get dispatcher(): Dispatcher {
    return this.http.dispatcher();
  }

  /**
   * A new undici dispatcher through the tunnel, for `fetch(url, { dispatcher })`, undici's
   * `request` or `tunnel.fetch`: `connect` takes tls.connect's options for https origins (`ca`,
   * `cert`, `key`, `rejectUnauthorized`, `servername`; never an IP address, RFC 6066 §3) and
   * `timeout` (ms for lookup, handshakes and TLS; default 10000); `allowH2` offers HTTP/2 by
   * ALPN. The rest are undici Agent options. Closed with the tunnel if not before. Throws
   * ERR_WGNET_UNSUPPORTED where undici ignores a dispatcher (Bun), as `dispatcher` does.
   */
  createDispatcher(opts: TunnelDispatcherOptions = {}): Dispatcher {
    this.assertOpen();
    return this.http.createDispatcher(opts);
  }

  /**
   * fetch() over the tunnel: undici's with `init.dispatcher` (one from createDispatcher(), or
   * composed from one) or else this tunnel's, or, where the runtime's undici ignores
   * dispatchers (Bun), node:http requests on tunnel connections (./http-fetch.ts), which
   * refuse an `init.dispatcher` they cannot honour. Never through the host network.
   */
  fetch(input: Parameters<typeof undiciFetch>[0], init: Parameters<typeof undiciFetch>[1] = {}): ReturnType<typeof undiciFetch> {
    if (fetchPath() === 'node-http') {
      try {
        this.assertOpen();
        if (init?.dispatcher) throw dispatcherUnsupported();
      } catch (err) {
        return Promise.reject(err);
      }
      return httpClientFor(this, (o) => this.connect(o)).fetch(input, init);
    }
    return undiciFetch(input, { ...init, dispatcher: init?.dispatcher ?? this.dispatcher });
  }

  /** An http.Agent for `http.request(url, { agent })`. */
  get httpAgent(): http.Agent {
    return this.http.httpAgent();
  }

  /** An https.Agent: TLS over a tunnel connection. */
  get httpsAgent(): https.Agent {
    return this.http.httpsAgent();
  }

  /**
   * The public key (base64) of the peer whose AllowedIPs cover `address`: where the tunnel
   * sends packets for it, and whom packets from it must come from (cryptokey routing,
   * whitepaper §2). Undefined when no peer's do.
   */
  peerFor(address: string): string | undefined {
    const a = parseIp(address);
    if (!a) throw invalidArgument(`peerFor: '${address.slice(0, 60)}' is not an IP address`);
    const p = this.engine.device.allowedIps.lookup(a.length === 4 ? 4 : 6, a);
    return p && toBase64(p.publicKey);
  }

  /** Whether packets to `address` have somewhere to go: a peer's AllowedIPs cover it, or it is this tunnel's own. */
  routes(address: string): boolean {
    const a = parseIp(address);
    if (!a) throw invalidArgument(`routes: '${address.slice(0, 60)}' is not an IP address`);
    return this.engine.iface.isLocal(a) || this.engine.device.allowedIps.lookup(a.length === 4 ? 4 : 6, a) !== undefined;
  }

  // --- gateway ---------------------------------------------------------------

  /**
   * Gateway mode (DESIGN §8): from now on, TCP connections, UDP flows and ICMP echoes that
   * peers send to any destination (not only this tunnel's addresses) are terminated here and
   * handed to `handler`, which answers 'relay' (through the host's network, after the policy
   * in `options`), 'reject', or `{ accept(socket) }` to serve the flow in-process; a Promise
   * of one holds the flow (a TCP SYN stays unanswered) for at most `decisionTimeout`.
   * `'relay'` as the handler relays everything the policy allows. Services on the tunnel's
   * own addresses (createServer, createSocket) keep working and take precedence.
   */
  onFlow(handler: FlowHandler | 'relay', options: GatewayOptions = {}): void {
    this.assertOpen();
    if (this.gateway) throw new WgnetError('ERR_WGNET_IN_USE', 'onFlow: a flow handler is already set');
    if (handler !== 'relay' && typeof handler !== 'function') throw invalidArgument(`onFlow: handler must be a function or 'relay', got ${typeof handler}`);
    this.gateway = new Gateway(
      {
        engine: this.engine,
        iface: this.engine.iface,
        device: this.engine.device,
        trace: this.trace,
        registerSocket: (sock) => this.track(sock.conn!.id, sock),
      },
      handler === 'relay' ? undefined : handler,
      options,
    );
    this.engine.iface.forwarding = true;
    if (options.peerToPeer) this.engine.route = (now, p) => this.gateway!.forward(now, p);
  }

  /** Gateway counters (typed names: GatewayCounter) and open flows; undefined without onFlow(). */
  gatewayStats(): GatewayStats | undefined {
    const g = this.gateway;
    if (!g) return undefined;
    return { flows: g.flowCount, heldSyns: this.engine.iface.flows.heldSyns, udpFlows: this.engine.iface.flows.udpFlows, counters: { ...g.stats } };
  }

  // --- operations: stats, config sync, metrics, health, capture ------------------------------

  /**
   * Every counter of the tunnel as one JSON-safe snapshot (./stats.ts): the device's packets,
   * bytes, handshakes and drops by reason; each peer as peers() lists it; netstack and TCP
   * counters with connections by state; the gateway's after onFlow(). No key material.
   * Readable after close() too (the last counts).
   */
  stats(): TunnelStats {
    return tunnelStats(this.engine, this.gatewayStats());
  }

  /**
   * `wg syncconf` (./sync.ts): applies a new config (any input create() takes) to the running
   * tunnel. Peers not in it are removed, new ones added, changed ones updated in place;
   * unchanged peers keep their sessions and connections. Private key, ListenPort and FwMark
   * apply live; `restartNeeded` lists Address, DNS and MTU changes, which wait for a new
   * tunnel. Throws (a ConfigError naming file:line, ERR_WGNET_INVALID_KEY, a resolve error)
   * before anything changes.
   */
  async syncConfig(input: TunnelConfigInput, opts: { tag?: string } = {}): Promise<SyncResult> {
    const { result, config } = await syncConfig(
      { device: this.engine.device, listenPort: () => this.listenPort, running: () => this.cfg, ipcSet: (text) => this.ipc.set(text), assertOpen: () => this.assertOpen() },
      input,
      opts,
    );
    this.cfg = config;
    this.endpoints = this.hostEndpoints(); // peers added by host name are looked up again too
    return result;
  }

  private hostEndpoints(): HostEndpoints {
    return new HostEndpoints(this.cfg, this.engine.device, () => this.closed, (err) => this.emit('warning', err));
  }

  /** Metrics, health and capture (./ops.ts). */
  private readonly ops = new TunnelOps(this);

  /**
   * The tunnel's metrics in the Prometheus text format (version 0.0.4): per-peer bytes,
   * handshakes and failures, device drops by reason, netstack and TCP counters, TCP
   * connections by state, gateway counters, process CPU, memory and event-loop delay.
   * `extra` families (your own) are appended.
   */
  metrics(opts: { extra?: MetricFamily[] } = {}): string {
    return this.ops.metrics(opts);
  }

  /**
   * Readiness: every configured peer (or those in `peers`, base64 keys) has a handshake
   * younger than 180 s, and the healthCheck() probe, if one runs, succeeded within its
   * interval. `reason` says what is wrong when `ready` is false.
   */
  health(opts: HealthOptions = {}): HealthReport {
    return this.ops.health(opts);
  }

  /**
   * Starts an active probe through the tunnel, once per `interval` ms (default 10 s):
   * an ICMP echo to `IP`, or a TCP connect to `IP:PORT`. health() then also requires it to
   * have succeeded within the interval (plus `timeout`, default min(5 s, interval)).
   * A second call replaces the first; the probe stops with the tunnel.
   */
  healthCheck(target: string, opts: { interval?: number; timeout?: number; onChange?: (ok: boolean, error: string | null) => void } = {}): { stop(): void } {
    this.assertOpen();
    return this.ops.healthCheck(target, opts);
  }

  /**
   * Writes the inner IP packets of both directions to `target` (a file path or a writable
   * stream) in pcap format, LINKTYPE_RAW, for tcpdump -r and Wireshark. A file is rotated to
   * FILE.1 at `maxBytes`; a stream stops at `maxBytes`. One capture at a time; it stops with
   * the tunnel. Costs nothing while no capture runs.
   */
  capture(target: string | Writable, opts: CaptureOptions = {}): { readonly stats: CaptureStats; close(): Promise<void> } {
    this.assertOpen();
    return this.ops.capture(target, opts);
  }

  // --- UAPI ----------------------------------------------------------------

  /** @internal What the UAPI protocol reads and changes. */
  uapiHost(): UapiHost {
    return this.ipc.host();
  }

  private kick(peers: Peer[]): void {
    // A peer removed over UAPI loses its gateway flows at once.
    this.gateway?.dropPeersNotIn(this.engine.device);
    const now = this.engine.now();
    for (const p of peers) this.engine.device.initiateHandshake(now, p);
    this.engine.pump();
  }

  /** The UAPI `get=1` answer (key=value lines), as wireguard-go's IpcGet. */
  ipcGet(): string {
    this.assertOpen();
    return this.ipc.get();
  }

  /** Applies UAPI `set=1` lines live; rejects with the errno wireguard-go would answer. */
  async ipcSet(text: string): Promise<void> {
    this.assertOpen();
    return this.ipc.set(text);
  }

  // --- lifecycle -----------------------------------------------------------

  /**
   * Resolves once this tunnel has a session with a peer: at once if a handshake is current, else
   * after the next one (started here with every peer that has an endpoint; a peer without one
   * must connect to us). `peer` (a public key, base64) waits for that peer only. Rejects with
   * ERR_WGNET_NO_HANDSHAKE after `timeout` ms (default 10000), or when every awaited peer's
   * handshake gave up (90 s), naming each peer, its endpoint and what was tried; with
   * ERR_WGNET_CLOSED if the tunnel closes, with an AbortError when `signal` aborts.
   */
  async ready(opts: { timeout?: number; peer?: string; signal?: AbortSignal } = {}): Promise<void> {
    this.assertOpen();
    return waitReady(this, opts);
  }

  /**
   * For device sleep and network changes, as sing-box's pause manager calls Down(): stops the engine's
   * timer (keepalives, retransmissions, handshake retries, rekeys), closes the outer UDP socket and
   * turns persistent keepalives off, so the tunnel sends nothing, receives nothing and wakes nobody.
   * Sockets, listeners and keys stay; what is written meanwhile waits and goes out after resume()
   * (lookups and connects wait too; their signal and connectTimeout still apply). Idempotent; emits 'pause'.
   */
  async pause(): Promise<void> {
    this.assertOpen();
    return this.pauser.pause();
  }

  /**
   * After pause(), for wake-up and a new network (sing-box's Up()): reopens the outer UDP socket on
   * the same port, resolves hostname endpoints again (the address may differ on the new network),
   * restores persistent keepalives and starts a handshake with every peer that has an endpoint at
   * once, so a session exists before the first packet. A keypair older than RejectAfterTime (a long
   * sleep) is never used: the device refuses it and waits for the new handshake. Emits 'resume'.
   */
  async resume(): Promise<void> {
    this.assertOpen();
    return this.pauser.resume();
  }

  /** Whether pause() is in effect. */
  get paused(): boolean {
    return this.pauser.paused;
  }

  /** `await using tunnel = await Tunnel.create(...)`: close() at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Ends every socket (RST), stops the timer and closes the UDP socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.gateway?.close();
    for (const s of this.servers.values()) s.close();
    for (const s of [...this.conns.values()]) s.resetAndDestroy();
    for (const u of [...this.udps.values()]) u.close();
    this.engine.pump(); // let the RSTs out
    this.http.close();
    closeHttpClient(this);
    this.engine.close();
    await this.uapiServer?.close();
    await this.engine.bind?.close();
    this.resolver.cancelAll();
    this.pinger.cancelAll(() => new WgnetError('ERR_WGNET_CLOSED', 'ping: the tunnel was closed before a reply came'));
    this.emit('close');
  }

  private assertOpen(): void {
    if (this.closed) throw new WgnetError('ERR_WGNET_CLOSED', 'the tunnel is closed');
  }

  // --- event dispatch --------------------------------------------------------

  /** @internal Delivers finished lookups to their waiters. */
  onDnsEvent(): boolean {
    this.resolver.deliver();
    return false;
  }

  private onNetEvent(ev: NetEvent): void {
    if (this.gateway?.handleEvent(ev)) return;
    switch (ev.type) {
      case 'tcp-connected':
        this.conns.get(ev.conn.id)?.onConnected();
        break;
      case 'tcp-readable':
        this.conns.get(ev.conn.id)?.onReadable();
        break;
      case 'tcp-writable':
        this.conns.get(ev.conn.id)?.onWritable();
        break;
      case 'tcp-closed':
        this.conns.get(ev.conn.id)?.onClosed(ev.error);
        this.conns.delete(ev.conn.id);
        break;
      case 'tcp-accept':
        this.servers.get(ev.listener.id)?.onAccept();
        break;
      case 'udp-readable':
        this.udps.get(ev.socket)?.onReadable();
        break;
      case 'udp-error':
        this.udps.get(ev.socket)?.onError(ev.error);
        break;
      case 'echo-reply':
        this.pinger.onReply(ev.id, ev.seq, ev.from, ev.ttl, ev.data.length);
        break;
      default:
        break;
    }
    this.onDnsEvent();
  }

  private onDeviceEvent(ev: DeviceEvent): void {
    switch (ev.type) {
      case 'handshake':
        this.emit('handshake', { publicKey: toBase64(ev.peer.publicKey) });
        break;
      case 'handshake-failed':
        this.emit('handshake-failed', { publicKey: toBase64(ev.peer.publicKey) });
        void this.endpoints.reresolve(ev.peer);
        break;
      case 'endpoint-changed':
        this.emit('endpoint-changed', { publicKey: toBase64(ev.peer.publicKey), endpoint: ev.peer.endpoint });
        break;
    }
  }
}
