#!/usr/bin/env node
// `npm pack` / `npm publish` run this first, so the tarball holds what an
// installed package needs and nothing that must be built on the user's machine:
//   dist/src/          the library and CLI compiled by tsc (tsconfig.build.json: no tests, no maps)
//   prebuilds/P-A/     the two N-API addons, built here from native/*.c and named as
//                      node-gyp-build/prebuildify do (NAME.napi.LIBC.node), so the
//                      package needs no install script and no compiler (src/io/native.ts loads them)
// WGNET_SKIP_PREBUILDS=1 packs without them (no compiler needed; the package then runs on node:dgram).
// `postpack` removes prebuilds/ again: in a checkout, a stale prebuild would
// shadow what `npm run build:native` compiles.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ADDONS = ['wgnet_udp', 'wgnet_tun', 'wgnet_memory'];

function run(cmd, args) {
  // Children's stdout goes to stderr: `npm pack --json` prints its JSON on stdout.
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 2, 2] });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`prepack: ${cmd} ${args.join(' ')} failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

/** musl or glibc, as node-gyp-build tells them apart (prebuildify's --tag-libc). */
function libc() {
  if (process.platform !== 'linux') return undefined;
  const header = process.report?.getReport?.().header;
  return header?.glibcVersionRuntime ? 'glibc' : 'musl';
}

rmSync(join(root, 'dist'), { recursive: true, force: true });
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json']);

rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
if (process.platform === 'linux' && process.env.WGNET_SKIP_PREBUILDS !== '1') {
  // npm puts its bundled node-gyp on PATH for lifecycle scripts.
  run('node-gyp', ['rebuild', '--directory=native']);
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  mkdirSync(dir, { recursive: true });
  const require = createRequire(import.meta.url);
  for (const name of ADDONS) {
    const built = join(root, 'native', 'build', 'Release', `${name}.node`);
    const dest = join(dir, `${name}.napi.${libc()}.node`);
    copyFileSync(built, dest);
    require(dest); // a prebuild that cannot load here must not ship
  }
  console.error(`prepack: prebuilds in ${dir}`);
} else {
  console.error(`prepack: no prebuilt addons for ${process.platform}-${process.arch}; the package falls back to node:dgram there`);
}
if (!existsSync(join(root, 'dist', 'src', 'index.js'))) {
  console.error('prepack: dist/src/index.js was not built');
  process.exit(1);
}
