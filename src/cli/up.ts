/**
 * `wgnet up [-f] IFNAME` and `wgnet-tun [-f] IFNAME`: WireGuard on a kernel TUN
 * device, a drop-in for wireguard-go. Creates the TUN, serves the UAPI at
 * /var/run/wireguard/IFNAME.sock for `wg` and `wg-quick`, daemonizes unless -f
 * (or WG_PROCESS_FOREGROUND=1), and exits when the interface or the socket is
 * removed, as wireguard-go does.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { Device } from '../wireguard/device.js';
import { getCryptoProvider } from '../crypto/index.js';
import { Engine } from '../io/engine.js';
import { TunDevice } from '../io/tun.js';
import { UdpBind } from '../io/udp-bind.js';
import { UapiServer } from '../io/uapi-server.js';
import { systemRng, wallClock } from '../io/clock.js';
import type { UapiHost } from '../wireguard/uapi.js';
import type { Trace, TraceLevel } from '../util/trace.js';
import { levelEnabled } from '../util/trace.js';

export const UP_USAGE = `Usage: wgnet up [-f/--foreground] [--log-level verbose|error|silent] INTERFACE-NAME

Creates TUN device INTERFACE-NAME and runs WireGuard on it, configured through the
UAPI socket at /var/run/wireguard/INTERFACE-NAME.sock (use wg and ip as usual).
Runs in the background unless -f is given or WG_PROCESS_FOREGROUND=1.
Exits when the interface or its socket is removed. Needs root or CAP_NET_ADMIN.

Example:
  wgnet up wg0 && wg setconf wg0 wg0.conf && ip addr add 10.0.0.2/24 dev wg0 && ip link set wg0 up
  WG_QUICK_USERSPACE_IMPLEMENTATION=wgnet-tun wg-quick up ./wg0.conf`;

/** wireguard-go's LOG_LEVEL words mapped onto trace levels. */
function traceLevel(word: string | undefined): TraceLevel | 'silent' {
  switch ((word ?? '').toLowerCase()) {
    case 'verbose':
    case 'debug':
      return 'debug';
    case 'silent':
      return 'silent';
    case 'info':
      return 'info';
    default:
      return 'error';
  }
}

function stderrTrace(level: TraceLevel | 'silent', name: string): Trace {
  return {
    enabled: (l) => level !== 'silent' && levelEnabled(level, l),
    log: (l, event, fields) => {
      if (level === 'silent' || !levelEnabled(level, l)) return;
      const tag = l === 'error' ? 'ERROR' : l === 'debug' ? 'DEBUG' : 'INFO';
      process.stderr.write(`${tag}: (${name}) ${new Date().toISOString().replace('T', ' ').slice(0, 19)} ${event}${fields ? ' ' + JSON.stringify(fields) : ''}\n`);
    },
  };
}

export async function runUp(args: string[], progName = 'wgnet up'): Promise<number> {
  let foreground = process.env.WG_PROCESS_FOREGROUND === '1';
  let level = traceLevel(process.env.LOG_LEVEL);
  let name: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-f' || a === '--foreground') foreground = true;
    else if (a === '--log-level') level = traceLevel(args[++i]);
    else if (a === '-h' || a === '--help') {
      process.stdout.write(UP_USAGE + '\n');
      return 0;
    } else if (a === '--version') {
      process.stdout.write('wgnet-tun (wireguard-go compatible command line)\n');
      return 0;
    } else if (a.startsWith('-')) {
      process.stderr.write(`${progName}: unknown option '${a}'\n${UP_USAGE}\n`);
      return 1;
    } else if (name === undefined) name = a;
    else {
      process.stderr.write(`${progName}: too many arguments\n${UP_USAGE}\n`);
      return 1;
    }
  }
  if (!name) {
    process.stderr.write(UP_USAGE + '\n');
    return 1;
  }

  if (!foreground) return daemonize(name, args);

  const trace = stderrTrace(level, name);
  let tun: TunDevice;
  try {
    tun = TunDevice.open(name);
  } catch (err) {
    process.stderr.write(`${progName}: ${(err as Error).message}\n`);
    reportReady(`error: ${(err as Error).message}`);
    return 1;
  }
  const device = new Device({ crypto: getCryptoProvider('auto'), rng: systemRng, wallClock, trace });
  const engine = new Engine(device, tun, undefined, trace);
  let bind: UdpBind;
  try {
    bind = await UdpBind.open({ port: 0, onMessage: (d, a, p) => engine.receive(d, a, p), onBatchEnd: () => engine.pump(), onError: (e) => trace.log('error', 'udp', { error: e.message }) });
  } catch (err) {
    tun.close();
    reportReady(`error: ${(err as Error).message}`);
    return 1;
  }
  engine.bind = bind;
  let fwmark = 0;
  const host: UapiHost = {
    device,
    listenPort: () => bind.port,
    setListenPort: (port) => bind.rebind(port),
    fwmark: () => fwmark,
    setFwmark: (m) => {
      fwmark = m;
    },
  };
  let uapi: UapiServer;
  try {
    uapi = await UapiServer.listen(name, host, (peers) => {
      const now = engine.now();
      for (const p of peers) device.initiateHandshake(now, p);
      engine.pump();
    });
  } catch (err) {
    tun.close();
    await bind.close();
    process.stderr.write(`${progName}: ${(err as Error).message}\n`);
    reportReady(`error: ${(err as Error).message}`);
    return 1;
  }
  tun.start(
    () => engine.pump(),
    (err) => trace.log('error', 'tun read', { error: err.message }),
  );
  trace.log('info', 'Device started', { tun: tun.name, listenPort: bind.port });
  reportReady('ok');

  return new Promise<number>((resolve) => {
    let done = false;
    const stop = async (why: string): Promise<void> => {
      if (done) return;
      done = true;
      clearInterval(watch);
      trace.log('info', `Shutting down: ${why}`);
      engine.close();
      tun.close();
      await uapi.close();
      await bind.close();
      resolve(0);
    };
    // wireguard-go watches netlink for the link going away; polling once a second is enough here.
    const watch = setInterval(() => {
      if (!tun.exists()) void stop('interface removed');
      else if (!uapi.exists()) void stop('UAPI socket removed');
    }, 500);
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
  });
}

/** Tells a waiting parent (daemon mode) how start-up went, through fd 3. */
function reportReady(status: string): void {
  if (process.env.WGNET_READY_FD !== '3') return;
  try {
    const s = createWriteStream('', { fd: 3 });
    s.end(status + '\n');
  } catch {
    /* parent gone */
  }
}

/** Re-runs this command in the foreground, detached, and waits for it to report start-up. */
function daemonize(name: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2, process.argv.length - args.length), ...args, '-f'], {
      detached: true,
      // Like wireguard-go, the daemon keeps none of the caller's stdio: a caller
      // such as wg-quick waits for its pipes to close.
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      env: { ...process.env, WG_PROCESS_FOREGROUND: '1', WGNET_READY_FD: '3' },
    });
    let status = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => (status += d));
    const finish = (): void => {
      if (status.startsWith('ok')) {
        child.unref();
        (pipe as unknown as { destroy(): void }).destroy();
        resolve(0);
      } else {
        process.stderr.write(`wgnet: ${name}: ${status.trim() || 'daemon exited during start-up'}\n`);
        resolve(1);
      }
    };
    pipe.on('end', finish);
    child.on('exit', () => {
      if (!status) finish();
    });
  });
}
