/*
 * epc-pgw: the PDN Gateway, run as a small supervisor (the process started) and a worker
 * it forks, so that a restart really ends the gateway and starts a fresh one, as a PGW
 * container relocated by the cloud's resource manager would:
 *   TASK_S5        GTPv2-C over UDP (S5/S8-C): create/delete session; answers echo
 *                  requests with its recovery counter
 *   TASK_PGW_APP   sessions and UE address allocation
 *   TASK_GTPV1_U   GTP-U over UDP (S5-U) with the SGW
 *   TASK_SGI       the Internet side: answers each uplink request with the downlink volume it
 *                  asked for (paced at --dl-rate-kbps), and pushes unsolicited downlink to
 *                  random sessions (--push-rate per second), which pages idle UEs
 * Restart (SIGUSR1 to the supervisor, or every --restart-every-ms): the worker reads and
 * rewrites its state files (<state-dir>/pgw-state.bin, pgw-restart.log), releases its big
 * buffer (--mem-mb, madvise + munmap) and exits; after --restart-downtime-ms the supervisor
 * forks a new worker, which reads the state file and comes back with recovery counter + 1.
 * Counters live in shared memory so the final stats line covers every worker.
 */
#include "epc.h"

#define EXIT_RESTART 3

typedef struct {
  int active;
  struct sockaddr_in sgw_u;
  uint32_t sgw_teid, ue_ip;
  long dl_pending; /* bytes the Internet still owes this UE */
} sess_t;

static task_t t_s5, t_app, t_gtpu, t_sgi;
static sess_t sess[MAXUE];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int c_sock, u_sock;
static const char *ip, *state_dir;
static int c_port, u_port;
static uint32_t recovery;
static long mem_bytes, dl_rate_kbps, generation;
static double push_rate;
static unsigned long long seed;
static char *big; /* the gateway's working memory (session caches, buffers) */

/* ---------------------------------------------------------------- state files */

typedef struct __attribute__((packed)) {
  char magic[8];
  uint32_t recovery, sessions;
  long long saved_ms;
} state_hdr_t;

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", state_dir, name); }

static int read_state(state_hdr_t *h) {
  char p[512];
  path_of(p, sizeof p, "pgw-state.bin");
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[65536];
  long total = 0;
  ssize_t n;
  int ok = 0;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    if (total == 0 && n >= (ssize_t)sizeof *h) memcpy(h, buf, sizeof *h), ok = 1;
    total += n;
  }
  close(fd);
  ev("state_file.reads");
  stat_add("state_file.read_bytes", total);
  return ok ? 0 : -1;
}

/* the session table as it stands, then a line in the restart log */
static void write_state(void) {
  char p[512], tmp[520];
  path_of(p, sizeof p, "pgw-state.bin");
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  state_hdr_t h = {.magic = "PGWSTAT", .recovery = recovery, .saved_ms = now_ms()};
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAXUE; i++) h.sessions += (uint32_t)sess[i].active;
  long total = 0;
  if (write_all(fd, &h, sizeof h) == 0) total += sizeof h;
  for (int i = 0; i < MAXUE; i++) { /* one 64-byte record per session (PDN context) */
    if (!sess[i].active) continue;
    unsigned char rec[64] = {0};
    memcpy(rec, &i, sizeof i);
    memcpy(rec + 4, &sess[i].ue_ip, 4);
    memcpy(rec + 8, &sess[i].sgw_teid, 4);
    memcpy(rec + 12, &sess[i].sgw_u, sizeof sess[i].sgw_u);
    if (write_all(fd, rec, sizeof rec) == 0) total += sizeof rec;
  }
  pthread_mutex_unlock(&mu);
  char pad[4096]; /* charging and IP-pool snapshot */
  memset(pad, 0x5a, sizeof pad);
  if (write_all(fd, pad, sizeof pad) == 0) total += sizeof pad;
  fsync(fd);
  close(fd);
  rename(tmp, p);
  ev("state_file.writes");
  stat_add("state_file.write_bytes", total);
  path_of(p, sizeof p, "pgw-restart.log");
  /* the log starts over every 1000 restarts, so a long run with frequent restarts does not
     grow it without bound (no extra system call: the recovery counter says when) */
  fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | (recovery % 1000 == 0 ? O_TRUNC : O_APPEND), 0644);
  if (fd >= 0) {
    char line[160];
    int n = snprintf(line, sizeof line, "%lld restart recovery=%u sessions=%u\n", now_ms(), recovery, h.sessions);
    if (write_all(fd, line, (size_t)n) == 0) ev("state_file.writes"), stat_add("state_file.write_bytes", n);
    close(fd);
  }
}

