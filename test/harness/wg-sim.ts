/**
 * Deterministic simulator for WireGuard devices: a virtual clock that jumps to
 * the next deadline, links with seeded loss, delay, reordering, duplication and
 * cuts, and a log of every datagram (smoltcp-netsim / firezone-harness style).
 */
import { Device, type Endpoint } from '../../src/wireguard/device.js';
import { getCryptoProvider } from '../../src/crypto/index.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../src/crypto/keys.js';
import { SeededRng } from '../../src/util/rng.js';
import { parsePrefix } from '../../src/util/ip.js';

export interface SimNode {
  name: string;
  device: Device;
  endpoint: Endpoint;
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  received: Uint8Array[];
}

export interface LinkConditions {
  loss?: number;
  delayMs?: number;
  jitterMs?: number;
  duplicate?: number;
  cut?: boolean;
}

interface InFlight {
  at: number;
  seq: number;
  to: SimNode;
  from: Endpoint;
  data: Uint8Array;
}

export class WgSim {
  now = 0;
  readonly rng: SeededRng;
  readonly nodes: SimNode[] = [];
  readonly log: { at: number; from: string; to: string; type: number; len: number; dropped: boolean }[] = [];
  conditions: LinkConditions = { delayMs: 5 };
  private flight: InFlight[] = [];
  private seq = 0;
  private readonly wall = 1_700_000_000_000;

  constructor(seed = 1) {
    this.rng = new SeededRng(seed);
  }

  addNode(name: string, opts: { underLoadRate?: number } = {}): SimNode {
    const crypto = getCryptoProvider('native');
    const privateKey = generatePrivateKey(this.rng);
    const node: SimNode = {
      name,
      privateKey,
      publicKey: publicKeyFromPrivate(crypto, privateKey),
      endpoint: { address: `192.0.2.${this.nodes.length + 1}`, port: 51820 },
      received: [],
      device: new Device({ privateKey, crypto, rng: this.rng, wallClock: () => this.wall + this.now, underLoadRate: opts.underLoadRate }),
    };
    this.nodes.push(node);
    return node;
  }

  /** Peers a and b: a routes `bIps` to b and b routes `aIps` to a. */
  link(a: SimNode, b: SimNode, aIps: string, bIps: string, opts: { keepalive?: number; aKnowsB?: boolean; bKnowsA?: boolean } = {}): void {
    a.device.addPeer({ publicKey: b.publicKey, endpoint: opts.aKnowsB === false ? undefined : b.endpoint, allowedIps: [parsePrefix(bIps)!], persistentKeepalive: opts.keepalive });
    b.device.addPeer({ publicKey: a.publicKey, endpoint: opts.bKnowsA === false ? undefined : a.endpoint, allowedIps: [parsePrefix(aIps)!], persistentKeepalive: opts.keepalive });
  }

  node(addr: string): SimNode | undefined {
    return this.nodes.find((n) => n.endpoint.address === addr);
  }

  /** Moves every output of every device onto the links, and delivers IP packets to `received`. */
  private collect(): void {
    for (const n of this.nodes) {
      for (let d = n.device.pollTransmit(); d; d = n.device.pollTransmit()) {
        const to = this.node(d.to.address);
        const c = this.conditions;
        const dropped = !to || c.cut === true || this.rng.nextFloat() < (c.loss ?? 0);
        this.log.push({ at: this.now, from: n.name, to: to?.name ?? d.to.address, type: d.data[0]!, len: d.data.length, dropped });
        if (dropped || !to) continue;
        const copies = this.rng.nextFloat() < (c.duplicate ?? 0) ? 2 : 1;
        for (let i = 0; i < copies; i++) {
          const at = this.now + (c.delayMs ?? 0) + this.rng.nextFloat() * (c.jitterMs ?? 0);
          this.flight.push({ at, seq: this.seq++, to, from: n.endpoint, data: d.data.slice() });
        }
      }
      for (let p = n.device.pollPacket(); p; p = n.device.pollPacket()) n.received.push(p.slice());
    }
  }

  /** Runs the world until `until` (virtual ms), jumping from event to event. */
  run(until: number): void {
    for (let guard = 0; guard < 5_000_000; guard++) {
      this.collect();
      let next = until;
      for (const f of this.flight) next = Math.min(next, f.at);
      for (const n of this.nodes) {
        const d = n.device.pollTimeout();
        if (d) next = Math.min(next, Math.max(d.at, this.now));
      }
      if (next > until) next = until;
      this.now = Math.max(this.now, next);
      const due = this.flight.filter((f) => f.at <= this.now).sort((x, y) => x.at - y.at || x.seq - y.seq);
      this.flight = this.flight.filter((f) => f.at > this.now);
      for (const f of due) f.to.device.handleDatagram(this.now, f.data, f.from);
      for (const n of this.nodes) {
        const d = n.device.pollTimeout();
        if (d && d.at <= this.now) n.device.handleTimeout(this.now);
      }
      if (due.length === 0 && this.now >= until) {
        this.collect();
        if (this.flight.every((f) => f.at > until)) return;
      }
    }
    throw new Error('simulation did not settle');
  }

  /** An IPv4 packet from src to dst with a 4-byte sequence payload, with headroom like the netstack's. */
  static packet(src: string, dst: string, seq: number, size = 64): Uint8Array {
    const ab = new ArrayBuffer(16 + size + 32);
    const p = new Uint8Array(ab, 16, size);
    p[0] = 0x45;
    p[2] = size >> 8;
    p[3] = size & 0xff;
    p[9] = 17;
    p.set(src.split('.').map(Number), 12);
    p.set(dst.split('.').map(Number), 16);
    new DataView(ab).setUint32(16 + 20, seq);
    return p;
  }
}
