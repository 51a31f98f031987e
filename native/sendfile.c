/* sendfile(2) for HTTP boot file bodies (issue 21, the 1,000-PXE-client bench).
 *
 * Node copies every byte of a file into a socket through user space (a write of a Buffer);
 * nginx hands the kernel the file and the socket (sendfile), and on loopback that is ~300 ms
 * less system + user CPU per GiB (docs/benchmarks.md). This part is mechanism only: "send LEN
 * bytes of the file at PATH from OFFSET to this socket, tell me when done". Which file, which
 * range, the headers, and what to do after are decided in TypeScript (server/services/http/
 * sendfile.ts).
 *
 * Design:
 * - A small fixed pool of threads (started on the first send) shares one epoll set; each send
 *   is a job with its own dup() of the socket (so Node closing its fd mid-body can never make
 *   a job write into a reused fd number) and its own file descriptor. A job is armed with
 *   EPOLLOUT | EPOLLONESHOT, so one thread at a time works on it; it sends until EAGAIN (then
 *   re-arms) or at most SLICE bytes per turn (then re-arms, so one fast client cannot starve
 *   the others).
 * - Completion (sent, errno) goes back to JavaScript through one thread-safe function.
 * - Cancel (Node's socket closed, server close) and the idle bound (no byte taken by the client
 *   for idle_ms) both work the same way: mark the job and shutdown(2) its socket, which wakes
 *   epoll (tcp_poll reports EPOLLOUT|EPOLLHUP on a shut socket) so the owning thread ends it.
 *   The job table is under one mutex; a job's socket is shut or closed only under it, so a
 *   shutdown never hits an fd already closed and reused.
 */
#include "forge_native.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 4
/* Bytes one turn of one job may send before it yields the thread to other ready jobs. */
#define SLICE (4u * 1024u * 1024u)

enum kill_reason { KILL_NONE = 0, KILL_CANCEL = 1, KILL_IDLE = 2 };

typedef struct job {
  uint32_t id;
  int sock;
  int file;
  off_t offset;
  uint64_t left;
  uint64_t sent;
  uint32_t idle_ms;
  int64_t last_progress_ms;
  int kill; /* enum kill_reason, under table_lock */
  struct job *next;
} job;

typedef struct done_msg {
  uint32_t id;
  int err;
  double sent;
} done_msg;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static job *jobs = NULL; /* every live job, under table_lock */
static uint32_t active = 0;
static uint32_t next_id = 1;
static int epfd = -1;
static int stopfd = -1;
static int nthreads = 0;
static pthread_t threads[MAX_THREADS];
static napi_threadsafe_function on_done = NULL;
static int64_t last_scan_ms = 0;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remove the job from the table, close its descriptors and report it. */
static void finish(job *j, int err) {
  pthread_mutex_lock(&table_lock);
  /* A job shut by cancel or the idle bound fails with EPIPE or ends here: say why instead. */
  if (j->left > 0 && j->kill == KILL_IDLE) err = ETIMEDOUT;
  else if (j->left > 0 && j->kill == KILL_CANCEL) err = ECANCELED;
  for (job **p = &jobs; *p != NULL; p = &(*p)->next) {
    if (*p == j) {
      *p = j->next;
      break;
    }
  }
  active--;
  epoll_ctl(epfd, EPOLL_CTL_DEL, j->sock, NULL);
  close(j->sock);
  close(j->file);
  pthread_mutex_unlock(&table_lock);
  done_msg *m = malloc(sizeof *m);
  if (m != NULL) {
    m->id = j->id;
    m->err = err;
    m->sent = (double)j->sent;
    if (napi_call_threadsafe_function(on_done, m, napi_tsfn_blocking) != napi_ok) free(m);
  }
  free(j);
}

static void arm(job *j) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLOUT | EPOLLONESHOT;
  ev.data.ptr = j;
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, j->sock, &ev) != 0) finish(j, errno);
}

