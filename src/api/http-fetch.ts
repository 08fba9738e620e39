/**
 * `fetch()` over the tunnel built on `node:http`/`node:https` requests, for runtimes
 * whose `undici` does not honour a dispatcher.
 *
 * Why it exists: Bun replaces the `undici` package with a built-in whose `fetch`
 * ignores the `dispatcher` (and whose `Agent` has no `dispatch`/`destroy`), so an
 * undici-based `tunnel.fetch` silently sent requests out through the host's network.
 * Bun's `node:http` does use an `http.Agent`'s `createConnection`, so here the
 * request goes through agents whose every connection is a tunnel TCP socket (or TLS
 * over one), and each request checks, before a byte of it is written, that the
 * socket it was given is one those agents made. A runtime that bypassed the agent
 * gets `ERR_WGNET_UNSUPPORTED`, never the host network.
 *
 * What it implements of the Fetch standard: method, headers and body from a Request
 * or init (string, bytes, Blob, FormData, URLSearchParams, ReadableStream), default
 * `accept`/`accept-encoding`/`user-agent` as undici sends them, gzip/deflate/br
 * decoding, the body streamed with backpressure, redirects (`follow`, at most 20,
 * 301/302/303 rewrite to GET as §4.4 says, credentials dropped across origins;
 * `manual` returns the 3xx as undici does; `error` rejects), AbortSignal, and
 * `TypeError('fetch failed', { cause })` for network errors as undici.
 * Only http: and https: URLs; anything else (and `integrity`) is refused.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import zlib from 'node:zlib';
import type { Duplex, Readable } from 'node:stream';
import { Agent as UndiciAgent, fetch as undiciFetch, Request, Response, Headers } from 'undici';
import { WgnetError } from '../util/errors.js';
import { parseIp } from '../util/ip.js';

type FetchInput = Parameters<typeof undiciFetch>[0];
type FetchInit = NonNullable<Parameters<typeof undiciFetch>[1]>;

/** Opens a TCP connection through the tunnel (`tunnel.connect`). */
export type TunnelDial = (opts: { host: string; port: number }) => Duplex;

const MAX_REDIRECTS = 20; // Fetch §4.4 step 9
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const REQUEST_BODY_HEADERS = ['content-encoding', 'content-language', 'content-location', 'content-type', 'content-length'];
const CROSS_ORIGIN_DROP = ['authorization', 'proxy-authorization', 'cookie', 'host'];

// --- which path tunnel.fetch takes ---------------------------------------------

let honoursDispatcher: boolean | undefined;

/**
 * Whether this runtime's `undici` sends requests through a dispatcher's `connect`.
 * A feature test, not a runtime name: the real undici's `Agent` has `dispatch` and
 * `destroy`, and its `fetch` is JavaScript that calls them. Bun's built-in `undici`
 * has an `Agent` with neither and a native `fetch` that ignores `dispatcher`.
 */
export function undiciHonoursDispatcher(): boolean {
  if (honoursDispatcher === undefined) {
    let ok = false;
    try {
      const probe = new UndiciAgent({ connect: (_o, cb) => cb(new Error('wgnet probe'), null) }) as Partial<UndiciAgent>;
      ok =
        typeof probe.dispatch === 'function' &&
        typeof probe.destroy === 'function' &&
        !/\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(undiciFetch));
      if (typeof probe.destroy === 'function') probe.destroy().catch(() => {});
    } catch {
      ok = false;
    }
    honoursDispatcher = ok;
  }
  return honoursDispatcher;
}

/**
 * Which implementation `tunnel.fetch` uses: undici with the tunnel's dispatcher when
 * the runtime honours it, else this file's. `WGNET_FETCH=node-http` forces this file's
 * (tests use it on Node); nothing can force undici where it would leak.
 */
export function fetchPath(): 'undici' | 'node-http' {
  if (process.env.WGNET_FETCH === 'node-http') return 'node-http';
  return undiciHonoursDispatcher() ? 'undici' : 'node-http';
}

