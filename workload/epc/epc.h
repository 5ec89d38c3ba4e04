/*
 * Shared runtime of the LTE core testbed (epc-enb, epc-mme, epc-hss, epc-sgw, epc-pgw,
 * epc-rogue-gw), modelled on OpenAirInterface's EPC:
 *   - ITTI-like tasks: one named OS thread per task (TASK_S1AP, TASK_S11…), each with a
 *     message queue woken through an eventfd, as OAI's ITTI does, so that binary hash +
 *     thread name carry the roles and inter-task hand-offs are real IPC;
 *   - one binary message header for every interface (a stand-in for S1AP/NAS ASN.1,
 *     Diameter AVPs and GTPv2-C IEs) padded to realistic message sizes;
 *   - counters per interface and per event, printed as one JSON line on stdout;
 *   - a seeded PRNG with the distributions the traffic model needs (no libm: own ln/exp/sin).
 * Everything is static so each program is one translation unit: cc -O2 -Wall -pthread.
 */
#ifndef EPC_H
#define EPC_H
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UNUSED __attribute__((unused))
#define MAXUE 4096
#define MAXMSG 2048

/* ------------------------------------------------------------------ arguments */

static UNUSED long arg_long(int argc, char **argv, const char *name, long def) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return atol(argv[i + 1]);
  return def;
}

static UNUSED const char *arg_str(int argc, char **argv, const char *name, const char *def) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

static UNUSED void die(const char *what) {
  fprintf(stderr, "%s: %s\n", what, strerror(errno));
  exit(2);
}

/* "ip:port" (or "ip" with def_port) into an address */
static UNUSED struct sockaddr_in parse_addr(const char *s, int def_port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)def_port)};
  char ip[64];
  snprintf(ip, sizeof ip, "%s", s);
  char *colon = strchr(ip, ':');
  if (colon) {
    *colon = 0;
    a.sin_port = htons((uint16_t)atoi(colon + 1));
  }
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "bad address '%s'\n", s);
    exit(2);
  }
  return a;
}

/* ------------------------------------------------------------------ time */

static UNUSED long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static UNUSED long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static UNUSED void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* ------------------------------------------------------------------ random numbers */

typedef struct {
  uint64_t s;
} rng_t;

/* splitmix64 of (seed, stream): every thread gets its own reproducible stream */
static UNUSED void rng_seed(rng_t *r, uint64_t seed, uint64_t stream) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + stream * 0xD1B54A32D192ED03ULL + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  r->s = (z ^ (z >> 31)) | 1;
}

static UNUSED uint64_t rng_next(rng_t *r) { /* xorshift64* */
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545F4914F6CDD1DULL;
}

/* uniform in (0, 1), never 0 so ln() is defined */
static UNUSED double rng_unif(rng_t *r) { return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0; }

static UNUSED long rng_range(rng_t *r, long lo, long hi) { return lo + (long)(rng_next(r) % (uint64_t)(hi - lo + 1)); }

/* ln, exp and sin without libm (the build links libc and pthreads only) */
static UNUSED double m_ln(double x) {
  if (x <= 0) return -1e300;
  int e = 0;
  while (x >= 2) x /= 2, e++;
  while (x < 1) x *= 2, e--;
  double z = (x - 1) / (x + 1), z2 = z * z, term = z, sum = 0;
  for (int k = 1; k < 40; k += 2) sum += term / k, term *= z2;
  return 2 * sum + e * 0.69314718055994530942;
}

static UNUSED double m_exp(double x) {
  if (x > 700) x = 700;
  if (x < -700) return 0;
  int k = (int)(x / 0.69314718055994530942);
  double r = x - k * 0.69314718055994530942, term = 1, sum = 1;
  for (int i = 1; i < 30; i++) term *= r / i, sum += term;
  while (k > 0) sum *= 2, k--;
  while (k < 0) sum /= 2, k++;
  return sum;
}

static UNUSED double m_sin(double x) {
  const double pi = 3.14159265358979323846;
  x -= (double)(long)(x / (2 * pi)) * 2 * pi;
  if (x > pi) x -= 2 * pi;
  if (x < -pi) x += 2 * pi;
  double term = x, sum = x;
  for (int i = 1; i < 15; i++) term *= -x * x / ((2 * i) * (2 * i + 1)), sum += term;
  return sum;
}

static UNUSED double rng_exp(rng_t *r, double mean) { return -mean * m_ln(rng_unif(r)); }

