/*
 * wgnet TUN addon (Linux): opens /dev/net/tun and moves packets between the
 * device and JavaScript without blocking the event loop.
 *
 * Why an addon: Node cannot ioctl(TUNSETIFF), and reading a character device
 * through fs.read costs a thread-pool round trip per packet. Here the
 * non-blocking fd is watched (poll_reader.h); each wake-up drains up to
 * READ_BATCH packets with read(2) and hands them to JavaScript in one call.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "napi_util.h"
#include "poll_reader.h"

#define READ_BATCH 64
#define MAX_PACKET 65535
#define HEADROOM 16
#define TAILROOM 32

/* open(name) -> { fd, name }: creates (or attaches to) TUN device `name`. */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok || len == 0 || len >= IFNAMSIZ) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "open(name): name must be 1-15 characters");
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, len);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "ioctl TUNSETIFF", e);
  }
  napi_value obj, vfd, vname;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_int32(env, fd, &vfd));
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname));
  CHECK(napi_set_named_property(env, obj, "fd", vfd));
  CHECK(napi_set_named_property(env, obj, "name", vname));
  return obj;
}

/* mtu(name) -> number, via SIOCGIFMTU. */
static napi_value tun_mtu(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "mtu(name)");
    return NULL;
  }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_errno(env, "socket", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, len);
  int r = ioctl(s, SIOCGIFMTU, &ifr);
  int e = errno;
  close(s);
  if (r < 0) return throw_errno(env, "ioctl SIOCGIFMTU", e);
  napi_value v;
  CHECK(napi_create_int32(env, ifr.ifr_mtu, &v));
  return v;
}

/* exists(name) -> boolean: whether the interface is still there. */
static napi_value tun_exists(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  size_t len = 0;
  napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len);
  napi_value v;
  CHECK(napi_get_boolean(env, if_nametoindex(name) != 0, &v));
  return v;
}

/* What the TUN reader keeps between wake-ups. */
typedef struct tun_reader {
  unsigned char scratch[MAX_PACKET];
} tun_reader_t;

/*
 * Reads up to READ_BATCH packets and calls cb(err, packets[]) once. Each packet
 * gets its own buffer with room before and after it for the WireGuard header
 * and tag, so encryption happens in place.
 */
static void deliver(napi_env env, napi_value cb, int fd, void *state) {
  tun_reader_t *r = (tun_reader_t *)state;
  napi_value global, arr, err = NULL;
  napi_get_global(env, &global);
  napi_create_array(env, &arr);
  uint32_t n = 0;
  while (n < READ_BATCH) {
    ssize_t got = read(fd, r->scratch, MAX_PACKET);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        napi_value m;
        napi_create_string_utf8(env, strerror(errno), NAPI_AUTO_LENGTH, &m);
        napi_create_error(env, NULL, m, &err);
      }
      break;
    }
    if (got == 0) break;
    void *data;
    napi_value ab, view;
    if (napi_create_arraybuffer(env, HEADROOM + (size_t)got + TAILROOM, &data, &ab) != napi_ok) break;
    memcpy((unsigned char *)data + HEADROOM, r->scratch, (size_t)got);
    napi_create_typedarray(env, napi_uint8_array, (size_t)got, ab, HEADROOM, &view);
    napi_set_element(env, arr, n++, view);
  }
  if (n == 0 && err == NULL) return;
  napi_value argv[2], result;
  argv[0] = err;
  if (argv[0] == NULL) napi_get_null(env, &argv[0]);
  argv[1] = arr;
  napi_call_function(env, global, cb, 2, argv, &result); /* an exception is reported by poll_reader.h */
}

/* startReader(fd, cb(err, packets[])) -> { stop() } */
static napi_value start_reader(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "startReader(fd, callback)");
    return NULL;
  }
  tun_reader_t *r = malloc(sizeof *r);
  if (r == NULL) {
    napi_throw_error(env, "ERR_WGNET_NATIVE", "out of memory");
    return NULL;
  }
  return pr_start(env, fd, argv[1], deliver, r, "wgnet:tun");
}

/* write(fd, packet) -> true if the kernel took it, false if its queue is full. */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  void *data;
  size_t len;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_typedarray_info(env, argv[1], &type, &len, &data, &ab, &off) != napi_ok) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "write(fd, Uint8Array)");
    return NULL;
  }
  ssize_t w;
  do {
    w = write(fd, data, len);
  } while (w < 0 && errno == EINTR);
  if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS && errno != EINVAL && errno != EIO) {
    return throw_errno(env, "write tun", errno);
  }
  napi_value v;
  CHECK(napi_get_boolean(env, w >= 0, &v));
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, tun_open, NULL, NULL, NULL, napi_default, NULL},
      {"mtu", NULL, tun_mtu, NULL, NULL, NULL, napi_default, NULL},
      {"exists", NULL, tun_exists, NULL, NULL, NULL, napi_default, NULL},
      {"startReader", NULL, start_reader, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, tun_write, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
