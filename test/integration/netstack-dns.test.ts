/**
 * The DNS stub resolver against DNS servers written here on a second Interface,
 * reached over the stack's own UDP and TCP with a virtual clock:
 * - a UDP answer with TC set is asked again over TCP (RFC 1035 §4.2.2 length
 *   prefix, RFC 7766 §5), with the UDP try's timeout and failover rules;
 * - SERVFAIL and REFUSED move to the next server and end with Node's codes;
 * - replies that do not parse, carry the wrong ID or question, or come from
 *   the wrong address or port are ignored (RFC 5452 §9.1) and the try keeps waiting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { Interface, type UdpSocket } from '../../src/netstack/interface.js';
import type { TcpConnection, TcpListener } from '../../src/netstack/types.js';
import { DnsClient, type DnsResult } from '../../src/netstack/dns.js';
import { SeededRng } from '../../src/util/rng.js';
import { mustParseIp, formatIp, type IpAddr } from '../../src/util/ip.js';

const NS1 = mustParseIp('10.9.0.2');
const NS2 = mustParseIp('10.9.0.3');
const SPOOF = mustParseIp('10.9.0.4');
const NS6 = mustParseIp('fd09::2');

type Transport = 'udp' | 'tcp';
interface Reply {
  data: Uint8Array;
  /** Sent this many ms after the query arrived. */
  delayMs?: number;
  /** Sent from another address on port 53, or from the server's address on another port. */
  from?: 'other-address' | 'other-port';
}
type Handler = (q: dnsPacket.Packet, ctx: { server: string; transport: Transport }) => Reply[];

/** Answers `q` with `answers`; `tc`, `rcode`, `id` and `name` bend it for the tests. */
function reply(q: dnsPacket.Packet, o: { answers?: dnsPacket.Answer[]; rcode?: number; tc?: boolean; id?: number; name?: string } = {}): Reply {
  const question = q.questions![0]!;
  const data = dnsPacket.encode({
    type: 'response',
    id: o.id ?? q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (o.tc ? dnsPacket.TRUNCATED_RESPONSE : 0) | (o.rcode ?? 0),
    questions: [{ ...question, name: o.name ?? question.name }],
    answers: o.answers ?? [],
  });
  return { data: new Uint8Array(data) };
}

function aRecords(name: string, addrs: string[]): dnsPacket.Answer[] {
  return addrs.map((data) => ({ type: 'A', name, ttl: 60, class: 'IN', data }) as dnsPacket.Answer);
}

/** 10.77.x.y: enough A records that the message passes 512 bytes (and one TCP segment). */
const MANY = Array.from({ length: 200 }, (_, i) => `10.77.${i >> 8}.${i & 0xff}`);

/**
 * DNS servers on NS1 and NS2 (UDP and, unless `tcp` is false, TCP on port 53);
 * every query is logged and handed to the test's handler.
 */
class Servers {
  readonly log: { server: string; transport: Transport; name: string; type: string }[] = [];
  private readonly udp: { addr: IpAddr; sock: UdpSocket }[] = [];
  private readonly listeners: TcpListener[] = [];
  private readonly conns: { conn: TcpConnection; rx: Uint8Array; server: string }[] = [];
  private readonly later: { at: number; send: () => void }[] = [];
  private readonly spoofAddr: UdpSocket;
  private readonly spoofPort: UdpSocket;

  constructor(
    private readonly b: Interface,
    private readonly handler: Handler,
    opts: { tcp?: boolean; tcpOn?: IpAddr[] } = {},
  ) {
    for (const addr of [NS1, NS2, NS6]) {
      this.udp.push({ addr, sock: b.udpBind({ family: addr.length === 4 ? 4 : 6, addr, port: 53 }) });
      if (opts.tcp !== false && (!opts.tcpOn || opts.tcpOn.some((x) => formatIp(x) === formatIp(addr)))) this.listeners.push(b.tcp.listen({ addr, port: 53 }));
    }
    this.spoofAddr = b.udpBind({ family: 4, addr: SPOOF, port: 53 });
    this.spoofPort = b.udpBind({ family: 4, addr: NS1, port: 5353 });
  }

