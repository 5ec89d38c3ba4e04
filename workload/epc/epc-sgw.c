/*
 * epc-sgw: the Serving Gateway, with OAI's task split:
 *   TASK_S11       GTPv2-C with the MME over UDP 2123 (create/modify/delete session, release
 *                  access bearers, Downlink Data Notification, PGW restart notification)
 *   TASK_S5        GTPv2-C with the PGW (S5/S8-C): create/delete session, echo heartbeats
 *   TASK_SGW_APP   sessions; heartbeat watch (echo every --echo-interval-ms; after
 *                  --echo-misses lost echoes, or a new recovery counter, it tells the MME
 *                  the PGW restarted); DDN when downlink arrives for an idle UE
 *   TASK_GTPV1_U   GTP-U over UDP 2152: uplink eNB -> PGW, downlink PGW -> eNB, buffers
 *                  downlink of idle UEs until the MME has paged them back
 * Attacks (a malicious SGW), from --attack kind:start:end:
 *   false-ddn      every --false-ddn-interval-ms, a Downlink Data Notification to the MME for
 *                  every idle UE (one active UE if none is idle), with no downlink from the PGW:
 *                  the paper's attack keeps UEs paged to drain their batteries and load the MME,
 *                  so it is sustained, not a single message
 *   purge-context  a fake "PGW restart notification" to the MME (the PGW never restarted) at the
 *                  start and every --purge-interval-ms while the attack lasts, so subscribers are
 *                  kept off the network rather than purged once
 */
#include "epc.h"

typedef struct {
  int active, idle, ddn_pending, has_enb, pgw_known;
  struct sockaddr_in enb, pgw_u;
  uint32_t pgw_teid, mme_seq;
  long long cs_since, ds_since; /* pending create/delete towards the PGW (monotonic ms; 0: none) */
  int nbuf, buf_len[32];        /* downlink held for an idle UE */
} sess_t;

static task_t t_s11, t_s5, t_app, t_gtpu;
static sess_t sess[MAXUE];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* sess, shared by the app and GTP-U */
static int s11_sock, s5_sock, gtpu_sock;
static struct sockaddr_in mme_addr, pgw_c, pgw_u, my_u;
static long echo_interval, echo_misses, false_ddn_interval, purge_interval;
static uint32_t seq = 1;

/* ---------------------------------------------------------------- S11 / S5 transport tasks */

static void s11_on_fd(task_t *t, int fd) {
  (void)t;
  imsg *m = udp_recv_msg(fd);
  if (!m) return;
  io_count("s11", 0, m->len);
  m->inbound = 1;
  itti_send(&t_app, m);
}

static void s11_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (udp_send_msg(s11_sock, m, m->addr.sin_family ? m->addr : mme_addr) == 0) io_count("s11", 1, m->len);
}

static void s5_on_fd(task_t *t, int fd) {
  (void)t;
  imsg *m = udp_recv_msg(fd);
  if (!m) return;
  io_count("s5c", 0, m->len);
  m->inbound = 2;
  itti_send(&t_app, m);
}

static void s5_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (udp_send_msg(s5_sock, m, pgw_c) == 0) io_count("s5c", 1, m->len);
}

/* ---------------------------------------------------------------- TASK_SGW_APP */

static imsg *gtpc(int type, uint32_t ue, uint32_t s) {
  imsg *m = msg_new(type, 0, ue, 0);
  H(m)->seq = s ? s : seq++;
  return m;
}

static void to_mme(imsg *m) { itti_send(&t_s11, m); }
static void to_pgw(imsg *m) { itti_send(&t_s5, m); }

static void reply_cs(uint32_t ue, int cause) {
  imsg *r = gtpc(GTPC_CS_RSP, ue, sess[ue].mme_seq);
  H(r)->cause = (uint16_t)cause;
  H(r)->ip = my_u.sin_addr.s_addr; /* S1-U F-TEID of this SGW */
  H(r)->port = ntohs(my_u.sin_port);
  H(r)->teid = ue + 1;
  to_mme(r);
}

