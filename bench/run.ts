/**
 * `npm run bench`: every benchmark, each reported next to a reference measured
 * in the same run (DESIGN §7), as a table. `npm run bench -- crypto tcp` runs some;
 * `npm run bench -- soak` (not part of the default run) the soak.
 * Results also go to bench/results.json for the README table.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { BenchRow } from './common.js';

const suites: Record<string, { module: string; fn: string }> = {
  crypto: { module: './crypto.js', fn: 'benchCrypto' },
  structures: { module: './structures.js', fn: 'benchStructures' },
  device: { module: './device.js', fn: 'benchDevice' },
  tcp: { module: './tcp.js', fn: 'benchTcp' },
  tunnel: { module: './tunnel.js', fn: 'benchTunnel' },
  proxy: { module: './proxy.js', fn: 'benchProxy' },
  gateway: { module: './gateway.js', fn: 'benchGateway' },
  'tcp-cc': { module: './tcp-cc.js', fn: 'benchTcpCc' },
  peers: { module: './peers.js', fn: 'benchPeers' },
  soak: { module: './soak.js', fn: 'benchSoak' },
  connrate: { module: './connrate.js', fn: 'benchConnrate' },
  'first-byte': { module: './first-byte.js', fn: 'benchFirstByte' },
};
/** Run only when named: minutes long (1 GB each way through a lossy relay). */
const OPT_IN = new Set(['soak']);

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = wanted.length ? wanted : Object.keys(suites).filter((n) => !OPT_IN.has(n));
const all: (BenchRow & { suite: string })[] = [];

console.log(`wgnet benchmarks — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}\n`);
for (const name of names) {
  const s = suites[name];
  if (!s) {
    console.error(`unknown benchmark '${name}' (have: ${Object.keys(suites).join(', ')})`);
    process.exitCode = 1;
    continue;
  }
  let mod: Record<string, () => Promise<BenchRow[]>>;
  try {
    mod = (await import(s.module)) as Record<string, () => Promise<BenchRow[]>>;
  } catch (err) {
    console.log(`[${name}] not available: ${(err as Error).message.split('\n')[0]}`);
    continue;
  }
  console.log(`[${name}]`);
  try {
    const rows = await mod[s.fn]!();
    for (const r of rows) {
      all.push({ ...r, suite: name });
      const ratio = r.ratio !== undefined ? `  ${r.ratio.toFixed(2)}× ${r.ref ?? ''}` : '';
      console.log(`  ${r.name.padEnd(58)} ${fmt(r.value).padStart(12)} ${r.unit}${ratio}`);
    }
  } catch (err) {
    console.log(`  failed: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
  }
  console.log('');
}
writeFileSync(new URL('./results.json', import.meta.url), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows: all }, null, 2) + '\n');

function fmt(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(v < 10 ? 2 : 0);
}
