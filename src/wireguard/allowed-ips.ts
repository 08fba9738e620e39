/**
 * Cryptokey routing (whitepaper §2): the longest-prefix match from an address to
 * the peer that owns it. One binary trie per family, walked bit by bit from the
 * packet's bytes, so a lookup allocates nothing. A per-value index keeps
 * removal of a peer's 100,000 prefixes linear in their number, and its sorted
 * list is kept until the value's prefixes change (`wg show` lists every peer's).
 */
import type { IpPrefix } from '../util/ip.js';
import { maskAddr } from '../util/ip.js';

interface Node<T> {
  zero: Node<T> | undefined;
  one: Node<T> | undefined;
  value: T | undefined;
  has: boolean;
}

const newNode = <T>(): Node<T> => ({ zero: undefined, one: undefined, value: undefined, has: false });

export class AllowedIps<T> {
  private root4: Node<T> = newNode();
  private root6: Node<T> = newNode();
  private byValue = new Map<T, Map<string, IpPrefix>>();
  /** prefixesOf's answers, dropped when the value's prefixes change. */
  private sorted = new Map<T, readonly IpPrefix[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  private key(p: IpPrefix): string {
    let k = String.fromCharCode(p.bits);
    for (let i = 0; i < p.addr.length; i++) k += String.fromCharCode(p.addr[i]!);
    return k;
  }

  private walk(p: IpPrefix, create: boolean): Node<T> | undefined {
    let n: Node<T> | undefined = p.addr.length === 4 ? this.root4 : this.root6;
    for (let i = 0; i < p.bits && n; i++) {
      const bit = (p.addr[i >> 3]! >> (7 - (i & 7))) & 1;
      let next: Node<T> | undefined = bit ? n.one : n.zero;
      if (!next && create) {
        next = newNode();
        if (bit) n.one = next;
        else n.zero = next;
      }
      n = next;
    }
    return n;
  }

  insert(prefix: IpPrefix, value: T): void {
    const p = { addr: maskAddr(prefix.addr, prefix.bits), bits: prefix.bits };
    const n = this.walk(p, true)!;
    if (n.has) {
      if (n.value === value) return;
      this.byValue.get(n.value!)?.delete(this.key(p));
      this.sorted.delete(n.value!);
    } else this.count++;
    this.sorted.delete(value);
    n.has = true;
    n.value = value;
    let m = this.byValue.get(value);
    if (!m) this.byValue.set(value, (m = new Map()));
    m.set(this.key(p), p);
  }

  remove(prefix: IpPrefix): boolean {
    const p = { addr: maskAddr(prefix.addr, prefix.bits), bits: prefix.bits };
    const n = this.walk(p, false);
    if (!n || !n.has) return false;
    const m = this.byValue.get(n.value!);
    m?.delete(this.key(p));
    this.sorted.delete(n.value!);
    if (m && m.size === 0) this.byValue.delete(n.value!);
    n.has = false;
    n.value = undefined;
    this.count--;
    // Empty branches are left in place: they cost memory only until clear().
    return true;
  }

  removeByValue(value: T): number {
    const m = this.byValue.get(value);
    if (!m) return 0;
    const list = [...m.values()];
    for (const p of list) this.remove(p);
    return list.length;
  }

  lookup(family: 4 | 6, bytes: Uint8Array, offset = 0): T | undefined {
    let n: Node<T> | undefined = family === 4 ? this.root4 : this.root6;
    const bits = family === 4 ? 32 : 128;
    let best: T | undefined;
    for (let i = 0; n; i++) {
      if (n.has) best = n.value;
      if (i === bits) break;
      const bit = (bytes[offset + (i >> 3)]! >> (7 - (i & 7))) & 1;
      n = bit ? n.one : n.zero;
    }
    return best;
  }

  /** `value`'s prefixes, IPv4 first, by address then length; sorted once per change. Do not modify. */
  prefixesOf(value: T): readonly IpPrefix[] {
    const cached = this.sorted.get(value);
    if (cached) return cached;
    const m = this.byValue.get(value);
    if (!m) return NONE;
    const list = [...m.values()].sort((a, b) => {
      if (a.addr.length !== b.addr.length) return a.addr.length - b.addr.length;
      for (let i = 0; i < a.addr.length; i++) if (a.addr[i] !== b.addr[i]) return a.addr[i]! - b.addr[i]!;
      return a.bits - b.bits;
    });
    this.sorted.set(value, list);
    return list;
  }

  entries(): Array<{ prefix: IpPrefix; value: T }> {
    const out: Array<{ prefix: IpPrefix; value: T }> = [];
    for (const [value, m] of this.byValue) for (const prefix of m.values()) out.push({ prefix, value });
    return out;
  }

  clear(): void {
    this.root4 = newNode();
    this.root6 = newNode();
    this.byValue.clear();
    this.sorted.clear();
    this.count = 0;
  }
}

const NONE: readonly IpPrefix[] = [];
