/**
 * Operations (issue 15): tunnel.metrics() in the Prometheus text format, checked by a strict
 * parser and by promtool; counters that rise with a transfer between two in-process tunnels;
 * /livez and /readyz over HTTP, flipping to 503 when the peer goes away and back to 200 when
 * it returns.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { Tunnel } from '../../src/index.js';
import { tunnelPair, keyPair } from '../harness/tunnel-pair.js';
import { parseExposition, valueOf, hasPromtool, promtoolCheck } from '../harness/prom.js';
import { PassThrough } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import diagnostics from 'node:diagnostics_channel';
import { serveOps } from '../../src/io/health.js';
import { formatMetrics } from '../../src/io/metrics.js';

const needPromtool = hasPromtool ? false : process.env.CI ? assert.fail('CI=true but promtool (Debian prometheus) is missing') : 'needs promtool';

function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, type: String(res.headers['content-type']) }));
      })
      .on('error', reject);
  });
}

async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('tunnel.metrics()', () => {
  test('is valid exposition text and its counters rise with a 1 MB transfer', async () => {
    const { a, b, close } = await tunnelPair();
    try {
      const before = parseExposition(a.metrics());
      const peerB = b.publicKey;
      assert.equal(valueOf(before, 'wgnet_peer_receive_bytes_total', { peer: peerB }), 0);
      assert.equal(valueOf(before, 'wgnet_peer_last_handshake_seconds', { peer: peerB }), 0);
      assert.equal(valueOf(before, 'wgnet_device_dropped_total', { reason: 'badAuth' }), 0, 'every drop reason is present, 0 until counted');

      let got = 0;
      const done = new Promise<void>((resolve) =>
        a
          .createServer((s) => {
            s.on('data', (d: Buffer) => (got += d.length));
            s.on('end', () => {
              s.end();
              resolve();
            });
          })
          .listen(7000),
      );
      const sock = b.connect(7000, '10.66.0.1');
      sock.end(Buffer.alloc(1 << 20, 7));
      sock.resume();
      await done;
      assert.equal(got, 1 << 20);

      const after = parseExposition(a.metrics());
      assert.ok(valueOf(after, 'wgnet_peer_receive_bytes_total', { peer: peerB }) > 1 << 20, 'peer rx bytes cover the transfer');
      assert.ok(valueOf(after, 'wgnet_peer_transmit_bytes_total', { peer: peerB }) > 0);
      assert.ok(valueOf(after, 'wgnet_device_receive_bytes_total') >= 1 << 20);
      assert.ok(valueOf(after, 'wgnet_tcp_rx_segments_total') > 700, 'TCP segments counted');
      assert.ok(valueOf(after, 'wgnet_handshakes_completed_total') >= 1);
      assert.equal(valueOf(after, 'wgnet_peer_handshakes_total', { peer: peerB }), 1);
      const hs = valueOf(after, 'wgnet_peer_last_handshake_seconds', { peer: peerB });
      assert.ok(Math.abs(hs - Date.now() / 1000) < 30, `last handshake is a Unix time now-ish, got ${hs}`);
      assert.ok(valueOf(after, 'wgnet_peer_keypair_age_seconds', { peer: peerB }) >= 0);
      assert.ok(valueOf(after, 'process_resident_memory_bytes') > 1e6);
      assert.ok(valueOf(after, 'process_cpu_user_seconds_total') > 0);
      assert.ok(valueOf(after, 'nodejs_eventloop_lag_p99_seconds') >= 0);
      assert.ok(after.some((s) => s.name === 'wgnet_tcp_connections' && typeof s.labels.state === 'string'));
      // Counters only rise.
      for (const s of before) {
        if (!s.name.endsWith('_total')) continue;
        const later = after.find((x) => x.name === s.name && JSON.stringify(x.labels) === JSON.stringify(s.labels));
        assert.ok(later && later.value >= s.value, `${s.name} did not go down`);
      }
    } finally {
      await close();
    }
  });

  test('gateway mode: flows and refusals by reason', async () => {
    const { a, b, close } = await tunnelPair();
    try {
      a.onFlow(() => 'reject');
      await b.ipcSet(`public_key=${Buffer.from(a.publicKey, 'base64').toString('hex')}\nallowed_ip=10.99.0.0/24\n`);
      const err = await new Promise<Error & { code?: string }>((resolve) => b.connect(80, '10.99.0.5').once('error', resolve));
      assert.equal(err.code, 'ECONNREFUSED');
      const m = parseExposition(a.metrics());
      assert.equal(valueOf(m, 'wgnet_gateway_refused_total', { reason: 'handler' }), 1);
      assert.equal(valueOf(m, 'wgnet_gateway_tcp_flows_total'), 1);
      assert.equal(valueOf(m, 'wgnet_gateway_active_flows'), 0);
      assert.throws(() => valueOf(parseExposition(b.metrics()), 'wgnet_gateway_active_flows'), /no series/, 'no gateway families without onFlow()');
    } finally {
      await close();
    }
  });

  test('promtool check metrics accepts the output (lint included)', { skip: needPromtool }, async () => {
    const { a, b, close } = await tunnelPair();
    try {
      await b.ping('10.66.0.1');
      const r = promtoolCheck(a.metrics({ extra: [{ name: 'my_app_requests_total', type: 'counter', help: 'Extra "family" with \\ and\nnewline.', samples: [{ labels: { path: 'a"b\\c\nd' }, value: 3 }] }] }));
      assert.equal(r.status, 0, r.output);
      assert.equal(r.output, '', 'no lint problems');
    } finally {
      await close();
    }
  });

  test('label values and help text are escaped as the format requires', () => {
    const text = formatMetrics([{ name: 'x_total', type: 'counter', help: 'a\\b\nc', samples: [{ labels: { v: 'q"\\\n' }, value: 1 }] }]);
    assert.equal(text, '# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\nx_total{v="q\\"\\\\\\n"} 1\n');
    assert.deepEqual(parseExposition(text)[0]!.labels, { v: 'q"\\\n' });
    assert.throws(() => formatMetrics([{ name: 'bad-name', type: 'gauge', help: '', samples: [{ value: 1 }] }]));
  });
});

describe('health: /livez and /readyz', () => {
  test('/readyz is 503 before any handshake, names the peer, and honours the peers option', async () => {
    const { a, b, close } = await tunnelPair();
    const server = await serveOps('127.0.0.1', 0, { metrics: () => b.metrics(), health: () => b.health() });
    const port = (server.address() as net.AddressInfo).port;
    try {
      assert.equal((await get(port, '/livez')).status, 200);
      const r = await get(port, '/readyz');
      assert.equal(r.status, 503);
      const j = JSON.parse(r.body) as { ready: boolean; reason: string };
      assert.equal(j.ready, false);
      assert.match(j.reason, new RegExp(`peer ${a.publicKey.replace(/[+/]/g, '\\$&')}: no handshake yet`));
      await b.ping('10.66.0.1');
      assert.equal((await get(port, '/readyz')).status, 200);
      const m = await get(port, '/metrics');
      assert.equal(m.status, 200);
      assert.match(m.type, /^text\/plain; version=0\.0\.4/);
      parseExposition(m.body);
      assert.equal((await get(port, '/nope')).status, 404);
      // A handshake older than the limit is not ready.
      assert.equal(b.health({ maxHandshakeAgeMs: 0 }).ready, false);
      assert.equal(b.health({ peers: [keyPair().publicKey] }).ready, false, 'an unknown peer is never ready');
    } finally {
      server.close();
      await close();
    }
  });

  test('with a health check, /readyz flips to 503 when the peer goes away and back to 200 when it returns', async () => {
    // b (the monitored side) dials a; a restarts on the same port with the same key.
    const ka = keyPair();
    const kb = keyPair();
    const confA = `[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.67.0.1/24\n\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.67.0.2/32\n`;
    let a = await Tunnel.create(confA);
    const portA = a.listenPort;
    const b = await Tunnel.create(`[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.67.0.2/24\n\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.67.0.1/32\nEndpoint = 127.0.0.1:${portA}\n`);
    const changes: boolean[] = [];
    b.healthCheck('10.67.0.1', { interval: 200, timeout: 300, onChange: (ok) => changes.push(ok) });
    const server = await serveOps('127.0.0.1', 0, { metrics: () => b.metrics(), health: () => b.health() });
    const port = (server.address() as net.AddressInfo).port;
    const status = async (): Promise<number> => (await get(port, '/readyz')).status;
    try {
      await until('/readyz 200', async () => (await status()) === 200);
      await a.close();
      const down = Date.now();
      await until('/readyz 503 after the peer closed', async () => (await status()) === 503, 5_000);
      assert.ok(Date.now() - down < 2_000, 'within the probe interval plus timeout');
      const r = JSON.parse((await get(port, '/readyz')).body) as { reason: string; probe: { ok: boolean } };
      assert.match(r.reason, /health check 10\.67\.0\.1: (ETIMEDOUT|EHOSTUNREACH)/);
      assert.equal(r.probe.ok, false);
      // The peer returns (same key and port) and handshakes to b's endpoint.
      a = await Tunnel.create(confA, { listenPort: portA });
      await a.ipcSet(`public_key=${Buffer.from(kb.publicKey, 'base64').toString('hex')}\nendpoint=127.0.0.1:${b.listenPort}\n`);
      await a.ping('10.67.0.2');
      await until('/readyz 200 after the peer returned', async () => (await status()) === 200, 5_000);
      assert.deepEqual(changes.filter((x, i) => i === 0 || x !== changes[i - 1]).slice(0, 3), [true, false, true]);
    } finally {
      server.close();
      await b.close();
      await a.close();
    }
  });
});

const needTcpdump = spawnSync('sh', ['-c', 'command -v tcpdump']).status === 0 ? false : process.env.CI ? assert.fail('CI=true but tcpdump is missing') : 'needs tcpdump';

describe('tunnel.capture()', () => {
  test('a file: pcap with LINKTYPE_RAW that tcpdump reads, rotated at maxBytes', { skip: needTcpdump }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgnet-pcap-'));
    const file = join(dir, 'cap.pcap');
    const { a, b, close } = await tunnelPair();
    try {
      const cap = a.capture(file, { maxBytes: 8192 });
      assert.throws(() => a.capture(join(dir, 'other.pcap')), { code: 'ERR_WGNET_IN_USE' });
      for (let i = 0; i < 40; i++) await b.ping('10.66.0.1', { size: 200 });
      await cap.close();
      assert.ok(cap.stats.rotations >= 1, 'rotated');
      assert.ok(existsSync(`${file}.1`));
      for (const f of [file, `${file}.1`]) {
        assert.ok(statSync(f).size <= 8192, `${f} within maxBytes`);
        const r = spawnSync('tcpdump', ['-nn', '-r', f], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /link-type RAW/);
        assert.match(r.stdout, /IP 10\.66\.0\.2 > 10\.66\.0\.1: ICMP echo request/);
        assert.match(r.stdout, /IP 10\.66\.0\.1 > 10\.66\.0\.2: ICMP echo reply/);
      }
      // Closed: nothing more is written, and a new capture may start.
      const size = statSync(file).size;
      await b.ping('10.66.0.1');
      assert.equal(statSync(file).size, size);
      await a.capture(join(dir, 'again.pcap')).close();
    } finally {
      await close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a stream: the pcap header, then records, and no more than maxBytes in all', async () => {
    const { a, b, close } = await tunnelPair();
    try {
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (d: Buffer) => chunks.push(d));
      const cap = a.capture(out, { maxBytes: 1000 });
      for (let i = 0; i < 10; i++) await b.ping('10.66.0.1', { size: 100 });
      await cap.close();
      const all = Buffer.concat(chunks);
      assert.ok(all.length <= 1000 && all.length > 24 + 16);
      assert.equal(all.readUInt32LE(0), 0xa1b2c3d4, 'pcap magic, microseconds');
      assert.equal(all.readUInt16LE(4), 2);
      assert.equal(all.readUInt16LE(6), 4);
      assert.equal(all.readUInt32LE(20), 101, 'LINKTYPE_RAW');
      const incl = all.readUInt32LE(24 + 8);
      assert.equal(all[24 + 16]! >> 4, 4, 'the first record is a bare IPv4 packet');
      assert.equal(all.readUInt16BE(24 + 16 + 2), incl, 'IPv4 total length = captured length');
      assert.ok(cap.stats.dropped > 0, 'packets past maxBytes are counted as dropped');
      assert.equal(out.writableEnded, false, 'a stream given by the caller is left open');
    } finally {
      await close();
    }
  });
});

describe('diagnostics_channel', () => {
  test('wgnet:handshake carries the tunnel and the peer; nothing is published without subscribers', async () => {
    const seen: { tunnel?: unknown; publicKey: string }[] = [];
    const onMsg = (m: unknown): void => void seen.push(m as { tunnel?: unknown; publicKey: string });
    const { a, b, close } = await tunnelPair();
    try {
      diagnostics.subscribe('wgnet:handshake', onMsg);
      await b.ping('10.66.0.1');
      await until('both handshake messages', () => seen.length >= 2);
      assert.ok(seen.some((m) => m.tunnel === a && m.publicKey === b.publicKey));
      assert.ok(seen.some((m) => m.tunnel === b && m.publicKey === a.publicKey));
      assert.equal(diagnostics.channel('wgnet:handshake-failed').hasSubscribers, false);
      assert.equal(diagnostics.channel('wgnet:endpoint-changed').hasSubscribers, false);
    } finally {
      diagnostics.unsubscribe('wgnet:handshake', onMsg);
      await close();
    }
  });
});
