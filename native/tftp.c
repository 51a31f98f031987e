/* The TFTP data pump (issue 21: forge >= tftpd-hpa lock-step and >= atftpd windowed).
 *
 * A lock-step transfer is one ACK in and one DATA out per block: 45,000 round trips for a
 * 64 MiB file at blksize 1468. On Node's socket API each of them is a libuv wakeup, a
 * JavaScript callback and a send through libuv's queue; tftpd-hpa does a recv and a send.
 * This part moves only that loop off the event loop: a few threads (the count is TypeScript's),
 * each with its own epoll set and its share of the transfers, a connected socket per transfer, windows sent with one sendmmsg(2) from the file's bytes in memory
 * (header from a constant table, payload pointing into the Node Buffer: no copy).
 *
 * What stays in TypeScript (server/services/tftp/native.ts and transfer.ts): which file, the
 * negotiated options (RFC 2347-2349, 7440), the timeouts, retries, backoff cap and stall
 * bound (passed in per transfer), the stray-packet answers (ERROR 5 from the unconnected
 * socket of the port), every log line and statistic. The pump reports one end per transfer:
 * why it ended, the blocks acknowledged, retransmissions and ignored packets.
 *
 * The rules it follows are the JavaScript transfer's (transfer.ts), rule for rule:
 * - OACK first when options were acknowledged; DATA 1 only after ACK 0 (RFC 2347).
 * - An ACK moves the window to the block after it, also inside a window (RFC 7440 section 4).
 * - A duplicate ACK is never answered with DATA (Sorcerer's Apprentice, RFC 1123 4.2.3.1);
 *   only the timer retransmits, the whole unacknowledged window, with the wait doubled per
 *   timeout up to 8x the base (RFC 1123 4.2.3.2) and never past the stall bound.
 * - Block numbers wrap at 65536 (block 65536 goes out as 0), as tftpd-hpa, atftp and curl expect.
 *
 * Threads: the JS thread creates the socket (errors are thrown synchronously), queues the
 * transfer and wakes the pump through an eventfd; cancel and state lookups go through the
 * table under one mutex. Only the pump touches a transfer's window state. The end report goes
 * through one thread-safe function; it is referenced while any transfer is live, so a process
 * waiting for a transfer's end stays alive, and unreferenced when none is (an idle server's
 * addon does not keep Node running).
 */
#include "forge_native.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Datagrams per sendmmsg call (a window of 64 is RFC 7440's largest in common use). */
#define BATCH 64
#define MSG_MAX 128

enum state { ST_OACK = 0, ST_DATA = 1, ST_DONE = 2 };
enum end_reason { END_DONE = 0, END_PROBE = 1, END_ABORTED = 2, END_OACK_TIMEOUT = 3, END_TIMEOUT = 4, END_STALLED = 5, END_SOCKET = 6, END_CANCELLED = 7 };

typedef struct xfer {
  uint32_t id;
  int fd;
  napi_ref data_ref; /* the Node Buffer the payloads point into; released on the JS thread */
  const uint8_t *data;
  uint64_t size;
  uint32_t blksize, windowsize, retries, tries, retransmits, ignored;
  int64_t timeout_ms, wait_ms, due_ms, stall_ms, last_progress_ms, started_ms;
  uint64_t last_block, base, sent_up_to;
  uint8_t *oack;
  size_t oack_len;
  int state;   /* enum state, written by the pump, read by tftpState (atomics) */
  int cancel;  /* set by tftpCancel, read by the pump (atomics) */
  int owned;   /* under table_lock: the pump has taken it from the table */
  int started; /* pump only: begun and in the epoll set */
  int err_code;
  char err_msg[MSG_MAX];
  struct xfer *next_all;  /* the table, under table_lock */
  struct xfer *next_mine; /* the pump's own list */
  struct pumpctx *pump;   /* set at start, never changed */
} xfer;

