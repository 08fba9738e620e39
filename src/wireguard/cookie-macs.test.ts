/**
 * mac1, mac2 and cookie replies (whitepaper §5.4.4, §5.4.7) between a
 * CookieGenerator (initiator) and a CookieChecker (responder). Time is an
 * argument: the 120 s cookie lifetime is restated here, not imported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieChecker, CookieGenerator } from './cookie.js';
import { getCryptoProvider } from '../crypto/index.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../crypto/keys.js';
import { SeededRng } from '../util/rng.js';

const crypto = getCryptoProvider('auto');
const MAC1 = 116; // initiation: mac1 at 116, mac2 at 132, 148 bytes
const MAC2 = 132;
const COOKIE_LIFETIME_MS = 120_000;
const SRC = Uint8Array.from([192, 0, 2, 1, 0xca, 0x6c]); // the sender's IP and port, as the device encodes them
const OTHER_SRC = Uint8Array.from([192, 0, 2, 2, 0xca, 0x6c]);

function setup(seed = 1): { checker: CookieChecker; gen: CookieGenerator; msg: () => Uint8Array } {
  const rng = new SeededRng(seed);
  const responderPublic = publicKeyFromPrivate(crypto, generatePrivateKey(rng));
  const checker = new CookieChecker(crypto, rng);
  checker.setPublicKey(responderPublic);
  const gen = new CookieGenerator(crypto, responderPublic);
  let n = 0;
  const msg = (): Uint8Array => {
    const m = new Uint8Array(148);
    m[0] = 1;
    m.fill(++n, 4, MAC1);
    return m;
  };
  return { checker, gen, msg };
}

test('mac1 covers every byte before it and is keyed with the responder public key', () => {
  const { checker, gen, msg } = setup();
  const m = msg();
  gen.addMacs(0, m, MAC1);
  assert.equal(checker.checkMac1(m, MAC1), true);
  for (const i of [0, 4, 50, MAC1 - 1, MAC1]) {
    const bad = m.slice();
    bad[i]! ^= 1;
    assert.equal(checker.checkMac1(bad, MAC1), false, `flipped byte ${i}`);
  }
  const other = setup(2).checker; // another responder key
  assert.equal(other.checkMac1(m, MAC1), false);
  const keyless = new CookieChecker(crypto, new SeededRng(3));
  assert.equal(keyless.checkMac1(m, MAC1), false);
});

test('without a cookie mac2 is zero and never accepted', () => {
  const { checker, gen, msg } = setup();
  const m = msg();
  gen.addMacs(0, m, MAC1);
  assert.deepEqual(m.subarray(MAC2, MAC2 + 16), new Uint8Array(16));
  assert.equal(checker.checkMac2(0, m, MAC2, SRC), false);
});

test('a cookie reply round trip: mac2 then verifies for that source only', () => {
  const { checker, gen, msg } = setup();
  const first = msg();
  gen.addMacs(1000, first, MAC1);
  const reply = checker.createReply(1000, first, MAC1, 0x01020304, SRC);
  assert.equal(reply.length, 64);
  assert.equal(reply[0], 3);
  assert.equal(gen.consumeReply(1000, reply), true);
  const next = msg();
  gen.addMacs(2000, next, MAC1);
  assert.notDeepEqual(next.subarray(MAC2, MAC2 + 16), new Uint8Array(16));
  assert.equal(checker.checkMac2(2000, next, MAC2, SRC), true);
  assert.equal(checker.checkMac2(2000, next, MAC2, OTHER_SRC), false, 'the cookie is bound to the source address');
  const tampered = next.slice();
  tampered[10]! ^= 1;
  assert.equal(checker.checkMac2(2000, tampered, MAC2, SRC), false);
});

test('a tampered cookie reply, or one answering another message (mac1 is its AD), is refused', () => {
  const { checker, gen, msg } = setup();
  const m = msg();
  gen.addMacs(0, m, MAC1);
  const reply = checker.createReply(0, m, MAC1, 7, SRC);
  for (const i of [8, 31, 32, 40, 63]) {
    const bad = reply.slice();
    bad[i]! ^= 0x80;
    assert.equal(gen.consumeReply(0, bad), false, `flipped byte ${i}`);
  }
  // The generator has since sent another message: a reply to the old one no longer fits.
  gen.addMacs(10, msg(), MAC1);
  assert.equal(gen.consumeReply(10, reply), false);
  // A generator that never sent anything takes no reply.
  const fresh = setup().gen;
  assert.equal(fresh.consumeReply(0, reply), false);
});

test('cookies expire: the checker rotates its secret and the generator stops using an old cookie after 120 s', () => {
  const { checker, gen, msg } = setup();
  const first = msg();
  gen.addMacs(0, first, MAC1);
  assert.equal(gen.consumeReply(0, checker.createReply(0, first, MAC1, 1, SRC)), true);
  const justBefore = msg();
  gen.addMacs(COOKIE_LIFETIME_MS - 1, justBefore, MAC1);
  assert.equal(checker.checkMac2(COOKIE_LIFETIME_MS - 1, justBefore, MAC2, SRC), true);
  // The responder's secret rotates at 120 s: the same mac2 no longer verifies.
  assert.equal(checker.checkMac2(COOKIE_LIFETIME_MS + 1, justBefore, MAC2, SRC), false);
  // And the initiator sends a zero mac2 once its cookie is 120 s old.
  const after = msg();
  gen.addMacs(COOKIE_LIFETIME_MS, after, MAC1);
  assert.deepEqual(after.subarray(MAC2, MAC2 + 16), new Uint8Array(16));
});
