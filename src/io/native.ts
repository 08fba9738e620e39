/**
 * Loads wgnet's optional N-API addons (native/*.c). Everything works without
 * them except TUN mode; the UDP addon only makes the outer socket faster. A
 * missing addon is an error only where it is required.
 *
 * Where an addon comes from, first that loads wins:
 *   1. prebuilds/PLATFORM-ARCH/NAME.napi.LIBC.node (LIBC glibc or musl): built by `npm pack`
 *      (scripts/prepack.mjs) and shipped in the package, so an install needs no
 *      compiler and no install script. Named as node-gyp-build/prebuildify name
 *      them; node-gyp-build itself is not used because it loads one addon per
 *      package and picks it by tags alone, and we have two.
 *   2. native/build/Release/NAME.node: `npm run build:native`, for a checkout or
 *      a platform without a prebuild (needs a C compiler, make and python).
 * A candidate that exists but fails to load (another libc, too old a glibc) is
 * skipped and its error kept for the message.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WgnetError, isWgnetErrorCode } from '../util/errors.js';

/** The package root: two levels up from src/io, three from dist/src/io. */
export function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(d, 'package.json'))) return d;
    d = dirname(d);
  }
  return d;
}

/**
 * Where `name` may be, in the order tried. Both libc builds are tried rather than
 * detecting the libc: an addon built for the other one fails to load (a missing
 * libc.musl-*.so.1, or glibc's versioned symbols) and is skipped; a musl system
 * with gcompat may even run the glibc one.
 */
export function addonCandidates(name: string): string[] {
  const root = packageRoot();
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  return [
    join(dir, `${name}.napi.glibc.node`),
    join(dir, `${name}.napi.musl.node`),
    join(dir, `${name}.napi.node`),
    join(root, 'native', 'build', 'Release', `${name}.node`),
  ];
}

export type AddonProbe<T> = { ok: true; addon: T; path: string } | { ok: false; reason: string };

const probes = new Map<string, AddonProbe<unknown>>();

/** Loads `name` once (later calls answer from memory): the addon and where it came from, or why it is unavailable. */
export function probeAddon<T>(name: string): AddonProbe<T> {
  const hit = probes.get(name);
  if (hit) return hit as AddonProbe<T>;
  let r: AddonProbe<unknown>;
  if (process.platform !== 'linux') {
    r = { ok: false, reason: `it needs Linux (this is ${process.platform})` };
  } else {
    const root = packageRoot();
    const failures: string[] = [];
    r = { ok: false, reason: '' };
    for (const path of addonCandidates(name)) {
      if (!existsSync(path)) continue;
      try {
        r = { ok: true, addon: wrapAddon(createRequire(import.meta.url)(path) as Record<string, unknown>), path };
        break;
      } catch (err) {
        failures.push(`${relative(root, path)}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    if (!r.ok) {
      r = {
        ok: false,
        reason: failures.length
          ? `it failed to load (${failures.join('; ')})`
          : `there is no prebuilt addon for ${process.platform}-${process.arch} and it is not built: run 'npm run build:native' in ${root} (needs a C compiler, make and python)`,
      };
    }
  }
  probes.set(name, r);
  return r as AddonProbe<T>;
}

/**
 * The addon's functions, each rethrowing what the C side throws with one of our codes
 * (`napi_throw_error(env, "ERR_WGNET_NATIVE", msg)` makes a plain Error, or a TypeError, that
 * only carries the code) as a WgnetError with that code, the same message and the original as
 * `cause`: a caller branches on `instanceof WgnetError` and `code` as for every other misuse
 * (DESIGN §5). System errors (native/napi_util.h's throw_errno: EACCES, EADDRINUSE... with
 * `errno` and `syscall`) stay as they are, like Node's own. One call through `apply` per
 * addon call: the hot ones (a send batch, a TUN write) cost nanoseconds more.
 */
export function wrapAddon<T extends Record<string, unknown>>(addon: T): T {
  const out: Record<string, unknown> = {};
  // Own names, not entries: napi_define_properties with napi_default makes them non-enumerable.
  for (const name of Object.getOwnPropertyNames(addon)) {
    const value = addon[name];
    if (typeof value !== 'function') {
      out[name] = value;
      continue;
    }
    const fn = value as (...args: unknown[]) => unknown;
    out[name] = function (this: unknown): unknown {
      try {
        // `arguments` as is: the C side counts them (napi_get_cb_info's argc).
        return fn.apply(this, arguments as unknown as unknown[]);
      } catch (err) {
        throw asWgnetError(err);
      }
    };
  }
  return out as T;
}

function asWgnetError(err: unknown): unknown {
  if (err instanceof WgnetError || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  return isWgnetErrorCode(code) ? new WgnetError(code, err.message, { cause: err }) : err;
}

const warned = new Set<string>();

/**
 * The addon `name` (e.g. 'wgnet_tun'), or a WgnetError saying why it is
 * unavailable. With `fallback` (what runs instead), a failure also emits one
 * process warning (code WGNET_ADDON_FALLBACK, once per addon and process), so
 * the slow path is never taken silently.
 */
export function loadAddon<T>(name: string, what: string, fallback?: string): T {
  const r = probeAddon<T>(name);
  if (r.ok) return r.addon;
  if (fallback && !warned.has(name)) {
    warned.add(name);
    process.emitWarning(`${what} is unavailable, using ${fallback}: ${r.reason}`, { type: 'WgnetWarning', code: 'WGNET_ADDON_FALLBACK' });
  }
  throw new WgnetError('ERR_WGNET_UNSUPPORTED', `${what} is unavailable: ${r.reason}`);
}