typedef struct end_msg {
  uint32_t id;
  int reason;
  double acked, of, ms;
  uint32_t retransmits, ignored;
  int err_code;
  char err_msg[MSG_MAX];
  napi_ref data_ref;
} end_msg;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static xfer *all = NULL;   /* every live transfer, under table_lock */

static uint32_t next_id = 1;
/* One pump per thread; a transfer belongs to one pump for its life (id modulo the count), so
 * many transfers at once use every core, as atftpd's thread per transfer does. */
#define MAX_PUMPS 4
typedef struct pumpctx {
  int epfd, wakefd;
  xfer *mine; /* this pump's transfers */
  xfer *dead; /* ended, freed after the current batch */
  int64_t next_check; /* no transfer of this pump is due before this */
  pthread_t thread;
} pumpctx;
static pumpctx pumps[MAX_PUMPS];
static int npumps = 0;
static int running = 0;
/* The pump a thread runs (set once at its start); pump-only functions use it. */
static __thread pumpctx *self = NULL;
static napi_threadsafe_function on_end = NULL;
static uint32_t live_js = 0; /* JS thread only: started and not yet reported */
/* DATA headers of every wire block number (opcode 3, block), big-endian, made once. */
static uint8_t headers[65536 * 4];

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(pumpctx *p) {
  uint64_t one = 1;
  ssize_t r = write(p->wakefd, &one, sizeof one);
  (void)r; /* a full counter already wakes the pump */
}

/* Ends a transfer: out of the table, the epoll set and the pump's list; the report to JS. */
static void end(xfer *x, int reason, int err) {
  if (x->state == ST_DONE) return;
  __atomic_store_n(&x->state, ST_DONE, __ATOMIC_RELEASE);
  pthread_mutex_lock(&table_lock);
  for (xfer **p = &all; *p != NULL; p = &(*p)->next_all) {
    if (*p == x) {
      *p = x->next_all;
      break;
    }
  }
  pthread_mutex_unlock(&table_lock);
  for (xfer **p = &self->mine; *p != NULL; p = &(*p)->next_mine) {
    if (*p == x) {
      *p = x->next_mine;
      break;
    }
  }
  if (x->started) epoll_ctl(self->epfd, EPOLL_CTL_DEL, x->fd, NULL);
  close(x->fd);
  end_msg *m = calloc(1, sizeof *m);
  if (m != NULL) {
    m->id = x->id;
    m->reason = reason;
    m->acked = (double)x->base;
    m->of = (double)x->last_block;
    m->ms = (double)(now_ms() - x->started_ms);
    m->retransmits = x->retransmits;
    m->ignored = x->ignored;
    m->err_code = reason == END_SOCKET ? err : x->err_code; /* errno for a socket end */
    memcpy(m->err_msg, x->err_msg, sizeof m->err_msg);
    m->data_ref = x->data_ref;
    if (napi_call_threadsafe_function(on_end, m, napi_tsfn_blocking) != napi_ok) free(m);
  }
  /* Freed after the epoll batch: a later event of the same batch may still name it. */
  x->next_mine = self->dead;
  self->dead = x;
}

static void bury(void) {
  while (self->dead != NULL) {
    xfer *x = self->dead;
    self->dead = x->next_mine;
    free(x->oack);
    free(x);
  }
}

static void rearm(xfer *x, int64_t wait, int64_t now) {
  x->wait_ms = wait;
  x->due_ms = now + wait;
  if (x->due_ms < self->next_check) self->next_check = x->due_ms;
}

