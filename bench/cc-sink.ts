/**
 * The kernel-TCP sink of bench/tcp-cc.ts, run inside the wireguard-go namespace:
 *
 *   node --import tsx bench/cc-sink.ts HOST PORT      (prints "ready")
 *
 * Reads until EOF. Every 250 ms it writes back "<ms since the first byte> <bytes>",
 * and at EOF "end <ms of the last byte> <bytes>", then closes: the sender learns the
 * receiver's goodput (what iperf3 reports as sum_received), and how much arrived by a
 * given time (for two flows sharing a bottleneck over the same window).
 * (The download source is Python in tcp-cc.ts: Node cannot set TCP_CONGESTION on a socket.)
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [host, sinkPort] = process.argv.slice(2);
if (!host || !sinkPort) {
  console.error('usage: cc-sink.ts HOST PORT');
  process.exit(2);
}

// allowHalfOpen: the report goes out after the sender's FIN.
const sink = net.createServer({ allowHalfOpen: true }, (c) => {
  let n = 0;
  let first = 0;
  let last = 0;
  let tick: NodeJS.Timeout | undefined;
  c.on('data', (d: Buffer) => {
    last = performance.now();
    if (n === 0) {
      first = last;
      tick = setInterval(() => c.write(`${(performance.now() - first).toFixed(1)} ${n}\n`), 250);
    }
    n += d.length;
  });
  c.on('end', () => {
    clearInterval(tick);
    c.end(`end ${(last - first).toFixed(1)} ${n}\n`);
  });
  c.on('error', () => clearInterval(tick));
  c.on('close', () => clearInterval(tick));
});

sink.listen(Number(sinkPort), host, () => console.log('ready'));
