/**
 * IP fragment reassembly for IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5).
 *
 * - Fragments may come in any order; exact repeats are ignored (RFC 8200 §4.5
 *   allows dropping duplicates).
 * - Overlapping fragments drop the whole datagram (RFC 5722 §3). For IPv6 the
 *   datagram stays "dead" until its timeout so that fragments still in flight
 *   are discarded too ("including those not yet received"); for IPv4, where the
 *   16-bit Identification wraps quickly, the same rule drops what is held but
 *   leaves no tombstone, as Linux does since it applied RFC 5722 to IPv4.
 * - Incomplete datagrams expire: 60 s after the first fragment for IPv6 (RFC
 *   8200 §4.5), 30 s for IPv4 (RFC 791 only asks for at least 15 s; 30 s is
 *   Linux's ipfrag_time).
 * - Memory is capped: every fragment held is charged its payload plus a fixed
 *   overhead for the objects around it (Linux charges skb truesize for the same
 *   reason), and when the total passes the cap (4 MiB by default, Linux's
 *   ipfrag_high_thresh) the oldest incomplete datagrams are evicted. Evicting the
 *   oldest, not refusing the newest, means a flood of fragments that never
 *   complete cannot shut out a datagram whose fragments arrive together.
 * - Memory is also capped per source (1 MiB by default): a peer's fragments, summed over all
 *   its incomplete datagrams, are charged to its bucket (its peer when the Interface knows
 *   peers, else its source address), and past that cap its own oldest datagram is evicted.
 *   Without it one hostile peer could keep the global cap full, so that every other peer's
 *   datagram were evicted as the oldest before its last fragment came; with it, that takes
 *   four peers at the default caps (4 MiB / 1 MiB). The source address is trustworthy: the
 *   tunnel delivers a packet only if its source lies in the sending peer's AllowedIPs
 *   (cryptokey routing, whitepaper §2). Linux bounds memory only per network namespace;
 *   this is the per-peer analogue of its per-netns ipfrag_high_thresh.
 * - One datagram may hold at most 65535 bytes of IP packet (RFC 791 §3.1 total
 *   length; RFC 8200 §4.5 Payload Length) in at most 256 fragments, which bounds
 *   the per-fragment overlap scan and what one datagram can pin.
 */
import type { Deadline, Instant } from '../util/time.js';
import type { IpInfo } from '../wire/ip.js';
import type { IpAddr } from '../util/ip.js';
import { addressKey, type PeerKey, type PeerOf } from './types.js';

/** RFC 8200 §4.5: reassembly abandoned 60 s after the first-arriving fragment. */
export const IPV6_REASSEMBLY_TIMEOUT = 60_000;
/** RFC 791 §3.2 suggests a lower bound of 15 s; Linux uses 30 s (net.ipv4.ipfrag_time). */
export const IPV4_REASSEMBLY_TIMEOUT = 30_000;
/** Linux's net.ipv4.ipfrag_high_thresh. */
export const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
/**
 * A quarter of the global cap: room for ~15 whole 64 KiB datagrams, or hundreds of
 * MTU-sized ones, in flight from one peer at once, far above what a real sender has
 * incomplete at a time, while four full peers are needed to reach the global cap.
 */
export const DEFAULT_MAX_BYTES_PER_SOURCE = 1024 * 1024;
/** A datagram needs at most ~120 fragments at our 576-byte minimum MTU; 256 leaves room for smaller paths. */
export const MAX_FRAGMENTS_PER_DATAGRAM = 256;
/** Bytes charged per fragment and per datagram on top of the payload (object headers, views, the key). */
export const FRAGMENT_OVERHEAD = 128;
export const DATAGRAM_OVERHEAD = 256;

/** Why a fragment or its whole datagram was dropped. */
type RejectReason = 'tooLarge' | 'badLength' | 'afterOverlap' | 'overlap' | 'twoEnds' | 'pastEnd' | 'tooManyFragments';
/**
 * The names this module counts, among the Interface's counters. `evicted` counts every
 * datagram evicted for memory, `evictedPerSource` those of them that the per-source cap
 * evicted (so `evicted - evictedPerSource` is the global cap's share).
 */
export type ReassemblyCounter = 'ip.reassembly.evicted' | 'ip.reassembly.evictedPerSource' | 'ip.reassembly.timeout' | `ip.reassembly.${RejectReason}`;

