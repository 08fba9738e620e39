/**
 * An HTTP proxy whose connections go through a Dialer: CONNECT tunnels and
 * absolute-URI requests (RFC 9110 §9.3.6, RFC 9112 §3.2.2), optional basic auth
 * (407 + Proxy-Authenticate), 502 on connection errors and 504 on timeouts.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dialer } from './dialer.js';
import { splice, dial, isPort, endWith, dialFailure, hostPort, logRequest, type ProxyLog, type RequestRecord } from './dialer.js';
import type { ProxyStats } from './socks5.js';
import { parseIp } from '../util/ip.js';
import { DEFAULT_LIMITS, zeroLimitCounters, type ListenerLimits, type OnLimit } from './limits.js';

export interface HttpProxyOptions {
  dialer: Dialer;
  auth?: { username: string; password: string };
  /** Each request once, when it ends: `http proxy request` with client, method, target, outcome, error, status, up, down, ms (dialer.ts logRequest), as SOCKS5's. */
  log?: ProxyLog;
  /** Caps (DEFAULT_LIMITS for what is not given): client connections, time to send request headers, header size. */
  limits?: Partial<ListenerLimits>;
  /** Told about every limit hit (after it is counted in stats.limited), e.g. to log it. */
  onLimit?: OnLimit;
}

// RFC 9110 §7.6.1: hop-by-hop fields are not forwarded.
const HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** RFC 9110 §15.6.3/§15.6.5: a name that did not resolve is a 502 (the upstream is unknown), as nginx and Envoy answer it. */
function statusFor(err: NodeJS.ErrnoException): 400 | 502 | 504 {
  const { outcome } = dialFailure(err);
  return outcome === 'timeout' ? 504 : outcome === 'bad-request' ? 400 : 502;
}

/** The answer's body, `bad gateway: dns ENOTFOUND`: says which step failed, with the code dialFailure logs. */
function failureText(err: NodeJS.ErrnoException): string {
  const f = dialFailure(err);
  return `${STATUS_TEXT[statusFor(err)].toLowerCase()}: ${f.outcome === 'dns-failed' ? 'dns ' : ''}${f.error}`;
}

/** The client of a request, `address:port`. */
function clientOf(req: http.IncomingMessage): string {
  return hostPort(req.socket.remoteAddress ?? '', req.socket.remotePort ?? 0);
}
const STATUS_TEXT = { 400: 'Bad Request', 502: 'Bad Gateway', 504: 'Gateway Timeout' } as const;

/**
 * CONNECT's authority-form (RFC 9112 §3.2.3): `name:port`, `a.b.c.d:port` or `[v6]:port`,
 * port 1-65535; anything else is undefined (a 400).
 */
export function parseAuthority(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]{1,253})):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (!isPort(port)) return undefined;
  if (m[1] !== undefined) return parseIp(m[1])?.length === 16 ? { host: m[1], port } : undefined;
  return { host: m[2]!, port };
}

