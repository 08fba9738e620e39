/**
 * A byte ring for TCP send and receive buffers: grows by doubling up to a
 * maximum and starts empty (an idle connection holds no buffer). The first
 * allocation is what the first push needs, rounded up to a power of two, at
 * least MIN_CAPACITY: a short connection (an HTTP request and its answer
 * relayed by the gateway) holds a few hundred bytes each way, and allocating
 * 16 KiB for each ring cost about a fifth of the gateway's CPU per relayed
 * connection (zeroed memory, and the GC work that external memory brings);
 * a bulk transfer doubles to its working size once. Up to 64 bytes V8 keeps
 * a typed array's bytes inside its own heap (typed_array_max_size_in_heap);
 * larger ones are a malloc() chunk each, freed only when the GC gets to their
 * wrapper, and under churn those chunks are what glibc keeps resident (see
 * src/io/memory.ts). So a ring starts at 64 bytes: a short request or echo
 * never leaves the JS heap, and a larger first push still gets its own
 * power of two at once. A drained ring
 * keeps its memory: during a transfer it drains and refills many times a
 * second, and regrowing it each time (16 KiB, 32 KiB, ... zeroed) cost more
 * than the copy itself. The TCP layer calls release() once a connection's
 * buffers have sat empty for a while (its 'trim' timer).
 */
/** The smallest buffer a ring allocates: the largest typed array V8 stores on its heap (no malloc). */
const MIN_CAPACITY = 64;

export class ByteRing {
  private buf = new Uint8Array(0);
  private head = 0;
  length = 0;

  constructor(readonly max: number) {}

  get capacity(): number {
    return this.buf.length;
  }

  get space(): number {
    return this.max - this.length;
  }

  private grow(need: number): void {
    let cap = Math.max(this.buf.length, MIN_CAPACITY);
    while (cap < need) cap *= 2;
    cap = Math.min(cap, Math.max(this.max, need));
    const nb = new Uint8Array(cap);
    this.copyOut(0, this.length, nb, 0);
    this.buf = nb;
    this.head = 0;
  }

  /** Appends as much of `data` as fits; returns the count taken. */
  push(data: Uint8Array): number {
    const n = Math.min(data.length, this.space);
    if (n === 0) return 0;
    if (this.length + n > this.buf.length) this.grow(this.length + n);
    const cap = this.buf.length;
    const tail = (this.head + this.length) % cap;
    const first = Math.min(n, cap - tail);
    this.buf.set(data.subarray(0, first), tail);
    if (first < n) this.buf.set(data.subarray(first, n), 0);
    this.length += n;
    return n;
  }

  /** Copies bytes [from, from+n) of the ring's content into `out` at `at`. */
  copyOut(from: number, n: number, out: Uint8Array, at: number): void {
    const cap = this.buf.length;
    if (n <= 0 || cap === 0) return;
    const start = (this.head + from) % cap;
    if (cap <= MIN_CAPACITY) {
      // A view (subarray) of an on-heap array makes V8 move its bytes to a malloc'd
      // backing store, which is the allocation the small start avoids: copy by hand.
      const buf = this.buf;
      for (let i = 0; i < n; i++) out[at + i] = buf[(start + i) % cap]!;
      return;
    }
    const first = Math.min(n, cap - start);
    out.set(this.buf.subarray(start, start + first), at);
    if (first < n) out.set(this.buf.subarray(0, n - first), at + first);
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    n = Math.min(n, this.length);
    this.length -= n;
    if (this.length === 0) this.head = 0;
    else this.head = (this.head + n) % this.buf.length;
  }

  /** Takes up to `n` bytes from the front as a new array. */
  take(n: number): Uint8Array {
    n = Math.min(n, this.length);
    // Not zeroed first: every byte is written by the copy.
    const out = Buffer.allocUnsafe(n);
    this.copyOut(0, n, out, 0);
    this.consume(n);
    return out;
  }

  /** Frees the memory of an empty ring. */
  release(): void {
    if (this.length === 0) {
      this.buf = new Uint8Array(0);
      this.head = 0;
    }
  }
}
