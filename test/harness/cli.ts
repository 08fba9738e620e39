/**
 * The wgnet CLI as a child process, for tests that run it as a user would: started from
 * bin/wgnet.js (the sources through tsx in a checkout), ready once it prints its `ready`
 * line, stopped with SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/wgnet.js', import.meta.url));

export interface Cli {
  child: ChildProcess;
  /** The `ready ...` line. */
  ready: string;
  /** Everything on stderr so far (the log). */
  stderr: () => string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `wgnet ARGS...`; rejects if it exits or prints no ready line in 20 s (then it is killed, so a failing test cannot hold the file open). */
export function startCli(args: string[], opts: { nodeArgs?: string[] } = {}): Promise<Cli> {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ready line in 20 s: ${out}${err}`));
    }, 20_000);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('ready'));
      if (line) {
        clearTimeout(timer);
        resolve({
          child,
          ready: line,
          stderr: () => err,
          stop: async () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}: ${err}`));
    });
  });
}

/** Polls `cond` every 50 ms until it holds, or throws after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