  private handle(now: number, data: Uint8Array, server: string, transport: Transport, send: (r: Reply) => void): void {
    const q = dnsPacket.decode(Buffer.from(data));
    const question = q.questions![0]!;
    this.log.push({ server, transport, name: question.name, type: question.type });
    for (const r of this.handler(q, { server, transport })) {
      if (r.delayMs) this.later.push({ at: now + r.delayMs, send: () => send(r) });
      else send(r);
    }
  }

  /** Serves whatever arrived and sends the delayed replies that are due. */
  step(now: number): void {
    for (const { addr, sock } of this.udp) {
      for (let m = sock.recv(); m; m = sock.recv()) {
        const { addr: peer, port } = m;
        this.handle(now, m.data, formatIp(addr), 'udp', (r) => {
          const via = r.from === 'other-address' ? this.spoofAddr : r.from === 'other-port' ? this.spoofPort : sock;
          via.send(now, r.data, peer, port);
        });
      }
    }
    for (const l of this.listeners) for (let c = l.accept(); c; c = l.accept()) this.conns.push({ conn: c, rx: new Uint8Array(0), server: formatIp(c.localAddr) });
    for (const c of this.conns) {
      for (let d = c.conn.recv(); d; d = c.conn.recv()) {
        const rx = new Uint8Array(c.rx.length + d.length);
        rx.set(c.rx);
        rx.set(d, c.rx.length);
        c.rx = rx;
      }
      // RFC 1035 §4.2.2: two-byte length, then the message.
      while (c.rx.length >= 2 && c.rx.length >= 2 + ((c.rx[0]! << 8) | c.rx[1]!)) {
        const len = (c.rx[0]! << 8) | c.rx[1]!;
        const msg = c.rx.slice(2, 2 + len);
        c.rx = c.rx.subarray(2 + len);
        this.handle(now, msg, c.server, 'tcp', (r) => {
          const framed = new Uint8Array(2 + r.data.length);
          framed[0] = r.data.length >> 8;
          framed[1] = r.data.length & 0xff;
          framed.set(r.data, 2);
          assert.equal(c.conn.send(now, framed), framed.length);
        });
      }
      if (c.conn.recvEnded) c.conn.shutdown(now);
    }
    const due = this.later.filter((x) => x.at <= now);
    this.later.splice(0, this.later.length, ...this.later.filter((x) => x.at > now));
    for (const x of due) x.send();
    while (this.b.pollEvent());
  }

  nextAt(): number {
    return Math.min(Infinity, ...this.later.map((x) => x.at));
  }
}

interface Setup {
  a: Interface;
  b: Interface;
  client: DnsClient;
  servers: Servers;
  now: number;
}

function setup(handler: Handler, opts: { servers?: IpAddr[]; tcp?: boolean; tcpOn?: IpAddr[] } = {}): Setup {
  const a = new Interface({ addresses: ['10.9.0.1/24', 'fd09::1/64'], rng: new SeededRng(21) });
  const b = new Interface({ addresses: ['10.9.0.2/24', '10.9.0.3/24', '10.9.0.4/24', '10.9.0.5/24', 'fd09::2/64'], rng: new SeededRng(22) });
  const client = new DnsClient(a, { servers: opts.servers ?? [NS1], rng: new SeededRng(23) });
  return { a, b, client, servers: new Servers(b, handler, opts), now: 0 };
}

function pump(s: Setup): void {
  for (let round = 0; round < 1000; round++) {
    let any = false;
    for (let p = s.a.pollTransmit(s.now); p; p = s.a.pollTransmit(s.now), any = true) s.b.handleInput(s.now, p.slice());
    for (let p = s.b.pollTransmit(s.now); p; p = s.b.pollTransmit(s.now), any = true) s.a.handleInput(s.now, p.slice());
    if (!any) return;
  }
}