export function dispatcherUnsupported(): WgnetError {
  return new WgnetError(
    'ERR_WGNET_UNSUPPORTED',
    "tunnel.dispatcher: this runtime's undici ignores a dispatcher's connect (Bun's built-in undici does), so requests made with it would leave through the host network; use tunnel.fetch(), or http.request/https.request with tunnel.httpAgent/tunnel.httpsAgent",
  );
}

// --- the client ------------------------------------------------------------------

/** Keep-alive agents whose connections all come from the tunnel, and fetch() over them. */
export class TunnelHttpClient {
  /** Every socket the agents below made; a request on any other socket is refused. */
  private readonly ours = new WeakSet<object>();
  readonly httpAgent: http.Agent;
  readonly httpsAgent: https.Agent;

  /** `tls` options (`ca`, ...) reach every TLS connection of the https agent. */
  constructor(dial: TunnelDial, tlsOptions?: https.AgentOptions) {
    const ours = this.ours;
    this.httpAgent = new (class extends http.Agent {
      override createConnection(o: http.ClientRequestArgs): Duplex {
        const s = dial({ host: o.hostname ?? o.host ?? 'localhost', port: Number(o.port) || 80 });
        ours.add(s);
        return s;
      }
    })({ keepAlive: true });
    this.httpsAgent = new (class extends https.Agent {
      override createConnection(o: https.RequestOptions & { servername?: string }): Duplex {
        const host = o.hostname ?? o.host ?? 'localhost';
        const raw = dial({ host, port: Number(o.port) || 443 });
        const t = tls.connect({
          ...(o as tls.ConnectionOptions),
          socket: raw,
          servername: o.servername ?? (parseIp(host) ? undefined : host),
          ALPNProtocols: ['http/1.1'],
        });
        ours.add(t);
        return t;
      }
    })({ ...tlsOptions, keepAlive: true });
  }

  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** fetch() over the tunnel; same arguments and result as undici's. */
  async fetch(input: FetchInput, init: FetchInit = {}): Promise<Response> {
    return httpFetch(this, input, init);
  }

  /** @internal */
  isOurs(s: object): boolean {
    return this.ours.has(s);
  }
}

const clients = new WeakMap<object, TunnelHttpClient>();

/** The client of one tunnel (`owner`), made on first use. */
export function httpClientFor(owner: object, dial: TunnelDial): TunnelHttpClient {
  let c = clients.get(owner);
  if (!c) clients.set(owner, (c = new TunnelHttpClient(dial)));
  return c;
}

/** Destroys the client of `owner`, if it has one (tunnel.close). */
export function closeHttpClient(owner: object): void {
  clients.get(owner)?.destroy();
  clients.delete(owner);
}

// --- fetch -----------------------------------------------------------------------

interface Outgoing {
  url: URL;
  method: string;
  headers: Headers;
  /** Bytes (replayable on a 307/308), a stream (not replayable) or none. */
  body: Uint8Array | ReadableStream<Uint8Array> | null;
}

type RequestLike = { url: string; method: string; headers: Headers; body: ReadableStream<Uint8Array> | null; redirect?: string; signal?: AbortSignal };

function isRequestLike(x: unknown): x is RequestLike {
  return typeof x === 'object' && x !== null && !(x instanceof URL) && typeof (x as RequestLike).url === 'string' && typeof (x as RequestLike).method === 'string';
}

