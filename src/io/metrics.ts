/**
 * Prometheus metrics (text exposition format 0.0.4) for a tunnel or a TUN daemon.
 *
 * Nothing here runs per packet: the cores already keep their counters (Device.stats,
 * Peer rx/tx bytes, Interface.stats, TcpLayer.stats, Gateway.stats), and a scrape reads
 * them. So `--metrics` costs nothing on the data path. The format is written here rather
 * than through prom-client: a scrape is a pull of counters that already exist (prom-client
 * would need a collect() callback per family all the same), the format is a few lines of
 * escaping, and the package gains no dependency and no global registry. The test checks the
 * output with `promtool check metrics` and a strict parser.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Device, DeviceEvent, DeviceStats, DropReason } from '../wireguard/device.js';
import type { Interface, NetCounter } from '../netstack/interface.js';
import type { TcpLayer } from '../netstack/tcp/layer.js';
import type { TcpCounter, TcpStats } from '../netstack/tcp/counters.js';
import type { TcpState } from '../netstack/types.js';
import type { Counters } from '../util/counters.js';
import { toBase64 } from '../util/bytes.js';

export type MetricType = 'counter' | 'gauge';

export interface MetricSample {
  labels?: Record<string, string>;
  value: number;
}

/** One metric family: `name` is the sample name (counters end in `_total`). */
export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: MetricSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * The exposition text of `families`. A family with no samples is left out; families of the
 * same name are merged (their samples must differ in labels), as the format requires one
 * block per name.
 */
export function formatMetrics(families: MetricFamily[]): string {
  const byName = new Map<string, MetricFamily>();
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`metric name '${f.name}' is not valid`);
    const had = byName.get(f.name);
    if (had) had.samples = had.samples.concat(f.samples);
    else byName.set(f.name, { ...f, samples: [...f.samples] });
  }
  let out = '';
  for (const f of byName.values()) {
    if (f.samples.length === 0) continue;
    out += `# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.samples) {
      const entries = s.labels ? Object.entries(s.labels) : [];
      for (const [k] of entries) if (!LABEL.test(k) || k.startsWith('__')) throw new Error(`label name '${k}' is not valid`);
      const labels = entries.length ? `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
      out += `${f.name}${labels} ${formatValue(s.value)}\n`;
    }
  }
  return out;
}

