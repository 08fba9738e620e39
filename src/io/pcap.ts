/**
 * A pcap writer for the inner IP packets of a tunnel (`--pcap FILE`, `tunnel.capture()`):
 * the classic libpcap format (microsecond timestamps, magic 0xa1b2c3d4, version 2.4) with
 * LINKTYPE_RAW (101): each record is a bare IPv4 or IPv6 packet, which tcpdump and
 * Wireshark read as such. https://www.tcpdump.org/manpages/pcap-savefile.5.html
 *
 * Bounded: a file is rotated to FILE.1 (FILE.1 to FILE.2, ... up to `maxFiles`) when the
 * next record would take it past `maxBytes`; a stream stops taking packets at `maxBytes`.
 * When the disk or the stream falls behind by more than `maxBuffered` bytes, packets are
 * dropped and counted rather than queued without end.
 */
import { createWriteStream, renameSync, rmSync, existsSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';

export const LINKTYPE_RAW = 101;
const SNAPLEN = 65535;

export interface CaptureOptions {
  /** Bytes per file (header included) before rotating, or in all for a stream. Default unlimited. */
  maxBytes?: number;
  /** Files kept when rotating: FILE plus FILE.1 .. FILE.(maxFiles-1). Default 2. */
  maxFiles?: number;
  /** Bytes waiting to be written above which packets are dropped. Default 8 MiB. */
  maxBuffered?: number;
}

export interface CaptureStats {
  packets: number;
  bytes: number;
  dropped: number;
  rotations: number;
}

export function pcapHeader(): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b2c3d4, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeInt32LE(0, 8); // thiszone
  h.writeUInt32LE(0, 12); // sigfigs
  h.writeUInt32LE(SNAPLEN, 16);
  h.writeUInt32LE(LINKTYPE_RAW, 20);
  return h;
}

export class PcapWriter {
  readonly stats: CaptureStats = { packets: 0, bytes: 0, dropped: 0, rotations: 0 };
  private out: Writable;
  private written = 0;
  private closed = false;
  private full = false;
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private readonly maxBuffered: number;
  private readonly ownStream: boolean;

  constructor(
    private readonly target: string | Writable,
    opts: CaptureOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? Infinity;
    this.maxFiles = Math.max(1, opts.maxFiles ?? 2);
    this.maxBuffered = opts.maxBuffered ?? 8 << 20;
    if (!(this.maxBytes >= 24 + 16 + 20)) throw new RangeError(`capture: maxBytes must be at least 60, got ${String(opts.maxBytes)}`);
    this.ownStream = typeof target === 'string';
    this.out = this.open();
  }

  private open(): Writable {
    const s = typeof this.target === 'string' ? createWriteStream(this.target, { flags: 'w' }) : this.target;
    s.on('error', () => {
      this.closed = true; // a full disk or a closed pipe ends the capture, not the tunnel
    });
    s.write(pcapHeader());
    this.written = 24;
    return s;
  }

  private rotate(): void {
    const file = this.target as string;
    this.out.end();
    if (this.maxFiles === 1) rmSync(file, { force: true });
    else {
      for (let i = this.maxFiles - 1; i >= 1; i--) {
        const from = i === 1 ? file : `${file}.${i - 1}`;
        if (existsSync(from)) renameSync(from, `${file}.${i}`);
      }
    }
    this.stats.rotations++;
    this.out = this.open();
  }

  /** One packet, copied now (the caller's buffer may be encrypted in place after this returns). */
  write(packet: Uint8Array): void {
    if (this.closed || this.full) return;
    const len = Math.min(packet.length, SNAPLEN);
    const rec = 16 + len;
    if (this.written + rec > this.maxBytes) {
      if (!this.ownStream) {
        this.full = true;
        this.stats.dropped++;
        return;
      }
      this.rotate();
    }
    if (this.out.writableLength > this.maxBuffered) {
      this.stats.dropped++;
      return;
    }
    const b = Buffer.allocUnsafe(rec);
    const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    b.writeUInt32LE(Math.floor(us / 1e6), 0);
    b.writeUInt32LE(us % 1e6, 4);
    b.writeUInt32LE(len, 8);
    b.writeUInt32LE(packet.length, 12);
    b.set(len === packet.length ? packet : packet.subarray(0, len), 16);
    this.out.write(b);
    this.written += rec;
    this.stats.packets++;
    this.stats.bytes += rec;
  }

  /** Stops capturing; resolves once a file is flushed and closed. A stream given by the caller is left open. */
  close(): Promise<void> {
    this.closed = true;
    if (!this.ownStream) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.out.writableFinished || this.out.destroyed) return resolve();
      this.out.once('error', () => resolve());
      this.out.end(() => resolve());
    });
  }
}