/** Runs both stacks, the servers and the client on a virtual clock until the lookup ends (or 60 s pass). */
function resolve(s: Setup, name: string, family: 0 | 4 | 6): DnsResult {
  s.client.lookup(s.now, name, family);
  for (let step = 0; step < 5000; step++) {
    for (let k = 0; k < 4; k++) {
      pump(s);
      s.servers.step(s.now);
      pump(s);
      for (let ev = s.a.pollEvent(); ev; ev = s.a.pollEvent()) s.client.handleEvent(s.now, ev);
    }
    const r = s.client.pollEvent();
    if (r) return r;
    const next = Math.min(s.client.pollTimeout()?.at ?? Infinity, s.a.pollTimeout()?.at ?? Infinity, s.b.pollTimeout()?.at ?? Infinity, s.servers.nextAt());
    if (next === Infinity || next > 60_000) break;
    s.now = Math.max(s.now, next);
    s.a.handleTimeout(s.now);
    s.b.handleTimeout(s.now);
    s.client.handleTimeout(s.now);
    const r2 = s.client.pollEvent();
    if (r2) return r2;
  }
  throw new Error(`no DNS result by ${s.now} ms`);
}

/** Keeps everything running after the lookup (TCP closes, timers) until `until` ms. */
function runUntil(s: Setup, until: number): void {
  while (s.now < until) {
    for (let k = 0; k < 4; k++) {
      pump(s);
      s.servers.step(s.now);
      pump(s);
      for (let ev = s.a.pollEvent(); ev; ev = s.a.pollEvent()) assert.ok(s.client.handleEvent(s.now, ev), `${ev.type} belongs to the DNS client`);
    }
    const next = Math.min(s.client.pollTimeout()?.at ?? Infinity, s.a.pollTimeout()?.at ?? Infinity, s.b.pollTimeout()?.at ?? Infinity);
    if (next > until) break;
    s.now = Math.max(s.now, next);
    s.a.handleTimeout(s.now);
    s.b.handleTimeout(s.now);
    s.client.handleTimeout(s.now);
  }
}

const addrsOf = (r: DnsResult): string[] => r.addresses.map((x) => x.address).sort();

/** Truncates over UDP when the answer passes 512 bytes (RFC 1035 §4.2.1), keeping the first records; answers fully over TCP. */
const truncating: Handler = (q, { transport }) => {
  const question = q.questions![0]!;
  if (question.name !== 'many.example') return [reply(q, { rcode: 3 })];
  if (question.type === 'AAAA') return [reply(q, { answers: [{ type: 'AAAA', name: 'many.example', ttl: 60, class: 'IN', data: '2001:db8::7' }] })];
  if (transport === 'udp') return [reply(q, { tc: true, answers: aRecords('many.example', MANY.slice(0, 3)) })];
  return [reply(q, { answers: aRecords('many.example', MANY) })];
};

test('DNS: a truncated UDP answer is asked again over TCP and the whole answer is used', () => {
  const s = setup(truncating);
  const r = resolve(s, 'many.example', 0);
  assert.equal(r.error, undefined);
  assert.deepEqual(addrsOf(r), [...MANY, '2001:db8::7'].sort(), 'all 200 A records (from TCP) and the AAAA (from UDP)');
  assert.deepEqual(
    s.servers.log.map((x) => `${x.transport} ${x.type}`).sort(),
    ['tcp A', 'udp A', 'udp AAAA'],
    'only the truncated question went to TCP',
  );
  assert.equal(s.client.stats['dns.truncated'], 1);
  assert.ok(s.now < 2000, `answered at ${s.now} ms without waiting for a timeout`);
  // The client closes its TCP connection (RFC 7766 §6.2.3) and keeps no timer once it is gone.
  runUntil(s, s.now + 5000);
  assert.equal(s.client.pollTimeout(), undefined, 'nothing left open');
  assert.equal(s.client.stats['dns.tcpAbort'], undefined, 'closed gracefully, not reset');
});

