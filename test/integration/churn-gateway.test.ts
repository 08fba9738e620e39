/**
 * Churn (issue 18) through a gateway tunnel: tunnel A routes 127.0.0.0/8 into the tunnel,
 * tunnel B relays it to servers on this host's loopback (onFlow('relay')). 20,000 short TCP
 * connections, 2,000 failed ones (refused by the host, refused by the policy) and 2,000 UDP
 * flows. Afterwards: no gateway flow, held SYN or UDP flow left, both tunnels' bookkeeping and
 * this process's host sockets back to the start, memory levelled off.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';
import { bookkeeping, handleCounts, memoryAfterGc, rssPeak, settledMemory, tcpOf, waitFor, type Bookkeeping } from '../harness/churn.js';
import { memoryTrimStats } from '../../src/io/memory.js';

// The full scale: WGNET_CHURN=100000 WGNET_CHURN_FAILED=10000 WGNET_CHURN_UDP=10000.
const CONNECTIONS = Number(process.env.WGNET_CHURN ?? 20_000);
const FAILED = Number(process.env.WGNET_CHURN_FAILED ?? 2_000);
const UDP_FLOWS = Number(process.env.WGNET_CHURN_UDP ?? 2_000);
const CONCURRENCY = 64;

/** Host sockets of this process by kind (TCPSocketWrap, UDPSocketWrap, ...). */
function handles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) if (/Socket|TCP|UDP|Pipe/.test(r)) out[r] = (out[r] ?? 0) + 1;
  return out;
}

