/**
 * The far side of benchmark (c), in its own process: a wgnet tunnel from the
 * config in WGNET_PEER_CONF serving `total` MB over HTTP on port 80 of its
 * tunnel address. Prints "ready <listenPort>" once listening.
 */
import http from 'node:http';
import { Tunnel } from '../src/index.js';

const total = Number(process.env.WGNET_PEER_MB ?? 64);
const t = await Tunnel.create(process.env.WGNET_PEER_CONF!);
const payload = Buffer.alloc(1024 * 1024, 1);
const server = http.createServer((_req, res) => {
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      left--;
      if (!res.write(payload)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
});
t.createServer((s) => server.emit('connection', s)).listen(80);
process.stdout.write(`ready ${t.listenPort}\n`);
process.stdin.resume();
process.stdin.on('end', () => void t.close().then(() => process.exit(0)));
