/**
 * A binary min-heap on `at` (a deadline): the earliest entry in O(1), push and pop in
 * O(log n). The TCP layer and the WireGuard device keep their timers in one each, with lazy
 * deletion decided by their owners (netstack/tcp/timers.ts, wireguard/timers.ts).
 */
export class MinHeap<E extends { at: number }> {
  private items: E[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The earliest entry, undefined when empty. */
  get top(): E | undefined {
    return this.items[0];
  }

  /** Every entry, in heap order (for a rebuild). */
  entries(): readonly E[] {
    return this.items;
  }

  clear(): void {
    this.items = [];
  }

  push(e: E): void {
    const h = this.items;
    let i = h.push(e) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= e.at) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = e;
  }

  pop(): E | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const m = r < h.length && h[r]!.at < h[l]!.at ? r : l;
      if (h[m]!.at >= last.at) break;
      h[i] = h[m]!;
      i = m;
    }
    h[i] = last;
    return top;
  }
}
