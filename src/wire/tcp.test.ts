/**
 * TCP header and option codec (RFC 9293 §3.1, §3.2; RFC 7323; RFC 2018), tested on
 * unaligned buffers with options built by hand byte by byte (not by the encoder).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseTcp,
  writeSynOptions,
  writeOptions,
  optionsLength,
  writeTcpHeader,
  fillTcpChecksum,
  tcpChecksumOk,
  tcpSrcPort,
  tcpDstPort,
  tcpSeq,
  tcpFlags,
  seqLt,
  seqGt,
  seqLe,
  seqGe,
  seqAdd,
  seqDiff,
} from './tcp.js';

/** A header at byte offset 3 of its ArrayBuffer, so no field is aligned. */
function header(opts: number[], fields: { flags?: number; seq?: number; ack?: number; win?: number; dataOffWords?: number } = {}, payload = 0): Uint8Array {
  const hl = 20 + opts.length;
  const buf = new Uint8Array(3 + hl + payload);
  const s = buf.subarray(3);
  const dv = new DataView(s.buffer, s.byteOffset, s.byteLength);
  dv.setUint16(0, 40000);
  dv.setUint16(2, 80);
  dv.setUint32(4, fields.seq ?? 0xfffffff0);
  dv.setUint32(8, fields.ack ?? 0x12345678);
  s[12] = (fields.dataOffWords ?? hl / 4) << 4;
  s[13] = fields.flags ?? 0x12;
  dv.setUint16(14, fields.win ?? 0xfedc);
  s.set(opts, 20);
  return s;
}

describe('parseTcp', () => {
  test('fixed header fields (RFC 9293 §3.1)', () => {
    const s = header([]);
    assert.notEqual(s.byteOffset % 4, 0);
    const h = parseTcp(s)!;
    assert.equal(h.srcPort, 40000);
    assert.equal(h.dstPort, 80);
    assert.equal(h.seq, 0xfffffff0);
    assert.equal(h.ack, 0x12345678);
    assert.equal(h.flags, 0x12);
    assert.equal(h.window, 0xfedc);
    assert.equal(h.headerLen, 20);
    assert.equal(h.mss, undefined);
    assert.equal(h.wscale, undefined);
    assert.equal(h.sackOk, false);
    assert.equal(h.tsVal, undefined);
    assert.equal(h.sack, undefined);
  });

  test('SYN options: MSS, NOP, window scale, SACK-permitted, timestamps', () => {
    const opts = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1];
    const h = parseTcp(header(opts))!;
    assert.equal(h.mss, 1460);
    assert.equal(h.wscale, 7);
    assert.equal(h.sackOk, true);
    assert.equal(h.tsVal, 0xdeadbeef);
    assert.equal(h.tsEcr, 1);
  });

  test('window scale above 14 is treated as 14 (RFC 7323 §2.3)', () => {
    assert.equal(parseTcp(header([3, 3, 15, 1]))!.wscale, 14);
    assert.equal(parseTcp(header([3, 3, 255, 1]))!.wscale, 14);
    assert.equal(parseTcp(header([3, 3, 14, 1]))!.wscale, 14);
  });

  test('SACK blocks, including ones that wrap 2^32 (RFC 2018 §3)', () => {
    const opts = [1, 1, 5, 18, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0, 0, 0x10, 0, 0, 0, 0x20, 0];
    const h = parseTcp(header(opts))!;
    assert.deepEqual(h.sack, [0xffffff00, 0x100, 0x1000, 0x2000]);
  });

  test('unknown options are skipped by their length; EOL ends the list', () => {
    const h = parseTcp(header([99, 6, 1, 2, 3, 4, 2, 4, 0x02, 0x18, 0, 3, 3, 9]))!; // after EOL: junk never read
    assert.equal(h.mss, 536);
    assert.equal(h.wscale, undefined);
  });

  test('payload after the header is not parsed as options', () => {
    const s = header([2, 4, 0x05, 0xb4], {}, 10);
    s.fill(0xff, 24);
    const h = parseTcp(s)!;
    assert.equal(h.headerLen, 24);
    assert.equal(h.mss, 1460);
  });

  test('invalid: short segment, bad data offset, bad option lengths', () => {
    assert.equal(parseTcp(new Uint8Array(19)), undefined);
    assert.equal(parseTcp(header([], { dataOffWords: 4 })), undefined); // < 20 bytes
    assert.equal(parseTcp(header([], { dataOffWords: 6 })), undefined); // beyond the segment
    assert.equal(parseTcp(header([2, 0, 0, 0])), undefined); // length 0
    assert.equal(parseTcp(header([2, 1, 0, 0])), undefined); // length 1
    assert.equal(parseTcp(header([1, 1, 1, 2])), undefined); // kind with no room for its length byte
    assert.equal(parseTcp(header([99, 8, 0, 0])), undefined); // runs past the header
    assert.equal(parseTcp(header([2, 3, 0, 1])), undefined); // MSS must be 4
    assert.equal(parseTcp(header([3, 4, 7, 1])), undefined); // window scale must be 3
    assert.equal(parseTcp(header([4, 3, 0, 1])), undefined); // SACK-permitted must be 2
    assert.equal(parseTcp(header([5, 7, 0, 0, 0, 0, 0, 0])), undefined); // SACK not 2 + 8n
    assert.equal(parseTcp(header([8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])), undefined); // timestamps must be 10
  });

  test('MSS 0 is parsed as 0 (policy is the connection\'s)', () => {
    assert.equal(parseTcp(header([2, 4, 0, 0]))!.mss, 0);
  });

  test('never throws on random bytes', () => {
    let x = 12345;
    for (let n = 0; n < 2000; n++) {
      const len = 20 + (n % 60);
      const b = new Uint8Array(len + 1).subarray(1);
      for (let i = 0; i < len; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        b[i] = x >>> 24;
      }
      parseTcp(b);
    }
  });
});

