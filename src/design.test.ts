/**
 * Keeps DESIGN §1 true: imports flow one way between layers, wireguard/ and
 * netstack/ never import each other, and nothing below io/ touches real time,
 * randomness or OS sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const srcDir = dirname(fileURLToPath(import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const layerOf = (file: string): string => relative(srcDir, file).split('/')[0]!;

// Which layers each layer may import (besides itself).
const allowed: Record<string, string[]> = {
  util: [],
  crypto: ['util'],
  wire: ['util', 'crypto'],
  wireguard: ['util', 'crypto', 'wire'],
  netstack: ['util', 'crypto', 'wire'],
  config: ['util', 'crypto', 'wire', 'wireguard'],
  io: ['util', 'crypto', 'wire', 'wireguard', 'netstack', 'config'],
  api: ['util', 'crypto', 'wire', 'wireguard', 'netstack', 'config', 'io'],
  cli: ['util', 'crypto', 'wire', 'wireguard', 'netstack', 'config', 'io', 'api'],
  'index.ts': ['util', 'crypto', 'wire', 'wireguard', 'netstack', 'config', 'io', 'api'],
  'design.test.ts': [],
};

test('imports flow one way between layers (DESIGN §1)', () => {
  const bad: string[] = [];
  for (const file of sources(srcDir)) {
    const from = layerOf(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.[^'"]+)['"]/g)) {
      const target = join(dirname(file), m[1]!);
      const to = layerOf(target);
      if (to === from) continue;
      if (!(allowed[from] ?? []).includes(to)) bad.push(`${relative(srcDir, file)} imports ${m[1]} (${from} -> ${to})`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the sans-IO core reads no clock, draws no randomness, opens no sockets (DESIGN §2)', () => {
  const core = ['util', 'crypto', 'wire', 'wireguard', 'netstack'];
  const banned =
    /Date\.now\(|performance\.now\(|setTimeout\(|setInterval\(|setImmediate\(|Math\.random\(|randomBytes\(|randomFillSync\(|getRandomValues\(|from ['"]node:(dgram|net|timers|fs)['"]/;
  const bad: string[] = [];
  for (const file of sources(srcDir)) {
    if (!core.includes(layerOf(file))) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (banned.test(line)) bad.push(`${relative(srcDir, file)}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(bad, []);
});
