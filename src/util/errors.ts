/**
 * Errors for misuse by the local program (DESIGN §5). Network input never throws;
 * it is dropped and counted. Every error carries a stable `code` so callers can
 * branch on it, and a message that says what to fix.
 */
export type WgnetErrorCode =
  | 'ERR_WGNET_INVALID_ARGUMENT'
  | 'ERR_WGNET_INVALID_KEY'
  | 'ERR_WGNET_CONFIG'
  | 'ERR_WGNET_CLOSED'
  | 'ERR_WGNET_UNSUPPORTED'
  | 'ERR_WGNET_IN_USE'
  | 'ERR_WGNET_CRYPTO'
  | 'ERR_WGNET_UAPI'
  /** A native addon (native/*.c) failed inside an N-API call or libuv. */
  | 'ERR_WGNET_NATIVE'
  /** tunnel.ready(): no handshake with the peer(s) in time; the message says which and what was tried. */
  | 'ERR_WGNET_NO_HANDSHAKE'
  | 'ERR_WGNET_INTERNAL';

/** Every code, so a code that arrives at run time (from a native addon) can be checked; the type keeps it complete. */
const WGNET_ERROR_CODES: Readonly<Record<WgnetErrorCode, true>> = {
  ERR_WGNET_INVALID_ARGUMENT: true,
  ERR_WGNET_INVALID_KEY: true,
  ERR_WGNET_CONFIG: true,
  ERR_WGNET_CLOSED: true,
  ERR_WGNET_UNSUPPORTED: true,
  ERR_WGNET_IN_USE: true,
  ERR_WGNET_CRYPTO: true,
  ERR_WGNET_UAPI: true,
  ERR_WGNET_NATIVE: true,
  ERR_WGNET_NO_HANDSHAKE: true,
  ERR_WGNET_INTERNAL: true,
};

export function isWgnetErrorCode(code: unknown): code is WgnetErrorCode {
  return typeof code === 'string' && Object.hasOwn(WGNET_ERROR_CODES, code);
}

export class WgnetError extends Error {
  readonly code: WgnetErrorCode;
  constructor(code: WgnetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WgnetError';
    this.code = code;
  }
}

export function invalidArgument(message: string): WgnetError {
  return new WgnetError('ERR_WGNET_INVALID_ARGUMENT', message);
}

/**
 * A Node-style system error (ECONNREFUSED, ETIMEDOUT, ...) as `net.Socket`
 * produces, so existing code that checks `err.code` keeps working.
 */
interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
}

/** errno values as Linux defines them; Node reports them negated. */
const ERRNO: Readonly<Record<string, number>> = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EEXIST: 17,
  EINVAL: 22,
  EMSGSIZE: 90,
  EPROTO: 71,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EPIPE: 32,
  ENOTFOUND: 0,
};

export function systemError(
  code: string,
  syscall: string,
  address?: string,
  port?: number,
): SystemError {
  const where = address === undefined ? '' : port === undefined ? ` ${address}` : ` ${address}:${port}`;
  const err = new Error(`${syscall} ${code}${where}`) as SystemError;
  err.code = code;
  err.errno = -(ERRNO[code] ?? 0);
  err.syscall = syscall;
  if (address !== undefined) err.address = address;
  if (port !== undefined) err.port = port;
  return err;
}