static void send_ddn(uint32_t ue, const char *why) {
  ev("ddn_tx");
  ev(why);
  to_mme(gtpc(GTPC_DDN, ue, 0));
}

/* the PGW is gone (or claimed to be): every session through it is lost. Caller holds mu. */
static void pgw_restart_notify(const char *why) {
  ev("pgw_restart_notify");
  ev(why);
  to_mme(gtpc(GTPC_PGW_RESTART, 0, 0));
  memset(sess, 0, sizeof sess);
}

static int pgw_up = 1, echo_outstanding, misses;
static uint32_t last_recovery;

static void on_echo_rsp(uint32_t recovery) {
  echo_outstanding = 0;
  misses = 0;
  ev("echo_rsp");
  if (last_recovery && recovery != last_recovery) {
    ev("pgw_recovery_changed");
    if (pgw_up) pgw_restart_notify("pgw_restart_detected"); /* restarted faster than the misses */
  }
  if (!pgw_up) ev("pgw_up");
  last_recovery = recovery;
  pgw_up = 1;
}

static void app_on_msg(task_t *t, imsg *m) {
  (void)t;
  hdr_t *h = H(m);
  if (h->ue >= MAXUE) return;
  uint32_t ue = h->ue;
  sess_t *s = &sess[ue];
  if (m->inbound == 1) mme_addr = m->addr; /* answer the MME that talks to us */
  pthread_mutex_lock(&mu);
  switch (h->type) {
  case GTPC_CS_REQ:
    ev("cs_req");
    memset(s, 0, sizeof *s);
    s->mme_seq = h->seq;
    if (!pgw_up) {
      ev("cs_rejected_no_pgw");
      reply_cs(ue, CAUSE_NO_PEER);
      break;
    }
    s->active = 1;
    s->cs_since = mono_ms();
    imsg *cs = gtpc(GTPC_CS_REQ, ue, 0);
    H(cs)->ip = my_u.sin_addr.s_addr; /* S5-U F-TEID: where the PGW sends downlink */
    H(cs)->port = ntohs(my_u.sin_port);
    H(cs)->teid = ue + 1;
    to_pgw(cs);
    break;
  case GTPC_CS_RSP: /* from the PGW */
    if (!s->active || !s->cs_since) break;
    s->cs_since = 0;
    if (h->cause != CAUSE_OK) {
      s->active = 0;
      reply_cs(ue, h->cause);
      break;
    }
    s->pgw_u = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(h->port), .sin_addr.s_addr = h->ip};
    s->pgw_teid = h->teid;
    s->pgw_known = 1;
    ev("sessions_created");
    reply_cs(ue, CAUSE_OK);
    break;
  case GTPC_MB_REQ: {
    ev("mb_req");
    imsg *r = gtpc(GTPC_MB_RSP, ue, h->seq);
    r->addr = m->addr;
    if (!s->active) {
      H(r)->cause = CAUSE_UNKNOWN;
      to_mme(r);
      break;
    }
    s->enb = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(h->port), .sin_addr.s_addr = h->ip};
    s->has_enb = 1;
    s->idle = 0;
    s->ddn_pending = 0;
    if (s->nbuf) {
      imsg *f = msg_new(INT_FLUSH, 0, ue, 0);
      itti_send(&t_gtpu, f);
    }
    to_mme(r);
    break;
  }
  case GTPC_RAB_REQ: {
    ev("release_access_bearers");
    s->idle = 1;
    s->has_enb = 0;
    imsg *r = gtpc(GTPC_RAB_RSP, ue, h->seq);
    r->addr = m->addr;
    to_mme(r);
    break;
  }
  case GTPC_DS_REQ:
    ev("ds_req");
    s->mme_seq = h->seq;
    if (s->active && s->pgw_known && pgw_up) {
      s->ds_since = mono_ms();
      to_pgw(gtpc(GTPC_DS_REQ, ue, 0));
    } else {
      memset(s, 0, sizeof *s);
      imsg *r = gtpc(GTPC_DS_RSP, ue, h->seq);
      r->addr = m->addr;
      to_mme(r);
    }
    break;
  case GTPC_DS_RSP: /* from the PGW */
    if (!s->ds_since) break;
    ev("sessions_deleted");
    to_mme(gtpc(GTPC_DS_RSP, ue, s->mme_seq));
    memset(s, 0, sizeof *s);
    break;
  case GTPC_ECHO_RSP:
    on_echo_rsp(h->val);
    break;
  case GTPC_DDN_ACK:
    ev("ddn_ack");
    break;
  case GTPC_PGW_RESTART_ACK:
    ev("pgw_restart_ack");
    break;
  case INT_DL_BUFFERED: /* downlink for an idle UE: ask the MME to page it, once */
    if (s->active && s->idle && !s->ddn_pending) {
      s->ddn_pending = 1;
      send_ddn(ue, "ddn_on_data");
    }
    break;
  default:
    break;
  }
  pthread_mutex_unlock(&mu);
}