function unsupported(what: string): WgnetError {
  return new WgnetError('ERR_WGNET_UNSUPPORTED', `tunnel.fetch on this runtime: ${what} is not supported (requests never fall back to the host network)`);
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

async function httpFetch(client: TunnelHttpClient, input: FetchInput, init: FetchInit): Promise<Response> {
  const base = isRequestLike(input) ? input : undefined;
  if (init.integrity || (base as { integrity?: string } | undefined)?.integrity) throw unsupported('subresource integrity');
  const initBody = init.body;
  const streamed = initBody !== undefined && initBody !== null && (isReadableStream(initBody) || isAsyncIterable(initBody));
  // undici's Request normalises method, headers, the body and its content-type.
  const req = new Request(base ? base.url : String(input), {
    method: init.method ?? base?.method,
    headers: init.headers ?? base?.headers,
    body: initBody !== undefined ? initBody : (base?.body ?? null),
    redirect: init.redirect ?? (base?.redirect as FetchInit['redirect']),
    signal: init.signal ?? base?.signal,
    duplex: 'half',
  } as FetchInit);
  const signal = req.signal;
  if (signal.aborted) throw abortReason(signal);

  let url = new URL(req.url);
  let out: Outgoing = {
    url,
    method: req.method,
    headers: new Headers(req.headers),
    body: req.body === null ? null : streamed ? (req.body as ReadableStream<Uint8Array>) : new Uint8Array(await req.arrayBuffer()),
  };
  const h = out.headers;
  if (!h.has('accept')) h.set('accept', '*/*');
  if (!h.has('accept-language')) h.set('accept-language', '*');
  if (!h.has('user-agent')) h.set('user-agent', 'node');
  if (!h.has('accept-encoding') && !h.has('range')) h.set('accept-encoding', 'gzip, deflate, br');

  for (let redirects = 0; ; redirects++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw unsupported(`the ${url.protocol} scheme`);
    const res = await send(client, out, signal);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (!REDIRECT_STATUSES.has(status) || location === undefined || req.redirect === 'manual') {
      return toResponse(res, out, signal, redirects > 0);
    }
    res.resume(); // drain it so the connection goes back to the pool
    if (req.redirect === 'error') throw new TypeError('fetch failed', { cause: new Error(`unexpected redirect (${status}) with redirect: 'error'`) });
    if (redirects >= MAX_REDIRECTS) throw new TypeError('fetch failed', { cause: new Error('redirect count exceeded') });
    let next: URL;
    try {
      next = new URL(location, url);
    } catch (err) {
      throw new TypeError('fetch failed', { cause: err });
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new TypeError('fetch failed', { cause: new Error(`URL scheme must be a HTTP(S) scheme: ${next.href}`) });
    if (next.username || next.password) throw new TypeError('fetch failed', { cause: new Error('redirect to a URL with credentials') });
    const headers = new Headers(out.headers);
    let { method, body } = out;
    if (((status === 301 || status === 302) && method === 'POST') || (status === 303 && method !== 'GET' && method !== 'HEAD')) {
      method = 'GET';
      body = null;
      for (const name of REQUEST_BODY_HEADERS) headers.delete(name);
    } else if (body !== null && !(body instanceof Uint8Array)) {
      // Fetch §4.4 step 13: a stream body cannot be sent twice.
      throw new TypeError('fetch failed', { cause: new Error(`cannot follow a ${status} redirect with a streamed request body`) });
    }
    if (next.origin !== url.origin) for (const name of CROSS_ORIGIN_DROP) headers.delete(name);
    url = next;
    out = { url, method, headers, body };
  }
}

/** One request/response exchange on a tunnel connection. */
function send(client: TunnelHttpClient, out: Outgoing, signal: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of out.headers) headers[k] = v;
    if (out.body instanceof Uint8Array) headers['content-length'] = String(out.body.byteLength);
    else if (out.body === null && (out.method === 'POST' || out.method === 'PUT')) headers['content-length'] = '0';
    const https_ = out.url.protocol === 'https:';
    const opts: http.RequestOptions = {
      agent: https_ ? client.httpsAgent : client.httpAgent,
      protocol: out.url.protocol,
      hostname: out.url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: out.url.port || (https_ ? 443 : 80),
      path: out.url.pathname + out.url.search,
      method: out.method,
      headers,
    };
    const creq = (https_ ? https.request : http.request)(opts);
    let settled = false;
    const fail = (err: unknown): void => {
      signal.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      reject(err);
    };
    const onAbort = (): void => {
      const reason = abortReason(signal);
      creq.destroy(reason instanceof Error ? reason : undefined);
      fail(reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    creq.on('socket', (s) => {
      if (!client.isOurs(s)) {
        const err = unsupported("a node:http that does not use the agent's connections");
        creq.destroy(err);
        fail(err);
      }
    });
    creq.on('error', (err) => fail(err instanceof WgnetError ? err : new TypeError('fetch failed', { cause: err })));
    creq.on('response', (res) => {
      signal.removeEventListener('abort', onAbort);
      if (settled) return void res.destroy();
      settled = true;
      resolve(res);
    });
    if (out.body === null) creq.end();
    else if (out.body instanceof Uint8Array) creq.end(out.body);
    else void pipeBody(out.body, creq).catch((err: unknown) => creq.destroy(err as Error));
  });
}

async function pipeBody(body: ReadableStream<Uint8Array>, creq: http.ClientRequest): Promise<void> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (creq.destroyed) {
        await reader.cancel();
        return;
      }
      if (!creq.write(value)) await new Promise<void>((r) => creq.once('drain', r).once('close', r));
    }
    creq.end();
  } finally {
    reader.releaseLock();
  }
}

