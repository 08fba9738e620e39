/**
 * Gateway mode through the library, in one process: tunnel A (a client) routes 127.0.0.0/8
 * into the tunnel; tunnel B is the gateway and relays to servers on this host's loopback
 * (allowed explicitly: loopback is refused by default). Real host sockets on the far side.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tunnel, type TcpSocket } from '../../src/index.js';
import { probeAddon } from '../../src/io/native.js';
import type { PingPath } from '../../src/io/ping.js';
import { keyPair } from '../harness/tunnel-pair.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Which path a relayed ping must take in this process, decided from the system's own state
 * (icmp(7): net.ipv4.ping_group_range admits one of our groups; raw(7): CAP_NET_RAW, bit 13
 * of CapEff), not from the code under test.
 */
function expectedPingPath(): PingPath {
  const addon = probeAddon<{ pingOpen?: unknown }>('wgnet_udp');
  if (!addon.ok || typeof addon.addon.pingOpen !== 'function' || process.env.WGNET_PING === 'process') return 'pingProcess';
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
  const groups = [process.getgid!(), ...(process.getgroups?.() ?? [])];
  if (groups.some((g) => g >= lo && g <= hi)) return 'pingSocket';
  const cap = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (cap && (BigInt('0x' + cap[1]) & (1n << 13n)) !== 0n) return 'rawSocket';
  return 'pingProcess';
}

interface Pair {
  a: Tunnel;
  b: Tunnel;
  close(): Promise<void>;
}

/** A (10.88.0.1) sends 127.0.0.0/8 and 10.88.0.0/24 to B (10.88.0.2, the gateway). */
async function gatewayPair(): Promise<Pair> {
  const ka = keyPair();
  const kb = keyPair();
  const b = await Tunnel.create(`[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.88.0.2/24, fd88::2/64\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.88.0.1/32, fd88::1/128\n`);
  const a = await Tunnel.create(
    `[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.88.0.1/24, fd88::1/64\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.88.0.0/24, 127.0.0.0/8, fd88::/64, ::1/128\nEndpoint = 127.0.0.1:${b.listenPort}\n`,
  );
  return {
    a,
    b,
    close: async () => {
      await a.close();
      await b.close();
    },
  };
}

/** A gateway (10.88.0.2) with two peers, 10.88.0.1 and 10.88.0.3, each a tunnel sending `allowedIps` to it. */
async function twoPeerGateway(allowedIps: string): Promise<{ gw: Tunnel; c1: Tunnel; c2: Tunnel }> {
  const [k1, k2, kg] = [keyPair(), keyPair(), keyPair()];
  const gw = await Tunnel.create(
    `[Interface]\nPrivateKey = ${kg.privateKey}\nAddress = 10.88.0.2/24\n[Peer]\nPublicKey = ${k1.publicKey}\nAllowedIPs = 10.88.0.1/32\n[Peer]\nPublicKey = ${k2.publicKey}\nAllowedIPs = 10.88.0.3/32\n`,
  );
  const client = (k: { privateKey: string }, addr: string): Promise<Tunnel> =>
    Tunnel.create(`[Interface]\nPrivateKey = ${k.privateKey}\nAddress = ${addr}/24\n[Peer]\nPublicKey = ${kg.publicKey}\nAllowedIPs = ${allowedIps}\nEndpoint = 127.0.0.1:${gw.listenPort}\n`);
  return { gw, c1: await client(k1, '10.88.0.1'), c2: await client(k2, '10.88.0.3') };
}

