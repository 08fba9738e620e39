/**
 * A SOCKS5 server (RFC 1928) whose CONNECTs and UDP ASSOCIATEs go through a
 * Dialer (the tunnel), with optional username/password authentication
 * (RFC 1929). Names are resolved by the dialer, so `curl --socks5-hostname`
 * resolves through the tunnel's DNS.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import type { Dialer, DatagramSocket } from './dialer.js';
import { splice, dial, isPort, endWith, dialFailure, isDnsFailure, hostPort, logRequest, type ProxyLog } from './dialer.js';
import { formatIPv4, formatIPv6, parseIp } from '../util/ip.js';
import { DEFAULT_LIMITS, zeroLimitCounters, type LimitCounters, type ListenerLimits, type OnLimit } from './limits.js';

export interface Socks5Options {
  dialer: Dialer;
  auth?: { username: string; password: string };
  /** Each request once, when it ends: `socks5 request` with client, method, target, outcome, error, up, down, ms (dialer.ts logRequest). */
  log?: ProxyLog;
  /** Old name of limits.requestTimeoutMs. */
  handshakeTimeoutMs?: number;
  /** Caps (DEFAULT_LIMITS for what is not given): client connections, request phase, UDP associations. */
  limits?: Partial<ListenerLimits>;
  /** Told about every limit hit (after it is counted in stats.limited), e.g. to log it. */
  onLimit?: OnLimit;
}

export interface ProxyStats {
  connections: number;
  failures: number;
  bytesUp: number;
  bytesDown: number;
  /** UDP ASSOCIATE: associations opened, datagrams relayed each way, datagrams dropped (fragmented, bad header, wrong sender). */
  udpAssociations?: number;
  udpUp?: number;
  udpDown?: number;
  udpDropped?: number;
  /** Clients refused or cut by a limit, per limit. */
  limited?: LimitCounters;
}

// RFC 1928 §6 reply codes.
const REP = { ok: 0, fail: 1, notAllowed: 2, netUnreachable: 3, hostUnreachable: 4, refused: 5, ttlExpired: 6, cmdUnsupported: 7, atypUnsupported: 8 } as const;

function replyFor(err: NodeJS.ErrnoException): number {
  // A name that did not resolve, whatever the resolver's code (it says ECONNREFUSED for an
  // unreachable DNS server): the host is unreachable, not refusing (RFC 1928 §6, X'04').
  if (isDnsFailure(err)) return REP.hostUnreachable;
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
    case 'ERR_WGNET_INVALID_ARGUMENT':
      return REP.fail; // port 0, an empty or oversized name: RFC 1928 has no "bad request" reply
    default:
      return REP.fail;
  }
}

