/*
 * wgnet ICMP echo (Linux), linked into the wgnet_udp addon: the host side of a
 * gateway's relayed pings, without a `ping` process per echo.
 *
 * Two kinds of socket, tried in this order by src/io/ping.ts:
 *   - a "ping socket", socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) or
 *     (AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6) (icmp(7), "ICMP_ECHO sockets"):
 *     unprivileged, allowed to the groups in net.ipv4.ping_group_range (one
 *     sysctl for both families; per network namespace). Root is not exempt: with
 *     the kernel default "1 0" socket() fails with EACCES for everyone. The
 *     kernel owns the echo identifier: it is the socket's local "port", written
 *     over whatever identifier we send, and only replies carrying it reach the
 *     socket. It also computes the checksum. ICMP errors about our echoes come
 *     through the error queue (IP_RECVERR / IPV6_RECVERR, ip(7), ipv6(7)).
 *   - a raw ICMP socket (raw(7)), where ping sockets are refused but the
 *     process holds CAP_NET_RAW (root on a host left at "1 0"), as iputils'
 *     ping falls back. A raw socket sees every ICMP message the host receives,
 *     so an identifier is chosen by the caller, the kernel is asked to pass only
 *     echo replies and errors (ICMP_FILTER, ICMP6_FILTER: RFC 3542 §3.2), and
 *     the rest is matched here: replies by identifier, errors by the identifier
 *     in the echo request they quote (RFC 792: the IP header and the first 64
 *     bits of the datagram; RFC 4443 §2.4(c): as much as fits).
 * Both hand JavaScript the same events: (address, sequence, payload) for a
 * reply, (destination, sequence, errno name, type, code) for an error. Which
 * echo a reply answers (the peer's own identifier and sequence) is JavaScript's
 * business: it numbers its echoes itself (src/io/ping.ts).
 *
 * Reading uses poll_reader.h like the UDP and TUN readers. A ping socket with a
 * queued error polls as POLLERR, which libuv reports as an error wake-up
 * (status UV_EBADF, poll stopped); poll_reader treats it like data and the
 * reader below drains the error queue first, so it does not fire again.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "napi_util.h"
#include "sockaddr.h"
#include "poll_reader.h"

/* linux/icmp.h: the raw IPv4 ICMP socket option whose value is a bitmask of
 * message types NOT to deliver (raw(7)); glibc's headers do not carry it. */
#ifndef ICMP_FILTER
#define ICMP_FILTER 1
#endif
#ifndef SOL_RAW
#define SOL_RAW 255
#endif

#define ICMP4_ECHO_REPLY 0
#define ICMP4_UNREACH 3
#define ICMP4_ECHO 8
#define ICMP4_TIME_EXCEEDED 11
#define ICMP4_PARAM_PROBLEM 12
#define ICMP6_ECHO_REQ 128
#define ICMP6_ECHO_REP 129

/* Messages read per wake-up, per queue: bounded so a flood cannot hold the loop. */
#define PING_BUDGET 64
/* An IPv4 datagram is at most 65535 bytes; what a raw socket reads includes its header. */
#define PING_BUF 65536


