/**
 * The one validated tunnel configuration that every input format produces
 * (wg-quick INI, sing-box JSON, a config object), and the errors that say
 * exactly where a file is wrong without ever printing a key.
 */
import type { IpAddr, IpPrefix } from '../util/ip.js';
import { WgnetError } from '../util/errors.js';

export interface InterfaceAddress {
  addr: IpAddr; // host bits kept: 10.0.0.2/24
  bits: number;
}

export interface EndpointSpec {
  host: string; // IP literal (IPv6 without brackets) or a host name
  port: number;
}

export interface PeerSpec {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: EndpointSpec;
  allowedIps: IpPrefix[];
  persistentKeepalive?: number;
  reserved?: Uint8Array;
}

export interface TunnelConfig {
  privateKey: Uint8Array;
  addresses: InterfaceAddress[];
  dns: { servers: IpAddr[]; search: string[] };
  mtu?: number;
  listenPort?: number;
  fwMark?: number;
  peers: PeerSpec[];
  warnings: string[];
  source?: string;
}

const MAX_REASON = 200;

/** `wg0.conf:7: PublicKey: expected 32 bytes of base64, got 31` */
export class ConfigError extends WgnetError {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly path: string | undefined;
  readonly key: string | undefined;
  constructor(where: { file?: string; line?: number; path?: string; key?: string }, message: string) {
    // Bounded, whatever the input: the location and the reason fit a line (the parts that quote
    // config text already bound it, values.ts shown(); this is the backstop).
    if (message.length > MAX_REASON) message = message.slice(0, MAX_REASON - 3) + '...';
    const file = where.file === undefined ? '<config>' : where.file.length > 80 ? '...' + where.file.slice(-77) : where.file;
    const loc = where.line !== undefined ? `${file}:${where.line}` : where.path !== undefined ? `${file}: ${where.path}` : file;
    const key = where.key !== undefined && where.path === undefined ? ` ${where.key}:` : '';
    super('ERR_WGNET_CONFIG', `${loc}:${key} ${message}`);
    this.name = 'ConfigError';
    this.file = where.file;
    this.line = where.line;
    this.path = where.path;
    this.key = where.key;
  }
}