static long long next_echo, next_false_ddn, next_purge;
static int purge_was_on;
static uint32_t ddn_cursor;

static void app_on_tick(task_t *t) {
  (void)t;
  long long now = mono_ms();
  pthread_mutex_lock(&mu);
  if (now >= next_echo) { /* heartbeat: S5 echo, and count the ones that went unanswered */
    next_echo = now + echo_interval;
    if (echo_outstanding) {
      misses++;
      ev("echo_missed");
      if (misses >= echo_misses && pgw_up) {
        pgw_up = 0;
        ev("pgw_down");
        pgw_restart_notify("pgw_restart_heartbeat");
      }
    }
    echo_outstanding = 1;
    ev("echo_req");
    to_pgw(gtpc(GTPC_ECHO_REQ, 0, 0));
  }
  for (uint32_t ue = 0; ue < MAXUE; ue++) { /* transactions the PGW never answered */
    sess_t *s = &sess[ue];
    if (s->cs_since && now - s->cs_since > 1500) {
      ev("cs_timeout");
      s->cs_since = 0;
      s->active = 0;
      reply_cs(ue, CAUSE_NO_PEER);
    } else if (s->ds_since && now - s->ds_since > 1500) {
      ev("ds_timeout");
      to_mme(gtpc(GTPC_DS_RSP, ue, s->mme_seq));
      memset(s, 0, sizeof *s);
    }
  }
  if (attack_active("false-ddn") && now >= next_false_ddn) {
    /* the malicious SGW: a DDN for every idle UE (one active UE if none is idle), no downlink behind them */
    next_false_ddn = now + false_ddn_interval;
    int sent = 0;
    for (uint32_t ue = 0; ue < MAXUE; ue++)
      if (sess[ue].active && sess[ue].pgw_known && sess[ue].idle) {
        send_ddn(ue, "ddn_false");
        sent++;
      }
    for (uint32_t i = 0; i < MAXUE && !sent; i++) {
      uint32_t ue = (ddn_cursor + 1 + i) % MAXUE;
      if (sess[ue].active && sess[ue].pgw_known) {
        ddn_cursor = ue;
        send_ddn(ue, "ddn_false");
        sent++;
      }
    }
  }
  int purge_on = attack_active("purge-context");
  if (purge_on && (!purge_was_on || now >= next_purge)) { /* no PGW restart behind it */
    next_purge = now + purge_interval;
    pgw_restart_notify("pgw_restart_fake");
  }
  purge_was_on = purge_on;
  pthread_mutex_unlock(&mu);
}

/* ---------------------------------------------------------------- TASK_GTPV1_U */

