/*
 * A readable-fd watcher that hands data to JavaScript, shared by the TUN, UDP
 * and ping readers.
 *
 * Under Node, a libuv poll handle says when the fd is readable, and its
 * callback reads and calls JavaScript at once (the direct path), inside a
 * callback scope opened on an async context made at start: what Node's own handles (a dgram socket's
 * onmessage) do. JavaScript thus runs in the same turn of the event loop in
 * which the data arrived, and the scope's close runs the nextTick and microtask
 * queues, so a promise resolved by the data settles before the loop goes on.
 *
 * Elsewhere (Deno), JavaScript is called through a thread-safe function: Deno's
 * napi_open_callback_scope is a no-op that drains no microtask, and the tunnel
 * stalled on it (test/runtime/bun-deno.test.ts). The poll is paused from the
 * wake-up until that call has run, so at most one call is ever queued, and the
 * reading happens inside the call. Under Node this was the only path once: its
 * call runs one loop iteration later, behind an eventfd write and read and an
 * epoll_ctl for the pause and one for the restart, which cost 15-20 % of a
 * ping's round trip through a tunnel pair (bench/tunnel.ts pingVsUdp).
 *
 * Which path a wake-up takes (see pr_start, pr_start_batched):
 *   - A batched reader (the UDP socket: its deliver function says how many
 *     datagrams it read) is adaptive. A wake-up that finds one datagram is
 *     request/response traffic (a ping, an RPC), where the direct call saves a
 *     loop iteration on every hop. A wake-up that finds PR_BUSY_BATCH or more is
 *     a stream: the next wake-up goes through the queued call, whose pause lets
 *     the loop run its timers and setImmediate callbacks (the engine's yield,
 *     which sends the next burst) and lets the socket fill, so each call into
 *     JavaScript carries a larger batch. Always direct was once measured to cost
 *     single-stream throughput (bench (c): 264-607 vs 424-700 Mbit/s); under a
 *     stream this reader takes the queued call on nearly every wake-up (bench
 *     (c): about 50 direct of 1,000 calls), as the default path used to. The
 *     queued call returns to direct as soon as a read finds less again.
 *   - The TUN and ICMP readers keep the queued call unless WGNET_POLL_DIRECT=1,
 *     with a poll(2) after each direct delivery deciding as above.
 *   - WGNET_POLL_DIRECT=0 turns the direct path off for every reader.
 *
 * The thread-safe function had been chosen because napi_make_callback from a
 * raw libuv callback aborted Node when async hooks were on (node:test,
 * AsyncLocalStorage, APM agents): it was called there with no async context and
 * no handle scope. The direct path opens a handle scope first and its callback
 * scope carries a real async resource (napi_async_init), as N-API documents for
 * calls made outside of a JavaScript call; the tests run under node:test.
 */
#ifndef WGNET_POLL_READER_H
#define WGNET_POLL_READER_H

#include <node_api.h>
#include <poll.h>
#include <stdlib.h>
#include <uv.h>

/* Reads what is waiting on fd and calls cb with it (inside a valid scope). */
typedef void (*pr_deliver_fn)(napi_env env, napi_value cb, int fd, void *state);
/* The same, returning how many datagrams it delivered (0: nothing was waiting). */
typedef int (*pr_deliver_count_fn)(napi_env env, napi_value cb, int fd, void *state);

/*
 * A read of this many datagrams or more means traffic comes faster than one
 * wake-up at a time (see the header): a ping or a request/response exchange
 * finds one datagram per wake-up, a TCP stream's data or ACKs several.
 */
#define PR_BUSY_BATCH 2

typedef struct poll_reader {
  uv_poll_t poll;
  napi_env env;
  int fd;
  int stopped;
  int direct; /* Node: JavaScript may be called from the poll callback (else always through tsfn) */
  int busy;   /* the last read found a stream (see pr_deliver): queue the next one (batching) */
  int live;   /* the poll handle, plus the tsfn when there is one; freed at 0 */
  pr_deliver_fn deliver;          /* one of deliver and deliver_count is set */
  pr_deliver_count_fn deliver_count;
  void *state;
  /* direct */
  napi_ref cb;            /* the JavaScript callback */
  napi_ref resource;      /* the async resource object the callback scope runs in */
  napi_async_context ctx; /* made at start, destroyed at stop */
  /* queued */
  napi_threadsafe_function tsfn; /* NULL once Node has finalized it (environment teardown) */
} poll_reader_t;

static void pr_release(poll_reader_t *r) {
  if (--r->live == 0) {
    free(r->state);
    free(r);
  }
}