function toResponse(res: http.IncomingMessage, out: Outgoing, signal: AbortSignal, redirected: boolean): Response {
  const status = res.statusCode ?? 0;
  const headers = new Headers();
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  let body: ReadableStream<Uint8Array> | null = null;
  if (out.method === 'HEAD' || NULL_BODY_STATUSES.has(status)) res.resume();
  else body = webStream(decode(res, headers), res, signal);
  let response: Response;
  try {
    response = new Response(body, { status, statusText: res.statusMessage ?? '', headers });
  } catch (err) {
    res.destroy();
    throw new TypeError('fetch failed', { cause: err });
  }
  Object.defineProperty(response, 'url', { value: out.url.href, enumerable: true });
  Object.defineProperty(response, 'redirected', { value: redirected, enumerable: true });
  return response;
}

/** Undoes Content-Encoding as undici does: gzip, deflate (zlib or raw), br, in reverse order; unknown codings stay. */
function decode(res: http.IncomingMessage, headers: Headers): Readable {
  const codings = (headers.get('content-encoding') ?? '')
    .toLowerCase()
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '' && c !== 'identity')
    .reverse();
  const decoders: Duplex[] = [];
  for (const c of codings) {
    if (c === 'gzip' || c === 'x-gzip') decoders.push(zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }));
    else if (c === 'deflate') decoders.push(zlib.createUnzip({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }));
    else if (c === 'br') decoders.push(zlib.createBrotliDecompress());
    else return res;
  }
  let s: Readable = res;
  for (const d of decoders) {
    s.on('error', (err) => d.destroy(err));
    s = s.pipe(d);
  }
  return s;
}

/** A web ReadableStream over a Node stream: pull-driven (backpressure reaches the TCP window), cancel destroys the response. */
function webStream(src: Readable, res: http.IncomingMessage, signal: AbortSignal): ReadableStream<Uint8Array> {
  let onAbort: (() => void) | undefined;
  const cleanup = (): void => {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        let done = false;
        const finish = (err?: unknown): void => {
          if (done) return;
          done = true;
          cleanup();
          if (err === undefined) controller.close();
          else controller.error(err);
        };
        onAbort = () => {
          const reason = abortReason(signal);
          finish(reason);
          res.destroy();
          if (src !== res) src.destroy();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        src.on('data', (chunk: Buffer) => {
          if (done) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) src.pause();
        });
        src.on('end', () => finish());
        src.on('error', (err) => finish(new TypeError('terminated', { cause: err })));
        // The connection closed before the body's end ('aborted' in Node, or a bare 'close').
        res.on('close', () => {
          if (!res.complete) finish(new TypeError('terminated', { cause: new Error('other side closed') }));
        });
      },
      pull() {
        src.resume();
      },
      cancel() {
        cleanup();
        res.destroy();
        if (src !== res) src.destroy();
      },
    },
    { highWaterMark: 64 * 1024, size: (c) => c.byteLength },
  );
}

function isReadableStream(x: unknown): x is ReadableStream {
  return typeof x === 'object' && x !== null && typeof (x as ReadableStream).getReader === 'function';
}

function isAsyncIterable(x: unknown): boolean {
  return typeof x === 'object' && x !== null && typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' && !isReadableStream(x);
}
