/**
 * The receive path (RFC 9293 §3.10.7.4, seventh check): in-order data into the receive
 * ring, out-of-order segments held (bounded by the window) until the hole fills, ACKs
 * delayed per RFC 1122 §4.2.3.2 / RFC 5681 §4.2, and the SACK (RFC 2018) and D-SACK
 * (RFC 2883) blocks those ACKs carry.
 */
import type { Instant } from '../../util/time.js';
import { seqAdd, seqDiff, seqGt, seqLe, seqLt } from '../../wire/tcp.js';
import { MAX_RANGES, MAX_SACK_BLOCKS, NEVER } from './constants.js';

/**
 * What one held out-of-order segment costs beyond its payload (the record, the copy's
 * header, the array slot), charged against the receive buffer as Linux charges an skb's
 * truesize: without it a peer could pin ~250 bytes of heap per 1-byte segment, unbounded
 * by the byte limit (RFC 9293 §3.10.7.4 leaves what to keep to the receiver).
 */
const OOO_SEGMENT_COST = 256;
import { addRange, covers, findRange, trimBelow } from './ranges.js';
import type { Conn } from './conn.js';
import type { TcpLayer } from './layer.js';

function hasBlock(blocks: number[], from: number, l: number): boolean {
  for (let j = from; j < blocks.length; j += 2) if (blocks[j] === l) return true;
  return false;
}

/** The SACK option's blocks for the next ACK (RFC 2018 §4, RFC 2883 §4). */
export function sackBlocks(c: Conn): number[] {
  const blocks: number[] = [];
  let first = 0;
  if (c.dsackPending) {
    // RFC 2883 §4: a D-SACK block goes first, once.
    blocks.push(c.dsackL, c.dsackR);
    c.dsackPending = false;
    first = 2;
  }
  // RFC 2018 §4: the block holding the newest segment first, then those of the segments
  // before it, so a sender learns every block over a few ACKs even when there are more
  // holes than blocks fit; then the lowest blocks fill what room is left.
  const max = MAX_SACK_BLOCKS * 2;
  const r = c.oooRanges;
  for (let k = 0; k < c.sackRecent.length && blocks.length < max; k++) {
    const j = findRange(r, c.sackRecent[k]!);
    if (j >= 0 && !hasBlock(blocks, first, r[j]!)) blocks.push(r[j]!, r[j + 1]!);
  }
  for (let j = 0; j < r.length && blocks.length < max; j += 2) if (!hasBlock(blocks, first, r[j]!)) blocks.push(r[j]!, r[j + 1]!);
  return blocks;
}

export function receiveData(t: TcpLayer, now: Instant, c: Conn, seq: number, data: Uint8Array): void {
  // Trim what we already have.
  let d = data;
  let s = seq;
  if (seqLt(s, c.rcvNxt)) {
    const skip = seqDiff(c.rcvNxt, s);
    noteDuplicate(t, c, s, seqLt(seqAdd(s, d.length), c.rcvNxt) ? seqAdd(s, d.length) : c.rcvNxt);
    if (skip >= d.length) {
      c.ackNow = true; // a pure duplicate: ACK at once so the sender's dup-ACK count is right
      t.markDirty(c);
      return;
    }
    d = d.subarray(skip);
    s = c.rcvNxt;
  }
  const wnd = c.rcvWindow();
  if (d.length > wnd + seqDiff(c.rcvNxt, s)) d = d.subarray(0, Math.max(0, wnd - seqDiff(s, c.rcvNxt)));
  if (d.length === 0) return;
  if (s === c.rcvNxt) {
    const filledGap = c.ooo.length > 0;
    const n = c.rbuf.push(d);
    c.rcvNxt = seqAdd(c.rcvNxt, n);
    // Pull in out-of-order segments that now continue the stream.
    let k = 0;
    for (; k < c.ooo.length && seqLe(c.ooo[k]!.seq, c.rcvNxt); k++) {
      const o = c.ooo[k]!;
      c.oooBytes -= o.data.length + OOO_SEGMENT_COST;
      const end = seqAdd(o.seq, o.data.length);
      if (seqGt(end, c.rcvNxt)) {
        const part = o.data.subarray(seqDiff(c.rcvNxt, o.seq));
        c.rcvNxt = seqAdd(c.rcvNxt, c.rbuf.push(part));
      }
    }
    if (k > 0) c.ooo.splice(0, k);
    if (filledGap) trimBelow(c.oooRanges, c.rcvNxt);
    t.readable(c);
    c.segsSinceAck++;
    // RFC 1122 §4.2.3.2 / RFC 5681 §4.2: ACK at least every second full segment; at once when filling a hole.
    if (c.segsSinceAck >= 2 || filledGap || c.ooo.length > 0 || data.length < c.mss / 2) c.ackNow = true;
    else if (c.timers.delack === NEVER) t.timers.arm(c, 'delack', now + t.opts.delayedAckMs);
    if (c.ackNow) t.markDirty(c);
    return;
  }
  // Out of order: keep it (bounded by the window) and send a duplicate ACK with SACK at once.
  const e = seqAdd(s, d.length);
  if (covers(c.oooRanges, s, e)) {
    noteDuplicate(t, c, s, e);
    noteRecent(c, s); // RFC 2883 §4: the block holding a D-SACKed range comes next
  } else if (c.oooRanges.length >= 2 * MAX_RANGES && findRange(c.oooRanges, seqAdd(s, -1)) < 0 && findRange(c.oooRanges, e) < 0) {
    t.drop('drop.oooRanges', c); // it would open yet another range: the sender resends it
  } else if (c.oooBytes + d.length + OOO_SEGMENT_COST <= c.rbuf.max) {
    // Sorted by sequence number (all within the window, so seqGt orders them): the common case,
    // the next segment after a hole, appends; anything else is placed by binary search, so a
    // peer sending tiny segments backwards costs O(log n) per segment, not a scan.
    const q = c.ooo;
    let i = q.length;
    if (i > 0 && seqGt(q[i - 1]!.seq, s)) {
      let lo = 0;
      while (lo < i) {
        const mid = (lo + i) >>> 1;
        if (seqGt(q[mid]!.seq, s)) i = mid;
        else lo = mid + 1;
      }
    }
    if (i === q.length) q.push({ seq: s, data: d.slice() });
    else q.splice(i, 0, { seq: s, data: d.slice() });
    addRange(c.oooRanges, s, e);
    c.oooBytes += d.length + OOO_SEGMENT_COST;
    noteRecent(c, s);
    t.count('oooSegments');
  }
  c.ackNow = true;
  t.markDirty(c);
}

/**
 * Records the block an out-of-order segment went into as the newest, one entry per
 * block: when a batch both extends one block and opens another above it, the next ACK
 * reports both (RFC 2018 §4), or the sender never learns of the first block's new end
 * and resends what already arrived.
 */
function noteRecent(c: Conn, s: number): void {
  const r = c.sackRecent;
  const j = findRange(c.oooRanges, s);
  for (let k = r.length - 1; k >= 0; k--) if (findRange(c.oooRanges, r[k]!) === j) r.splice(k, 1);
  r.unshift(s);
  if (r.length > MAX_SACK_BLOCKS) r.length = MAX_SACK_BLOCKS;
}

/** Data received twice: reported to the sender as a D-SACK block (RFC 2883) when SACK is on. */
export function noteDuplicate(t: TcpLayer, c: Conn, from: number, to: number): void {
  if (!c.sackOk || !seqLt(from, to)) return;
  c.dsackL = from;
  c.dsackR = to;
  c.dsackPending = true;
  t.count('dsackSent');
}