test('DNS over TCP: the TCP try goes to the server that truncated, over IPv6 too', () => {
  const s = setup(truncating, { servers: [NS6] });
  const r = resolve(s, 'many.example', 4);
  assert.equal(r.error, undefined);
  assert.equal(r.addresses.length, MANY.length);
  assert.deepEqual(s.servers.log.map((x) => `${x.server} ${x.transport}`), ['fd09::2 udp', 'fd09::2 tcp']);
});

test('DNS over TCP: a server that accepts but never answers times out and the next server is asked', () => {
  const s = setup(
    (q, { server, transport }) => (server === '10.9.0.2' && transport === 'tcp' ? [] : truncating(q, { server, transport })),
    { servers: [NS1, NS2] },
  );
  const r = resolve(s, 'many.example', 4);
  assert.equal(r.error, undefined);
  assert.equal(r.addresses.length, MANY.length);
  assert.deepEqual(s.servers.log.map((x) => `${x.server} ${x.transport}`), ['10.9.0.2 udp', '10.9.0.2 tcp', '10.9.0.3 udp', '10.9.0.3 tcp']);
  assert.ok(s.now >= 2000 && s.now < 4000, `the TCP try waited one 2000 ms timeout (answered at ${s.now} ms)`);
});

test('DNS over TCP: a server with no TCP (RST) fails over at once; none at all ends with ECONNREFUSED', () => {
  const s = setup(truncating, { servers: [NS1, NS2], tcpOn: [NS2] });
  const r = resolve(s, 'many.example', 4);
  assert.equal(r.error, undefined);
  assert.equal(r.addresses.length, MANY.length);
  assert.ok(s.now < 2000, `no timeout needed (answered at ${s.now} ms)`);
  const none = setup(truncating, { servers: [NS1, NS2], tcp: false });
  const r2 = resolve(none, 'many.example', 4);
  assert.equal(r2.error, 'ECONNREFUSED');
  // Two servers, two attempts each: every UDP try was truncated and every TCP try refused.
  assert.equal(none.servers.log.length, 4);
});

test('DNS over TCP: messages for other questions in the stream are skipped', () => {
  const s = setup((q, ctx) => {
    if (ctx.transport === 'udp') return truncating(q, ctx);
    const wrongId = reply(q, { id: (q.id! + 1) & 0xffff, answers: aRecords('many.example', ['192.0.2.66']) });
    const garbage = { data: new Uint8Array([0xde, 0xad, 0xbe]) };
    return [wrongId, garbage, ...truncating(q, ctx)];
  });
  const r = resolve(s, 'many.example', 4);
  assert.equal(r.error, undefined);
  assert.equal(r.addresses.length, MANY.length);
  assert.ok(!addrsOf(r).includes('192.0.2.66'));
  assert.equal(s.client.stats['drop.dns.id'], 1);
  assert.equal(s.client.stats['drop.dns.malformed'], 1);
});

const HOST: Handler = (q) => [reply(q, { answers: aRecords('host.example', ['192.0.2.1']) })];

for (const [rcode, code] of [[2, 'ESERVFAIL'], [5, 'EREFUSED']] as const) {
  test(`DNS: rcode ${rcode} from the first server fails over to the next one`, () => {
    const s = setup((q, ctx) => (ctx.server === '10.9.0.2' ? [reply(q, { rcode })] : HOST(q, ctx)), { servers: [NS1, NS2] });
    const r = resolve(s, 'host.example', 4);
    assert.equal(r.error, undefined);
    assert.deepEqual(addrsOf(r), ['192.0.2.1']);
    assert.deepEqual(s.servers.log.map((x) => x.server), ['10.9.0.2', '10.9.0.3']);
    assert.ok(s.now < 2000, 'no timeout waited');
  });

  test(`DNS: rcode ${rcode} from every server ends with ${code}`, () => {
    const s = setup((q) => [reply(q, { rcode })], { servers: [NS1, NS2] });
    const r = resolve(s, 'host.example', 0);
    assert.equal(r.error, code);
    assert.deepEqual(r.addresses, []);
    // Two servers times two attempts, for A and for AAAA.
    assert.equal(s.servers.log.length, 8);
  });
}

