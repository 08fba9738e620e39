/**
 * `remoteAddress`, `remotePort`, `remoteFamily` (and the local ones) of a `tls.TLSSocket` that
 * runs over a tunnel socket: an https or tls server fed our sockets (`server.emit('connection',
 * sock)`), or `tls.connect({ socket })`.
 *
 * Why they were undefined: a TLSSocket wraps a stream that is not a `net.Socket` with a native
 * handle in a JSStreamSocket (lib/internal/js_stream_socket.js), whose handle, a JSStream, becomes
 * the TLSWrap's `_parent` (lib/_tls_wrap.js, `_wrapHandle`). `net.Socket`'s `remoteAddress`
 * getter reads `this._handle.getpeername(out)` (lib/net.js, `_getpeername`), and TLSWrap's
 * `getpeername` forwards to `_parent.getpeername` if it exists. A JSStream has none (Node 20-24),
 * so the answer is `{}`, cached, and every field undefined.
 *
 * What this does: gives the JSStream prototype the `getpeername`/`getsockname` it lacks, which
 * fill `out` as a TCPWrap does ({ address, family: 'IPv4' | 'IPv6', port }, return 0) when the
 * wrapped stream is one of ours, and otherwise return UV_ENOTCONN, which `_getpeername` reads as
 * "no address" exactly as before. The JSStreamSocket is the handle's owner (Node's
 * `owner_symbol`) and keeps the wrapped stream as `.stream`. Installed once, on the first tunnel
 * socket, from a throwaway TLSSocket; where a runtime has no such structure (not Node), nothing is
 * patched and the fields stay undefined, as before.
 */
import tls from 'node:tls';
import { Duplex } from 'node:stream';

/** libuv's UV_ENOTCONN, as a TCPWrap's getpeername returns it for a socket with no peer. */
const UV_ENOTCONN = -107;

type AddressOut = { address?: string; family?: string; port?: number };
type PeerSource = { remoteAddress?: string; remotePort?: number; remoteFamily?: string; localAddress?: string; localPort?: number; localFamily?: string };

let installed = false;

/** Makes TLSSockets over instances of `streamClass` report their addresses; idempotent. */
export function installTlsPeerInfo(streamClass: abstract new (...args: never[]) => PeerSource): void {
  if (installed) return;
  installed = true;
  let probe: tls.TLSSocket | undefined;
  try {
    probe = new tls.TLSSocket(new Duplex({ read() {}, write: (_c, _e, cb) => cb() }));
    probe.on('error', () => {}); // a runtime whose TLSSocket does try to start must not crash the process
    const handle = (probe as unknown as { _handle?: { _parent?: object } })._handle?._parent;
    if (!handle) return;
    const owner = Object.getOwnPropertySymbols(handle).find((s) => s.description === 'owner_symbol');
    const proto = Object.getPrototypeOf(handle) as Record<string, unknown>;
    if (!owner || proto.constructor?.name !== 'JSStream' || 'getpeername' in proto || 'getsockname' in proto) return;
    const ours = (h: object): PeerSource | undefined => {
      const stream = ((h as Record<symbol, { stream?: unknown } | undefined>)[owner])?.stream;
      return stream instanceof streamClass ? stream : undefined;
    };
    Object.defineProperty(proto, 'getpeername', {
      configurable: true,
      writable: true,
      value(this: object, out: AddressOut): number {
        const s = ours(this);
        if (s?.remoteAddress === undefined) return UV_ENOTCONN;
        out.address = s.remoteAddress;
        out.family = s.remoteFamily;
        out.port = s.remotePort;
        return 0;
      },
    });
    Object.defineProperty(proto, 'getsockname', {
      configurable: true,
      writable: true,
      value(this: object, out: AddressOut): number {
        const s = ours(this);
        if (s?.localAddress === undefined) return UV_ENOTCONN;
        out.address = s.localAddress;
        out.family = s.localFamily;
        out.port = s.localPort;
        return 0;
      },
    });
  } catch {
    // Another runtime's tls: leave it as it is.
  } finally {
    probe?.destroy();
  }
}
