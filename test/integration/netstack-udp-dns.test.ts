/**
 * Two Interfaces wired back to back with a virtual clock: UDP round trips (IPv4 and IPv6,
 * fragmented when larger than the MTU), ping, and the DNS stub resolver against a tiny
 * DNS server written here on the second Interface.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { Interface, type NetEvent, type UdpSocket } from '../../src/netstack/interface.js';
import { DnsClient, type DnsResult } from '../../src/netstack/dns.js';
import { SeededRng } from '../../src/util/rng.js';
import { mustParseIp, formatIp } from '../../src/util/ip.js';

const A4 = mustParseIp('10.9.0.1');
const B4 = mustParseIp('10.9.0.2');
const A6 = mustParseIp('fd09::1');
const B6 = mustParseIp('fd09::2');

function pair(mtu = 1420): { a: Interface; b: Interface } {
  return {
    a: new Interface({ addresses: ['10.9.0.1/24', 'fd09::1/64'], mtu, rng: new SeededRng(11) }),
    b: new Interface({ addresses: ['10.9.0.2/24', 'fd09::2/64'], mtu, rng: new SeededRng(12) }),
  };
}

/** Moves every pending packet both ways until both sides are quiet; `drop` can lose packets. */
function pump(now: number, a: Interface, b: Interface, drop: (from: 'a' | 'b') => boolean = () => false): number {
  let moved = 0;
  for (let round = 0; round < 1000; round++) {
    let any = false;
    for (let p = a.pollTransmit(now); p; p = a.pollTransmit(now)) {
      any = true;
      moved++;
      if (!drop('a')) b.handleInput(now, p.slice());
    }
    for (let p = b.pollTransmit(now); p; p = b.pollTransmit(now)) {
      any = true;
      moved++;
      if (!drop('b')) a.handleInput(now, p.slice());
    }
    if (!any) break;
  }
  return moved;
}

function drainEvents(i: Interface): NetEvent[] {
  const out: NetEvent[] = [];
  for (let e = i.pollEvent(); e; e = i.pollEvent()) out.push(e);
  return out;
}

for (const family of [4, 6] as const) {
  test(`UDP round trip over IPv${family}, small and fragmented`, () => {
    const { a, b } = pair();
    const [aAddr, bAddr] = family === 4 ? [A4, B4] : [A6, B6];
    const server = b.udpBind({ family, port: 5353 });
    const client = a.udpBind({ family });
    assert.ok(client.localPort >= 1024, 'ephemeral port');
    for (const size of [0, 1, 100, 1392, 3000, 20_000, 65_507]) {
      const data = new Uint8Array(size);
      for (let k = 0; k < size; k++) data[k] = (k * 7 + size) & 0xff;
      client.send(0, data, bAddr, 5353);
      pump(0, a, b);
      const got = server.recv();
      assert.ok(got, `datagram of ${size} bytes arrived`);
      assert.deepEqual(got.data, data);
      assert.equal(formatIp(got.addr), formatIp(aAddr));
      assert.equal(got.port, client.localPort);
      // Echo it back on the same path.
      server.send(0, got.data, got.addr, got.port);
      pump(0, a, b);
      const back = client.recv();
      assert.ok(back, `reply of ${size} bytes arrived`);
      assert.deepEqual(back.data, data);
      assert.equal(back.port, 5353);
    }
  });
}

test('a datagram larger than 65507 bytes is refused with EMSGSIZE', () => {
  const { a } = pair();
  const s = a.udpBind({ family: 4 });
  assert.throws(() => s.send(0, new Uint8Array(65_508), B4, 9), /EMSGSIZE/);
});

test('binding a taken port throws EADDRINUSE', () => {
  const { a } = pair();
  a.udpBind({ family: 4, port: 4000 });
  assert.throws(() => a.udpBind({ family: 4, port: 4000 }), /EADDRINUSE/);
});