test('DNS: NXDOMAIN is final, not a reason to ask the next server', () => {
  const s = setup((q) => [reply(q, { rcode: 3 })], { servers: [NS1, NS2] });
  const r = resolve(s, 'gone.example', 4);
  assert.equal(r.error, 'ENOTFOUND');
  assert.equal(s.servers.log.length, 1);
});

test('DNS: a malformed reply is ignored and counted; the client keeps waiting for a valid one', () => {
  const s = setup((q) => [
    { data: new Uint8Array([0x12, 0x34, 0x81]) }, // cut inside the header
    { data: new Uint8Array(64).fill(0xff) }, // a question name made of a pointer to nowhere
    { ...HOST(q, { server: '', transport: 'udp' })[0]!, delayMs: 500 },
  ]);
  const r = resolve(s, 'host.example', 4);
  assert.equal(r.error, undefined);
  assert.deepEqual(addrsOf(r), ['192.0.2.1']);
  assert.equal(s.client.stats['drop.dns.malformed'], 2, JSON.stringify(s.client.stats));
  assert.equal(s.now, 500, 'the valid reply, not a timeout, ended the lookup');
  assert.equal(s.servers.log.length, 1, 'no retry was needed');
});

test('DNS: a reply with the wrong ID or for another question is ignored', () => {
  const s = setup((q) => [
    reply(q, { id: q.id! ^ 0x5555, answers: aRecords('host.example', ['192.0.2.66']) }),
    reply(q, { name: 'other.example', answers: aRecords('other.example', ['192.0.2.67']) }),
    { ...HOST(q, { server: '', transport: 'udp' })[0]!, delayMs: 300 },
  ]);
  const r = resolve(s, 'host.example', 4);
  assert.deepEqual(addrsOf(r), ['192.0.2.1']);
  assert.equal(s.client.stats['drop.dns.id'], 1);
  assert.equal(s.client.stats['drop.dns.question'], 1);
  assert.equal(s.now, 300);
});

test('DNS: a reply from the wrong address or port is ignored (RFC 5452 §9.1)', () => {
  const s = setup((q) => [
    { ...reply(q, { answers: aRecords('host.example', ['192.0.2.66']) }), from: 'other-address' },
    { ...reply(q, { answers: aRecords('host.example', ['192.0.2.67']) }), from: 'other-port' },
    { ...HOST(q, { server: '', transport: 'udp' })[0]!, delayMs: 300 },
  ]);
  const r = resolve(s, 'host.example', 4);
  assert.deepEqual(addrsOf(r), ['192.0.2.1']);
  assert.equal(s.now, 300, 'the forged replies ended nothing');
  // The query's socket is connected to the server (port 53), so the stack itself refuses both.
  assert.equal(s.a.stats['drop.udp.notConnectedPeer'], 2, JSON.stringify(s.a.stats));
});

test('DNS: ICMP port unreachable from a server fails over without waiting for the timeout', () => {
  const closed = mustParseIp('10.9.0.5'); // an address of the server stack with nothing on port 53
  const s = setup(HOST, { servers: [closed, NS1] });
  const r = resolve(s, 'host.example', 4);
  assert.deepEqual(addrsOf(r), ['192.0.2.1']);
  assert.ok(s.now < 2000, `failed over at ${s.now} ms`);
  assert.equal(s.b.stats['udp.noSocket'], 1, 'the first server answered with port unreachable');
});
