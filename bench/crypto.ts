/** Raw AEAD and X25519 rates per backend: the reference the data path is measured against. */
import { createNativeProvider } from '../src/crypto/native.js';
import { createPortableProvider } from '../src/crypto/portable.js';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { measure, type BenchRow } from './common.js';

export function providers(): CryptoProvider[] {
  const n = createNativeProvider();
  return n ? [n, createPortableProvider()] : [createPortableProvider()];
}

/** Seal + open of one 1420-byte packet, as ops/s. */
export function rawAeadRate(p: CryptoProvider, minMs = 700): number {
  const key = new Uint8Array(32).fill(7);
  const pt = new Uint8Array(1420);
  const ct = new Uint8Array(1436);
  let c = 0;
  return measure(() => {
    p.aeadSeal(ct, key, c, pt, null);
    p.aeadOpen(pt, key, c++, ct, null);
  }, { minMs });
}

export async function benchCrypto(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const p of providers()) {
    const r = rawAeadRate(p);
    rows.push({ name: `ChaCha20-Poly1305 seal+open 1420 B (${p.name})`, value: r, unit: 'pkt/s' });
    const k = new Uint8Array(32).fill(9);
    const out = new Uint8Array(32);
    const pub = new Uint8Array(32);
    p.x25519Base(pub, k);
    rows.push({ name: `X25519 (${p.name})`, value: measure(() => p.x25519(out, k, pub), { minMs: 300 }), unit: 'op/s' });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) for (const r of await benchCrypto()) console.log(r);
