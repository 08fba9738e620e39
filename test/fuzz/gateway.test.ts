/**
 * Fuzz target: gateway mode. Tunnel B relays for its peer A (onFlow('relay'), loopback
 * allowed); random IPv4/IPv6 packets for arbitrary destinations — SYNs and other TCP
 * segments, UDP datagrams, ICMP — go straight into B's Interface from A's addresses (what
 * cryptokey routing lets through). Invariants:
 * - nothing throws, synchronously or later from a host socket's callback;
 * - the held-SYN table stays within the pending-TCP limit, UDP flows and gateway flows
 *   within the flow limit, at every step;
 * - once the packets stop, every held SYN, UDP flow and gateway flow is gone, and
 * - A's own TCP and UDP traffic through the gateway still works.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import fc from 'fast-check';
import { Tunnel } from '../../src/index.js';
import { keyPair } from '../harness/tunnel-pair.js';
import { buildIPv4, buildIPv6, buildTcp, buildUdp, PROTO, type TcpFlagName } from '../harness/packets.js';
import { finishChecksum, pseudoHeaderSum, sumBytes } from '../../src/util/checksum.js';
import { mustParseIp } from '../../src/util/ip.js';
import { bookkeeping, waitFor } from '../harness/churn.js';
import { budget, checkAsync, mutate, mutationArb, type Mutation, watchUncaught } from './lib.js';

const MAX_FLOWS = 128;
const MAX_PENDING = 32;

describe('fuzz: gateway mode fed packets for any destination', () => {
  let a: Tunnel;
  let b: Tunnel;
  let tcpEcho: net.Server;
  let udpEcho: dgram.Socket;
  let tcpPort = 0;
  let udpPort = 0;
  let closedPort = 0;
  let uncaught: ReturnType<typeof watchUncaught>;

  before(async () => {
    uncaught = watchUncaught();
    const ka = keyPair();
    const kb = keyPair();
    b = await Tunnel.create(`[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.88.0.2/24, fd88::2/64\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.88.0.1/32, fd88::1/128\n`);
    a = await Tunnel.create(`[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.88.0.1/24, fd88::1/64\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.88.0.0/24, 127.0.0.0/8, fd88::/64\nEndpoint = 127.0.0.1:${b.listenPort}\n`);
    b.onFlow('relay', { allow: ['127.0.0.0/8'], maxFlows: MAX_FLOWS, maxPendingTcp: MAX_PENDING, maxPendingTcpPerPeer: MAX_PENDING, udpTimeout: 500, dnsTimeout: 500, connectTimeout: 1000 });
    tcpEcho = net.createServer((s) => {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => {});
    });
    tcpEcho.listen(0, '127.0.0.1');
    await once(tcpEcho, 'listening');
    tcpPort = (tcpEcho.address() as net.AddressInfo).port;
    udpEcho = dgram.createSocket('udp4');
    udpEcho.on('message', (m, r) => udpEcho.send(m, r.port, r.address));
    udpEcho.bind(0, '127.0.0.1');
    await once(udpEcho, 'listening');
    udpPort = udpEcho.address().port;
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    closedPort = (probe.address() as net.AddressInfo).port;
    probe.close();
    await a.ping('10.88.0.2');
  });
  after(async () => {
    uncaught.stop();
    await a.close();
    await b.close();
    tcpEcho.close();
    udpEcho.close();
  });

  const dst4 = fc.oneof(
    fc.constantFrom('127.0.0.1', '127.0.0.1', '127.5.6.7', '10.88.0.2', '10.88.0.77', '0.0.0.0', '255.255.255.255', '224.0.0.1', '192.0.2.1', '8.8.8.8'),
    fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 })).map((x) => x.join('.')),
  );
  const dst6 = fc.constantFrom('::1', 'fd88::2', 'fd88::77', '2001:db8::1', 'ff02::1', '::');
  // Sources are the peer's own addresses: cryptokey routing drops anything else before the netstack
  // sees it (a made-up source's SYN-ACK would go nowhere and hold its flow for the SYN-ACK retries).
  const src4 = fc.constant('10.88.0.1');
  const src6 = fc.constant('fd88::1');

  interface Pkt {
    v6: boolean;
    src: string;
    dst: string;
    proto: 'tcp' | 'udp' | 'icmp' | 'other';
    sport: number;
    dport: 'echo' | 'closed' | 'zero' | number;
    flags: TcpFlagName[];
    seq: number;
    payload: Uint8Array;
    icmpType: number;
    mutations: Mutation[];
  }

  const pktArb: fc.Arbitrary<Pkt> = fc.boolean().chain((v6) =>
    fc.record({
      v6: fc.constant(v6),
      src: v6 ? src6 : src4,
      dst: v6 ? dst6 : dst4,
      proto: fc.constantFrom('tcp', 'tcp', 'tcp', 'udp', 'udp', 'icmp', 'other'),
      sport: fc.oneof(fc.integer({ min: 1024, max: 65535 }), fc.constantFrom(0, 53, 40000)),
      dport: fc.oneof(fc.constantFrom('echo' as const, 'echo' as const, 'closed' as const, 'zero' as const), fc.constantFrom(53, 80, 443, 9)),
      flags: fc.oneof(fc.constant(['SYN'] as TcpFlagName[]), fc.constant(['SYN'] as TcpFlagName[]), fc.subarray(['SYN', 'ACK', 'RST', 'FIN', 'PSH', 'URG'] as TcpFlagName[])),
      seq: fc.nat(),
      payload: fc.uint8Array({ maxLength: 64 }),
      icmpType: fc.constantFrom(8, 8, 0, 3, 11, 13),
      mutations: fc.oneof(fc.constant([] as Mutation[]), fc.constant([] as Mutation[]), fc.array(mutationArb, { minLength: 1, maxLength: 3 })),
    }),
  );

  function build(p: Pkt): Uint8Array {
    const src = mustParseIp(p.src);
    const dst = mustParseIp(p.dst);
    // Loopback destinations get a port that is known: our echo or one that is closed (a random port
    // might be a real service on this host, whose SYN-ACK to a made-up sender would linger).
    const port = p.dport === 'echo' ? (p.proto === 'udp' ? udpPort : tcpPort) : p.dport === 'closed' ? closedPort : p.dport === 'zero' ? 0 : p.dst.startsWith('127.') || p.dst === '::1' ? closedPort : p.dport;
    let body: Uint8Array;
    let proto: number;
    if (p.proto === 'tcp') {
      body = buildTcp(src, dst, { srcPort: p.sport, dstPort: port, seq: p.seq, ack: p.flags.includes('ACK') ? p.seq ^ 0x5a5a : undefined, flags: p.flags, payload: p.payload.subarray(0, 16) }).slice();
      proto = PROTO.TCP;
    } else if (p.proto === 'udp') {
      body = buildUdp(src, dst, p.sport, port, p.payload);
      proto = PROTO.UDP;
    } else if (p.proto === 'icmp') {
      // No echo requests to loopback: each relayed one runs the system ping.
      const type = p.icmpType === 8 && (p.dst.startsWith('127.') || p.dst === '::1') ? 0 : p.icmpType;
      body = new Uint8Array(8 + p.payload.length);
      body[0] = p.v6 ? (type === 8 ? 128 : type === 0 ? 129 : 1) : type;
      body[4] = p.sport >> 8;
      body[5] = p.sport & 0xff;
      body.set(p.payload, 8);
      const c = finishChecksum((p.v6 ? pseudoHeaderSum(src, dst, PROTO.ICMPV6, body.length) : 0) + sumBytes(body));
      body[2] = c >> 8;
      body[3] = c & 0xff;
      proto = p.v6 ? PROTO.ICMPV6 : PROTO.ICMP;
    } else {
      body = p.payload;
      proto = 47;
    }
    const pkt = p.v6 ? buildIPv6(src, dst, proto, body) : buildIPv4(src, dst, proto, body);
    return p.mutations.length ? mutate(pkt, p.mutations) : pkt;
  }

  function bounded(where: string): void {
    const g = b.gatewayStats()!;
    assert.ok(g.heldSyns <= MAX_PENDING, `${where}: ${g.heldSyns} held SYNs (pending limit ${MAX_PENDING})`);
    assert.ok(g.udpFlows <= MAX_FLOWS, `${where}: ${g.udpFlows} UDP flows (limit ${MAX_FLOWS})`);
    assert.ok(g.flows <= MAX_FLOWS, `${where}: ${g.flows} gateway flows (limit ${MAX_FLOWS})`);
  }

  async function stillWorks(): Promise<void> {
    const s = a.connect(tcpPort, '127.0.0.1');
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got += d));
    s.on('connect', () => s.end('through the gateway'));
    await once(s, 'close');
    assert.equal(got, 'through the gateway');
    const u = a.createSocket('udp4');
    const reply = once(u, 'message');
    u.send('udp through the gateway', udpPort, '127.0.0.1');
    const [m] = (await Promise.race([reply, new Promise((_, j) => setTimeout(() => j(new Error('no UDP echo through the gateway')), 3000))])) as [Buffer];
    assert.equal(m.toString(), 'udp through the gateway');
    u.close();
  }

  // Found by this target ("nothing throws"): a UDP datagram to an allowed destination's port 0 opened
  // a host socket whose connect(0) threw out of engine.pump(): from a real peer, an uncaught exception.
  test('regression: a UDP datagram to port 0 is dropped and counted, nothing thrown', () => {
    const before = b.engine.iface.stats['drop.flow.port'] ?? 0;
    for (const [src, dst] of [['10.88.0.1', '127.0.0.1'], ['fd88::1', '::1']] as const) {
      const s = mustParseIp(src);
      const d = mustParseIp(dst);
      const udp = buildUdp(s, d, 40000, 0, new Uint8Array([1]));
      const pkt = s.length === 4 ? buildIPv4(s, d, PROTO.UDP, udp) : buildIPv6(s, d, PROTO.UDP, udp);
      assert.doesNotThrow(() => {
        b.engine.iface.handleInput(b.engine.now(), pkt);
        b.engine.pump();
      });
    }
    assert.equal(b.engine.iface.stats['drop.flow.port'], before + 2);
    assert.equal(b.gatewayStats()!.udpFlows, 0);
  });

  test('random packets for any destination: bounded tables, all flows gone afterwards, real traffic works', async () => {
    await checkAsync(
      fc.asyncProperty(fc.array(pktArb, { minLength: 1, maxLength: 100 }), async (pkts) => {
        const iface = b.engine.iface;
        for (const [i, p] of pkts.entries()) {
          const bytes = build(p);
          assert.doesNotThrow(() => {
            iface.handleInput(b.engine.now(), bytes);
            b.engine.pump();
          }, `packet ${i}`);
          bounded(`packet ${i}`);
          if (i % 10 === 9) await new Promise((r) => setImmediate(r)); // host sockets answer meanwhile
        }
        await new Promise((r) => setTimeout(r, 5));
        bounded('after the batch');
        uncaught.check();
      }),
      budget('gateway', 500),
    );
    await waitFor(() => {
      const g = b.gatewayStats()!;
      return g.flows === 0 && g.heldSyns === 0 && g.udpFlows === 0;
    }, 15_000, `gateway flows, held SYNs and UDP flows gone (now ${JSON.stringify(b.gatewayStats())})`);
    uncaught.check();
    await stillWorks();
    await waitFor(() => bookkeeping(b).gatewayFlows === 0 && bookkeeping(b).udpFlows === 0, 15_000, 'the legitimate flows closed too');
    if (process.env.WGNET_FUZZ_STATS) console.log('gateway counters reached:', b.gatewayStats()!.counters);
  });
});