/* One turn of a job: send until EAGAIN, the end, an error, or SLICE bytes. */
static void run(job *j) {
  int killed;
  pthread_mutex_lock(&table_lock);
  killed = j->kill;
  pthread_mutex_unlock(&table_lock);
  if (killed != KILL_NONE) {
    finish(j, 0);
    return;
  }
  uint64_t turn = 0;
  while (j->left > 0 && turn < SLICE) {
    size_t want = j->left < (uint64_t)(SLICE - turn) ? (size_t)j->left : (size_t)(SLICE - turn);
    ssize_t n = sendfile(j->sock, j->file, &j->offset, want);
    if (n > 0) {
      j->left -= (uint64_t)n;
      j->sent += (uint64_t)n;
      turn += (uint64_t)n;
      continue;
    }
    if (n == 0) {
      /* The file ended before the promised length (truncated while sent). */
      finish(j, ENODATA);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    finish(j, errno);
    return;
  }
  if (turn > 0) {
    pthread_mutex_lock(&table_lock);
    j->last_progress_ms = now_ms();
    pthread_mutex_unlock(&table_lock);
  }
  if (j->left == 0) {
    finish(j, 0);
    return;
  }
  arm(j);
}

/* Jobs whose client took nothing for idle_ms are shut, which wakes their thread. */
static void scan_idle(void) {
  int64_t now = now_ms();
  pthread_mutex_lock(&table_lock);
  if (now - last_scan_ms >= 500) {
    last_scan_ms = now;
    for (job *j = jobs; j != NULL; j = j->next) {
      if (j->kill == KILL_NONE && j->idle_ms > 0 && now - j->last_progress_ms >= (int64_t)j->idle_ms) {
        j->kill = KILL_IDLE;
        shutdown(j->sock, SHUT_RDWR);
      }
    }
  }
  pthread_mutex_unlock(&table_lock);
}

static void *worker(void *arg) {
  (void)arg;
  struct epoll_event evs[32];
  for (;;) {
    int n = epoll_wait(epfd, evs, 32, 500);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) return NULL; /* the stop eventfd (level-triggered: wakes all) */
      run((job *)evs[i].data.ptr);
    }
    scan_idle();
  }
  return NULL;
}

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  done_msg *m = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[3], undef;
    if (napi_create_uint32(env, m->id, &argv[0]) == napi_ok && napi_create_int32(env, m->err, &argv[1]) == napi_ok &&
        napi_create_double(env, m->sent, &argv[2]) == napi_ok && napi_get_undefined(env, &undef) == napi_ok) {
      napi_call_function(env, undef, cb, 3, argv, NULL);
    }
  }
  free(m);
}

static void stop_all(void *arg) {
  (void)arg;
  if (nthreads == 0) return;
  uint64_t one = 1;
  if (write(stopfd, &one, sizeof one) < 0) return;
  for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
  nthreads = 0;
}

static int start_threads(napi_env env, int want) {
  epfd = epoll_create1(EPOLL_CLOEXEC);
  stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epfd < 0 || stopfd < 0) return -1;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = NULL;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, stopfd, &ev) != 0) return -1;
  for (int i = 0; i < want; i++) {
    if (pthread_create(&threads[i], NULL, worker, NULL) != 0) break;
    nthreads++;
  }
  if (nthreads == 0) return -1;
  napi_add_env_cleanup_hook(env, stop_all, NULL);
  return 0;
}

static int32_t arg_i32(napi_env env, napi_value v, int *ok) {
  int32_t x = 0;
  if (napi_get_value_int32(env, v, &x) != napi_ok) *ok = 0;
  return x;
}

/* sendfileSetup(onDone(id, errno, sent), threads): once, before the first send. */
static napi_value setup(napi_env env, napi_callback_info info) {
  napi_value argv[2], name;
  if (!forge_args(env, info, 2, argv, "sendfileSetup(onDone, threads)")) return NULL;
  if (on_done != NULL) {
    napi_throw_error(env, "FORGE_NATIVE", "sendfileSetup: already set up");
    return NULL;
  }
  int ok = 1;
  int32_t want = arg_i32(env, argv[1], &ok);
  if (!ok || want < 1 || want > MAX_THREADS) {
    napi_throw_range_error(env, "FORGE_NATIVE", "sendfileSetup: threads must be 1-4");
    return NULL;
  }
  FORGE_NAPI(env, napi_create_string_utf8(env, "forge_sendfile", NAPI_AUTO_LENGTH, &name));
  FORGE_NAPI(env, napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &on_done));
  /* The sockets keep the loop alive while sends run; the addon itself must not. */
  FORGE_NAPI(env, napi_unref_threadsafe_function(env, on_done));
  if (start_threads(env, want) != 0) {
    napi_throw_error(env, "FORGE_NATIVE", "sendfileSetup: cannot start the send threads");
    return NULL;
  }
  napi_value undef;
  FORGE_NAPI(env, napi_get_undefined(env, &undef));
  return undef;
}

