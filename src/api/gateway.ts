/**
 * Gateway mode (DESIGN §8): traffic that peers send to any destination is terminated by the
 * netstack (flows, sans-IO) and handed here, where each flow is judged (the user's handler,
 * the policy, the limits) and then relayed through the host (io/relay), accepted in-process,
 * or refused: a RST for TCP, ICMP destination unreachable for UDP and echo requests.
 */
import { networkInterfaces } from 'node:os';
import type net from 'node:net';
import type { EchoRequest, NetEvent, UdpFlow, UnreachableKind } from '../netstack/interface.js';
import { FLOW_TABLE_DEFAULTS } from '../netstack/flows.js';
import type { FlowEnds, TcpConnection, TcpFlow } from '../netstack/types.js';
import type { Device } from '../wireguard/device.js';
import { connectHost, openUdp, reset, splice, TcpRelay, type ConnectFailure, type HostTarget, type HostUdp } from '../io/relay.js';
import { pingHost } from '../io/ping.js';
import { GatewayPolicy } from '../config/gateway-policy.js';
import { formatIp, type IpAddr } from '../util/ip.js';
import { toBase64 } from '../util/bytes.js';
import { invalidArgument } from '../util/errors.js';
import type { Instant } from '../util/time.js';
import { TcpSocket } from './tcp-socket.js';
import { flowChannel, publishFlow, tcpCloseChannel, tcpOpenChannel, tunnelOf } from './diagnostics.js';
import { FlowUdpSocket, type AcceptedFlow, type FlowDecision, type FlowHandler, type FlowInfo, type FlowProtocol, type GatewayCounter, type GatewayHost, type GatewayOptions } from './gateway-types.js';

export * from './gateway-types.js';

interface Active {
  peer: string;
  close(): void;
}

const LOOP4 = new Uint8Array([127, 0, 0, 1]);
const LOOP6 = (() => {
  const a = new Uint8Array(16);
  a[15] = 1;
  return a;
})();

export class Gateway {
  readonly stats = {} as Record<GatewayCounter, number>;
  readonly policy: GatewayPolicy;
  private readonly opts: Required<Omit<GatewayOptions, 'allow' | 'deny' | 'hostAddresses' | 'peerToPeer'>>;
  private readonly active = new Set<Active>();
  private readonly perPeer = new Map<string, number>();
  private readonly udp = new Map<UdpFlow, { peer: string; relay?: HostUdp; local?: FlowUdpSocket; idleMs: number; active: Active }>();
  private pendingTcp = 0;
  private readonly pendingPerPeer = new Map<string, number>();
  private sweep: NodeJS.Timeout | undefined;
  private closed = false;
  private warnedPing = false;
  private pings = 0;
  private readonly pingsPerPeer = new Map<string, number>();
  /** Relayed TCP flows without a TcpSocket, by netstack connection id: their connection's events come here. */
  private readonly relays = new Map<number, TcpRelay>();
  /** Each peer's public key in base64, the name flows, limits and rules know it by (peerOf). */
  private readonly peerKeys = new WeakMap<object, string>();

