/**
 * Interop harness: the real `wireguard-go` on a TUN device inside a network
 * namespace the test creates, with the kernel's TCP/UDP/ICMP behind it.
 *
 * Topology (all of it created here and removed in `close()`):
 *
 *   root namespace (this Node process, wgnet)        namespace wgn-XXXX
 *   veth  198.18.N.1/30, fdee:N::1/64  <------->  veth 198.18.N.2/30, fdee:N::2/64
 *                                                  wg0 (wireguard-go): 10.77.N.1/24, fd77:N::1/64
 *   wgnet tunnel address: 10.77.N.2, fd77:N::2 (no OS interface)
 *
 * 198.18.0.0/15 is the benchmarking range (RFC 2544), fdxx: a unique local
 * range (RFC 4193): nothing here can reach outside the machine.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function interopUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'interop tests need Linux network namespaces';
  if (process.getuid?.() !== 0) return 'interop tests need root (network namespaces, TUN)';
  if (!existsSync('/dev/net/tun')) return 'interop tests need /dev/net/tun';
  for (const bin of ['ip', 'wg', 'wireguard-go']) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      return `interop tests need '${bin}' (Debian packages iproute2, wireguard-tools, wireguard-go)`;
    }
  }
  return undefined;
}

/** Skip with a reason locally; in CI a missing prerequisite is a failure. */
export function interopSkipReason(): string | false {
  const why = interopUnavailable();
  if (!why) return false;
  if (process.env.CI) throw new Error(`CI=true but ${why}`);
  return why;
}

export function sh(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    if (opts.allowFail) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/**
 * Runs a command without blocking the event loop: needed whenever wgnet, in
 * this process, has to answer what the command sends.
 */
export function shAsync(cmd: string, args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(String(stdout).trim());
    });
  });
}

let counter = 0;
let secretDir: string | undefined;

/**
 * `wg` reads keys from files only; node's stdio pipes are sockets, which
 * /dev/stdin cannot open, so keys go through a private temporary file.
 */
