/**
 * Congestion control through a whole tunnel on a lossy path: wgnet uploads to a kernel
 * TCP sink behind the real wireguard-go (in a network namespace), with CUBIC, CUBIC paced
 * and BBR, in the same run. Loss: nftables drops that share of the outer UDP each way
 * (test/interop/harness.ts setUdpLoss). Reordering: a seeded relay (test/harness/lossy-
 * relay.ts) between wgnet and wireguard-go holds back a share of the datagrams for 5 ms;
 * it runs in this process, so those rows also pay its CPU.
 *
 * Needs root, wireguard-go and nft. Run: node --expose-gc --import tsx bench/tcp-cc.ts [ROUNDS]
 */
import { performance } from 'node:perf_hooks';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../src/index.js';
import { setLossBasedPacing } from '../src/netstack/tcp/congestion.js';
import { LossyRelay } from '../test/harness/lossy-relay.js';
import { interopUnavailable, startWgGo, genKeyPair, type WgGoPeer } from '../test/interop/harness.js';
import type { BenchRow } from './common.js';

const MB = 1024 * 1024;
const SERVERS = join(dirname(fileURLToPath(import.meta.url)), '../test/interop/servers.py');

type Cc = 'cubic' | 'cubic-paced' | 'bbr';

function waitLine(c: ReturnType<WgGoPeer['spawn']>, re: RegExp): Promise<void> {
  return new Promise((resolve) => {
    let out = '';
    const on = (d: Buffer): void => {
      out += d;
      if (re.test(out)) resolve();
    };
    c.stdout!.on('data', on);
    c.stderr!.on('data', on);
  });
}

/** wgnet -> kernel sink behind wireguard-go: `mb` MB, Mbit/s from the first write to the sink's digest. */
async function upload(cc: Cc, loss: number, reorder: number, mb: number): Promise<number> {
  setLossBasedPacing(cc === 'cubic-paced');
  const peer = await startWgGo();
  const me = genKeyPair();
  const n = peer.inner4.split('.')[2];
  const relay = reorder > 0 ? await LossyRelay.start({ target: { address: peer.outer4, port: peer.listenPort }, loss, reorder, delayMs: 5, seed: 7 }) : undefined;
  const endpoint = relay ? `127.0.0.1:${relay.port}` : `${peer.outer4}:${peer.listenPort}`;
  const t = await Tunnel.create(`[Interface]\nPrivateKey = ${me.privateKey}\nAddress = ${peer.peerInner4}/24\n\n[Peer]\nPublicKey = ${peer.publicKey}\nAllowedIPs = 10.77.${n}.0/24\nEndpoint = ${endpoint}\n`, {
    congestionControl: cc === 'bbr' ? 'bbr' : 'cubic',
  });
  const back = peer.outer4.replace(/\.2$/, '.1');
  peer.addPeer(t.publicKey, { endpoint: `${back}:${relay ? relay.port : t.listenPort}` });
  try {
    await t.ping(peer.inner4, { timeout: 5000 });
    if (!relay) peer.setUdpLoss(loss);
    const srv = peer.spawn('python3', ['-u', SERVERS, 'sink', peer.inner4, '9000']);
    await waitLine(srv, /ready/);
    const s = t.connect(9000, peer.inner4);
    await new Promise((r) => s.once('connect', r));
    const chunk = Buffer.alloc(MB, 3);
    const start = performance.now();
    for (let i = 0; i < mb; i++) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
    s.end();
    const answer = await new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
    if (!answer.trim().endsWith(` ${mb * MB}`)) throw new Error(`sink answered ${answer.trim()}`);
    return (mb * MB * 8) / 1e6 / ((performance.now() - start) / 1000);
  } finally {
    setLossBasedPacing(false);
    await t.close();
    relay?.close();
    peer.close();
  }
}

export async function benchTcpCc(rounds = 2): Promise<BenchRow[]> {
  const why = interopUnavailable();
  if (why) return [{ name: `skipped: ${why}`, value: 0, unit: '' }];
  const rows: BenchRow[] = [];
  const paths: { name: string; loss: number; reorder: number; mb: number }[] = [
    { name: 'no loss', loss: 0, reorder: 0, mb: 100 },
    { name: '1 % loss', loss: 0.01, reorder: 0, mb: 32 },
    { name: '3 % loss', loss: 0.03, reorder: 0, mb: 16 },
    { name: '3 % loss + 25 % reordered 5 ms (relay)', loss: 0.03, reorder: 0.25, mb: 16 },
  ];
  for (const p of paths) {
    for (const cc of ['cubic', 'cubic-paced', 'bbr'] as const) {
      const runs: number[] = [];
      for (let i = 0; i < rounds; i++) runs.push(await upload(cc, p.loss, p.reorder, p.mb));
      const lo = Math.min(...runs);
      const hi = Math.max(...runs);
      rows.push({ name: `wgnet ${cc} upload, ${p.name} (${runs.map((r) => r.toFixed(0)).join(', ')})`, value: (lo + hi) / 2, unit: 'Mbit/s' });
      console.log(rows[rows.length - 1]!.name, `${lo.toFixed(0)}-${hi.toFixed(0)} Mbit/s`);
    }
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) await benchTcpCc(Number(process.argv[2] ?? 2));