/** camelCase / dotted counter name to a metric-name fragment: `rtoExpired` -> `rto_expired`. */
export function snake(name: string): string {
  return name
    .replace(/\./g, '_')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

/** Every DropReason, so each appears (0 until counted); the check below fails to compile if one is missing. */
const DROP_REASONS = [
  'malformed',
  'noPrivateKey',
  'badMac1',
  'cookieSent',
  'rateLimited',
  'badHandshake',
  'unknownPeer',
  'replayedTimestamp',
  'initiationFlood',
  'unknownIndex',
  'badCookie',
  'expiredKeypair',
  'badAuth',
  'replay',
  'badInnerPacket',
  'sourceNotAllowed',
  'noRoute',
  'noEndpoint',
  'stagedOverflow',
  'handshakeQueueFull',
  'handshakeStale',
] as const satisfies readonly DropReason[];
type MissingDropReason = Exclude<DropReason, (typeof DROP_REASONS)[number]>;
const allDropReasons: [MissingDropReason] extends [never] ? true : MissingDropReason = true;
void allDropReasons;

/**
 * A copy of the Device's counters with every drop reason present (0 until counted), so a
 * reader (tunnel.stats(), the metrics below) sees one fixed shape and a reason that never
 * happened still shows as 0 rather than missing.
 */
export function deviceCounters(device: Device): DeviceStats {
  const s = device.stats;
  const dropped = {} as Record<DropReason, number>;
  for (const r of DROP_REASONS) dropped[r] = s.dropped[r] ?? 0;
  return { ...s, dropped };
}

/** TCP in the netstack: connections now (in all, and by RFC 9293 state) and the TcpLayer's counters. */
export interface TcpSnapshot {
  connections: number;
  /** Only states that some connection is in. */
  byState: Partial<Record<TcpState, number>>;
  counters: TcpStats;
}

/** The netstack's counters (a name appears once counted) and TCP's, copied. */
export interface NetstackSnapshot {
  netstack: Counters<NetCounter>;
  /** Absent only for an Interface whose TCP layer keeps no counters (test stand-ins). */
  tcp?: TcpSnapshot;
}

/** Reads the Interface's and the TcpLayer's counters once: the one place tunnel.stats() and netstackMetrics() take them from. */
export function netstackCounters(iface: Interface): NetstackSnapshot {
  const out: NetstackSnapshot = { netstack: { ...iface.stats } };
  // The Interface types its TCP layer by what the netstack calls (TcpLayerApi); the counters are the TcpLayer's own.
  const tcp = iface.tcp as Partial<TcpLayer>;
  if (tcp.stats) {
    const byState: Partial<Record<TcpState, number>> = {};
    for (const c of tcp.conns?.values() ?? []) byState[c.state] = (byState[c.state] ?? 0) + 1;
    out.tcp = { connections: tcp.conns?.size ?? 0, byState, counters: { ...tcp.stats } };
  }
  return out;
}

/**
 * Per-peer event counts the Device does not keep (it emits events instead): handshakes
 * completed, handshakes given up (90 s of retries), endpoint changes. Keyed by the peer's
 * base64 public key.
 */
export class PeerEventCounters {
  readonly handshakes = new Map<string, number>();
  readonly failures = new Map<string, number>();
  readonly endpointChanges = new Map<string, number>();

  record(type: DeviceEvent['type'], publicKey: string): void {
    const m = type === 'handshake' ? this.handshakes : type === 'handshake-failed' ? this.failures : this.endpointChanges;
    m.set(publicKey, (m.get(publicKey) ?? 0) + 1);
  }

  onDeviceEvent = (ev: DeviceEvent): void => this.record(ev.type, toBase64(ev.peer.publicKey));
}

export interface WireguardMetricsSource {
  device: Device;
  /** Monotonic now, in the Device's units (keypair ages). */
  now: number;
  /** Wall clock, ms since the epoch. */
  wallNow: number;
  events?: PeerEventCounters;
  /** The outer UDP socket (UdpBind): datagrams it could not send. */
  outer?: { sendErrors: number };
}

export function wireguardMetrics(src: WireguardMetricsSource): MetricFamily[] {
  const { device, events } = src;
  const rx: MetricSample[] = [];
  const tx: MetricSample[] = [];
  const last: MetricSample[] = [];
  const age: MetricSample[] = [];
  const keyAge: MetricSample[] = [];
  const retries: MetricSample[] = [];
  const hs: MetricSample[] = [];
  const fails: MetricSample[] = [];
  const moves: MetricSample[] = [];
  for (const p of device.peers()) {
    const peer = toBase64(p.publicKey);
    const labels = { peer };
    rx.push({ labels, value: p.rxBytes });
    tx.push({ labels, value: p.txBytes });
    last.push({ labels, value: p.lastHandshakeWallMs / 1000 });
    if (p.lastHandshakeWallMs > 0) age.push({ labels, value: Math.max(0, (src.wallNow - p.lastHandshakeWallMs) / 1000) });
    if (p.current) keyAge.push({ labels, value: Math.max(0, (src.now - p.current.created) / 1000) });
    retries.push({ labels, value: p.attempts });
    hs.push({ labels, value: events?.handshakes.get(peer) ?? 0 });
    fails.push({ labels, value: events?.failures.get(peer) ?? 0 });
    moves.push({ labels, value: events?.endpointChanges.get(peer) ?? 0 });
  }
  const s = deviceCounters(device);
  const c = (name: string, help: string, value: number): MetricFamily => ({ name, type: 'counter', help, samples: [{ value }] });
  return [
    { name: 'wgnet_peers', type: 'gauge', help: 'Configured WireGuard peers.', samples: [{ value: rx.length }] },
    { name: 'wgnet_peer_receive_bytes_total', type: 'counter', help: 'Bytes received from the peer (WireGuard datagrams).', samples: rx },
    { name: 'wgnet_peer_transmit_bytes_total', type: 'counter', help: 'Bytes sent to the peer (WireGuard datagrams).', samples: tx },
    { name: 'wgnet_peer_last_handshake_seconds', type: 'gauge', help: 'Unix time of the last completed handshake (0: never).', samples: last },
    { name: 'wgnet_peer_handshake_age_seconds', type: 'gauge', help: 'Seconds since the last completed handshake (peers that had one).', samples: age },
    { name: 'wgnet_peer_keypair_age_seconds', type: 'gauge', help: 'Age of the current session keypair.', samples: keyAge },
    { name: 'wgnet_peer_handshake_retries', type: 'gauge', help: 'Handshake initiations sent in the current attempt without a response (0 when up).', samples: retries },
    { name: 'wgnet_peer_handshakes_total', type: 'counter', help: 'Handshakes completed with the peer.', samples: hs },
    { name: 'wgnet_peer_handshake_failures_total', type: 'counter', help: 'Handshake attempts given up after 90 s of retries.', samples: fails },
    { name: 'wgnet_peer_endpoint_changes_total', type: 'counter', help: 'Times the peer roamed to a new endpoint.', samples: moves },
    c('wgnet_handshakes_initiated_total', 'Handshake initiations sent, all peers.', s.handshakesInitiated),
    c('wgnet_handshakes_completed_total', 'Handshakes completed, all peers.', s.handshakesCompleted),
    c('wgnet_cookie_replies_sent_total', 'Cookie replies sent (under load).', s.cookieRepliesSent),
    c('wgnet_device_receive_datagrams_total', 'UDP datagrams received.', s.rxDatagrams),
    c('wgnet_device_transmit_datagrams_total', 'UDP datagrams sent.', s.txDatagrams),
    c('wgnet_device_receive_packets_total', 'Inner IP packets received through the tunnel.', s.rxPackets),
    c('wgnet_device_transmit_packets_total', 'Inner IP packets sent through the tunnel.', s.txPackets),
    c('wgnet_device_receive_bytes_total', 'Inner IP bytes received through the tunnel.', s.rxBytes),
    c('wgnet_device_transmit_bytes_total', 'Inner IP bytes sent through the tunnel.', s.txBytes),
    ...(src.outer ? [c('wgnet_udp_send_errors_total', 'Datagrams the outer UDP socket could not send (EPERM, ENETUNREACH, ...): dropped, retransmitted above.', src.outer.sendErrors)] : []),
    {
      name: 'wgnet_device_dropped_total',
      type: 'counter',
      help: 'Datagrams and packets the WireGuard device dropped, by reason.',
      samples: DROP_REASONS.map((reason) => ({ labels: { reason }, value: s.dropped[reason] })),
    },
  ];
}

const TCP_HELP: Partial<Record<TcpCounter, string>> = {
  fastRetransmits: 'Segments retransmitted by fast retransmit.',
  lostRetransmits: 'Segments retransmitted as lost during recovery.',
  rtoExpired: 'Retransmission timeouts.',
  spuriousRecoveries: 'Loss recoveries undone as spurious.',
  tailLossProbes: 'Tail loss probes sent.',
};

export function netstackMetrics(iface: Interface): MetricFamily[] {
  const snap = netstackCounters(iface);
  const out: MetricFamily[] = [];
  const ifDrops: MetricSample[] = [];
  const ifCounts: MetricSample[] = [];
  for (const [k, v] of Object.entries(snap.netstack)) {
    if (v === undefined) continue;
    if (k.startsWith('drop.')) ifDrops.push({ labels: { reason: k.slice(5) }, value: v });
    else ifCounts.push({ labels: { counter: k }, value: v });
  }
  out.push({ name: 'wgnet_netstack_dropped_total', type: 'counter', help: 'IP, ICMP, UDP and flow packets the netstack dropped, by reason.', samples: ifDrops });
  out.push({ name: 'wgnet_netstack_events_total', type: 'counter', help: 'Netstack counters (packets in/out, flows), by name.', samples: ifCounts });
  const tcp = snap.tcp;
  if (tcp) {
    const drops: MetricSample[] = [];
    for (const [k, v] of Object.entries(tcp.counters) as [TcpCounter, number][]) {
      if (k.startsWith('drop.')) drops.push({ labels: { reason: k.slice(5) }, value: v });
      else out.push({ name: `wgnet_tcp_${snake(k)}_total`, type: 'counter', help: TCP_HELP[k] ?? `TCP counter ${k}.`, samples: [{ value: v }] });
    }
    out.push({ name: 'wgnet_tcp_dropped_total', type: 'counter', help: 'TCP segments dropped without effect, by reason.', samples: drops });
    const samples = Object.entries(tcp.byState).map(([state, value]) => ({ labels: { state }, value: value ?? 0 }));
    if (samples.length === 0) samples.push({ labels: { state: 'ESTABLISHED' }, value: 0 });
    out.push({ name: 'wgnet_tcp_connections', type: 'gauge', help: 'TCP connections in the netstack, by RFC 9293 state.', samples });
  }
  return out;
}

/** Gateway mode: open flows and the gateway's typed counters (refused.*, limit.*, the rest). */
export function gatewayMetrics(g: { flows: number; heldSyns: number; udpFlows: number; counters: Partial<Record<string, number>> }): MetricFamily[] {
  const refused: MetricSample[] = [];
  const limited: MetricSample[] = [];
  const other: MetricFamily[] = [];
  for (const [k, v] of Object.entries(g.counters)) {
    if (v === undefined) continue;
    if (k.startsWith('refused.')) refused.push({ labels: { reason: k.slice(8) }, value: v });
    else if (k.startsWith('limit.')) limited.push({ labels: { limit: k.slice(6) }, value: v });
    else other.push({ name: `wgnet_gateway_${snake(k)}_total`, type: 'counter', help: `Gateway counter ${k}.`, samples: [{ value: v }] });
  }
  return [
    { name: 'wgnet_gateway_active_flows', type: 'gauge', help: 'Gateway flows open (TCP, UDP, ICMP).', samples: [{ value: g.flows }] },
    { name: 'wgnet_gateway_held_syns', type: 'gauge', help: 'TCP SYNs held while the host connects.', samples: [{ value: g.heldSyns }] },
    { name: 'wgnet_gateway_udp_flows', type: 'gauge', help: 'UDP flows in the netstack flow table.', samples: [{ value: g.udpFlows }] },
    { name: 'wgnet_gateway_refused_total', type: 'counter', help: 'Gateway flows refused, by reason.', samples: refused },
    { name: 'wgnet_gateway_limited_total', type: 'counter', help: 'Gateway flows refused by a limit.', samples: limited },
    ...other,
  ];
}

/** One listener's counters, as `proxy` and `forward` keep them (cli/limits.ts, the servers' stats). */
export interface ListenerCounters {
  connections?: number;
  /** Client connections open now. */
  active?: number;
  failures?: number;
  bytesUp?: number;
  bytesDown?: number;
  udpFlows?: number;
  datagramsUp?: number;
  datagramsDown?: number;
  /** Clients refused by a limit: one number (connections), or per limit name. */
  limited?: number | Partial<Record<string, number>>;
}

/**
 * Listener counters of `proxy` and `forward`: `listener` names the listener, e.g.
 * `127.0.0.1:1080`, `-L 8022:10.0.0.5:22`; `kind` is socks5, http, forward or forward-udp.
 */
export function listenerMetrics(listeners: { listener: string; kind: string; stats: ListenerCounters }[]): MetricFamily[] {
  const f = (name: string, type: MetricType, help: string): MetricFamily => ({ name, type, help, samples: [] });
  const fams = {
    connections: f('wgnet_listener_connections_total', 'counter', 'Client connections carried (proxy, forward).'),
    active: f('wgnet_listener_active_connections', 'gauge', 'Client connections open now.'),
    failures: f('wgnet_listener_failures_total', 'counter', 'Client requests that failed (bad request, connect error).'),
    bytesUp: f('wgnet_listener_sent_bytes_total', 'counter', 'Bytes from clients towards the far side.'),
    bytesDown: f('wgnet_listener_received_bytes_total', 'counter', 'Bytes from the far side to clients.'),
    udpFlows: f('wgnet_listener_udp_flows_total', 'counter', 'UDP flows (forward --udp) or SOCKS5 UDP associations opened.'),
    datagramsUp: f('wgnet_listener_sent_datagrams_total', 'counter', 'UDP datagrams from clients towards the far side.'),
    datagramsDown: f('wgnet_listener_received_datagrams_total', 'counter', 'UDP datagrams from the far side to clients.'),
  };
  const limited = f('wgnet_listener_limited_total', 'counter', 'Clients refused by a limit, by limit.');
  for (const { listener, kind, stats: s } of listeners) {
    const labels = { listener, kind };
    for (const k of Object.keys(fams) as (keyof typeof fams)[]) {
      const v = s[k];
      if (v !== undefined) fams[k].samples.push({ labels, value: v });
    }
    if (typeof s.limited === 'number') limited.samples.push({ labels: { ...labels, limit: 'connections' }, value: s.limited });
    else if (s.limited) for (const [limit, v] of Object.entries(s.limited)) limited.samples.push({ labels: { ...labels, limit }, value: v ?? 0 });
  }
  return [...Object.values(fams), limited];
}

let loopDelay: IntervalHistogram | undefined;

/**
 * Process CPU, memory and event-loop delay, under the names prom-client's default metrics
 * use, so existing dashboards work. The event-loop histogram starts on the first call.
 */
export function processMetrics(): MetricFamily[] {
  if (!loopDelay) {
    loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
  }
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const g = (name: string, help: string, value: number): MetricFamily => ({ name, type: 'gauge', help, samples: [{ value }] });
  const ns = (v: number): number => (Number.isFinite(v) ? v / 1e9 : 0);
  return [
    { name: 'process_cpu_user_seconds_total', type: 'counter', help: 'User CPU time spent in seconds.', samples: [{ value: cpu.user / 1e6 }] },
    { name: 'process_cpu_system_seconds_total', type: 'counter', help: 'System CPU time spent in seconds.', samples: [{ value: cpu.system / 1e6 }] },
    g('process_resident_memory_bytes', 'Resident memory size in bytes.', mem.rss),
    g('process_start_time_seconds', 'Start time of the process since the Unix epoch in seconds.', Math.round(Date.now() / 1000 - process.uptime())),
    g('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', mem.heapUsed),
    g('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', mem.external),
    g('nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.', ns(loopDelay.mean)),
    g('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', ns(loopDelay.percentile(99))),
    g('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', ns(loopDelay.max)),
  ];
}