export function createSocks5Server(opts: Socks5Options): net.Server & { stats: ProxyStats } {
  const stats: ProxyStats = { connections: 0, failures: 0, bytesUp: 0, bytesDown: 0, udpAssociations: 0, udpUp: 0, udpDown: 0, udpDropped: 0, limited: zeroLimitCounters() };
  const limits: ListenerLimits = { ...DEFAULT_LIMITS, ...(opts.handshakeTimeoutMs ? { requestTimeoutMs: opts.handshakeTimeoutMs } : {}), ...opts.limits };
  const hit: OnLimit = (limit, fields) => {
    stats.limited![limit]++;
    opts.onLimit?.(limit, fields);
  };
  // Half-open allowed, as for forward -L: a CONNECT client may shut its write side and still read the answer.
  const server = net.createServer({ allowHalfOpen: true }, (c) => handle(c)) as net.Server & { stats: ProxyStats };
  server.stats = stats;
  // Over the cap, Node closes the new connection before any handler runs and emits 'drop'.
  server.maxConnections = limits.maxConnections;
  server.on('drop', (d?: { remoteAddress?: string }) => hit('connections', { max: limits.maxConnections, client: d?.remoteAddress }));
  let associations = 0;

  function handle(c: net.Socket): void {
    const started = Date.now();
    const client = hostPort(c.remoteAddress ?? '', c.remotePort ?? 0);
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'auth' | 'request' | 'done' = 'greeting';
    // The greeting, authentication and request must all arrive within the request timeout (slowloris).
    const timer = setTimeout(() => {
      hit('requestTimeout', { timeoutMs: limits.requestTimeoutMs, client: c.remoteAddress });
      c.destroy();
    }, limits.requestTimeoutMs);
    c.on('error', () => {});
    /** The last answer: our side ends, whatever the client still sends is discarded, and the socket is freed (endWith). */
    const finish = (answer: Buffer): void => {
      stage = 'done';
      clearTimeout(timer);
      c.off('data', onData);
      endWith(c, answer);
    };
    const fail = (rep: number): void => {
      stats.failures++;
      finish(Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]));
    };
    // Any exception on this path would be uncaught (a socket 'data' handler) and end the process: one bad client must cost only its own connection.
    const onData = (d: Buffer): void => {
      try {
        parse(d);
      } catch (err) {
        opts.log?.('info', 'socks5 bad request', { error: (err as Error).message });
        stats.failures++;
        c.destroy();
      }
    };
    const parse = (d: Buffer): void => {
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
          if (!methods.includes(want)) return finish(Buffer.from([5, 0xff]));
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
          if (!ok) {
            stats.failures++;
            return finish(Buffer.from([1, 1]));
          }
          c.write(Buffer.from([1, 0]));
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
          if (cmd === 3) {
            stage = 'done';
            clearTimeout(timer);
            c.off('data', onData);
            associate(c, host, port, fail, started, client);
            return;
          }
          if (cmd !== 1) return fail(REP.cmdUnsupported); // BIND (2) is not offered: nothing on a tunnel would connect back to it
          const target = hostPort(host, port);
          if (!isPort(port)) {
            logRequest(opts.log, 'socks5', { client, method: 'CONNECT', target, outcome: 'bad-request', up: 0, down: 0, started });
            return fail(REP.fail); // port 0: nothing to connect to
          }
          stage = 'done';
          c.off('data', onData);
          c.pause();
          clearTimeout(timer);
          dial(opts.dialer, host, port).then(
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
              let bytesUp = 0;
              let bytesDown = 0;
              splice(c, up, (dir, n) => (dir === 'up' ? ((stats.bytesUp += n), (bytesUp += n)) : ((stats.bytesDown += n), (bytesDown += n))), {
                ms: limits.idleTimeoutMs,
                onIdle: () => hit('idleTimeout', { timeoutMs: limits.idleTimeoutMs, client, target }),
              });
              c.once('close', () => logRequest(opts.log, 'socks5', { client, method: 'CONNECT', target, outcome: 'ok', up: bytesUp, down: bytesDown, started }));
              c.resume();
            },
            (err: NodeJS.ErrnoException) => {
              logRequest(opts.log, 'socks5', { client, method: 'CONNECT', target, ...dialFailure(err), up: 0, down: 0, started });
              fail(replyFor(err));
            },
          );
          return;
        } else return;
      }
    };
    c.on('data', onData);
    // Half-open connections are allowed (for CONNECT), so a client that gives up before its
    // request is complete would otherwise hold its connection until the request timeout.
    c.on('end', () => {
      if (stage === 'done') return;
      clearTimeout(timer);
      c.destroy();
    });
  }

  /**
   * UDP ASSOCIATE (RFC 1928 §7): a UDP relay on the address the client reached
   * us on. Datagrams from the client carry the SOCKS UDP header (RSV, FRAG,
   * ATYP, DST.ADDR, DST.PORT) and go out through the dialer's UDP sockets; the
   * answers come back with the header naming their source. Only the client's
   * host may use the relay (and only its announced port, if it gave one); the
   * first sender's port is then pinned. FRAG != 0 is dropped: fragmentation is
   * optional and clients do not rely on it. The association ends with the TCP
   * control connection (§7: "terminates when the TCP connection ... terminates").
   */
  function associate(c: net.Socket, host: string, port: number, fail: (rep: number) => void, started: number, client: string): void {
    if (!opts.dialer.udp || !c.localAddress || !c.remoteAddress) return fail(REP.cmdUnsupported);
    if (associations >= limits.maxUdpFlows) {
      hit('udpFlows', { max: limits.maxUdpFlows, client: c.remoteAddress });
      return fail(REP.fail);
    }
    associations++;
    const clientIp = normalizeIp(c.remoteAddress);
    let clientPort = port; // 0: not known yet
    const relay = dgram.createSocket(net.isIPv6(c.localAddress) && !c.localAddress.startsWith('::ffff:') ? 'udp6' : 'udp4');
    const out = new Map<4 | 6, DatagramSocket>();
    let closed = false;
    let bytesUp = 0;
    let bytesDown = 0;
    const close = (): void => {
      if (closed) return;
      closed = true;
      associations--;
      // RFC 1928 §7: DST.ADDR/DST.PORT of an ASSOCIATE name where the client will send from.
      logRequest(opts.log, 'socks5', { client, method: 'UDP ASSOCIATE', target: hostPort(host, port), outcome: 'ok', up: bytesUp, down: bytesDown, started });
      relay.close();
      for (const s of out.values()) s.close();
      c.destroy();
    };
    const drop = (): void => void (stats.udpDropped! += 1);
    const upstream = (family: 4 | 6): DatagramSocket => {
      let s = out.get(family);
      if (!s) {
        s = opts.dialer.udp!(family);
        s.on('error', () => {}); // ICMP errors for one destination must not end the association
        s.on('message', (msg, rinfo) => {
          if (closed || clientPort === 0) return;
          const addr = parseIp(rinfo.address);
          if (!addr) return drop();
          const hdr = Buffer.alloc(4 + addr.length + 2);
          hdr[3] = addr.length === 4 ? 1 : 4;
          hdr.set(addr, 4);
          hdr.writeUInt16BE(rinfo.port, 4 + addr.length);
          stats.udpDown! += 1;
          bytesDown += msg.length;
          relay.send([hdr, msg], clientPort, clientIp);
        });
        out.set(family, s);
      }
      return s;
    };
    relay.on('error', close);
    relay.on('message', (msg, rinfo) => {
      if (normalizeIp(rinfo.address) !== clientIp || (clientPort !== 0 && rinfo.port !== clientPort)) return drop();
      const d = parseUdpHeader(msg);
      if (!d || d.frag !== 0) return drop();
      clientPort = rinfo.port;
      stats.udpUp! += 1;
      bytesUp += d.data.length;
      const family = d.atyp === 4 ? 6 : 4; // names resolve to IPv4, as curl's socks5h UDP does
      upstream(family).send(d.data, d.port, d.host, () => {});
    });
    relay.bind(0, c.localAddress, () => {
      if (closed) return;
      stats.udpAssociations! += 1;
      const a = relay.address();
      const bnd = parseIp(a.address) ?? new Uint8Array(4);
      const rep = Buffer.alloc(6 + bnd.length);
      rep[0] = 5;
      rep[1] = REP.ok;
      rep[3] = bnd.length === 4 ? 1 : 4;
      rep.set(bnd, 4);
      rep.writeUInt16BE(a.port, 4 + bnd.length);
      c.write(rep);
      opts.log?.('debug', 'socks5 udp associate', { client: `${clientIp}:${clientPort}`, relay: a.port });
    });
    // Anything more on the control connection is a protocol error; its end ends the association.
    c.on('data', () => c.destroy());
    // RFC 1928 §7: the association ends with its TCP connection; the client's FIN is that end
    // (the server allows half-open connections for CONNECT, so 'close' alone would wait).
    c.on('end', close);
    c.on('close', close);
  }
  return server;
}

/** An IPv4-mapped IPv6 address in its IPv4 form, so both spellings of one host compare equal. */
function normalizeIp(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** The RFC 1928 §7 UDP request header, or undefined if malformed. */
function parseUdpHeader(b: Buffer): { frag: number; atyp: number; host: string; port: number; data: Buffer } | undefined {
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0) return undefined;
  const frag = b[2]!;
  const atyp = b[3]!;
  let host: string;
  let off: number;
  if (atyp === 1) {
    if (b.length < 10) return undefined;
    host = formatIPv4(b, 4);
    off = 8;
  } else if (atyp === 4) {
    if (b.length < 22) return undefined;
    host = formatIPv6(b, 4);
    off = 20;
  } else if (atyp === 3) {
    const n = b[4] ?? 0;
    if (n === 0 || b.length < 5 + n + 2) return undefined;
    host = b.subarray(5, 5 + n).toString();
    off = 5 + n;
  } else return undefined;
  return { frag, atyp, host, port: b.readUInt16BE(off), data: b.subarray(off + 2) };
}
