/**
 * WireGuard message layouts (whitepaper §5.4.2–§5.4.7). All integers are
 * little-endian; bytes 1..3 of every message are reserved and zero.
 */
export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

export const INITIATION_LEN = 148;
export const RESPONSE_LEN = 92;
export const COOKIE_REPLY_LEN = 64;
/** Header (16) + the Poly1305 tag (16) of an empty (keepalive) packet. */
export const TRANSPORT_MIN_LEN = 32;
export const TRANSPORT_HEADER_LEN = 16;

/** Field offsets, declared once. */
export const Initiation = {
  sender: 4,
  ephemeral: 8,
  encStatic: 40, // 32 + 16
  encTimestamp: 88, // 12 + 16
  mac1: 116,
  mac2: 132,
} as const;
export const Response = {
  sender: 4,
  receiver: 8,
  ephemeral: 12,
  encNothing: 44, // 0 + 16
  mac1: 60,
  mac2: 76,
} as const;
export const CookieReply = {
  receiver: 4,
  nonce: 8, // 24
  encCookie: 32, // 16 + 16
} as const;
export const Transport = {
  receiver: 4,
  counter: 8,
  data: 16,
} as const;

/**
 * The type of a well-formed message, or undefined for anything that is not:
 * an unknown type, nonzero reserved bytes, or the wrong length for its type.
 */
export function messageType(d: Uint8Array): number | undefined {
  if (d.length < 4 || d[1] !== 0 || d[2] !== 0 || d[3] !== 0) return undefined;
  switch (d[0]) {
    case MSG_INITIATION:
      return d.length === INITIATION_LEN ? MSG_INITIATION : undefined;
    case MSG_RESPONSE:
      return d.length === RESPONSE_LEN ? MSG_RESPONSE : undefined;
    case MSG_COOKIE_REPLY:
      return d.length === COOKIE_REPLY_LEN ? MSG_COOKIE_REPLY : undefined;
    case MSG_TRANSPORT:
      return d.length >= TRANSPORT_MIN_LEN ? MSG_TRANSPORT : undefined;
    default:
      return undefined;
  }
}

export function readU32(d: Uint8Array, off: number): number {
  return (d[off]! | (d[off + 1]! << 8) | (d[off + 2]! << 16) | (d[off + 3]! << 24)) >>> 0;
}

export function writeU32(d: Uint8Array, off: number, v: number): void {
  d[off] = v & 0xff;
  d[off + 1] = (v >>> 8) & 0xff;
  d[off + 2] = (v >>> 16) & 0xff;
  d[off + 3] = (v >>> 24) & 0xff;
}

/** A 64-bit little-endian counter as a number; exact below 2^53 (see constants.ts). */
export function readU64(d: Uint8Array, off: number): number {
  return readU32(d, off) + readU32(d, off + 4) * 0x100000000;
}

export function writeU64(d: Uint8Array, off: number, v: number): void {
  writeU32(d, off, v >>> 0);
  writeU32(d, off + 4, Math.floor(v / 0x100000000) >>> 0);
}

/** Writes the type byte and zeroes the reserved bytes. */
export function writeHeader(d: Uint8Array, type: number): void {
  d[0] = type;
  d[1] = 0;
  d[2] = 0;
  d[3] = 0;
}