/* Sends blocks [from, to] with as few sendmmsg calls as the batch allows. */
static int send_blocks(xfer *x, uint64_t from, uint64_t to) {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH][2];
  while (from <= to) {
    unsigned n = 0;
    for (; n < BATCH && from + n <= to; n++) {
      uint64_t b = from + n;
      uint64_t off = (b - 1) * x->blksize;
      uint64_t len = off >= x->size ? 0 : (x->size - off < x->blksize ? x->size - off : x->blksize);
      iov[n][0].iov_base = &headers[(b & 0xffff) * 4];
      iov[n][0].iov_len = 4;
      iov[n][1].iov_base = (void *)(x->data + (off < x->size ? off : 0));
      iov[n][1].iov_len = (size_t)len;
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_iov = iov[n];
      msgs[n].msg_hdr.msg_iovlen = len > 0 ? 2 : 1;
    }
    int sent = sendmmsg(x->fd, msgs, n, MSG_DONTWAIT);
    if (sent < 0) {
      /* A full send buffer or an ICMP error queued for an earlier datagram: the timer resends. */
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED || errno == EINTR) return 0;
      return -errno;
    }
    if ((unsigned)sent < n) return 0; /* the rest is resent by the timer */
    from += n;
  }
  return 0;
}

static void send_window(xfer *x, int64_t now) {
  uint64_t from = x->base + 1;
  uint64_t to = x->base + x->windowsize < x->last_block ? x->base + x->windowsize : x->last_block;
  int r = send_blocks(x, from, to);
  if (r < 0) {
    end(x, END_SOCKET, -r);
    return;
  }
  if (to > x->sent_up_to) x->sent_up_to = to;
  rearm(x, x->timeout_ms, now);
}

static void send_oack(xfer *x) {
  if (send(x->fd, x->oack, x->oack_len, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ECONNREFUSED && errno != EINTR) end(x, END_SOCKET, errno);
}

static void begin(xfer *x, int64_t now) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = x;
  if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, x->fd, &ev) != 0) {
    end(x, END_SOCKET, errno);
    return;
  }
  x->started = 1;
  x->last_progress_ms = now;
  if (x->oack != NULL) {
    send_oack(x);
    if (x->state != ST_DONE) rearm(x, x->timeout_ms, now);
  } else {
    __atomic_store_n(&x->state, ST_DATA, __ATOMIC_RELEASE);
    send_window(x, now);
  }
}

static void on_ack(xfer *x, uint16_t wire, int64_t now) {
  if (x->state == ST_OACK) {
    if (wire != 0) return;
    __atomic_store_n(&x->state, ST_DATA, __ATOMIC_RELEASE);
    x->tries = 0;
    x->last_progress_ms = now;
    send_window(x, now);
    return;
  }
  uint16_t delta = (uint16_t)(wire - (uint16_t)(x->base & 0xffff));
  /* 0: a duplicate (only the timer retransmits); beyond what was sent: stale or bogus. */
  if (delta == 0 || delta > x->sent_up_to - x->base) return;
  x->base += delta;
  x->tries = 0;
  x->last_progress_ms = now;
  if (x->base >= x->last_block) {
    end(x, END_DONE, 0);
    return;
  }
  send_window(x, now);
}

/* Everything queued on the socket; the kernel delivers only the peer's datagrams (connected). */
static void on_readable(xfer *x) {
  uint8_t buf[4 + MSG_MAX + 516];
  if (x->state == ST_DONE) return;
  for (int i = 0; i < 256 && x->state != ST_DONE; i++) {
    ssize_t n = recv(x->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      /* ICMP port unreachable for an earlier datagram: not an end (transfer.ts says why). */
      if (errno == ECONNREFUSED) continue;
      end(x, END_SOCKET, errno);
      return;
    }
    int64_t now = now_ms();
    if (n == 4 && buf[0] == 0 && buf[1] == 4) {
      on_ack(x, (uint16_t)(buf[2] << 8 | buf[3]), now);
    } else if (n >= 4 && buf[0] == 0 && buf[1] == 5) {
      /* RFC 1350 ERROR: code, then a NUL-terminated message (copied as far as it goes). */
      x->err_code = buf[2] << 8 | buf[3];
      size_t len = (size_t)n - 4 < MSG_MAX - 1 ? (size_t)n - 4 : MSG_MAX - 1;
      memcpy(x->err_msg, buf + 4, len);
      x->err_msg[len] = 0;
      end(x, x->state == ST_OACK ? END_PROBE : END_ABORTED, 0);
      return;
    } else {
      x->ignored++;
    }
  }
}