export interface ReassemblyOptions {
  /** Cap on the bytes charged for all incomplete datagrams (default 4 MiB). */
  maxBytes?: number;
  /**
   * Cap on the bytes charged for one source's incomplete datagrams (default 1 MiB). A source
   * is a peer when `peerOf` names one, else a source address. Below ~100 KiB a 64 KiB datagram
   * in small fragments may never fit.
   */
  maxBytesPerSource?: number;
  /** The peer a source address belongs to (the Interface passes its own); absent: each address is a source. */
  peerOf?: PeerOf;
  timeoutV4Ms?: number;
  timeoutV6Ms?: number;
  /** Told about evictions, timeouts and why a fragment was dropped (the Interface's counters). */
  count?: (what: ReassemblyCounter) => void;
}

interface Pending {
  key: string;
  version: 4 | 6;
  first: Instant;
  parts: { off: number; data: Uint8Array }[];
  total: number; // payload length once the last fragment is seen, else -1
  received: number; // payload bytes held
  charged: number; // what this entry counts against the cap
  dead: boolean; // RFC 5722 tombstone (IPv6): every later fragment is dropped
  info: IpInfo; // header info of the first fragment (offset 0) once seen
  source: Source; // whose budget it is charged to
}

/** One source's share: what it holds, and its datagrams oldest first (a Set keeps insertion order). */
interface Source {
  key: PeerKey;
  bytes: number;
  pending: Set<Pending>;
}

export class Reassembler {
  // Two maps because the two versions time out differently; each map's insertion
  // order is its age order, so expiry looks only at the front.
  private readonly v4 = new Map<string, Pending>();
  private readonly v6 = new Map<string, Pending>();
  private bytes = 0;
  private readonly maxBytes: number;
  private readonly maxPerSource: number;
  private readonly sources = new Map<PeerKey, Source>();
  private readonly peerOf: PeerOf | undefined;
  private readonly timeoutV4: number;
  private readonly timeoutV6: number;
  private readonly count: (what: ReassemblyCounter) => void;

  constructor(opts: ReassemblyOptions = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxPerSource = opts.maxBytesPerSource ?? DEFAULT_MAX_BYTES_PER_SOURCE;
    this.peerOf = opts.peerOf;
    this.timeoutV4 = opts.timeoutV4Ms ?? IPV4_REASSEMBLY_TIMEOUT;
    this.timeoutV6 = opts.timeoutV6Ms ?? IPV6_REASSEMBLY_TIMEOUT;
    this.count = opts.count ?? (() => {});
  }

  /** Bytes charged against the cap right now. */
  get bytesHeld(): number {
    return this.bytes;
  }

  /** Datagrams being reassembled (tombstones included). */
  get datagrams(): number {
    return this.v4.size + this.v6.size;
  }

  /** Bytes charged to the source (peer, or address without one) that `addr` belongs to. */
  bytesHeldBy(addr: IpAddr): number {
    return this.sources.get(this.keyOf(addr))?.bytes ?? 0;
  }

  private keyOf(addr: IpAddr): PeerKey {
    return this.peerOf?.(addr) ?? addressKey(addr);
  }

  /** Adds `n` bytes (negative to release) to the datagram's charge, its source's and the total. */
  private charge(p: Pending, n: number): void {
    p.charged += n;
    p.source.bytes += n;
    this.bytes += n;
  }