async function udpEcho(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

describe('gateway: UDP and ICMP relayed to the host', () => {
  let p: Pair;
  let echo: dgram.Socket;
  before(async () => {
    p = await gatewayPair();
    echo = await udpEcho();
    p.b.onFlow('relay', { allow: ['127.0.0.0/8', '::1/128'] });
  });
  after(async () => {
    echo.close();
    await p.close();
  });

  test('a UDP request/response through the gateway reaches a host server and comes back from its address', async () => {
    const port = echo.address().port;
    const s = p.a.createSocket('udp4');
    const got = new Promise<{ msg: Buffer; rinfo: { address: string; port: number } }>((r) => s.once('message', (msg: Buffer, rinfo: { address: string; port: number }) => r({ msg, rinfo })));
    s.send('hello', port, '127.0.0.1');
    const { msg, rinfo } = await got;
    assert.equal(msg.toString(), 'echo:hello');
    assert.equal(rinfo.address, '127.0.0.1');
    assert.equal(rinfo.port, port);
    // Many datagrams on the same flow, one host socket.
    const n = 50;
    let seen = 0;
    const all = new Promise<void>((r) => s.on('message', () => ++seen === n && r()));
    for (let i = 0; i < n; i++) s.send(`m${i}`, port, '127.0.0.1');
    await all;
    s.close();
    const st = p.b.gatewayStats()!;
    assert.equal(st.counters['udp.flows'], 1, 'one flow for one 5-tuple');
    assert.equal(st.counters.relayed, 1);
  });

  test('UDP to a denied destination gets ICMP unreachable: a connected socket sees an error, and it is counted', async () => {
    const s = p.a.createSocket('udp4');
    s.connect(9, '10.88.0.77'); // not in the allowlist
    await once(s, 'connect');
    const err = new Promise<Error & { code?: string }>((r) => s.once('error', r));
    s.send('x');
    const e = await err;
    assert.ok(['EHOSTUNREACH', 'ECONNREFUSED'].includes(e.code!), e.code);
    s.close();
    assert.ok(p.b.gatewayStats()!.counters['refused.not-allowed']! >= 1);
  });

  test('ping through the gateway is relayed from the host with id, sequence and size kept, IPv4 and IPv6, on the path this host allows', async () => {
    const path = expectedPingPath();
    const before = p.b.gatewayStats()!.counters[`icmp.${path}`] ?? 0;
    const flowsBefore = p.b.gatewayStats()!.flows; // the UDP test's flow is open until its idle timeout
    // tunnel.ping matches a reply by its own identifier, the address and the sequence: a
    // reply with the gateway's identifier or sequence instead would never settle it.
    const r4 = await p.a.ping('127.0.0.1', { timeout: 5000, size: 1000 });
    assert.equal(r4.address, '127.0.0.1');
    assert.equal(r4.bytes, 1000, 'the 1000 bytes sent come back');
    const r6 = await p.a.ping('::1', { timeout: 5000 });
    assert.equal(r6.address, '::1');
    const again = await p.a.ping('127.0.0.1', { timeout: 5000 });
    assert.equal(again.seq, r6.seq + 1);
    const st = p.b.gatewayStats()!;
    assert.ok(st.counters['icmp.echoes']! >= 3);
    assert.equal((st.counters[`icmp.${path}`] ?? 0) - before, 3, `all three through ${path}: ${JSON.stringify(st.counters)}`);
    assert.equal(st.flows, flowsBefore, 'no echo left in flight');
  });

  test('WGNET_PING=process: the system ping still carries relayed echoes (the fallback path)', async () => {
    process.env.WGNET_PING = 'process';
    try {
      const before = p.b.gatewayStats()!.counters['icmp.pingProcess'] ?? 0;
      await p.a.ping('127.0.0.1', { timeout: 5000 });
      assert.equal((p.b.gatewayStats()!.counters['icmp.pingProcess'] ?? 0) - before, 1);
    } finally {
      delete process.env.WGNET_PING;
    }
  });
});

describe('gateway: TCP', () => {
  let p: Pair;
  let server: net.Server;
  let port = 0;
  before(async () => {
    p = await gatewayPair();
    server = net.createServer((s) => {
      const h = createHash('sha256');
      s.on('data', (d) => h.update(d));
      s.on('end', () => s.end(h.digest('hex')));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
    p.b.onFlow(
      (f) => {
        if (f.destination.port === 7) return { accept: (sock) => (sock as TcpSocket).pipe(sock as TcpSocket) };
        if (f.destination.port === 13) return 'reject';
        return 'relay';
      },
      { allow: ['127.0.0.0/8'] },
    );
  });
  after(async () => {
    server.close();
    await p.close();
  });

  test('4 MB up through a relayed connection, half-close, the answer back: sha256 equal', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const c = p.a.connect(port, '127.0.0.1');
    await once(c, 'connect');
    c.end(data);
    let got = '';
    for await (const d of c) got += d;
    assert.equal(got, createHash('sha256').update(data).digest('hex'));
  });

  test('a refused host port is a RST to the peer within 1 s (ECONNREFUSED)', async () => {
    const closed = net.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const dead = (closed.address() as net.AddressInfo).port;
    closed.close();
    const t0 = Date.now();
    const c = p.a.connect(dead, '127.0.0.1');
    const [e] = (await once(c, 'error')) as [Error & { code?: string }];
    assert.equal(e.code, 'ECONNREFUSED');
    assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
  });

  test('a denied destination and a handler rejection are RSTs; accept serves in-process', async () => {
    const c1 = p.a.connect(80, '10.88.0.99');
    assert.equal(((await once(c1, 'error')) as [Error & { code?: string }])[0].code, 'ECONNREFUSED');
    const c2 = p.a.connect(13, '127.0.0.1');
    assert.equal(((await once(c2, 'error')) as [Error & { code?: string }])[0].code, 'ECONNREFUSED');
    const c3 = p.a.connect(7, '10.88.0.50');
    await once(c3, 'connect');
    c3.end('in-process echo');
    let got = '';
    for await (const d of c3) got += d;
    assert.equal(got, 'in-process echo');
  });

  test('own address: refused without exposeLocalhost; services on the tunnel address still answer', async () => {
    const c = p.a.connect(port, '10.88.0.2');
    assert.equal(((await once(c, 'error')) as [Error & { code?: string }])[0].code, 'ECONNREFUSED');
    const srv = p.b.createServer((s) => s.end('local service'));
    srv.listen(8080);
    const c2 = p.a.connect(8080, '10.88.0.2');
    let got = '';
    for await (const d of c2) got += d;
    assert.equal(got, 'local service');
    srv.close();
  });
});

describe('gateway: exposeLocalhost and limits', () => {
  test('exposeLocalhost maps the gateway address to loopback; maxFlowsPerPeer drops the excess', async () => {
    const p = await gatewayPair();
    const echo = await udpEcho();
    try {
      p.b.onFlow('relay', { exposeLocalhost: true, maxFlowsPerPeer: 2 });
      const port = echo.address().port;
      const socks = [0, 1, 2].map(() => p.a.createSocket('udp4'));
      const replies = socks.map((s) => new Promise<string>((r) => s.once('message', (m: Buffer) => r(m.toString()))));
      for (const [i, s] of socks.entries()) s.send(`s${i}`, port, '10.88.0.2');
      assert.equal(await replies[0], 'echo:s0');
      assert.equal(await replies[1], 'echo:s1');
      const third = await Promise.race([replies[2], new Promise<string>((r) => setTimeout(() => r('timeout'), 500))]);
      assert.equal(third, 'timeout');
      assert.equal(p.b.gatewayStats()!.counters['limit.flowsPerPeer'], 1);
      for (const s of socks) s.close();
    } finally {
      echo.close();
      await p.close();
    }
  });
});

describe('routes', () => {
  test('a destination no peer routes fails at once with EHOSTUNREACH instead of retrying for minutes', async () => {
    const p = await gatewayPair();
    try {
      assert.equal(p.a.routes('127.0.0.1'), true);
      assert.equal(p.a.routes('10.88.0.1'), true, 'our own address');
      assert.equal(p.a.routes('192.0.2.77'), false);
      const t0 = Date.now();
      const c = p.a.connect(80, '192.0.2.77');
      const [e] = (await once(c, 'error')) as [Error & { code?: string }];
      assert.equal(e.code, 'EHOSTUNREACH');
      assert.ok(Date.now() - t0 < 500);
      assert.throws(() => p.a.routes('nope'), /not an IP address/);
    } finally {
      await p.close();
    }
  });
});

describe('gateway: one peer cannot starve another', () => {
  test('a SYN flood from one peer held at its pending limit; a second peer still connects at once', async () => {
    const { gw, c1, c2 } = await twoPeerGateway('10.88.0.0/24, 127.0.0.0/8');
    const server = net.createServer((s) => s.on('error', () => {}).end('hello'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const flooder = gw.toJSON().peers.find((p) => p.allowedIps.includes('10.88.0.1/32'))!.publicKey;
    // The flooder's flows never get a decision (held until decisionTimeout); everyone else's are relayed.
    gw.onFlow((f) => (f.peer === flooder ? new Promise<never>(() => {}) : 'relay'), { allow: ['127.0.0.0/8'], maxPendingTcp: 100, maxPendingTcpPerPeer: 40, decisionTimeout: 60_000 });
    const flood = Array.from({ length: 150 }, () => {
      const s = c1.connect(port, '127.0.0.1');
      s.on('error', () => {});
      return s;
    });
    try {
      await waitUntil(() => (gw.gatewayStats()!.counters['limit.pendingTcpPerPeer'] ?? 0) >= 100);
      assert.equal(gw.gatewayStats()!.heldSyns, 40, 'only the per-peer limit is held; the rest were dropped at once');
      const t0 = Date.now();
      const s = c2.connect(port, '127.0.0.1');
      let got = '';
      for await (const d of s) got += d;
      assert.equal(got, 'hello');
      assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
    } finally {
      for (const s of flood) s.destroy();
      server.close();
      await c1.close();
      await c2.close();
      await gw.close();
    }
  });
});

describe('gateway: the flow table is shared per peer', () => {
  test('one peer at its share of UDP flows and held SYNs is dropped and counted by reason; a second peer still gets both', async () => {
    const { gw, c1, c2 } = await twoPeerGateway('10.88.0.0/24, 127.0.0.0/8');
    const echo = await udpEcho();
    const server = net.createServer((s) => s.on('error', () => {}).end('hello'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const tcpPort = (server.address() as net.AddressInfo).port;
    const udpPort = echo.address().port;
    const flooder = gw.toJSON().peers.find((p) => p.allowedIps.includes('10.88.0.1/32'))!.publicKey;
    // The flooder's flows never get a decision, so each one keeps its table entry; the gateway's
    // own limits are set above the table's shares, so only the shares bind.
    gw.onFlow((f) => (f.peer === flooder ? new Promise<never>(() => {}) : 'relay'), {
      allow: ['127.0.0.0/8'],
      maxUdpFlowsPerPeer: 5,
      maxHeldSynsPerPeer: 10,
      maxPendingTcpPerPeer: 1000,
      decisionTimeout: 60_000,
    });
    const stats = (): Record<string, number | undefined> => gw.engine.iface.stats;
    const udpFlood = Array.from({ length: 20 }, (_, i) => {
      const u = c1.createSocket('udp4');
      u.send(`flood ${i}`, udpPort, '127.0.0.1');
      return u;
    });
    const tcpFlood = Array.from({ length: 30 }, () => {
      const s = c1.connect(tcpPort, '127.0.0.1');
      s.on('error', () => {});
      return s;
    });
    try {
      // Twenty source ports, five flows: fifteen datagrams dropped for the peer's share.
      await waitUntil(() => (stats()['drop.flow.udpPerPeer'] ?? 0) >= 15 && (stats()['drop.flow.synPerPeer'] ?? 0) >= 20);
      const g = gw.gatewayStats()!;
      assert.equal(g.udpFlows, 5, 'the peer holds its UDP share, no more');
      assert.equal(g.heldSyns, 10, 'and its share of held SYNs');
      assert.equal(stats()['drop.flow.tableFull'] ?? 0, 0, 'the tables themselves never filled');
      assert.equal(stats()['drop.flow.synTableFull'] ?? 0, 0);
      assert.equal(g.counters['limit.pendingTcpPerPeer'] ?? 0, 0, 'the gateway never saw the excess');

      // The other peer: a UDP flow relayed and answered, and a TCP connection, at once.
      const u = c2.createSocket('udp4');
      const reply = new Promise<string>((r) => u.once('message', (m: Buffer) => r(m.toString())));
      u.send('second peer', udpPort, '127.0.0.1');
      assert.equal(await Promise.race([reply, new Promise<string>((r) => setTimeout(() => r('timeout'), 3000))]), 'echo:second peer');
      u.close();
      const t0 = Date.now();
      const s = c2.connect(tcpPort, '127.0.0.1');
      let got = '';
      for await (const d of s) got += d;
      assert.equal(got, 'hello');
      assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
      assert.equal(gw.gatewayStats()!.udpFlows, 5 + 1);
    } finally {
      for (const u of udpFlood) u.close();
      for (const s of tcpFlood) s.destroy();
      echo.close();
      server.close();
      await c1.close();
      await c2.close();
      await gw.close();
    }
  });

  test('the shares are gateway options, checked like the others', async () => {
    const p = await gatewayPair();
    try {
      assert.throws(() => p.b.onFlow('relay', { maxUdpFlowsPerPeer: 0 }), /maxUdpFlowsPerPeer must be a positive number/);
      assert.throws(() => p.b.onFlow('relay', { maxHeldSynsPerPeer: -1 }), /maxHeldSynsPerPeer must be a positive number/);
    } finally {
      await p.close();
    }
  });
});

async function waitUntil(f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('gateway: routing between peers (peerToPeer)', () => {
  test('peer A reaches a server on peer C through the gateway at the IP level, TTL decremented, checksum valid', async () => {
    const { gw, c1: a, c2: c } = await twoPeerGateway('10.88.0.0/24');
    gw.onFlow(() => 'reject', { peerToPeer: true });
    await c.ping('10.88.0.2'); // the gateway learns C's endpoint
    const srv = c.createServer((s) => {
      s.end(`hello from ${s.remoteAddress}`);
    });
    srv.listen(80);
    const s = a.connect(80, '10.88.0.3');
    let got = '';
    for await (const d of s) got += d;
    assert.equal(got, 'hello from 10.88.0.1', 'C sees A itself: routed, not relayed');
    const st = gw.gatewayStats()!;
    assert.ok(st.counters.routed! > 4);
    assert.equal(st.counters['tcp.flows'] ?? 0, 0, 'nothing went through the flow path');
    const r = await a.ping('10.88.0.3');
    assert.equal(r.ttl, 63, 'one hop: TTL 64 - 1');
    await c.close();
    await a.close();
    await gw.close();
  });
});

/**
 * Ping sockets themselves, whatever this host's sysctl: a child process in a network namespace
 * of its own (unshare -n), where net.ipv4.ping_group_range admits every group, runs a gateway
 * pair on its loopback. Besides ::1 and 127.0.0.1 the namespace has 192.0.2.0/24 on one end of
 * a veth pair, with 192.0.2.1 a permanent neighbour whose MAC address nothing has (a black
 * hole: frames leave, nobody takes them, no ARP failure to report), and no route to
 * 198.51.100.0/24.
 */
const CHILD = `
import { Tunnel } from ${JSON.stringify(join(ROOT, 'src', 'index.ts'))};
import { keyPair } from ${JSON.stringify(join(ROOT, 'test', 'harness', 'tunnel-pair.ts'))};
const ka = keyPair();
const kb = keyPair();
const b = await Tunnel.create(\`[Interface]\\nPrivateKey = \${kb.privateKey}\\nAddress = 10.88.0.2/24, fd88::2/64\\n[Peer]\\nPublicKey = \${ka.publicKey}\\nAllowedIPs = 10.88.0.1/32, fd88::1/128\\n\`);
const a = await Tunnel.create(\`[Interface]\\nPrivateKey = \${ka.privateKey}\\nAddress = 10.88.0.1/24, fd88::1/64\\n[Peer]\\nPublicKey = \${kb.publicKey}\\nAllowedIPs = 10.88.0.0/24, 127.0.0.0/8, 192.0.2.0/24, 198.51.100.0/24, ::1/128\\nEndpoint = 127.0.0.1:\${b.listenPort}\\n\`);
b.onFlow('relay', { allow: ['127.0.0.0/8', '::1/128', '192.0.2.0/24', '198.51.100.0/24'] });
const out = {};
const t = async (name, f) => {
  const t0 = Date.now();
  try { out[name] = { ok: true, value: await f(), ms: Date.now() - t0 }; } catch (e) { out[name] = { ok: false, code: e.code, ms: Date.now() - t0 }; }
};
await t('v4', () => a.ping('127.0.0.1', { timeout: 5000, size: 200 }));
await t('v6', () => a.ping('::1', { timeout: 5000 }));
// Ten at once from one peer: eight go out (the per-peer cap), two are dropped.
await t('blackHole', async () => {
  const all = await Promise.allSettled(Array.from({ length: 10 }, () => a.ping('192.0.2.1', { timeout: 4500 })));
  const codes = new Set(all.map((r) => (r.status === 'rejected' ? r.reason.code : 'answered')));
  if (codes.size !== 1 || !codes.has('ETIMEDOUT')) throw Object.assign(new Error('unexpected'), { code: [...codes].join(',') });
  throw Object.assign(new Error('all timed out'), { code: 'ETIMEDOUT' });
});
await t('noRoute', () => a.ping('198.51.100.1', { timeout: 1000 }));
const st = b.gatewayStats();
out.counters = st.counters;
out.flows = st.flows;
await a.close();
await b.close();
console.log(JSON.stringify(out));
`;

function canUnshare(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (unshare -n)';
  const r = spawnSync('unshare', ['-n', 'true']);
  return r.status === 0 ? false : 'unshare -n does not work here';
}

describe('gateway: pings through a ping socket (own network namespace)', { skip: canUnshare() }, () => {
  test('replies via the ping socket (v4, v6); a black hole times out and is counted, 8 per peer at most; no route is unreachable at once; the child exits by itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgnet-ping-'));
    try {
      const file = join(dir, 'child.mts'); // ESM (top-level await) outside the package's "type": "module"
      writeFileSync(file, CHILD);
      const setup = [
        'ip link set lo up',
        'sysctl -qw net.ipv4.ping_group_range="0 2147483647"',
        'ip link add wgnva type veth peer name wgnvb',
        'ip link set wgnva up',
        'ip link set wgnvb up',
        'ip addr add 192.0.2.254/24 dev wgnva',
        'ip neigh add 192.0.2.1 lladdr 02:00:5e:00:53:01 dev wgnva nud permanent',
      ].join(' && ');
      const t0 = Date.now();
      const child = spawn('unshare', ['-n', 'sh', '-c', `${setup} && exec "$0" --import tsx "$1"`, process.execPath, file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const [code] = (await once(child, 'exit')) as [number | null];
      clearTimeout(killer);
      assert.equal(code, 0, `child: ${stderr.slice(-2000)}`);
      const res = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, { ok: boolean; code?: string; ms: number; value?: { bytes: number } }> & { counters: Record<string, number>; flows: number };
      assert.ok(res.v4!.ok && res.v4!.value!.bytes === 200, JSON.stringify(res.v4));
      assert.ok(res.v6!.ok, JSON.stringify(res.v6));
      assert.equal(res.counters['icmp.pingSocket'], 2, 'both answered through the ping socket');
      assert.equal(res.counters['icmp.rawSocket'], undefined);
      assert.equal(res.counters['icmp.pingProcess'], undefined);
      // The gateway gives up after 3 s and says nothing (the path said nothing); the peer's own
      // timeout ends its pings. At most 8 per peer are in flight: the other two are dropped.
      assert.deepEqual([res.blackHole!.ok, res.blackHole!.code], [false, 'ETIMEDOUT']);
      assert.equal(res.counters['icmp.timeout'], 8);
      assert.equal(res.counters['limit.pings'], 2);
      // No route: the send fails at once (ENETUNREACH), counted, the peer told unreachable.
      assert.deepEqual([res.noRoute!.ok, res.noRoute!.code], [false, 'ETIMEDOUT']);
      assert.equal(res.counters['relay.connectFailed'], 1);
      assert.equal(res.flows, 0, 'no echo left in flight');
      assert.ok(Date.now() - t0 < 25_000, `${Date.now() - t0} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
