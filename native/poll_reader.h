/*
 * A readable-fd watcher that hands data to JavaScript, shared by the TUN, UDP
 * and ping readers.
 *
 * A libuv poll handle says when the fd is readable, and its callback reads and
 * calls JavaScript at once, inside a callback scope opened on an async context
 * made at start: what Node's own handles (a dgram socket's onmessage) do.
 * JavaScript thus runs in the same turn of the event loop in which the data
 * arrived, and the scope's close runs the nextTick and microtask queues, so a
 * promise resolved by the data settles before the loop goes on.
 *
 * Why not a thread-safe function, as this reader once used: its call is queued
 * on an async handle and runs one loop iteration later, behind an eventfd write
 * and read, and the poll had to be stopped and restarted around it (epoll_ctl)
 * so that at most one call was queued. That hop cost 15-20 % of a ping's round
 * trip through a tunnel pair. The reason for it was that napi_make_callback
 * from a raw libuv callback aborted Node when async hooks were on (node:test,
 * AsyncLocalStorage, APM agents): it was called there with no async context and
 * no handle scope. Here a handle scope is opened first and the callback scope
 * carries a real async resource (napi_async_init), as N-API documents for
 * calls made outside of a JavaScript call; the tests run under node:test.
 */
#ifndef WGNET_POLL_READER_H
#define WGNET_POLL_READER_H

#include <node_api.h>
#include <stdlib.h>
#include <uv.h>

/* Reads what is waiting on fd and calls cb with it (inside a valid scope). */
typedef void (*pr_deliver_fn)(napi_env env, napi_value cb, int fd, void *state);

typedef struct poll_reader {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;            /* the JavaScript callback */
  napi_ref resource;      /* the async resource object the callback scope runs in */
  napi_async_context ctx; /* made at start, destroyed at stop */
  int fd;
  int stopped;
  pr_deliver_fn deliver;
  void *state;
} poll_reader_t;

static void pr_poll_closed(uv_handle_t *h) {
  poll_reader_t *r = (poll_reader_t *)h->data;
  free(r->state);
  free(r);
}

static void pr_on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  poll_reader_t *r = (poll_reader_t *)handle->data;
  if (r->stopped) return;
  napi_env env = r->env;
  napi_handle_scope hs;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_value resource, cb;
  napi_callback_scope scope;
  if (napi_get_reference_value(env, r->resource, &resource) == napi_ok && napi_get_reference_value(env, r->cb, &cb) == napi_ok &&
      napi_open_callback_scope(env, resource, r->ctx, &scope) == napi_ok) {
    /* stop() from inside the callback closes the poll handle; r lives until
     * its close callback, which runs on a later turn of the loop. */
    r->deliver(env, cb, r->fd, r->state);
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      /* Report it as Node reports any exception from an event: uncaught. */
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
      napi_fatal_exception(env, e);
    }
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
  napi_delete_reference(r->env, r->cb);
  napi_delete_reference(r->env, r->resource);
  napi_async_destroy(r->env, r->ctx);
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

/*
 * Starts watching fd; returns { stop() } or NULL with an exception pending.
 * `state` (malloc'd, may be NULL) is passed to deliver and freed with the reader.
 */
static napi_value pr_start(napi_env env, int fd, napi_value cb, pr_deliver_fn deliver, void *state, const char *name) {
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
  r->state = state;
  r->poll.data = r;
  int e = uv_poll_init(loop, &r->poll, fd);
  if (e < 0) {
    free(state);
    free(r);
    napi_throw_error(env, "ERR_WGNET_NATIVE", uv_strerror(e));
    return NULL;
  }
  napi_value resname, resource;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resname) != napi_ok || napi_create_object(env, &resource) != napi_ok ||
      napi_async_init(env, resource, resname, &r->ctx) != napi_ok) {
    r->stopped = 1;
    uv_close((uv_handle_t *)&r->poll, pr_poll_closed);
    napi_throw_error(env, "ERR_WGNET_NATIVE", "cannot create the reader's async context");
    return NULL;
  }
  if (napi_create_reference(env, cb, 1, &r->cb) != napi_ok || napi_create_reference(env, resource, 1, &r->resource) != napi_ok) {
    r->stopped = 1;
    if (r->cb != NULL) napi_delete_reference(env, r->cb);
    napi_async_destroy(env, r->ctx);
    uv_close((uv_handle_t *)&r->poll, pr_poll_closed);
    napi_throw_error(env, "ERR_WGNET_NATIVE", "cannot create the reader's callback");
    return NULL;
  }
  /* The poll handle keeps the loop alive while the fd is watched (as a socket does). */
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

#endif
