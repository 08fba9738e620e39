/**
 * The package as a user gets it (issue 16): `npm pack` of this working tree,
 * installed from the tarball into an empty project with no C compiler, make or
 * python on PATH, then used from ESM, CommonJS and TypeScript (.mts and .cts,
 * type-checked by this repo's tsc with module nodenext). Each consumer brings
 * up two tunnels over loopback with keys from node:crypto, moves real traffic
 * between them, and must be running on the prebuilt batched UDP addon. Then the
 * same without prebuilds (node:dgram, one warning), and `npm install -g` with
 * `wgnet up` creating a TUN in a network namespace (when run as root).
 *
 * The pack runs in a copy of the working tree (without node_modules, .git and
 * build outputs), so prepack's dist/, prebuilds/ and native/build/ never
 * appear under the checkout while other tests or developers use it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { interopUnavailable, makeNamespace, waitFor } from '../interop/harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const TOOLS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'python', 'python3'];

function onPath(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const d of path.split(delimiter)) if (d && existsSync(join(d, name))) return join(d, name);
  return undefined;
}

const skip =
  process.platform !== 'linux' || process.arch !== 'x64'
    ? 'prebuilt addons are built for linux-x64 only'
    : !onPath('cc') && !process.env.CI
      ? 'npm pack builds the prebuilt addons and needs a C compiler'
      : false;

/** The environment a child gets: no npm_* variables from an enclosing `npm test`, and PATH as given. */
function env(path: string): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_|^INIT_CWD$/i.test(k)) e[k] = v;
  e.PATH = path;
  delete e.WGNET_UDP;
  return e;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, e: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd, env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

