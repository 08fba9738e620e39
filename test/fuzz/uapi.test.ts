/**
 * Fuzz target: the UAPI text protocol (wireguard.com/xplatform) — `set=1` bodies of
 * valid, invalid and hostile lines, and arbitrary bytes into a connection.
 * Invariants:
 * - parse and apply fail only with a UapiError (an `errno=N` answer wireguard-go gives);
 * - a set that fails leaves the device exactly as it was (`get=1` unchanged: the module
 *   promises to validate in full before applying anything);
 * - a set that succeeds is visible in `get=1` (peers added, removed, allowed IPs);
 * - a connection fed anything answers only `errno=N` blocks or `get` listings, never throws.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { Device } from '../../src/wireguard/device.js';
import { UapiConnection, UapiError, applyUapiSet, parseUapiSet, uapiGet, type UapiHost } from '../../src/wireguard/uapi.js';
import { getCryptoProvider } from '../../src/crypto/index.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../src/crypto/keys.js';
import { SeededRng } from '../../src/util/rng.js';
import { toHex } from '../../src/util/bytes.js';
import { budget, checkAsync, textCorpus } from './lib.js';

const crypto = getCryptoProvider('native');
const rng = new SeededRng(11);
const PEERS = Array.from({ length: 3 }, () => toHex(publicKeyFromPrivate(crypto, generatePrivateKey(rng))));
const PRIV = toHex(generatePrivateKey(rng));
const LOW_ORDER = (JSON.parse(readFileSync(new URL('../vectors/x25519.json', import.meta.url), 'utf8')).lowOrder.points as string[]).slice(0, 3);

function host(): UapiHost {
  const device = new Device({ privateKey: generatePrivateKey(new SeededRng(12)), crypto, rng: new SeededRng(13), wallClock: () => 1_700_000_000_000 });
  let port = 51820;
  let mark = 0;
  return { device, listenPort: () => port, setListenPort: (p) => void (port = p), fwmark: () => mark, setFwmark: (m) => void (mark = m) };
}

const key = fc.oneof(fc.constantFrom(...PEERS, PRIV, '0'.repeat(64), ...LOW_ORDER), fc.constantFrom('zz'.repeat(32), 'ab', 'AB'.repeat(32), ''), fc.uint8Array({ minLength: 31, maxLength: 33 }).map((b) => Buffer.from(b).toString('hex')));
const num = fc.oneof(fc.constantFrom('0', '1', '25', '65535', '65536', '-1', '4294967295', '4294967296', '99999999999999999999', '0x10', ' 1', '1 ', '01', ''), fc.nat().map(String));
const endpoint = fc.oneof(fc.constantFrom('1.2.3.4:51820', '[fd00::1]:1', '[fe80::1%eth0]:5', '1.2.3.4:0', '1.2.3.4:65536', 'host:1', '[1.2.3.4]:1', ':1', '1.2.3.4', '[::]:65535'), fc.string({ maxLength: 20 }));
const prefix = fc.oneof(fc.constantFrom('10.0.0.0/8', '0.0.0.0/0', '::/0', 'fd00::/64', '10.0.0.1/32', '10.0.0.0/33', '10.0.0.1', '-10.0.0.0/8', '--10.0.0.0/8', 'fd00::/129', '1.2.3.4/-1', '/8'), fc.string({ maxLength: 20 }));
const line: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: key.map((v) => `public_key=${v}`) },
  { weight: 1, arbitrary: key.map((v) => `private_key=${v}`) },
  { weight: 1, arbitrary: key.map((v) => `preshared_key=${v}`) },
  { weight: 1, arbitrary: num.map((v) => `listen_port=${v}`) },
  { weight: 1, arbitrary: num.map((v) => `fwmark=${v}`) },
  { weight: 1, arbitrary: num.map((v) => `persistent_keepalive_interval=${v}`) },
  { weight: 2, arbitrary: endpoint.map((v) => `endpoint=${v}`) },
  { weight: 3, arbitrary: prefix.map((v) => `allowed_ip=${v}`) },
  { weight: 1, arbitrary: fc.constantFrom('update_only', 'remove', 'replace_allowed_ips', 'replace_peers', 'protocol_version').chain((k) => fc.constantFrom('true', 'false', '1', '2', '').map((v) => `${k}=${v}`)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }).filter((s) => !s.includes('\n')) },
);
const body = fc.array(line, { minLength: 0, maxLength: 12 }).map((ls) => ls.map((l) => l + '\n').join(''));

/** set: 0, or the errno of the UapiError that refused it. Anything else thrown breaks the invariant. */
async function set(h: UapiHost, text: string): Promise<number> {
  try {
    await applyUapiSet(h, parseUapiSet(text));
    return 0;
  } catch (err) {
    if (err instanceof UapiError) return err.errno;
    throw new Error(`set threw ${(err as Error).name}: ${(err as Error).message} (an answer wireguard-go would give is a UapiError)\n${text}`);
  }
}