/* sendfileStart(socketFd, path, offset, length, idleMs) -> id; throws (errno in the message) when it cannot start. */
static napi_value start(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!forge_args(env, info, 5, argv, "sendfileStart(fd, path, offset, length, idleMs)")) return NULL;
  if (on_done == NULL) {
    napi_throw_error(env, "FORGE_NATIVE", "sendfileStart before sendfileSetup");
    return NULL;
  }
  int ok = 1;
  int32_t fd = arg_i32(env, argv[0], &ok);
  int64_t offset = 0, length = 0;
  if (napi_get_value_int64(env, argv[2], &offset) != napi_ok || napi_get_value_int64(env, argv[3], &length) != napi_ok) ok = 0;
  int32_t idle = arg_i32(env, argv[4], &ok);
  char path[4096];
  size_t plen = 0;
  if (napi_get_value_string_utf8(env, argv[1], path, sizeof path, &plen) != napi_ok || plen >= sizeof path - 1) ok = 0;
  if (!ok || fd < 0 || offset < 0 || length <= 0 || idle < 0) {
    napi_throw_type_error(env, "FORGE_NATIVE", "sendfileStart: bad argument");
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    napi_throw_error(env, "EINVAL", "sendfileStart: not a socket");
    return NULL;
  }
  int file = open(path, O_RDONLY | O_CLOEXEC);
  if (file < 0) {
    napi_throw_error(env, "ENOENT", strerror(errno));
    return NULL;
  }
  int sock = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (sock < 0) {
    int e = errno;
    close(file);
    napi_throw_error(env, "EMFILE", strerror(e));
    return NULL;
  }
  job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    close(file);
    close(sock);
    napi_throw_error(env, "ENOMEM", "sendfileStart: out of memory");
    return NULL;
  }
  j->sock = sock;
  j->file = file;
  j->offset = (off_t)offset;
  j->left = (uint64_t)length;
  j->idle_ms = (uint32_t)idle;
  j->last_progress_ms = now_ms();
  pthread_mutex_lock(&table_lock);
  j->id = next_id++;
  if (next_id == 0) next_id = 1;
  j->next = jobs;
  jobs = j;
  active++;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLOUT | EPOLLONESHOT;
  ev.data.ptr = j;
  uint32_t id = j->id;
  int added = epoll_ctl(epfd, EPOLL_CTL_ADD, sock, &ev);
  int e = errno;
  if (added != 0) {
    jobs = j->next;
    active--;
  }
  pthread_mutex_unlock(&table_lock);
  if (added != 0) {
    close(file);
    close(sock);
    free(j);
    napi_throw_error(env, "EPOLL", strerror(e));
    return NULL;
  }
  napi_value out;
  FORGE_NAPI(env, napi_create_uint32(env, id, &out));
  return out;
}

/* sendfileCancel(id) -> whether the job was live; its onDone follows with ECANCELED (or its real end). */
static napi_value cancel(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  uint32_t id = 0;
  if (!forge_args(env, info, 1, argv, "sendfileCancel(id)")) return NULL;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, "FORGE_NATIVE", "sendfileCancel(id)");
    return NULL;
  }
  int found = 0;
  pthread_mutex_lock(&table_lock);
  for (job *j = jobs; j != NULL; j = j->next) {
    if (j->id == id) {
      found = 1;
      if (j->kill == KILL_NONE) {
        j->kill = KILL_CANCEL;
        shutdown(j->sock, SHUT_RDWR);
      }
      break;
    }
  }
  pthread_mutex_unlock(&table_lock);
  FORGE_NAPI(env, napi_get_boolean(env, found, &out));
  return out;
}

/* sendfileActive() -> jobs not yet finished (for tests and metrics). */
static napi_value count(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  pthread_mutex_lock(&table_lock);
  uint32_t n = active;
  pthread_mutex_unlock(&table_lock);
  FORGE_NAPI(env, napi_create_uint32(env, n, &out));
  return out;
}

napi_value forge_sendfile_init(napi_env env, napi_value exports) {
  if (forge_add_function(env, exports, "sendfileSetup", setup) == NULL) return NULL;
  if (forge_add_function(env, exports, "sendfileStart", start) == NULL) return NULL;
  if (forge_add_function(env, exports, "sendfileCancel", cancel) == NULL) return NULL;
  if (forge_add_function(env, exports, "sendfileActive", count) == NULL) return NULL;
  return exports;
}
