/** Tail loss probe (RFC 8985 §7) at packet level: a lost tail is probed near 2 × SRTT, long before the RTO. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpLayer } from '../../src/netstack/tcp/index.js';
import { SeededRng } from '../../src/util/rng.js';
import { parseIp, ipEqual } from '../../src/util/ip.js';
import type { IpAddr } from '../../src/util/ip.js';
import { buildTcp, expectTcp, tcpFields } from '../harness/packets.js';

const US = parseIp('10.0.0.1')!;
const PEER = parseIp('10.0.0.2')!;
/** RFC 6298 §2.4 floor as Linux uses it; the probe must come before this. */
const MIN_RTO_MS = 200;

test('the last segment of an unacknowledged tail is resent after ~2 SRTT, before the RTO', () => {
  const t = new TcpLayer({ rng: new SeededRng(5), mtu: 1420, isLocal: (a: IpAddr) => ipEqual(a, US), sourceFor: () => US });
  const l = t.listen({ port: 80 });
  const seg = (now: number, b: Parameters<typeof buildTcp>[2]): Uint8Array[] => {
    t.handleSegment(now, PEER, US, buildTcp(PEER, US, b));
    const out: Uint8Array[] = [];
    for (let o = t.pollTransmit(now); o; o = t.pollTransmit(now)) out.push(o.segment);
    return out;
  };
  const [sa] = seg(0, { srcPort: 4000, dstPort: 80, seq: 100, flags: ['SYN'], options: [2, 4, 0x05, 0x78] });
  const iss = tcpFields(sa!).seq;
  seg(20, { srcPort: 4000, dstPort: 80, seq: 101, ack: iss + 1, flags: ['ACK'] });
  for (let e = t.pollEvent(); e; e = t.pollEvent());
  const c = l.accept()!;
  // One exchange at a 20 ms RTT gives an SRTT.
  c.send(20, new Uint8Array(100));
  for (let o = t.pollTransmit(20); o; o = t.pollTransmit(20));
  seg(40, { srcPort: 4000, dstPort: 80, seq: 101, ack: iss + 101, flags: ['ACK'] });
  // A three-segment tail that is lost entirely.
  c.send(40, new Uint8Array(3000));
  const tail: Uint8Array[] = [];
  for (let o = t.pollTransmit(40); o; o = t.pollTransmit(40)) tail.push(o.segment);
  assert.ok(tail.length >= 2);
  const last = tail[tail.length - 1]!;
  let probeAt = -1;
  for (let now = 41; now < 40 + MIN_RTO_MS && probeAt < 0; now++) {
    const d = t.pollTimeout();
    if (d && d.at <= now) t.handleTimeout(now);
    for (let o = t.pollTransmit(now); o; o = t.pollTransmit(now)) {
      // It carries data up to the highest sequence sent (its start may differ from the original segmentation).
      const p = tcpFields(o.segment);
      const lf = tcpFields(last);
      expectTcp(o.segment, { flags: ['ACK'] });
      assert.ok(p.payloadLength > 0);
      assert.equal((p.seq + p.payloadLength) >>> 0, (lf.seq + lf.payloadLength) >>> 0, 'probe ends at the tail');
      probeAt = now;
    }
  }
  assert.ok(probeAt > 40, `probe sent before the ${MIN_RTO_MS} ms RTO floor`);
  assert.ok(probeAt - 40 >= 2 * 20 - 5, `not before ~2 SRTT (${probeAt - 40} ms)`);
});
