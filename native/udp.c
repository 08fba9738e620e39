/*
 * wgnet UDP addon (Linux): the outer WireGuard socket with batched I/O.
 *
 * Why an addon: node:dgram costs one syscall, one Buffer, one rinfo object and
 * one event per datagram, and every send walks a lookup and a request object.
 * A tunnel moves tens of thousands of datagrams a second, so that overhead was
 * the largest single item in the profile after the cipher. Here:
 *   - receive: a libuv poll handle wakes the main loop; each wake-up drains up
 *     to RECV_BATCH messages with one recvmmsg(2) and hands them to JavaScript
 *     in one call. With UDP_GRO the kernel may coalesce a run of same-sized
 *     datagrams from one sender into one message; it is split back into
 *     datagrams here (the cmsg carries the segment size), so callers never see
 *     a coalesced buffer.
 *   - send: JavaScript passes a whole batch; runs of datagrams to one
 *     destination with one size go out as a single UDP_SEGMENT (GSO) message,
 *     and all messages of the batch go in one sendmmsg(2). If the device cannot
 *     segment (EIO), GSO is turned off for the socket and the batch resent.
 *     GSO stays on for small datagrams too, though a whole batch then lands at once: against
 *     a peer that reads slowly (a 2022 wireguard-go with the default 208 KiB receive buffer,
 *     bench/connrate.ts at 100 clients, ~400 drops per round), at most 8 segments per
 *     message, or a yield to the event loop after every 8 datagrams, left the drops where
 *     they were; without GSO they fell 3-4x, but each connection cost 10-30 % more CPU and
 *     the rate fell with it. TCP's tail loss probe repairs such a drop in about two RTTs.
 * The same wire behaviour as dgram: every datagram is still its own UDP packet.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "napi_util.h"
#include "sockaddr.h"
#include "poll_reader.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define RECV_BATCH 64
#define RECV_SLOT 65536
#define SEND_BATCH 128
/* The kernel refuses more segments per GSO message than this (UDP_MAX_SEGMENTS). */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000


/* open(family 4|6, host, port, bufferBytes) -> { fd, port, gro } */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int family, port, bufbytes;
  char host[64];
  size_t hl;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &family) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hl) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || napi_get_value_int32(env, argv[3], &bufbytes) != napi_ok ||
      (family != 4 && family != 6) || port < 0 || port > 65535) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "open(family, host, port, bufferBytes)");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_addr(family, host, port, &ss, &sl) < 0) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "open: host must be an IP address literal");
    return NULL;
  }
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  if (family == 6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  /* Buffers: the FORCE variants pass rmem_max when we may (root); else the plain ones. */
  if (bufbytes > 0) {
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufbytes, sizeof bufbytes) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufbytes, sizeof bufbytes);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufbytes, sizeof bufbytes) < 0)
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufbytes, sizeof bufbytes);
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  int gro = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  struct sockaddr_storage bound;
  socklen_t bl = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &bl);
  int bport = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port : ((struct sockaddr_in *)&bound)->sin_port);
  napi_value obj, v;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_int32(env, fd, &v));
  CHECK(napi_set_named_property(env, obj, "fd", v));
  CHECK(napi_create_int32(env, bport, &v));
  CHECK(napi_set_named_property(env, obj, "port", v));
  CHECK(napi_get_boolean(env, gro, &v));
  CHECK(napi_set_named_property(env, obj, "gro", v));
  return obj;
}

/* What the UDP reader keeps between wake-ups: the recvmmsg slots. */
typedef struct udp_reader {
  struct mmsghdr msgs[RECV_BATCH];
  struct iovec iov[RECV_BATCH];
  struct sockaddr_storage from[RECV_BATCH];
  char ctrl[RECV_BATCH][CMSG_SPACE(sizeof(int))];
  unsigned char slots[RECV_BATCH * RECV_SLOT]; /* 4 MiB of address space; pages are touched as datagrams land */
  /* The last sender seen and its text (see sender()). */
  struct sockaddr_storage last_from;
  socklen_t last_len;
  int last_port;
  char last_text[INET6_ADDRSTRLEN];
} udp_reader_t;