/* ---------------------------------------------------------------- TASK_S5 */

static void s5_on_fd(task_t *t, int fd) {
  (void)t;
  imsg *m = udp_recv_msg(fd);
  if (!m) return;
  io_count("s5c", 0, m->len);
  if (H(m)->type == GTPC_ECHO_REQ) { /* the GTP layer answers echoes itself */
    ev("echo_rsp");
    imsg *r = msg_new(GTPC_ECHO_RSP, 0, 0, 0);
    H(r)->seq = H(m)->seq;
    H(r)->val = recovery;
    if (udp_send_msg(c_sock, r, m->addr) == 0) io_count("s5c", 1, r->len);
    free(r);
    free(m);
    return;
  }
  m->inbound = 1;
  itti_send(&t_app, m);
}

static void s5_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (udp_send_msg(c_sock, m, m->addr) == 0) io_count("s5c", 1, m->len);
}

/* ---------------------------------------------------------------- TASK_PGW_APP */

static void app_on_msg(task_t *t, imsg *m) {
  (void)t;
  hdr_t *h = H(m);
  if (h->ue >= MAXUE) return;
  uint32_t ue = h->ue;
  imsg *r = NULL;
  pthread_mutex_lock(&mu);
  if (h->type == GTPC_CS_REQ) {
    ev(sess[ue].active ? "sessions_replaced" : "sessions_created");
    sess[ue] = (sess_t){.active = 1, .sgw_teid = h->teid, .ue_ip = htonl(0x0a2d0000u + ue + 2),
                        .sgw_u = {.sin_family = AF_INET, .sin_port = htons(h->port), .sin_addr.s_addr = h->ip}};
    r = msg_new(GTPC_CS_RSP, 0, ue, 0);
    struct sockaddr_in me = parse_addr(ip, u_port);
    H(r)->ip = me.sin_addr.s_addr; /* S5-U F-TEID of this PGW */
    H(r)->port = (uint16_t)u_port;
    H(r)->teid = ue + 1;
    H(r)->val = sess[ue].ue_ip; /* PDN address allocation */
  } else if (h->type == GTPC_DS_REQ) {
    ev("sessions_deleted");
    sess[ue].active = 0;
    r = msg_new(GTPC_DS_RSP, 0, ue, 0);
  }
  pthread_mutex_unlock(&mu);
  if (!r) return;
  H(r)->seq = h->seq;
  r->addr = m->addr;
  itti_send(&t_s5, r);
}

/* ---------------------------------------------------------------- TASK_GTPV1_U */

static void gtpu_on_fd(task_t *t, int fd) {
  (void)t;
  imsg *m = udp_recv_msg(fd);
  if (!m) return;
  io_count("s5u", 0, m->len);
  uint32_t ue = H(m)->ue;
  if (ue < MAXUE && sess[ue].active) {
    imsg *req = msg_new(INT_UL_REQ, 0, ue, 0); /* to the Internet */
    H(req)->val = H(m)->val;
    itti_send(&t_sgi, req);
  } else {
    ev("ul_no_session");
  }
  free(m);
}

/* a burst from the Internet: pairs of (ue, bytes) after the header */
static void gtpu_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (H(m)->type != INT_DL_BURST) return;
  uint32_t *pairs = (uint32_t *)(m->buf + sizeof(hdr_t));
  for (uint32_t i = 0; i < H(m)->val; i++) {
    uint32_t ue = pairs[2 * i], bytes = pairs[2 * i + 1];
    pthread_mutex_lock(&mu);
    int ok = sess[ue].active;
    struct sockaddr_in to = sess[ue].sgw_u;
    uint32_t teid = sess[ue].sgw_teid;
    pthread_mutex_unlock(&mu);
    if (!ok) continue;
    imsg *d = msg_new(GTPU_GPDU, 0, ue, (int)bytes - (int)sizeof(hdr_t));
    H(d)->teid = teid;
    if (udp_send_msg(u_sock, d, to) == 0) io_count("s5u", 1, d->len);
    free(d);
  }
}

