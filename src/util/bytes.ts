/** Byte helpers shared by every layer. No allocation on the paths that run per packet. */
import { WgnetError } from './errors.js';

/** Lowercase hex, in native code (`wg show` prints two keys per peer). */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Strict hex decoding: even length, [0-9a-fA-F] only. Returns undefined on bad input. */
export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return undefined;
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

const KEY_LEN = 32;

/**
 * Decodes a 32-byte WireGuard key from base64, as `wg` writes them.
 * The message never includes the key itself (DESIGN §5: secrets are never printed).
 */
export function parseKey(s: string, what = 'key'): Uint8Array {
  const t = s.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) {
    throw new WgnetError('ERR_WGNET_INVALID_KEY', `${what}: expected 32 bytes of base64, got invalid base64`);
  }
  const b = Buffer.from(t, 'base64');
  if (b.length !== KEY_LEN || b.toString('base64') !== t) {
    throw new WgnetError(
      'ERR_WGNET_INVALID_KEY',
      `${what}: expected 32 bytes of base64, got ${b.length === KEY_LEN ? 'a non-canonical encoding' : b.length}`,
    );
  }
  return new Uint8Array(b);
}

/** Constant-time equality (DESIGN §5): the time taken depends only on the lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function isZero(a: Uint8Array): boolean {
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]!;
  return d === 0;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Room reserved around outgoing IP packets so the layers below write in place:
 * 16 bytes of WireGuard transport header before the packet (whitepaper §5.4.6),
 * and 15 bytes of padding plus the 16-byte Poly1305 tag after it.
 * The netstack reserves IP_HEADROOM more for the IP header it writes in front
 * of its transport segments.
 */
export const WG_HEADROOM = 16;
export const WG_TAILROOM = 32;
const IP_HEADROOM = 40; // the larger of IPv4 (20, options never sent) and IPv6 (40)
export const PACKET_HEADROOM = WG_HEADROOM + IP_HEADROOM;

/**
 * Packets are carved from shared zeroed slabs: one ArrayBuffer per packet made V8
 * allocate and track tens of thousands of backing stores a second, and its GC
 * dominated bulk transfers. Slabs are never reused (a slab is freed when its last
 * packet is), so every packet starts zeroed as before, and each keeps its own
 * headroom and tailroom: the lower layers write only inside what was reserved.
 * Outgoing packets live until sent, so a slab is pinned only briefly.
 */
const SLAB_BYTES = 256 * 1024;
let slab = new ArrayBuffer(0);
let slabUsed = 0;

/**
 * Allocates a buffer for an outgoing packet of `len` bytes with the headroom and
 * tailroom the lower layers need, and returns the view of the packet's own bytes.
 */
export function allocPacket(len: number, headroom = PACKET_HEADROOM, tailroom = WG_TAILROOM): Uint8Array {
  const need = headroom + len + tailroom;
  if (need > SLAB_BYTES / 16) return new Uint8Array(new ArrayBuffer(need), headroom, len);
  if (slabUsed + need > slab.byteLength) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const view = new Uint8Array(slab, slabUsed + headroom, len);
  slabUsed += (need + 7) & ~7;
  return view;
}

/**
 * Bytes before and after a view inside its ArrayBuffer. For a packet from
 * allocPacket this is at least what was reserved (a slab has neighbours beyond it),
 * so writers use only WG_HEADROOM / WG_TAILROOM and these only to check for them.
 */
export function headroomOf(b: Uint8Array): number {
  return b.byteOffset;
}
export function tailroomOf(b: Uint8Array): number {
  return b.buffer.byteLength - b.byteOffset - b.byteLength;
}