describe('churn: TCP and UDP through a gateway tunnel', () => {
  let a: Tunnel;
  let b: Tunnel;
  let tcpServer: net.Server;
  let udpEcho: dgram.Socket;
  let tcpPort = 0;
  let udpPort = 0;
  let closedPort = 0;
  let base: { a: Bookkeeping; b: Bookkeeping; handles: Record<string, number>; counts: ReturnType<typeof handleCounts>; mem: Awaited<ReturnType<typeof settledMemory>> };

  before(async () => {
    const ka = keyPair();
    const kb = keyPair();
    b = await Tunnel.create(`[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.88.0.2/24\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.88.0.1/32\n`);
    a = await Tunnel.create(`[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.88.0.1/24\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.88.0.0/24, 127.0.0.0/8\nEndpoint = 127.0.0.1:${b.listenPort}\n`);
    b.onFlow('relay', { allow: ['127.0.0.0/8'], udpTimeout: 1000 });
    tcpServer = net.createServer((s) => {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => {});
    });
    tcpServer.listen(0, '127.0.0.1');
    await once(tcpServer, 'listening');
    tcpPort = (tcpServer.address() as net.AddressInfo).port;
    udpEcho = dgram.createSocket('udp4');
    udpEcho.on('message', (m, r) => udpEcho.send(m, r.port, r.address));
    udpEcho.bind(0, '127.0.0.1');
    await once(udpEcho, 'listening');
    udpPort = udpEcho.address().port;
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    closedPort = (probe.address() as net.AddressInfo).port;
    probe.close();
    await a.ping('10.88.0.2');
    await tcpOne(a, tcpPort, 0);
    await udpOne(a, udpPort, 0);
    await settled();
    base = { a: bookkeeping(a), b: bookkeeping(b), handles: handles(), counts: handleCounts(), mem: await settledMemory(false) };
  });
  after(async () => {
    await a.close();
    await b.close();
    tcpServer.close();
    udpEcho.close();
  });

  /** Gateway flows closed, held SYNs and UDP flows gone, both stacks' connections out of TIME-WAIT. */
  async function settled(): Promise<void> {
    await waitFor(() => {
      const g = b.gatewayStats()!;
      return g.flows === 0 && g.heldSyns === 0 && g.udpFlows === 0;
    }, 20_000, 'gateway flows, held SYNs and UDP flows gone');
    await waitFor(() => tcpOf(a).connectionCount === 0 && tcpOf(b).connectionCount === 0, 20_000, 'TCP connections gone on both tunnels');
  }

  test(`${CONNECTIONS} TCP connections, ${FAILED} failed, ${UDP_FLOWS} UDP flows through the gateway; nothing left behind`, async () => {
    const peak = rssPeak();
    const mems: Awaited<ReturnType<typeof memoryAfterGc>>[] = [];
    for (let half = 0; half < 2; half++) {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < CONNECTIONS / 2) await tcpOne(a, tcpPort, half * (CONNECTIONS / 2) + next++);
        }),
      );
      await settled();
      mems.push(await memoryAfterGc());
    }

    // Refused by the host (nothing listens on closedPort) and by the policy (10.88.0.77 is not allowed): a RST each.
    const codes = new Map<string, number>();
    for (let round = 0; round < FAILED / 100; round++) {
      await Promise.all(
        Array.from({ length: 100 }, (_, k) =>
          new Promise<void>((resolve) => {
            const s = k % 2 === 0 ? a.connect(closedPort, '127.0.0.1') : a.connect(80, '10.88.0.77');
            s.on('connect', () => s.destroy());
            s.on('error', (e: NodeJS.ErrnoException) => codes.set(e.code ?? '?', (codes.get(e.code ?? '?') ?? 0) + 1));
            s.on('close', () => resolve());
          }),
        ),
      );
    }
    assert.deepEqual(Object.fromEntries(codes), { ECONNREFUSED: FAILED });

    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < UDP_FLOWS) await udpOne(a, udpPort, next++);
      }),
    );
    const st = b.gatewayStats()!;
    assert.ok(st.udpFlows <= UDP_FLOWS && st.flows <= UDP_FLOWS, `gateway holds ${st.flows} flows`);

    await settled(); // UDP flows close after their 1 s idle timeout
    assert.deepEqual(bookkeeping(a), base.a, 'tunnel a');
    assert.deepEqual(bookkeeping(b), base.b, 'tunnel b (the gateway)');
    await waitFor(() => JSON.stringify(handles()) === JSON.stringify(base.handles), 10_000, `host sockets back to ${JSON.stringify(base.handles)} (now ${JSON.stringify(handles())})`);
    const counters = b.gatewayStats()!.counters;
    assert.equal(counters['tcp.flows'], CONNECTIONS + FAILED + 1);
    // A new socket may get the source port of one whose flow is still open (idle timeout 1 s): one
    // flow for both. More flows reuse more ports (10,000: 75 % new flows), hence the loose lower bound.
    assert.ok(counters['udp.flows']! <= UDP_FLOWS + 1 && counters['udp.flows']! > UDP_FLOWS * 0.5, `${counters['udp.flows']} UDP flows`);
    const peakMB = peak.stop();
    const mem = await settledMemory();
    const counts = handleCounts();
    const [m1, m2] = mems as [(typeof mems)[0], (typeof mems)[0]];
    const fmt = (m: { heapMB: number; externalMB: number; rssMB: number }): string => `heap ${m.heapMB.toFixed(1)} MB, external ${m.externalMB.toFixed(1)} MB, RSS ${m.rssMB.toFixed(0)} MB`;
    console.log(
      `churn-gateway: start ${fmt(base.mem)}; after ${CONNECTIONS / 2}: ${fmt(m1)}; after ${CONNECTIONS}: ${fmt(m2)}; at the end, settled: ${fmt(mem)} (RSS ${mem.rssMB >= base.mem.rssMB ? '+' : ''}${(((mem.rssMB - base.mem.rssMB) / base.mem.rssMB) * 100).toFixed(0)} % of the start); ` +
        `RSS peak ${peakMB.toFixed(0)} MB; malloc trims ${JSON.stringify(memoryTrimStats())}; handles ${JSON.stringify(base.counts)} -> ${JSON.stringify(counts)}`,
    );
    assert.ok(mem.heapMB - base.mem.heapMB < 10, `JS heap grew ${(mem.heapMB - base.mem.heapMB).toFixed(1)} MB (a leak)`);
    assert.ok(mem.externalMB - base.mem.externalMB < 4, `external memory grew ${(mem.externalMB - base.mem.externalMB).toFixed(1)} MB`);
    // RSS is not asserted to level off: glibc keeps freed arenas mapped, and under a loaded
    // machine it kept rising for 20,000 connections while the heap and external memory,
    // the leak detectors above, stayed flat. Only a total bound holds it.
  });
});

function tcpOne(a: Tunnel, port: number, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const msg = Buffer.from(`gw ${String(i).padStart(10, '0')}`);
    const s = a.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    s.on('connect', () => s.end(msg));
    s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    s.on('error', reject);
    s.on('close', () => (got.equals(msg) ? resolve() : reject(new Error(`connection ${i}: echoed '${got.toString()}'`))));
  });
}

function udpOne(a: Tunnel, port: number, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = a.createSocket('udp4');
    const msg = Buffer.from(`gw flow ${i}`);
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`UDP flow ${i}: no echo in 5 s`));
    }, 5000);
    s.on('message', (m: Buffer) => {
      clearTimeout(timer);
      s.close();
      if (m.equals(msg)) resolve();
      else reject(new Error(`UDP flow ${i}: echoed '${m.toString()}'`));
    });
    s.send(msg, port, '127.0.0.1');
  });
}
