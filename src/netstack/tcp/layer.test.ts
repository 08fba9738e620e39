/**
 * TCP drops are counted and traced at debug (DESIGN §5): one helper, asked of the trace once
 * per drop, with fields only when the trace takes debug.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRng } from '../../util/rng.js';
import { MemoryTrace, type Trace, type TraceLevel } from '../../util/trace.js';
import { ipEqual } from '../../util/ip.js';
import { fillTcpChecksum, writeTcpHeader } from '../../wire/tcp.js';
import { TcpLayer } from './layer.js';

const US = new Uint8Array([10, 0, 0, 1]);
const PEER = new Uint8Array([10, 0, 0, 2]);

function layer(trace: Trace): TcpLayer {
  return new TcpLayer({ rng: new SeededRng(1), trace, mtu: 1420, isLocal: (a) => ipEqual(a, US), sourceFor: () => US });
}

/** A bare segment from PEER:40000 to US:port, checksummed (flags 0x10 = ACK, 0x02 = SYN). */
function segment(port: number, flags: number, seq = 1000): Uint8Array {
  const s = new Uint8Array(1 + 20).subarray(1);
  writeTcpHeader(s, 0, 40000, port, seq, 2000, flags, 512);
  fillTcpChecksum(s, PEER, US);
  return s;
}

test('a segment with a bad checksum is counted and traced at debug with its ends', () => {
  const trace = new MemoryTrace('debug');
  const t = layer(trace);
  const s = segment(80, 0x10);
  s[17]! ^= 0xff;
  t.handleSegment(0, PEER, US, s);
  assert.equal(t.stats['drop.checksum'], 1);
  assert.equal(t.pollTransmit(0), undefined, 'dropped unanswered');
  assert.deepEqual(trace.entries, [{ level: 'debug', event: 'tcp drop.checksum', fields: { src: '10.0.0.2', dst: '10.0.0.1' } }]);
});

test('a segment for no connection: RST, counted and traced with its header (RFC 9293 §3.10.7.1)', () => {
  const trace = new MemoryTrace('debug');
  const t = layer(trace);
  t.handleSegment(0, PEER, US, segment(81, 0x10));
  assert.equal(t.stats.rstNoConnection, 1);
  assert.ok(t.pollTransmit(0), 'answered with RST');
  assert.deepEqual(trace.entries, [
    { level: 'debug', event: 'tcp rstNoConnection', fields: { src: '10.0.0.2:40000', dst: '10.0.0.1:81', flags: '.', seq: 1000, ack: 2000, window: 512 } },
  ]);
});

test('a drop on a connection names its state', () => {
  const trace = new MemoryTrace('debug');
  const t = layer(trace);
  t.listen({ port: 80 });
  t.handleSegment(0, PEER, US, segment(80, 0x02)); // SYN: SYN-RECEIVED
  assert.equal(t.connectionCount, 1);
  t.handleSegment(0, PEER, US, segment(80, 0x00, 1001)); // no ACK bit, at RCV.NXT
  assert.equal(t.stats['drop.noAck'], 1);
  const e = trace.entries.find((x) => x.event === 'tcp drop.noAck');
  assert.equal(e?.fields?.state, 'SYN-RECEIVED');
  assert.equal(e?.fields?.src, '10.0.0.2:40000');
});

test('below debug: counted, the trace asked once per drop, nothing logged', () => {
  const asked: TraceLevel[] = [];
  let logged = 0;
  const t = layer({ enabled: (l) => (asked.push(l), false), log: () => void logged++ });
  const s = segment(80, 0x10);
  s[17]! ^= 0xff;
  t.handleSegment(0, PEER, US, s);
  t.handleSegment(0, PEER, US, new Uint8Array(10));
  assert.deepEqual([t.stats['drop.checksum'], t.stats['drop.short']], [1, 1]);
  assert.deepEqual(asked, ['debug', 'debug']);
  assert.equal(logged, 0);
  const quiet = new MemoryTrace('info');
  const u = layer(quiet);
  u.handleSegment(0, PEER, US, s);
  assert.equal(u.stats['drop.checksum'], 1);
  assert.deepEqual(quiet.entries, []);
});
