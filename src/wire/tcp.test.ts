/**
 * TCP header and option codec (RFC 9293 §3.1, §3.2; RFC 7323; RFC 2018), tested on
 * unaligned buffers with options built by hand byte by byte (not by the encoder).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseTcp, writeSynOptions, writeOptions, optionsLength, seqLt, seqGt, seqLe, seqGe, seqAdd, seqDiff } from './tcp.js';

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
