/*
 * wgnet memory addon (Linux, glibc): gives the allocator's free pages back to the kernel.
 *
 * Why an addon: every ArrayBuffer's backing store (TCP rings, RACK/BBR arrays, packet
 * slabs) is a malloc() chunk, and V8 frees them only when their wrappers are collected,
 * so a burst of short connections leaves hundreds of MB of chunks freed at once.
 * glibc's free() returns memory to the kernel only from the top of an arena, and one
 * live chunk near the top pins everything below it: after 20,000 connections the main
 * arena held 157 MB resident with 5 MB in use, and no MALLOC_* variable changed that
 * (MALLOC_ARENA_MAX=2, MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_ all measured).
 * malloc_trim(0) also releases whole free pages inside an arena (madvise
 * MADV_DONTNEED, glibc >= 2.8), which brought that process from 260 MB to 96 MB.
 * JavaScript has no way to call it, hence this file; src/io/memory.ts decides when.
 *
 * Exports (glibc only; on other C libraries the addon exports nothing and
 * src/io/memory.ts does nothing):
 *   stats() -> { inUse, free }  bytes in use and free inside the arenas (mallinfo2; it
 *                               walks the free lists under each arena's lock: cheap
 *                               enough once a second, not per packet)
 *   trim()  -> boolean          malloc_trim(0): whether any memory went back
 */
#include <node_api.h>

#include "napi_util.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define WGNET_MALLINFO2 1
#endif

#ifdef __GLIBC__
static napi_value mem_stats(napi_env env, napi_callback_info info) {
  double in_use, free_bytes;
#ifdef WGNET_MALLINFO2
  struct mallinfo2 m = mallinfo2();
  in_use = (double)m.uordblks;
  free_bytes = (double)m.fordblks;
#else
  /* mallinfo's int fields wrap past 2 GiB; before glibc 2.33 it is all there is. */
  struct mallinfo m = mallinfo();
  in_use = (double)(unsigned)m.uordblks;
  free_bytes = (double)(unsigned)m.fordblks;
#endif
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_double(env, in_use, &v));
  CHECK(napi_set_named_property(env, out, "inUse", v));
  CHECK(napi_create_double(env, free_bytes, &v));
  CHECK(napi_set_named_property(env, out, "free", v));
  return out;
}

static napi_value mem_trim(napi_env env, napi_callback_info info) {
  napi_value v;
  CHECK(napi_get_boolean(env, malloc_trim(0) != 0, &v));
  return v;
}
#endif

static napi_value init(napi_env env, napi_value exports) {
#ifdef __GLIBC__
  napi_property_descriptor props[] = {
      {"stats", NULL, mem_stats, NULL, NULL, NULL, napi_default, NULL},
      {"trim", NULL, mem_trim, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
