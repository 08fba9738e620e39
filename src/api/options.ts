/**
 * Tunnel.create's options, and how they become the netstack's (netstack/interface.ts,
 * netstack/tcp/constants.ts). Checked here, where a user's value arrives (DESIGN §5: a
 * typed error that says what to fix), never in the sans-IO core.
 */
import type { Trace } from '../util/trace.js';
import type { InterfaceOptions } from '../netstack/interface.js';
import { invalidArgument } from '../util/errors.js';

export interface TunnelOptions {
  /** Which crypto backend: 'auto' (native when it loads) by default. */
  crypto?: 'native' | 'portable' | 'auto';
  trace?: Trace;
  /** sing-box configs: which endpoint to use. */
  tag?: string;
  /** Overrides the config's ListenPort (0 = random). */
  listenPort?: number;
  /** Serves the UAPI at /var/run/wireguard/NAME.sock so `wg show NAME` and `wg set NAME` work. */
  uapi?: string;
  /** TCP congestion control for connections through the tunnel: 'bbr' (paced; the default), 'cubic' or 'newreno'. */
  congestionControl?: 'bbr' | 'cubic' | 'newreno';
  /** What one peer (all of its AllowedIPs) may hold of this tunnel's netstack; README "Security". */
  limits?: TunnelLimits;
}

/**
 * Per-peer shares of the netstack's tables, so one hostile or broken peer cannot take what the
 * others need. A peer over a share is refused alone (counted); everyone else goes on.
 */
export interface TunnelLimits {
  /** TCP connections through this tunnel's listeners, SYN-RECEIVED to TIME-WAIT. Default 4096. */
  tcpConnectionsPerPeer?: number;
  /** Half-open connections per listener; past it the peer's SYNs get SYN cookies. Default a quarter of the backlog. */
  synQueuePerPeer?: number;
  /** Bytes of IP fragments waiting for reassembly, in all. Default 4 MiB. */
  reassemblyBytes?: number;
  /** The same per peer. Default 1 MiB. */
  reassemblyBytesPerPeer?: number;
}

/** The part of the Interface's options that TunnelOptions decide; keys left unset keep the netstack's defaults. */
export function netstackOptions(opts: TunnelOptions): Pick<InterfaceOptions, 'tcp' | 'reassembly'> {
  const l = opts.limits ?? {};
  for (const [k, v] of Object.entries(l)) {
    if (!(k in LIMIT_NAMES)) throw invalidArgument(`limits.${k.slice(0, 40)}: unknown limit (known: ${Object.keys(LIMIT_NAMES).join(', ')})`);
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw invalidArgument(`limits.${k}: expected an integer >= 1, got ${String(v).slice(0, 20)}`);
  }
  const tcp: NonNullable<InterfaceOptions['tcp']> = {};
  if (opts.congestionControl) tcp.congestionControl = opts.congestionControl;
  if (l.tcpConnectionsPerPeer !== undefined) tcp.maxConnectionsPerPeer = l.tcpConnectionsPerPeer;
  if (l.synQueuePerPeer !== undefined) tcp.maxSynQueuePerPeer = l.synQueuePerPeer;
  const reassembly: NonNullable<InterfaceOptions['reassembly']> = {};
  if (l.reassemblyBytes !== undefined) reassembly.maxBytes = l.reassemblyBytes;
  if (l.reassemblyBytesPerPeer !== undefined) reassembly.maxBytesPerSource = l.reassemblyBytesPerPeer;
  return { tcp, reassembly };
}

/** Every TunnelLimits key, so an unknown one (a typo from JavaScript) is an error rather than ignored. */
const LIMIT_NAMES: Record<keyof TunnelLimits, true> = { tcpConnectionsPerPeer: true, synQueuePerPeer: true, reassemblyBytes: true, reassemblyBytesPerPeer: true };
