#!/usr/bin/env node
// Long fuzz runs: npm run fuzz -- TARGET [--time SECONDS] [--seed N] [--runs N]
// TARGET is a file name in test/fuzz without .test.ts (wireguard, ip, tcp, dns, uapi, proxy,
// gateway), or "all". --time is per property (a target with two properties runs twice as
// long; default 60). Without --seed a random seed is chosen and printed, so a failure
// reproduces with the same --seed (fast-check also prints the shrunk counterexample and its
// path). --runs caps the number of cases. WGNET_FUZZ_STATS=1 prints what each target reached.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';

const args = process.argv.slice(2);
const targets = readdirSync(new URL('../test/fuzz/', import.meta.url))
  .filter((f) => f.endsWith('.test.ts') && f !== 'regressions.test.ts')
  .map((f) => f.replace(/\.test\.ts$/, ''))
  .sort();
let target;
let time = 60;
let seed;
let runs;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const next = () => {
    const v = args[++i];
    if (v === undefined) usage(`${a} needs a value`);
    return v;
  };
  if (a === '--time') time = Number(next());
  else if (a === '--seed') seed = Number(next());
  else if (a === '--runs') runs = Number(next());
  else if (a === '-h' || a === '--help') usage();
  else if (!a.startsWith('-') && target === undefined) target = a;
  else usage(`unknown argument ${a}`);
}
function usage(err) {
  if (err) console.error(`fuzz: ${err}`);
  console.error(`Usage: npm run fuzz -- TARGET|all [--time SECONDS] [--seed N] [--runs N]\nTargets: ${targets.join(', ')}`);
  process.exit(err ? 2 : 0);
}
if (!target) usage('name a target');
if (target !== 'all' && !targets.includes(target)) usage(`no target '${target}'`);
if (!(time > 0)) usage('--time must be a positive number of seconds');
if (seed === undefined) seed = randomInt(1, 2 ** 31 - 1);
if (!Number.isInteger(seed)) usage('--seed must be an integer');

const list = target === 'all' ? targets : [target];
let failed = 0;
for (const t of list) {
  console.log(`fuzz ${t}: --time ${time} --seed ${seed}${runs ? ` --runs ${runs}` : ''}`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-timeout=${(time + 600) * 1000}`, `test/fuzz/${t}.test.ts`], {
    stdio: 'inherit',
    env: { ...process.env, WGNET_FUZZ_TIME: String(time), WGNET_FUZZ_SEED: String(seed), ...(runs ? { WGNET_FUZZ_RUNS: String(runs) } : {}) },
  });
  const ok = r.status === 0;
  if (!ok) failed++;
  console.log(`fuzz ${t}: ${ok ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s; reproduce with: npm run fuzz -- ${t} --time ${time} --seed ${seed}`);
}
process.exit(failed ? 1 : 0);
