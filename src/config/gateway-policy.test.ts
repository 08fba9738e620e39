import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayPolicy, parseRule } from './gateway-policy.js';
import { parseIp } from '../util/ip.js';

const ip = (s: string) => parseIp(s)!;

test('rule syntax: CIDR[:PORTS], bare addresses, bracketed IPv6, ranges and lists', () => {
  assert.deepEqual(parseRule('10.0.0.0/8').ports, []);
  assert.deepEqual(parseRule('10.0.0.0/8:80,443').ports, [[80, 80], [443, 443]]);
  assert.deepEqual(parseRule('10.0.0.5:8000-8100').ports, [[8000, 8100]]);
  assert.equal(parseRule('10.0.0.5').prefix.bits, 32);
  assert.deepEqual(parseRule('fd00::/8:53').ports, [[53, 53]]);
  assert.equal(parseRule('fd00::/8:53').prefix.bits, 8);
  assert.deepEqual(parseRule('[fd00::1]:22').ports, [[22, 22]]);
  assert.equal(parseRule('fd00::1').prefix.bits, 128);
  assert.equal(parseRule('::ffff:10.0.0.0/104').prefix.bits, 8, 'mapped prefixes compare as IPv4');
  for (const bad of ['', 'x', '10.0.0.0/33', '10.0.0.0/8:0', '10.0.0.0/8:70000', '10.0.0.0/8:90-80', '10.0.0.0/8:a', '[fd00::1', '[fd00::1]x']) {
    assert.throws(() => parseRule(bad), (e: Error & { code?: string }) => e.code === 'ERR_WGNET_INVALID_ARGUMENT' && e.message.includes('CIDR'), bad);
  }
});

test('defaults: the internet is allowed; loopback, link-local, multicast, broadcast, unspecified and host addresses are not', () => {
  const p = new GatewayPolicy({ hostAddresses: ['192.168.1.10', 'fe80::1%eth0'] });
  assert.equal(p.check(ip('93.184.216.34'), 443), undefined);
  assert.equal(p.check(ip('2001:db8::1'), 80), undefined);
  assert.equal(p.check(ip('127.0.0.1'), 22), 'loopback');
  assert.equal(p.check(ip('127.9.9.9'), 22), 'loopback');
  assert.equal(p.check(ip('::1'), 22), 'loopback');
  assert.equal(p.check(ip('::ffff:127.0.0.1'), 22), 'loopback', 'IPv4-mapped loopback is loopback');
  assert.equal(p.check(ip('0.0.0.0'), 22), 'unspecified');
  assert.equal(p.check(ip('::'), 22), 'unspecified');
  assert.equal(p.check(ip('169.254.169.254'), 80), 'link-local', 'cloud metadata');
  assert.equal(p.check(ip('fe80::abcd'), 80), 'link-local');
  assert.equal(p.check(ip('224.0.0.251'), 5353), 'multicast');
  assert.equal(p.check(ip('ff02::1'), 0), 'multicast');
  assert.equal(p.check(ip('255.255.255.255'), 67), 'broadcast');
  assert.equal(p.check(ip('192.168.1.10'), 22), 'host-address');
  assert.equal(p.check(ip('fe80::1'), 22), 'link-local');
});

test('deny beats allow, allow unlocks a default class, and any allow rule makes an allowlist', () => {
  const p = new GatewayPolicy({ allow: ['127.0.0.1:8080', '10.0.0.0/8'], deny: ['10.1.0.0/16', '10.2.0.0/16:22'] });
  assert.equal(p.check(ip('127.0.0.1'), 8080), undefined);
  assert.equal(p.check(ip('127.0.0.1'), 8081), 'loopback');
  assert.equal(p.check(ip('10.9.9.9'), 1), undefined);
  assert.equal(p.check(ip('10.1.2.3'), 80), 'denied');
  assert.equal(p.check(ip('10.2.2.3'), 22), 'denied');
  assert.equal(p.check(ip('10.2.2.3'), 23), undefined);
  assert.equal(p.check(ip('10.2.2.3'), 0), undefined, 'a port rule does not deny ICMP');
  assert.equal(p.check(ip('8.8.8.8'), 53), 'not-allowed');
});

test('per-peer rules apply to that peer only', () => {
  const p = new GatewayPolicy({ deny: [{ ...parseRule('10.0.0.0/8'), peer: 'AAAA' }] });
  assert.equal(p.check(ip('10.0.0.1'), 80, 'AAAA'), 'denied');
  assert.equal(p.check(ip('10.0.0.1'), 80, 'BBBB'), undefined);
  assert.equal(p.check(ip('10.0.0.1'), 80), undefined);
});

test('allowLoopback (--expose-localhost) lifts the loopback class only, and keeps allow-all', () => {
  const p = new GatewayPolicy({ allowLoopback: true });
  assert.equal(p.check(ip('127.0.0.1'), 22), undefined);
  assert.equal(p.check(ip('::1'), 22), undefined);
  assert.equal(p.check(ip('169.254.169.254'), 80), 'link-local');
  assert.equal(p.check(ip('198.51.100.1'), 80), undefined);
});