describe('option encoders', () => {
  test('SYN options round-trip and are a multiple of 4', () => {
    for (const ws of [undefined, 0, 7, 14]) {
      for (const sack of [false, true]) {
        for (const ts of [undefined, { val: 0x01020304, ecr: 0 }]) {
          const o = new Uint8Array(1 + 40).subarray(1);
          const n = writeSynOptions(o, 0, 1380, ws, sack, ts);
          assert.equal(n % 4, 0);
          assert.ok(n <= 40);
          const h = parseTcp(header(Array.from(o.subarray(0, n))))!;
          assert.equal(h.mss, 1380);
          assert.equal(h.wscale, ws);
          assert.equal(h.sackOk, sack);
          assert.equal(h.tsVal, ts?.val);
        }
      }
    }
  });

  test('data options: timestamps + up to 3 SACK blocks fit in 40 bytes', () => {
    const blocks = [0xfffffff0, 0x10, 100, 200, 300, 400];
    const o = new Uint8Array(3 + 40).subarray(3);
    const n = writeOptions(o, 0, { val: 7, ecr: 9 }, blocks);
    assert.equal(n, optionsLength(true, 3));
    assert.equal(n, 12 + 4 + 24);
    assert.equal(n % 4, 0);
    const h = parseTcp(header(Array.from(o.subarray(0, n))))!;
    assert.equal(h.tsVal, 7);
    assert.equal(h.tsEcr, 9);
    assert.deepEqual(h.sack, blocks);
    assert.equal(optionsLength(false, 0), 0);
  });
});

