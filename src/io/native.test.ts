/**
 * The addon loader turns the codes the C side throws (ERR_WGNET_NATIVE, ERR_WGNET_INVALID_ARGUMENT)
 * into WgnetErrors, and leaves system errors and everything else as they are.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { probeAddon, wrapAddon } from './native.js';
import { WgnetError } from '../util/errors.js';

/** What napi_throw_error(env, code, msg) throws: a plain Error that only carries the code. */
function napiError(code: string, message: string, type: ErrorConstructor = Error): Error {
  return Object.assign(new type(message), { code });
}

test('ERR_WGNET_NATIVE from an addon function is a WgnetError with the code, message and the original as cause', () => {
  const original = napiError('ERR_WGNET_NATIVE', 'out of memory');
  const addon = wrapAddon({
    startReader: () => {
      throw original;
    },
  });
  const err = (() => {
    try {
      addon.startReader();
    } catch (e) {
      return e;
    }
    return undefined;
  })() as WgnetError;
  assert.ok(err instanceof WgnetError);
  assert.equal(err.code, 'ERR_WGNET_NATIVE');
  assert.equal(err.message, 'out of memory');
  assert.equal(err.cause, original);
  // napi_throw_type_error with our code: a WgnetError too.
  const typed = wrapAddon({ open: () => { throw napiError('ERR_WGNET_INVALID_ARGUMENT', 'open(family, host, port, bufferBytes)', TypeError); } });
  assert.throws(() => typed.open(), (e: unknown) => e instanceof WgnetError && e.code === 'ERR_WGNET_INVALID_ARGUMENT');
});

test('system errors, unknown codes and non-errors pass through unchanged; arguments, this and results are the same', () => {
  const sys = Object.assign(new Error('bind EADDRINUSE: Address already in use'), { code: 'EADDRINUSE', errno: -98, syscall: 'bind' });
  const other = napiError('ERR_SOMETHING_ELSE', 'x');
  const addon = wrapAddon({
    bind: () => { throw sys; },
    other: () => { throw other; },
    str: () => { throw 'a string'; },
    count(...args: unknown[]) { return [args.length, ...args]; },
    version: 3,
  });
  assert.throws(() => addon.bind(), (e: unknown) => e === sys);
  assert.throws(() => addon.other(), (e: unknown) => e === other);
  assert.throws(() => addon.str(), (e: unknown) => e === 'a string');
  // The C side reads argc: no argument added or dropped.
  assert.deepEqual(addon.count(1, undefined, 'x'), [3, 1, undefined, 'x']);
  assert.deepEqual(addon.count(), [0]);
  assert.equal(addon.version, 3);
});

test('the real UDP addon, where it is built: its argument errors are WgnetErrors', (t) => {
  const r = probeAddon<{ open: (...a: unknown[]) => unknown }>('wgnet_udp');
  if (!r.ok) return t.skip(`wgnet_udp is not available: ${r.reason}`);
  assert.throws(() => r.addon.open('not', 'valid'), (e: unknown) => e instanceof WgnetError && e.code === 'ERR_WGNET_INVALID_ARGUMENT');
});
