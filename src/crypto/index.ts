/** Picks a crypto backend: native (libsodium) when it loads, else portable. */
import { WgnetError } from '../util/errors.js';
import type { CryptoProvider } from './provider.js';
import { createNativeProvider } from './native.js';
import { createPortableProvider } from './portable.js';

export type { CryptoProvider } from './provider.js';
export * from './hash.js';

let native: CryptoProvider | undefined | null = null;
let portable: CryptoProvider | undefined;

export function getCryptoProvider(which: 'native' | 'portable' | 'auto' = 'auto'): CryptoProvider {
  if (which !== 'portable') {
    if (native === null) native = createNativeProvider();
    if (native) return native;
    if (which === 'native') {
      throw new WgnetError('ERR_WGNET_UNSUPPORTED', 'the native crypto backend (sodium-native) could not be loaded; use crypto: "portable"');
    }
  }
  return (portable ??= createPortableProvider());
}
