/**
 * A throwaway MariaDB server for the client-library tests (./clients.test.ts): its own
 * datadir from mariadb-install-db in a temporary directory, one user with a password (so
 * mysql2 runs the real native-password scramble through the tunnel), and a stop that
 * leaves no process and no files behind.
 *
 * --no-defaults everywhere: the Debian package's /etc/mysql config would otherwise point
 * the server at /run/mysqld and the system datadir.
 */
import net from 'node:net';
import { once } from 'node:events';
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';

export const MARIADBD = '/usr/sbin/mariadbd';

/** Why this host cannot run the MariaDB tests, or undefined when it can. */
export function mariadbUnavailable(): string | undefined {
  const gaps: string[] = [];
  if (!existsSync(MARIADBD)) gaps.push(MARIADBD);
  if (spawnSync('sh', ['-c', 'command -v mariadb-install-db'], { stdio: 'ignore' }).status !== 0) gaps.push('mariadb-install-db on PATH');
  return gaps.length === 0 ? undefined : `no ${gaps.join(', ')} (Debian package mariadb-server)`;
}

export interface MariaDbLogin {
  user: string;
  password: string;
  database: string;
}

export interface MariaDb {
  /** What a client logs in with: only these go to mysql2, which warns about options it does not know. */
  login: MariaDbLogin;
  dir: string;
  /** mariadbd's command line, for the caller to spawn where it listens (a namespace or the host). */
  args: string[];
  /** The tail of the server's error log, for failure messages. */
  log(): string;
}

const asRoot = process.getuid?.() === 0;

/**
 * Server options both mariadb-install-db's bootstrap and the server get. A 16 MB redo log
 * instead of the default 96 MB: the datadir is written in a few seconds less on a busy
 * disk, and still holds the few MB of blobs the tests write. No durability is needed.
 */
const STORAGE = ['--innodb-log-file-size=16M', '--innodb-buffer-pool-size=32M', '--innodb-flush-log-at-trx-commit=0', '--innodb-doublewrite=0'];

/**
 * A fresh datadir and the command line of a server on `host:port`. mariadbd refuses to run
 * as root unless told to with --user=root; the datadir is then root's as well. The
 * bootstrap runs as a child process, not spawnSync: a live tunnel keeps its timers.
 */
export async function initMariaDb(host: string, port: number): Promise<MariaDb> {
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-mariadb-'));
  const user = asRoot ? ['--user=root'] : [];
  try {
    const args = ['--no-defaults', `--datadir=${join(dir, 'data')}`, ...user, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', ...STORAGE];
    await new Promise<void>((resolve, reject) => {
      execFile('mariadb-install-db', args, { timeout: 60_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`mariadb-install-db failed (${err.code ?? err.signal}): ${stderr}${stdout}`));
        else resolve();
      });
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const login: MariaDbLogin = { user: 'wgnet', password: 'through-wireguard', database: 'wgnet' };
  // Run at startup before the server listens, so a connection that gets in can log in.
  writeFileSync(join(dir, 'init.sql'), [
    `CREATE USER IF NOT EXISTS '${login.user}'@'%' IDENTIFIED BY '${login.password}';`,
    `GRANT ALL ON *.* TO '${login.user}'@'%';`,
    `CREATE DATABASE IF NOT EXISTS ${login.database};`,
    '',
  ].join('\n'));
  const args = [
    '--no-defaults',
    `--datadir=${join(dir, 'data')}`,
    ...user,
    `--bind-address=${host}`,
    `--port=${port}`,
    `--socket=${join(dir, 'mariadbd.sock')}`,
    `--pid-file=${join(dir, 'mariadbd.pid')}`,
    `--log-error=${join(dir, 'error.log')}`,
    `--init-file=${join(dir, 'init.sql')}`,
    // No reverse DNS for each client (the namespace has no resolver to ask).
    '--skip-name-resolve',
    '--max-allowed-packet=16M',
    ...STORAGE,
  ];
  const log = (): string => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8').split('\n').slice(-15).join('\n');
    } catch {
      return '(no error log)';
    }
  };
  return { login, dir, args, log };
}

/**
 * Until the server answers a query on a connection made with `dial` (kernel or tunnel):
 * before it listens a connect is refused, so every failure is retried until the server
 * exits or the time runs out.
 */
export async function waitForMariaDb(db: MariaDb, child: ChildProcess, dial: () => net.Socket, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`mariadbd exited with ${child.exitCode ?? child.signalCode}:\n${db.log()}`);
    }
    const stream = dial();
    try {
      const conn = await mysql.createConnection({ ...db.login, stream, connectTimeout: 5_000 });
      await conn.query('SELECT 1');
      await conn.end();
      return;
    } catch (err) {
      last = err;
      stream.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`mariadbd did not answer within ${ms} ms (last: ${String(last)}):\n${db.log()}`);
}

/**
 * Stops the server by the pid it wrote (SIGTERM is its clean shutdown; a signal to a
 * wrapper such as `ip netns exec` need not reach it), then removes the datadir.
 */
export async function stopMariaDb(db: MariaDb | undefined, child: ChildProcess | undefined): Promise<void> {
  if (!db) return;
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    const pidFile = join(db.dir, 'mariadbd.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : child.pid;
    const signal = (sig: NodeJS.Signals): void => {
      try {
        if (pid) process.kill(pid, sig);
      } catch {
        // already gone: the 'exit' below comes anyway
      }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(db.dir, { recursive: true, force: true });
}
