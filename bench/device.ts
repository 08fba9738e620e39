/**
 * The WireGuard data path through two Devices (encrypt, then decrypt and route),
 * 1420-byte packets, next to the raw AEAD seal+open rate of the same backend.
 */
import { Device } from '../src/wireguard/device.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../src/crypto/keys.js';
import { SeededRng } from '../src/util/rng.js';
import { parsePrefix } from '../src/util/ip.js';
import { allocPacket, WG_HEADROOM, WG_TAILROOM } from '../src/util/bytes.js';
import { measure, type BenchRow } from './common.js';
import { providers, rawAeadRate } from './crypto.js';

export async function benchDevice(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const crypto of providers()) {
    const rng = new SeededRng(1);
    const ka = generatePrivateKey(rng);
    const kb = generatePrivateKey(rng);
    const a = new Device({ privateKey: ka, crypto, rng, wallClock: () => 1.7e12 });
    const b = new Device({ privateKey: kb, crypto, rng, wallClock: () => 1.7e12 });
    const ea = { address: '192.0.2.1', port: 1 };
    const eb = { address: '192.0.2.2', port: 2 };
    a.addPeer({ publicKey: publicKeyFromPrivate(crypto, kb), endpoint: eb, allowedIps: [parsePrefix('10.0.0.2/32')!] });
    b.addPeer({ publicKey: publicKeyFromPrivate(crypto, ka), endpoint: ea, allowedIps: [parsePrefix('10.0.0.1/32')!] });
    const mk = (): Uint8Array => {
      const p = allocPacket(1420, WG_HEADROOM, WG_TAILROOM);
      p[0] = 0x45;
      p[2] = 1420 >> 8;
      p[3] = 1420 & 0xff;
      p.set([10, 0, 0, 1], 12);
      p.set([10, 0, 0, 2], 16);
      return p;
    };
    // Handshake first.
    a.handlePacket(0, mk());
    for (let i = 0; i < 4; i++) {
      for (let d = a.pollTransmit(); d; d = a.pollTransmit()) b.handleDatagram(0, d.data, ea);
      for (let d = b.pollTransmit(); d; d = b.pollTransmit()) a.handleDatagram(0, d.data, eb);
    }
    while (b.pollPacket());
    const pkt = mk();
    const template = pkt.slice();
    const rate = measure(() => {
      pkt.set(template); // encryption happened in place last time
      a.handlePacket(1, pkt);
      const d = a.pollTransmit()!;
      b.handleDatagram(1, d.data, ea);
      b.pollPacket();
    }, { minMs: 700 });
    const raw = rawAeadRate(crypto);
    rows.push({ name: `Device A->B, 1420 B, in place (${crypto.name})`, value: rate, unit: 'pkt/s', ref: `raw AEAD ${crypto.name}`, ratio: rate / raw });
    rows.push({ name: `  = throughput (${crypto.name})`, value: (rate * 1420 * 8) / 1e6, unit: 'Mbit/s' });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) for (const r of await benchDevice()) console.log(r);
