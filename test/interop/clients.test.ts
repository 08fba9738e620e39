/**
 * Real client libraries, unchanged, against real servers through a WireGuard tunnel
 * (issue 13): pg (`stream`, object and function forms), ioredis (`Connector`, the public
 * hook it has), ws (`createConnection`), ssh2 (`sock`, against OpenSSH's sshd),
 * node:http2 (`createConnection` returning TLS over a tunnel socket, ALPN h2) and mysql2
 * (`stream`, object and function forms, against MariaDB).
 *
 * Two topologies, the same checks:
 * - behind the real wireguard-go: PostgreSQL, redis-server, sshd, MariaDB, a ws and an http2 server listen on
 *   wireguard-go's tunnel address inside a network namespace (./harness.ts); the clients get
 *   sockets of a wgnet tunnel peered with it. Needs root and the interop prerequisites.
 * - in process: two wgnet tunnels over loopback UDP; tunnel B splices each service port to the
 *   real server on the host's 127.0.0.1. Runs wherever the servers are installed.
 * The servers are the Debian packages (.ci/run installs them: postgresql, redis-server,
 * openssh-server, mariadb-server); a missing one skips its test with the reason here, and fails in CI.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, chownSync, readdirSync, appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import http2 from 'node:http2';
import tls from 'node:tls';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { Redis, AbstractConnector } from 'ioredis';
import WebSocket, { WebSocketServer } from 'ws';
import { Client as SshClient } from 'ssh2';
import { privateCa, type PrivateCa } from '../harness/tls-ca.js';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { freePort } from '../harness/ports.js';
import { interopUnavailable, startWgGo, genKeyPair, waitFor, type WgGoPeer } from './harness.js';
import { MARIADBD, mariadbUnavailable, initMariaDb, waitForMariaDb, stopMariaDb, type MariaDb, type MariaDbLogin } from './mariadb.js';
import { Tunnel } from '../../src/index.js';

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
const redisSkip = spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0 ? false : missing('Redis', 'no redis-server on PATH (Debian package redis-server)');
const asRoot = process.getuid?.() === 0;
const sshdSkip = ((): string | false => {
  const gaps: string[] = [];
  if (!existsSync('/usr/sbin/sshd')) gaps.push('/usr/sbin/sshd (Debian package openssh-server)');
  if (spawnSync('sh', ['-c', 'command -v ssh-keygen'], { stdio: 'ignore' }).status !== 0) gaps.push('ssh-keygen on PATH (Debian package openssh-client)');
  return gaps.length === 0 ? false : missing('OpenSSH', `no ${gaps.join(', ')}`);
})();
const mariadbSkip = ((): string | false => {
  const why = mariadbUnavailable();
  return why ? missing('MariaDB', why) : false;
})();

/** PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user. */
function pgCommand(bin: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN!, bin), ...args]] : [join(PG_BIN!, bin), args];
}

