/* Small N-API helpers shared by wgnet's addons. */
#ifndef WGNET_NAPI_UTIL_H
#define WGNET_NAPI_UTIL_H

#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* In a napi_value function: throw and return NULL when an N-API call fails. */
#define CHECK(call)                                                               \
  do {                                                                            \
    if ((call) != napi_ok) {                                                      \
      napi_throw_error(env, "ERR_WGNET_NATIVE", "N-API call failed: " #call);     \
      return NULL;                                                                \
    }                                                                             \
  } while (0)

/* The errno names the callers match on (err.code), as Node spells them. */
static inline const char *errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case ENOENT: return "ENOENT";
    case ENODEV: return "ENODEV";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EINVAL: return "EINVAL";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETDOWN: return "ENETDOWN";
    case EHOSTDOWN: return "EHOSTDOWN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOBUFS: return "ENOBUFS";
    case EAGAIN: return "EAGAIN";
    case EPROTO: return "EPROTO";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENONET: return "ENONET";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return "EIO";
  }
}

/* Throws an Error with .code and .errno like Node's system errors; returns NULL. */
static inline napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s %s: %s", what, errno_name(err), strerror(err));
  napi_value m, code, e, c;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_int32(env, -err, &code);
  napi_set_named_property(env, e, "errno", code);
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &c);
  napi_set_named_property(env, e, "code", c);
  napi_throw(env, e);
  return NULL;
}

/* close(fd) from JavaScript: the fd belongs to the JS object that opened it. */
static inline napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (napi_get_value_int32(env, argv[0], &fd) == napi_ok && fd >= 0) close(fd);
  return NULL;
}

#endif