static void on_timeout(xfer *x, int64_t now) {
  x->tries++;
  if (now - x->last_progress_ms >= x->stall_ms) {
    end(x, END_STALLED, 0);
    return;
  }
  if (x->tries > x->retries) {
    end(x, x->state == ST_OACK ? END_OACK_TIMEOUT : END_TIMEOUT, 0);
    return;
  }
  x->retransmits++;
  if (x->state == ST_OACK) {
    send_oack(x);
  } else {
    int r = send_blocks(x, x->base + 1, x->sent_up_to);
    if (r < 0) {
      end(x, END_SOCKET, -r);
      return;
    }
  }
  if (x->state == ST_DONE) return;
  int64_t wait = x->wait_ms * 2;
  if (wait > x->timeout_ms * 8) wait = x->timeout_ms * 8;
  int64_t left = x->stall_ms - (now - x->last_progress_ms);
  if (wait > left) wait = left;
  rearm(x, wait < 1 ? 1 : wait, now);
}

/* New transfers begin, cancelled ones end. */
static void on_wake(void) {
  uint64_t v;
  ssize_t r = read(self->wakefd, &v, sizeof v);
  (void)r;
  xfer *fresh = NULL;
  pthread_mutex_lock(&table_lock);
  for (xfer *x = all; x != NULL; x = x->next_all) {
    if (!x->owned && x->pump == self) {
      x->owned = 1;
      x->next_mine = fresh; /* not on the pump's list yet: the link carries this local one */
      fresh = x;
    }
  }
  pthread_mutex_unlock(&table_lock);
  int64_t now = now_ms();
  while (fresh != NULL) {
    xfer *x = fresh;
    fresh = x->next_mine;
    x->next_mine = self->mine;
    self->mine = x;
    if (__atomic_load_n(&x->cancel, __ATOMIC_ACQUIRE)) end(x, END_CANCELLED, 0);
    else begin(x, now);
  }
  for (xfer *x = self->mine, *nx; x != NULL; x = nx) {
    nx = x->next_mine;
    if (__atomic_load_n(&x->cancel, __ATOMIC_ACQUIRE)) end(x, END_CANCELLED, 0);
  }
}

static void scan_due(int64_t now) {
  self->next_check = INT64_MAX;
  for (xfer *x = self->mine, *nx; x != NULL; x = nx) {
    nx = x->next_mine;
    if (x->state == ST_DONE) continue;
    if (now >= x->due_ms) on_timeout(x, now);
    else if (x->due_ms < self->next_check) self->next_check = x->due_ms;
  }
}

static void *pump_main(void *arg) {
  self = arg;
  struct epoll_event evs[64];
  for (;;) {
    int64_t now = now_ms();
    int wait = -1;
    if (self->next_check != INT64_MAX) wait = self->next_check <= now ? 0 : (int)(self->next_check - now > 60000 ? 60000 : self->next_check - now);
    int n = epoll_wait(self->epfd, evs, 64, wait);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        if (!__atomic_load_n(&running, __ATOMIC_ACQUIRE)) return NULL;
        on_wake();
      } else {
        on_readable((xfer *)evs[i].data.ptr);
      }
    }
    now = now_ms();
    if (now >= self->next_check) scan_due(now);
    bury();
  }
  return NULL;
}

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  end_msg *m = data;
  if (env != NULL) {
    napi_delete_reference(env, m->data_ref);
    if (live_js > 0 && --live_js == 0) napi_unref_threadsafe_function(env, on_end);
    if (cb != NULL) {
      napi_value argv[9], undef;
      int ok = napi_create_uint32(env, m->id, &argv[0]) == napi_ok && napi_create_int32(env, m->reason, &argv[1]) == napi_ok &&
               napi_create_double(env, m->acked, &argv[2]) == napi_ok && napi_create_double(env, m->of, &argv[3]) == napi_ok &&
               napi_create_uint32(env, m->retransmits, &argv[4]) == napi_ok && napi_create_uint32(env, m->ignored, &argv[5]) == napi_ok &&
               napi_create_double(env, m->ms, &argv[6]) == napi_ok && napi_create_int32(env, m->err_code, &argv[7]) == napi_ok &&
               napi_create_string_latin1(env, m->err_msg, NAPI_AUTO_LENGTH, &argv[8]) == napi_ok && napi_get_undefined(env, &undef) == napi_ok;
      if (ok) napi_call_function(env, undef, cb, 9, argv, NULL);
    }
  }
  free(m);
}

