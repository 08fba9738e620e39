#!/usr/bin/env node
// wireguard-go's command line (`wgnet-tun [-f] IFNAME`), for
// WG_QUICK_USERSPACE_IMPLEMENTATION=wgnet-tun wg-quick up wg0.
// Installed: the compiled CLI; in a checkout (src/ present): the sources through tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'cli', 'up.ts');
let mod;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(pathToFileURL(source).href);
} else {
  mod = await import(pathToFileURL(join(root, 'dist', 'src', 'cli', 'up.js')).href);
}
process.exitCode = await mod.runUp(process.argv.slice(2), 'wgnet-tun');