/* pingOpen(family 4|6, raw, ident) -> { fd, ident }. ident is used by raw sockets only. */
static napi_value ping_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int family, ident;
  bool raw;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &family) != napi_ok || napi_get_value_bool(env, argv[1], &raw) != napi_ok ||
      napi_get_value_int32(env, argv[2], &ident) != napi_ok || (family != 4 && family != 6) || ident < 0 || ident > 0xffff) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "pingOpen(family, raw, ident)");
    return NULL;
  }
  int v6 = family == 6;
  int fd = socket(v6 ? AF_INET6 : AF_INET, (raw ? SOCK_RAW : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (!raw) {
    /* Without RECVERR an unconnected ping socket drops ICMP errors (the kernel's
     * ping_err); with it they are queued for us, so an unreachable destination is
     * known at once rather than by a timeout. */
    int one = 1;
    if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
    else setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one);
    /* Port 0: the kernel picks a free identifier; getsockname tells which. */
    struct sockaddr_storage ss;
    socklen_t sl;
    parse_addr(family, v6 ? "::" : "0.0.0.0", 0, &ss, &sl);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, "bind", e);
    }
    sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    ident = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
  } else if (!v6) {
    uint32_t block = ~((1u << ICMP4_ECHO_REPLY) | (1u << ICMP4_UNREACH) | (1u << ICMP4_TIME_EXCEEDED) | (1u << ICMP4_PARAM_PROBLEM));
    setsockopt(fd, SOL_RAW, ICMP_FILTER, &block, sizeof block);
  } else {
    struct icmp6_filter f;
    ICMP6_FILTER_SETBLOCKALL(&f);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REP, &f);
    ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &f);
    ICMP6_FILTER_SETPASS(ICMP6_PACKET_TOO_BIG, &f);
    ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &f);
    ICMP6_FILTER_SETPASS(ICMP6_PARAM_PROB, &f);
    setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f);
  }
  napi_value obj, v;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_int32(env, fd, &v));
  CHECK(napi_set_named_property(env, obj, "fd", v));
  CHECK(napi_create_int32(env, ident, &v));
  CHECK(napi_set_named_property(env, obj, "ident", v));
  return obj;
}

/* RFC 1071 Internet checksum, for raw IPv4 (the kernel fills ICMPv6's, RFC 3542 §3.1, and a ping socket's). */
static uint16_t inet_checksum(const unsigned char *p, size_t n) {
  uint32_t sum = 0;
  for (; n > 1; p += 2, n -= 2) sum += (uint32_t)(p[0] << 8 | p[1]);
  if (n) sum += (uint32_t)(p[0] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/*
 * pingSend(fd, family, raw, ident, host, seq, payload) -> undefined, or the
 * errno name when the kernel refuses the echo at once (no route: ENETUNREACH...).
 */
static napi_value ping_send(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd, family, ident, seq;
  bool raw;
  char host[64];
  size_t hl, len;
  void *data;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (argc < 7 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &family) != napi_ok ||
      napi_get_value_bool(env, argv[2], &raw) != napi_ok || napi_get_value_int32(env, argv[3], &ident) != napi_ok ||
      napi_get_value_string_utf8(env, argv[4], host, sizeof host, &hl) != napi_ok || napi_get_value_int32(env, argv[5], &seq) != napi_ok ||
      napi_get_typedarray_info(env, argv[6], &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array || len > 65000) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "pingSend(fd, family, raw, ident, host, seq, payload)");
    return NULL;
  }
  struct sockaddr_storage to;
  socklen_t tl;
  if (parse_addr(family, host, 0, &to, &tl) < 0) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "pingSend: host must be an IP address literal of the socket's family");
    return NULL;
  }
  unsigned char stackbuf[2048];
  unsigned char *buf = len + 8 <= sizeof stackbuf ? stackbuf : malloc(len + 8);
  if (buf == NULL) return throw_errno(env, "malloc", ENOMEM);
  /* RFC 792 / RFC 4443 §4.1: type, code 0, checksum, identifier, sequence, data. */
  buf[0] = family == 6 ? ICMP6_ECHO_REQ : ICMP4_ECHO;
  buf[1] = 0;
  buf[2] = buf[3] = 0;
  buf[4] = (unsigned char)(ident >> 8);
  buf[5] = (unsigned char)ident;
  buf[6] = (unsigned char)(seq >> 8);
  buf[7] = (unsigned char)seq;
  if (len) memcpy(buf + 8, data, len);
  if (raw && family == 4) {
    uint16_t ck = inet_checksum(buf, len + 8);
    buf[2] = (unsigned char)(ck >> 8);
    buf[3] = (unsigned char)ck;
  }
  ssize_t r;
  do {
    r = sendto(fd, buf, len + 8, MSG_DONTWAIT, (struct sockaddr *)&to, tl);
  } while (r < 0 && errno == EINTR);
  int e = errno;
  if (buf != stackbuf) free(buf);
  if (r >= 0) return NULL;
  napi_value name;
  CHECK(napi_create_string_utf8(env, errno_name(e), NAPI_AUTO_LENGTH, &name));
  return name;
}

typedef struct ping_reader {
  int family;
  int raw;
  int ident;
  unsigned char buf[PING_BUF];
  char ctrl[512];
} ping_reader_t;

