#!/usr/bin/env node
// Installed, the package has dist/ and no src/: run the compiled CLI. In a
// checkout (src/ present) run the sources through tsx, so tests and developers
// never pick up a dist/ left behind by an older build or `npm pack`.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'cli', 'main.ts');
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(join(root, 'dist', 'src', 'cli', 'main.js')).href);
}
