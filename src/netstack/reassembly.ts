/**
 * IP fragment reassembly for IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5).
 * Fragments may come in any order and be duplicated (exact repeats are
 * ignored); overlapping fragments drop the whole datagram (RFC 5722, applied to
 * IPv4 too); incomplete datagrams expire after 30 s; memory is capped, the
 * oldest datagram giving way first.
 */
import type { Deadline, Instant } from '../util/time.js';
import type { IpInfo } from '../wire/ip.js';

const TIMEOUT = 30_000;
const MAX_TOTAL_BYTES = 4 * 1024 * 1024;
const MAX_DATAGRAM = 65535;

interface Pending {
  key: string;
  first: Instant;
  parts: { off: number; data: Uint8Array }[];
  total: number; // -1 until the last fragment is seen
  bytes: number;
  info: IpInfo; // header info of the first fragment seen
}

export class Reassembler {
  private readonly pending = new Map<string, Pending>();
  private bytes = 0;

  /**
   * Adds a fragment. Returns the reassembled datagram's info when complete,
   * undefined while waiting, null when the datagram had to be dropped.
   */
  add(now: Instant, _packet: Uint8Array, info: IpInfo): IpInfo | undefined | null {
    const f = info.fragment!;
    const key = `${info.version}|${info.src.join('.')}|${info.dst.join('.')}|${info.protocol}|${f.id}`;
    const data = info.payload;
    const end = f.offset + data.length;
    if (end > MAX_DATAGRAM || (f.more && data.length % 8 !== 0)) return null;
    let p = this.pending.get(key);
    if (!p) {
      p = { key, first: now, parts: [], total: -1, bytes: 0, info };
      this.pending.set(key, p);
    }
    for (const q of p.parts) {
      const qEnd = q.off + q.data.length;
      if (q.off === f.offset && qEnd === end) return undefined; // duplicate
      if (f.offset < qEnd && q.off < end) {
        this.remove(p); // RFC 5722: overlap drops the datagram
        return null;
      }
    }
    if (!f.more) {
      if (p.total >= 0 && p.total !== end) {
        this.remove(p);
        return null;
      }
      p.total = end;
    }
    if (p.total >= 0 && end > p.total) {
      this.remove(p);
      return null;
    }
    p.parts.push({ off: f.offset, data: data.slice() });
    p.bytes += data.length;
    this.bytes += data.length;
    if (f.offset === 0) p.info = info;
    while (this.bytes > MAX_TOTAL_BYTES) {
      const oldest = this.pending.values().next().value as Pending;
      this.remove(oldest);
      if (oldest === p) return null;
    }
    if (p.total < 0 || p.bytes !== p.total) return undefined;
    const whole = new Uint8Array(p.total);
    for (const q of p.parts) whole.set(q.data, q.off);
    this.remove(p);
    return { ...p.info, payload: whole, fragment: undefined };
  }

  private remove(p: Pending): void {
    if (this.pending.delete(p.key)) this.bytes -= p.bytes;
  }

  expire(now: Instant): void {
    for (const p of this.pending.values()) {
      if (now - p.first < TIMEOUT) break; // insertion order is age order
      this.remove(p);
    }
  }

  pollTimeout(): Deadline | undefined {
    const p = this.pending.values().next().value as Pending | undefined;
    return p ? { at: p.first + TIMEOUT, reason: 'ip reassembly' } : undefined;
  }
}
