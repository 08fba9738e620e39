/**
 * `wgnet demo`: two WireGuard tunnels in this process, talking over loopback UDP
 * with fresh keys. One serves HTTP from its own TCP/IP stack, the other fetches
 * through it, pings it and moves a few MB. Needs no server and no root.
 */
import http from 'node:http';
import { Tunnel } from '../api/tunnel.js';
import { getCryptoProvider } from '../crypto/index.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../crypto/keys.js';
import { systemRng, monotonicNow } from '../io/clock.js';
import { toBase64 } from '../util/bytes.js';
import { formatShow } from './show.js';

export interface DemoOptions {
  megabytes?: number;
  crypto?: 'native' | 'portable' | 'auto';
  out?: (line: string) => void;
}

export interface DemoReport {
  handshakeMs: number;
  body: string;
  pingMs: number[];
  megabytes: number;
  mbitPerSec: number;
}

export async function runDemo(opts: DemoOptions = {}): Promise<DemoReport> {
  const out = opts.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const crypto = getCryptoProvider(opts.crypto ?? 'auto');
  const keyA = generatePrivateKey(systemRng);
  const keyB = generatePrivateKey(systemRng);
  const pubA = toBase64(publicKeyFromPrivate(crypto, keyA));
  const pubB = toBase64(publicKeyFromPrivate(crypto, keyB));
  const mb = opts.megabytes ?? 16;

  out(`wgnet demo: two tunnels over loopback UDP, ${crypto.name} crypto`);
  const a = await Tunnel.create(
    `[Interface]\nPrivateKey = ${toBase64(keyA)}\nAddress = 10.99.0.1/24, fd99::1/64\n\n[Peer]\nPublicKey = ${pubB}\nAllowedIPs = 10.99.0.2/32, fd99::2/128\n`,
    { crypto: crypto.name },
  );
  const b = await Tunnel.create(
    `[Interface]\nPrivateKey = ${toBase64(keyB)}\nAddress = 10.99.0.2/24, fd99::2/64\n\n[Peer]\nPublicKey = ${pubA}\nAllowedIPs = 10.99.0.1/32, fd99::1/128\nEndpoint = 127.0.0.1:${a.listenPort}\nPersistentKeepalive = 25\n`,
    { crypto: crypto.name },
  );
  // Tell A where B is too (as `wg set` would), so either side can start the handshake.
  await a.ipcSet(`public_key=${Buffer.from(pubB, 'base64').toString('hex')}\nendpoint=127.0.0.1:${b.listenPort}\n`);
  try {
    out(`  tunnel A  ${a.addresses.join(', ')}  udp/${a.listenPort}  ${a.publicKey}`);
    out(`  tunnel B  ${b.addresses.join(', ')}  udp/${b.listenPort}  ${b.publicKey}`);

    const payload = Buffer.alloc(1024 * 1024, 'wgnet ');
    const server = http.createServer((req, res) => {
      if (req.url === '/bulk') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(mb * payload.length) });
        let left = mb;
        const pump = (): void => {
          while (left > 0) {
            left--;
            if (!res.write(payload)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      res.end(`hello from tunnel B's own TCP/IP stack (you are ${req.socket.remoteAddress})\n`);
    });
    const listener = b.createServer((s) => server.emit('connection', s));
    await new Promise<void>((r) => listener.listen(80, () => r()));

    const t0 = monotonicNow();
    const handshake = new Promise<number>((r) => b.once('handshake', () => r(monotonicNow() - t0)));
    const res = await a.fetch('http://10.99.0.2/');
    const body = await res.text();
    const handshakeMs = await Promise.race([handshake, Promise.resolve(monotonicNow() - t0)]);
    out(`\nGET http://10.99.0.2/ -> ${res.status}: ${body.trim()}`);
    out(`  handshake + first response in ${(monotonicNow() - t0).toFixed(1)} ms`);

    const pingMs: number[] = [];
    for (let i = 0; i < 4; i++) pingMs.push((await a.ping('10.99.0.2')).time);
    const ping6 = await a.ping('fd99::2');
    out(`ping 10.99.0.2: ${pingMs.map((x) => x.toFixed(2)).join(' / ')} ms; fd99::2: ${ping6.time.toFixed(2)} ms`);

    const t1 = monotonicNow();
    const bulk = await a.fetch('http://10.99.0.2/bulk');
    let n = 0;
    for await (const chunk of bulk.body as unknown as AsyncIterable<Uint8Array>) n += chunk.length;
    const secs = (monotonicNow() - t1) / 1000;
    const mbitPerSec = (n * 8) / 1e6 / secs;
    out(`download ${(n / 1048576).toFixed(0)} MB through the tunnel: ${secs.toFixed(2)} s, ${mbitPerSec.toFixed(0)} Mbit/s`);
    if (n !== mb * payload.length) throw new Error(`demo: received ${n} bytes, expected ${mb * payload.length}`);

    out('\n' + formatShow('demo-a', a));
    listener.close();
    return { handshakeMs, body, pingMs, megabytes: n / 1048576, mbitPerSec };
  } finally {
    await a.close();
    await b.close();
  }
}
