/** The README's first command: `wgnet demo` runs with no server, exits 0 and prints its report. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/wgnet.js', import.meta.url));

test('wgnet demo exits 0 and reports the page, ping, throughput and the wg show view', () => {
  const r = spawnSync(process.execPath, [BIN, 'demo', '--megabytes', '4'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /GET http:\/\/10\.99\.0\.2\/ -> 200: hello from tunnel B's own TCP\/IP stack/);
  assert.match(r.stdout, /ping 10\.99\.0\.2: [\d.]+ \/ [\d.]+ \/ [\d.]+ \/ [\d.]+ ms; fd99::2: [\d.]+ ms/);
  assert.match(r.stdout, /download 4 MB through the tunnel: [\d.]+ s, \d+ Mbit\/s/);
  assert.match(r.stdout, /peer: .+\n  endpoint: 127\.0\.0\.1:\d+\n  allowed ips: 10\.99\.0\.2\/32, fd99::2\/128\n  latest handshake: /);
});

test('unknown commands and --help', () => {
  const bad = spawnSync(process.execPath, [BIN, 'frobnicate'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown command 'frobnicate'/);
  for (const cmd of ['demo', 'proxy', 'forward', 'up', 'genkey']) {
    const h = spawnSync(process.execPath, [BIN, cmd, '--help'], { encoding: 'utf8' });
    assert.equal(h.status, 0, cmd);
    assert.match(h.stdout, /Usage: wgnet/, cmd);
  }
});