  /**
   * Adds a fragment. Returns the reassembled datagram's info when complete,
   * undefined while waiting, null when the fragment (and maybe its datagram) was dropped.
   */
  add(now: Instant, _packet: Uint8Array, info: IpInfo): IpInfo | undefined | null {
    this.expire(now); // a late timer must not let a stale datagram complete
    const f = info.fragment!;
    const map = info.version === 4 ? this.v4 : this.v6;
    const key = `${info.src.join('.')}|${info.dst.join('.')}|${info.protocol}|${f.id}`;
    const data = info.payload;
    const end = f.offset + data.length;
    // The reassembled packet must fit a 16-bit length: IPv4 Total Length counts the
    // header (RFC 791 §3.1); IPv6 Payload Length counts the unfragmentable part after
    // the fixed header, but not the Fragment header itself (RFC 8200 §4.5).
    const headerBytes = info.version === 4 ? f.headerEnd : f.headerEnd - 8 - 40;
    if (headerBytes + end > 65535) return this.reject('tooLarge');
    // RFC 8200 §4.5 / RFC 791: every fragment but the last carries a multiple of 8 bytes.
    if (f.more && data.length % 8 !== 0) return this.reject('badLength');
    let p = map.get(key);
    if (!p) {
      const sk = this.keyOf(info.src);
      let source = this.sources.get(sk);
      if (!source) this.sources.set(sk, (source = { key: sk, bytes: 0, pending: new Set() }));
      p = { key, version: info.version, first: now, parts: [], total: -1, received: 0, charged: 0, dead: false, info, source };
      map.set(key, p);
      source.pending.add(p);
      this.charge(p, DATAGRAM_OVERHEAD);
    }
    if (p.dead) return this.reject('afterOverlap');
    for (const q of p.parts) {
      const qEnd = q.off + q.data.length;
      if (q.off === f.offset && qEnd === end) return undefined; // an exact duplicate
      if (f.offset < qEnd && q.off < end) return this.kill(p, 'overlap');
    }
    if (!f.more) {
      if (p.total >= 0 && p.total !== end) return this.kill(p, 'twoEnds');
      // Bytes already held past the end would make the count below lie about holes.
      for (const q of p.parts) if (q.off + q.data.length > end) return this.kill(p, 'pastEnd');
      p.total = end;
    }
    if (p.total >= 0 && end > p.total) return this.kill(p, 'pastEnd');
    if (p.parts.length >= MAX_FRAGMENTS_PER_DATAGRAM) return this.kill(p, 'tooManyFragments');
    p.parts.push({ off: f.offset, data: data.slice() });
    p.received += data.length;
    this.charge(p, data.length + FRAGMENT_OVERHEAD);
    if (f.offset === 0) p.info = info;
    if (p.total >= 0 && p.received === p.total) {
      // Complete: it leaves at once, so completing never needs room under the cap.
      const whole = new Uint8Array(p.total);
      for (const q of p.parts) whole.set(q.data, q.off);
      this.remove(p);
      return { ...p.info, payload: whole, fragment: undefined };
    }
    // Over its own cap, a source gives up its own oldest datagram, never another's: the
    // same "oldest first" rule as below, so its datagrams that arrive whole still get through.
    const src = p.source;
    while (src.bytes > this.maxPerSource) {
      const oldest = src.pending.values().next().value as Pending;
      this.remove(oldest);
      this.count('ip.reassembly.evicted');
      this.count('ip.reassembly.evictedPerSource');
      if (oldest === p) return null;
    }
    while (this.bytes > this.maxBytes) {
      const oldest = this.oldest()!;
      this.remove(oldest);
      this.count('ip.reassembly.evicted');
      if (oldest === p) return null;
    }
    return undefined;
  }

  private reject(why: RejectReason): null {
    this.count(`ip.reassembly.${why}`);
    return null;
  }

  /** RFC 5722 §3: the whole datagram goes; IPv6 keeps a tombstone for its fragments still in flight. */
  private kill(p: Pending, why: RejectReason): null {
    if (p.version === 6) {
      this.charge(p, DATAGRAM_OVERHEAD - p.charged);
      p.parts = [];
      p.received = 0;
      p.dead = true;
    } else this.remove(p);
    return this.reject(why);
  }

  private remove(p: Pending): void {
    const map = p.version === 4 ? this.v4 : this.v6;
    if (!map.delete(p.key)) return;
    this.charge(p, -p.charged);
    const s = p.source;
    s.pending.delete(p);
    if (s.pending.size === 0) this.sources.delete(s.key); // a source with nothing held costs nothing
  }

  private oldest(): Pending | undefined {
    const a = this.v4.values().next().value as Pending | undefined;
    const b = this.v6.values().next().value as Pending | undefined;
    if (!a) return b;
    if (!b) return a;
    return a.first <= b.first ? a : b;
  }

  /** Frees every datagram whose time is up (and the tombstones whose fragments can no longer arrive). */
  expire(now: Instant): void {
    for (const [map, timeout] of [[this.v4, this.timeoutV4], [this.v6, this.timeoutV6]] as const) {
      for (const p of map.values()) {
        if (now - p.first < timeout) break; // insertion order is age order
        this.remove(p);
        if (!p.dead) this.count('ip.reassembly.timeout');
      }
    }
  }

  pollTimeout(): Deadline | undefined {
    const a = this.v4.values().next().value as Pending | undefined;
    const b = this.v6.values().next().value as Pending | undefined;
    const at = Math.min(a ? a.first + this.timeoutV4 : Infinity, b ? b.first + this.timeoutV6 : Infinity);
    return at === Infinity ? undefined : { at, reason: 'ip reassembly' };
  }
}
