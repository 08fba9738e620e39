/**
 * A tunnel's operations surface (DESIGN §8): Prometheus metrics, readiness with an optional
 * active probe, and pcap capture of the inner packets. Read from counters the cores keep
 * anyway: nothing here is counted per packet, and a capture costs one field test while off.
 */
import type { Writable } from 'node:stream';
import { PeerEventCounters, wireguardMetrics, netstackMetrics, gatewayMetrics, processMetrics, formatMetrics, type MetricFamily } from '../io/metrics.js';
import { HealthProbe, healthReport, parseProbeTarget, type HealthOptions, type HealthReport } from '../io/health.js';
import { PcapWriter, type CaptureOptions, type CaptureStats } from '../io/pcap.js';
import { publishPeerEvent } from './diagnostics.js';
import { systemError, WgnetError } from '../util/errors.js';
import type { Tunnel } from './tunnel.js';

export class TunnelOps {
  /**
   * Handshakes, give-ups and endpoint changes per peer (the Device emits these, it does not
   * count them), also published on the wgnet:* diagnostics channels (api/diagnostics.ts).
   */
  private readonly peerEvents = new PeerEventCounters();
  private probe: HealthProbe | undefined;
  private pcap: PcapWriter | undefined;

  constructor(private readonly t: Tunnel) {
    const c = this.peerEvents;
    t.on('handshake', (e) => {
      c.record('handshake', e.publicKey);
      publishPeerEvent('handshake', { tunnel: t, publicKey: e.publicKey });
    });
    t.on('handshake-failed', (e) => {
      c.record('handshake-failed', e.publicKey);
      publishPeerEvent('handshake-failed', { tunnel: t, publicKey: e.publicKey });
    });
    t.on('endpoint-changed', (e) => {
      c.record('endpoint-changed', e.publicKey);
      publishPeerEvent('endpoint-changed', { tunnel: t, publicKey: e.publicKey, endpoint: e.endpoint });
    });
  }

  metrics(opts: { extra?: MetricFamily[] }): string {
    const e = this.t.engine;
    const families = [...wireguardMetrics({ device: e.device, now: e.now(), wallNow: Date.now(), events: this.peerEvents, ...(e.bind ? { outer: e.bind } : {}) }), ...netstackMetrics(e.iface)];
    const g = this.t.gatewayStats();
    if (g) families.push(...gatewayMetrics(g));
    if (this.pcap) {
      const s = this.pcap.stats;
      families.push(
        { name: 'wgnet_capture_packets_total', type: 'counter', help: 'Packets written to the pcap capture.', samples: [{ value: s.packets }] },
        { name: 'wgnet_capture_dropped_total', type: 'counter', help: 'Packets the capture dropped (size bound reached or writer behind).', samples: [{ value: s.dropped }] },
      );
    }
    families.push(...processMetrics(), ...(opts.extra ?? []));
    return formatMetrics(families);
  }

  health(opts: HealthOptions): HealthReport {
    return healthReport(this.t.engine.device, Date.now(), opts, this.probe);
  }

  healthCheck(target: string, opts: { interval?: number; timeout?: number; onChange?: (ok: boolean, error: string | null) => void }): { stop(): void } {
    const t = this.t;
    const dst = parseProbeTarget(target);
    const interval = opts.interval ?? 10_000;
    const timeout = opts.timeout ?? Math.min(5_000, interval);
    const run =
      dst.port === undefined
        ? async (): Promise<void> => void (await t.ping(dst.host, { timeout }))
        : (): Promise<void> =>
            new Promise<void>((resolve, reject) => {
              const s = t.connect({ host: dst.host, port: dst.port! });
              const timer = setTimeout(() => s.destroy(systemError('ETIMEDOUT', 'connect', dst.host, dst.port)), timeout);
              s.once('connect', () => {
                clearTimeout(timer);
                s.destroy();
                resolve();
              });
              s.once('error', (err) => {
                clearTimeout(timer);
                reject(err);
              });
            });
    this.probe?.stop();
    const probe = (this.probe = new HealthProbe(target, run, interval, timeout, opts.onChange).start());
    t.once('close', () => probe.stop());
    return { stop: () => probe.stop() };
  }

  capture(target: string | Writable, opts: CaptureOptions): { readonly stats: CaptureStats; close(): Promise<void> } {
    if (this.pcap) throw new WgnetError('ERR_WGNET_IN_USE', 'capture: a capture is already running; close() it first');
    const w = new PcapWriter(target, opts);
    const engine = this.t.engine;
    this.pcap = w;
    engine.tap = (p) => w.write(p);
    const close = async (): Promise<void> => {
      if (this.pcap !== w) return;
      this.pcap = undefined;
      engine.tap = undefined;
      await w.close();
    };
    this.t.once('close', () => void close());
    return { stats: w.stats, close };
  }
}
