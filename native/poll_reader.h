/*
 * A readable-fd watcher that hands data to JavaScript, shared by the TUN and
 * UDP addons.
 *
 * A libuv poll handle says when the fd is readable; JavaScript is then called
 * through a thread-safe function rather than straight from the poll callback.
 * Calling into JS from a raw libuv callback (napi_make_callback) aborted Node
 * whenever async hooks were on (node:test, AsyncLocalStorage, APM agents): the
 * thread-safe function's call runs in a callback scope that Node itself opens
 * and closes. The poll is paused from the wake-up until `deliver` has run, so
 * at most one call is ever queued, and reading happens inside that call.
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
  napi_threadsafe_function tsfn; /* NULL once Node has finalized it (environment teardown) */
  napi_env env;
  int fd;
  int stopped;
  int live; /* 2 while both the poll handle and the tsfn exist; freed at 0 */
  pr_deliver_fn deliver;
  void *state;
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
  /* At environment teardown Node finalizes the tsfn before the handle's wrap
   * (pr_finalize): releasing it then aborted the process (a destroyed mutex). */
  r->tsfn = NULL;
  pr_release(r);
}

static void pr_on_readable(uv_poll_t *handle, int status, int events);

static void pr_call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)data;
  poll_reader_t *r = (poll_reader_t *)context;
  if (env == NULL || r->stopped) return;
  napi_unref_threadsafe_function(env, r->tsfn); /* taken in pr_on_readable */
  r->deliver(env, cb, r->fd, r->state);
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    /* Report it as Node reports any exception from an event: uncaught. */
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
  if (!r->stopped) uv_poll_start(&r->poll, UV_READABLE, pr_on_readable);
}

static void pr_on_readable(uv_poll_t *handle, int status, int events) {
  (void)status; /* an error wake-up is handled like data: the read reports it */
  (void)events;
  poll_reader_t *r = (poll_reader_t *)handle->data;
  if (r->stopped) return;
  uv_poll_stop(&r->poll);
  /* The stopped poll no longer keeps the loop alive and the tsfn is unref'd: if
   * nothing else holds the loop, it would end with this call still queued and
   * the process would exit with the data unread. Hold it until the call runs. */
  napi_ref_threadsafe_function(r->env, r->tsfn);
  napi_call_threadsafe_function(r->tsfn, NULL, napi_tsfn_nonblocking);
}

static void pr_shutdown(poll_reader_t *r) {
  if (r->stopped) return;
  r->stopped = 1;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *)&r->poll, pr_poll_closed);
  if (r->tsfn != NULL) napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
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
  napi_value resname;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resname);
  if (napi_create_threadsafe_function(env, cb, NULL, resname, 0, 1, r, pr_tsfn_finalized, r, pr_call_js, &r->tsfn) != napi_ok) {
    r->live = 1;
    r->stopped = 1;
    uv_close((uv_handle_t *)&r->poll, pr_poll_closed);
    napi_throw_error(env, "ERR_WGNET_NATIVE", "cannot create the reader's callback");
    return NULL;
  }
  r->live = 2;
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

#endif
