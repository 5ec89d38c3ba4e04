/*
 * epc-enb: an eNodeB and the UEs it serves, with OAI's task split:
 *   TASK_SCTP     S1-MME transport to the MME over TCP (stand-in for SCTP): S1 Setup, then
 *                 framed S1AP PDUs both ways
 *   TASK_S1AP     eNB side of S1AP: UE contexts, Initial Context Setup (takes the SGW's S1-U
 *                 F-TEID, answers with its own), UE context release after --idle-timeout-ms
 *                 without user data, paging relayed to the UEs
 *   TASK_RRC      the radio towards the UEs: a SOCK_SEQPACKET socketpair ("air") to the UE
 *                 simulator carrying RRC, NAS and user data
 *   TASK_GTPV1_U  GTP-U over UDP 2152 with the SGW
 *   TASK_UE_SIM   the UEs: Poisson arrivals whose rate rises and falls (a sinusoid over
 *                 --rate-period-ms plus random bursts), lognormal session lengths, Pareto
 *                 data volumes, idle periods; attach, service request, detach. Seeded.
 * Attack (a rogue eNB), from --attack sgw-ip-modification:start:end: UEs still attach and
 * authenticate through the real MME, but all uplink user data goes to --rogue-gw instead
 * of the SGW's S1-U address.
 */
#include "epc.h"

/* ---------------------------------------------------------------- shared eNB state */

enum { E_NONE, E_CONNECTED, E_RELEASING };
typedef struct {
  int state, bearer;
  struct sockaddr_in sgw;
  uint32_t sgw_teid;
  long long last_activity; /* monotonic ms of the last user data either way */
} ectx_t;

static task_t t_sctp, t_s1ap, t_rrc, t_gtpu, t_uesim;
static ectx_t enb_ues[MAXUE];
static pthread_mutex_t emu = PTHREAD_MUTEX_INITIALIZER;
static int mme_fd = -1, gtpu_sock, air_enb, air_ue, divert, n_ues;
static struct sockaddr_in mme_addr, my_u, rogue_gw;
static long idle_timeout;

static void touch(uint32_t ue) {
  pthread_mutex_lock(&emu);
  enb_ues[ue].last_activity = mono_ms();
  pthread_mutex_unlock(&emu);
}

/* ---------------------------------------------------------------- TASK_SCTP */

static void sctp_send(imsg *m) {
  if (mme_fd >= 0 && write_all(mme_fd, m->buf, (size_t)m->len) == 0) io_count("s1_mme", 1, m->len);
}

static void sctp_connect(void) {
  mme_fd = tcp_connect_retry(mme_addr);
  task_add_fd(&t_sctp, mme_fd);
  imsg *m = msg_new(S1_SETUP_REQ, 0, 0, 0);
  sctp_send(m);
  free(m);
}

static void sctp_on_start(task_t *t) {
  (void)t;
  sctp_connect();
}

static void sctp_on_fd(task_t *t, int fd) {
  imsg *m = tcp_recv_msg(fd);
  if (!m) { /* the MME went away: associate again */
    task_del_fd(t, fd);
    close(fd);
    ev("s1_reconnects");
    sctp_connect();
    return;
  }
  io_count("s1_mme", 0, m->len);
  m->inbound = 1;
  itti_send(&t_s1ap, m);
}

static void sctp_on_msg(task_t *t, imsg *m) {
  (void)t;
  sctp_send(m);
}

/* ---------------------------------------------------------------- TASK_S1AP */

static void to_mme(int type, int nas, uint32_t ue) { itti_send(&t_sctp, msg_new(type, nas, ue, 0)); }

static void to_ue(int type, int nas, uint32_t ue, uint32_t val) {
  imsg *m = msg_new(type, nas, ue, 0);
  H(m)->val = val;
  itti_send(&t_rrc, m);
}

