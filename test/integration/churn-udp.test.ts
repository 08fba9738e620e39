/**
 * Churn (issue 18): 2,000 UDP flows (a socket each: bind, one request, its echo, close),
 * 500 DNS lookups through the tunnel's resolver (answered, and NXDOMAIN) and 300 pings
 * through two in-process tunnels. Afterwards the UDP socket tables, pending lookups and
 * pings are back to the start, and memory is flat.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { bookkeeping, handleCounts, rssPeak, settledMemory, waitFor, type Bookkeeping } from '../harness/churn.js';
import { memoryTrimStats } from '../../src/io/memory.js';

// WGNET_CHURN_UDP=10000 runs the full scale.
const FLOWS = Number(process.env.WGNET_CHURN_UDP ?? 2_000);
const CONCURRENCY = 32;

describe('churn: UDP, DNS and ping through two tunnels', () => {
  let p: TunnelPair;
  let base: { a: Bookkeeping; b: Bookkeeping; mem: Awaited<ReturnType<typeof settledMemory>>; handles: ReturnType<typeof handleCounts> };
  before(async () => {
    p = await tunnelPair({ extraA: 'DNS = 10.66.0.2\n' });
    // b: a UDP echo on 7 and a DNS server on 53 (names under ok.test resolve, anything else is NXDOMAIN).
    const echo = p.b.createSocket('udp4');
    echo.on('message', (m: Buffer, r: { address: string; port: number }) => echo.send(m, r.port, r.address));
    echo.bind(7);
    const dns = p.b.createSocket('udp4');
    dns.on('message', (m: Buffer, r: { address: string; port: number }) => {
      const q = dnsPacket.decode(m);
      const question = q.questions![0]!;
      const ok = question.name.endsWith('.ok.test') && question.type === 'A';
      const answer = dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: dnsPacket.RECURSION_AVAILABLE | (question.name.endsWith('.ok.test') ? 0 : 3),
        questions: [question],
        answers: ok ? [{ type: 'A', name: question.name, ttl: 60, class: 'IN', data: '10.66.0.2' }] : [],
      });
      dns.send(answer, r.port, r.address);
    });
    dns.bind(53);
    await p.a.ping('10.66.0.2');
    await flow(p, 0);
    await waitFor(() => bookkeeping(p.a).apiUdpSockets === 0, 5000, 'warm-up socket closed');
    base = { a: bookkeeping(p.a), b: bookkeeping(p.b), mem: await settledMemory(false), handles: handleCounts() };
  });
  after(async () => {
    await p.close();
  });

  test(`${FLOWS} UDP flows, 500 lookups, 300 pings; tables and pending requests back to the start`, async () => {
    const peak = rssPeak();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < FLOWS) await flow(p, next++);
      }),
    );
    const looked = await Promise.allSettled(Array.from({ length: 500 }, (_, i) => p.a.lookup(i % 5 === 4 ? `h${i}.missing.test` : `h${i}.ok.test`, { family: 4 })));
    assert.equal(looked.filter((r) => r.status === 'fulfilled' && r.value.address === '10.66.0.2').length, 400);
    assert.ok(looked.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason.code === 'ENOTFOUND'));
    for (let round = 0; round < 10; round++) {
      const pings = await Promise.all(Array.from({ length: 30 }, () => p.a.ping('10.66.0.2', { timeout: 5000 })));
      assert.equal(pings.length, 30);
    }
    await waitFor(() => bookkeeping(p.a).apiUdpSockets === base.a.apiUdpSockets && bookkeeping(p.a).netUdpPorts === base.a.netUdpPorts, 10_000, 'UDP sockets closed');
    assert.deepEqual(bookkeeping(p.a), base.a, 'tunnel a');
    assert.deepEqual(bookkeeping(p.b), base.b, 'tunnel b');
    const peakMB = peak.stop();
    const mem = await settledMemory();
    const handles = handleCounts();
    console.log(
      `churn-udp: heap ${base.mem.heapMB.toFixed(1)} -> ${mem.heapMB.toFixed(1)} MB, external ${base.mem.externalMB.toFixed(1)} -> ${mem.externalMB.toFixed(1)} MB, ` +
        `RSS ${base.mem.rssMB.toFixed(0)} -> peak ${peakMB.toFixed(0)} -> ${mem.rssMB.toFixed(0)} MB settled; malloc trims ${JSON.stringify(memoryTrimStats())}; handles ${JSON.stringify(base.handles)} -> ${JSON.stringify(handles)}`,
    );
    assert.ok(handles.resources <= base.handles.resources + 2 && handles.fds <= base.handles.fds + 2, `handles ${JSON.stringify(base.handles)} -> ${JSON.stringify(handles)}`);
    assert.ok(mem.heapMB - base.mem.heapMB < 10, `JS heap grew ${(mem.heapMB - base.mem.heapMB).toFixed(1)} MB`);
    assert.ok(mem.externalMB - base.mem.externalMB < 4, `external memory grew ${(mem.externalMB - base.mem.externalMB).toFixed(1)} MB`);
    assert.ok(mem.rssMB - base.mem.rssMB < 300, `RSS grew ${(mem.rssMB - base.mem.rssMB).toFixed(0)} MB`);
  });
});

/** One UDP flow: a fresh socket, one datagram to b's echo, the exact echo back, closed. */
function flow(p: TunnelPair, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = p.a.createSocket('udp4');
    const msg = Buffer.from(`flow ${i}`);
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`flow ${i}: no echo in 5 s`));
    }, 5000);
    s.on('message', (m: Buffer) => {
      clearTimeout(timer);
      s.close();
      if (m.equals(msg)) resolve();
      else reject(new Error(`flow ${i}: echoed '${m.toString()}'`));
    });
    s.send(msg, 7, '10.66.0.2');
  });
}
