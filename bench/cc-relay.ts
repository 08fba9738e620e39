/**
 * The outer link of bench/tcp-cc.ts: a UDP relay between WireGuard peers that loses, holds
 * back (reorders) and delays datagrams, in a process of its own so that its CPU is not
 * taken from wgnet's event loop (the kernel references do not share wgnet's loop either).
 *
 * Unlike test/harness/lossy-relay.ts it serves several clients at once, each through an
 * upstream socket of its own (as a NAT would), so wgnet and a kernel WireGuard client can
 * share the relay, its delay and the bottleneck behind it. Every datagram, either way, is
 * dropped with probability `loss`; of the rest, a share `reorder` is held back `holdMs`
 * longer than the others; every datagram waits `delayMs` (one-way delay). Delays are FIFO
 * lines with one timer each, not a timer per datagram.
 *
 *   node --import tsx bench/cc-relay.ts TARGET_HOST TARGET_PORT
 *   stdout: "ready PORT"; stdin, one JSON object per line:
 *     {"loss":0.03,"reorder":0.25,"holdMs":5,"delayMs":0,"seed":7}  -> "ok"   (resets the counters)
 *     "stats"                                                        -> {"relayed":..,"dropped":..,"held":..}
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { SeededRng } from '../src/util/rng.js';

export interface LinkShape {
  loss: number;
  reorder: number;
  holdMs: number;
  delayMs: number;
  seed?: number;
}

interface Pending {
  due: number;
  msg: Buffer;
  sock: dgram.Socket;
  port: number;
  address: string;
}

/** Datagrams that all wait the same time: a FIFO drained by one timer. */
class DelayLine {
  private q: Pending[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  push(p: Pending): void {
    this.q.push(p);
    if (!this.timer) this.arm();
  }

  private arm(): void {
    const first = this.q[this.head];
    if (!first) {
      this.q = [];
      this.head = 0;
      this.timer = undefined;
      return;
    }
    this.timer = setTimeout(() => this.fire(), Math.max(0, first.due - performance.now()));
  }

  private fire(): void {
    // Node's timers have a 1 ms granularity: send what is due within half of it.
    const now = performance.now() + 0.5;
    while (this.head < this.q.length && this.q[this.head]!.due <= now) {
      const p = this.q[this.head++]!;
      p.sock.send(p.msg, p.port, p.address);
    }
    if (this.head > 4096 && this.head * 2 > this.q.length) {
      this.q = this.q.slice(this.head);
      this.head = 0;
    }
    this.arm();
  }
}

const [host, portText] = process.argv.slice(2);
if (!host || !portText) {
  console.error('usage: cc-relay.ts TARGET_HOST TARGET_PORT');
  process.exit(2);
}
const target = { address: host, port: Number(portText) };
let shape: LinkShape = { loss: 0, reorder: 0, holdMs: 5, delayMs: 0 };
let rng = new SeededRng(1);
const stats = { relayed: 0, dropped: 0, held: 0 };
const plain = new DelayLine();
const heldLine = new DelayLine();
const BUF = 4 << 20;

function forward(msg: Buffer, sock: dgram.Socket, port: number, address: string): void {
  if (shape.loss > 0 && rng.nextFloat() < shape.loss) {
    stats.dropped++;
    return;
  }
  stats.relayed++;
  const held = shape.reorder > 0 && rng.nextFloat() < shape.reorder;
  if (held) stats.held++;
  const wait = shape.delayMs + (held ? shape.holdMs : 0);
  if (wait <= 0) sock.send(msg, port, address);
  else (held ? heldLine : plain).push({ due: performance.now() + wait, msg, sock, port, address });
}

const listen = dgram.createSocket({ type: 'udp4', recvBufferSize: BUF, sendBufferSize: BUF });
const clients = new Map<string, dgram.Socket>();

listen.on('message', (msg, r) => {
  const key = `${r.address}:${r.port}`;
  let up = clients.get(key);
  if (!up) {
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: BUF, sendBufferSize: BUF });
    sock.on('message', (m, from) => {
      if (from.address === target.address && from.port === target.port) forward(m, listen, r.port, r.address);
    });
    sock.bind(0);
    clients.set(key, sock);
    up = sock;
  }
  forward(msg, up, target.port, target.address);
});

listen.bind(0, '0.0.0.0', () => {
  process.stdout.write(`ready ${listen.address().port}\n`);
});

createInterface({ input: process.stdin }).on('line', (line) => {
  const text = line.trim();
  if (!text) return;
  if (text === 'stats') {
    process.stdout.write(JSON.stringify(stats) + '\n');
    return;
  }
  const next = JSON.parse(text) as LinkShape;
  shape = { ...shape, ...next };
  rng = new SeededRng(next.seed ?? 1);
  stats.relayed = stats.dropped = stats.held = 0;
  process.stdout.write('ok\n');
});
// The bench closes stdin when it is done (or dies): the relay goes with it.
process.stdin.on('end', () => process.exit(0));