static void stop_pump(void *arg) {
  (void)arg;
  if (!running) return;
  __atomic_store_n(&running, 0, __ATOMIC_RELEASE);
  for (int i = 0; i < npumps; i++) {
    wake(&pumps[i]);
    pthread_join(pumps[i].thread, NULL);
  }
  npumps = 0;
}

/* tftpSetup(onEnd(id, reason, acked, of, retransmits, ignored, ms, errorCode, errorMessage), threads): once. */
static napi_value setup(napi_env env, napi_callback_info info) {
  napi_value argv[2], name, undef;
  int32_t want = 0;
  if (!forge_args(env, info, 2, argv, "tftpSetup(onEnd, threads)")) return NULL;
  if (on_end != NULL) {
    napi_throw_error(env, "FORGE_NATIVE", "tftpSetup: already set up");
    return NULL;
  }
  if (napi_get_value_int32(env, argv[1], &want) != napi_ok || want < 1 || want > MAX_PUMPS) {
    napi_throw_range_error(env, "FORGE_NATIVE", "tftpSetup: threads must be 1-4");
    return NULL;
  }
  for (uint32_t b = 0; b < 65536; b++) {
    headers[b * 4] = 0;
    headers[b * 4 + 1] = 3;
    headers[b * 4 + 2] = (uint8_t)(b >> 8);
    headers[b * 4 + 3] = (uint8_t)b;
  }
  FORGE_NAPI(env, napi_create_string_utf8(env, "forge_tftp", NAPI_AUTO_LENGTH, &name));
  FORGE_NAPI(env, napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &on_end));
  FORGE_NAPI(env, napi_unref_threadsafe_function(env, on_end));
  running = 1;
  for (int i = 0; i < want; i++) {
    pumpctx *p = &pumps[i];
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->next_check = INT64_MAX;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    if (p->epfd < 0 || p->wakefd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) != 0 || pthread_create(&p->thread, NULL, pump_main, p) != 0) {
      if (p->epfd >= 0) close(p->epfd);
      if (p->wakefd >= 0) close(p->wakefd);
      break;
    }
    npumps++;
  }
  if (npumps == 0) {
    running = 0;
    napi_throw_error(env, "FORGE_NATIVE", "tftpSetup: cannot start a pump thread");
    return NULL;
  }
  napi_add_env_cleanup_hook(env, stop_pump, NULL);
  FORGE_NAPI(env, napi_get_undefined(env, &undef));
  return undef;
}

/* An address with an optional %scope (IPv6 link-local, as Node's rinfo gives it). */
static int parse_addr(const char *s, uint16_t port, struct sockaddr_storage *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *len = sizeof *v4;
    return 0;
  }
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (strlen(s) >= sizeof host) return -1;
  strcpy(host, s);
  char *pct = strchr(host, '%');
  if (pct != NULL) {
    *pct = 0;
    v6->sin6_scope_id = if_nametoindex(pct + 1);
    if (v6->sin6_scope_id == 0) v6->sin6_scope_id = (uint32_t)strtoul(pct + 1, NULL, 10);
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1) return -1;
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(port);
  *len = sizeof *v6;
  return 0;
}