describe('header writer', () => {
  test('a hand-made vector: every field at its RFC 9293 §3.1 offset, big-endian', () => {
    const buf = new Uint8Array(5 + 20).fill(0xee);
    // SYN+ACK from 50000 to 443, data offset 8 words (32 bytes with options), urgent pointer 0x0102.
    writeTcpHeader(buf, 5, 50000, 443, 0x01020304, 0xa0b0c0d0, 0x12, 0xffff, 32, 0x0102);
    assert.deepEqual(Array.from(buf.subarray(0, 5)), [0xee, 0xee, 0xee, 0xee, 0xee], 'nothing written before off');
    assert.deepEqual(
      Array.from(buf.subarray(5)),
      [0xc3, 0x50, 0x01, 0xbb, 0x01, 0x02, 0x03, 0x04, 0xa0, 0xb0, 0xc0, 0xd0, 0x80, 0x12, 0xff, 0xff, 0x00, 0x00, 0x01, 0x02],
    );
  });

  test('round trip through parseTcp, with options, on an unaligned buffer', () => {
    for (const [flags, hlOpts] of [
      [0x02, true],
      [0x10, false],
      [0x14, false],
      [0x19, true],
    ] as const) {
      const s = new Uint8Array(3 + 60).subarray(3);
      assert.notEqual(s.byteOffset % 4, 0);
      const olen = hlOpts ? writeSynOptions(s, 20, 1400, 7, true, { val: 0xcafe, ecr: 0xbeef }) : writeOptions(s, 20, { val: 5, ecr: 6 }, [100, 200]);
      writeTcpHeader(s, 0, 65535, 1, 0xffffffff, 0x80000000, flags, 0x1234, 20 + olen);
      const seg = s.subarray(0, 20 + olen);
      const h = parseTcp(seg)!;
      assert.equal(h.srcPort, 65535);
      assert.equal(h.dstPort, 1);
      assert.equal(h.seq, 0xffffffff);
      assert.equal(h.ack, 0x80000000);
      assert.equal(h.flags, flags);
      assert.equal(h.window, 0x1234);
      assert.equal(h.headerLen, 20 + olen);
      if (hlOpts) assert.deepEqual([h.mss, h.wscale, h.sackOk, h.tsVal, h.tsEcr], [1400, 7, true, 0xcafe, 0xbeef]);
      else assert.deepEqual([h.tsVal, h.tsEcr, h.sack], [5, 6, [100, 200]]);
      assert.equal(tcpSrcPort(seg), 65535);
      assert.equal(tcpDstPort(seg), 1);
      assert.equal(tcpSeq(seg), 0xffffffff);
      assert.equal(tcpFlags(seg), flags);
    }
  });

  test('the default header length is 20 bytes and the urgent pointer 0', () => {
    const s = new Uint8Array(20).fill(0xff);
    writeTcpHeader(s, 0, 1, 2, 3, 4, 0x04, 0);
    assert.equal(s[12], 0x50);
    assert.deepEqual(Array.from(s.subarray(16)), [0, 0, 0, 0]);
    assert.equal(parseTcp(s)!.headerLen, 20);
  });
});

describe('checksum over the pseudo-header (RFC 9293 §3.1)', () => {
  const v4src = new Uint8Array([192, 0, 2, 1]);
  const v4dst = new Uint8Array([198, 51, 100, 2]);

  test('a hand-computed IPv4 vector, odd length (the last byte is padded with zero)', () => {
    const seg = new Uint8Array(1 + 23).subarray(1);
    writeTcpHeader(seg, 0, 50000, 443, 0x01020304, 0xa0b0c0d0, 0x12, 0xffff);
    seg.set([0x68, 0x69, 0x21], 20); // "hi!"
    seg[16] = 0xab; // stale bytes are overwritten
    fillTcpChecksum(seg, v4src, v4dst);
    // Sum by hand: pseudo-header c000 0201 c633 6402 0006 0017, then the segment's words.
    assert.equal((seg[16]! << 8) | seg[17]!, 0x0f9c);
    assert.ok(tcpChecksumOk(seg, v4src, v4dst));
  });

  test('IPv6: filled then verified; any flipped bit or a different address fails', () => {
    const src = new Uint8Array(16);
    const dst = new Uint8Array(16);
    src.set([0x20, 0x01, 0x0d, 0xb8], 0);
    src[15] = 1;
    dst.set([0x20, 0x01, 0x0d, 0xb8], 0);
    dst[15] = 2;
    const seg = new Uint8Array(3 + 20 + 100).subarray(3);
    for (let i = 20; i < seg.length; i++) seg[i] = (i * 7) & 0xff;
    writeTcpHeader(seg, 0, 40000, 80, 1, 2, 0x18, 512);
    fillTcpChecksum(seg, src, dst);
    assert.ok(tcpChecksumOk(seg, src, dst));
    assert.ok(!tcpChecksumOk(seg, src, dst.map((b, i) => (i === 15 ? 3 : b))));
    for (const bit of [0, 13 * 8 + 1, 8 * seg.length - 1]) {
      seg[bit >> 3]! ^= 1 << (bit & 7);
      assert.ok(!tcpChecksumOk(seg, src, dst), `bit ${bit}`);
      seg[bit >> 3]! ^= 1 << (bit & 7);
    }
  });
});

describe('sequence arithmetic mod 2^32 (RFC 9293 §3.4)', () => {
  test('comparisons across the wrap', () => {
    assert.ok(seqLt(0xffffff00, 0x10));
    assert.ok(seqGt(0x10, 0xffffff00));
    assert.ok(seqLe(5, 5) && seqGe(5, 5));
    assert.equal(seqAdd(0xffffffff, 2), 1);
    assert.equal(seqDiff(1, 0xffffffff), 2);
    assert.equal(seqDiff(0xffffffff, 1), -2);
  });
});