static void pr_poll_closed(uv_handle_t *h) { pr_release((poll_reader_t *)h->data); }

static void pr_tsfn_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  poll_reader_t *r = (poll_reader_t *)data;
  /* At environment teardown the tsfn is finalized before the handle's wrap
   * (pr_finalize): releasing it then aborted the process (a destroyed mutex). */
  r->tsfn = NULL;
  pr_release(r);
}

/* Whether more is waiting already: traffic comes faster than it is handled one wake-up at a time. */
static int pr_more_waiting(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0;
}

/*
 * Reads and calls JavaScript; reports an exception it threw as uncaught, as
 * Node does for an event's. Then decides whether the next wake-up may call
 * JavaScript directly (r->busy clear) or goes through the queued call: from the
 * size of the batch when the deliver function reports it (no syscall), else by
 * polling the fd once more (only when a direct call is possible at all).
 */
static void pr_deliver(poll_reader_t *r, napi_env env, napi_value cb) {
  int n = -1;
  if (r->deliver_count != NULL) n = r->deliver_count(env, cb, r->fd, r->state);
  else r->deliver(env, cb, r->fd, r->state);
  if (r->direct && !r->stopped) r->busy = n >= 0 ? n >= PR_BUSY_BATCH : pr_more_waiting(r->fd);
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
}

static void pr_on_readable(uv_poll_t *handle, int status, int events);

/* The queued path's call (not under Node, or under load). */
static void pr_call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)data;
  poll_reader_t *r = (poll_reader_t *)context;
  if (env == NULL || r->stopped) return;
  napi_unref_threadsafe_function(env, r->tsfn); /* taken in pr_on_readable */
  pr_deliver(r, env, cb);
  if (!r->stopped) uv_poll_start(&r->poll, UV_READABLE, pr_on_readable);
}

static void pr_on_readable(uv_poll_t *handle, int status, int events) {
  (void)events; /* an error wake-up is handled like data: the read reports or consumes it */
  poll_reader_t *r = (poll_reader_t *)handle->data;
  if (r->stopped) return;
  napi_env env = r->env;
  if (!r->direct || r->busy) {
    uv_poll_stop(&r->poll);
    /* The stopped poll no longer keeps the loop alive and the tsfn is unref'd: if
     * nothing else holds the loop, it would end with this call still queued and
     * the process would exit with the data unread. Hold it until the call runs. */
    napi_ref_threadsafe_function(env, r->tsfn);
    napi_call_threadsafe_function(r->tsfn, NULL, napi_tsfn_nonblocking);
    return;
  }
  napi_handle_scope hs;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_value resource, cb;
  napi_callback_scope scope;
  if (napi_get_reference_value(env, r->resource, &resource) == napi_ok && napi_get_reference_value(env, r->cb, &cb) == napi_ok &&
      napi_open_callback_scope(env, resource, r->ctx, &scope) == napi_ok) {
    /* stop() from inside the callback closes the poll handle; r lives until
     * its close callback, which runs on a later turn of the loop. */
    pr_deliver(r, env, cb);
    napi_close_callback_scope(env, scope); /* runs process.nextTick callbacks and microtasks */
  }
  napi_close_handle_scope(env, hs);
  /* An error wake-up (status < 0: POLLERR, a queued socket error) stopped the
   * poll; the read above consumed the error, so watch the fd again. */
  if (status < 0 && !r->stopped) uv_poll_start(&r->poll, UV_READABLE, pr_on_readable);
}

static void pr_shutdown(poll_reader_t *r) {
  if (r->stopped) return;
  r->stopped = 1;
  uv_poll_stop(&r->poll);
  if (r->direct) {
    napi_delete_reference(r->env, r->cb);
    napi_delete_reference(r->env, r->resource);
    napi_async_destroy(r->env, r->ctx);
  }
  if (r->tsfn != NULL) napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
  uv_close((uv_handle_t *)&r->poll, pr_poll_closed);
}

static void pr_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pr_shutdown((poll_reader_t *)data);
}

static napi_value pr_stop(napi_env env, napi_callback_info info) {
  napi_value self;
  if (napi_get_cb_info(env, info, NULL, NULL, &self, NULL) != napi_ok) return NULL;
  poll_reader_t *r = NULL;
  if (napi_remove_wrap(env, self, (void **)&r) != napi_ok || r == NULL) return NULL;
  pr_shutdown(r);
  return NULL;
}