export function createHttpProxyServer(opts: HttpProxyOptions): http.Server & { stats: ProxyStats } {
  const stats: ProxyStats = { connections: 0, failures: 0, bytesUp: 0, bytesDown: 0, limited: zeroLimitCounters() };
  const limits: ListenerLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const hit: OnLimit = (limit, fields) => {
    stats.limited![limit]++;
    opts.onLimit?.(limit, fields);
  };
  const expected = opts.auth ? 'Basic ' + Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64') : undefined;
  const authorized = (req: http.IncomingMessage): boolean => !expected || req.headers['proxy-authorization'] === expected;

  // Exceptions in a request or 'connect' handler are uncaught and would end the process: each is
  // caught here and costs only that client's connection (400 if nothing was sent yet).
  const server = http.createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      // Headers (of every request on a connection) must arrive within the request timeout. Node
      // checks this only every connectionsCheckingInterval (30 s by default, which let slowloris
      // connections live 60-90 s): check often enough that the limit is what is enforced.
      headersTimeout: limits.requestTimeoutMs,
      requestTimeout: 0, // a request body (an upload through the proxy) may take as long as it takes
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.requestTimeoutMs / 10))),
    },
    (req, res) => {
      try {
        onRequest(req, res);
      } catch (err) {
        stats.failures++;
        opts.log?.('info', 'http proxy bad request', { error: (err as Error).message });
        if (!res.headersSent) res.writeHead(400, { connection: 'close' }).end('bad request\n');
        else res.destroy();
      }
    },
  ) as http.Server & { stats: ProxyStats };
  server.stats = stats;
  server.maxConnections = limits.maxConnections;
  server.on('drop', (d?: { remoteAddress?: string }) => hit('connections', { max: limits.maxConnections, client: d?.remoteAddress }));
  // With a listener here Node no longer answers bad requests itself: a request timeout gets 408,
  // oversized headers 431, anything else 400; each closes only that connection.
  server.on('clientError', (err: NodeJS.ErrnoException, sock: Duplex) => {
    let status = '400 Bad Request';
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      hit('requestTimeout', { timeoutMs: limits.requestTimeoutMs });
      status = '408 Request Timeout';
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      hit('headerSize', { max: limits.maxHeaderBytes });
      status = '431 Request Header Fields Too Large';
    } else stats.failures++;
    if (!sock.writable || (sock as net.Socket).bytesWritten > 0) return void sock.destroy(); // as Node does: no answer in the middle of another
    endWith(sock, `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, 1000);
  });

  function onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!authorized(req)) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="wgnet"' }).end('proxy authentication required\n');
      return;
    }
    const rec: RequestRecord = { client: clientOf(req), method: req.method ?? '', target: '', outcome: 'ok', up: 0, down: 0, started: Date.now() };
    let url: URL;
    try {
      url = new URL(req.url ?? '');
      if (url.protocol !== 'http:') throw new Error('only http:// URLs (use CONNECT for https)');
      if (url.port !== '' && !isPort(Number(url.port))) throw new Error('port must be 1-65535');
    } catch (err) {
      res.writeHead(400).end(`bad request: ${(err as Error).message}\n`);
      logRequest(opts.log, 'http proxy', { ...rec, target: (req.url ?? '').slice(0, 100), outcome: 'bad-request', status: 400 });
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    const port = Number(url.port) || 80;
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    // The target is host:port, not the URL: a query string may carry a token, and both proxies log the same field.
    rec.target = hostPort(host, port);
    // Logged once, when the client's response closes: finished ('ok'), cut ('aborted'), or a failed dial.
    res.once('close', () => {
      if (rec.outcome === 'ok' && !res.writableFinished) rec.outcome = 'aborted';
      rec.status = res.statusCode;
      logRequest(opts.log, 'http proxy', rec);
    });
    const up = http.request({
      method: req.method,
      path: url.pathname + url.search,
      headers,
      createConnection: (_o: unknown, cb: (err: Error | null, s: Duplex) => void) => {
        dial(opts.dialer, host, port).then((s) => cb(null, s), (e: Error) => cb(e, undefined as unknown as Duplex));
        return undefined as unknown as net.Socket;
      },
    } as http.RequestOptions);
    up.on('response', (r) => {
      stats.connections++;
      const h: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !HOP.has(k)) h[k] = v;
      res.writeHead(r.statusCode ?? 502, h);
      r.on('data', (d: Buffer) => ((stats.bytesDown += d.length), (rec.down += d.length)));
      r.pipe(res);
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      stats.failures++;
      if (rec.outcome === 'ok') Object.assign(rec, dialFailure(err));
      if (!res.headersSent) res.writeHead(statusFor(err)).end(`${failureText(err)}\n`);
      else res.destroy();
    });
    req.on('data', (d: Buffer) => ((stats.bytesUp += d.length), (rec.up += d.length)));
    req.pipe(up);
  }

  server.on('connect', (req: http.IncomingMessage, sock: Duplex, head: Buffer) => {
    sock.on('error', () => {});
    try {
      onConnect(req, sock, head);
    } catch (err) {
      stats.failures++;
      opts.log?.('info', 'http proxy bad CONNECT', { error: (err as Error).message });
      sock.destroy();
    }
  });

  function onConnect(req: http.IncomingMessage, sock: Duplex, head: Buffer): void {
    if (!authorized(req)) {
      endWith(sock, 'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="wgnet"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const target = parseAuthority(req.url ?? '');
    const rec: RequestRecord = { client: clientOf(req), method: 'CONNECT', target: target ? hostPort(target.host, target.port) : (req.url ?? '').slice(0, 100), outcome: 'ok', up: 0, down: 0, started: Date.now() };
    if (!target) {
      stats.failures++;
      endWith(sock, 'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      logRequest(opts.log, 'http proxy', { ...rec, outcome: 'bad-request', status: 400 });
      return;
    }
    dial(opts.dialer, target.host, target.port).then(
      (up) => {
        stats.connections++;
        sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) up.write(head);
        splice(sock, up, (dir, n) => (dir === 'up' ? ((stats.bytesUp += n), (rec.up += n)) : ((stats.bytesDown += n), (rec.down += n))), {
          ms: limits.idleTimeoutMs,
          onIdle: () => hit('idleTimeout', { timeoutMs: limits.idleTimeoutMs, client: rec.client, target: rec.target }),
        });
        sock.once('close', () => logRequest(opts.log, 'http proxy', { ...rec, status: 200 }));
      },
      (err: NodeJS.ErrnoException) => {
        stats.failures++;
        const code = statusFor(err);
        logRequest(opts.log, 'http proxy', { ...rec, ...dialFailure(err), status: code });
        // The client may have sent bytes after its CONNECT (a TLS hello, say); endWith discards them so its FIN is seen and the socket freed.
        endWith(sock, `HTTP/1.1 ${code} ${STATUS_TEXT[code]}\r\nContent-Length: 0\r\n\r\n`);
      },
    );
  }
  return server;
}