static void s1ap_on_msg(task_t *t, imsg *m) {
  (void)t;
  hdr_t *h = H(m);
  uint32_t ue = h->ue;
  if (ue >= MAXUE) return;
  ectx_t *c = &enb_ues[ue];
  pthread_mutex_lock(&emu);
  switch (h->type) {
  case RRC_CONN_REQ: /* a UE with a NAS message and no S1 connection yet */
    c->state = E_CONNECTED;
    c->last_activity = mono_ms();
    to_mme(S1_INITIAL_UE, h->nas, ue);
    break;
  case RRC_UL_NAS:
    to_mme(S1_UL_NAS, h->nas, ue);
    break;
  case S1_SETUP_RSP:
    ev("s1_setup_done");
    break;
  case S1_DL_NAS:
    to_ue(RRC_DL_NAS, h->nas, ue, 0);
    break;
  case S1_ICS_REQ: {
    ev("ics");
    c->state = E_CONNECTED;
    c->bearer = 1;
    c->sgw = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(h->port), .sin_addr.s_addr = h->ip};
    c->sgw_teid = h->teid;
    c->last_activity = mono_ms();
    to_ue(RRC_RECONF, h->nas, ue, 0);
    imsg *r = msg_new(S1_ICS_RSP, 0, ue, 0);
    H(r)->ip = my_u.sin_addr.s_addr; /* the eNB's S1-U F-TEID */
    H(r)->port = ntohs(my_u.sin_port);
    H(r)->teid = ue + 1;
    itti_send(&t_sctp, r);
    break;
  }
  case S1_CTX_REL_CMD:
    c->state = E_NONE;
    c->bearer = 0;
    to_ue(RRC_RELEASE, 0, ue, 0);
    to_mme(S1_CTX_REL_CPL, 0, ue);
    break;
  case S1_PAGING:
    ev(h->val ? "paging_reattach_rx" : "paging_rx");
    to_ue(RRC_PAGING, 0, ue, h->val);
    break;
  default:
    break;
  }
  pthread_mutex_unlock(&emu);
}