function ok(r: Run, what: string): Run {
  // status null: killed at run()'s timeout; the consumers' 'progress:' lines on stderr say how far they got.
  assert.equal(r.status, 0, `${what} failed (exit ${r.status ?? 'none: killed at the timeout'}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/**
 * A consumer program, as plain JS that is also valid TypeScript. It peers two
 * tunnels over loopback (B knows A's endpoint, so B starts the handshake), then
 * either fetches over HTTP from a server on A or echoes over a TCP connection,
 * and prints one JSON line: what the server saw and Tunnel.backends().
 */
function consumer(kind: 'esm' | 'cjs', traffic: 'fetch' | 'connect', ts: boolean): string {
  // TypeScript imports in both module kinds (a .cts compiles them to require(), and
  // tsc resolves 'wgnet' with the require condition there); plain CommonJS requires.
  const head =
    kind === 'esm' || ts
      ? `import { generateKeyPairSync } from 'node:crypto';\nimport * as http from 'node:http';\nimport { Tunnel } from 'wgnet';\n`
      : `const { generateKeyPairSync } = require('node:crypto');\nconst http = require('node:http');\nconst { Tunnel } = require('wgnet');\n`;
  const fetchBody = `
  const server = http.createServer((req, res) => res.end('hello ' + req.socket.remoteAddress));
  const listener = a.createServer((s) => server.emit('connection', s));
  await new Promise((r) => listener.listen(80, () => r(null)));
  const res = await b.fetch('http://10.77.0.1/');
  console.error('progress: response headers');
  const seen = await res.text();
  listener.close();`;
  const connectBody = `
  let peer = '';
  const listener = a.createServer((s) => {
    peer = String(s.remoteAddress);
    s.pipe(s);
  });
  await new Promise((r) => listener.listen(7, () => r(null)));
  const sock = b.connect(7, '10.77.0.1');
  const echoed = await new Promise((resolve, reject) => {
    let got = '';
    sock.on('error', reject);
    sock.on('data', (d) => {
      got += String(d);
      if (got.length >= 4) {
        sock.end();
        resolve(got);
      }
    });
    sock.write('ping');
  });
  const seen = String(echoed) + ' from ' + peer;
  listener.close();`;
  return `${head}
function keys() {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const b64 = (s${ts ? ': unknown' : ''}) => Buffer.from(String(s), 'base64url').toString('base64');
  return { priv: b64(privateKey.export({ format: 'jwk' }).d), pub: b64(publicKey.export({ format: 'jwk' }).x) };
}

async function main() {
  const ka = keys();
  const kb = keys();
  const a = await Tunnel.create('[Interface]\\nPrivateKey = ' + ka.priv + '\\nAddress = 10.77.0.1/24\\n\\n[Peer]\\nPublicKey = ' + kb.pub + '\\nAllowedIPs = 10.77.0.2/32\\n');
  const b = await Tunnel.create('[Interface]\\nPrivateKey = ' + kb.priv + '\\nAddress = 10.77.0.2/24\\n\\n[Peer]\\nPublicKey = ' + ka.pub + '\\nAllowedIPs = 10.77.0.1/32\\nEndpoint = 127.0.0.1:' + a.listenPort + '\\n');
  console.error('progress: tunnels created');
${traffic === 'fetch' ? fetchBody : connectBody}
  console.error('progress: traffic done');
  await b.close();
  await a.close();
  console.error('progress: closed');
  console.log(JSON.stringify({ seen, backends: Tunnel.backends() }));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
`;
}

test('npm pack: the tarball installs without a compiler, works from ESM, CommonJS and TypeScript, and installs globally', { skip, timeout: 180_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'wgnet-package-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const started = Date.now();

  // 1. Pack a copy of the working tree (prepack builds dist/ and the prebuilds there).
  // WGNET_PACK_REF=HEAD packs a commit instead, e.g. while others' edits in a shared checkout do not compile.
  const tree = join(tmp, 'tree');
  mkdirSync(tree);
  const ref = process.env.WGNET_PACK_REF;
  if (ref) {
    const tar = spawnSync('sh', ['-c', `git archive --format=tar "$1" | tar -x -C "$2"`, 'sh', ref, tree], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(tar.status, 0, `git archive ${ref}: ${tar.stderr}`);
  } else {
    // Everything but dependencies, VCS data and build outputs (no git needed: CI may
    // run as another user than the checkout's owner, where git refuses to work).
    cpSync(ROOT, tree, {
      recursive: true,
      filter: (src) => !/^(node_modules|\.git|dist|prebuilds|native\/build|tmp|\.prof)(\/|$)/.test(relative(ROOT, src).split(sep).join('/')),
    });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
  const out = join(tmp, 'out');
  mkdirSync(out);
  const pack = ok(await run('npm', ['pack', '--pack-destination', out, '--json'], tree, env(process.env.PATH ?? ''), 120_000), 'npm pack');
  const info = (JSON.parse(pack.stdout) as { filename: string; size: number; unpackedSize: number; entryCount: number; files: { path: string }[] }[])[0]!;
  const shipped = info.files.map((f) => f.path);
  t.diagnostic(`tarball ${info.filename}: ${(info.size / 1024).toFixed(0)} kB, ${info.entryCount} files, ${(info.unpackedSize / 1024).toFixed(0)} kB unpacked`);
  for (const f of ['package.json', 'bin/wgnet.js', 'bin/wgnet-tun.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'native/udp.c', 'native/binding.gyp']) {
    assert.ok(shipped.includes(f), `${f} is not in the tarball`);
  }
  for (const name of ['wgnet_udp', 'wgnet_tun', 'wgnet_memory']) {
    assert.ok(shipped.includes(`prebuilds/linux-x64/${name}.napi.glibc.node`), `the ${name} prebuild is not in the tarball`);
  }
  assert.deepEqual(
    shipped.filter((f) => f.endsWith('.map') || /\.test\./.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts') || f.startsWith('native/build/')),
    [],
    'no source maps, tests, TypeScript sources or native build tree in the tarball',
  );
  assert.ok(!existsSync(join(tree, 'prebuilds')), 'postpack removes prebuilds/ from the tree');

  // 2. Install it into an empty project with only node, npm, npx and sh on PATH.
  const bin = join(tmp, 'bin');
  mkdirSync(bin);
  // npx runs bins through sh; a shell is all the user needs besides node.
  for (const tool of ['node', 'npm', 'npx', 'sh']) {
    const p = tool === 'node' ? process.execPath : onPath(tool);
    assert.ok(p, `${tool} is not on PATH`);
    symlinkSync(realpathSync(p), join(bin, tool));
  }
  for (const tool of TOOLS) assert.equal(onPath(tool, bin), undefined, `${tool} must not be on the stripped PATH`);
  const userEnv = env(bin);
  const app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  ok(await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(out, info.filename)], app, userEnv, 120_000), 'npm install');
  const installed = JSON.parse(readFileSync(join(app, 'node_modules/wgnet/package.json'), 'utf8')) as { version: string; scripts?: Record<string, string> };
  for (const s of ['preinstall', 'install', 'postinstall']) assert.equal(installed.scripts?.[s], undefined, `the package must not have a ${s} script`);
  assert.ok(!existsSync(join(app, 'node_modules/wgnet/native/build')), 'nothing was compiled at install');
  // stripInternal: the shipped types carry the API only, not the cores' plumbing.
  const tunnelTypes = readFileSync(join(app, 'node_modules/wgnet/dist/src/api/tunnel.d.ts'), 'utf8');
  assert.doesNotMatch(tunnelTypes, /@internal|readonly engine\b/, 'no @internal member in the shipped Tunnel type');
  t.diagnostic(`packed and installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // 3. The consumers: JS as is, TypeScript compiled by the repo's tsc (type errors fail it).
  writeFileSync(join(app, 'esm.mjs'), consumer('esm', 'fetch', false));
  writeFileSync(join(app, 'cjs.cjs'), consumer('cjs', 'connect', false));
  writeFileSync(join(app, 'ts-esm.mts'), consumer('esm', 'connect', true));
  writeFileSync(join(app, 'ts-cjs.cts'), consumer('cjs', 'fetch', true));
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules/@types')],
        outDir: 'out',
      },
      files: ['ts-esm.mts', 'ts-cjs.cts'],
    }),
  );
  const tsc = run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], app, userEnv);
  const version = run('npx', ['--no-install', 'wgnet', '--version'], app, userEnv);
  const js = await Promise.all([run('node', ['esm.mjs'], app, userEnv), run('node', ['cjs.cjs'], app, userEnv)]);
  ok(await tsc, 'tsc on the TypeScript consumers');
  const ts = await Promise.all([run('node', ['out/ts-esm.mjs'], app, userEnv), run('node', ['out/ts-cjs.cjs'], app, userEnv)]);

  const names = ['ESM (fetch)', 'CommonJS (connect)', 'TypeScript .mts (connect)', 'TypeScript .cts (fetch)'];
  [...js, ...ts].forEach((r, i) => {
    ok(r, names[i]!);
    assert.doesNotMatch(r.stderr, /Warning/, `${names[i]} printed a warning:\n${r.stderr}`);
    const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      seen: string;
      backends: { crypto: { backend: string }; udp: { backend: string; addon?: string }; tun: { addon?: string } };
    };
    // The server on A saw B's tunnel address, not the host's.
    assert.equal(res.seen, names[i]!.includes('fetch') ? 'hello 10.77.0.2' : 'ping from 10.77.0.2', names[i]);
    assert.equal(res.backends.udp.backend, 'batched', `${names[i]}: ${JSON.stringify(res.backends.udp)}`);
    assert.equal(res.backends.udp.addon, join(realpathSync(app), 'node_modules/wgnet/prebuilds/linux-x64/wgnet_udp.napi.glibc.node'));
    assert.equal(res.backends.tun.addon, join(realpathSync(app), 'node_modules/wgnet/prebuilds/linux-x64/wgnet_tun.napi.glibc.node'));
    assert.equal(res.backends.crypto.backend, 'native');
  });

  const v = ok(await version, 'npx wgnet --version').stdout;
  t.diagnostic(`npx wgnet --version:\n${v.trimEnd()}`);
  assert.equal(v.split('\n')[0], `wgnet ${installed.version}`);
  assert.match(v, /udp +batched \(recvmmsg\/sendmmsg, prebuilds\/linux-x64\/wgnet_udp\.napi\.glibc\.node\)/);
  assert.match(v, /crypto +native/);
  assert.match(v, /tun +(available|unavailable: [^\n]*\(addon prebuilds\/linux-x64\/wgnet_tun\.napi\.glibc\.node\))/);
  // 4. Without its addons (another platform, no prebuild) the package still works, on
  //    node:dgram, and says so once instead of running slowly in silence.
  renameSync(join(app, 'node_modules/wgnet/prebuilds'), join(app, 'prebuilds.away'));
  const slow = ok(await run('node', ['esm.mjs'], app, userEnv, 30_000), 'ESM without prebuilds');
  const warnings = slow.stderr.split('\n').filter((l) => l.includes('WgnetWarning'));
  assert.equal(warnings.length, 1, slow.stderr);
  t.diagnostic(`without prebuilds: ${warnings[0]}`);
  assert.match(warnings[0]!, /\[WGNET_ADDON_FALLBACK\].*the batched UDP socket is unavailable, using node:dgram: there is no prebuilt addon for linux-x64/);
  const fallback = JSON.parse(slow.stdout.trim().split('\n').at(-1)!) as { seen: string; backends: { udp: { backend: string } } };
  assert.equal(fallback.seen, 'hello 10.77.0.2');
  assert.equal(fallback.backends.udp.backend, 'dgram');
  // 5. npm install -g, as `npm i -g wgnet && wgnet up wg0` would: both bins run from the
  //    global prefix, and (as root, with network namespaces) wgnet up creates its TUN.
  const global = join(tmp, 'global');
  ok(await run('npm', ['install', '-g', '--prefix', global, '--no-audit', '--no-fund', '--prefer-offline', join(out, info.filename)], app, userEnv, 120_000), 'npm install -g');
  const globalEnv = env([bin, join(global, 'bin')].join(delimiter));
  const gv = ok(await run('wgnet', ['--version'], tmp, globalEnv), 'global wgnet --version').stdout;
  assert.match(gv, /udp +batched \(recvmmsg\/sendmmsg, prebuilds\/linux-x64\/wgnet_udp\.napi\.glibc\.node\)/);
  assert.match(ok(await run('wgnet-tun', ['--version'], tmp, globalEnv), 'global wgnet-tun --version').stdout, /wgnet-tun/);
  const noNetns = interopUnavailable();
  if (noNetns) t.diagnostic(`wgnet up from the global install not tried: ${noNetns}`);
  else {
    const ns = makeNamespace();
    const name = `wgp${process.pid.toString(36)}`.slice(0, 15);
    const daemon = spawn('ip', ['netns', 'exec', ns.ns, 'env', `PATH=${globalEnv.PATH}`, 'wgnet', 'up', '-f', name], { stdio: ['ignore', 'ignore', 'pipe'] });
    let daemonErr = '';
    daemon.stderr.on('data', (d: Buffer) => (daemonErr += d.toString()));
    try {
      await waitFor(() => existsSync(`/var/run/wireguard/${name}.sock`), 15_000, `wgnet up's UAPI socket (${daemonErr})`);
      assert.match(ns.exec('ip', ['link', 'show', name]), new RegExp(`${name}: <POINTOPOINT`));
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
      ns.close();
    }
  }
  t.diagnostic(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