test('a connected socket learns ECONNREFUSED from the peer\'s port unreachable', () => {
  const { a, b } = pair();
  const s = a.udpBind({ family: 4 });
  s.connect(B4, 7777);
  s.send(0, new Uint8Array([1, 2, 3]));
  pump(0, a, b);
  const errs = drainEvents(a).filter((e) => e.type === 'udp-error');
  assert.equal(errs.length, 1);
  assert.equal((errs[0] as { error: string }).error, 'ECONNREFUSED');
});

for (const family of [4, 6] as const) {
  test(`ping over IPv${family} gets an echo reply with the same payload`, () => {
    const { a, b } = pair();
    const data = new Uint8Array([9, 8, 7, 6, 5]);
    a.ping(0, family === 4 ? B4 : B6, 0x1234, 3, data);
    pump(0, a, b);
    const replies = drainEvents(a).filter((e) => e.type === 'echo-reply');
    assert.equal(replies.length, 1);
    const r = replies[0] as Extract<NetEvent, { type: 'echo-reply' }>;
    assert.equal(r.id, 0x1234);
    assert.equal(r.seq, 3);
    assert.deepEqual([...r.data], [...data]);
    assert.equal(formatIp(r.from), family === 4 ? '10.9.0.2' : 'fd09::2');
  });
}

// ---- DNS -------------------------------------------------------------------------------

interface Zone {
  [name: string]: { A?: string[]; AAAA?: string[]; CNAME?: string };
}

/** A minimal authoritative server: answers from `zone`, follows CNAMEs, NXDOMAIN otherwise. */
function serveDns(sock: UdpSocket, zone: Zone, now: number, counter: { queries: number }): void {
  for (let m = sock.recv(); m; m = sock.recv()) {
    counter.queries++;
    const q = dnsPacket.decode(Buffer.from(m.data));
    const question = q.questions![0]!;
    const answers: dnsPacket.Answer[] = [];
    let name = question.name.toLowerCase();
    let found = false;
    for (let hop = 0; hop < 10; hop++) {
      const rec = zone[name];
      if (!rec) break;
      found = true;
      if (rec.CNAME) {
        answers.push({ type: 'CNAME', name, ttl: 60, class: 'IN', data: rec.CNAME });
        name = rec.CNAME;
        continue;
      }
      const t = question.type as 'A' | 'AAAA';
      for (const d of rec[t] ?? []) answers.push({ type: t, name, ttl: 60, class: 'IN', data: d });
      break;
    }
    const resp = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (found ? 0 : 3), // rcode 3 = NXDOMAIN (RFC 1035 §4.1.1)
      questions: q.questions,
      answers,
    });
    sock.send(now, new Uint8Array(resp), m.addr, m.port);
  }
}

function dnsSetup(opts: { search?: string[]; hosts?: Record<string, string[]>; servers?: Uint8Array[] } = {}) {
  const { a, b } = pair();
  const server = b.udpBind({ family: 4, port: 53 });
  const client = new DnsClient(a, { servers: opts.servers ?? [B4], rng: new SeededRng(99), search: opts.search, hosts: opts.hosts });
  const counter = { queries: 0 };
  return { a, b, server, client, counter, clock: { now: 0 } };
}

/** Runs the virtual clock until the client reports a result (or 30 s pass). */
function resolve(s: ReturnType<typeof dnsSetup>, zone: Zone, name: string, family: 0 | 4 | 6, lose = 0): DnsResult {
  let now = 0;
  let lost = 0;
  s.client.lookup(now, name, family);
  for (let step = 0; step < 200; step++) {
    pump(now, s.a, s.b, (from) => from === 'a' && lost++ < lose);
    serveDns(s.server, zone, now, s.counter);
    pump(now, s.a, s.b);
    for (const ev of drainEvents(s.a)) s.client.handleEvent(now, ev);
    s.clock.now = now;
    const r = s.client.pollEvent();
    if (r) return r;
    const d = s.client.pollTimeout();
    if (d === undefined) break;
    now = Math.max(now + 1, d.at);
    s.client.handleTimeout(now);
    s.clock.now = now;
    const r2 = s.client.pollEvent();
    if (r2) return r2;
    if (now > 30_000) break;
  }
  throw new Error('no DNS result');
}