static int gro_size(struct msghdr *mh) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v;
    }
  }
  return 0;
}

static void format_from(struct sockaddr_storage *ss, char *out, size_t outlen, int *port) {
  if (ss->ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)outlen);
    *port = ntohs(a->sin6_port);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)outlen);
    *port = ntohs(a->sin_port);
  }
}

/*
 * The sender of message i as text, and its port; 1 if it differs from the one
 * before. The last is remembered across wake-ups: a tunnel hears from few peers,
 * and inet_ntop costs about a tenth of a microsecond per datagram.
 */
static int sender(udp_reader_t *r, int i, const char **text, int *port) {
  struct sockaddr_storage *ss = &r->from[i];
  socklen_t len = r->msgs[i].msg_hdr.msg_namelen;
  int changed = len != r->last_len || memcmp(ss, &r->last_from, len) != 0;
  if (changed) {
    format_from(ss, r->last_text, sizeof r->last_text, &r->last_port);
    memcpy(&r->last_from, ss, len);
    r->last_len = len;
  }
  *text = r->last_text;
  *port = r->last_port;
  return changed;
}

/*
 * One recvmmsg, then one call cb(datagrams[], addresses[], ports[]). All
 * datagrams of a call share one ArrayBuffer (one allocation per batch); an
 * address string is made only when the sender differs from the previous one.
 * Returns the number of datagrams delivered (poll_reader.h picks the path of
 * the next wake-up from it).
 *
 * One datagram (a ping, a request, an ACK alone) is passed as cb(datagram,
 * address, port), without the three arrays and their elements (six N-API calls
 * into V8): request/response traffic finds one datagram per wake-up, and each
 * of its hops waits for this call.
 */
static int deliver(napi_env env, napi_value cb, int fd, void *state) {
  udp_reader_t *r = (udp_reader_t *)state;
  for (int i = 0; i < RECV_BATCH; i++) {
    r->iov[i].iov_base = r->slots + (size_t)i * RECV_SLOT;
    r->iov[i].iov_len = RECV_SLOT;
    struct msghdr *mh = &r->msgs[i].msg_hdr;
    mh->msg_name = &r->from[i];
    mh->msg_namelen = sizeof r->from[i];
    mh->msg_iov = &r->iov[i];
    mh->msg_iovlen = 1;
    mh->msg_control = r->ctrl[i];
    mh->msg_controllen = sizeof r->ctrl[i];
    mh->msg_flags = 0;
  }
  int n;
  do {
    n = recvmmsg(fd, r->msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
  } while (n < 0 && errno == EINTR);
  /* n < 0: EAGAIN (a spurious wake-up), or an error queued by ICMP
   * (ECONNREFUSED...) that the failed call consumed; neither means anything
   * to an unconnected socket. Poll again. */
  uint32_t count = 0;
  if (n == 1) {
    size_t len = r->msgs[0].msg_len, seg = (size_t)gro_size(&r->msgs[0].msg_hdr);
    if (seg == 0 || seg >= len) {
      napi_value args[3], ab, global, result;
      void *buf;
      const char *from;
      int port;
      if (napi_create_arraybuffer(env, len > 0 ? len : 1, &buf, &ab) != napi_ok) return 0;
      memcpy(buf, r->iov[0].iov_base, len);
      sender(r, 0, &from, &port);
      napi_create_typedarray(env, napi_uint8_array, len, ab, 0, &args[0]);
      napi_create_string_utf8(env, from, NAPI_AUTO_LENGTH, &args[1]);
      napi_create_int32(env, port, &args[2]);
      napi_get_global(env, &global);
      napi_call_function(env, global, cb, 3, args, &result); /* an exception is reported by poll_reader.h */
      return 1;
    }
  }
  if (n > 0) {
    napi_value arrs[3];
    napi_create_array(env, &arrs[0]);
    napi_create_array(env, &arrs[1]);
    napi_create_array(env, &arrs[2]);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += r->msgs[i].msg_len;
    void *buf;
    napi_value ab;
    if (napi_create_arraybuffer(env, total > 0 ? total : 1, &buf, &ab) == napi_ok) {
      size_t off = 0;
      napi_value prevStr = NULL;
      for (int i = 0; i < n; i++) {
        size_t len = r->msgs[i].msg_len;
        memcpy((unsigned char *)buf + off, r->iov[i].iov_base, len);
        int port;
        const char *from;
        if (sender(r, i, &from, &port) || prevStr == NULL) napi_create_string_utf8(env, from, NAPI_AUTO_LENGTH, &prevStr);
        napi_value vport;
        napi_create_int32(env, port, &vport);
        /* A GRO message is a run of datagrams of `seg` bytes (the last may be shorter). */
        size_t seg = (size_t)gro_size(&r->msgs[i].msg_hdr);
        if (seg == 0 || seg >= len) seg = len > 0 ? len : 1;
        size_t p = 0;
        do {
          size_t l = len - p < seg ? len - p : seg;
          napi_value view;
          napi_create_typedarray(env, napi_uint8_array, l, ab, off + p, &view);
          napi_set_element(env, arrs[0], count, view);
          napi_set_element(env, arrs[1], count, prevStr);
          napi_set_element(env, arrs[2], count, vport);
          count++;
          p += seg;
        } while (p < len);
        off += len;
      }
    }
    napi_value global, result;
    napi_get_global(env, &global);
    napi_call_function(env, global, cb, 3, arrs, &result); /* an exception is reported by poll_reader.h */
  }
  return (int)count;
}

/* startReader(fd, cb(datagrams[], addresses[], ports[]) or cb(datagram, address, port)) -> { stop() } */
static napi_value start_reader(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "startReader(fd, callback)");
    return NULL;
  }
  udp_reader_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    napi_throw_error(env, "ERR_WGNET_NATIVE", "out of memory");
    return NULL;
  }
  return pr_start_batched(env, fd, argv[1], deliver, r, "wgnet:udp");
}