static void gtpu_on_fd(task_t *t, int fd) {
  (void)t;
  imsg *m = udp_recv_msg(fd);
  if (!m) return;
  hdr_t *h = H(m);
  uint32_t ue = h->ue;
  int from_pgw = m->addr.sin_addr.s_addr == pgw_u.sin_addr.s_addr && m->addr.sin_port == pgw_u.sin_port;
  int notify = 0;
  struct sockaddr_in to = {0};
  io_count(from_pgw ? "s5u" : "s1u", 0, m->len);
  pthread_mutex_lock(&mu);
  sess_t *s = ue < MAXUE ? &sess[ue] : NULL;
  if (!s || !s->active || !s->pgw_known) {
    ev(from_pgw ? "dl_no_session" : "ul_no_session");
  } else if (from_pgw) {
    if (s->idle || !s->has_enb) {
      if (s->nbuf < 32) s->buf_len[s->nbuf++] = m->len;
      ev("dl_buffered");
      notify = 1;
    } else {
      to = s->enb;
      h->teid = ue + 1;
    }
  } else {
    to = s->pgw_u;
    h->teid = s->pgw_teid;
  }
  pthread_mutex_unlock(&mu);
  if (to.sin_family && udp_send_msg(gtpu_sock, m, to) == 0) io_count(from_pgw ? "s1u" : "s5u", 1, m->len);
  if (notify) itti_send(&t_app, msg_new(INT_DL_BUFFERED, 0, ue, 0));
  free(m);
}

/* the UE is back: deliver what was held for it */
static void gtpu_on_msg(task_t *t, imsg *m) {
  (void)t;
  uint32_t ue = H(m)->ue;
  if (H(m)->type != INT_FLUSH || ue >= MAXUE) return;
  pthread_mutex_lock(&mu);
  sess_t *s = &sess[ue];
  int n = s->has_enb ? s->nbuf : 0, lens[32];
  memcpy(lens, s->buf_len, sizeof lens);
  struct sockaddr_in to = s->enb;
  s->nbuf = 0;
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < n; i++) {
    imsg *d = msg_new(GTPU_GPDU, 0, ue, lens[i] - (int)sizeof(hdr_t));
    H(d)->teid = ue + 1;
    if (udp_send_msg(gtpu_sock, d, to) == 0) io_count("s1u", 1, d->len), ev("dl_flushed");
    free(d);
  }
}

int main(int argc, char **argv) {
  stats_init("sgw");
  block_signals();
  attacks_parse(argc, argv);
  const char *ip = arg_str(argc, argv, "--ip", "127.0.0.1");
  int gtpu_port = (int)arg_long(argc, argv, "--gtpu-port", 2152);
  mme_addr = parse_addr(arg_str(argc, argv, "--mme", "127.0.0.1:2123"), 2123);
  const char *pgw = arg_str(argc, argv, "--pgw", "127.0.0.1");
  pgw_c = parse_addr(pgw, (int)arg_long(argc, argv, "--pgw-c-port", 2123));
  pgw_u = parse_addr(pgw, (int)arg_long(argc, argv, "--pgw-u-port", 2152));
  my_u = parse_addr(ip, gtpu_port);
  echo_interval = arg_long(argc, argv, "--echo-interval-ms", 5000);
  echo_misses = arg_long(argc, argv, "--echo-misses", 3);
  false_ddn_interval = arg_long(argc, argv, "--false-ddn-interval-ms", 1000);
  purge_interval = arg_long(argc, argv, "--purge-interval-ms", 5000);
  s11_sock = udp_bind(ip, (int)arg_long(argc, argv, "--s11-port", 2123));
  s5_sock = udp_bind(ip, 0);
  gtpu_sock = udp_bind(ip, gtpu_port);

  task_init(&t_s11, "TASK_S11");
  t_s11.on_fd = s11_on_fd;
  t_s11.on_msg = s11_on_msg;
  task_add_fd(&t_s11, s11_sock);
  task_init(&t_s5, "TASK_S5");
  t_s5.on_fd = s5_on_fd;
  t_s5.on_msg = s5_on_msg;
  task_add_fd(&t_s5, s5_sock);
  task_init(&t_app, "TASK_SGW_APP");
  t_app.on_msg = app_on_msg;
  t_app.on_tick = app_on_tick;
  t_app.tick_ms = 50;
  task_init(&t_gtpu, "TASK_GTPV1_U");
  t_gtpu.on_fd = gtpu_on_fd;
  t_gtpu.on_msg = gtpu_on_msg;
  task_add_fd(&t_gtpu, gtpu_sock);
  task_start(&t_s11);
  task_start(&t_s5);
  task_start(&t_gtpu);
  task_start(&t_app);
  print_ready();
  main_loop(arg_long(argc, argv, "--stats-every-ms", 0), NULL);
}