export function secretFile(key: string): string {
  if (!secretDir) {
    const dir = (secretDir = mkdtempSync(join(tmpdir(), 'wgnet-keys-')));
    // One listener for the directory, not one per key: a benchmark makes a key per round.
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const p = join(secretDir, `k${counter}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(p, key + '\n', { mode: 0o600 });
  return p;
}

export interface WgGoPeer {
  ns: string;
  ifname: string;
  /** Outer addresses of the namespace side of the veth. */
  outer4: string;
  outer6: string;
  listenPort: number;
  publicKey: string;
  privateKey: string;
  /** wireguard-go's tunnel addresses. */
  inner4: string;
  inner6: string;
  /** The addresses wgnet should use inside the tunnel. */
  peerInner4: string;
  peerInner6: string;
  /** Runs a command inside the namespace (blocks the event loop: not for traffic to wgnet). */
  exec(cmd: string, args: string[], opts?: { input?: string; allowFail?: boolean }): string;
  /** Runs a command inside the namespace while wgnet keeps running. */
  run(cmd: string, args: string[], opts?: { allowFail?: boolean; timeoutMs?: number }): Promise<string>;
  /** Starts a long-running process inside the namespace (killed by close()). */
  spawn(cmd: string, args: string[]): ChildProcess;
  /** Adds wgnet as a peer of wireguard-go. */
  addPeer(publicKey: string, opts?: { endpoint?: string; keepalive?: number; psk?: string }): void;
  wgShow(): string;
  /**
   * Drops this share (0 to 1) of the UDP datagrams entering and leaving the namespace,
   * at random, with nftables (this kernel has no sch_netem); 0 removes the rule. Only
   * the outer WireGuard traffic is UDP here, so each direction loses about `share`.
   */
  setUdpLoss(share: number): void;
  close(): void;
}

export function genKeyPair(): { privateKey: string; publicKey: string } {
  const privateKey = sh('wg', ['genkey']);
  const publicKey = sh('wg', ['pubkey'], { input: privateKey + '\n' });
  return { privateKey, publicKey };
}

const SUBNET_LOCKS = join(tmpdir(), 'wgnet-interop-subnets');

/**
 * A subnet number N (198.18.N.0/30 outside, 10.77.N.0/24 inside) no other test
 * process is using: test files run in parallel, and two namespaces with the
 * same addresses break each other's routes. A lock file per N, created with
 * O_EXCL, holds the owner's pid; a lock whose owner is gone is taken over.
 */
function allocSubnet(): { n: number; release: () => void } {
  mkdirSync(SUBNET_LOCKS, { recursive: true });
  // Addresses left on this host by a run that died before its cleanup count as taken.
  const inUse = execFileSync('ip', ['-o', 'addr'], { encoding: 'utf8' });
  for (let attempt = 0; attempt < 1000; attempt++) {
    const n = 1 + Math.floor(Math.random() * 250);
    if (inUse.includes(` 198.18.${n}.`)) continue;
    const path = join(SUBNET_LOCKS, String(n));
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return { n, release: () => rmSync(path, { force: true }) };
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(path, 'utf8'));
      } catch {
        continue;
      }
      if (owner > 0 && owner !== process.pid && !alive(owner)) rmSync(path, { force: true });
    }
  }
  throw new Error(`no free test subnet (locks in ${SUBNET_LOCKS})`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An empty network namespace (loopback up) for the other end of a test. */
export function makeNamespace(): { ns: string; exec: (cmd: string, args: string[], o?: { input?: string; allowFail?: boolean }) => string; close: () => void } {
  const ns = `wgn-${process.pid.toString(36)}x${counter++}`;
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return {
    ns,
    exec: (cmd, args, o) => sh('ip', ['netns', 'exec', ns, cmd, ...args], o),
    close: () => sh('ip', ['netns', 'del', ns], { allowFail: true }),
  };
}

/**
 * Creates a namespace with wireguard-go on a TUN device and a veth to the root
 * namespace, or to `otherNs` when given (so neither end is in the root namespace).
 */
export async function startWgGo(opts: { otherNs?: string } = {}): Promise<WgGoPeer> {
  counter++;
  const { n, release } = allocSubnet();
  const tag = `${process.pid.toString(36)}${counter}`;
  const ns = `wgn-${tag}`;
  const vethRoot = `vr${tag}`.slice(0, 15);
  const vethNs = `vn${tag}`.slice(0, 15);
  const ifname = `wgg${tag}`.slice(0, 15);
  const children: ChildProcess[] = [];
  const cleanup = (): void => {
    for (const c of children) c.kill('SIGTERM');
    sh('ip', ['netns', 'del', ns], { allowFail: true });
    sh('ip', ['link', 'del', vethRoot], { allowFail: true });
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true });
    release();
  };
  try {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', vethRoot, 'type', 'veth', 'peer', 'name', vethNs]);
    sh('ip', ['link', 'set', vethNs, 'netns', ns]);
    const other = opts.otherNs ? ['-n', opts.otherNs] : [];
    if (opts.otherNs) sh('ip', ['link', 'set', vethRoot, 'netns', opts.otherNs]);
    sh('ip', [...other, 'addr', 'add', `198.18.${n}.1/30`, 'dev', vethRoot]);
    sh('ip', [...other, '-6', 'addr', 'add', `fdee:${n}::1/64`, 'dev', vethRoot, 'nodad']);
    sh('ip', [...other, 'link', 'set', vethRoot, 'up']);
    const nsx = (args: string[]): string => sh('ip', ['-n', ns, ...args]);
    nsx(['addr', 'add', `198.18.${n}.2/30`, 'dev', vethNs]);
    nsx(['-6', 'addr', 'add', `fdee:${n}::2/64`, 'dev', vethNs, 'nodad']);
    nsx(['link', 'set', vethNs, 'up']);
    nsx(['link', 'set', 'lo', 'up']);

    const wg = spawn('ip', ['netns', 'exec', ns, 'wireguard-go', '-f', ifname], {
      env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(wg);
    const sockPath = `/var/run/wireguard/${ifname}.sock`;
    for (let i = 0; i < 100 && !existsSync(sockPath); i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(sockPath)) throw new Error('wireguard-go did not create its UAPI socket');

    const keys = genKeyPair();
    const listenPort = 40000 + n;
    nsx(['addr', 'add', `10.77.${n}.1/24`, 'dev', ifname]);
    nsx(['-6', 'addr', 'add', `fd77:${n}::1/64`, 'dev', ifname, 'nodad']);
    sh('ip', ['netns', 'exec', ns, 'wg', 'set', ifname, 'private-key', secretFile(keys.privateKey), 'listen-port', String(listenPort)]);
    nsx(['link', 'set', ifname, 'up']);

    const peer: WgGoPeer = {
      ns,
      ifname,
      outer4: `198.18.${n}.2`,
      outer6: `fdee:${n}::2`,
      listenPort,
      publicKey: keys.publicKey,
      privateKey: keys.privateKey,
      inner4: `10.77.${n}.1`,
      inner6: `fd77:${n}::1`,
      peerInner4: `10.77.${n}.2`,
      peerInner6: `fd77:${n}::2`,
      exec: (cmd, args, o) => sh('ip', ['netns', 'exec', ns, cmd, ...args], o),
      run: (cmd, args, o) => shAsync('ip', ['netns', 'exec', ns, cmd, ...args], o),
      spawn: (cmd, args) => {
        const c = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(c);
        return c;
      },
      addPeer: (publicKey, o = {}) => {
        const args = ['set', ifname, 'peer', publicKey, 'allowed-ips', `10.77.${n}.2/32,fd77:${n}::2/128`];
        if (o.endpoint) args.push('endpoint', o.endpoint);
        if (o.keepalive) args.push('persistent-keepalive', String(o.keepalive));
        if (o.psk) args.push('preshared-key', secretFile(o.psk));
        sh('ip', ['netns', 'exec', ns, 'wg', ...args]);
      },
      wgShow: () => sh('ip', ['netns', 'exec', ns, 'wg', 'show', ifname]),
      setUdpLoss: (share) => {
        sh('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'wgnetloss'], { allowFail: true });
        if (share <= 0) return;
        const n = Math.round(share * 10_000);
        const rule = `meta l4proto udp numgen random mod 10000 < ${n} counter drop`;
        sh('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
          input: `table inet wgnetloss {\n chain in { type filter hook input priority 0; policy accept; ${rule}; }\n chain out { type filter hook output priority 0; policy accept; ${rule}; }\n}\n`,
        });
      },
      close: cleanup,
    };
    return peer;
  } catch (err) {
    cleanup();
    throw err;
  }
}

/** Waits until `fn` returns truthy or the time runs out. */
export async function waitFor<T>(fn: () => T | Promise<T>, ms = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a helper server in the namespace and waits for its 'ready' line. */
export async function startServer(peer: WgGoPeer, cmd: string, args: string[]): Promise<ChildProcess> {
  const c = peer.spawn(cmd, args);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`${cmd} ${args.join(' ')} did not start: ${out}`)), 10_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (/ready|Serving HTTP/.test(out)) {
        clearTimeout(t);
        resolve();
      }
    };
    c.stdout!.on('data', onData);
    c.stderr!.on('data', onData);
  });
  return c;
}

export interface Inet {
  ns: string;
  v4: string;
  v6: string;
  net4: string;
  net6: string;
  /** The address of the other end of the veth (the root namespace's, or `from`'s). */
  gw4: string;
  exec(cmd: string, args: string[], o?: { allowFail?: boolean }): string;
  spawn(cmd: string, args: string[]): ChildProcess;
  close(): void;
}

/**
 * The stand-in for "the internet" behind a gateway: a namespace on a veth from the root
 * namespace (or from `from`), 198.19.M.0/30 and fdef:M::/64 (RFC 2544's benchmarking range
 * and a unique local range: nothing here reaches outside the machine).
 */
export function makeInet(from?: string): Inet {
  const tag = `${process.pid.toString(36)}g${counter++}`;
  const ns = `wgi-${tag}`;
  const m = 1 + ((process.pid + counter * 37) % 250);
  const at = from ? ['-n', from] : [];
  const vr = `gr${tag}`.slice(0, 15);
  const vn = `gn${tag}`.slice(0, 15);
  const kids: ChildProcess[] = [];
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', vr, 'type', 'veth', 'peer', 'name', vn]);
  sh('ip', ['link', 'set', vn, 'netns', ns]);
  if (from) sh('ip', ['link', 'set', vr, 'netns', from]);
  sh('ip', [...at, 'addr', 'add', `198.19.${m}.1/30`, 'dev', vr]);
  sh('ip', [...at, '-6', 'addr', 'add', `fdef:${m}::1/64`, 'dev', vr, 'nodad']);
  sh('ip', [...at, 'link', 'set', vr, 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', `198.19.${m}.2/30`, 'dev', vn]);
  sh('ip', ['-n', ns, '-6', 'addr', 'add', `fdef:${m}::2/64`, 'dev', vn, 'nodad']);
  sh('ip', ['-n', ns, 'link', 'set', vn, 'up']);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return {
    ns,
    v4: `198.19.${m}.2`,
    v6: `fdef:${m}::2`,
    net4: `198.19.${m}.0/30`,
    net6: `fdef:${m}::/64`,
    gw4: `198.19.${m}.1`,
    exec: (cmd, args, o) => sh('ip', ['netns', 'exec', ns, cmd, ...args], o),
    spawn: (cmd, args) => {
      const c = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      kids.push(c);
      return c;
    },
    close: () => {
      for (const k of kids) k.kill('SIGKILL');
      sh('ip', ['netns', 'del', ns], { allowFail: true });
      sh('ip', [...at, 'link', 'del', vr], { allowFail: true });
    },
  };
}