/* standard normal by Irwin–Hall: plenty for a traffic model */
static UNUSED double rng_normal(rng_t *r) {
  double s = 0;
  for (int i = 0; i < 12; i++) s += rng_unif(r);
  return s - 6;
}

static UNUSED double rng_lognormal(rng_t *r, double median, double sigma) { return median * m_exp(sigma * rng_normal(r)); }

static UNUSED double rng_pareto(rng_t *r, double xm, double alpha) { return xm * m_exp(-m_ln(rng_unif(r)) / alpha); }

static UNUSED double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ------------------------------------------------------------------ counters */

/* A fixed table so the PGW's supervisor can keep it in shared memory across restarts of its
   worker; increments are atomic, only inserting a new name takes the spin lock. */
#define MAXSTAT 128
typedef struct {
  char name[44];
  long v;
} stat_t;
typedef struct {
  int lock;
  int n;
  stat_t s[MAXSTAT];
} stats_t;

static stats_t *g_stats;
static const char *g_component = "?";

static UNUSED void stats_init(const char *component) {
  g_component = component;
  g_stats = mmap(NULL, sizeof(stats_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (g_stats == MAP_FAILED) die("mmap stats");
}

static long *stat_slot(const char *name) {
  int n = __atomic_load_n(&g_stats->n, __ATOMIC_ACQUIRE);
  for (int i = 0; i < n; i++)
    if (strcmp(g_stats->s[i].name, name) == 0) return &g_stats->s[i].v;
  while (__atomic_test_and_set(&g_stats->lock, __ATOMIC_ACQUIRE)) {
  }
  long *slot = NULL;
  for (int i = 0; i < g_stats->n && !slot; i++)
    if (strcmp(g_stats->s[i].name, name) == 0) slot = &g_stats->s[i].v;
  if (!slot && g_stats->n < MAXSTAT) {
    stat_t *s = &g_stats->s[g_stats->n];
    snprintf(s->name, sizeof s->name, "%s", name);
    slot = &s->v;
    __atomic_store_n(&g_stats->n, g_stats->n + 1, __ATOMIC_RELEASE);
  }
  __atomic_clear(&g_stats->lock, __ATOMIC_RELEASE);
  static long overflow;
  return slot ? slot : &overflow;
}

static UNUSED void stat_add(const char *name, long n) { __atomic_fetch_add(stat_slot(name), n, __ATOMIC_RELAXED); }
static UNUSED void stat_set(const char *name, long v) { __atomic_store_n(stat_slot(name), v, __ATOMIC_RELAXED); }
static UNUSED long stat_get(const char *name) { return __atomic_load_n(stat_slot(name), __ATOMIC_RELAXED); }
static UNUSED void ev(const char *name) { stat_add(name, 1); }

/* per-interface message and byte counters: "<iface>.tx_msgs", "<iface>.rx_bytes"… */
static UNUSED void io_count(const char *iface, int tx, long bytes) {
  char k[48];
  snprintf(k, sizeof k, "%s.%s_msgs", iface, tx ? "tx" : "rx");
  stat_add(k, 1);
  snprintf(k, sizeof k, "%s.%s_bytes", iface, tx ? "tx" : "rx");
  stat_add(k, bytes);
}

/* one JSON line: {"type":…,"component":…,"pid":…,"t":ms,"counters":{…}} */
static UNUSED void stats_print(const char *type) {
  char line[16384];
  int o = snprintf(line, sizeof line, "{\"type\":\"%s\",\"component\":\"%s\",\"pid\":%d,\"t\":%lld,\"counters\":{", type, g_component, (int)getpid(), now_ms());
  int n = __atomic_load_n(&g_stats->n, __ATOMIC_ACQUIRE);
  for (int i = 0; i < n && o < (int)sizeof line - 128; i++)
    o += snprintf(line + o, sizeof line - o, "%s\"%s\":%ld", i ? "," : "", g_stats->s[i].name, __atomic_load_n(&g_stats->s[i].v, __ATOMIC_RELAXED));
  o += snprintf(line + o, sizeof line - o, "}}\n");
  fputs(line, stdout);
  fflush(stdout);
}

/* ------------------------------------------------------------------ messages */

/* One header for every interface; fields are reused per message the way IEs would be. */
typedef struct __attribute__((packed)) {
  uint8_t type;  /* message type, below */
  uint8_t nas;   /* NAS message carried (S1AP/RRC), 0 if none */
  uint16_t len;  /* total length including this header */
  uint32_t ue;   /* subscriber index (stands for IMSI / S1AP ids) */
  uint32_t teid; /* tunnel id */
  uint32_t seq;  /* transaction sequence number */
  uint32_t ip;   /* F-TEID address (network order) */
  uint16_t port; /* F-TEID port (host order) */
  uint16_t cause;
  uint32_t val;  /* recovery counter, requested downlink bytes, paging flag… */
} hdr_t;

enum {
  /* S1AP (eNB <-> MME) */
  S1_SETUP_REQ = 1, S1_SETUP_RSP, S1_INITIAL_UE, S1_DL_NAS, S1_UL_NAS, S1_ICS_REQ, S1_ICS_RSP,
  S1_CTX_REL_REQ, S1_CTX_REL_CMD, S1_CTX_REL_CPL, S1_PAGING,
  /* NAS (carried in S1AP and RRC) */
  NAS_ATTACH_REQ = 32, NAS_AUTH_REQ, NAS_AUTH_RSP, NAS_SMC, NAS_SMC_CPL, NAS_ATTACH_ACCEPT, NAS_ATTACH_CPL,
  NAS_ATTACH_REJ, NAS_SERVICE_REQ, NAS_DETACH_REQ, NAS_DETACH_ACCEPT, NAS_SERVICE_REJ,
  /* S6a (Diameter-like, MME <-> HSS) */
  S6A_AIR = 64, S6A_AIA, S6A_ULR, S6A_ULA,
  /* GTPv2-C (S11 MME <-> SGW, S5/S8-C SGW <-> PGW) */
  GTPC_ECHO_REQ = 96, GTPC_ECHO_RSP, GTPC_CS_REQ, GTPC_CS_RSP, GTPC_MB_REQ, GTPC_MB_RSP, GTPC_DS_REQ, GTPC_DS_RSP,
  GTPC_RAB_REQ, GTPC_RAB_RSP, GTPC_DDN, GTPC_DDN_ACK, GTPC_PGW_RESTART, GTPC_PGW_RESTART_ACK,
  /* GTP-U */
  GTPU_GPDU = 128,
  /* radio between the simulated UEs and the eNB's RRC */
  RRC_CONN_REQ = 160, RRC_UL_NAS, RRC_DL_NAS, RRC_PAGING, RRC_RECONF, RRC_RELEASE, RRC_DATA_UL, RRC_DATA_DL,
  /* task-internal (never on a wire) */
  INT_FIRST = 200, INT_DL_BUFFERED, INT_FLUSH, INT_DL_BURST, INT_UL_REQ, INT_SESSION_DEL,
};

#define CAUSE_OK 16
#define CAUSE_NO_PEER 100
#define CAUSE_UNKNOWN 64

/* Sizes near the real encodings (S1AP APER + NAS, Diameter AVPs, GTPv2 IEs) */
static UNUSED int base_size(int type) {
  switch (type) {
  case S1_SETUP_REQ: return 64;
  case S1_SETUP_RSP: return 52;
  case S1_INITIAL_UE: return 60;
  case S1_DL_NAS: return 40;
  case S1_UL_NAS: return 46;
  case S1_ICS_REQ: return 172;
  case S1_ICS_RSP: return 42;
  case S1_CTX_REL_REQ: return 32;
  case S1_CTX_REL_CMD: return 30;
  case S1_CTX_REL_CPL: return 28;
  case S1_PAGING: return 44;
  case NAS_ATTACH_REQ: return 112;
  case NAS_AUTH_REQ: return 36;
  case NAS_AUTH_RSP: return 14;
  case NAS_SMC: return 28;
  case NAS_SMC_CPL: return 20;
  case NAS_ATTACH_ACCEPT: return 94;
  case NAS_ATTACH_CPL: return 12;
  case NAS_ATTACH_REJ: return 8;
  case NAS_SERVICE_REQ: return 8;
  case NAS_DETACH_REQ: return 20;
  case NAS_DETACH_ACCEPT: return 6;
  case NAS_SERVICE_REJ: return 6;
  case S6A_AIR: return 284;
  case S6A_AIA: return 428;
  case S6A_ULR: return 316;
  case S6A_ULA: return 712;
  case GTPC_ECHO_REQ: case GTPC_ECHO_RSP: return 30;
  case GTPC_CS_REQ: return 262;
  case GTPC_CS_RSP: return 186;
  case GTPC_MB_REQ: return 84;
  case GTPC_MB_RSP: return 62;
  case GTPC_DS_REQ: return 42;
  case GTPC_DS_RSP: return 34;
  case GTPC_RAB_REQ: return 32;
  case GTPC_RAB_RSP: return 34;
  case GTPC_DDN: return 44;
  case GTPC_DDN_ACK: return 34;
  case GTPC_PGW_RESTART: return 46;
  case GTPC_PGW_RESTART_ACK: return 34;
  case RRC_CONN_REQ: return 32;
  case RRC_UL_NAS: return 20;
  case RRC_DL_NAS: return 20;
  case RRC_PAGING: return 26;
  case RRC_RECONF: return 84;
  case RRC_RELEASE: return 22;
  default: return (int)sizeof(hdr_t);
  }
}

/* An inter-task message: a wire message plus where it came from / goes to. */
typedef struct imsg {
  struct imsg *next;
  int fd;                  /* TCP connection it came on or goes to (-1: the task's default) */
  int inbound;             /* 1: came in from the network, going up to the application task */
  struct sockaddr_in addr; /* UDP peer it came from or goes to */
  int len;
  unsigned char buf[MAXMSG];
} imsg;

static UNUSED hdr_t *H(imsg *m) { return (hdr_t *)m->buf; }

/* A message of `type` carrying `nas` (0: none), `extra` payload bytes on top of the nominal
   size (user data), payload filled so it is not all zeros. */
static UNUSED imsg *msg_new(int type, int nas, uint32_t ue, int extra) {
  imsg *m = calloc(1, sizeof *m);
  if (!m) die("calloc");
  m->fd = -1;
  int len = base_size(type) + (nas ? base_size(nas) : 0) + extra;
  if (len < (int)sizeof(hdr_t)) len = sizeof(hdr_t);
  if (len > MAXMSG) len = MAXMSG;
  m->len = len;
  hdr_t *h = H(m);
  h->type = (uint8_t)type;
  h->nas = (uint8_t)nas;
  h->len = (uint16_t)len;
  h->ue = ue;
  h->cause = CAUSE_OK;
  for (int i = sizeof(hdr_t); i < len; i++) m->buf[i] = (unsigned char)(i * 31 + ue * 7 + type);
  return m;
}

static UNUSED imsg *msg_dup(const imsg *src) {
  imsg *m = malloc(sizeof *m);
  if (!m) die("malloc");
  memcpy(m, src, sizeof *m);
  m->next = NULL;
  return m;
}

/* ------------------------------------------------------------------ sockets */

static UNUSED int udp_bind(const char *ip, int port) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  int one = 1, big = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  struct sockaddr_in a = parse_addr(ip, port);
  a.sin_port = htons((uint16_t)port);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind udp");
  return s;
}

static UNUSED int tcp_listen(const char *ip, int port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = parse_addr(ip, port);
  a.sin_port = htons((uint16_t)port);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind tcp");
  if (listen(s, 16) < 0) die("listen");
  return s;
}

/* connect, retrying while the peer is not up yet (components start in any order) */
static UNUSED int tcp_connect_retry(struct sockaddr_in a) {
  for (;;) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
      int one = 1;
      setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return s;
    }
    close(s);
    sleep_ms(200);
  }
}

