/**
 * A SOCKS5 server (RFC 1928) whose CONNECTs go through a Dialer (the tunnel),
 * with optional username/password authentication (RFC 1929). Names are resolved
 * by the dialer, so `curl --socks5-hostname` resolves through the tunnel's DNS.
 */
import net from 'node:net';
import type { Dialer } from './dialer.js';
import { splice } from './dialer.js';
import { formatIPv4, formatIPv6, parseIp } from '../util/ip.js';

export interface Socks5Options {
  dialer: Dialer;
  auth?: { username: string; password: string };
  log?: (level: 'info' | 'debug' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  handshakeTimeoutMs?: number;
}

export interface ProxyStats {
  connections: number;
  failures: number;
  bytesUp: number;
  bytesDown: number;
}

// RFC 1928 §6 reply codes.
const REP = { ok: 0, fail: 1, notAllowed: 2, netUnreachable: 3, hostUnreachable: 4, refused: 5, ttlExpired: 6, cmdUnsupported: 7, atypUnsupported: 8 } as const;

function replyFor(err: NodeJS.ErrnoException): number {
  switch (err.code) {
    case 'ECONNREFUSED':
      return REP.refused;
    case 'ENETUNREACH':
      return REP.netUnreachable;
    case 'EHOSTUNREACH':
    case 'ENOTFOUND':
    case 'ETIMEOUT':
      return REP.hostUnreachable;
    case 'ETIMEDOUT':
      return REP.ttlExpired; // what curl and ssh report as "TTL expired" for a connect timeout
    default:
      return REP.fail;
  }
}

export function createSocks5Server(opts: Socks5Options): net.Server & { stats: ProxyStats } {
  const stats: ProxyStats = { connections: 0, failures: 0, bytesUp: 0, bytesDown: 0 };
  const server = net.createServer((c) => handle(c)) as net.Server & { stats: ProxyStats };
  server.stats = stats;

  function handle(c: net.Socket): void {
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'auth' | 'request' | 'done' = 'greeting';
    const timer = setTimeout(() => c.destroy(), opts.handshakeTimeoutMs ?? 10_000);
    c.on('error', () => {});
    const fail = (rep: number): void => {
      stats.failures++;
      c.end(Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]));
      stage = 'done';
      clearTimeout(timer);
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > 1024) return void c.destroy(); // no valid handshake message is this long
      for (;;) {
        if (stage === 'greeting') {
          if (buf.length < 2) return;
          if (buf[0] !== 5) return void c.destroy();
          const n = buf[1]!;
          if (buf.length < 2 + n) return;
          const methods = buf.subarray(2, 2 + n);
          buf = buf.subarray(2 + n);
          const want = opts.auth ? 2 : 0;
          if (!methods.includes(want)) {
            c.end(Buffer.from([5, 0xff]));
            stage = 'done';
            return;
          }
          c.write(Buffer.from([5, want]));
          stage = opts.auth ? 'auth' : 'request';
        } else if (stage === 'auth') {
          // RFC 1929: VER=1, ULEN, UNAME, PLEN, PASSWD.
          if (buf.length < 2) return;
          const ul = buf[1]!;
          if (buf.length < 3 + ul) return;
          const pl = buf[2 + ul]!;
          if (buf.length < 3 + ul + pl) return;
          const user = buf.subarray(2, 2 + ul).toString();
          const pass = buf.subarray(3 + ul, 3 + ul + pl).toString();
          buf = buf.subarray(3 + ul + pl);
          const ok = buf !== undefined && user === opts.auth!.username && pass === opts.auth!.password;
          c.write(Buffer.from([1, ok ? 0 : 1]));
          if (!ok) {
            stats.failures++;
            c.end();
            stage = 'done';
            return;
          }
          stage = 'request';
        } else if (stage === 'request') {
          if (buf.length < 4) return;
          if (buf[0] !== 5) return void c.destroy();
          const cmd = buf[1]!;
          const atyp = buf[3]!;
          let host: string;
          let off: number;
          if (atyp === 1) {
            if (buf.length < 10) return;
            host = formatIPv4(buf, 4);
            off = 8;
          } else if (atyp === 4) {
            if (buf.length < 22) return;
            host = formatIPv6(buf, 4);
            off = 20;
          } else if (atyp === 3) {
            if (buf.length < 5 || buf.length < 5 + buf[4]! + 2) return;
            host = buf.subarray(5, 5 + buf[4]!).toString();
            off = 5 + buf[4]!;
          } else return fail(REP.atypUnsupported);
          const port = buf.readUInt16BE(off);
          buf = buf.subarray(off + 2);
          if (cmd !== 1) return fail(REP.cmdUnsupported); // BIND and UDP ASSOCIATE are not offered yet
          stage = 'done';
          c.off('data', onData);
          c.pause();
          clearTimeout(timer);
          opts.dialer.connect(host, port).then(
            (up) => {
              stats.connections++;
              const bnd = parseIp(up.localAddress ?? '0.0.0.0') ?? new Uint8Array(4);
              const rep = Buffer.alloc(6 + bnd.length);
              rep[0] = 5;
              rep[1] = REP.ok;
              rep[3] = bnd.length === 4 ? 1 : 4;
              rep.set(bnd, 4);
              rep.writeUInt16BE(up.localPort ?? 0, 4 + bnd.length);
              c.write(rep);
              if (buf.length > 0) up.write(buf);
              splice(c, up, (dir, n) => (dir === 'up' ? (stats.bytesUp += n) : (stats.bytesDown += n)));
              c.resume();
              opts.log?.('debug', 'socks5 connect', { host, port });
            },
            (err: NodeJS.ErrnoException) => {
              opts.log?.('info', 'socks5 connect failed', { host, port, error: err.code ?? err.message });
              fail(replyFor(err));
            },
          );
          return;
        } else return;
      }
    };
    c.on('data', onData);
  }
  return server;
}
