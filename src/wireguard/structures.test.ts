/** The replay window and the allowed-IPs trie against naive reference implementations on random data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayWindow } from './replay.js';
import { AllowedIps } from './allowed-ips.js';
import { HandshakeRateLimiter } from './ratelimiter.js';
import { SeededRng, randomInt } from '../util/rng.js';
import { maskAddr, prefixContains, parsePrefix, type IpPrefix } from '../util/ip.js';

const WINDOW = 8128; // restated from the whitepaper/wireguard-go, not imported

test('replay window matches a naive reference (Set + max) on reordered, duplicated, jumping counters', () => {
  const rng = new SeededRng(11);
  for (let round = 0; round < 20; round++) {
    const w = new ReplayWindow();
    const seen = new Set<number>();
    let max = -1;
    let base = 0;
    for (let i = 0; i < 3000; i++) {
      const r = rng.nextFloat();
      if (r < 0.02) base += randomInt(rng, 20000); // big jumps, sometimes beyond the window
      const c = Math.max(0, base + randomInt(rng, 9000) - 4500);
      const naive = !seen.has(c) && (max < 0 || c > max || max - c <= WINDOW);
      assert.equal(w.accept(c, 2 ** 53), naive, `counter ${c}, max ${max}`);
      if (naive) {
        seen.add(c);
        if (c > max) max = c;
      }
      base += 1;
    }
  }
});

test('replay window edges: 0, exactly the window, one past it, the limit', () => {
  const w = new ReplayWindow();
  assert.ok(w.accept(0, 100000));
  assert.equal(w.accept(0, 100000), false);
  assert.ok(w.accept(WINDOW + 10, 100000));
  assert.ok(w.accept(10, 100000), 'exactly WINDOW behind is accepted');
  assert.equal(w.accept(9, 100000), false, 'one more is too old');
  assert.equal(w.accept(100000, 100000), false, 'at the limit');
});

function randomPrefix(rng: SeededRng, v6: boolean): IpPrefix {
  const a = new Uint8Array(v6 ? 16 : 4);
  rng.fill(a);
  if (v6) a[0] = 0x20; // cluster so prefixes overlap
  else a[0] = 10;
  const bits = randomInt(rng, (v6 ? 128 : 32) + 1);
  return { addr: maskAddr(a, bits), bits };
}

test('allowed IPs: longest-prefix match equals a naive scan on random data (wireguard-go sizes)', () => {
  const rng = new SeededRng(12);
  const t = new AllowedIps<number>();
  const list: { p: IpPrefix; v: number }[] = [];
  for (let i = 0; i < 6000; i++) {
    const p = randomPrefix(rng, i % 2 === 1);
    const v = randomInt(rng, 1000);
    t.insert(p, v);
    const k = list.findIndex((x) => x.p.bits === p.bits && x.p.addr.length === p.addr.length && x.p.addr.every((b, j) => b === p.addr[j]));
    if (k >= 0) list[k]!.v = v;
    else list.push({ p, v });
  }
  assert.equal(t.size, list.length);
  const naive = (a: Uint8Array): number | undefined => {
    let best: { p: IpPrefix; v: number } | undefined;
    for (const x of list) if (prefixContains(x.p, a) && (!best || x.p.bits > best.p.bits)) best = x;
    return best?.v;
  };
  for (let i = 0; i < 20000; i++) {
    const v6 = i % 2 === 1;
    const a = new Uint8Array(v6 ? 16 : 4);
    rng.fill(a);
    a[0] = v6 ? 0x20 : 10;
    // Unaligned: the address sits at an odd offset inside a bigger buffer, as in a packet.
    const buf = new Uint8Array(a.length + 5);
    buf.set(a, 3);
    assert.equal(t.lookup(v6 ? 6 : 4, buf, 3), naive(a));
  }
  // Remove one value's prefixes and check again.
  const gone = list[0]!.v;
  const n = list.filter((x) => x.v === gone).length;
  assert.equal(t.removeByValue(gone), n);
  for (let i = list.length - 1; i >= 0; i--) if (list[i]!.v === gone) list.splice(i, 1);
  for (let i = 0; i < 2000; i++) {
    const a = new Uint8Array(4);
    rng.fill(a);
    a[0] = 10;
    assert.equal(t.lookup(4, a), naive(a));
  }
});

test('allowed IPs: the same address looked up twice in a row sees every change made in between', () => {
  for (const [fam, net, host, addr] of [
    [4, '10.9.0.0/16', '10.9.1.2/32', Uint8Array.of(10, 9, 1, 2)],
    [6, 'fd00:9::/32', 'fd00:9::1:2/128', Uint8Array.of(0xfd, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2)],
  ] as const) {
    const t = new AllowedIps<string>();
    assert.equal(t.lookup(fam, addr), undefined);
    t.insert(parsePrefix(net)!, 'net');
    assert.equal(t.lookup(fam, addr), 'net');
    t.insert(parsePrefix(host)!, 'host');
    assert.equal(t.lookup(fam, addr), 'host');
    assert.equal(t.lookup(fam, addr), 'host');
    t.insert(parsePrefix(host)!, 'other');
    assert.equal(t.lookup(fam, addr), 'other');
    t.remove(parsePrefix(host)!);
    assert.equal(t.lookup(fam, addr), 'net');
    t.removeByValue('net');
    assert.equal(t.lookup(fam, addr), undefined);
    t.insert(parsePrefix(net)!, 'net');
    assert.equal(t.lookup(fam, addr), 'net');
    t.clear();
    assert.equal(t.lookup(fam, addr), undefined);
  }
});

test('allowed IPs: /0, host routes, owner replacement, removal of a missing prefix, 100,000 prefixes for one peer', () => {
  const t = new AllowedIps<string>();
  t.insert(parsePrefix('0.0.0.0/0')!, 'default');
  t.insert(parsePrefix('10.1.2.3/32')!, 'host');
  t.insert(parsePrefix('10.1.0.0/16')!, 'net');
  assert.equal(t.lookup(4, Uint8Array.of(10, 1, 2, 3)), 'host');
  assert.equal(t.lookup(4, Uint8Array.of(10, 1, 9, 9)), 'net');
  assert.equal(t.lookup(4, Uint8Array.of(192, 0, 2, 1)), 'default');
  t.insert(parsePrefix('10.1.0.0/16')!, 'other');
  assert.equal(t.lookup(4, Uint8Array.of(10, 1, 9, 9)), 'other');
  assert.deepEqual(t.prefixesOf('net'), []);
  assert.equal(t.remove(parsePrefix('10.2.0.0/16')!), false);
  assert.equal(t.lookup(6, new Uint8Array(16)), undefined);
  const big = new AllowedIps<string>();
  for (let i = 0; i < 100_000; i++) big.insert({ addr: Uint8Array.of(10, (i >> 8) & 0xff, i & 0xff, 0), bits: 24 }, 'p');
  assert.equal(big.prefixesOf('p').length, 65536);
  assert.equal(big.removeByValue('p'), 65536);
  assert.equal(big.size, 0);
});

test('handshake rate limiter: burst 5, then 20 per second; IPv6 grouped by /64; bounded table', () => {
  const rl = new HandshakeRateLimiter();
  const ip = Uint8Array.of(192, 0, 2, 1);
  let allowed = 0;
  for (let i = 0; i < 10; i++) if (rl.allow(0, ip)) allowed++;
  assert.equal(allowed, 5);
  allowed = 0;
  for (let t = 0; t < 60_000; t += 10) if (rl.allow(t + 10, ip)) allowed++;
  assert.ok(allowed >= 60 * 20 - 1 && allowed <= 60 * 20 + 5, `${allowed} in a minute`);
  const a = new Uint8Array(16).fill(1);
  const b = new Uint8Array(16).fill(1);
  b[15] = 2;
  for (let i = 0; i < 5; i++) rl.allow(100_000, a);
  assert.equal(rl.allow(100_000, b), false, 'same /64 shares the bucket');
  const small = new HandshakeRateLimiter({ maxEntries: 2 });
  assert.ok(small.allow(0, Uint8Array.of(1, 1, 1, 1)));
  assert.ok(small.allow(0, Uint8Array.of(1, 1, 1, 2)));
  assert.equal(small.allow(0, Uint8Array.of(1, 1, 1, 3)), false, 'a full table refuses new sources');
  small.collect(5000);
  assert.equal(small.size, 0);
});
