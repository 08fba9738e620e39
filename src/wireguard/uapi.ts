/**
 * The cross-platform configuration protocol (wireguard.com/xplatform), spoken
 * exactly as wireguard-go speaks it so the real `wg` tool drives wgnet:
 * `get=1` lists the device and its peers in wireguard-go's order; `set=1` takes
 * `key=value` lines, device keys first, then one section per `public_key`.
 *
 * One difference on purpose: a `set` is validated in full before anything is
 * applied, so a bad line leaves the device as it was (wireguard-go applies the
 * lines before the bad one). The answer is the same `errno=N`.
 */
import type { Device, Peer } from './device.js';
import { fromHex, isZero, toHex } from '../util/bytes.js';
import { formatHostPort, formatPrefix, parseIp, parsePrefix, type IpPrefix } from '../util/ip.js';

/** errno values of wireguard-go's ipc package, negated as it prints them. */
export const UapiErrno = {
  IO: -5, // EIO
  PROTOCOL: -71, // EPROTO
  INVALID: -22, // EINVAL
  PORT_IN_USE: -98, // EADDRINUSE
  UNKNOWN: -55,
} as const;

export class UapiError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'UapiError';
  }
}

/** What the protocol needs beyond the Device: the socket-level settings that live in io/. */
export interface UapiHost {
  device: Device;
  listenPort(): number;
  setListenPort(port: number): Promise<void> | void;
  fwmark(): number;
  setFwmark(mark: number): Promise<void> | void;
}

/**
 * The `get=1` answer, without the final `errno=0` line. One string built by appending (V8
 * joins the pieces once, when it is written): 10,000 peers in tens of milliseconds.
 */
export function uapiGet(host: UapiHost): string {
  const d = host.device;
  let out = '';
  const priv = d.privateKey;
  if (priv && !isZero(priv)) out += `private_key=${toHex(priv)}\n`;
  if (host.listenPort() !== 0) out += `listen_port=${host.listenPort()}\n`;
  if (host.fwmark() !== 0) out += `fwmark=${host.fwmark()}\n`;
  for (const p of d.peers()) {
    out += `public_key=${toHex(p.publicKey)}\npreshared_key=${p.presharedKey ? toHex(p.presharedKey) : ZERO_KEY_HEX}\nprotocol_version=1\n`;
    if (p.endpoint) out += `endpoint=${formatHostPort(p.endpoint.address, p.endpoint.port)}\n`;
    const ms = p.lastHandshakeWallMs;
    out += `last_handshake_time_sec=${Math.floor(ms / 1000)}\nlast_handshake_time_nsec=${Math.round((ms % 1000) * 1e6)}\n`;
    out += `tx_bytes=${p.txBytes}\nrx_bytes=${p.rxBytes}\npersistent_keepalive_interval=${p.persistentKeepalive ?? 0}\n`;
    for (const pre of d.allowedIps.prefixesOf(p)) out += `allowed_ip=${formatPrefix(pre)}\n`;
  }
  return out;
}

const ZERO_KEY_HEX = '0'.repeat(64);

interface PeerOp {
  publicKey: Uint8Array;
  remove: boolean;
  updateOnly: boolean;
  presharedKey?: Uint8Array;
  endpoint?: { address: string; port: number };
  persistentKeepalive?: number;
  replaceAllowedIps: boolean;
  addIps: IpPrefix[];
  removeIps: IpPrefix[];
}

interface SetOp {
  privateKey?: Uint8Array;
  listenPort?: number;
  fwmark?: number;
  replacePeers: boolean;
  peers: PeerOp[];
}

function parseKeyHex(v: string, what: string): Uint8Array {
  const k = v.length === 64 ? fromHex(v) : undefined;
  if (!k) throw new UapiError(UapiErrno.INVALID, `${what}: expected 64 hex digits`);
  return k;
}

function parseUint(v: string, max: number, what: string): number {
  if (!/^[0-9]{1,10}$/.test(v)) throw new UapiError(UapiErrno.INVALID, `${what}: expected a number, got '${v}'`);
  const n = Number(v);
  if (n > max) throw new UapiError(UapiErrno.INVALID, `${what}: ${n} is out of range (max ${max})`);
  return n;
}

/** `host:port` or `[v6]:port`, IP literals only (no names at this layer, as wireguard-go). */
export function parseUapiEndpoint(v: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(v) ?? /^([^:]+):([0-9]+)$/.exec(v);
  const addr = m ? parseIp(m[1]!) : undefined;
  if (!m || !addr) throw new UapiError(UapiErrno.INVALID, `endpoint: expected ip:port or [ipv6]:port, got '${v}'`);
  const port = parseUint(m[2]!, 65535, 'endpoint port');
  return { address: m[1]!.replace(/%.*$/, ''), port };
}