/** A fresh cluster with trust auth for user wgnet, from any address (the tunnel's included). */
function initCluster(): string {
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-pg-'));
  if (asRoot) chownSync(dir, Number(spawnSync('id', ['-u', 'postgres']).stdout), Number(spawnSync('id', ['-g', 'postgres']).stdout));
  const [cmd, args] = pgCommand('initdb', ['-D', join(dir, 'data'), '-U', 'wgnet', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const init = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(init.status, 0, `initdb failed: ${init.stderr}`);
  appendFileSync(join(dir, 'data', 'pg_hba.conf'), 'host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n');
  return dir;
}

/** Stops the postmaster by the pid it wrote (a signal to runuser or `ip netns exec` may not reach it). */
async function stopCluster(dir: string, child: ChildProcess | undefined): Promise<void> {
  const pidFile = join(dir, 'data', 'postmaster.pid');
  if (child && child.exitCode === null && existsSync(pidFile)) {
    const exited = once(child, 'exit');
    process.kill(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGINT'); // fast shutdown
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}

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

/** Until `host:port` accepts a connection made by `dial` (kernel or tunnel). */
async function waitForPort(dial: () => net.Socket, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((r) => {
      const s = dial();
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not start listening`);
}

/**
 * Until PostgreSQL answers a query: it accepts connections while it still starts up and
 * refuses them with FATAL 57P03 ('the database system is starting up') until it is ready.
 */
async function waitForPostgres(makeClient: () => pg.Client): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const client = makeClient();
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if ((err as { code?: string }).code !== '57P03') throw err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('postgres did not finish starting up');
}

// --- the checks, the same for both topologies -------------------------------------------

async function pgObjectForm(tunnel: Tunnel, host: string, port: number): Promise<void> {
  // pg accepts a socket or a function returning one; @types/pg declares only the function form.
  const client = new pg.Client({ user: 'wgnet', database: 'postgres', stream: tunnel.connect(port, host) as never });
  await client.connect(); // pg calls stream.connect(5432, 'localhost') on the socket: its target stays
  const r = await client.query<{ one: number; version: string }>('SELECT 1 AS one, version()');
  assert.equal(r.rows[0]!.one, 1);
  assert.match(r.rows[0]!.version, /^PostgreSQL /);
  await client.end();
}

async function pgPoolFunctionForm(tunnel: Tunnel, host: string, port: number): Promise<void> {
  const closed: Promise<unknown>[] = [];
  const stream = (): net.Socket => {
    const s = tunnel.connect(port, host);
    closed.push(once(s, 'close'));
    return s;
  };
  const pool = new pg.Pool({ user: 'wgnet', database: 'postgres', max: 3, stream });
  const rs = await Promise.all([1, 2, 3, 4, 5].map((n) => pool.query<{ n: number }>('SELECT $1::int AS n', [n])));
  assert.deepEqual(rs.map((r) => r.rows[0]!.n), [1, 2, 3, 4, 5]);
  assert.equal(closed.length, 3);
  await pool.end(); // resolves before its clients' sockets close (pg-pool does not wait for them)
  await Promise.all(closed);
}

async function ioredisConnector(tunnel: Tunnel, host: string, port: number): Promise<void> {
  // ioredis's hook: its `Connector` option, with the AbstractConnector it exports.
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
  // ioredis types its option as `new (options: unknown) => AbstractConnector` and passes its own options.
  const redis = new Redis({ host, port, Connector: TunnelConnector as new (o: unknown) => TunnelConnector, maxRetriesPerRequest: 1 });
  await redis.set('wgnet', 'through wireguard');
  assert.equal(await redis.get('wgnet'), 'through wireguard');
  assert.equal(await redis.incr('n'), 1);
  await redis.quit();
}

async function wsCreateConnection(tunnel: Tunnel, host: string, port: number): Promise<void> {
  // ws passes the port as a string ('8080') and calls createConnection with `this` unbound.
  const ws = new WebSocket(`ws://${host}:${port}/`, { createConnection: tunnel.createConnection.bind(tunnel) });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  const echo = new Promise<string>((r) => ws.once('message', (m) => r(String(m))));
  ws.send('hello over wireguard');
  assert.equal(await echo, 'hello over wireguard');
  ws.close();
  await once(ws, 'close');
}

/**
 * A throwaway sshd's files: its own host key, one authorized client key, no PAM. As root it
 * lets root in by key (and needs /run/sshd, its privilege separation directory); otherwise
 * it can only log in the user running it.
 */
interface SshdFiles {
  dir: string;
  config: string;
  clientKey: Buffer;
  /** The host key's public blob (RFC 4253 §6.6), what ssh2's hostVerifier is given. */
  hostKey: Buffer;
  user: string;
}

function sshdFiles(listen: string): SshdFiles {
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-sshd-'));
  if (asRoot) mkdirSync('/run/sshd', { recursive: true });
  for (const name of ['host', 'client']) {
    const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `wgnet ${name}`, '-f', join(dir, name)], { encoding: 'utf8' });
    assert.equal(r.status, 0, `ssh-keygen failed: ${r.stderr}`);
  }
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')));
  const config = join(dir, 'sshd_config');
  writeFileSync(config, [
    `ListenAddress ${listen}`,
    `HostKey ${join(dir, 'host')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    `PidFile ${join(dir, 'sshd.pid')}`,
    '',
  ].join('\n'));
  return {
    dir,
    config,
    clientKey: readFileSync(join(dir, 'client')),
    hostKey: Buffer.from(readFileSync(join(dir, 'host.pub'), 'utf8').split(' ')[1]!, 'base64'),
    user: asRoot ? 'root' : userInfo().username,
  };
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill();
    await exited;
  }
}

async function ssh2Exec(tunnel: Tunnel, host: string, port: number, files: SshdFiles): Promise<void> {
  const conn = new SshClient();
  const closed = once(conn, 'close');
  const ready = new Promise<void>((resolve, reject) => (conn.once('ready', resolve), conn.once('error', reject)));
  const seen: Buffer[] = [];
  conn.connect({
    sock: tunnel.connect(port, host),
    username: files.user,
    privateKey: files.clientKey,
    // The raw host key: the sshd we started, not anything that answers on the port.
    hostVerifier: (key: Buffer) => (seen.push(key), key.equals(files.hostKey)),
    readyTimeout: 20_000,
  });
  await ready;
  assert.equal(seen.length, 1);
  const { out, code } = await new Promise<{ out: string; code: number }>((resolve, reject) => {
    conn.exec('echo hello', (err, stream) => {
      if (err) return reject(err);
      let out = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (out += d));
      stream.stderr.resume();
      stream.once('close', (code: number) => resolve({ out, code }));
    });
  });
  assert.equal(code, 0);
  assert.equal(out, 'hello\n');
  conn.end();
  await closed;
}

/** Two concurrent requests on one HTTP/2 session whose TLS runs over one tunnel socket. */
async function http2TwoStreams(tunnel: Tunnel, host: string, port: number, ca: PrivateCa, servername: string): Promise<void> {
  let dials = 0;
  const session = http2.connect(`https://${servername}:${port}`, {
    createConnection: () => {
      dials++;
      return tls.connect({ socket: tunnel.connect(port, host), ALPNProtocols: ['h2'], servername, ca: ca.ca });
    },
  });
  session.on('error', () => {}); // a failure shows up on the requests below
  await once(session, 'connect');
  assert.equal(session.alpnProtocol, 'h2');
  const get = (path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = session.request({ ':path': path });
      let status = 0;
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (d: string) => (body += d));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
  const [a, b] = await Promise.all([get('/one'), get('/two?big')]);
  assert.deepEqual(a, { status: 200, body: 'stream /one over h2' });
  assert.equal(b.status, 200);
  assert.equal(b.body, `stream /two?big over h2 ${'x'.repeat(200_000)}`);
  assert.equal(dials, 1, 'both requests on one session, one tunnel socket');
  session.close();
  await once(session, 'close');
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * mysql2's `stream` as a socket, one connection: a table, rows through the text protocol
 * (escaped literals) and the binary one (a prepared statement carrying a 1 MB random
 * blob), read back both ways byte-exact, and checked on the server by hash.
 */
async function mysql2ObjectForm(tunnel: Tunnel, host: string, port: number, login: MariaDbLogin): Promise<void> {
  const stream = tunnel.connect(port, host);
  const closed = once(stream, 'close');
  const conn = await mysql.createConnection({ ...login, stream });
  const [[version]] = await conn.query<RowDataPacket[]>('SELECT VERSION() AS v');
  assert.match(version!.v, /MariaDB/);
  await conn.query('CREATE TABLE blobs (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, data LONGBLOB) ENGINE=InnoDB');
  const big = randomBytes(1 << 20);
  const rows: [number, string, Buffer | null][] = [
    [1, 'empty', Buffer.alloc(0)],
    [2, "quote ' and \\ backslash", Buffer.from([0, 1, 0x27, 0x5c, 0x22, 0x0a, 0x1a, 0xff])],
    [3, 'megabyte', big],
    [4, 'null', null],
  ];
  await conn.query('INSERT INTO blobs (id, name, data) VALUES ?', [[rows[0], rows[1], rows[3]]]);
  await conn.execute('INSERT INTO blobs (id, name, data) VALUES (?, ?, ?)', rows[2]);

  const [text] = await conn.query<RowDataPacket[]>('SELECT id, name, data, LENGTH(data) AS len, SHA2(data, 256) AS sha FROM blobs ORDER BY id');
  assert.equal(text.length, rows.length);
  for (const [i, [id, name, data]] of rows.entries()) {
    const got = text[i]!;
    assert.equal(got.id, id);
    assert.equal(got.name, name);
    if (data === null) {
      assert.equal(got.data, null);
      assert.equal(got.len, null);
      continue;
    }
    assert.ok(Buffer.isBuffer(got.data), `row ${id}: a Buffer`);
    assert.ok((got.data as Buffer).equals(data), `row ${id}: ${data.length} bytes back byte-exact (text protocol)`);
    assert.equal(Number(got.len), data.length, `row ${id}: the server stored ${data.length} bytes`);
    assert.equal(got.sha, sha256(data), `row ${id}: the server's SHA-256`);
  }
  const [binary] = await conn.execute<RowDataPacket[]>('SELECT data FROM blobs WHERE id = ?', [3]);
  assert.ok((binary[0]!.data as Buffer).equals(big), '1 MB back byte-exact (binary protocol)');

  await conn.end();
  await closed;
}

/**
 * mysql2's `stream` as a function: a pool calls it once per connection it opens. Five
 * concurrent inserts of distinct blobs over a pool of three, read back byte-exact.
 */
async function mysql2PoolFunctionForm(tunnel: Tunnel, host: string, port: number, login: MariaDbLogin): Promise<void> {
  const closed: Promise<unknown>[] = [];
  const stream = (): net.Socket => {
    const s = tunnel.connect(port, host);
    closed.push(once(s, 'close'));
    return s;
  };
  const pool = mysql.createPool({ ...login, stream, connectionLimit: 3 });
  await pool.query('CREATE TABLE pooled (id INT PRIMARY KEY, data MEDIUMBLOB NOT NULL) ENGINE=InnoDB');
  const blobs = [1, 2, 3, 4, 5].map((n) => randomBytes(n * 100_000 + n));
  await Promise.all(blobs.map((b, i) => pool.execute('INSERT INTO pooled (id, data) VALUES (?, ?)', [i + 1, b])));
  const [rows] = await pool.query<RowDataPacket[]>('SELECT id, data FROM pooled ORDER BY id');
  assert.deepEqual(rows.map((r) => r.id), [1, 2, 3, 4, 5]);
  for (const [i, b] of blobs.entries()) assert.ok((rows[i]!.data as Buffer).equals(b), `row ${i + 1}: ${b.length} bytes back byte-exact`);
  assert.equal(closed.length, 3, 'one tunnel socket per pooled connection, three at most');
  await pool.end();
  await Promise.all(closed);
}

/**
 * The HTTP/2 server's handler, as source: the in-process server evaluates it, the server in
 * wireguard-go's namespace runs it in its own node. It answers only once both requests are
 * open, so the two are concurrent on the session.
 */
const H2_HANDLER_JS = `(() => {
  const waiting = [];
  return (req, res) => {
    const big = req.url.endsWith('?big') ? ' ' + 'x'.repeat(200000) : '';
    waiting.push(() => res.end('stream ' + req.url + ' over h' + req.httpVersion[0] + big));
    if (waiting.length === 2) for (const f of waiting.splice(0)) f();
  };
})()`;
type H2Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
const h2Handler = (): H2Handler => new Function(`return ${H2_HANDLER_JS}`)() as H2Handler;

// --- behind the real wireguard-go ---------------------------------------------------------

const wgGoSkip = ((): string | false => {
  const why = interopUnavailable();
  if (why) return process.env.CI ? missing('the interop setup', why) : why;
  return pgSkip || redisSkip;
})();

describe('client libraries behind the real wireguard-go', { skip: wgGoSkip }, () => {
  let peer: WgGoPeer;
  let tunnel: Tunnel;
  let dir: string;
  let postgres: ChildProcess;
  let sshd: SshdFiles | undefined;
  let mariadbInit: Promise<MariaDb> | undefined;
  let mariadb: MariaDb | undefined;
  let mariadbd: ChildProcess | undefined;
  const H2_NAME = 'h2.internal';
  let ca: PrivateCa;
  let h2Dir: string;
  before(async () => {
    peer = await startWgGo();
    const me = genKeyPair();
    const n = peer.inner4.split('.')[2];
    tunnel = await Tunnel.create({
      privateKey: me.privateKey,
      address: `${peer.peerInner4}/24`,
      peers: [{ publicKey: peer.publicKey, allowedIps: `10.77.${n}.0/24`, endpoint: `${peer.outer4}:${peer.listenPort}` }],
    });
    peer.addPeer(tunnel.publicKey, { endpoint: `${peer.outer4.replace(/\.2$/, '.1')}:${tunnel.listenPort}` });
    await tunnel.ready({ timeout: 10_000 });
    const host = peer.inner4;
    // The datadir's bootstrap takes seconds: it runs while the other servers start.
    if (!mariadbSkip) {
      mariadbInit = initMariaDb(host, 3306);
      mariadbInit.catch(() => {}); // a failure surfaces where it is awaited below, not as an unhandled rejection
    }
    dir = initCluster();
    const [cmd, args] = pgCommand('postgres', ['-D', join(dir, 'data'), '-p', '5432', '-k', dir, '-c', `listen_addresses=${host}`, '-c', 'fsync=off']);
    postgres = peer.spawn(cmd, args);
    const redis = peer.spawn('redis-server', ['--port', '6379', '--bind', host, '--save', '', '--appendonly', 'no', '--protected-mode', 'no']);
    const wsPath = createRequire(import.meta.url).resolve('ws');
    const wsServer = peer.spawn(process.execPath, [
      '-e',
      `const { WebSocketServer } = require(${JSON.stringify(wsPath)});
       const w = new WebSocketServer({ host: ${JSON.stringify(host)}, port: 8080 });
       w.on('connection', (s) => s.on('message', (m, binary) => s.send(m, { binary })));`,
    ]);
    await waitForPort(() => tunnel.connect(5432, host), postgres, 'postgres');
    await waitForPostgres(() => new pg.Client({ user: 'wgnet', database: 'postgres', stream: tunnel.connect(5432, host) as never }));
    await waitForPort(() => tunnel.connect(6379, host), redis, 'redis-server');
    await waitForPort(() => tunnel.connect(8080, host), wsServer, 'the ws server');
    ca = privateCa([`DNS:${H2_NAME}`]);
    h2Dir = mkdtempSync(join(tmpdir(), 'wgnet-h2-'));
    writeFileSync(join(h2Dir, 'tls.json'), JSON.stringify({ key: ca.key, cert: ca.cert }));
    const h2Server = peer.spawn(process.execPath, [
      '-e',
      `const http2 = require('node:http2');
       const o = JSON.parse(require('node:fs').readFileSync(${JSON.stringify(join(h2Dir, 'tls.json'))}, 'utf8'));
       http2.createSecureServer({ ...o, allowHTTP1: false }, ${H2_HANDLER_JS}).listen(8443, ${JSON.stringify(host)});`,
    ]);
    await waitForPort(() => tunnel.connect(8443, host), h2Server, 'the http2 server');
    if (!sshdSkip) {
      sshd = sshdFiles(`${host}:22`);
      const child = peer.spawn('/usr/sbin/sshd', ['-D', '-e', '-f', sshd.config]);
      await waitForPort(() => tunnel.connect(22, host), child, 'sshd');
    }
    if (mariadbInit) {
      mariadb = await mariadbInit;
      mariadbd = peer.spawn(MARIADBD, mariadb.args);
      await waitForMariaDb(mariadb, mariadbd, () => tunnel.connect(3306, host));
    }
  });
  after(async () => {
    await tunnel?.close();
    if (dir) await stopCluster(dir, postgres);
    await stopMariaDb(await mariadbInit?.catch(() => undefined), mariadbd);
    peer?.close();
    if (sshd) rmSync(sshd.dir, { recursive: true, force: true });
    if (h2Dir) rmSync(h2Dir, { recursive: true, force: true });
  });

  test('pg, stream: a tunnel socket (object form)', () => pgObjectForm(tunnel, peer.inner4, 5432));
  test('pg, stream: a function (a pool of tunnel sockets)', () => pgPoolFunctionForm(tunnel, peer.inner4, 5432));
  test('ioredis, Connector', () => ioredisConnector(tunnel, peer.inner4, 6379));
  test('ws, createConnection', () => wsCreateConnection(tunnel, peer.inner4, 8080));
  test('ssh2, sock: exec echo hello on OpenSSH sshd', { skip: sshdSkip }, () => ssh2Exec(tunnel, peer.inner4, 22, sshd!));
  test('node:http2, createConnection: TLS (ALPN h2), two concurrent streams on one session', () => http2TwoStreams(tunnel, peer.inner4, 8443, ca, H2_NAME));
  test('mysql2, stream: a tunnel socket (object form); a 1 MB blob round trip on MariaDB', { skip: mariadbSkip, timeout: 60_000 }, () => mysql2ObjectForm(tunnel, peer.inner4, 3306, mariadb!.login));
  test('mysql2, stream: a function (a pool of tunnel sockets) on MariaDB', { skip: mariadbSkip, timeout: 60_000 }, () => mysql2PoolFunctionForm(tunnel, peer.inner4, 3306, mariadb!.login));
  test('wireguard-go saw the traffic', async () => {
    const show = await waitFor(() => peer.wgShow(), 1000, 'wg show');
    assert.match(show, /latest handshake/);
    assert.match(show, /transfer: [0-9.]+ [KMG]iB received/);
  });
});

// --- in process: a second wgnet tunnel as the far side -------------------------------------

describe('client libraries through two wgnet tunnels (in process)', () => {
  const FAR = '10.66.0.2';
  let p: TunnelPair;
  let mariadbPort = 0;
  let mariadbInit: Promise<MariaDb> | undefined;
  before(async () => {
    // MariaDB's datadir bootstrap takes seconds: it runs while the suites before its own do.
    if (!mariadbSkip) {
      mariadbPort = await freePort();
      mariadbInit = initMariaDb('127.0.0.1', mariadbPort);
      mariadbInit.catch(() => {}); // a failure surfaces in the MariaDB suite, which awaits it
    }
    p = await tunnelPair();
  });
  after(async () => {
    await p?.close();
    // The datadir, if the MariaDB suite did not run to remove it (it stops its own server).
    await stopMariaDb(await mariadbInit?.catch(() => undefined), undefined);
  });

  describe('pg against PostgreSQL', { skip: pgSkip }, () => {
    let dir: string;
    let server: ChildProcess;
    let unforward: () => void;
    before(async () => {
      dir = initCluster();
      const port = await freePort();
      const [cmd, args] = pgCommand('postgres', ['-D', join(dir, 'data'), '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off']);
      server = spawn(cmd, args, { stdio: 'ignore' });
      await waitForPort(() => net.connect(port, '127.0.0.1'), server, 'postgres');
      await waitForPostgres(() => new pg.Client({ user: 'wgnet', database: 'postgres', host: '127.0.0.1', port }));
      unforward = await forward(p.b, 5432, port);
    });
    after(async () => {
      unforward?.();
      await stopCluster(dir, server);
    });

    test('stream: a tunnel socket (object form): pg calls stream.connect(port, host) on it', () => pgObjectForm(p.a, FAR, 5432));
    test('stream: a function (a pool opens one tunnel socket per connection)', () => pgPoolFunctionForm(p.a, FAR, 5432));
  });

  describe('ioredis against redis-server', { skip: redisSkip }, () => {
    let server: ChildProcess;
    let unforward: () => void;
    before(async () => {
      const port = await freePort();
      server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      await waitForPort(() => net.connect(port, '127.0.0.1'), server, 'redis-server');
      unforward = await forward(p.b, 6379, port);
    });
    after(async () => {
      unforward?.();
      if (server && server.exitCode === null) {
        server.kill();
        await once(server, 'exit');
      }
    });

    test("Connector: a subclass of ioredis's exported AbstractConnector that returns a tunnel socket", () => ioredisConnector(p.a, FAR, 6379));
  });

  describe('mysql2 against MariaDB', { skip: mariadbSkip }, () => {
    let db: MariaDb | undefined;
    let server: ChildProcess | undefined;
    let unforward: () => void;
    before(async () => {
      db = await mariadbInit!;
      server = spawn(MARIADBD, db.args, { stdio: 'ignore' });
      await waitForMariaDb(db, server, () => net.connect(mariadbPort, '127.0.0.1'));
      unforward = await forward(p.b, 3306, mariadbPort);
    });
    after(async () => {
      unforward?.();
      await stopMariaDb(db, server);
    });

    test('stream: a tunnel socket (object form); a 1 MB blob round trip', { timeout: 60_000 }, () => mysql2ObjectForm(p.a, FAR, 3306, db!.login));
    test('stream: a function (a pool opens one tunnel socket per connection)', { timeout: 60_000 }, () => mysql2PoolFunctionForm(p.a, FAR, 3306, db!.login));
  });

  describe('ws against a WebSocket server', () => {
    let wss: WebSocketServer;
    let unforward: () => void;
    before(async () => {
      wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      await once(wss, 'listening');
      wss.on('connection', (s) => s.on('message', (m, binary) => s.send(m, { binary })));
      unforward = await forward(p.b, 8080, (wss.address() as net.AddressInfo).port);
    });
    after(async () => {
      unforward?.();
      await new Promise((r) => wss.close(r));
    });

    test('createConnection: tunnel.createConnection as is', () => wsCreateConnection(p.a, FAR, 8080));
  });

  describe('ssh2 against OpenSSH sshd', { skip: sshdSkip }, () => {
    let files: SshdFiles;
    let server: ChildProcess;
    let unforward: () => void;
    before(async () => {
      const port = await freePort();
      files = sshdFiles(`127.0.0.1:${port}`);
      server = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', files.config], { stdio: 'ignore' });
      await waitForPort(() => net.connect(port, '127.0.0.1'), server, 'sshd');
      unforward = await forward(p.b, 22, port);
    });
    after(async () => {
      unforward?.();
      await stopChild(server);
      if (files) rmSync(files.dir, { recursive: true, force: true });
    });

    test('sock: a tunnel socket; exec echo hello', () => ssh2Exec(p.a, FAR, 22, files));
  });

  describe('node:http2 against an http2 secure server', () => {
    const NAME = 'h2.internal';
    let ca: PrivateCa;
    let server: http2.Http2SecureServer;
    let unforward: () => void;
    before(async () => {
      ca = privateCa([`DNS:${NAME}`]);
      server = http2.createSecureServer({ key: ca.key, cert: ca.cert, allowHTTP1: false }, h2Handler());
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      unforward = await forward(p.b, 8443, (server.address() as net.AddressInfo).port);
    });
    after(async () => {
      unforward?.();
      await new Promise((r) => server.close(r));
    });

    test('createConnection: TLS (ALPN h2) over a tunnel socket, two concurrent streams on one session', () => http2TwoStreams(p.a, FAR, 8443, ca, NAME));
  });
});