static UNUSED int write_all(int fd, const void *p, size_t n) {
  const char *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_full(int fd, void *p, size_t n) {
  char *b = p;
  while (n > 0) {
    ssize_t r = read(fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    b += r;
    n -= (size_t)r;
  }
  return 0;
}

/* one framed message off a stream (the header carries the length); NULL at EOF */
static UNUSED imsg *tcp_recv_msg(int fd) {
  imsg *m = calloc(1, sizeof *m);
  if (!m) die("calloc");
  if (read_full(fd, m->buf, sizeof(hdr_t)) < 0 || H(m)->len < sizeof(hdr_t) || H(m)->len > MAXMSG ||
      read_full(fd, m->buf + sizeof(hdr_t), H(m)->len - sizeof(hdr_t)) < 0) {
    free(m);
    return NULL;
  }
  m->len = H(m)->len;
  m->fd = fd;
  return m;
}

static UNUSED imsg *udp_recv_msg(int fd) {
  imsg *m = calloc(1, sizeof *m);
  if (!m) die("calloc");
  socklen_t al = sizeof m->addr;
  ssize_t n = recvfrom(fd, m->buf, MAXMSG, 0, (struct sockaddr *)&m->addr, &al);
  if (n < (ssize_t)sizeof(hdr_t)) {
    free(m);
    return NULL;
  }
  m->len = (int)n;
  m->fd = fd;
  return m;
}

static UNUSED int udp_send_msg(int fd, imsg *m, struct sockaddr_in to) {
  H(m)->len = (uint16_t)m->len;
  return sendto(fd, m->buf, (size_t)m->len, 0, (struct sockaddr *)&to, sizeof to) == m->len ? 0 : -1;
}

static UNUSED int same_addr(struct sockaddr_in a, struct sockaddr_in b) { return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port; }

/* ------------------------------------------------------------------ ITTI-like tasks */

typedef struct task {
  const char *name; /* thread name, ≤ 15 chars */
  int efd;          /* eventfd: the queue is not empty */
  pthread_mutex_t mu;
  imsg *head, *tail;
  int nq; /* messages queued (bounded by ITTI_QMAX) */
  int fds[64];
  int nfds;
  int tick_ms; /* on_tick period (0: none) */
  void (*on_start)(struct task *);
  void (*on_msg)(struct task *, imsg *); /* a message from another task; the framework frees it */
  void (*on_fd)(struct task *, int fd);  /* one of fds is readable */
  void (*on_tick)(struct task *);
  long long next_tick;
} task_t;

static UNUSED void task_init(task_t *t, const char *name) {
  memset(t, 0, sizeof *t);
  t->name = name;
  t->efd = eventfd(0, EFD_CLOEXEC);
  if (t->efd < 0) die("eventfd");
  pthread_mutex_init(&t->mu, NULL);
}

static UNUSED void task_add_fd(task_t *t, int fd) {
  if (t->nfds < 64) t->fds[t->nfds++] = fd;
}

static UNUSED void task_del_fd(task_t *t, int fd) {
  for (int i = 0; i < t->nfds; i++)
    if (t->fds[i] == fd) t->fds[i] = t->fds[--t->nfds];
}

/* Queues are bounded, as OAI's ITTI queues are: a task that falls behind (a peer flooding
   it, a tracer slowing it down) loses the excess, counted as "itti.<task>.dropped", instead of
   growing without bound. The sender never blocks on a full queue, so no two tasks can wait
   on each other here. */
#define ITTI_QMAX 4096

/* hand a message to a task (the ITTI send): queue it and wake the task's eventfd */
static UNUSED void itti_send(task_t *to, imsg *m) {
  m->next = NULL;
  pthread_mutex_lock(&to->mu);
  if (to->nq >= ITTI_QMAX) {
    pthread_mutex_unlock(&to->mu);
    free(m);
    char k[48];
    snprintf(k, sizeof k, "itti.%s.dropped", to->name);
    ev(k);
    return;
  }
  int was_empty = to->head == NULL;
  if (to->tail) to->tail->next = m;
  else to->head = m;
  to->tail = m;
  to->nq++;
  pthread_mutex_unlock(&to->mu);
  if (was_empty) {
    uint64_t one = 1;
    if (write(to->efd, &one, sizeof one) < 0) { /* counter overflow is impossible here */
    }
  }
}

static void *task_main(void *arg) {
  task_t *t = arg;
  pthread_setname_np(pthread_self(), t->name);
  if (t->on_start) t->on_start(t);
  t->next_tick = mono_ms() + t->tick_ms;
  for (;;) {
    struct pollfd p[65];
    int n = 0;
    p[n++] = (struct pollfd){.fd = t->efd, .events = POLLIN};
    for (int i = 0; i < t->nfds; i++) p[n++] = (struct pollfd){.fd = t->fds[i], .events = POLLIN};
    int timeout = -1;
    if (t->tick_ms > 0) {
      long long left = t->next_tick - mono_ms();
      timeout = left < 0 ? 0 : (int)left;
    }
    int r = poll(p, (nfds_t)n, timeout);
    if (r < 0 && errno != EINTR) die("poll");
    if (r > 0 && (p[0].revents & POLLIN)) {
      uint64_t v;
      if (read(t->efd, &v, sizeof v) < 0) {
      }
      pthread_mutex_lock(&t->mu);
      imsg *m = t->head;
      t->head = t->tail = NULL;
      t->nq = 0;
      pthread_mutex_unlock(&t->mu);
      while (m) {
        imsg *next = m->next;
        if (t->on_msg) t->on_msg(t, m);
        free(m);
        m = next;
      }
    }
    if (r > 0)
      for (int i = 1; i < n; i++)
        if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) t->on_fd(t, p[i].fd);
    if (t->tick_ms > 0 && mono_ms() >= t->next_tick) {
      t->next_tick += t->tick_ms;
      if (t->next_tick < mono_ms()) t->next_tick = mono_ms() + t->tick_ms;
      t->on_tick(t);
    }
  }
  return NULL;
}

static UNUSED void task_start(task_t *t) {
  pthread_t th;
  if (pthread_create(&th, NULL, task_main, t) != 0) die("pthread_create");
  pthread_detach(th);
}

/* ------------------------------------------------------------------ process life */

/* Signals are taken by the main thread only (sigtimedwait), so tasks never see them.
   SIGTERM also comes when the parent (the runner, or a tracer wrapping us) dies, so a
   crashed runner leaves no component behind. */
static UNUSED void block_signals(void) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGHUP);
  sigaddset(&s, SIGUSR1);
  sigaddset(&s, SIGUSR2);
  sigaddset(&s, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static UNUSED void print_ready(void) {
  printf("{\"type\":\"ready\",\"component\":\"%s\",\"pid\":%d,\"t\":%lld}\n", g_component, (int)getpid(), now_ms());
  fflush(stdout);
}

/* The main thread's life: optional periodic snapshots, then the final stats line on
   SIGTERM/SIGINT. Other signals go to on_signal (NULL: ignored). */
static UNUSED void main_loop(long stats_every_ms, void (*on_signal)(int)) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGHUP);
  sigaddset(&s, SIGUSR1);
  sigaddset(&s, SIGUSR2);
  sigaddset(&s, SIGCHLD);
  long long next = mono_ms() + stats_every_ms;
  for (;;) {
    long wait = stats_every_ms > 0 ? (long)(next - mono_ms()) : 3600000;
    if (wait < 0) wait = 0;
    struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
    int sig = sigtimedwait(&s, NULL, &ts);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      stats_print("stats");
      _exit(0);
    }
    if (sig > 0 && on_signal) on_signal(sig);
    if (stats_every_ms > 0 && mono_ms() >= next) {
      stats_print("snapshot");
      next += stats_every_ms;
    }
  }
}

