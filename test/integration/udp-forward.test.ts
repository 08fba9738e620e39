/**
 * `wgnet forward --udp` flows, in process: -L (a local UDP port carried through
 * the tunnel) and -R (a tunnel UDP port carried to a local service), with the
 * idle timeout.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { tunnelPair, type TunnelPair } from '../harness/tunnel-pair.js';
import { forwardUdp, type UdpForwardCounters } from '../../src/cli/udp-forward.js';
import { tunnelDialer } from '../../src/cli/dialer.js';

function ask(sock: { send(m: Buffer, port: number, host: string): void; once(ev: 'message', f: (m: Buffer) => void): unknown }, port: number, host: string, text: string, ms = 2000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    sock.once('message', (m: Buffer) => {
      clearTimeout(t);
      resolve(m.toString());
    });
    sock.send(Buffer.from(text), port, host);
  });
}

const zero = (): UdpForwardCounters => ({ flows: 0, up: 0, down: 0, expired: 0, limited: 0 });

describe('forward --udp', () => {
  let p: TunnelPair;
  before(async () => {
    p = await tunnelPair();
    const echo = p.b.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('b:'), m]), r.port, r.address));
    echo.bind(7);
    await p.a.ping('10.66.0.2');
  });
  after(async () => {
    await p.close();
  });

  test('-L: two local clients get their own flows through the tunnel; idle flows expire', async () => {
    const listener = dgram.createSocket('udp4');
    await new Promise<void>((r) => listener.bind(0, '127.0.0.1', () => r()));
    const counters = zero();
    const fwd = forwardUdp({ listener, outbound: () => tunnelDialer(p.a).udp!(4), host: '10.66.0.2', port: 7, idleMs: 300, counters });
    const lp = listener.address().port;
    const c1 = dgram.createSocket('udp4');
    const c2 = dgram.createSocket('udp4');
    assert.equal(await ask(c1, lp, '127.0.0.1', 'one'), 'b:one');
    assert.equal(await ask(c2, lp, '127.0.0.1', 'two'), 'b:two');
    assert.equal(await ask(c1, lp, '127.0.0.1', 'three'), 'b:three');
    assert.equal(counters.flows, 2);
    assert.equal(fwd.active, 2);
    assert.deepEqual([counters.up, counters.down], [3, 3]);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(fwd.active, 0, 'idle flows were not expired');
    assert.equal(counters.expired, 2);
    // A new datagram after expiry opens a new flow.
    assert.equal(await ask(c1, lp, '127.0.0.1', 'again'), 'b:again');
    assert.equal(counters.flows, 3);
    fwd.close();
    c1.close();
    c2.close();
  });

  test('-R: a UDP port on the tunnel address is carried to a local service', async () => {
    const local = dgram.createSocket('udp4');
    local.on('message', (m, r) => local.send(Buffer.concat([Buffer.from('local:'), m]), r.port, r.address));
    await new Promise<void>((r) => local.bind(0, '127.0.0.1', () => r()));
    const listener = p.b.createSocket('udp4');
    listener.bind(5353);
    const counters = zero();
    const fwd = forwardUdp({ listener, outbound: () => dgram.createSocket('udp4'), host: '127.0.0.1', port: local.address().port, idleMs: 60_000, counters });
    const client = p.a.createSocket('udp4');
    assert.equal(await ask(client, 5353, '10.66.0.2', 'ping'), 'local:ping');
    assert.equal(await ask(client, 5353, '10.66.0.2', 'pong'), 'local:pong');
    assert.deepEqual([counters.flows, counters.up, counters.down], [1, 2, 2]);
    fwd.close();
    client.close();
    local.close();
  });
});