static int get_i64(napi_env env, napi_value v, int64_t *out) { return napi_get_value_int64(env, v, out) == napi_ok; }

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  const char *code = e == EADDRINUSE ? "EADDRINUSE" : e == EMFILE ? "EMFILE" : e == ENFILE ? "ENFILE" : e == EINVAL ? "EINVAL" : "ERR_NATIVE_SOCKET";
  napi_throw_error(env, code, msg);
  return NULL;
}

/* tftpStart(localAddr, localPort, peerAddr, peerPort, data, blksize, windowsize, timeoutMs,
 *           retries, stallMs, oack | null) -> id. Binds the transfer's connected socket on the
 * port (SO_REUSEADDR, beside the JavaScript strays socket) and queues it for the pump. */
static napi_value start(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (!forge_args(env, info, 11, argv, "tftpStart(localAddr, localPort, peerAddr, peerPort, data, blksize, windowsize, timeoutMs, retries, stallMs, oack)")) return NULL;
  if (on_end == NULL) {
    napi_throw_error(env, "FORGE_NATIVE", "tftpStart before tftpSetup");
    return NULL;
  }
  char local[80], peer[80];
  size_t l1 = 0, l2 = 0;
  int64_t lport = 0, pport = 0, blksize = 0, windowsize = 0, timeout = 0, retries = 0, stall = 0;
  void *data = NULL, *oack = NULL;
  size_t size = 0, oack_len = 0;
  napi_valuetype oack_type;
  int ok = napi_get_value_string_utf8(env, argv[0], local, sizeof local, &l1) == napi_ok && napi_get_value_string_utf8(env, argv[2], peer, sizeof peer, &l2) == napi_ok &&
           get_i64(env, argv[1], &lport) && get_i64(env, argv[3], &pport) && napi_get_buffer_info(env, argv[4], &data, &size) == napi_ok && get_i64(env, argv[5], &blksize) &&
           get_i64(env, argv[6], &windowsize) && get_i64(env, argv[7], &timeout) && get_i64(env, argv[8], &retries) && get_i64(env, argv[9], &stall) &&
           napi_typeof(env, argv[10], &oack_type) == napi_ok;
  if (ok && oack_type != napi_null && oack_type != napi_undefined) ok = napi_get_buffer_info(env, argv[10], &oack, &oack_len) == napi_ok && oack_len > 0;
  if (!ok || lport < 1 || lport > 65535 || pport < 1 || pport > 65535 || blksize < 8 || blksize > 65464 || windowsize < 1 || windowsize > 65535 || timeout < 1 || retries < 0 ||
      stall < 1) {
    napi_throw_type_error(env, "FORGE_NATIVE", "tftpStart: bad argument");
    return NULL;
  }
  struct sockaddr_storage la, pa;
  socklen_t llen, plen;
  if (parse_addr(local, (uint16_t)lport, &la, &llen) != 0 || parse_addr(peer, (uint16_t)pport, &pa, &plen) != 0 || la.ss_family != pa.ss_family) {
    napi_throw_type_error(env, "FORGE_NATIVE", "tftpStart: bad address");
    return NULL;
  }
  int fd = socket(la.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "tftpStart: socket", errno);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 || bind(fd, (struct sockaddr *)&la, llen) != 0 || connect(fd, (struct sockaddr *)&pa, plen) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "tftpStart: bind/connect", e);
  }
  xfer *x = calloc(1, sizeof *x);
  uint8_t *oack_copy = oack_len > 0 ? malloc(oack_len) : NULL;
  if (x == NULL || (oack_len > 0 && oack_copy == NULL) || napi_create_reference(env, argv[4], 1, &x->data_ref) != napi_ok) {
    free(x);
    free(oack_copy);
    close(fd);
    napi_throw_error(env, "ENOMEM", "tftpStart: out of memory");
    return NULL;
  }
  if (oack_len > 0) memcpy(oack_copy, oack, oack_len);
  x->fd = fd;
  x->data = data;
  x->size = size;
  x->blksize = (uint32_t)blksize;
  x->windowsize = (uint32_t)windowsize;
  x->timeout_ms = timeout;
  x->wait_ms = timeout;
  x->retries = (uint32_t)retries;
  x->stall_ms = stall;
  /* A file of exactly k*blksize bytes ends with an empty block k+1 (RFC 1350 section 6). */
  x->last_block = size / (uint64_t)blksize + 1;
  x->oack = oack_copy;
  x->oack_len = oack_len;
  x->state = oack_len > 0 ? ST_OACK : ST_DATA;
  x->started_ms = now_ms();
  pthread_mutex_lock(&table_lock);
  x->id = next_id++;
  if (next_id == 0) next_id = 1;
  x->pump = &pumps[x->id % (uint32_t)npumps];
  x->next_all = all;
  all = x;
  uint32_t id = x->id;
  pthread_mutex_unlock(&table_lock);
  if (live_js++ == 0) napi_ref_threadsafe_function(env, on_end);
  wake(x->pump);
  napi_value out;
  FORGE_NAPI(env, napi_create_uint32(env, id, &out));
  return out;
}