const CORPUS = textCorpus('uapi');

async function setsKeepInvariants(bodies: string[]): Promise<void> {
  const h = host();
  for (const text of bodies) {
    const before = uapiGet(h);
    const errno = await set(h, text);
    const after = uapiGet(h);
    if (errno !== 0) {
      assert.equal(after, before, `errno=${errno}: the failed set changed the device\n--- set ---\n${text}`);
      continue;
    }
    // Success: the last section of each peer key decides whether it is listed.
    const op = parseUapiSet(text);
    const ours = h.device.publicKey ? toHex(h.device.publicKey) : '';
    for (const p of op.peers) {
      const k = toHex(p.publicKey);
      if (k === ours) continue;
      if (p.remove) assert.doesNotMatch(after, new RegExp(`public_key=${k}`), `removed peer ${k} still listed`);
      else if (!p.updateOnly || before.includes(`public_key=${k}`)) assert.match(after, new RegExp(`public_key=${k}`), `peer ${k} not listed after a successful set\n${text}`);
    }
  }
}

describe('fuzz: the UAPI text protocol', () => {
  test('corpus sets', async () => {
    await setsKeepInvariants(CORPUS.map((c) => c.text));
  });

  test('sets: UapiError only, atomic on failure, visible on success', async () => {
    await checkAsync(
      fc.asyncProperty(fc.array(body, { minLength: 1, maxLength: 5 }), (bodies) => setsKeepInvariants(bodies)),
      budget('uapi', 20000),
    );
  });

  test('a connection fed any bytes in any chunks answers only errno blocks or listings', async () => {
    const piece = fc.oneof(fc.constantFrom('set=1\n', 'get=1\n', '\n', '\n\n', 'get=1\n\n', 'set=1\n\n'), body, fc.string({ maxLength: 10 }));
    await checkAsync(
      fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 4 }), async (pieces, cuts) => {
        const h = host();
        let out = '';
        let ended = false;
        const c = new UapiConnection(h, (s) => void (out += s), () => void (ended = true), () => {}, 4096);
        const input = pieces.join('');
        for (let at = 0, i = 0; at < input.length; i++) {
          const n = cuts[i % cuts.length]!;
          assert.doesNotThrow(() => c.feed(input.slice(at, at + n)));
          at += n;
        }
        for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
        // Every answer block ends in errno=N and a blank line; a get lists key=value lines before it.
        const blocks = out.split('\n\n').filter((b, i, all) => i < all.length - 1 || b !== '');
        for (const b of blocks) {
          const lines = b.split('\n');
          assert.match(lines[lines.length - 1]!, /^errno=-?\d+$/, `answer block ends in errno: ${JSON.stringify(b)}`);
          for (const l of lines.slice(0, -1)) assert.match(l, /^[a-z_]+=[^\n]*$/, `listing line ${JSON.stringify(l)}`);
        }
        assert.ok(out === '' || out.endsWith('\n\n'), 'answers end with a blank line');
        void ended;
      }),
      budget('uapi-stream', 5000),
    );
  });
});
