import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { backends, formatBackends } from './backends.js';
import { addonCandidates } from './native.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

test('backends: the package version, and WGNET_UDP=dgram reported as the reason for dgram', () => {
  const saved = process.env.WGNET_UDP;
  process.env.WGNET_UDP = 'dgram';
  try {
    const b = backends();
    assert.equal(b.version, pkg.version);
    assert.deepEqual(b.udp, { backend: 'dgram', reason: 'WGNET_UDP=dgram' });
    const text = formatBackends(b).split('\n');
    assert.equal(text[0], `wgnet ${pkg.version}`);
    assert.match(text.find((l) => l.trimStart().startsWith('udp'))!, /^ {2}udp +dgram \(node:dgram; WGNET_UDP=dgram\)$/);
  } finally {
    if (saved === undefined) delete process.env.WGNET_UDP;
    else process.env.WGNET_UDP = saved;
  }
});

test('backends: batched exactly when the UDP addon loads, with where it came from or why not', () => {
  const b = backends();
  if (b.udp.backend === 'batched') assert.ok(b.udp.addon && addonCandidates('wgnet_udp').includes(b.udp.addon), b.udp.addon);
  else assert.match(b.udp.reason ?? '', /unavailable/);
  if (!b.tun.available) assert.ok(b.tun.reason);
});

test('addon candidates: prebuilds for both libcs first, then the node-gyp build', () => {
  const c = addonCandidates('wgnet_udp').map((p) => p.split('/').slice(-3).join('/'));
  assert.deepEqual(c, [
    `prebuilds/${process.platform}-${process.arch}/wgnet_udp.napi.glibc.node`,
    `prebuilds/${process.platform}-${process.arch}/wgnet_udp.napi.musl.node`,
    `prebuilds/${process.platform}-${process.arch}/wgnet_udp.napi.node`,
    'build/Release/wgnet_udp.node',
  ]);
});
