/** Config formats: every key, precise errors that name file, line and key, keys never printed. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWgQuick, formatWgQuick, parseSingBox, parseConfig, loadConfig, ConfigError } from './index.js';
import { formatIp, formatPrefix } from '../util/ip.js';
import { toBase64 } from '../util/bytes.js';

const K1 = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const K2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const K3 = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';

const REAL = `# a real-world file
[Interface]
PrivateKey = ${K1}
Address = 10.200.100.8/24, fd42:42:42::8/64
address = 10.200.101.8/24
DNS = 10.200.100.1, fd42:42:42::1, corp.example
MTU = 1380
ListenPort = 51820
FwMark = 0x1234
PostUp = iptables -A FORWARD -i %i -j ACCEPT
PostDown = iptables -D FORWARD -i %i -j ACCEPT
Table = off

[Peer]  # the server
PublicKey = ${K2}
PresharedKey = ${K3}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = demo.wireguard.com:51820
PersistentKeepalive = 25

[peer]
publickey = ${K3}
allowedips = 10.9.0.0/16
AllowedIPs = 10.10.0.7/32
endpoint = [2001:db8::1]:4500
`;

describe('wg-quick', () => {
  test('a real-world file: every key, mixed case, comments, repeated lines, hostname and IPv6 endpoints', () => {
    const c = parseWgQuick(REAL, { file: 'wg0.conf' });
    assert.equal(toBase64(c.privateKey), K1);
    assert.deepEqual(c.addresses.map((a) => `${formatIp(a.addr)}/${a.bits}`), ['10.200.100.8/24', 'fd42:42:42::8/64', '10.200.101.8/24']);
    assert.deepEqual(c.dns.servers.map(formatIp), ['10.200.100.1', 'fd42:42:42::1']);
    assert.deepEqual(c.dns.search, ['corp.example']);
    assert.equal(c.mtu, 1380);
    assert.equal(c.listenPort, 51820);
    assert.equal(c.fwMark, 0x1234);
    assert.equal(c.peers.length, 2);
    assert.deepEqual(c.peers[0]!.endpoint, { host: 'demo.wireguard.com', port: 51820 });
    assert.equal(c.peers[0]!.persistentKeepalive, 25);
    assert.equal(toBase64(c.peers[0]!.presharedKey!), K3);
    assert.deepEqual(c.peers[0]!.allowedIps.map(formatPrefix), ['0.0.0.0/0', '::/0']);
    assert.deepEqual(c.peers[1]!.endpoint, { host: '2001:db8::1', port: 4500 });
    assert.deepEqual(c.peers[1]!.allowedIps.map(formatPrefix), ['10.9.0.0/16', '10.10.0.7/32']);
    assert.equal(c.warnings.length, 3, 'PostUp, PostDown, Table reported once each');
    assert.match(c.warnings[0]!, /^wg0\.conf:10: PostUp is ignored/);
  });

  test('round trip through formatWgQuick', () => {
    const c = parseWgQuick(REAL);
    const again = parseWgQuick(formatWgQuick(c));
    assert.deepEqual({ ...again, warnings: [], source: undefined }, { ...c, warnings: [], source: undefined });
  });

  const bad: [string, string, RegExp][] = [
    ['short key', `[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2.slice(0, 40)}\n`, /^wg0\.conf:4: PublicKey: expected 32 bytes of base64, got (invalid base64|\d+)$/],
    ['31-byte key', `[Interface]\nPrivateKey = ${K1}\n\n[Peer]\nPublicKey = ${Buffer.alloc(31, 7).toString('base64')}\n`, /^wg0\.conf:5: PublicKey: expected 32 bytes of base64, got 31$/],
    ['unknown key', `[Interface]\nPrivateKey = ${K1}\nColour = blue\n`, /^wg0\.conf:3: Colour: unknown key in \[Interface\]$/],
    ['unknown section', `[Interface]\nPrivateKey = ${K1}\n[Server]\n`, /^wg0\.conf:3: unknown section \[Server\]/],
    ['bad address', `[Interface]\nPrivateKey = ${K1}\nAddress = 10.0.0.300/24\n`, /^wg0\.conf:3: Address: expected an IP address/],
    ['bad prefix', `[Interface]\nPrivateKey = ${K1}\nAddress = 10.0.0.1/33\n`, /^wg0\.conf:3: Address: prefix length must be 0-32/],
    ['bad endpoint port', `[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nEndpoint = 1.2.3.4:99999\n`, /^wg0\.conf:5: Endpoint: port expected 1-65535, got 99999$/],
    ['missing private key', `[Interface]\nAddress = 10.0.0.1/24\n`, /^wg0\.conf: PrivateKey: missing in \[Interface\]$/],
    ['peer without key', `[Interface]\nPrivateKey = ${K1}\n[Peer]\nAllowedIPs = 0.0.0.0/0\n`, /^wg0\.conf:3: \[Peer\] section without a PublicKey$/],
    ['duplicate peer', `[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\n[Peer]\nPublicKey = ${K2}\n`, /^wg0\.conf:5: a peer with this PublicKey is already configured$/],
    ['no equals', `[Interface]\nPrivateKey\n`, /^wg0\.conf:2: expected 'Key = Value'/],
    ['mtu out of range', `[Interface]\nPrivateKey = ${K1}\nMTU = 100\n`, /^wg0\.conf:3: MTU: expected a number 576-65535, got '100'$/],
  ];
  for (const [name, text, re] of bad) {
    test(`error: ${name}`, () => {
      assert.throws(() => parseWgQuick(text, { file: 'wg0.conf' }), (e: ConfigError) => {
        assert.equal(e.code, 'ERR_WGNET_CONFIG');
        assert.match(e.message, re);
        for (const k of [K1, K2, K3, K2.slice(0, 40)]) assert.ok(!e.message.includes(k), 'no key in the message');
        return true;
      });
    });
  }
});

describe('sing-box endpoints', () => {
  const endpoint = {
    type: 'wireguard',
    tag: 'wg-ep',
    system: false,
    name: 'wg0',
    mtu: 1408,
    address: ['172.16.0.2/32', '2606:4700:110:8f5a::2/128'],
    private_key: K1,
    listen_port: 10000,
    peers: [{ address: 'engage.cloudflareclient.com', port: 2408, public_key: K2, pre_shared_key: K3, allowed_ips: ['0.0.0.0/0', '::/0'], persistent_keepalive_interval: 30, reserved: [1, 2, 3] }],
    udp_timeout: '5m',
    workers: 2,
  };

  test('a bare endpoint (WARP-like): every field, reserved as an array, unsupported fields warned', () => {
    const c = parseSingBox(endpoint, { file: 'warp.json' });
    assert.equal(c.mtu, 1408);
    assert.equal(c.listenPort, 10000);
    assert.deepEqual(c.peers[0]!.endpoint, { host: 'engage.cloudflareclient.com', port: 2408 });
    assert.deepEqual([...c.peers[0]!.reserved!], [1, 2, 3]);
    assert.equal(c.peers[0]!.persistentKeepalive, 30);
    assert.ok(c.warnings.some((w) => /udp_timeout: not supported/.test(w)));
    assert.ok(c.warnings.some((w) => /workers: not supported/.test(w)));
  });

  test('a full config: the endpoint picked by tag; reserved as base64; several without a tag is an error', () => {
    const full = { log: {}, endpoints: [{ ...endpoint, tag: 'a' }, { ...endpoint, tag: 'b', peers: [{ ...endpoint.peers[0], reserved: 'AQID' }] }] };
    const c = parseConfig(JSON.stringify(full), { tag: 'b' });
    assert.deepEqual([...c.peers[0]!.reserved!], [1, 2, 3]);
    assert.throws(() => parseSingBox(full), /several wireguard endpoints \('a', 'b'\)/);
    assert.throws(() => parseSingBox(full, { tag: 'zz' }), /no wireguard endpoint with tag 'zz'/);
  });

  test('errors name the JSON path; keys never printed', () => {
    assert.throws(
      () => parseSingBox({ ...endpoint, peers: [{ ...endpoint.peers[0], public_key: K2.slice(0, 20) + '==' }] }, { file: 'ep.json' }),
      (e: Error) => /^ep\.json: peers\[0\]\.public_key: expected 32 bytes of base64/.test(e.message) && !e.message.includes(K2.slice(0, 20)),
    );
    assert.throws(() => parseSingBox({ ...endpoint, peers: [{ ...endpoint.peers[0], reserved: [1, 2] }] }), /peers\[0\]\.reserved: expected 3 numbers 0-255/);
    assert.throws(() => parseSingBox('{ "type": "wireguard", '), /invalid JSON/);
  });
});

test('config objects with strings, and a file path', async () => {
  const c = await loadConfig({ privateKey: K1, addresses: ['10.0.0.2/32'], dns: ['1.1.1.1'], peers: [{ publicKey: K2, endpoint: '[::1]:51820', allowedIps: ['0.0.0.0/0'] }] });
  assert.deepEqual(c.peers[0]!.endpoint, { host: '::1', port: 51820 });
  await assert.rejects(loadConfig({ privateKey: K1, peers: [{ publicKey: 'nope' }] }), /<config>: peers\[0\]\.publicKey: expected 32 bytes of base64, got 3$/);
  await assert.rejects(loadConfig({ file: '/nonexistent/wg0.conf' }), /wg0\.conf: cannot read/);
});