/* Waits briefly for room in the socket's send buffer: a full buffer drains at line rate. */
static int wait_writable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  return poll(&p, 1, 5) > 0;
}

static int sockaddr_equal(const struct sockaddr_storage *a, socklen_t al, const struct sockaddr_storage *b, socklen_t bl) {
  return al == bl && memcmp(a, b, al) == 0;
}

/* Builds sendmmsg messages for datagrams [from, to); returns the count, with first[k] the first datagram of message k. */
static uint32_t group(struct iovec *iov, struct sockaddr_storage *to, socklen_t *tolen, uint32_t from, uint32_t end, int gso,
                      struct mmsghdr *msgs, char (*ctrl)[CMSG_SPACE(sizeof(uint16_t))], uint32_t *first) {
  uint32_t nmsg = 0;
  for (uint32_t i = from; i < end;) {
    uint32_t j = i + 1;
    size_t seg = iov[i].iov_len, total = seg;
    if (gso) {
      while (j < end && j - i < GSO_MAX_SEGMENTS && iov[j].iov_len <= seg && total + iov[j].iov_len <= GSO_MAX_BYTES &&
             sockaddr_equal(&to[i], tolen[i], &to[j], tolen[j])) {
        total += iov[j].iov_len;
        j++;
        if (iov[j - 1].iov_len < seg) break; /* a short datagram ends a run */
      }
    }
    struct msghdr *mh = &msgs[nmsg].msg_hdr;
    memset(mh, 0, sizeof *mh);
    mh->msg_name = &to[i];
    mh->msg_namelen = tolen[i];
    mh->msg_iov = &iov[i];
    mh->msg_iovlen = j - i;
    if (j - i > 1) {
      mh->msg_control = ctrl[nmsg];
      mh->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr *c = CMSG_FIRSTHDR(mh);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t s16 = (uint16_t)seg;
      memcpy(CMSG_DATA(c), &s16, sizeof s16);
    }
    first[nmsg++] = i;
    i = j;
  }
  first[nmsg] = end;
  return nmsg;
}

