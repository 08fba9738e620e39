/**
 * Per-packet structures of the WireGuard layer: allowed-IPs longest-prefix
 * lookups (10k prefixes) and replay-window accepts. A deterministic xorshift
 * stands in for randomness so runs compare.
 */
import { AllowedIps } from '../src/wireguard/allowed-ips.js';
import { ReplayWindow } from '../src/wireguard/replay.js';
import { measure, type BenchRow } from './common.js';

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

export async function benchStructures(): Promise<BenchRow[]> {
  const next = xorshift(0x5eed);
  const table = new AllowedIps<number>();
  for (let i = 0; i < 10_000; i++) {
    const bits = 8 + (next() % 25);
    const a = new Uint8Array(4);
    new DataView(a.buffer).setUint32(0, bits === 32 ? next() : (next() >>> (32 - bits)) << (32 - bits));
    table.insert({ addr: a, bits }, i % 1000);
  }
  const probes = new Uint8Array(4 * 4096);
  for (let i = 0; i < probes.length; i++) probes[i] = next() & 0xff;
  let j = 0;
  const lookups = measure(() => {
    table.lookup(4, probes, j);
    j = (j + 4) & (probes.length - 1);
  });
  const w = new ReplayWindow();
  let c = 0;
  const accepts = measure(() => {
    // Mostly in order with some reordering, as a real stream arrives.
    w.accept((c & 7) === 0 ? c + 3 : c, Number.MAX_SAFE_INTEGER);
    c++;
  });
  return [
    { name: 'AllowedIps lookup, 10k IPv4 prefixes', value: lookups, unit: 'op/s' },
    { name: 'ReplayWindow accept', value: accepts, unit: 'op/s' },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) for (const r of await benchStructures()) console.log(r);
