/**
 * The config object form of Tunnel.create() is as strict as the INI parser (issue 13):
 * unknown keys name their path and the key meant, strings are accepted where a user writes
 * one, every wrong type is a ConfigError with ERR_WGNET_CONFIG (never a raw TypeError), and
 * no message carries key material.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, validateConfig, ConfigError, type TunnelConfigObject } from './index.js';
import { formatIp, formatPrefix } from '../util/ip.js';

const K1 = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const K2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const K3 = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';

/** Loads `o` (as a user would pass it, types aside) and returns the ConfigError's message. */
async function rejects(o: unknown): Promise<string> {
  try {
    await loadConfig(o as TunnelConfigObject);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal((e as ConfigError).code, 'ERR_WGNET_CONFIG');
    for (const k of [K1, K2, K3]) {
      assert.ok(!e.message.includes(k) && !e.message.includes(k.slice(0, 12)) && !e.message.includes(k.slice(20, 32)), `key material in: ${e.message}`);
    }
    return e.message;
  }
  assert.fail('accepted');
}

test("unknown keys are errors naming the path and the key meant (wg-quick's spellings)", async () => {
  assert.equal(
    await rejects({ privateKey: K1, peers: [{ publicKey: K2, allowedIPs: ['0.0.0.0/0'] }] }),
    '<config>: peers[0].allowedIPs: unknown key, did you mean allowedIps?',
  );
  assert.match(await rejects({ privateKey: K1, listenport: 51820 }), /^<config>: listenport: unknown key, did you mean listenPort\?$/);
  assert.match(await rejects({ privateKey: K1, ListenPort: 51820 }), /ListenPort: unknown key, did you mean listenPort\?/);
  assert.match(await rejects({ privateKey: K1, peers: [{ publicKey: K2, persistent_keepalive_interval: 25 }] }), /peers\[0\]\.persistent_keepalive_interval: unknown key, did you mean persistentKeepalive\?/);
  assert.match(await rejects({ privateKey: K1, peers: [{ publicKey: K2, PublicKey: K3 }] }), /peers\[0\]\.PublicKey: unknown key, did you mean publicKey\?/);
  assert.match(await rejects({ privateKey: K1, colour: 'blue' }), /colour: unknown key \(known: privateKey, address/);
  // A key where a key name should be is not echoed.
  assert.match(await rejects({ privateKey: K1, [K2]: 1 }), /<a key of 44 characters>: unknown key/);
});

test('strings where a user writes one: allowedIps, address, dns, ports and numbers', () => {
  const c = validateConfig({
    privateKey: K1,
    address: '10.0.0.2/32, fd00::2/128',
    dns: '1.1.1.1, corp.example',
    mtu: '1380',
    listenPort: '51820',
    fwMark: '0x1234',
    peers: [{ publicKey: K2, allowedIps: '0.0.0.0/0', endpoint: 'vpn.example.com:51820', persistentKeepalive: '25' }],
  });
  assert.deepEqual(c.addresses.map((a) => `${formatIp(a.addr)}/${a.bits}`), ['10.0.0.2/32', 'fd00::2/128']);
  assert.deepEqual(c.dns.servers.map(formatIp), ['1.1.1.1']);
  assert.deepEqual(c.dns.search, ['corp.example']);
  assert.equal(c.mtu, 1380);
  assert.equal(c.listenPort, 51820);
  assert.equal(c.fwMark, 0x1234);
  assert.deepEqual(c.peers[0]!.allowedIps.map(formatPrefix), ['0.0.0.0/0']);
  assert.deepEqual(c.peers[0]!.endpoint, { host: 'vpn.example.com', port: 51820 });
  assert.equal(c.peers[0]!.persistentKeepalive, 25);
  const lists = validateConfig({ privateKey: K1, addresses: ['10.0.0.2/24'], peers: [{ publicKey: K2, allowedIps: ['10.0.0.0/8', '::/0'], endpoint: { host: '192.0.2.1', port: 51820 } }] });
  assert.deepEqual(lists.peers[0]!.allowedIps.map(formatPrefix), ['10.0.0.0/8', '::/0']);
});

test('wrong types are ConfigErrors with the path, never a raw TypeError', async () => {
  const cases: [unknown, RegExp][] = [
    [null, /expected a config object/],
    [[], /expected a config object/],
    [{ privateKey: K1, peers: {} }, /peers: expected a list of peers, got an object/],
    [{ privateKey: K1, peers: [null] }, /peers\[0\]: expected a peer object, got null/],
    [{ privateKey: K1, peers: [{ publicKey: K2, allowedIps: 7 }] }, /peers\[0\]\.allowedIps: expected an IP prefix like 10\.0\.0\.0\/24 as a string or a list, got a number/],
    [{ privateKey: K1, peers: [{ publicKey: K2, allowedIps: [{}] }] }, /peers\[0\]\.allowedIps\[0\]: expected an IP prefix/],
    [{ privateKey: K1, peers: [{ publicKey: K2, allowedIps: '10.0.0.0/33' }] }, /peers\[0\]\.allowedIps: expected an IP prefix/],
    [{ privateKey: K1, peers: [{ publicKey: 42 }] }, /peers\[0\]\.publicKey: expected a base64 string, got a number/],
    [{ privateKey: K1, peers: [{}] }, /peers\[0\]\.publicKey: missing/],
    [{ peers: [] }, /privateKey: missing/],
    [{ privateKey: K1, dns: 1 }, /dns: expected DNS servers/],
    [{ privateKey: K1, dns: ['1.1.1.1', 'not a domain!'] }, /dns\[1\]: expected an IP address or a search domain/],
    [{ privateKey: K1, mtu: 'big' }, /mtu: expected a whole number 576-65535, got 'big'/],
    [{ privateKey: K1, listenPort: 70000 }, /listenPort: expected a whole number 0-65535, got 70000/],
    [{ privateKey: K1, peers: [{ publicKey: K2, persistentKeepalive: -1 }] }, /persistentKeepalive: expected a whole number 0-65535/],
    [{ privateKey: K1, peers: [{ publicKey: K2, endpoint: 51820 }] }, /peers\[0\]\.endpoint: expected 'host:port' or \{ host, port \}/],
    [{ privateKey: K1, peers: [{ publicKey: K2, endpoint: { host: 'x', port: 0 } }] }, /endpoint\.port: expected a whole number 1-65535/],
    [{ privateKey: K1, peers: [{ publicKey: K2, reserved: [1, 2, 300] }] }, /reserved: expected 3 bytes/],
    [{ privateKey: K1, address: '10.0.0.2/32', addresses: ['10.0.0.3/32'] }, /address: give address or addresses, not both/],
    [{ privateKey: K1, addresses: 5 }, /addresses: expected an IP address/],
  ];
  for (const [o, re] of cases) assert.match(await rejects(o), re);
});

test('secrets never appear in errors: a key in the wrong place is described, not quoted', async () => {
  for (const o of [
    { privateKey: K1, address: K2 },
    { privateKey: K1, dns: K2 },
    { privateKey: K1, mtu: K2 },
    { privateKey: K1, peers: [{ publicKey: K2, allowedIps: K3 }] },
    { privateKey: K1, peers: [{ publicKey: K2, endpoint: K3 }] },
    { privateKey: K1.slice(0, 43), peers: [] },
    { privateKey: K1, peers: [{ publicKey: K2, presharedKey: K3 + 'x' }] },
  ]) {
    await rejects(o); // rejects() checks that no key or fragment is in the message
  }
});

test('the validated model passes through unchanged (Tunnel.create(parsedConfig))', async () => {
  const c = validateConfig({ privateKey: K1, address: '10.0.0.2/32', dns: '10.0.0.1', peers: [{ publicKey: K2, allowedIps: '0.0.0.0/0' }] });
  const again = await loadConfig(c);
  assert.deepEqual(again, c);
});
