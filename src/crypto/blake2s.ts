/**
 * BLAKE2s (RFC 7693), the hash under every WireGuard handshake step (whitepaper §5.4):
 * HASH, MAC and, through HMAC, the KDF chain. A responder runs about forty compressions
 * per handshake, so this one is written for V8: one reusable state, the sixteen working
 * words in locals, the message words read straight from a little-endian view, and no
 * allocation per call. A general-purpose library spent more time per call in setup than
 * in compression (about 7 µs for a one-block hash; this takes well under 1 µs).
 */

/** The initial chaining value: the SHA-256 IV (RFC 7693 §2.6). */
const IV = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);

/** Message word schedule, one row of sixteen per round (RFC 7693 §2.7); BLAKE2s has ten rounds. */
// prettier-ignore
const SIGMA = Uint8Array.of(
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
  11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
  7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
  9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
  2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
  12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
  13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
  6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
  10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
);

const BLOCK = 64;
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** An incremental BLAKE2s: init, update as often as needed, then digest. Reusable after digest. */
export class Blake2s {
  private readonly h = new Uint32Array(8);
  private readonly block = new Uint8Array(BLOCK);
  private readonly words = new Uint32Array(this.block.buffer);
  private readonly m = new Uint32Array(16);
  private fill = 0;
  /** Bytes compressed so far (the counter t of §2.4); messages here are far below 2^53. */
  private t = 0;
  private outLen = 32;

  /** Starts a hash of `outLen` bytes (1-32), keyed when `key` (at most 32 bytes) is given (§2.5). */
  init(outLen = 32, key?: Uint8Array): this {
    const keyLen = key ? key.length : 0;
    if (outLen < 1 || outLen > 32 || keyLen > 32) throw new RangeError('BLAKE2s: output 1-32 bytes, key at most 32 bytes');
    this.h.set(IV);
    this.h[0] = this.h[0]! ^ 0x01010000 ^ (keyLen << 8) ^ outLen;
    this.outLen = outLen;
    this.t = 0;
    this.fill = 0;
    if (key && keyLen > 0) {
      // The key, zero-padded, is the first block (§3.3).
      this.block.fill(0);
      this.block.set(key);
      this.fill = BLOCK;
    }
    return this;
  }

  update(data: Uint8Array): this {
    let off = 0;
    const n = data.length;
    while (off < n) {
      // The last block is compressed with the final flag, so a full block waits for more input.
      if (this.fill === BLOCK) {
        this.t += BLOCK;
        this.compress(false);
        this.fill = 0;
      }
      const take = Math.min(BLOCK - this.fill, n - off);
      this.block.set(take === n ? data : data.subarray(off, off + take), this.fill);
      this.fill += take;
      off += take;
    }
    return this;
  }

  /** Writes the digest to `out` (or a new array) and leaves the state to be re-initialised. */
  digest(out: Uint8Array = new Uint8Array(this.outLen)): Uint8Array {
    this.t += this.fill;
    this.block.fill(0, this.fill);
    this.compress(true);
    const h = this.h;
    for (let i = 0; i < this.outLen; i++) out[i] = (h[i >>> 2]! >>> (8 * (i & 3))) & 0xff;
    // The chaining value of a keyed hash is derived from the key: do not leave it behind.
    h.fill(0);
    this.block.fill(0);
    return out;
  }

  /** F of §3.2: ten rounds of G over the working vector, then the feed-forward into h. */
  private compress(last: boolean): void {
    const h = this.h;
    let m = this.words;
    if (!LITTLE_ENDIAN) {
      m = this.m;
      const b = this.block;
      for (let i = 0; i < 16; i++) m[i] = b[4 * i]! | (b[4 * i + 1]! << 8) | (b[4 * i + 2]! << 16) | (b[4 * i + 3]! << 24);
    }
    let v0 = h[0]! | 0, v1 = h[1]! | 0, v2 = h[2]! | 0, v3 = h[3]! | 0;
    let v4 = h[4]! | 0, v5 = h[5]! | 0, v6 = h[6]! | 0, v7 = h[7]! | 0;
    let v8 = IV[0]! | 0, v9 = IV[1]! | 0, v10 = IV[2]! | 0, v11 = IV[3]! | 0;
    let v12 = (IV[4]! ^ this.t) | 0;
    let v13 = (IV[5]! ^ Math.floor(this.t / 0x100000000)) | 0;
    let v14 = (last ? ~IV[6]! : IV[6]!) | 0;
    let v15 = IV[7]! | 0;
    for (let r = 0; r < 160; r += 16) {
      // G(a, b, c, d, x, y) of §3.1 with rotations 16, 12, 8, 7, written out for each of the
      // four columns and then the four diagonals.
      v0 = (v0 + v4 + m[SIGMA[r]!]!) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16);
      v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
      v0 = (v0 + v4 + m[SIGMA[r + 1]!]!) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24);
      v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);

      v1 = (v1 + v5 + m[SIGMA[r + 2]!]!) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16);
      v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
      v1 = (v1 + v5 + m[SIGMA[r + 3]!]!) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24);
      v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);

      v2 = (v2 + v6 + m[SIGMA[r + 4]!]!) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16);
      v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
      v2 = (v2 + v6 + m[SIGMA[r + 5]!]!) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24);
      v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);

      v3 = (v3 + v7 + m[SIGMA[r + 6]!]!) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16);
      v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
      v3 = (v3 + v7 + m[SIGMA[r + 7]!]!) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24);
      v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);

      v0 = (v0 + v5 + m[SIGMA[r + 8]!]!) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16);
      v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
      v0 = (v0 + v5 + m[SIGMA[r + 9]!]!) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24);
      v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);

      v1 = (v1 + v6 + m[SIGMA[r + 10]!]!) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16);
      v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
      v1 = (v1 + v6 + m[SIGMA[r + 11]!]!) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24);
      v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);

      v2 = (v2 + v7 + m[SIGMA[r + 12]!]!) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16);
      v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
      v2 = (v2 + v7 + m[SIGMA[r + 13]!]!) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24);
      v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);

      v3 = (v3 + v4 + m[SIGMA[r + 14]!]!) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16);
      v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
      v3 = (v3 + v4 + m[SIGMA[r + 15]!]!) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24);
      v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
    }
    h[0] = h[0]! ^ v0 ^ v8;
    h[1] = h[1]! ^ v1 ^ v9;
    h[2] = h[2]! ^ v2 ^ v10;
    h[3] = h[3]! ^ v3 ^ v11;
    h[4] = h[4]! ^ v4 ^ v12;
    h[5] = h[5]! ^ v5 ^ v13;
    h[6] = h[6]! ^ v6 ^ v14;
    h[7] = h[7]! ^ v7 ^ v15;
  }
}