static xfer *find(uint32_t id) {
  for (xfer *x = all; x != NULL; x = x->next_all)
    if (x->id == id) return x;
  return NULL;
}

/* The transfer named by a call's one id argument, under table_lock (held on return when ok). */
static int id_call(napi_env env, napi_callback_info info, const char *usage, xfer **out) {
  napi_value argv[1];
  uint32_t id = 0;
  if (!forge_args(env, info, 1, argv, usage)) return 0;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, "FORGE_NATIVE", usage);
    return 0;
  }
  pthread_mutex_lock(&table_lock);
  *out = find(id);
  return 1;
}

/* tftpCancel(id) -> whether it was live; its end (reason 7, cancelled) follows. */
static napi_value cancel(napi_env env, napi_callback_info info) {
  xfer *x;
  napi_value out;
  if (!id_call(env, info, "tftpCancel(id)", &x)) return NULL;
  pumpctx *p = x != NULL ? x->pump : NULL;
  if (x != NULL) __atomic_store_n(&x->cancel, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&table_lock);
  if (p != NULL) wake(p);
  FORGE_NAPI(env, napi_get_boolean(env, x != NULL, &out));
  return out;
}

/* tftpState(id) -> 0 waiting for ACK 0 of the OACK, 1 sending data, 2 ended (or unknown). */
static napi_value state(napi_env env, napi_callback_info info) {
  xfer *x;
  napi_value out;
  if (!id_call(env, info, "tftpState(id)", &x)) return NULL;
  int s = x == NULL ? ST_DONE : __atomic_load_n(&x->state, __ATOMIC_ACQUIRE);
  pthread_mutex_unlock(&table_lock);
  FORGE_NAPI(env, napi_create_int32(env, s, &out));
  return out;
}

/* tftpActive() -> transfers started and not yet reported (tests, metrics). */
static napi_value active(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  FORGE_NAPI(env, napi_create_uint32(env, live_js, &out));
  return out;
}

napi_value forge_tftp_init(napi_env env, napi_value exports) {
  if (forge_add_function(env, exports, "tftpSetup", setup) == NULL) return NULL;
  if (forge_add_function(env, exports, "tftpStart", start) == NULL) return NULL;
  if (forge_add_function(env, exports, "tftpCancel", cancel) == NULL) return NULL;
  if (forge_add_function(env, exports, "tftpState", state) == NULL) return NULL;
  if (forge_add_function(env, exports, "tftpActive", active) == NULL) return NULL;
  return exports;
}
