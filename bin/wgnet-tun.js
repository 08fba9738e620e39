#!/usr/bin/env node
// wireguard-go's command line (`wgnet-tun [-f] IFNAME`), for
// WG_QUICK_USERSPACE_IMPLEMENTATION=wgnet-tun wg-quick up wg0.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'src', 'cli', 'up.js');
let mod;
if (existsSync(built)) mod = await import(pathToFileURL(built).href);
else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(pathToFileURL(join(root, 'src', 'cli', 'up.ts')).href);
}
process.exitCode = await mod.runUp(process.argv.slice(2), 'wgnet-tun');