/** Parses the body of a `set=1` request (the lines after `set=1`, up to the blank line). */
export function parseUapiSet(body: string): SetOp {
  const op: SetOp = { replacePeers: false, peers: [] };
  let peer: PeerOp | undefined;
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new UapiError(UapiErrno.PROTOCOL, `failed to parse line '${line.slice(0, 80)}'`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'public_key') {
      peer = {
        publicKey: parseKeyHex(value, 'public_key'),
        remove: false,
        updateOnly: false,
        replaceAllowedIps: false,
        addIps: [],
        removeIps: [],
      };
      op.peers.push(peer);
      continue;
    }
    if (!peer) {
      switch (key) {
        case 'private_key':
          op.privateKey = parseKeyHex(value, 'private_key');
          break;
        case 'listen_port':
          op.listenPort = parseUint(value, 65535, 'listen_port');
          break;
        case 'fwmark':
          op.fwmark = parseUint(value, 0xffffffff, 'fwmark');
          break;
        case 'replace_peers':
          if (value !== 'true') throw new UapiError(UapiErrno.INVALID, `replace_peers: expected 'true', got '${value}'`);
          op.replacePeers = true;
          break;
        default:
          throw new UapiError(UapiErrno.INVALID, `invalid UAPI device key: ${key}`);
      }
      continue;
    }
    switch (key) {
      case 'update_only':
      case 'remove':
      case 'replace_allowed_ips':
        if (value !== 'true') throw new UapiError(UapiErrno.INVALID, `${key}: expected 'true', got '${value}'`);
        if (key === 'update_only') peer.updateOnly = true;
        else if (key === 'remove') peer.remove = true;
        else {
          peer.replaceAllowedIps = true;
          peer.addIps = [];
          peer.removeIps = [];
        }
        break;
      case 'preshared_key':
        peer.presharedKey = parseKeyHex(value, 'preshared_key');
        break;
      case 'endpoint':
        peer.endpoint = parseUapiEndpoint(value);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = parseUint(value, 65535, 'persistent_keepalive_interval');
        break;
      case 'allowed_ip': {
        // A leading '-' removes the prefix (wireguard-tools 1.0.20250521 and later).
        const removal = value.startsWith('-');
        const p = parsePrefix(removal ? value.slice(1) : value);
        if (!p || !value.includes('/')) throw new UapiError(UapiErrno.INVALID, `allowed_ip: expected a CIDR prefix, got '${value.slice(0, 80)}'`);
        (removal ? peer.removeIps : peer.addIps).push(p);
        break;
      }
      case 'protocol_version':
        if (value !== '1') throw new UapiError(UapiErrno.INVALID, `invalid protocol version: ${value}`);
        break;
      default:
        throw new UapiError(UapiErrno.INVALID, `invalid UAPI peer key: ${key}`);
    }
  }
  return op;
}

/**
 * Applies a parsed `set`. Unaffected peers keep their sessions; a peer whose
 * persistent keepalive is switched on gets a keepalive at once (as wireguard-go).
 * Returns the peers that should start a handshake now.
 */