/* ------------------------------------------------------------------ attack schedule */

/* --attack kind:startEpochMs:endEpochMs (repeatable); a program acts on the kinds it knows */
typedef struct {
  char kind[32];
  long long start, end;
  int started, ended;
} attack_t;

static attack_t g_attacks[16];
static int g_nattacks;

static UNUSED void attacks_parse(int argc, char **argv) {
  for (int i = 1; i + 1 < argc && g_nattacks < 16; i++) {
    if (strcmp(argv[i], "--attack") != 0) continue;
    attack_t *a = &g_attacks[g_nattacks];
    char kind[32];
    if (sscanf(argv[i + 1], "%31[^:]:%lld:%lld", kind, &a->start, &a->end) != 3) {
      fprintf(stderr, "bad --attack '%s' (kind:startEpochMs:endEpochMs)\n", argv[i + 1]);
      exit(2);
    }
    snprintf(a->kind, sizeof a->kind, "%s", kind);
    g_nattacks++;
  }
}

/* Is an attack of `kind` on now? Records the actual start/end times in the counters
   ("attack.<kind>.start_ms") the first time it sees each edge. Silently: the counters live in
   memory and reach the labels through the final stats line, so an attack's start and end make
   no system call of their own (a log line would be an edge no real attacker leaves in a trace). */
static UNUSED int attack_active(const char *kind) {
  long long t = now_ms();
  int on = 0;
  for (int i = 0; i < g_nattacks; i++) {
    attack_t *a = &g_attacks[i];
    if (strcmp(a->kind, kind) != 0) continue;
    char k[48];
    if (t >= a->start && t < a->end) {
      on = 1;
      if (!a->started) {
        a->started = 1;
        snprintf(k, sizeof k, "attack.%s.start_ms", kind);
        stat_set(k, t);
      }
    } else if (t >= a->end && a->started && !a->ended) {
      a->ended = 1;
      snprintf(k, sizeof k, "attack.%s.end_ms", kind);
      stat_set(k, t);
    }
  }
  return on;
}

#endif
