/**
 * Run by test/runtime/bun-deno-interop.test.ts under Bun, Deno (and Node): one wgnet tunnel
 * (config in WGNET_CONF) talking to the real wireguard-go in a namespace: fetch, connect,
 * createServer (the test curls it from the namespace once READY is printed) and ping.
 * Prints one JSON line; never calls process.exit (close() must let the process end).
 */
import { createHash } from 'node:crypto';
import { Tunnel } from '../../../src/index.js';

const server = process.env.WGNET_SERVER!; // wireguard-go's tunnel address
const result: Record<string, unknown> = { runtime: 'Bun' in globalThis ? 'bun' : 'Deno' in globalThis ? 'deno' : 'node' };
const t = await Tunnel.create(process.env.WGNET_CONF!);
try {
  await t.ready({ timeout: 10_000 });
  const r = await t.fetch(`http://${server}:8080/blob`);
  result.fetch = { status: r.status, sha256: createHash('sha256').update(new Uint8Array(await r.arrayBuffer())).digest('hex') };
  // connect: the namespace's echo server sends back the sha256 of what it got.
  const s = t.connect(9000, server);
  await new Promise<void>((res, rej) => s.once('connect', () => res()).once('error', rej));
  const data = Buffer.alloc(512 * 1024, 0x5a);
  s.end(data);
  let got = '';
  for await (const d of s) got += d;
  result.connect = got.trim().split(' ')[0] === createHash('sha256').update(data).digest('hex');
  result.ping = (await t.ping(server, { timeout: 5000 })).address;
  // createServer: the test's curl in the namespace fetches this, then we close.
  const hits: string[] = [];
  const served = new Promise<void>((res) => {
    const ln = t.createServer((sock) => {
      hits.push(sock.remoteAddress ?? '');
      sock.end('HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello');
      res();
    });
    ln.listen(8081);
  });
  process.stdout.write('READY\n');
  await served;
  result.serverSaw = hits;
} catch (err) {
  result.error = String(err);
} finally {
  await t.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