/* inactivity: UEs with no user data for a while go idle (S1 UE context release) */
static void s1ap_on_tick(task_t *t) {
  (void)t;
  long long now = mono_ms();
  pthread_mutex_lock(&emu);
  for (int u = 0; u < n_ues; u++) {
    ectx_t *c = &enb_ues[u];
    if (c->state == E_CONNECTED && c->bearer && now - c->last_activity > idle_timeout) {
      c->state = E_RELEASING;
      ev("inactivity_release");
      to_mme(S1_CTX_REL_REQ, 0, (uint32_t)u);
    }
  }
  pthread_mutex_unlock(&emu);
  int on = attack_active("sgw-ip-modification");
  __atomic_store_n(&divert, on, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- the air interface */

/* Both ends of the "air" socketpair are written by threads that also read the other
   direction (TASK_RRC, TASK_UE_SIM). Blocking sends there are a cross-wait: with a big
   downlink burst towards the UEs and uplink requests from them at once, both send buffers
   fill, each thread sleeps in send() on the other, and neither reads again (under strace,
   where every send costs ~100 us, a recorded run froze this way after 5 minutes). So the
   radio never blocks: sends are MSG_DONTWAIT; user data that finds the link full is lost, as
   on a congested radio link (counted), and signalling waits in a bounded backlog that is
   retried before the next send and on the task's tick. */
#define AIR_BACKLOG 1024

typedef struct {
  int fd;
  const char *drop_data, *drop_sig; /* counters */
  imsg *head, *tail;
  int n;
} air_link_t;

static air_link_t air_dl, air_ul; /* eNB -> UEs (TASK_RRC), UEs -> eNB (TASK_UE_SIM) */

static int air_try(air_link_t *l, imsg *m) {
  H(m)->len = (uint16_t)m->len;
  for (;;) {
    ssize_t w = send(l->fd, m->buf, (size_t)m->len, MSG_DONTWAIT);
    if (w == m->len) return 1;
    if (w < 0 && errno == EINTR) continue;
    return w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1; /* -1: gone, drop */
  }
}

/* send what waits, oldest first, until the link is full; 1 if nothing is left waiting */
static int air_flush(air_link_t *l, void (*sent)(imsg *)) {
  while (l->head) {
    imsg *m = l->head;
    int r = air_try(l, m);
    if (r == 0) return 0;
    l->head = m->next;
    if (!l->head) l->tail = NULL;
    l->n--;
    if (r > 0 && sent) sent(m);
    free(m);
  }
  return 1;
}

/* Send m (the caller keeps it): 1 sent now, 0 queued, -1 dropped. */
static int air_tx(air_link_t *l, imsg *m, int is_data, void (*sent)(imsg *)) {
  if (air_flush(l, sent)) {
    int r = air_try(l, m);
    if (r > 0) {
      if (sent) sent(m);
      return 1;
    }
    if (r < 0) return -1;
  }
  if (is_data || l->n >= AIR_BACKLOG) {
    ev(is_data ? l->drop_data : l->drop_sig);
    return -1;
  }
  imsg *c = msg_dup(m);
  if (l->tail) l->tail->next = c;
  else l->head = c;
  l->tail = c;
  l->n++;
  return 0;
}

/* ---------------------------------------------------------------- TASK_RRC */

static void rrc_sent(imsg *m) { io_count("uu", 1, m->len); }

/* the backlog is retried on a short tick, only while there is one */
static void rrc_arm(task_t *t) { t->tick_ms = air_dl.head ? 5 : 0; }

static void rrc_on_fd(task_t *t, int fd) {
  imsg *m = calloc(1, sizeof *m);
  if (!m) die("calloc");
  ssize_t n = recv(fd, m->buf, MAXMSG, 0);
  if (n < (ssize_t)sizeof(hdr_t)) {
    free(m);
    return;
  }
  m->len = (int)n;
  io_count("uu", 0, m->len);
  if (H(m)->type == RRC_DATA_UL) itti_send(&t_gtpu, m);
  else itti_send(&t_s1ap, m);
  if (air_dl.head) air_flush(&air_dl, rrc_sent), rrc_arm(t);
}

static void rrc_on_msg(task_t *t, imsg *m) {
  air_tx(&air_dl, m, H(m)->type == RRC_DATA_DL, rrc_sent);
  rrc_arm(t);
}

static void rrc_on_tick(task_t *t) {
  air_flush(&air_dl, rrc_sent);
  rrc_arm(t);
}

/* ---------------------------------------------------------------- TASK_GTPV1_U */

/* uplink user data from a UE: to the SGW's S1-U F-TEID, or to the rogue gateway */
static void gtpu_on_msg(task_t *t, imsg *m) {
  (void)t;
  uint32_t ue = H(m)->ue;
  if (ue >= MAXUE) return;
  pthread_mutex_lock(&emu);
  ectx_t c = enb_ues[ue];
  enb_ues[ue].last_activity = mono_ms();
  pthread_mutex_unlock(&emu);
  if (!c.bearer) {
    ev("ul_no_bearer");
    return;
  }
  int rogue = __atomic_load_n(&divert, __ATOMIC_RELAXED);
  H(m)->type = GTPU_GPDU;
  H(m)->teid = c.sgw_teid;
  if (udp_send_msg(gtpu_sock, m, rogue ? rogue_gw : c.sgw) == 0) {
    io_count(rogue ? "s1u_rogue" : "s1u", 1, m->len);
    if (rogue) ev("ul_diverted");
  }
}

static void gtpu_on_fd(task_t *t, int fd) {
  (void)t;
  imsg *m = udp_recv_msg(fd);
  if (!m) return;
  int rogue = same_addr(m->addr, rogue_gw);
  io_count(rogue ? "s1u_rogue" : "s1u", 0, m->len);
  uint32_t ue = H(m)->ue;
  if (ue >= MAXUE) {
    free(m);
    return;
  }
  touch(ue);
  H(m)->type = RRC_DATA_DL;
  itti_send(&t_rrc, m);
}

/* ---------------------------------------------------------------- TASK_UE_SIM */

enum { U_OFF, U_ATTACHING, U_CONN, U_IDLE, U_SR, U_DETACHING, U_RETRY };
typedef struct {
  int st;
  long long session_end, next_act, idle_until, retry_at, since;
  long vol;    /* downlink bytes this UE still wants in the current activity period */
  long dl_pkts;
  rng_t r; /* this session's own stream, so its behaviour does not depend on network timing */
} ue_t;

static ue_t ues[MAXUE];
static rng_t rng; /* arrivals and bursts only: the schedule is a function of the seed and time */
static uint64_t seed, n_arrivals, digest;
static double rate, amp, period_ms, burst_rate, burst_factor, burst_ms, session_median, vol_xm, vol_alpha, vol_cap, think_ms, idle_median;
static long long t0, next_arrival, next_burst, burst_start, burst_until;

static void ue_sent(imsg *m) {
  if (H(m)->type == RRC_DATA_UL) stat_add("ue.ul_bytes", m->len);
}

static void air_send(uint32_t ue, int type, int nas, int extra, uint32_t val) {
  imsg *m = msg_new(type, nas, ue, extra);
  H(m)->val = val;
  air_tx(&air_ul, m, type == RRC_DATA_UL, ue_sent);
  free(m);
}

static void ue_enter(ue_t *u, int st) {
  u->st = st;
  u->since = mono_ms();
}

static void new_activity(ue_t *u) { u->vol = (long)clampd(rng_pareto(&u->r, vol_xm, vol_alpha), 1000, vol_cap); }

static void attach(uint32_t i) {
  ev("ue.attach_attempts");
  ue_enter(&ues[i], U_ATTACHING);
  air_send(i, RRC_CONN_REQ, NAS_ATTACH_REQ, 0, 0);
}

static void retry(uint32_t i, long ms) {
  ue_enter(&ues[i], U_RETRY);
  ues[i].retry_at = mono_ms() + ms;
}

static void uesim_on_fd(task_t *t, int fd) {
  (void)t;
  unsigned char buf[MAXMSG];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n < (ssize_t)sizeof(hdr_t)) return;
  hdr_t *h = (hdr_t *)buf;
  if (h->ue >= (uint32_t)n_ues) return;
  uint32_t i = h->ue;
  ue_t *u = &ues[i];
  long long now = mono_ms();
  switch (h->type) {
  case RRC_DL_NAS:
    if (h->nas == NAS_AUTH_REQ) air_send(i, RRC_UL_NAS, NAS_AUTH_RSP, 0, 0);
    else if (h->nas == NAS_SMC) air_send(i, RRC_UL_NAS, NAS_SMC_CPL, 0, 0);
    else if (h->nas == NAS_ATTACH_REJ) ev("ue.attach_rejected"), retry(i, rng_range(&u->r, 800, 2000));
    else if (h->nas == NAS_SERVICE_REJ) ev("ue.service_rejected"), retry(i, rng_range(&u->r, 50, 300));
    else if (h->nas == NAS_DETACH_ACCEPT) ev("ue.detached"), ue_enter(u, U_OFF);
    break;
  case RRC_RECONF:
    if (h->nas == NAS_ATTACH_ACCEPT) {
      air_send(i, RRC_UL_NAS, NAS_ATTACH_CPL, 0, 0);
      ev("ue.attached");
    } else {
      ev("ue.service_done");
    }
    ue_enter(u, U_CONN);
    u->next_act = now + rng_range(&u->r, 5, 60);
    break;
  case RRC_RELEASE:
    if (u->st == U_CONN) {
      ev("ue.idle");
      ue_enter(u, U_IDLE);
      u->idle_until = now + (long long)clampd(rng_lognormal(&u->r, idle_median, 0.8), 200, 120000);
    } else if (u->st == U_DETACHING) {
      ue_enter(u, U_OFF);
    }
    break;
  case RRC_PAGING:
    if (h->val) { /* the network lost our context (PGW restart): attach again */
      if (u->st != U_OFF) ev("ue.paged_reattach"), attach(i);
    } else if (u->st == U_IDLE) {
      ev("ue.paged");
      ue_enter(u, U_SR);
      air_send(i, RRC_CONN_REQ, NAS_SERVICE_REQ, 0, 0);
    }
    break;
  case RRC_DATA_DL:
    stat_add("ue.dl_bytes", n);
    if (++u->dl_pkts % 8 == 0 && u->st == U_CONN) air_send(i, RRC_DATA_UL, 0, 12, 0); /* transport-layer acks */
    break;
  default:
    break;
  }
}

/* the arrival rate now: a sinusoid over the period, times the burst factor in a burst */
static double arrival_rate(long long now) {
  double r = rate * (1 + amp * m_sin(2 * 3.14159265358979 * (double)(now - t0) / period_ms));
  return (r < 0 ? 0 : r) * (now >= burst_start && now < burst_until ? burst_factor : 1);
}

static void uesim_on_tick(task_t *t) {
  (void)t;
  air_flush(&air_ul, ue_sent);
  long long now = mono_ms();
  if (burst_rate > 0 && now >= next_burst) { /* bursts start as a Poisson process, burst_rate per second */
    burst_start = next_burst;
    burst_until = burst_start + (long long)rng_exp(&rng, burst_ms);
    next_burst = burst_until + (long long)rng_exp(&rng, 1000.0 / burst_rate);
    ev("ue.bursts");
  }
  double lmax = rate * (1 + amp) * (burst_factor > 1 ? burst_factor : 1);
  while (lmax > 0 && now >= next_arrival) { /* non-homogeneous Poisson by thinning */
    long long at = next_arrival;
    next_arrival += (long long)(rng_exp(&rng, 1000.0 / lmax)) + 1;
    if (rng_unif(&rng) * lmax > arrival_rate(at)) continue;
    /* the session is drawn from its own stream, whether or not a UE is free to take it */
    rng_t sr;
    rng_seed(&sr, seed, 1000 + ++n_arrivals);
    long long len = (long long)clampd(rng_lognormal(&sr, session_median, 0.9), 1000, 600000);
    if (n_arrivals <= 16) { /* a digest of the first arrivals: equal seeds, equal schedules */
      digest = digest * 1000003u + (uint64_t)(at - t0) * 31u + (uint64_t)len;
      stat_set("ue.schedule_digest", (long)(digest & 0xffffffffffffULL));
    }
    int pick = -1;
    long start = rng_range(&rng, 0, n_ues - 1);
    for (int k = 0; k < n_ues && pick < 0; k++)
      if (ues[(start + k) % n_ues].st == U_OFF) pick = (int)((start + k) % n_ues);
    if (pick < 0) {
      ev("ue.arrivals_dropped");
      continue;
    }
    ev("ue.arrivals");
    ue_t *u = &ues[pick];
    u->r = sr;
    u->session_end = now + len;
    new_activity(u);
    attach((uint32_t)pick);
  }
  for (int k = 0; k < n_ues; k++) {
    ue_t *u = &ues[k];
    uint32_t i = (uint32_t)k;
    switch (u->st) {
    case U_ATTACHING:
    case U_SR:
      if (now - u->since > 6000) ev("ue.timeouts"), retry(i, 1000);
      break;
    case U_DETACHING:
      if (now - u->since > 6000) ue_enter(u, U_OFF);
      break;
    case U_RETRY:
      if (now >= u->retry_at) {
        if (now < u->session_end) attach(i);
        else ue_enter(u, U_OFF);
      }
      break;
    case U_CONN:
      if (u->vol > 0 && now >= u->next_act) { /* a request: some uplink asking for downlink */
        long want = (long)clampd(rng_pareto(&u->r, 2000, 1.2), 500, 256000);
        if (want > u->vol) want = u->vol;
        u->vol -= want;
        air_send(i, RRC_DATA_UL, 0, (int)rng_range(&u->r, 40, 1300), (uint32_t)want);
        u->next_act = now + (long long)rng_exp(&u->r, think_ms);
      } else if (u->vol <= 0 && now >= u->session_end) {
        ue_enter(u, U_DETACHING);
        air_send(i, RRC_UL_NAS, NAS_DETACH_REQ, 0, 0);
      }
      break;
    case U_IDLE:
      if (now >= u->session_end) {
        ue_enter(u, U_DETACHING);
        air_send(i, RRC_CONN_REQ, NAS_DETACH_REQ, 0, 0);
      } else if (now >= u->idle_until) { /* the user wants data again: service request */
        new_activity(u);
        ev("ue.service_req");
        ue_enter(u, U_SR);
        air_send(i, RRC_CONN_REQ, NAS_SERVICE_REQ, 0, 0);
      }
      break;
    default:
      break;
    }
  }
}

static double arg_d(int argc, char **argv, const char *name, double def) {
  const char *s = arg_str(argc, argv, name, NULL);
  return s ? atof(s) : def;
}

int main(int argc, char **argv) {
  stats_init("enb");
  block_signals();
  attacks_parse(argc, argv);
  const char *ip = arg_str(argc, argv, "--ip", "127.0.0.1");
  int gtpu_port = (int)arg_long(argc, argv, "--gtpu-port", 2152);
  mme_addr = parse_addr(arg_str(argc, argv, "--mme", "127.0.0.1:36412"), 36412);
  rogue_gw = parse_addr(arg_str(argc, argv, "--rogue-gw", "127.0.0.1:2153"), 2152);
  my_u = parse_addr(ip, gtpu_port);
  n_ues = (int)arg_long(argc, argv, "--ues", 256);
  if (n_ues < 1 || n_ues > MAXUE) n_ues = MAXUE;
  idle_timeout = arg_long(argc, argv, "--idle-timeout-ms", 10000);
  rate = arg_d(argc, argv, "--arrival-rate", 1.0);
  amp = clampd(arg_d(argc, argv, "--rate-amplitude", 0.6), 0, 1);
  period_ms = arg_d(argc, argv, "--rate-period-ms", 600000);
  burst_rate = arg_d(argc, argv, "--burst-rate", 0.01);
  burst_factor = arg_d(argc, argv, "--burst-factor", 4);
  burst_ms = arg_d(argc, argv, "--burst-ms", 5000);
  session_median = arg_d(argc, argv, "--session-median-ms", 60000);
  vol_xm = arg_d(argc, argv, "--volume-xm", 20000);
  vol_alpha = arg_d(argc, argv, "--volume-alpha", 1.3);
  vol_cap = arg_d(argc, argv, "--volume-cap", 2000000);
  think_ms = arg_d(argc, argv, "--think-ms", 400);
  idle_median = arg_d(argc, argv, "--idle-median-ms", 8000);
  seed = (uint64_t)arg_long(argc, argv, "--seed", 1);
  rng_seed(&rng, seed, 1);
  gtpu_sock = udp_bind(ip, gtpu_port);
  int air[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, air) < 0) die("socketpair");
  air_enb = air[0], air_ue = air[1];
  for (int i = 0; i < 2; i++) { /* room for a downlink burst (the kernel caps it at wmem_max) */
    int big = 4 << 20;
    setsockopt(air[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  }
  air_dl = (air_link_t){.fd = air_enb, .drop_data = "uu.dl_dropped", .drop_sig = "uu.dl_sig_dropped"};
  air_ul = (air_link_t){.fd = air_ue, .drop_data = "ue.ul_dropped", .drop_sig = "ue.ul_sig_dropped"};

  task_init(&t_sctp, "TASK_SCTP");
  t_sctp.on_start = sctp_on_start;
  t_sctp.on_fd = sctp_on_fd;
  t_sctp.on_msg = sctp_on_msg;
  task_init(&t_s1ap, "TASK_S1AP");
  t_s1ap.on_msg = s1ap_on_msg;
  t_s1ap.on_tick = s1ap_on_tick;
  t_s1ap.tick_ms = 20;
  task_init(&t_rrc, "TASK_RRC");
  t_rrc.on_fd = rrc_on_fd;
  t_rrc.on_msg = rrc_on_msg;
  t_rrc.on_tick = rrc_on_tick;
  task_add_fd(&t_rrc, air_enb);
  task_init(&t_gtpu, "TASK_GTPV1_U");
  t_gtpu.on_fd = gtpu_on_fd;
  t_gtpu.on_msg = gtpu_on_msg;
  task_add_fd(&t_gtpu, gtpu_sock);
  task_init(&t_uesim, "TASK_UE_SIM");
  t_uesim.on_fd = uesim_on_fd;
  t_uesim.on_tick = uesim_on_tick;
  t_uesim.tick_ms = 10;
  task_add_fd(&t_uesim, air_ue);
  task_start(&t_s1ap);
  task_start(&t_rrc);
  task_start(&t_gtpu);
  task_start(&t_sctp);
  print_ready();
  /* UEs start once S1 is set up, so no attach is lost to an association still coming up */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  while (stat_get("s1_setup_done") == 0) {
    struct timespec ts = {0, 20000000};
    if (sigtimedwait(&stop, NULL, &ts) > 0) stats_print("stats"), _exit(0);
  }
  t0 = next_arrival = mono_ms();
  next_burst = burst_rate > 0 ? t0 + (long long)rng_exp(&rng, 1000.0 / burst_rate) : 0;
  task_start(&t_uesim);
  main_loop(arg_long(argc, argv, "--stats-every-ms", 0), NULL);
}