/* ---------------------------------------------------------------- TASK_SGI */

static rng_t sgi_rng;
static long long next_push;
static uint32_t dl_cursor;

static void sgi_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (H(m)->type != INT_UL_REQ) return;
  pthread_mutex_lock(&mu);
  if (sess[H(m)->ue].active) sess[H(m)->ue].dl_pending += H(m)->val;
  pthread_mutex_unlock(&mu);
  ev("sgi_requests");
}

static void sgi_on_tick(task_t *t) {
  (void)t;
  long long now = mono_ms();
  pthread_mutex_lock(&mu);
  if (push_rate > 0 && now >= next_push) { /* unsolicited downlink (a push notification, a call…) */
    next_push = now + (long long)rng_exp(&sgi_rng, 1000.0 / push_rate);
    /* fixed draws per push, so the push schedule does not depend on how many sessions there are */
    uint64_t k = rng_next(&sgi_rng);
    long size = (long)clampd(rng_lognormal(&sgi_rng, 3000, 1.0), 200, 200000);
    int n = 0, pick = -1;
    for (int i = 0; i < MAXUE; i++) n += sess[i].active;
    for (int i = 0, j = 0; n > 0 && i < MAXUE && pick < 0; i++)
      if (sess[i].active && (uint64_t)j++ == k % (uint64_t)n) pick = i;
    if (pick >= 0) {
      sess[pick].dl_pending += size;
      ev("sgi_pushes");
    }
  }
  /* paced downlink: at most the tick's byte budget, round robin over sessions */
  long budget = dl_rate_kbps * 1000 / 8 / 100;
  imsg *b = msg_new(INT_DL_BURST, 0, 0, 0);
  uint32_t *pairs = (uint32_t *)(b->buf + sizeof(hdr_t));
  uint32_t np = 0, maxp = (MAXMSG - sizeof(hdr_t)) / 8;
  for (int i = 0; i < MAXUE && budget > 0 && np < maxp; i++) {
    uint32_t ue = (dl_cursor + 1 + (uint32_t)i) % MAXUE;
    while (sess[ue].active && sess[ue].dl_pending > 0 && budget > 0 && np < maxp) {
      long n = sess[ue].dl_pending < 1400 ? sess[ue].dl_pending : 1400;
      if (n < (long)sizeof(hdr_t)) n = sizeof(hdr_t);
      pairs[2 * np] = ue, pairs[2 * np + 1] = (uint32_t)n, np++;
      sess[ue].dl_pending -= n;
      budget -= n;
      dl_cursor = ue;
    }
  }
  pthread_mutex_unlock(&mu);
  if (np == 0) {
    free(b);
    return;
  }
  H(b)->val = np;
  b->len = (int)(sizeof(hdr_t) + np * 8);
  itti_send(&t_gtpu, b);
}

/* ---------------------------------------------------------------- the worker */

static void worker_restart(void) {
  state_hdr_t old;
  read_state(&old); /* merge with what the last incarnation saved */
  write_state();
  madvise(big, (size_t)mem_bytes, MADV_DONTNEED);
  munmap(big, (size_t)mem_bytes);
  stat_add("mem.released_bytes", mem_bytes);
  ev("mem.releases");
  fflush(stdout);
  _exit(EXIT_RESTART);
}

