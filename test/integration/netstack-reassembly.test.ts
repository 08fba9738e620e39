/**
 * Fragment floods against the Interface: incomplete datagrams that never finish
 * must not hold more than the reassembly cap (4 MiB by default, Linux's
 * ipfrag_high_thresh), the oldest give way and are counted, a real fragmented
 * datagram from a peer still arrives during the flood, and the timeout frees
 * what is left (RFC 791 §3.2, RFC 8200 §4.5).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Interface } from '../../src/netstack/interface.js';
import { SeededRng } from '../../src/util/rng.js';
import { checksum } from '../../src/util/checksum.js';
import { mustParseIp } from '../../src/util/ip.js';

const ATTACKER = mustParseIp('10.0.0.66');
const US = mustParseIp('10.0.0.1');
const US6 = mustParseIp('fd00::1');
const ATTACKER6 = mustParseIp('fd00::66');

function pair(): { a: Interface; b: Interface } {
  return {
    a: new Interface({ addresses: ['10.0.0.1/24', 'fd00::1/64'], rng: new SeededRng(31) }),
    b: new Interface({ addresses: ['10.0.0.2/24', 'fd00::2/64'], rng: new SeededRng(32) }),
  };
}

/** A first fragment (offset 0, more fragments) whose tail never comes: RFC 791 §3.1 header. */
function floodV4(id: number, size: number): Uint8Array {
  const p = new Uint8Array(20 + size);
  p[0] = 0x45;
  p[2] = p.length >> 8; p[3] = p.length & 0xff;
  p[4] = id >> 8; p[5] = id & 0xff;
  p[6] = 0x20; // MF
  p[8] = 64; p[9] = 17;
  p.set(ATTACKER, 12); p.set(US, 16);
  const c = checksum(p, 0, 20);
  p[10] = c >> 8; p[11] = c & 0xff;
  return p;
}

/** The same for IPv6: fixed header + Fragment header (RFC 8200 §4.5), M flag set. */
function floodV6(id: number, size: number): Uint8Array {
  const p = new Uint8Array(48 + size);
  p[0] = 0x60;
  const plen = 8 + size;
  p[4] = plen >> 8; p[5] = plen & 0xff;
  p[6] = 44; p[7] = 64;
  p.set(ATTACKER6, 8); p.set(US6, 24);
  p[40] = 17;
  p[43] = 1; // offset 0, M
  p[44] = id >>> 24; p[45] = (id >>> 16) & 0xff; p[46] = (id >>> 8) & 0xff; p[47] = id & 0xff;
  return p;
}

const CAP = 4 * 1024 * 1024;

for (const family of [4, 6] as const) {
  test(`IPv${family}: a flood of incomplete datagrams is capped, evictions are counted, and a real datagram still arrives`, () => {
    const { a, b } = pair();
    const server = a.udpBind({ family, port: 9000 });
    const client = b.udpBind({ family });
    const FRAG = 1024;
    const FLOOD = 6000; // at least this many, ~6 MiB of payload alone, well past the cap
    let now = 0;
    let id = 1;
    const flood = (n: number): void => {
      for (let k = 0; k < n; k++, id++) a.handleInput(now, family === 4 ? floodV4(id & 0xffff, FRAG) : floodV6(id, FRAG));
    };
    flood(FLOOD / 2);
    // Our peer sends real datagrams the MTU splits in three; the flood keeps coming between their fragments.
    for (let round = 0; round < 10; round++) {
      const data = new Uint8Array(3500).fill(round + 1);
      client.send(now, data, family === 4 ? US : US6, 9000);
      for (let p = b.pollTransmit(now); p; p = b.pollTransmit(now)) {
        flood(FLOOD / 20);
        a.handleInput(now, p.slice());
      }
      const got = server.recv();
      assert.ok(got, `round ${round}: datagram arrived during the flood`);
      assert.deepEqual(got.data, data);
      now += 10;
    }
    const sent = id - 1;
    const evicted = a.stats['ip.reassembly.evicted'] ?? 0;
    // Each flood datagram is charged at least its 1024 payload bytes, so at most CAP/1024 fit.
    assert.ok(sent > FLOOD, `${sent} flood datagrams`);
    assert.ok(evicted >= sent - CAP / FRAG, `${evicted} evicted of ${sent}`);
    assert.ok(evicted < sent, 'the newest are still held');
    // The timeout frees the rest: every flood datagram was either evicted or timed out.
    for (let d = a.pollTimeout(); d && d.reason === 'ip reassembly'; d = a.pollTimeout()) {
      now = d.at;
      a.handleTimeout(now);
    }
    assert.ok(now >= (family === 4 ? 30_000 : 60_000), `freed at ${now} ms`);
    assert.equal(evicted + (a.stats['ip.reassembly.timeout'] ?? 0), sent, JSON.stringify(a.stats));
    assert.equal(a.pollTimeout(), undefined, 'nothing left to expire');
  });
}