/* Node, not a runtime that offers N-API beside its own globals (Deno, whose callback scope is a no-op). */
static int pr_is_node(napi_env env) {
  napi_value global;
  bool deno = false;
  if (napi_get_global(env, &global) != napi_ok || napi_has_named_property(env, global, "Deno", &deno) != napi_ok) return 0;
  return !deno;
}

/* Sets up the direct path: the callback and an async resource to call it in. 0 on success. */
static int pr_init_direct(napi_env env, poll_reader_t *r, napi_value cb, napi_value resname) {
  napi_value resource;
  if (napi_create_object(env, &resource) != napi_ok || napi_async_init(env, resource, resname, &r->ctx) != napi_ok) return -1;
  if (napi_create_reference(env, cb, 1, &r->cb) != napi_ok || napi_create_reference(env, resource, 1, &r->resource) != napi_ok) {
    if (r->cb != NULL) napi_delete_reference(env, r->cb);
    napi_async_destroy(env, r->ctx);
    return -1;
  }
  return 0;
}

/*
 * Starts watching fd; returns { stop() } or NULL with an exception pending.
 * `state` (malloc'd, may be NULL) is passed to the deliver function and freed
 * with the reader. One of deliver and deliver_count is set; a reader with
 * deliver_count reports its batch sizes, so it can choose the path per wake-up
 * and is direct by default (see the header).
 */
static napi_value pr_start_any(napi_env env, int fd, napi_value cb, pr_deliver_fn deliver, pr_deliver_count_fn deliver_count,
                               void *state, const char *name) {
  uv_loop_t *loop;
  poll_reader_t *r = calloc(1, sizeof *r);
  if (r == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    free(r);
    free(state);
    napi_throw_error(env, "ERR_WGNET_NATIVE", "cannot start a reader");
    return NULL;
  }
  r->fd = fd;
  r->env = env;
  r->deliver = deliver;
  r->deliver_count = deliver_count;
  r->state = state;
  r->poll.data = r;
  const char *d = getenv("WGNET_POLL_DIRECT");
  int want = d != NULL && d[0] != '\0' ? d[0] == '1' : deliver_count != NULL;
  r->direct = want && pr_is_node(env);
  int e = uv_poll_init(loop, &r->poll, fd);
  if (e < 0) {
    free(state);
    free(r);
    napi_throw_error(env, "ERR_WGNET_NATIVE", uv_strerror(e));
    return NULL;
  }
  napi_value resname;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resname);
  int failed = napi_create_threadsafe_function(env, cb, NULL, resname, 0, 1, r, pr_tsfn_finalized, r, pr_call_js, &r->tsfn) != napi_ok;
  r->live = failed ? 1 : 2; /* the poll handle, and the tsfn (its finalizer releases its count) */
  if (!failed && r->direct && pr_init_direct(env, r, cb, resname) != 0) {
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
    failed = 1;
  }
  if (failed) {
    r->stopped = 1;
    uv_close((uv_handle_t *)&r->poll, pr_poll_closed);
    napi_throw_error(env, "ERR_WGNET_NATIVE", "cannot create the reader's callback");
    return NULL;
  }
  /* The poll handle keeps the loop alive while the fd is watched (as a socket
   * does); the thread-safe function need not. */
  napi_unref_threadsafe_function(env, r->tsfn);
  uv_poll_start(&r->poll, UV_READABLE, pr_on_readable);
  napi_value handle, stop;
  if (napi_create_object(env, &handle) != napi_ok || napi_wrap(env, handle, r, pr_finalize, NULL, NULL) != napi_ok ||
      napi_create_function(env, "stop", NAPI_AUTO_LENGTH, pr_stop, NULL, &stop) != napi_ok ||
      napi_set_named_property(env, handle, "stop", stop) != napi_ok) {
    pr_shutdown(r);
    napi_throw_error(env, "ERR_WGNET_NATIVE", "cannot create the reader handle");
    return NULL;
  }
  return handle;
}

/* A reader that delivers whatever it read per call (TUN, ICMP); queued unless WGNET_POLL_DIRECT=1. */
static inline napi_value pr_start(napi_env env, int fd, napi_value cb, pr_deliver_fn deliver, void *state, const char *name) {
  return pr_start_any(env, fd, cb, deliver, NULL, state, name);
}

/* A reader whose deliver function returns its batch size: direct for small batches (see the header). */
static inline napi_value pr_start_batched(napi_env env, int fd, napi_value cb, pr_deliver_count_fn deliver, void *state, const char *name) {
  return pr_start_any(env, fd, cb, NULL, deliver, state, name);
}

#endif
