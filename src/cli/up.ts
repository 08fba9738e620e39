/**
 * `wgnet up [-f] IFNAME` and `wgnet-tun [-f] IFNAME`: WireGuard on a kernel TUN
 * device, a drop-in for wireguard-go. Creates the TUN, serves the UAPI at
 * /var/run/wireguard/IFNAME.sock for `wg` and `wg-quick`, daemonizes unless -f
 * (or WG_PROCESS_FOREGROUND=1), and exits when the interface or the socket is
 * removed, as wireguard-go does.
 */
import { spawn, execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import net from 'node:net';
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
import { toBase64 } from '../util/bytes.js';
import { WgnetError } from '../util/errors.js';
import { PeerEventCounters, wireguardMetrics, processMetrics, formatMetrics } from '../io/metrics.js';
import { HealthProbe, healthReport, parseProbeTarget, serveOps } from '../io/health.js';
import { PcapWriter } from '../io/pcap.js';
import { CoreDiagnostics, publishPeerEvent } from '../api/diagnostics.js';
import { LOG_LEVELS, parseLogLevel } from './serve.js';

export const UP_USAGE = `Usage: wgnet up [-f/--foreground] [--log-level error|warn|info|debug|trace] [--metrics HOST:PORT] [--ready-peers KEY,...]
                [--health-check IP[:PORT]] [--health-interval SECONDS] [--pcap FILE] [--pcap-max-size BYTES] INTERFACE-NAME

Creates TUN device INTERFACE-NAME and runs WireGuard on it, configured through the
UAPI socket at /var/run/wireguard/INTERFACE-NAME.sock (use wg and ip as usual).
Runs in the background unless -f is given or WG_PROCESS_FOREGROUND=1.
Exits when the interface or its socket is removed. Needs root or CAP_NET_ADMIN.
The LOG_LEVEL environment variable takes wireguard-go's words (verbose, error, silent) too.

  --metrics HOST:PORT        serve GET /metrics (Prometheus), /livez and /readyz (a handshake younger
                             than 180 s with every peer, or those of --ready-peers)
  --health-check IP[:PORT]   /readyz also needs this to answer, through the interface: ping IP, or TCP connect
  --pcap FILE                write the packets of the TUN device, both directions, to FILE (pcap, LINKTYPE_RAW)
Signals: SIGUSR1 prints the live counters to stderr; SIGINT and SIGTERM stop.

Example:
  wgnet up wg0 && wg setconf wg0 wg0.conf && ip addr add 10.0.0.2/24 dev wg0 && ip link set wg0 up
  WG_QUICK_USERSPACE_IMPLEMENTATION=wgnet-tun wg-quick up ./wg0.conf`;

/** wireguard-go's LOG_LEVEL words (verbose, error, silent) and wgnet's own, mapped onto trace levels. */
function traceLevel(word: string | undefined): TraceLevel | 'silent' {
  const w = (word ?? '').toLowerCase();
  if (w === 'verbose') return 'debug';
  if (w === 'silent') return 'silent';
  if ((LOG_LEVELS as readonly string[]).includes(w)) return w as TraceLevel;
  return 'error';
}

/** wgnet's levels for --log-level (unknown ones refused): debug adds drops, trace per-packet chatter. */
function flagLevel(v: string | undefined): TraceLevel {
  return parseLogLevel(v ?? '');
}

function stderrTrace(level: TraceLevel | 'silent', name: string): Trace {
  return {
    enabled: (l) => level !== 'silent' && levelEnabled(level, l),
    log: (l, event, fields) => {
      if (level === 'silent' || !levelEnabled(level, l)) return;
      const tag = l.toUpperCase();
      process.stderr.write(`${tag}: (${name}) ${new Date().toISOString().replace('T', ' ').slice(0, 19)} ${event}${fields ? ' ' + JSON.stringify(fields) : ''}\n`);
    },
  };
}

export async function runUp(args: string[], progName = 'wgnet up'): Promise<number> {
  let foreground = process.env.WG_PROCESS_FOREGROUND === '1';
  let level = traceLevel(process.env.LOG_LEVEL);
  let name: string | undefined;
  const ops: { metrics?: { host: string; port: number }; readyPeers?: string[]; healthCheck?: string; healthIntervalMs: number; pcap?: string; pcapMaxBytes: number } = {
    healthIntervalMs: 10_000,
    pcapMaxBytes: 100 * 1024 * 1024,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `${a} needs a value`);
      return v;
    };
    if (a === '-f' || a === '--foreground') foreground = true;
    else if (a === '--log-level') level = flagLevel(value());
    else if (a === '--metrics') {
      const v = value();
      const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(v);
      if (!m || Number(m[2]) > 65535) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `--metrics: expected HOST:PORT, got '${v.slice(0, 60)}'`);
      ops.metrics = { host: m[1] || '127.0.0.1', port: Number(m[2]) };
    } else if (a === '--ready-peers') ops.readyPeers = value().split(',').map((k) => k.trim()).filter(Boolean);
    else if (a === '--health-check') {
      ops.healthCheck = value();
      parseProbeTarget(ops.healthCheck);
    } else if (a === '--health-interval') {
      const v = value();
      if (!/^\d{1,6}(\.\d{1,3})?$/.test(v) || Number(v) <= 0) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `--health-interval: expected seconds > 0, got '${v.slice(0, 20)}'`);
      ops.healthIntervalMs = Number(v) * 1000;
    } else if (a === '--pcap') ops.pcap = value();
    else if (a === '--pcap-max-size') {
      const v = value();
      if (!/^\d{1,12}$/.test(v) || Number(v) < 60) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `--pcap-max-size: expected bytes >= 60, got '${v.slice(0, 20)}'`);
      ops.pcapMaxBytes = Number(v);
    } else if (a === '-h' || a === '--help') {
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

  const trace = new CoreDiagnostics(stderrTrace(level, name), name); // the device's drops also reach wgnet:drop
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
  // Handshake state per peer, logged once per change; counted for /metrics.
  const events = new PeerEventCounters();
  const hsState = new Map<string, boolean>();
  engine.handlers = {
    onNetEvent: () => {},
    onDeviceEvent: (ev) => {
      events.onDeviceEvent(ev);
      const key = toBase64(ev.peer.publicKey);
      publishPeerEvent(ev.type, { interface: name, publicKey: key, ...(ev.type === 'endpoint-changed' ? { endpoint: ev.peer.endpoint } : {}) });
      if (ev.type === 'handshake' && hsState.get(key) !== true) trace.log('info', 'handshake ok', { peer: key });
      else if (ev.type === 'handshake-failed' && hsState.get(key) !== false) trace.log('warn', 'handshake failed: no answer for 90 s; still retrying', { peer: key });
      if (ev.type !== 'endpoint-changed') hsState.set(key, ev.type === 'handshake');
    },
  };
  tun.start(
    () => engine.pump(),
    (err) => trace.log('error', 'tun read', { error: err.message }),
  );
  let probe: HealthProbe | undefined;
  let pcap: PcapWriter | undefined;
  let opsServer: import('node:http').Server | undefined;
  try {
    if (ops.healthCheck) probe = new HealthProbe(ops.healthCheck, hostProbe(ops.healthCheck, Math.min(5000, ops.healthIntervalMs)), ops.healthIntervalMs, Math.min(5000, ops.healthIntervalMs)).start();
    if (ops.pcap) {
      const w = (pcap = new PcapWriter(ops.pcap, { maxBytes: ops.pcapMaxBytes }));
      engine.tap = (p) => w.write(p);
    }
    if (ops.metrics) {
      opsServer = await serveOps(ops.metrics.host, ops.metrics.port, {
        metrics: () => formatMetrics([...wireguardMetrics({ device, now: engine.now(), wallNow: Date.now(), events, ...(engine.bind ? { outer: engine.bind } : {}) }), ...processMetrics()]),
        health: () => healthReport(device, Date.now(), { peers: ops.readyPeers }, probe),
      });
    }
  } catch (err) {
    probe?.stop();
    await pcap?.close();
    engine.close();
    tun.close();
    await uapi.close();
    await bind.close();
    process.stderr.write(`${progName}: ${(err as Error).message}\n`);
    reportReady(`error: ${(err as Error).message}`);
    return 1;
  }
  const onUsr1 = (): void => {
    const now = Date.now();
    for (const p of device.peers()) {
      const ep = p.endpoint;
      process.stderr.write(`INFO stats peer peer=${toBase64(p.publicKey)} endpoint=${ep ? `${ep.address}:${ep.port}` : 'none'} handshake=${p.lastHandshakeWallMs > 0 ? `${Math.round((now - p.lastHandshakeWallMs) / 1000)}s ago` : 'never'} rxBytes=${p.rxBytes} txBytes=${p.txBytes}\n`);
    }
    const d = device.stats;
    const dropped = Object.fromEntries(Object.entries(d.dropped).filter(([, v]) => v));
    process.stderr.write(`INFO stats device rxPackets=${d.rxPackets} txPackets=${d.txPackets} rxBytes=${d.rxBytes} txBytes=${d.txBytes} handshakesInitiated=${d.handshakesInitiated} handshakesCompleted=${d.handshakesCompleted} dropped=${JSON.stringify(dropped)}\n`);
  };
  process.on('SIGUSR1', onUsr1);
  trace.log('info', 'Device started', { tun: tun.name, listenPort: bind.port, ...(opsServer ? { metrics: `${ops.metrics!.host}:${(opsServer.address() as net.AddressInfo).port}` } : {}) });
  reportReady('ok');

  return new Promise<number>((resolve) => {
    let done = false;
    const stop = async (why: string): Promise<void> => {
      if (done) return;
      done = true;
      clearInterval(watch);
      trace.log('info', `Shutting down: ${why}`);
      process.off('SIGUSR1', onUsr1);
      probe?.stop();
      opsServer?.closeAllConnections();
      opsServer?.close();
      engine.tap = undefined;
      await pcap?.close();
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

/**
 * The --health-check probe of `up`: the kernel routes the target through the TUN device, so
 * the host's own ping (iputils) or a TCP connect goes through the tunnel.
 */
function hostProbe(target: string, timeoutMs: number): () => Promise<void> {
  const t = parseProbeTarget(target);
  if (t.port !== undefined) {
    const port = t.port;
    return () =>
      new Promise<void>((resolve, reject) => {
        const s = net.connect({ host: t.host, port, timeout: timeoutMs });
        s.once('connect', () => {
          s.destroy();
          resolve();
        });
        s.once('timeout', () => s.destroy(Object.assign(new Error('ETIMEDOUT'), { code: 'ETIMEDOUT' })));
        s.once('error', reject);
      });
  }
  return () =>
    new Promise<void>((resolve, reject) => {
      execFile('ping', ['-n', '-c', '1', '-W', String(Math.max(1, Math.ceil(timeoutMs / 1000))), t.host], { timeout: timeoutMs + 1000 }, (err) =>
        err ? reject(Object.assign(new Error('no echo reply'), { code: 'ETIMEDOUT' })) : resolve(),
      );
    });
}