static void worker_main(void) {
  prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the supervisor */
  big = mmap(NULL, (size_t)mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (big == MAP_FAILED) die("mmap");
  memset(big, 0x11, (size_t)mem_bytes);
  state_hdr_t st;
  recovery = read_state(&st) == 0 ? st.recovery + 1 : 1;
  stat_set("recovery", recovery);
  rng_seed(&sgi_rng, seed, 100 + (uint64_t)generation);
  next_push = mono_ms() + 500;
  c_sock = udp_bind(ip, c_port);
  u_sock = udp_bind(ip, u_port);

  task_init(&t_s5, "TASK_S5");
  t_s5.on_fd = s5_on_fd;
  t_s5.on_msg = s5_on_msg;
  task_add_fd(&t_s5, c_sock);
  task_init(&t_app, "TASK_PGW_APP");
  t_app.on_msg = app_on_msg;
  task_init(&t_gtpu, "TASK_GTPV1_U");
  t_gtpu.on_fd = gtpu_on_fd;
  t_gtpu.on_msg = gtpu_on_msg;
  task_add_fd(&t_gtpu, u_sock);
  task_init(&t_sgi, "TASK_SGI");
  t_sgi.on_msg = sgi_on_msg;
  t_sgi.on_tick = sgi_on_tick;
  t_sgi.tick_ms = 10;
  task_start(&t_app);
  task_start(&t_gtpu);
  task_start(&t_sgi);
  task_start(&t_s5);
  if (generation == 0) print_ready();

  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGUSR1);
  for (;;) {
    int sig = sigwaitinfo(&s, NULL);
    if (sig == SIGUSR1) worker_restart();
    if (sig == SIGTERM || sig == SIGINT) _exit(0);
  }
}

/* ---------------------------------------------------------------- the supervisor */

static pid_t worker;

static pid_t spawn_worker(void) {
  fflush(stdout);
  pid_t p = fork();
  if (p < 0) die("fork");
  if (p == 0) {
    worker_main();
    _exit(0);
  }
  return p;
}

int main(int argc, char **argv) {
  stats_init("pgw");
  block_signals();
  ip = arg_str(argc, argv, "--ip", "127.0.0.1");
  state_dir = arg_str(argc, argv, "--state-dir", "/tmp");
  c_port = (int)arg_long(argc, argv, "--c-port", 2123);
  u_port = (int)arg_long(argc, argv, "--u-port", 2152);
  mem_bytes = arg_long(argc, argv, "--mem-mb", 64) << 20;
  dl_rate_kbps = arg_long(argc, argv, "--dl-rate-kbps", 20000);
  push_rate = atof(arg_str(argc, argv, "--push-rate", "0.5"));
  seed = (unsigned long long)arg_long(argc, argv, "--seed", 1);
  long restart_every = arg_long(argc, argv, "--restart-every-ms", 0);
  long downtime = arg_long(argc, argv, "--restart-downtime-ms", 3000);
  long stats_every = arg_long(argc, argv, "--stats-every-ms", 0);
  if (mem_bytes <= 0) mem_bytes = 1 << 20;
  rng_t r;
  rng_seed(&r, seed, 99);

  worker = spawn_worker();
  long long now = mono_ms(), respawn_at = 0, next_snap = now + stats_every;
  long long next_restart = restart_every > 0 ? now + (long long)(restart_every * (0.8 + 0.4 * rng_unif(&r))) : 0;
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGHUP);
  sigaddset(&s, SIGUSR1);
  sigaddset(&s, SIGCHLD);
  for (;;) {
    now = mono_ms();
    long long wake = now + 3600000;
    if (stats_every > 0 && next_snap < wake) wake = next_snap;
    if (respawn_at && respawn_at < wake) wake = respawn_at;
    if (next_restart && next_restart < wake) wake = next_restart;
    long wait = wake > now ? (long)(wake - now) : 0;
    struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
    int sig = sigtimedwait(&s, NULL, &ts);
    now = mono_ms();
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      if (worker > 0) kill(worker, SIGTERM), waitpid(worker, NULL, 0);
      stats_print("stats");
      _exit(0);
    }
    int restart_now = sig == SIGUSR1 || (next_restart && now >= next_restart);
    if (next_restart && now >= next_restart) next_restart = now + (long long)(restart_every * (0.8 + 0.4 * rng_unif(&r)));
    if (restart_now && worker > 0) {
      ev("restart_commands");
      kill(worker, SIGUSR1);
    }
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
      if (p != worker) continue;
      worker = 0;
      ev(WIFEXITED(st) && WEXITSTATUS(st) == EXIT_RESTART ? "worker_exits_restart" : "worker_exits_other");
      respawn_at = now + downtime; /* the gateway is away for a while, as a relocated container */
    }
    if (respawn_at && now >= respawn_at && worker == 0) {
      respawn_at = 0;
      generation++;
      ev("restarts");
      worker = spawn_worker();
    }
    if (stats_every > 0 && now >= next_snap) {
      stats_print("snapshot");
      next_snap += stats_every;
    }
  }
}
