/**
 * The host side of a relayed ICMP echo (DESIGN §1: io/relay): one echo request to an
 * address, sent from this host, and whether it was answered.
 *
 * Three paths, the first that opens wins, tried afresh each time a socket is opened (a
 * changed sysctl takes effect without a restart):
 *   - 'pingSocket': a Linux ping socket in the wgnet_udp addon (native/ping.c; icmp(7)),
 *     unprivileged where net.ipv4.ping_group_range holds one of our groups. Root is not
 *     exempt: at the kernel default "1 0" it gets EACCES like everyone else.
 *   - 'rawSocket': a raw ICMP socket (raw(7)), where ping sockets are refused but the process
 *     holds CAP_NET_RAW, as iputils' ping falls back.
 *   - 'pingProcess': the system's `ping`, one process per echo (it may be setuid or carry
 *     cap_net_raw), when the addon is missing or neither socket opens.
 * The first two share one socket per address family while echoes are in flight (closed when
 * none are, so an idle gateway holds no ICMP socket and nothing keeps the process alive).
 * The echo identifier on the wire is the socket's (a ping socket's kernel-chosen "port", or
 * the random identifier of our raw socket), not the peer's: peers choose theirs freely and
 * several may pick the same. Echoes are numbered here instead: the sequence number is ours,
 * unique while in flight, and maps a reply back to its request; the caller answers the peer
 * with the peer's own identifier, sequence and data (RFC 792, RFC 4443 §4.2).
 * A reply counts only from the address pinged and with the data sent, as ping(8) checks.
 */
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { probeAddon } from './native.js';
import { ipEqual, parseIp, type IpAddr } from '../util/ip.js';

export type PingPath = 'pingSocket' | 'rawSocket' | 'pingProcess';

/** unreachable: the host network said so (an ICMP error, or no route at once); unavailable: no path can send at all. */
export type PingFailure = 'timeout' | 'unreachable' | 'unavailable' | 'cancelled';

export type PingOutcome =
  | { ok: true; path: PingPath; note?: string }
  | { ok: false; path: PingPath | undefined; failure: PingFailure; detail: string; note?: string };

/** native/ping.c, on the wgnet_udp addon. */
interface PingAddon {
  pingOpen(family: 4 | 6, raw: boolean, ident: number): { fd: number; ident: number };
  pingSend(fd: number, family: 4 | 6, raw: boolean, ident: number, host: string, seq: number, payload: Uint8Array): string | undefined;
  pingStartReader(
    fd: number,
    family: 4 | 6,
    raw: boolean,
    ident: number,
    cb: (address: string, seq: number, data: Buffer | null, error: string | null, type: number, code: number) => void,
  ): { stop(): void };
  pingClose(fd: number): void;
}

interface Pending {
  dst: IpAddr;
  data: Uint8Array;
  timer: NodeJS.Timeout;
  done: (r: PingOutcome) => void;
}

/** One ICMP socket of one family and the echoes in flight on it, by our sequence number. */
class EchoSocket {
  private readonly pending = new Map<number, Pending>();
  private seq = randomInt(0x10000);
  private readonly reader: { stop(): void };
  private closed = false;

  constructor(
    private readonly addon: PingAddon,
    readonly family: 4 | 6,
    private readonly fd: number,
    readonly raw: boolean,
    private readonly ident: number,
  ) {
    this.reader = addon.pingStartReader(fd, family, raw, ident, (address, seq, data, error) => this.onMessage(address, seq, data, error));
  }

  get path(): PingPath {
    return this.raw ? 'rawSocket' : 'pingSocket';
  }

  send(host: string, dst: IpAddr, data: Uint8Array, timeoutMs: number, note: string | undefined, done: (r: PingOutcome) => void): () => void {
    // Callers bound what is in flight far below 2^16 (the gateway: 64), so a free number is near.
    let seq = (this.seq = (this.seq + 1) & 0xffff);
    while (this.pending.has(seq)) seq = this.seq = (this.seq + 1) & 0xffff;
    const err = this.addon.pingSend(this.fd, this.family, this.raw, this.ident, host, seq, data);
    if (err) {
      // Refused at once (ENETUNREACH: no route; EHOSTUNREACH: an unreachable route; EACCES: a broadcast).
      this.closeIfIdle();
      done({ ok: false, path: this.path, failure: 'unreachable', detail: err, note });
      return noop;
    }
    const p: Pending = {
      dst,
      data: data.slice(), // the caller's view may be reused
      timer: setTimeout(() => this.settle(seq, p, { ok: false, path: this.path, failure: 'timeout', detail: `no reply in ${timeoutMs} ms`, note }), timeoutMs),
      done,
    };
    this.pending.set(seq, p);
    return () => this.settle(seq, p, { ok: false, path: this.path, failure: 'cancelled', detail: 'cancelled', note });
  }

  private onMessage(address: string, seq: number, data: Buffer | null, error: string | null): void {
    const p = this.pending.get(seq);
    if (!p) return; // late (timed out), or a raw socket's view of someone else's echo
    const from = parseIp(address);
    if (!from || !ipEqual(from, p.dst)) return;
    if (error !== null) return this.settle(seq, p, { ok: false, path: this.path, failure: 'unreachable', detail: error });
    if (data && Buffer.compare(data, p.data) === 0) this.settle(seq, p, { ok: true, path: this.path });
  }

  private settle(seq: number, p: Pending, r: PingOutcome): void {
    if (this.pending.get(seq) !== p) return;
    this.pending.delete(seq);
    clearTimeout(p.timer);
    this.closeIfIdle();
    p.done(r);
  }