/* cb(address, seq, payload | null, errnoName | null, icmpType, icmpCode) */
static int emit(napi_env env, napi_value cb, int family, const void *addr, int seq, const unsigned char *payload, size_t plen, const char *err, int type, int code) {
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, text, sizeof text) == NULL) return 0;
  napi_value argv[6], global, result;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &argv[0]);
  napi_create_int32(env, seq, &argv[1]);
  if (payload) {
    void *copy;
    napi_create_buffer_copy(env, plen, plen ? payload : (const void *)"", &copy, &argv[2]);
  } else napi_get_null(env, &argv[2]);
  if (err) napi_create_string_utf8(env, err, NAPI_AUTO_LENGTH, &argv[3]);
  else napi_get_null(env, &argv[3]);
  napi_create_int32(env, type, &argv[4]);
  napi_create_int32(env, code, &argv[5]);
  napi_get_global(env, &global);
  napi_call_function(env, global, cb, 6, argv, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  return pending ? -1 : 0; /* poll_reader.h reports a pending exception */
}

static int u16(const unsigned char *p) { return p[0] << 8 | p[1]; }

/* The errno a raw socket's ICMP error stands for, as the kernel's icmp_err_convert / icmpv6_err_convert would say. */
static const char *raw_error_name(int v6, int type, int code) {
  if (!v6) {
    if (type == ICMP4_TIME_EXCEEDED) return "EHOSTUNREACH";
    if (type == ICMP4_PARAM_PROBLEM) return "EPROTO";
    if (code == 0 || code == 6 || code == 9 || code == 11) return "ENETUNREACH";
    if (code == 4) return "EMSGSIZE";
    return "EHOSTUNREACH";
  }
  if (type == ICMP6_PACKET_TOO_BIG) return "EMSGSIZE";
  if (type == ICMP6_PARAM_PROB) return "EPROTO";
  if (type == ICMP6_DST_UNREACH && code == 0) return "ENETUNREACH";
  return "EHOSTUNREACH";
}

/* Ping socket: ICMP errors queued by IP_RECVERR. The data read is the echo request they quote, from its ICMP header. */
static int drain_errors(napi_env env, napi_value cb, int fd, ping_reader_t *r) {
  for (int i = 0; i < PING_BUDGET; i++) {
    struct sockaddr_storage from;
    struct iovec iov = {.iov_base = r->buf, .iov_len = sizeof r->buf};
    struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = r->ctrl, .msg_controllen = sizeof r->ctrl};
    ssize_t n = recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return 0; /* EAGAIN: the queue is empty */
    }
    struct sock_extended_err *ee = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
      if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) || (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR))
        ee = (struct sock_extended_err *)CMSG_DATA(c);
    }
    if (ee == NULL || n < 8) continue;
    const void *dst = r->family == 6 ? (const void *)&((struct sockaddr_in6 *)&from)->sin6_addr : (const void *)&((struct sockaddr_in *)&from)->sin_addr;
    int icmp = ee->ee_origin == SO_EE_ORIGIN_ICMP || ee->ee_origin == SO_EE_ORIGIN_ICMP6;
    if (emit(env, cb, r->family, dst, u16(r->buf + 6), NULL, 0, errno_name((int)ee->ee_errno), icmp ? ee->ee_type : -1, icmp ? ee->ee_code : -1) < 0) return -1;
  }
  return 0;
}