export async function applyUapiSet(host: UapiHost, op: SetOp): Promise<Peer[]> {
  const d = host.device;
  const kick: Peer[] = [];
  // A key no peer can have is refused before anything changes (found by test/fuzz: it threw
  // out of addPeer half-way, answered errno=-55 and left the lines before it applied).
  for (const po of op.peers) {
    if (po.remove) continue;
    try {
      d.checkPeerKey(po.publicKey);
    } catch (err) {
      throw new UapiError(UapiErrno.INVALID, (err as Error).message);
    }
  }
  if (op.listenPort !== undefined && op.listenPort !== host.listenPort()) {
    try {
      await host.setListenPort(op.listenPort);
    } catch (err) {
      throw new UapiError(UapiErrno.PORT_IN_USE, `listen_port: ${(err as Error).message}`);
    }
  }
  if (op.fwmark !== undefined) await host.setFwmark(op.fwmark);
  if (op.privateKey) d.setPrivateKey(isZero(op.privateKey) ? undefined : op.privateKey);
  if (op.replacePeers) for (const p of [...d.peers()]) d.removePeer(p.publicKey);
  const ourPub = d.publicKey;
  for (const po of op.peers) {
    // wireguard-go ignores a section for our own public key.
    if (ourPub && equal(ourPub, po.publicKey)) continue;
    let peer = d.getPeer(po.publicKey);
    if (po.remove) {
      if (peer) d.removePeer(po.publicKey);
      continue;
    }
    if (!peer) {
      if (po.updateOnly) continue;
      peer = d.addPeer({ publicKey: po.publicKey });
    }
    const before = peer.persistentKeepalive ?? 0;
    const psk = po.presharedKey;
    d.updatePeer(po.publicKey, {
      ...(psk ? { presharedKey: isZero(psk) ? undefined : psk } : {}),
      ...(po.endpoint ? { endpoint: po.endpoint } : {}),
      ...(po.persistentKeepalive !== undefined ? { persistentKeepalive: po.persistentKeepalive } : {}),
    });
    if (po.replaceAllowedIps) d.allowedIps.removeByValue(peer);
    for (const ip of po.removeIps) {
      if (d.allowedIps.prefixesOf(peer).some((x) => x.bits === ip.bits && equal(x.addr, ip.addr))) d.allowedIps.remove(ip);
    }
    for (const ip of po.addIps) d.allowedIps.insert(ip, peer);
    if (before === 0 && (po.persistentKeepalive ?? 0) > 0 && peer.endpoint) kick.push(peer);
  }
  return kick;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Serves one connection's worth of requests: feed bytes in, get answers out.
 * Requests may be pipelined; a request larger than `maxRequestBytes` is refused.
 */
export class UapiConnection {
  private buf = '';
  /**
   * A set=1 request still open: its chunks so far (from "set=1\n" on), joined once when the
   * blank line comes. Appending to one string and searching it would flatten (copy) the whole
   * request on every chunk: a 16 MiB request cost ~100 MB of garbage that way.
   */
  private parts: string[] | undefined;
  private partsLen = 0;
  private busy: Promise<void> = Promise.resolve();
  closed = false;

  constructor(
    private readonly host: UapiHost,
    private readonly write: (s: string) => void,
    private readonly end: () => void,
    private readonly onKick: (peers: Peer[]) => void = () => {},
    private readonly maxRequestBytes = 64 * 1024 * 1024,
  ) {}

  /** A complete set=1 body (its lines, each ending in a newline): applied in order with the rest. */
  private set(body: string): void {
    this.queue(async () => {
      try {
        const op = parseUapiSet(body);
        this.onKick(await applyUapiSet(this.host, op));
        this.write('errno=0\n\n');
      } catch (err) {
        this.write(`errno=${err instanceof UapiError ? err.errno : UapiErrno.UNKNOWN}\n\n`);
      }
    });
  }

  feed(chunk: string): void {
    if (this.closed) return;
    if (this.parts) {
      // A blank line may straddle two chunks.
      const straddle = this.parts[this.parts.length - 1]!.endsWith('\n') && chunk.startsWith('\n');
      const end = straddle ? 0 : chunk.indexOf('\n\n');
      if (end < 0) {
        this.parts.push(chunk);
        this.partsLen += chunk.length;
        if (this.partsLen > this.maxRequestBytes) {
          this.parts = undefined;
          this.write(`errno=${UapiErrno.INVALID}\n\n`);
          this.close();
        }
        return;
      }
      const whole = this.parts.join('') + (straddle ? '' : chunk.slice(0, end + 1));
      const rest = chunk.slice(straddle ? 1 : end + 2);
      this.parts = undefined;
      this.partsLen = 0;
      this.set(whole.slice(6));
      this.buf = rest;
    } else this.buf += chunk;
    for (;;) {
      if (this.buf.startsWith('get=1\n')) {
        if (this.buf.length < 7) return;
        const ok = this.buf[6] === '\n';
        this.buf = this.buf.slice(ok ? 7 : 6);
        this.queue(async () => {
          if (!ok) return this.write(`errno=${UapiErrno.INVALID}\n\n`);
          this.write(uapiGet(this.host) + 'errno=0\n\n');
        });
        if (!ok) return this.close();
        continue;
      }
      if (this.buf.startsWith('set=1\n')) {
        const end = this.buf.indexOf('\n\n', 5);
        if (end < 0) {
          // Not complete: collect the rest chunk by chunk (see `parts`).
          this.parts = [this.buf];
          this.partsLen = this.buf.length;
          this.buf = '';
          if (this.partsLen > this.maxRequestBytes) {
            this.parts = undefined;
            this.write(`errno=${UapiErrno.INVALID}\n\n`);
            this.close();
          }
          return;
        }
        const body = this.buf.slice(6, end + 1);
        this.buf = this.buf.slice(end + 2);
        this.set(body);
        continue;
      }
      // Not (yet) a known operation: wait for more bytes if it could still become one.
      if ('get=1\n'.startsWith(this.buf) || 'set=1\n'.startsWith(this.buf)) return;
      this.close();
      return;
    }
  }

  private queue(fn: () => Promise<void>): void {
    this.busy = this.busy.then(fn, fn);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.busy.then(() => this.end());
  }
}
