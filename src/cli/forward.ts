/**
 * Port forwarding both ways: `-L [BIND:]PORT:HOST:PORT` listens locally and
 * dials through the tunnel (like onetun); `-R PORT:HOST:PORT` listens on the
 * tunnel address and dials a local service: hosting behind WireGuard, no root.
 */
import { WgnetError } from '../util/errors.js';
import { parseIp } from '../util/ip.js';
import type { ListenerRule } from '../config/index.js';

export interface ForwardSpec {
  kind: 'L' | 'R';
  bindHost: string | undefined;
  bindPort: number;
  host: string;
  port: number;
}

function port(s: string, spec: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `-${spec}: port must be 1-65535, got '${s}'`);
  return Number(s);
}

/** Splits on ':' outside brackets. */
function fields(spec: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of spec) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ':' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((f) => f.replace(/^\[(.*)\]$/, '$1'));
}

export function parseForwardSpec(spec: string, kind: 'L' | 'R'): ForwardSpec {
  const f = fields(spec);
  const usage = kind === 'L' ? '[BIND:]PORT:HOST:PORT' : 'PORT:HOST:PORT';
  if (!(f.length === 3 || (kind === 'L' && f.length === 4))) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `-${kind} ${spec}: expected ${usage}`);
  const [bindHost, bp, host, hp] = f.length === 4 ? f : [undefined, ...f];
  if (bindHost !== undefined && !parseIp(bindHost) && bindHost !== 'localhost') throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `-${kind} ${spec}: bind address '${bindHost}' is not an IP address`);
  if (!host) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `-${kind} ${spec}: missing HOST`);
  return { kind, bindHost, bindPort: port(bp!, kind), host, port: port(hp!, kind) };
}

/**
 * A -L / -R flag as a listener rule, with the metrics label and ready-line text it had before
 * config files could hold rules (dashboards and scripts match on them).
 */
export function forwardFlagRule(spec: ForwardSpec, udp: boolean): { rule: ListenerRule; label: string; ready: string } {
  const target = { host: spec.host, port: spec.port };
  const label = `-${spec.kind} ${spec.bindPort}:${spec.host}:${spec.port}${udp ? ' udp' : ''}`;
  const ready = `-${spec.kind} ${spec.bindHost ? spec.bindHost + ':' : ''}${spec.bindPort}:${spec.host}:${spec.port}`;
  const bind = { host: spec.bindHost ?? '127.0.0.1', port: spec.bindPort };
  const rule: ListenerRule =
    spec.kind === 'L'
      ? udp
        ? { kind: 'udp-client', bind, target }
        : { kind: 'tcp-client', bind, target }
      : udp
        ? { kind: 'udp-server', port: spec.bindPort, target }
        : { kind: 'tcp-server', port: spec.bindPort, target };
  return { rule, label, ready };
}