  private closeIfIdle(): void {
    if (this.pending.size > 0 || this.closed) return;
    this.closed = true;
    if (sockets.get(this.family) === this) sockets.delete(this.family);
    this.reader.stop();
    this.addon.pingClose(this.fd);
  }
}

const sockets = new Map<4 | 6, EchoSocket>();

function noop(): void {}

/** The open socket of `family`, or a new one, or why neither kind opens here (for the one-time warning). */
function socketFor(family: 4 | 6): EchoSocket | string {
  const open = sockets.get(family);
  if (open) return open;
  if (process.env.WGNET_PING === 'process') return 'WGNET_PING=process';
  const probe = probeAddon<Partial<PingAddon>>('wgnet_udp');
  if (!probe.ok) return `the ICMP socket addon is unavailable: ${probe.reason}`;
  const addon = probe.addon;
  if (typeof addon.pingOpen !== 'function') return `the addon at ${probe.path} predates ICMP sockets: run 'npm run build:native'`;
  const full = addon as PingAddon;
  const errors: string[] = [];
  for (const raw of [false, true]) {
    try {
      const s = full.pingOpen(family, raw, raw ? randomInt(1, 0x10000) : 0);
      const sock = new EchoSocket(full, family, s.fd, raw, s.ident);
      sockets.set(family, sock);
      return sock;
    } catch (err) {
      errors.push(`${raw ? 'raw ICMP sockets' : 'ping sockets'}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return `ICMP sockets are refused (${errors.join('; ')}; ${pingGroupHint()})`;
}

/** What to change so ping sockets open: icmp(7), net.ipv4.ping_group_range. */
function pingGroupHint(): string {
  let range = '?';
  try {
    range = readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().replace(/\s+/, ' ');
  } catch {
    // not Linux, or no /proc: the hint stays generic
  }
  const gid = typeof process.getgid === 'function' ? process.getgid() : '?';
  return `net.ipv4.ping_group_range is "${range}" and our group is ${gid}: e.g. sysctl -w net.ipv4.ping_group_range="0 2147483647", or give the process CAP_NET_RAW`;
}

/**
 * One echo to `address` (an IP literal) carrying `data`, answered or not within `timeoutMs`.
 * `done` is called exactly once (possibly before this returns); the result says which path
 * carried the echo and, when the sockets could not be used, why (`note`). Returns a cancel
 * function: a cancelled echo settles at once with failure 'cancelled'.
 */
export function pingHost(address: string, data: Uint8Array, timeoutMs: number, done: (r: PingOutcome) => void): () => void {
  const dst = parseIp(address);
  if (!dst) {
    done({ ok: false, path: undefined, failure: 'unavailable', detail: `not an IP address: ${address}` });
    return noop;
  }
  const s = socketFor(dst.length === 4 ? 4 : 6);
  if (typeof s !== 'string') return s.send(address, dst, data, timeoutMs, undefined, done);
  return pingProcess(address, data.length, timeoutMs, s, done);
}

let pingMissing = false;

/**
 * The fallback: the system's `ping` (iputils: a ping socket where allowed, else its raw-socket
 * capability), one process per echo. It sends its own pattern of `size` bytes, not the peer's
 * data; only whether a reply came is taken from it. Exit status 0: answered; 1: no reply, and
 * an ICMP error if its summary counts "+N errors"; otherwise it could not ping.
 */
function pingProcess(address: string, size: number, timeoutMs: number, note: string, done: (r: PingOutcome) => void): () => void {
  if (pingMissing) {
    done({ ok: false, path: 'pingProcess', failure: 'unavailable', detail: 'no `ping` on PATH (Debian package iputils-ping)', note });
    return noop;
  }
  const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
  const p = spawn('ping', ['-n', '-q', '-c', '1', '-W', String(secs), '-s', String(Math.min(Math.max(size, 0), 1400)), address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let settled = false;
  const finish = (r: PingOutcome): void => {
    if (settled) return; // a failed spawn emits 'error' and may still emit 'close'
    settled = true;
    clearTimeout(guard);
    done(r);
  };
  // ping's own -W bounds it; this only covers a ping that ignores it.
  const guard = setTimeout(() => {
    p.kill('SIGKILL');
    finish({ ok: false, path: 'pingProcess', failure: 'timeout', detail: `no reply in ${timeoutMs} ms`, note });
  }, timeoutMs + 2000);
  guard.unref();
  const collect = (d: Buffer): void => {
    if (out.length < 2000) out += d.toString();
  };
  p.stdout.on('data', collect);
  p.stderr.on('data', collect);
  p.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') pingMissing = true;
    finish({ ok: false, path: 'pingProcess', failure: 'unavailable', detail: e.code === 'ENOENT' ? 'no `ping` on PATH (Debian package iputils-ping)' : e.message, note });
  });
  p.on('close', (code) => {
    if (code === 0) return finish({ ok: true, path: 'pingProcess', note });
    const line = out.trim().split('\n').find((l) => /error|unreachable|denied|not permitted/i.test(l)) ?? `exit ${code}`;
    if (code === 1) finish({ ok: false, path: 'pingProcess', failure: /\+\d+ errors?/.test(out) ? 'unreachable' : 'timeout', detail: line, note });
    else finish({ ok: false, path: 'pingProcess', failure: /not permitted|denied|operation not/i.test(out) ? 'unavailable' : 'unreachable', detail: line, note });
  });
  return () => {
    p.kill('SIGKILL');
    finish({ ok: false, path: 'pingProcess', failure: 'cancelled', detail: 'cancelled', note });
  };
}
