/**
 * tunnel.fetch under Bun and Deno, in a child process each: two tunnels over loopback
 * in one process, HTTP served on one and fetched through the other
 * (scripts/fetch-through-tunnel.ts). Proves that the server saw the client's tunnel
 * address (not the host's), that requests for addresses outside the tunnel never
 * reach the host network (a server on the host's loopback counts connections), that
 * `tunnel.dispatcher` refuses where undici ignores dispatchers (Bun), and that close()
 * resolves and the process then exits by itself.
 *
 * bun and deno come from PATH (CI installs both from the npm registry, .ci/run).
 * Missing: skipped with a message, except under CI=true, where that fails.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const script = 'test/runtime/scripts/fetch-through-tunnel.ts';

interface Runtime {
  name: 'bun' | 'deno';
  args: string[];
  env?: Record<string, string>;
  /** Which tunnel.fetch path the runtime must take. */
  fetchPath: 'undici' | 'node-http';
}

const runtimes: Runtime[] = [
  // No WGNET_UDP: the library must itself keep the batched addon (uv_poll) away from Bun.
  { name: 'bun', args: [script], fetchPath: 'node-http' },
  // Deno runs the TypeScript sources with .js specifiers resolved to .ts, and the
  // npm packages from node_modules (package.json); its undici is the real one.
  { name: 'deno', args: ['run', '-A', '--no-lock', '--unstable-sloppy-imports', script], fetchPath: 'undici' },
];

function version(bin: string): string | undefined {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n')[0] : undefined;
}

describe('tunnel.fetch under Bun and Deno', () => {
  for (const rt of runtimes) {
    const v = version(rt.name);
    const ci = process.env.CI === 'true' || process.env.CI === '1';
    const skip = v === undefined && !ci ? `${rt.name} is not on PATH (CI installs it: npm i -g bun deno)` : false;
    test(`${rt.name}${v ? ` (${v})` : ''}: traffic goes through the tunnel, never the host; close() lets the process exit`, { skip, timeout: 120_000 }, () => {
      assert.ok(v, `${rt.name} is not on PATH, and CI=true: .ci/run must install it (npm i -g bun deno)`);
      const r = spawnSync(rt.name, rt.args, {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, ...rt.env, WGNET_FETCH: '', NO_COLOR: '1' },
      });
      const diag = `exit ${r.status} signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
      // The script never calls process.exit: a timeout here means close() left something running.
      assert.equal(r.signal, null, `the process did not exit by itself\n${diag}`);
      assert.equal(r.status, 0, diag);
      const line = r.stdout.trim().split('\n').at(-1)!;
      const got = JSON.parse(line) as Record<string, unknown>;
      assert.equal(got.runtime, rt.name);
      assert.equal(got.fetchPath, rt.fetchPath, `${rt.name}: the feature test chose the wrong fetch path`);
      assert.deepEqual(got.post, { status: 200, remote: '10.66.0.1', body: 'POST /echo through the tunnel' });
      assert.deepEqual(got.redirect, { status: 200, url: 'http://[fd66::2]/echo', redirected: true, remote: 'fd66::1', body: 'GET /echo ' });
      assert.deepEqual(got.big, { bytes: 1024 * 1024 + 3, sha256Equal: true });
      // Every request reached B's stack from A's tunnel address, none from 127.0.0.1 or a host address.
      assert.deepEqual(got.serverSaw, ['POST /echo 10.66.0.1', 'GET /moved fd66::1', 'GET /echo fd66::1', 'GET /big 10.66.0.1']);
      // Outside the tunnel: 127.0.0.1 has no peer (the SYN goes nowhere, the fetch times out);
      // the tunnel has no DNS, so "localhost" does not resolve. The host saw nothing.
      const outside = got.outside as { url: string; status?: number; error?: string }[];
      assert.equal(outside.length, 2);
      for (const o of outside) assert.equal(o.status, undefined, `${o.url} answered through the host: ${JSON.stringify(o)}`);
      assert.equal(got.canaryHits, 0, 'a request left through the host network');
      assert.equal(got.dispatcher, rt.fetchPath === 'undici' ? 'ok' : 'ERR_WGNET_UNSUPPORTED');
      assert.equal(got.closed, true);
    });
  }
});
