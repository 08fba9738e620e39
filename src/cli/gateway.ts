/**
 * `wgnet gateway`: a WireGuard server whose peers reach other networks through this host,
 * rootless (no TUN, no ip_forward, no iptables): every TCP connection, UDP flow and ping a
 * peer sends into the tunnel is terminated by wgnet and relayed from the host's sockets,
 * within the policy given by --allow/--deny (DESIGN §8).
 */
import { Tunnel } from '../api/tunnel.js';
import type { GatewayOptions } from '../api/gateway.js';
import { parseRule } from '../config/gateway-policy.js';
import { WgnetError } from '../util/errors.js';
import { coreTrace, tunnelOptions, makeLog, parseCommon, seconds, untilSignal, udpBackend, startOps, watchHandshakes, checkConfig, OPS_HELP } from './serve.js';
import { positiveInt } from './limits.js';

export const GATEWAY_USAGE = `Usage: wgnet gateway -c FILE [--allow CIDR[:PORTS]]... [--deny CIDR[:PORTS]]... [--expose-localhost] [--peer-to-peer]
                     [--max-flows N] [--max-flows-per-peer N] [--max-pending N] [--connect-timeout SECONDS]
                     [--max-udp-flows-per-peer N] [--max-held-syns-per-peer N]
                     [--udp-timeout SECONDS] [--uapi NAME] [--log-level LEVEL] [--log-format text|json]
                     [--metrics HOST:PORT] [--ready-peers KEY,...] [--health-check IP[:PORT]] [--pcap FILE]

Serves the WireGuard interface of FILE (wg-quick: ListenPort and one [Peer] per client)
and carries what its peers send to any destination through this host's network: TCP
(connected first, so a refused port is a RST to the peer), UDP (one socket per flow) and
ICMP echo (a ping socket where net.ipv4.ping_group_range allows, a raw one with CAP_NET_RAW,
else the system's ping). Peers route through it with AllowedIPs = 0.0.0.0/0
(or any subnet) on their side. No root, no TUN, no ip_forward.

Policy (first match wins): --deny, then --allow; loopback, link-local (169.254.0.0/16,
fe80::/10: cloud metadata), multicast, broadcast and this host's own addresses are refused
unless allowed; with any --allow, everything not allowed is refused. PORTS: 80,443 or 8000-8100.
  --expose-localhost       the gateway's own tunnel address reaches this host's loopback
  --peer-to-peer           route packets between peers (to another peer's AllowedIPs) at the IP level
  --max-flows N            flows at once, all peers (default 65536)
  --max-flows-per-peer N   flows at once per peer (default 8192)
  --max-pending N          TCP connections being set up at once (default 4096; per peer 128)
  --max-udp-flows-per-peer N  UDP flows one peer may hold at once (default 8192)
  --max-held-syns-per-peer N  SYNs of one peer held while their flows are decided (default 1024)
  --connect-timeout SECONDS  host connect timeout; then the peer gets ICMP unreachable (default 10)
  --udp-timeout SECONDS    a UDP flow closes after this long idle (default 60; DNS: 15)

Peers can be added and removed live with 'wg set NAME ...' when --uapi NAME is given;
a removed peer's flows end at once. --log-level debug logs every flow and refusal.

${OPS_HELP}

Example: wgnet gateway -c server.conf --deny 10.0.0.0/8 --uapi wg0`;

export async function runGateway(args: string[]): Promise<number> {
  const opts: GatewayOptions & { allow: string[]; deny: string[] } = { allow: [], deny: [] };
  const bad = (m: string): WgnetError => new WgnetError('ERR_WGNET_INVALID_ARGUMENT', m);
  const c = parseCommon(args, (a, next) => {
    if (a === '--allow' || a === '--deny') {
      const v = next();
      parseRule(v, a); // fail now, with the flag's name, not when the first flow comes
      (a === '--allow' ? opts.allow : opts.deny).push(v);
    } else if (a === '--expose-localhost') opts.exposeLocalhost = true;
    else if (a === '--peer-to-peer') opts.peerToPeer = true;
    else if (a === '--max-flows') opts.maxFlows = positiveInt(next(), a, bad);
    else if (a === '--max-flows-per-peer') opts.maxFlowsPerPeer = positiveInt(next(), a, bad);
    else if (a === '--max-pending') opts.maxPendingTcp = positiveInt(next(), a, bad);
    else if (a === '--max-udp-flows-per-peer') opts.maxUdpFlowsPerPeer = positiveInt(next(), a, bad);
    else if (a === '--max-held-syns-per-peer') opts.maxHeldSynsPerPeer = positiveInt(next(), a, bad);
    else if (a === '--connect-timeout') opts.connectTimeout = seconds(next(), a);
    else if (a === '--udp-timeout') opts.udpTimeout = seconds(next(), a);
    else return false;
    return true;
  });
  if (!c.config) throw bad('-c FILE is required');
  if (c.check) return checkConfig(c);
  const log = makeLog(c);
  // The core's traces (flows, refusals, drops) go to the same log.
  const trace = coreTrace(c, log);
  const t = await Tunnel.create({ file: c.config }, tunnelOptions(c, trace));
  for (const w of t.config.warnings) log('warn', w);
  watchHandshakes(t, log);
  t.on('warning', (e: Error) => log('warn', e.message));
  let ops: Awaited<ReturnType<typeof startOps>>;
  try {
    t.onFlow('relay', opts);
    ops = await startOps(c, t, log);
  } catch (err) {
    await t.close();
    throw err;
  }
  process.stdout.write(`ready gateway listen=${t.listenPort} address=${t.addresses.join(',')} peers=${t.toJSON().peers.length} udp=${udpBackend(t)}${ops.metricsAddress ? ` metrics=${ops.metricsAddress}` : ''} policy=${JSON.stringify({ allow: opts.allow, deny: opts.deny, exposeLocalhost: !!opts.exposeLocalhost })}\n`);
  return untilSignal(async () => {
    await ops.close();
    const st = t.gatewayStats();
    if (st) log('info', 'gateway stats', { flows: st.flows, ...st.counters });
    await t.close();
  });
}
