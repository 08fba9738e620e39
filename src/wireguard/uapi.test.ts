/** The UAPI text protocol: wireguard-go's answers, errno values, and no crash on any input. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from './device.js';
import { UapiConnection, UapiErrno, uapiGet, parseUapiSet, applyUapiSet, type UapiHost } from './uapi.js';
import { getCryptoProvider } from '../crypto/index.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../crypto/keys.js';
import { SeededRng } from '../util/rng.js';
import { toHex } from '../util/bytes.js';

function host(): UapiHost & { port: number } {
  const crypto = getCryptoProvider('native');
  const rng = new SeededRng(5);
  const device = new Device({ privateKey: generatePrivateKey(rng), crypto, rng, wallClock: () => 1_700_000_000_500 });
  const h = { device, port: 51820, mark: 0, listenPort: () => h.port, setListenPort: (p: number) => void (h.port = p), fwmark: () => h.mark, setFwmark: (m: number) => void (h.mark = m) };
  return h;
}

function converse(h: UapiHost, input: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const c = new UapiConnection(h, (s) => (out += s), () => resolve(out));
    c.feed(input);
    // Close once everything queued has been answered.
    setTimeout(() => resolve(out), 50);
  });
}

test('set then get, in wireguard-go\'s order; remove, update_only, replace_allowed_ips, -prefix removal', async () => {
  const h = host();
  const rng = new SeededRng(6);
  const peer = toHex(publicKeyFromPrivate(getCryptoProvider('native'), generatePrivateKey(rng)));
  const out = await converse(h, `set=1\nlisten_port=51999\npublic_key=${peer}\nendpoint=[fd00::1]:51820\npersistent_keepalive_interval=25\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::/64\n\nget=1\n\n`);
  const [setAns, getAns] = out.split('\n\n');
  assert.equal(setAns, 'errno=0');
  const lines = getAns!.split('\n');
  assert.match(lines[0]!, /^private_key=[0-9a-f]{64}$/);
  assert.equal(lines[1], 'listen_port=51999');
  assert.deepEqual(lines.slice(2, 5), [`public_key=${peer}`, `preshared_key=${'0'.repeat(64)}`, 'protocol_version=1']);
  assert.equal(lines[5], 'endpoint=[fd00::1]:51820');
  assert.deepEqual(lines.slice(6, 11), ['last_handshake_time_sec=0', 'last_handshake_time_nsec=0', 'tx_bytes=0', 'rx_bytes=0', 'persistent_keepalive_interval=25']);
  assert.deepEqual(lines.slice(11, 13), ['allowed_ip=10.0.0.0/24', 'allowed_ip=fd00::/64']);
  assert.equal(lines[13], 'errno=0');
  await applyUapiSet(h, parseUapiSet(`public_key=${peer}\nallowed_ip=-10.0.0.0/24\n`));
  assert.doesNotMatch(uapiGet(h), /10\.0\.0\.0/);
  await applyUapiSet(h, parseUapiSet(`public_key=${peer}\nreplace_allowed_ips=true\nallowed_ip=10.1.0.0/16\n`));
  assert.match(uapiGet(h), /allowed_ip=10\.1\.0\.0\/16\n$/);
  const other = toHex(publicKeyFromPrivate(getCryptoProvider('native'), generatePrivateKey(rng)));
  await applyUapiSet(h, parseUapiSet(`public_key=${other}\nupdate_only=true\n`));
  assert.doesNotMatch(uapiGet(h), new RegExp(other));
  await applyUapiSet(h, parseUapiSet(`public_key=${peer}\nremove=true\n`));
  assert.doesNotMatch(uapiGet(h), /public_key/);
});

test('errno values as wireguard-go: EINVAL for bad values and keys, EPROTO for a line without =', async () => {
  const h = host();
  const cases: [string, number][] = [
    ['listen_port=70000\n', UapiErrno.INVALID],
    ['private_key=zz\n', UapiErrno.INVALID],
    ['bogus_key=1\n', UapiErrno.INVALID],
    ['no equals sign\n', UapiErrno.PROTOCOL],
    [`public_key=${'ab'.repeat(32)}\nallowed_ip=10.0.0.0/33\n`, UapiErrno.INVALID],
    [`public_key=${'ab'.repeat(32)}\nendpoint=nohost\n`, UapiErrno.INVALID],
    [`public_key=${'ab'.repeat(32)}\npersistent_keepalive_interval=65536\n`, UapiErrno.INVALID],
    [`public_key=${'ab'.repeat(32)}\nprotocol_version=2\n`, UapiErrno.INVALID],
    ['replace_peers=false\n', UapiErrno.INVALID],
  ];
  for (const [body, errno] of cases) {
    const out = await converse(h, `set=1\n${body}\n`);
    assert.equal(out, `errno=${errno}\n\n`, body);
  }
  assert.doesNotMatch(uapiGet(h), /public_key/, 'a failed set changed nothing');
});

test('fuzz: random and mutated requests never crash; pipelined gets all answered', async () => {
  const h = host();
  const rng = new SeededRng(9);
  const pieces = ['set=1\n', 'get=1\n', '\n', 'public_key=', 'ab'.repeat(32), 'allowed_ip=', '10.0.0.0/8', '=', 'endpoint=', '1.2.3.4:5', 'zz', '\u0000', 'listen_port=', '99999999999'];
  for (let i = 0; i < 2000; i++) {
    let s = '';
    const n = 1 + (rng.nextU32() % 12);
    for (let j = 0; j < n; j++) s += pieces[rng.nextU32() % pieces.length];
    const c = new UapiConnection(h, () => {}, () => {});
    assert.doesNotThrow(() => c.feed(s));
  }
  const out = await converse(h, 'get=1\n\n'.repeat(50));
  assert.equal(out.match(/errno=0/g)?.length, 50);
});

test('100,000 allowed IPs round-trip through set and get', async () => {
  const h = host();
  const peer = 'cd'.repeat(32);
  let body = `public_key=${peer}\n`;
  for (let i = 0; i < 100_000; i++) body += `allowed_ip=10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32\n`;
  const out = await converse(h, `set=1\n${body}\nget=1\n\n`);
  assert.ok(out.startsWith('errno=0\n\n'));
  assert.equal(out.match(/allowed_ip=/g)?.length, 100_000);
  assert.match(out, /allowed_ip=10\.1\.134\.159\/32/);
});

test('an oversized request is refused with EINVAL and the connection closed', async () => {
  const h = host();
  let out = '';
  let ended = false;
  const c = new UapiConnection(h, (s) => (out += s), () => (ended = true), () => {}, 1024);
  c.feed('set=1\n' + 'listen_port=1\n'.repeat(200));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(out, `errno=${UapiErrno.INVALID}\n\n`);
  assert.ok(ended);
});