const ZONE: Zone = {
  'host.example': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'] },
  'alias.example': { CNAME: 'mid.example' },
  'mid.example': { CNAME: 'host.example' },
  'web.corp.example': { A: ['192.0.2.80'] },
};

test('DNS: family 0 returns both A and AAAA', () => {
  const r = resolve(dnsSetup(), ZONE, 'host.example', 0);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.addresses.map((x) => x.address).sort(), ['192.0.2.1', '2001:db8::1']);
});

test('DNS: a CNAME chain is followed', () => {
  const r = resolve(dnsSetup(), ZONE, 'alias.example', 4);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.addresses, [{ address: '192.0.2.1', family: 4 }]);
});

test('DNS: NXDOMAIN is ENOTFOUND', () => {
  const r = resolve(dnsSetup(), ZONE, 'nope.example', 4);
  assert.equal(r.error, 'ENOTFOUND');
  assert.deepEqual(r.addresses, []);
});

test('DNS: a single-label name goes through the search list', () => {
  const r = resolve(dnsSetup({ search: ['corp.example'] }), ZONE, 'web', 4);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.addresses, [{ address: '192.0.2.80', family: 4 }]);
});

test('DNS: literal IPs and hosts entries need no query', () => {
  const s = dnsSetup({ hosts: { 'pinned.example': ['203.0.113.7'] } });
  const lit = resolve(s, ZONE, '198.51.100.4', 0);
  assert.deepEqual(lit.addresses, [{ address: '198.51.100.4', family: 4 }]);
  const h = resolve(s, ZONE, 'pinned.example', 0);
  assert.deepEqual(h.addresses, [{ address: '203.0.113.7', family: 4 }]);
  assert.equal(s.counter.queries, 0);
});

test('DNS: a lost query is retried after the timeout', () => {
  const s = dnsSetup();
  const r = resolve(s, ZONE, 'host.example', 4, 1);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.addresses, [{ address: '192.0.2.1', family: 4 }]);
  assert.equal(s.counter.queries, 1, 'the server saw only the retry');
  assert.ok(s.clock.now >= 2000, `answered at ${s.clock.now} ms, after the 2000 ms per-try timeout`);
});

test('DNS: a silent server times out with ETIMEOUT', () => {
  const s = dnsSetup({ servers: [mustParseIp('10.9.0.3')] }); // nobody there
  const r = resolve(s, ZONE, 'host.example', 4);
  assert.equal(r.error, 'ETIMEOUT');
  // One server, 2 attempts of 2000 ms each.
  assert.ok(s.clock.now >= 4000, `gave up at ${s.clock.now} ms`);
});

test('a UDP receive queue is bounded in bytes; the excess is dropped and counted', () => {
  const { a, b } = pair();
  const server = b.udpBind({ family: 4, port: 6000, recvQueueBytes: 4096 });
  const client = a.udpBind({ family: 4 });
  for (let n = 0; n < 10; n++) client.send(0, new Uint8Array(1000).fill(n), B4, 6000);
  pump(0, a, b);
  let got = 0;
  let bytes = 0;
  for (let m = server.recv(); m; m = server.recv()) {
    assert.equal(m.data[0], got, 'in order, oldest kept');
    got++;
    bytes += m.data.length;
  }
  assert.ok(got >= 1 && bytes <= 4096, `${got} datagrams, ${bytes} bytes queued`);
  const dropped = Object.entries(b.stats).filter(([k]) => k.startsWith('drop.')).reduce((s, [, v]) => s + v, 0);
  assert.equal(dropped, 10 - got, JSON.stringify(b.stats));
});

test('DNS: AAAA only for family 6', () => {
  const r = resolve(dnsSetup(), ZONE, 'host.example', 6);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.addresses, [{ address: '2001:db8::1', family: 6 }]);
});

test('DNS: a silent first server is skipped for the next one', () => {
  const s = dnsSetup({ servers: [mustParseIp('10.9.0.3'), B4] });
  const r = resolve(s, ZONE, 'host.example', 4);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.addresses, [{ address: '192.0.2.1', family: 4 }]);
  assert.ok(s.clock.now >= 2000, `answered at ${s.clock.now} ms, after the first server's timeout`);
});
