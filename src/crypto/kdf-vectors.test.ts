/** The WireGuard KDF against wireguard-go's published known answers (test/vectors/wireguard-go-kdf.json). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { kdf1, kdf2, kdf3 } from './hash.js';

const file = JSON.parse(readFileSync(new URL('../../test/vectors/wireguard-go-kdf.json', import.meta.url), 'utf8')) as {
  vectors: { key: string; input: string; t0: string; t1: string; t2: string }[];
};
const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
const str = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('KDF1, KDF2, KDF3 give wireguard-go\'s known answers (including the empty key and input)', () => {
  assert.equal(file.vectors.length, 3);
  for (const v of file.vectors) {
    const [a, b, c] = kdf3(hex(v.key), hex(v.input));
    assert.deepEqual([str(a), str(b), str(c)], [v.t0, v.t1, v.t2]);
    const [d, e] = kdf2(hex(v.key), hex(v.input));
    assert.deepEqual([str(d), str(e)], [v.t0, v.t1]);
    assert.equal(str(kdf1(hex(v.key), hex(v.input))), v.t0);
  }
});
