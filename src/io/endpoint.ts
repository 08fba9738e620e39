/**
 * Outer endpoints given as host names are resolved with the system resolver,
 * as wg(8) does when it reads a config: the tunnel's own DNS is not up yet.
 */
import { lookup } from 'node:dns/promises';
import { parseIp } from '../util/ip.js';
import { WgnetError } from '../util/errors.js';

export interface Endpoint {
  address: string;
  port: number;
}

export async function resolveEndpoint(host: string, port: number): Promise<Endpoint> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (parseIp(bare)) return { address: bare, port };
  try {
    // Prefer IPv4 like wg(8) (AI_ADDRCONFIG, first answer), but take IPv6 if that is all there is.
    const r = await lookup(bare, { family: 0, verbatim: false });
    return { address: r.address, port };
  } catch (err) {
    throw new WgnetError('ERR_WGNET_CONFIG', `endpoint ${host}:${port}: cannot resolve host name (${(err as Error).message})`, { cause: err });
  }
}