  constructor(
    private readonly host: GatewayHost,
    private readonly handler: FlowHandler | undefined,
    options: GatewayOptions = {},
  ) {
    for (const [k, v] of Object.entries(options)) {
      if (!KNOWN.has(k)) throw invalidArgument(`gateway: unknown option '${k}'`);
      if (NUMERIC.has(k) && (typeof v !== 'number' || !(v > 0))) throw invalidArgument(`gateway: ${k} must be a positive number, got ${String(v)}`);
    }
    const exposeLocalhost = options.exposeLocalhost ?? false;
    this.policy = new GatewayPolicy({ allow: options.allow, deny: options.deny, allowLoopback: exposeLocalhost, hostAddresses: options.hostAddresses ?? hostAddresses() });
    this.opts = {
      exposeLocalhost,
      maxFlows: options.maxFlows ?? 65536,
      maxFlowsPerPeer: options.maxFlowsPerPeer ?? 8192,
      maxPendingTcp: options.maxPendingTcp ?? 4096,
      maxPendingTcpPerPeer: options.maxPendingTcpPerPeer ?? 128,
      maxUdpFlowsPerPeer: options.maxUdpFlowsPerPeer ?? FLOW_TABLE_DEFAULTS.maxUdpFlowsPerPeer,
      maxHeldSynsPerPeer: options.maxHeldSynsPerPeer ?? FLOW_TABLE_DEFAULTS.maxHeldSynsPerPeer,
      connectTimeout: options.connectTimeout ?? 10_000,
      decisionTimeout: options.decisionTimeout ?? 10_000,
      udpTimeout: options.udpTimeout ?? 60_000,
      dnsTimeout: options.dnsTimeout ?? 15_000,
    };
    // The flow table was made with the Interface, before any gateway: from now on it charges
    // each UDP flow and held SYN to the peer whose AllowedIPs hold its source (cryptokey
    // routing, whitepaper §2), so a peer owning a /24 cannot multiply its share by rotating
    // source addresses, and it takes the per-peer bounds chosen here.
    const device = host.device;
    host.iface.flows.configure({
      peerOf: (a) => device.allowedIps.lookup(a.length === 4 ? 4 : 6, a),
      maxUdpFlowsPerPeer: this.opts.maxUdpFlowsPerPeer,
      maxHeldSynsPerPeer: this.opts.maxHeldSynsPerPeer,
    });
  }

  /** Flows open now (relayed or accepted, all protocols). */
  get flowCount(): number {
    return this.active.size;
  }

  private count(c: GatewayCounter, n = 1): void {
    this.stats[c] = (this.stats[c] ?? 0) + n;
  }

  /** Whether a flow event goes anywhere: callers on the per-flow path build its extra fields only then. */
  private get listening(): boolean {
    return flowChannel.hasSubscribers || this.host.trace.enabled('debug');
  }

  /** Each flow event goes to the trace (debug) and to wgnet:flow (api/diagnostics.ts), when either listens. */
  private log(event: string, info: FlowInfo, extra?: Record<string, unknown>): void {
    if (flowChannel.hasSubscribers) publishFlow(tunnelOf(this.host.engine), event, info, extra);
    if (!this.host.trace.enabled('debug')) return;
    this.host.trace.log('debug', `gateway ${event}`, {
      protocol: info.protocol,
      source: `${info.source.address}:${info.source.port}`,
      destination: `${info.destination.address}:${info.destination.port}`,
      peer: info.peer.slice(0, 8),
      ...extra,
    });
  }

  private infoOf(protocol: FlowProtocol, f: FlowEnds): FlowInfo {
    return {
      protocol,
      source: { address: formatIp(f.srcAddr), port: f.srcPort },
      destination: { address: formatIp(f.dstAddr), port: f.dstPort },
      peer: this.peerOf(f.srcAddr),
    };
  }

  /**
   * The peer whose allowed IPs hold `src`: cryptokey routing guarantees it sent the packet
   * (whitepaper §2). Its key in base64 is made once per peer, not once per flow.
   */
  private peerOf(src: IpAddr): string {
    const p = this.host.device.allowedIps.lookup(src.length === 4 ? 4 : 6, src);
    if (!p) return '';
    let k = this.peerKeys.get(p);
    if (k === undefined) this.peerKeys.set(p, (k = toBase64(p.publicKey)));
    return k;
  }

  /** Where a relayed flow goes on the host: the destination, or loopback for our own address. */
  private target(dst: IpAddr): IpAddr | 'own' {
    if (!this.host.iface.isLocal(dst)) return dst;
    if (!this.opts.exposeLocalhost) return 'own';
    return dst.length === 4 ? LOOP4 : LOOP6;
  }

  /** Policy and limits before any host socket (the issue's order): undefined when the flow may go on. */
  private admit(info: FlowInfo, target: IpAddr | 'own', port: number): GatewayCounter | undefined {
    if (target === 'own') return 'refused.ownAddress';
    const why = this.policy.check(target, port, info.peer);
    if (why) return `refused.${why}`;
    return this.limit(info.peer);
  }

