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
  /**
   * The last lookup per family and its answer. The trie is walked bit by bit (33 nodes for an
   * IPv4 /32, 129 for an IPv6 /128) on every packet, twice per packet counting both directions,
   * and consecutive packets nearly always carry the same address: one compare answers them.
   * Any change to the trie forgets both (forget()).
   */
  private last4 = -1; // the address as a uint32; -1: none
  private last4Value: T | undefined;
  private readonly last6 = new Int32Array(4);
  private last6Valid = false;
  private last6Value: T | undefined;

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

  private forget(): void {
    this.last4 = -1;
    this.last4Value = undefined;
    this.last6Valid = false;
    this.last6Value = undefined;
  }

  insert(prefix: IpPrefix, value: T): void {
    this.forget();
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
    this.forget();
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
    if (family === 4) {
      const a = ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
      if (a === this.last4) return this.last4Value;
      const v = this.walkLookup(this.root4, 32, bytes, offset);
      this.last4 = a;
      this.last4Value = v;
      return v;
    }
    const l = this.last6;
    const w0 = (bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
    const w1 = (bytes[offset + 4]! << 24) | (bytes[offset + 5]! << 16) | (bytes[offset + 6]! << 8) | bytes[offset + 7]!;
    const w2 = (bytes[offset + 8]! << 24) | (bytes[offset + 9]! << 16) | (bytes[offset + 10]! << 8) | bytes[offset + 11]!;
    const w3 = (bytes[offset + 12]! << 24) | (bytes[offset + 13]! << 16) | (bytes[offset + 14]! << 8) | bytes[offset + 15]!;
    if (this.last6Valid && l[0] === w0 && l[1] === w1 && l[2] === w2 && l[3] === w3) return this.last6Value;
    const v = this.walkLookup(this.root6, 128, bytes, offset);
    l[0] = w0;
    l[1] = w1;
    l[2] = w2;
    l[3] = w3;
    this.last6Valid = true;
    this.last6Value = v;
    return v;
  }

  /** The longest-prefix match: the last node with a value on the address's path. */
  private walkLookup(root: Node<T>, bits: number, bytes: Uint8Array, offset: number): T | undefined {
    let n: Node<T> | undefined = root;
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
    this.forget();
    this.root4 = newNode();
    this.root6 = newNode();
    this.byValue.clear();
    this.sorted.clear();
    this.count = 0;
  }
}

const NONE: readonly IpPrefix[] = [];