/*
 * send(fd, family, datagrams[], addresses[], ports[], count, gso) -> datagrams sent,
 * or { sent, gsoFailed: true } when the device could not segment and GSO is to be
 * turned off. A number, not an object every time: making the object and setting
 * its two properties through N-API cost more than a third of a microsecond per
 * call, on every hop of a request/response exchange.
 * Datagrams the kernel will not take (buffer still full after a short wait,
 * unreachable destination) are not retried: UDP may lose them, and the caller
 * counts count - sent as dropped.
 */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd, family;
  uint32_t count;
  bool gso;
  if (argc < 7 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &family) != napi_ok ||
      napi_get_value_uint32(env, argv[5], &count) != napi_ok || napi_get_value_bool(env, argv[6], &gso) != napi_ok) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "send(fd, family, datagrams, addresses, ports, count, gso)");
    return NULL;
  }
  if (count > SEND_BATCH) count = SEND_BATCH;
  struct iovec iov[SEND_BATCH];
  struct sockaddr_storage to[SEND_BATCH];
  socklen_t tolen[SEND_BATCH];
  struct mmsghdr msgs[SEND_BATCH];
  char ctrl[SEND_BATCH][CMSG_SPACE(sizeof(uint16_t))];
  uint32_t first[SEND_BATCH + 1]; /* datagram index where each message starts */
  char host[64];
  uint32_t valid = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value d, a, p;
    void *data;
    size_t len, off, hl;
    napi_typedarray_type type;
    napi_value ab;
    int port;
    if (napi_get_element(env, argv[2], i, &d) != napi_ok || napi_get_typedarray_info(env, d, &type, &len, &data, &ab, &off) != napi_ok ||
        napi_get_element(env, argv[3], i, &a) != napi_ok || napi_get_value_string_utf8(env, a, host, sizeof host, &hl) != napi_ok ||
        napi_get_element(env, argv[4], i, &p) != napi_ok || napi_get_value_int32(env, p, &port) != napi_ok ||
        parse_addr(family, host, port, &to[valid], &tolen[valid]) < 0) {
      continue; /* not a datagram or not an address of this family: not sent */
    }
    iov[valid].iov_base = data;
    iov[valid].iov_len = len;
    valid++;
  }
  uint32_t sent = 0;
  int gso_failed = 0, waits = 0;
  uint32_t from = 0;
  while (from < valid) {
    /* Group runs into messages: same destination, same size, the last may be shorter. */
    uint32_t nmsg = group(iov, to, tolen, from, valid, gso && !gso_failed, msgs, ctrl, first);
    uint32_t m = 0;
    int regroup = 0;
    while (m < nmsg && !regroup) {
      /* One message (a ping, an ACK): sendmsg, which costs less than a sendmmsg of one. */
      int r = nmsg - m == 1 ? (sendmsg(fd, &msgs[m].msg_hdr, MSG_DONTWAIT) >= 0 ? 1 : -1) : sendmmsg(fd, &msgs[m], nmsg - m, MSG_DONTWAIT);
      if (r > 0) {
        for (int k = 0; k < r; k++) sent += first[m + k + 1] - first[m + k];
        m += (uint32_t)r;
        continue;
      }
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) && waits < 20) {
        waits++;
        wait_writable(fd);
        continue;
      }
      if (errno == EIO && msgs[m].msg_hdr.msg_iovlen > 1) {
        /* The route's device cannot segment: resend the rest one datagram per message. */
        gso_failed = 1;
        regroup = 1;
        break;
      }
      /* This message cannot go (unreachable, too big...): skip it, keep the rest. */
      m++;
    }
    from = first[m];
  }
  napi_value res, v;
  CHECK(napi_create_uint32(env, sent, &v));
  if (!gso_failed) return v;
  CHECK(napi_create_object(env, &res));
  CHECK(napi_set_named_property(env, res, "sent", v));
  CHECK(napi_get_boolean(env, true, &v));
  CHECK(napi_set_named_property(env, res, "gsoFailed", v));
  return res;
}

/* ping.c: ICMP echo sockets, defined on the same exports. */
void wgnet_ping_define(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
      {"startReader", NULL, start_reader, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, udp_send, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  wgnet_ping_define(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
