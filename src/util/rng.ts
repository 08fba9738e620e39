/**
 * Randomness is an argument (DESIGN §2): the cores take an `Rng`, the I/O layer
 * supplies a CSPRNG, and tests supply a seeded one for determinism.
 */
export interface Rng {
  /** Fills `buf` with random bytes. */
  fill(buf: Uint8Array): void;
}

const scratch = new Uint8Array(4);
const scratchView = new DataView(scratch.buffer);

export function randomU32(rng: Rng): number {
  rng.fill(scratch);
  return scratchView.getUint32(0, true);
}

/** Uniform integer in [0, n) for 0 < n <= 2^32, without modulo bias. */
export function randomInt(rng: Rng, n: number): number {
  if (n <= 1) return 0;
  const limit = 0x100000000 - (0x100000000 % n);
  for (;;) {
    const x = randomU32(rng);
    if (x < limit) return x % n;
  }
}

/**
 * Deterministic generator for tests and simulations (xoshiro128**).
 * Not for keys: the I/O layer passes a CSPRNG to real tunnels.
 */
export class SeededRng implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: number) {
    // splitmix32 to spread the seed over the state
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    return result;
  }
  /** Uniform float in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 0x100000000;
  }
  fill(buf: Uint8Array): void {
    let i = 0;
    while (i < buf.length) {
      let v = this.nextU32();
      for (let k = 0; k < 4 && i < buf.length; k++, i++) {
        buf[i] = v & 0xff;
        v >>>= 8;
      }
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
