/**
 * Real client libraries, unchanged, against real servers through a WireGuard tunnel
 * (issue 13): pg (`stream`, object and function forms), ioredis (`Connector`, the public
 * hook it has) and ws (`createConnection`).
 *
 * Topology: two wgnet tunnels in this process over loopback UDP. Tunnel B (10.66.0.2) stands
 * in for the far network: on each service port it accepts tunnel connections and splices them
 * to the real server on the host's 127.0.0.1 (PostgreSQL, redis-server, a ws server). The
 * clients only ever get sockets of tunnel A, so every byte they exchange is WireGuard-encrypted
 * and carried by wgnet's TCP. The servers are the Debian packages (.ci/run installs them); a
 * missing one skips its test with the reason here, and fails in CI.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, chownSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis, AbstractConnector } from 'ioredis';
import WebSocket, { WebSocketServer } from 'ws';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { freePort } from '../harness/ports.js';
import type { Tunnel } from '../../src/index.js';

const FAR = '10.66.0.2';

function missing(what: string, why: string): string | false {
  if (process.env.CI) throw new Error(`CI=true but ${what} is unavailable: ${why}`);
  return `${what} is unavailable: ${why}`;
}

function pgBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const v = readdirSync(root).sort((a, b) => Number(b) - Number(a))[0];
  return v && existsSync(join(root, v, 'bin', 'postgres')) ? join(root, v, 'bin') : undefined;
}
const PG_BIN = pgBin();
const pgSkip = PG_BIN ? false : missing('PostgreSQL', 'no /usr/lib/postgresql/*/bin/postgres (Debian package postgresql)');
const redisSkip = spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0 ? false : missing('Redis', "no redis-server on PATH (Debian package redis-server)");

/** Tunnel B forwards `tunnelPort` to 127.0.0.1:`hostPort`, as the far side of a VPN would route it. */
async function forward(t: Tunnel, tunnelPort: number, hostPort: number): Promise<() => void> {
  const srv = t.createServer((s) => {
    const up = net.connect(hostPort, '127.0.0.1');
    s.pipe(up).pipe(s);
    up.on('error', () => s.destroy());
    s.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => srv.listen(tunnelPort, () => r()));
  return () => srv.close();
}

async function waitForPort(port: number, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port}`);
}

describe('client libraries through the tunnel, unchanged', () => {
  let p: TunnelPair;
  before(async () => {
    p = await tunnelPair();
  });
  after(async () => {
    await p.close();
  });

  describe('pg against PostgreSQL', { skip: pgSkip }, () => {
    let dir: string;
    let server: ChildProcess;
    let unforward: () => void;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'wgnet-pg-'));
      // PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
      const asRoot = process.getuid?.() === 0;
      const run = (bin: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN!, bin), ...args]] : [join(PG_BIN!, bin), args]);
      if (asRoot) chownSync(dir, Number(spawnSync('id', ['-u', 'postgres']).stdout), Number(spawnSync('id', ['-g', 'postgres']).stdout));
      const [cmd, args] = run('initdb', ['-D', join(dir, 'data'), '-U', 'wgnet', '--auth=trust', '-E', 'UTF8', '--no-sync']);
      const init = spawnSync(cmd, args, { encoding: 'utf8' });
      assert.equal(init.status, 0, `initdb failed: ${init.stderr}`);
      const port = await freePort();
      const [c2, a2] = run('postgres', ['-D', join(dir, 'data'), '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off']);
      // Its own process group, so the signal reaches postgres itself and not only runuser.
      server = spawn(c2, a2, { stdio: 'ignore', detached: true });
      await waitForPort(port, server, 'postgres');
      unforward = await forward(p.b, 5432, port);
    });
    after(async () => {
      unforward?.();
      if (server && server.exitCode === null) {
        const exited = new Promise((r) => server.once('exit', r));
        process.kill(-server.pid!, 'SIGINT'); // PostgreSQL's fast shutdown
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    });

    test('stream: a tunnel socket (object form) — pg calls stream.connect(port, host) on it', async () => {
      // pg accepts a socket or a function returning one; @types/pg declares only the function form.
      const client = new pg.Client({ user: 'wgnet', database: 'postgres', stream: p.a.connect(5432, FAR) as never });
      await client.connect();
      const r = await client.query<{ one: number; addr: string | null }>('SELECT 1 AS one, inet_client_addr()::text AS addr');
      assert.equal(r.rows[0]!.one, 1);
      assert.equal(r.rows[0]!.addr, '127.0.0.1/32'); // B's splice, on the host side
      await client.end();
    });

    test('stream: a function (a pool opens one tunnel socket per connection)', async () => {
      const closed: Promise<unknown>[] = [];
      const stream = (): net.Socket => {
        const s = p.a.connect(5432, FAR);
        closed.push(once(s, 'close'));
        return s;
      };
      const pool = new pg.Pool({ user: 'wgnet', database: 'postgres', max: 3, stream });
      const rs = await Promise.all([1, 2, 3, 4, 5].map((n) => pool.query<{ n: number }>('SELECT $1::int AS n', [n])));
      assert.deepEqual(rs.map((r) => r.rows[0]!.n), [1, 2, 3, 4, 5]);
      assert.equal(closed.length, 3);
      await pool.end(); // resolves before its clients' sockets close (pg-pool does not wait for them)
      await Promise.all(closed);
    });
  });

  describe('ioredis against redis-server', { skip: redisSkip }, () => {
    let server: ChildProcess;
    let unforward: () => void;
    before(async () => {
      const port = await freePort();
      server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      await waitForPort(port, server, 'redis-server');
      unforward = await forward(p.b, 6379, port);
    });
    after(async () => {
      unforward?.();
      if (server && server.exitCode === null) {
        server.kill();
        await new Promise((r) => server.once('exit', r));
      }
    });

    test('Connector: a subclass of ioredis’s exported AbstractConnector that returns a tunnel socket', async () => {
      const tunnel = p.a;
      class TunnelConnector extends AbstractConnector {
        constructor(private readonly o: { host?: string; port?: number; disconnectTimeout?: number }) {
          super(o.disconnectTimeout ?? 2000);
        }
        connect() {
          this.connecting = true;
          this.stream = tunnel.connect(this.o.port ?? 6379, this.o.host);
          return Promise.resolve(this.stream);
        }
      }
      const redis = new Redis({ host: FAR, port: 6379, Connector: TunnelConnector as never, maxRetriesPerRequest: 1 });
      await redis.set('wgnet', 'through wireguard');
      assert.equal(await redis.get('wgnet'), 'through wireguard');
      assert.equal(await redis.incr('n'), 1);
      await redis.quit();
    });
  });

  describe('ws against a WebSocket server', () => {
    let wss: WebSocketServer;
    let unforward: () => void;
    before(async () => {
      wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      await new Promise((r) => wss.once('listening', r));
      wss.on('connection', (s) => s.on('message', (m, binary) => s.send(m, { binary })));
      unforward = await forward(p.b, 8080, (wss.address() as net.AddressInfo).port);
    });
    after(async () => {
      unforward?.();
      await new Promise((r) => wss.close(r));
    });

    test('createConnection: tunnel.createConnection as is (ws passes the port as a string)', async () => {
      const ws = new WebSocket(`ws://${FAR}:8080/`, { createConnection: p.a.createConnection.bind(p.a) });
      await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
      const echo = new Promise<string>((r) => ws.once('message', (m) => r(String(m))));
      ws.send('hello over wireguard');
      assert.equal(await echo, 'hello over wireguard');
      ws.close();
      await new Promise((r) => ws.once('close', r));
    });
  });
});