  private limit(peer: string): GatewayCounter | undefined {
    if (this.active.size >= this.opts.maxFlows) return 'limit.flows';
    if ((this.perPeer.get(peer) ?? 0) >= this.opts.maxFlowsPerPeer) return 'limit.flowsPerPeer';
    return undefined;
  }

  private track(peer: string, close: () => void): Active {
    const a: Active = { peer, close };
    this.active.add(a);
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1);
    return a;
  }

  private untrack(a: Active): void {
    if (!this.active.delete(a)) return;
    const n = (this.perPeer.get(a.peer) ?? 1) - 1;
    if (n <= 0) this.perPeer.delete(a.peer);
    else this.perPeer.set(a.peer, n);
  }

  /** Runs the handler (default: relay), bounded in time; a throw or a timeout is a refusal. */
  private decide(info: FlowInfo, then: (d: FlowDecision) => void): void {
    if (!this.handler) return then('relay');
    let r: FlowDecision | Promise<FlowDecision>;
    try {
      r = this.handler(info);
    } catch (err) {
      this.host.trace.log('warn', 'gateway: flow handler threw; flow refused', { error: String(err) });
      return then('reject');
    }
    if (!(r instanceof Promise)) return then(r);
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      this.count('refused.decisionTimeout');
      then('reject');
    }, this.opts.decisionTimeout);
    timer.unref();
    r.then(
      (d) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (!this.closed) then(d);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.host.trace.log('warn', 'gateway: flow handler rejected; flow refused', { error: String(err) });
        if (!this.closed) then('reject');
      },
    );
  }

  /** Gives an accepted flow to the user's code; a throw there must not take down the tunnel. */
  private hand(d: { accept: (flow: AcceptedFlow) => void }, flow: AcceptedFlow): void {
    try {
      d.accept(flow);
    } catch (err) {
      this.host.trace.log('warn', 'gateway: accept callback threw; flow closed', { error: String(err) });
      if (flow instanceof TcpSocket) flow.resetAndDestroy();
      else flow?.close();
    }
  }

  // --- events from the netstack -------------------------------------------------------

  /** Takes the gateway's events; false for the rest. */
  handleEvent(ev: NetEvent): boolean {
    switch (ev.type) {
      case 'udp-flow':
        this.onUdpFlow(ev.flow);
        return true;
      case 'udp-flow-readable':
        this.onUdpReadable(ev.flow);
        return true;
      case 'echo-request':
        this.onEcho(ev.request);
        return true;
      case 'tcp-flow':
        this.onTcpFlow(ev.flow);
        return true;
      case 'tcp-connected':
      case 'tcp-readable':
      case 'tcp-writable':
      case 'tcp-closed': {
        const r = this.relays.size > 0 ? this.relays.get(ev.conn.id) : undefined;
        if (!r) return false; // a TcpSocket's (the tunnel routes it)
        if (ev.type === 'tcp-readable') r.onReadable();
        else if (ev.type === 'tcp-writable') r.onWritable();
        else if (ev.type === 'tcp-connected') r.onConnected();
        else r.onClosed(ev.error);
        return true;
      }
      default:
        return false;
    }
  }

  // --- TCP --------------------------------------------------------------------------------

  private onTcpFlow(flow: TcpFlow): void {
    const info = this.infoOf('tcp', flow);
    this.count('tcp.flows');
    const peerPending = this.pendingPerPeer.get(info.peer) ?? 0;
    const lim = this.pendingTcp >= this.opts.maxPendingTcp ? 'limit.pendingTcp' : peerPending >= this.opts.maxPendingTcpPerPeer ? 'limit.pendingTcpPerPeer' : this.limit(info.peer);
    if (lim) {
      // A SYN over the limit is dropped, not answered: the client retries later, as with a full SYN queue.
      this.count(lim);
      this.log('limit', info, { limit: lim });
      this.host.iface.flows.refuseTcp(this.host.engine.now(), flow, 'drop');
      return;
    }
    this.pendingTcp++;
    this.pendingPerPeer.set(info.peer, peerPending + 1);
    let pendingDone = false;
    const unpend = (): void => {
      if (pendingDone) return;
      pendingDone = true;
      this.pendingTcp--;
      const n = (this.pendingPerPeer.get(info.peer) ?? 1) - 1;
      if (n <= 0) this.pendingPerPeer.delete(info.peer);
      else this.pendingPerPeer.set(info.peer, n);
    };
    const refuse = (c: GatewayCounter, how: 'rst' | UnreachableKind): void => {
      unpend();
      this.count(c);
      this.log('refused', info, { reason: c });
      this.host.iface.flows.refuseTcp(this.host.engine.now(), flow, how);
      this.host.engine.schedule();
    };
    this.decide(info, (d) => {
      if (flow.closed) return unpend(); // the peer gave up (RST) or the tunnel closed meanwhile
      if (d === 'reject') return refuse('refused.handler', 'rst');
      if (d !== 'relay') {
        if (!d || typeof d.accept !== 'function') return refuse('refused.handler', 'rst');
        const lim2 = this.limit(info.peer);
        if (lim2) return refuse(lim2, 'rst');
        unpend();
        const sock = this.acceptTcp(flow, info);
        this.count('accepted');
        this.log('accepted', info);
        sock.once('close', () => this.log('closed', info, { bytesUp: sock.bytesRead, bytesDown: sock.bytesWritten }));
        this.hand(d, sock);
        return;
      }
      const target = this.target(flow.dstAddr);
      const no = this.admit(info, target, flow.dstPort);
      if (no) return refuse(no, 'rst');
      const t: HostTarget = { address: formatIp(target as IpAddr), port: flow.dstPort };
      connectHost(t, this.opts.connectTimeout, (err, hostSock) => {
        if (this.closed || flow.closed) {
          unpend();
          hostSock.destroy();
          return;
        }
        if (err) {
          return refuse('relay.connectFailed', failureAnswer(err));
        }
        const lim3 = this.limit(info.peer);
        if (lim3) {
          hostSock.destroy();
          return refuse(lim3, 'rst');
        }
        unpend();
        // wgnet:tcp:open and wgnet:tcp:close messages carry the in-tunnel socket: with a
        // subscriber the flow gets one; without, the relay works on the connection itself.
        if (tcpOpenChannel.hasSubscribers || tcpCloseChannel.hasSubscribers) {
          const sock = this.acceptTcp(flow, info);
          this.count('relayed');
          if (this.listening) this.log('relayed', info, { to: `${t.address}:${t.port}` });
          this.relayTcp(sock, hostSock, info);
          return;
        }
        const conn = this.host.iface.flows.acceptTcp(this.host.engine.now(), flow);
        this.host.engine.schedule();
        this.count('relayed');
        if (this.listening) this.log('relayed', info, { to: `${t.address}:${t.port}` });
        this.relayDirect(conn, hostSock, info);
      });
    });
  }

  private acceptTcp(flow: TcpFlow, _info: FlowInfo): TcpSocket {
    const conn = this.host.iface.flows.acceptTcp(this.host.engine.now(), flow);
    const sock = new TcpSocket(this.host.engine, { allowHalfOpen: true });
    sock.attach(conn, false);
    sock.connecting = true;
    this.host.registerSocket(sock);
    this.host.engine.schedule();
    return sock;
  }

  private relayTcp(sock: TcpSocket, hostSock: net.Socket, info: FlowInfo): void {
    const a = this.track(info.peer, () => {
      reset(sock);
      reset(hostSock);
    });
    splice(sock, hostSock, () => {
      this.count('relay.bytesUp', hostSock.bytesWritten);
      this.count('relay.bytesDown', hostSock.bytesRead);
      this.untrack(a);
      if (this.listening) this.log('closed', info, { bytesUp: hostSock.bytesWritten, bytesDown: hostSock.bytesRead });
    });
  }

  /** A relayed flow without a TcpSocket (io/relay's TcpRelay): counted and closed as relayTcp's. */
  private relayDirect(conn: TcpConnection, hostSock: net.Socket, info: FlowInfo): void {
    const id = conn.id;
    const a = this.track(info.peer, () => r.reset());
    const r = new TcpRelay(conn, hostSock, this.host.engine, {
      detached: () => this.relays.delete(id),
      closed: () => {
        this.count('relay.bytesUp', hostSock.bytesWritten);
        this.count('relay.bytesDown', hostSock.bytesRead);
        this.untrack(a);
        if (this.listening) this.log('closed', info, { bytesUp: hostSock.bytesWritten, bytesDown: hostSock.bytesRead });
      },
    });
    this.relays.set(id, r);
  }

  // --- UDP --------------------------------------------------------------------------------

  private onUdpFlow(flow: UdpFlow): void {
    const info = this.infoOf('udp', flow);
    this.count('udp.flows');
    const lim = this.limit(info.peer);
    if (lim) {
      this.count(lim);
      this.log('limit', info, { limit: lim });
      flow.close();
      return;
    }
    const idleMs = flow.dstPort === 53 ? this.opts.dnsTimeout : this.opts.udpTimeout;
    const active = this.track(info.peer, () => this.closeUdp(flow));
    const state: { peer: string; relay?: HostUdp; local?: FlowUdpSocket; idleMs: number; active: Active } = { peer: info.peer, idleMs, active };
    this.udp.set(flow, state);
    this.armSweep();
    const refuse = (c: GatewayCounter, kind: UnreachableKind): void => {
      this.count(c);
      this.log('refused', info, { reason: c });
      flow.refuse(this.host.engine.now(), kind);
      this.closeUdp(flow);
      this.host.engine.schedule();
    };
    this.decide(info, (d) => {
      if (flow.closed) return this.closeUdp(flow);
      if (d === 'reject') return refuse('refused.handler', 'admin');
      if (d !== 'relay') {
        if (!d || typeof d.accept !== 'function') return refuse('refused.handler', 'admin');
        state.local = new FlowUdpSocket(flow, this.host.engine, info);
        this.count('accepted');
        this.log('accepted', info);
        this.hand(d, state.local);
        this.onUdpReadable(flow);
        return;
      }
      const target = this.target(flow.dstAddr);
      const no = target === 'own' ? 'refused.ownAddress' : this.policy.check(target, flow.dstPort, info.peer);
      if (no) return refuse(no === 'refused.ownAddress' ? no : `refused.${no}`, target === 'own' ? 'port' : 'admin');
      const t: HostTarget = { address: formatIp(target as IpAddr), port: flow.dstPort };
      state.relay = openUdp(
        t,
        (m) => {
          if (flow.closed) return;
          this.count('relay.bytesDown', m.length);
          flow.send(this.host.engine.now(), m);
          this.host.engine.schedule();
        },
        (kind) => {
          // The host network said no (ICMP to our socket): tell the peer the same way.
          if (flow.closed) return;
          flow.refuse(this.host.engine.now(), kind === 'refused' ? 'port' : 'host');
          this.closeUdp(flow);
          this.host.engine.schedule();
        },
      );
      this.count('relayed');
      if (this.listening) this.log('relayed', info, { to: `${t.address}:${t.port}` });
      this.onUdpReadable(flow);
    });
  }

  private onUdpReadable(flow: UdpFlow): void {
    const st = this.udp.get(flow);
    if (!st || (!st.relay && !st.local)) return; // undecided: datagrams wait in the flow (bounded)
    for (let m = flow.recv(); m !== undefined; m = flow.recv()) {
      if (st.relay) {
        this.count('relay.bytesUp', m.length);
        st.relay.send(m);
      } else st.local!.emit('message', Buffer.from(m.buffer, m.byteOffset, m.byteLength), { address: formatIp(flow.srcAddr), family: flow.srcAddr.length === 4 ? 'IPv4' : 'IPv6', port: flow.srcPort, size: m.length });
    }
  }

  private closeUdp(flow: UdpFlow): void {
    const st = this.udp.get(flow);
    if (!st) return;
    this.udp.delete(flow);
    this.untrack(st.active);
    if ((st.relay || st.local) && this.listening) this.log('closed', this.infoOf('udp', flow));
    st.relay?.close();
    if (st.local) st.local.close();
    else flow.close();
  }

  /** One unref'd timer while UDP flows exist: idle flows close (no timer per flow). */
  private armSweep(): void {
    if (this.sweep || this.closed) return;
    this.sweep = setInterval(() => {
      const now = this.host.engine.now();
      for (const [flow, st] of this.udp) {
        if (now - flow.lastActivity >= st.idleMs) {
          this.count('udp.idleClosed');
          this.closeUdp(flow);
        }
      }
      if (this.udp.size === 0) {
        clearInterval(this.sweep);
        this.sweep = undefined;
      }
    }, 1000);
    this.sweep.unref();
  }

  // --- ICMP echo ----------------------------------------------------------------------------

  private onEcho(req: EchoRequest): void {
    const info = this.infoOf('icmp', { srcAddr: req.src, srcPort: req.id, dstAddr: req.dst, dstPort: 0 });
    this.count('icmp.echoes');
    const refuse = (c: GatewayCounter, kind: UnreachableKind): void => {
      this.count(c);
      this.log('refused', info, { reason: c });
      this.host.iface.sendUnreachable(this.host.engine.now(), req.src, req.dst, req.quote, kind);
      this.host.engine.schedule();
    };
    const lim = this.limit(info.peer);
    if (lim) {
      this.count(lim);
      return;
    }
    this.decide(info, (d) => {
      if (d === 'reject') return refuse('refused.handler', 'admin');
      if (d !== 'relay') {
        this.count('accepted');
        this.host.iface.echoReply(this.host.engine.now(), req);
        this.host.engine.schedule();
        if (d && typeof d.accept === 'function') this.hand(d, undefined);
        return;
      }
      const target = this.target(req.dst);
      const no = target === 'own' ? undefined : this.admit(info, target, 0);
      if (target === 'own') {
        // Our own address answers as it always has.
        this.host.iface.echoReply(this.host.engine.now(), req);
        return this.host.engine.schedule();
      }
      if (no) return refuse(no, no.startsWith('limit') ? 'host' : 'admin');
      // Relayed echoes are bounded in total and per peer, the excess dropped (a ping that is not
      // answered is what a rate-limited router gives, RFC 1812 §4.3.2.8).
      const mine = this.pingsPerPeer.get(info.peer) ?? 0;
      if (this.pings >= MAX_PINGS || mine >= MAX_PINGS_PER_PEER) return this.count('limit.pings');
      this.pings++;
      this.pingsPerPeer.set(info.peer, mine + 1);
      let cancel = (): void => {};
      const a = this.track(info.peer, () => cancel());
      cancel = pingHost(formatIp(target), req.data, PING_TIMEOUT, (r) => {
        this.untrack(a);
        this.pings--;
        const left = (this.pingsPerPeer.get(info.peer) ?? 1) - 1;
        if (left <= 0) this.pingsPerPeer.delete(info.peer);
        else this.pingsPerPeer.set(info.peer, left);
        if (this.closed || (!r.ok && r.failure === 'cancelled')) return;
        const unavailable = !r.ok && r.failure === 'unavailable';
        if ((r.note || unavailable) && !this.warnedPing) {
          this.warnedPing = true; // one line, once: why the fast path, or any path, is not there
          if (unavailable) this.host.trace.log('warn', `gateway: pings cannot be relayed: ${r.detail}${r.note ? ` (${r.note})` : ''}; peers get ICMP unreachable`);
          else this.host.trace.log('warn', `gateway: pings are relayed through the system \`ping\`, a process per echo: ${r.note}`);
        }
        if (r.ok) {
          // The reply is built from the peer's own request: its id, sequence and data (RFC 792).
          this.count('relayed');
          this.count(`icmp.${r.path}`);
          this.host.iface.echoReply(this.host.engine.now(), req);
          this.host.engine.schedule();
          return;
        }
        // No reply: none to the peer either, as on the path itself.
        if (r.failure === 'timeout') return this.count('icmp.timeout');
        refuse('relay.connectFailed', 'host');
      });
    });
  }

  // --- routing between peers ----------------------------------------------------------------

  /**
   * A packet from a peer to another peer's address: forwarded at the IP level (RFC 1812 §5.3.1:
   * TTL/hop limit decremented, dropped at 1; the IPv4 header checksum updated incrementally,
   * RFC 1624). Packets for us, for no peer, or back to their sender are left to the netstack.
   */
  forward(now: Instant, p: Uint8Array): boolean {
    const v = p[0]! >> 4;
    const fam = v === 4 ? 4 : 6;
    if ((v !== 4 || p.length < 20) && (v !== 6 || p.length < 40)) return false;
    const dstOff = v === 4 ? 16 : 24;
    const dst = p.subarray(dstOff, dstOff + (v === 4 ? 4 : 16));
    if (this.host.iface.isLocal(dst)) return false;
    const to = this.host.device.allowedIps.lookup(fam, p, dstOff);
    if (!to || to === this.host.device.allowedIps.lookup(fam, p, v === 4 ? 12 : 8)) return false;
    const ttlAt = v === 4 ? 8 : 7;
    if (p[ttlAt]! <= 1) {
      this.count('routed.ttlExceeded');
      return true;
    }
    p[ttlAt]!--;
    if (v === 4) {
      // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m the 16-bit word holding TTL (and protocol).
      const sum = (~((p[10]! << 8) | p[11]!) & 0xffff) + 0xfeff; // ~m + m' = -0x0100 mod 0xffff
      const folded = (sum & 0xffff) + (sum >>> 16);
      const ck = ~folded & 0xffff;
      p[10] = ck >> 8;
      p[11] = ck & 0xff;
    }
    this.count('routed');
    this.host.device.handlePacket(now, p);
    return true;
  }

  // --- lifecycle ---------------------------------------------------------------------------

  /** A peer is gone (removed over UAPI): its flows end at once. */
  dropPeersNotIn(device: Device): void {
    const live = new Set<string>();
    for (const p of device.peers()) live.add(toBase64(p.publicKey));
    for (const a of [...this.active]) {
      if (!live.has(a.peer)) {
        this.count('peer.removed');
        this.untrack(a);
        a.close();
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    for (const a of [...this.active]) {
      this.untrack(a);
      a.close();
    }
    for (const flow of [...this.udp.keys()]) this.closeUdp(flow);
  }
}

/** Relayed echo requests in flight (on the fallback path, each a `ping` process), in total and per peer. */
const MAX_PINGS = 64;
const MAX_PINGS_PER_PEER = 8;
/** How long a relayed echo waits for the host's reply (ms). */
const PING_TIMEOUT = 3000;

function failureAnswer(err: ConnectFailure): 'rst' | UnreachableKind {
  return err === 'refused' ? 'rst' : 'host';
}

const KNOWN = new Set(['allow', 'deny', 'exposeLocalhost', 'peerToPeer', 'maxFlows', 'maxFlowsPerPeer', 'maxPendingTcp', 'maxPendingTcpPerPeer', 'maxUdpFlowsPerPeer', 'maxHeldSynsPerPeer', 'connectTimeout', 'decisionTimeout', 'udpTimeout', 'dnsTimeout', 'hostAddresses']);
const NUMERIC = new Set(['maxFlows', 'maxFlowsPerPeer', 'maxPendingTcp', 'maxPendingTcpPerPeer', 'maxUdpFlowsPerPeer', 'maxHeldSynsPerPeer', 'connectTimeout', 'decisionTimeout', 'udpTimeout', 'dnsTimeout']);

/** Every address of this host's interfaces (refused by default: DESIGN §8). */
function hostAddresses(): string[] {
  const out: string[] = [];
  // Loopback ones are the loopback class's (lifted by exposeLocalhost), not host addresses.
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.internal) out.push(a.address);
  return out;
}
