/**
 * Loads wgnet's optional N-API addons (native/*.c, built by `npm run build:native`).
 * Everything works without them except TUN mode; the UDP addon only makes the
 * outer socket faster. A missing addon is an error only where it is required.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WgnetError } from '../util/errors.js';

/** The package root: two levels up from src/io, three from dist/src/io. */
function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(d, 'package.json'))) return d;
    d = dirname(d);
  }
  return d;
}

const loaded = new Map<string, unknown>();

/** The addon `name` (e.g. 'wgnet_tun'), or a WgnetError saying why it is unavailable. */
export function loadAddon<T>(name: string, what: string): T {
  const hit = loaded.get(name);
  if (hit) return hit as T;
  if (process.platform !== 'linux') {
    throw new WgnetError('ERR_WGNET_UNSUPPORTED', `${what} needs Linux (this is ${process.platform})`);
  }
  const path = join(packageRoot(), 'native', 'build', 'Release', `${name}.node`);
  if (!existsSync(path)) {
    throw new WgnetError('ERR_WGNET_UNSUPPORTED', `${what} is not built (${path} is missing): run 'npm run build:native' (needs a C compiler)`);
  }
  try {
    const a = createRequire(import.meta.url)(path) as T;
    loaded.set(name, a);
    return a;
  } catch (err) {
    throw new WgnetError('ERR_WGNET_UNSUPPORTED', `${what} failed to load: ${(err as Error).message}`, { cause: err });
  }
}
