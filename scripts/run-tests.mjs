#!/usr/bin/env node
// Runs every *.test.ts under the given roots (default: src and test) on Node's
// built-in runner, through tsx so tests run on the sources without a build step.
// Node 20's --test takes no globs, so the files are listed here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const roots = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const files = [];
function walk(p) {
  const st = statSync(p);
  if (st.isDirectory()) {
    for (const name of readdirSync(p).sort()) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      walk(join(p, name));
    }
  } else if (p.endsWith('.test.ts')) files.push(p);
}
for (const r of roots.length ? roots : ['src', 'test']) walk(r);
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}
// A hung test fails after 5 minutes instead of holding CI until its own limit.
const timeout = flags.some((f) => f.startsWith('--test-timeout')) ? [] : ['--test-timeout=300000'];
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', ...timeout, ...flags, ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