/* One datagram read from a raw socket: ours (our identifier) or not, a reply or an error. */
static int raw_message(napi_env env, napi_value cb, ping_reader_t *r, struct sockaddr_storage *from, size_t n) {
  const unsigned char *m = r->buf;
  if (r->family == 4) {
    /* raw(7): an IPv4 raw socket reads the IP header too. */
    if (n < 20) return 0;
    size_t ihl = (size_t)(m[0] & 0x0f) * 4;
    if (ihl < 20 || n < ihl + 8) return 0;
    m += ihl;
    n -= ihl;
    if (m[0] == ICMP4_ECHO_REPLY) {
      if (u16(m + 4) != r->ident) return 0;
      return emit(env, cb, 4, &((struct sockaddr_in *)from)->sin_addr, u16(m + 6), m + 8, n - 8, NULL, 0, 0);
    }
    /* An error quotes our request: its IP header, then at least 8 bytes of ICMP (RFC 792). */
    const unsigned char *q = m + 8;
    size_t qn = n - 8;
    if (qn < 20 || q[9] != IPPROTO_ICMP) return 0;
    size_t qihl = (size_t)(q[0] & 0x0f) * 4;
    if (qihl < 20 || qn < qihl + 8 || q[qihl] != ICMP4_ECHO || u16(q + qihl + 4) != r->ident) return 0;
    return emit(env, cb, 4, q + 16, u16(q + qihl + 6), NULL, 0, raw_error_name(0, m[0], m[1]), m[0], m[1]);
  }
  /* RFC 3542 §3: an ICMPv6 raw socket reads from the ICMPv6 header on. */
  if (n < 8) return 0;
  if (m[0] == ICMP6_ECHO_REP) {
    if (u16(m + 4) != r->ident) return 0;
    return emit(env, cb, 6, &((struct sockaddr_in6 *)from)->sin6_addr, u16(m + 6), m + 8, n - 8, NULL, 0, 0);
  }
  /* RFC 4443 §3: the invoking packet follows the 8-byte header. Extension headers in the quote are not walked. */
  const unsigned char *q = m + 8;
  if (n < 8 + 40 + 8 || q[6] != IPPROTO_ICMPV6 || q[40] != ICMP6_ECHO_REQ || u16(q + 44) != r->ident) return 0;
  return emit(env, cb, 6, q + 24, u16(q + 46), NULL, 0, raw_error_name(1, m[0], m[1]), m[0], m[1]);
}

static void ping_deliver(napi_env env, napi_value cb, int fd, void *state) {
  ping_reader_t *r = (ping_reader_t *)state;
  if (!r->raw && drain_errors(env, cb, fd, r) < 0) return;
  for (int i = 0; i < PING_BUDGET; i++) {
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, r->buf, sizeof r->buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      continue; /* EINTR, or the socket's pending error handed out once (its detail came from the error queue) */
    }
    int rc;
    if (r->raw) rc = raw_message(env, cb, r, &from, (size_t)n);
    else if (n >= 8 && r->buf[0] == (r->family == 6 ? ICMP6_ECHO_REP : ICMP4_ECHO_REPLY)) {
      /* A ping socket reads the ICMP message only, and only replies to its own identifier. */
      const void *src = r->family == 6 ? (const void *)&((struct sockaddr_in6 *)&from)->sin6_addr : (const void *)&((struct sockaddr_in *)&from)->sin_addr;
      rc = emit(env, cb, r->family, src, u16(r->buf + 6), r->buf + 8, (size_t)n - 8, NULL, 0, 0);
    } else rc = 0;
    if (rc < 0) return;
  }
}

/* pingStartReader(fd, family, raw, ident, cb) -> { stop() } */
static napi_value ping_start_reader(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd, family, ident;
  bool raw;
  if (argc < 5 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &family) != napi_ok ||
      napi_get_value_bool(env, argv[2], &raw) != napi_ok || napi_get_value_int32(env, argv[3], &ident) != napi_ok || (family != 4 && family != 6)) {
    napi_throw_type_error(env, "ERR_WGNET_INVALID_ARGUMENT", "pingStartReader(fd, family, raw, ident, callback)");
    return NULL;
  }
  ping_reader_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    napi_throw_error(env, "ERR_WGNET_NATIVE", "out of memory");
    return NULL;
  }
  r->family = family;
  r->raw = raw;
  r->ident = ident;
  return pr_start(env, fd, argv[4], ping_deliver, r, "wgnet:ping");
}

/* Called from udp.c's module init: the echo functions live in the same addon (one prebuild to ship and load). */
void wgnet_ping_define(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"pingOpen", NULL, ping_open, NULL, NULL, NULL, napi_default, NULL},
      {"pingSend", NULL, ping_send, NULL, NULL, NULL, napi_default, NULL},
      {"pingStartReader", NULL, ping_start_reader, NULL, NULL, NULL, napi_default, NULL},
      {"pingClose", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
