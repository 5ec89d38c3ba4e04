/*
 * epc-mme: the Mobility Management Entity, with OAI's task split:
 *   TASK_SCTP     S1-MME transport: accepts eNBs on TCP 36412 (a stand-in for SCTP),
 *                 reads and writes framed S1AP PDUs
 *   TASK_S1AP     S1AP layer: S1 Setup itself, everything else to/from TASK_MME_APP
 *   TASK_MME_APP  UE contexts and procedures: attach with authentication, service request,
 *                 release to idle, paging on Downlink Data Notification, detach, and
 *                 re-attach (paging) of every UE when the SGW reports a PGW restart
 *   TASK_S6A      Diameter-like client to the HSS on TCP 3868 (AIR/AIA, ULR/ULA)
 *   TASK_S11      GTPv2-C to the SGW over UDP 2123
 */
#include "epc.h"

enum { M_NONE, M_AIA, M_AUTH, M_SMC, M_ULA, M_CS, M_ICS, M_MB, M_CONNECTED, M_RELEASING, M_IDLE, M_PAGING, M_DETACHING };

typedef struct {
  int state, enb_fd, service; /* service: the ICS is for a service request, not an attach */
  uint32_t sgw_ip, sgw_teid, enb_ip, enb_teid;
  uint16_t sgw_port, enb_port;
  long long since; /* state entered (monotonic ms) */
} ctx_t;

static task_t t_sctp, t_s1ap, t_app, t_s6a, t_s11;
static ctx_t ues[MAXUE];
static int s1_listener, s11_sock, hss_fd = -1;
static struct sockaddr_in sgw_addr, hss_addr;
static uint32_t gtpc_seq = 1;

/* ---------------------------------------------------------------- TASK_SCTP */

static void sctp_on_fd(task_t *t, int fd) {
  if (fd == s1_listener) {
    int c = accept4(s1_listener, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) return;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    task_add_fd(t, c);
    ev("s1_associations");
    return;
  }
  imsg *m = tcp_recv_msg(fd);
  if (!m) {
    task_del_fd(t, fd);
    close(fd);
    return;
  }
  io_count("s1_mme", 0, m->len);
  m->inbound = 1;
  itti_send(&t_s1ap, m);
}

static void sctp_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (m->fd >= 0 && write_all(m->fd, m->buf, (size_t)m->len) == 0) io_count("s1_mme", 1, m->len);
}

/* ---------------------------------------------------------------- TASK_S1AP */

static void s1ap_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (!m->inbound) {
    itti_send(&t_sctp, msg_dup(m));
    return;
  }
  if (H(m)->type == S1_SETUP_REQ) {
    ev("s1_setup");
    imsg *r = msg_new(S1_SETUP_RSP, 0, 0, 0);
    r->fd = m->fd;
    itti_send(&t_sctp, r);
    return;
  }
  itti_send(&t_app, msg_dup(m));
}

/* ---------------------------------------------------------------- TASK_S6A */

static void s6a_connect(void) {
  hss_fd = tcp_connect_retry(hss_addr);
  task_add_fd(&t_s6a, hss_fd);
}

static void s6a_on_start(task_t *t) {
  (void)t;
  s6a_connect();
}

static void s6a_on_fd(task_t *t, int fd) {
  imsg *m = tcp_recv_msg(fd);
  if (!m) { /* the HSS went away: reconnect */
    task_del_fd(t, fd);
    close(fd);
    ev("s6a_reconnects");
    s6a_connect();
    return;
  }
  io_count("s6a", 0, m->len);
  m->inbound = 1;
  itti_send(&t_app, m);
}

static void s6a_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (write_all(hss_fd, m->buf, (size_t)m->len) == 0) io_count("s6a", 1, m->len);
}

/* ---------------------------------------------------------------- TASK_S11 */

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
  struct sockaddr_in to = m->addr.sin_family ? m->addr : sgw_addr;
  if (udp_send_msg(s11_sock, m, to) == 0) io_count("s11", 1, m->len);
}

/* ---------------------------------------------------------------- TASK_MME_APP */

static void enter(ctx_t *c, int state) {
  c->state = state;
  c->since = mono_ms();
}

static void to_enb(uint32_t ue, int type, int nas) {
  imsg *m = msg_new(type, nas, ue, 0);
  m->fd = ues[ue].enb_fd;
  itti_send(&t_s1ap, m);
}

static void to_hss(uint32_t ue, int type) {
  imsg *m = msg_new(type, 0, ue, 0);
  H(m)->seq = gtpc_seq++;
  itti_send(&t_s6a, m);
}

static imsg *to_sgw(uint32_t ue, int type) {
  imsg *m = msg_new(type, 0, ue, 0);
  H(m)->seq = gtpc_seq++;
  H(m)->teid = ues[ue].sgw_teid;
  return m;
}

static void ics(uint32_t ue, int nas) {
  ctx_t *c = &ues[ue];
  imsg *m = msg_new(S1_ICS_REQ, nas, ue, 0);
  m->fd = c->enb_fd;
  H(m)->ip = c->sgw_ip; /* the SGW's S1-U F-TEID: where the eNB sends user data */
  H(m)->port = c->sgw_port;
  H(m)->teid = c->sgw_teid;
  itti_send(&t_s1ap, m);
  enter(c, M_ICS);
}

static void detach(uint32_t ue) {
  ctx_t *c = &ues[ue];
  ev("detach_req");
  if (c->state >= M_ICS && c->state != M_DETACHING) {
    enter(c, M_DETACHING);
    itti_send(&t_s11, to_sgw(ue, GTPC_DS_REQ));
  } else {
    to_enb(ue, S1_DL_NAS, NAS_DETACH_ACCEPT);
    to_enb(ue, S1_CTX_REL_CMD, 0);
    enter(c, M_NONE);
  }
}

static void app_on_msg(task_t *t, imsg *m) {
  (void)t;
  hdr_t *h = H(m);
  if (h->ue >= MAXUE) return;
  uint32_t ue = h->ue;
  ctx_t *c = &ues[ue];
  switch (h->type) {
  case S1_INITIAL_UE:
    c->enb_fd = m->fd;
    if (h->nas == NAS_ATTACH_REQ) {
      ev("attach_req");
      enter(c, M_AIA);
      to_hss(ue, S6A_AIR);
    } else if (h->nas == NAS_SERVICE_REQ) {
      if (c->state == M_IDLE || c->state == M_PAGING) {
        ev(c->state == M_PAGING ? "service_req_paged" : "service_req");
        c->service = 1;
        ics(ue, 0);
      } else { /* no context (e.g. purged): the UE must attach again */
        ev("service_rej");
        to_enb(ue, S1_DL_NAS, NAS_SERVICE_REJ);
        to_enb(ue, S1_CTX_REL_CMD, 0);
        enter(c, M_NONE);
      }
    } else if (h->nas == NAS_DETACH_REQ) {
      detach(ue);
    }
    break;
  case S1_UL_NAS:
    if (h->nas == NAS_AUTH_RSP && c->state == M_AUTH) {
      ev("auth_ok");
      enter(c, M_SMC);
      to_enb(ue, S1_DL_NAS, NAS_SMC);
    } else if (h->nas == NAS_SMC_CPL && c->state == M_SMC) {
      enter(c, M_ULA);
      to_hss(ue, S6A_ULR);
    } else if (h->nas == NAS_ATTACH_CPL) {
      ev("attach_complete");
    } else if (h->nas == NAS_DETACH_REQ) {
      detach(ue);
    }
    break;
  case S6A_AIA:
    if (c->state != M_AIA) break;
    if (h->cause != CAUSE_OK) {
      ev("attach_reject");
      to_enb(ue, S1_DL_NAS, NAS_ATTACH_REJ);
      enter(c, M_NONE);
      break;
    }
    ev("auth_vectors");
    enter(c, M_AUTH);
    to_enb(ue, S1_DL_NAS, NAS_AUTH_REQ);
    break;
  case S6A_ULA:
    if (c->state != M_ULA) break;
    ev("location_updated");
    enter(c, M_CS);
    itti_send(&t_s11, to_sgw(ue, GTPC_CS_REQ));
    break;
  case GTPC_CS_RSP:
    if (c->state != M_CS) break;
    if (h->cause != CAUSE_OK) {
      ev("attach_reject");
      to_enb(ue, S1_DL_NAS, NAS_ATTACH_REJ);
      to_enb(ue, S1_CTX_REL_CMD, 0);
      enter(c, M_NONE);
      break;
    }
    c->sgw_ip = h->ip, c->sgw_port = h->port, c->sgw_teid = h->teid;
    c->service = 0;
    ics(ue, NAS_ATTACH_ACCEPT);
    break;
  case S1_ICS_RSP:
    if (c->state != M_ICS) break;
    c->enb_ip = h->ip, c->enb_port = h->port, c->enb_teid = h->teid;
    enter(c, M_MB);
    imsg *mb = to_sgw(ue, GTPC_MB_REQ);
    H(mb)->ip = c->enb_ip, H(mb)->port = c->enb_port;
    itti_send(&t_s11, mb);
    break;
  case GTPC_MB_RSP:
    if (c->state != M_MB) break;
    ev(c->service ? "service_complete" : "session_up");
    enter(c, M_CONNECTED);
    break;
  case S1_CTX_REL_REQ:
    if (c->state == M_CONNECTED) {
      enter(c, M_RELEASING);
      itti_send(&t_s11, to_sgw(ue, GTPC_RAB_REQ));
    } else {
      to_enb(ue, S1_CTX_REL_CMD, 0);
    }
    break;
  case GTPC_RAB_RSP:
    if (c->state == M_RELEASING) to_enb(ue, S1_CTX_REL_CMD, 0);
    break;
  case S1_CTX_REL_CPL:
    if (c->state == M_RELEASING) ev("idle"), enter(c, M_IDLE);
    break;
  case GTPC_DDN: {
    ev("ddn_rx");
    imsg *ack = to_sgw(ue, GTPC_DDN_ACK);
    H(ack)->seq = h->seq;
    ack->addr = m->addr;
    itti_send(&t_s11, ack);
    if (c->state == M_IDLE) {
      ev("paging");
      enter(c, M_PAGING);
      to_enb(ue, S1_PAGING, 0);
    } else {
      ev("ddn_not_idle");
    }
    break;
  }
  case GTPC_DS_RSP:
    if (c->state != M_DETACHING) break;
    ev("detach");
    to_enb(ue, S1_DL_NAS, NAS_DETACH_ACCEPT);
    to_enb(ue, S1_CTX_REL_CMD, 0);
    enter(c, M_NONE);
    break;
  case GTPC_PGW_RESTART: {
    /* every session went through that PGW: drop them and page the UEs to attach again */
    ev("pgw_restart_rx");
    imsg *ack = to_sgw(0, GTPC_PGW_RESTART_ACK);
    H(ack)->seq = h->seq;
    ack->addr = m->addr;
    itti_send(&t_s11, ack);
    for (uint32_t u = 0; u < MAXUE; u++) {
      if (ues[u].state == M_NONE) continue;
      ev("paging_reattach");
      imsg *p = msg_new(S1_PAGING, 0, u, 0);
      H(p)->val = 1; /* re-attach required */
      p->fd = ues[u].enb_fd;
      itti_send(&t_s1ap, p);
      enter(&ues[u], M_NONE);
    }
    break;
  }
  default:
    break;
  }
}

/* procedures that never finished (a lost message, a dead peer) are dropped */
static void app_on_tick(task_t *t) {
  (void)t;
  long long now = mono_ms();
  for (int u = 0; u < MAXUE; u++) {
    ctx_t *c = &ues[u];
    if (c->state == M_PAGING && now - c->since > 4000) ev("paging_timeout"), enter(c, M_IDLE);
    else if (c->state != M_NONE && c->state != M_CONNECTED && c->state != M_IDLE && c->state != M_PAGING && now - c->since > 5000)
      ev("procedure_timeout"), enter(c, M_NONE);
  }
}

int main(int argc, char **argv) {
  stats_init("mme");
  block_signals();
  const char *ip = arg_str(argc, argv, "--ip", "0.0.0.0");
  hss_addr = parse_addr(arg_str(argc, argv, "--hss", "127.0.0.1:3868"), 3868);
  sgw_addr = parse_addr(arg_str(argc, argv, "--sgw", "127.0.0.1:2123"), 2123);
  s1_listener = tcp_listen(ip, (int)arg_long(argc, argv, "--s1-port", 36412));
  s11_sock = udp_bind(ip, (int)arg_long(argc, argv, "--s11-port", 2123));
  for (int u = 0; u < MAXUE; u++) ues[u].enb_fd = -1;

  task_init(&t_sctp, "TASK_SCTP");
  t_sctp.on_fd = sctp_on_fd;
  t_sctp.on_msg = sctp_on_msg;
  task_add_fd(&t_sctp, s1_listener);
  task_init(&t_s1ap, "TASK_S1AP");
  t_s1ap.on_msg = s1ap_on_msg;
  task_init(&t_app, "TASK_MME_APP");
  t_app.on_msg = app_on_msg;
  t_app.on_tick = app_on_tick;
  t_app.tick_ms = 250;
  task_init(&t_s6a, "TASK_S6A");
  t_s6a.on_start = s6a_on_start;
  t_s6a.on_fd = s6a_on_fd;
  t_s6a.on_msg = s6a_on_msg;
  task_init(&t_s11, "TASK_S11");
  t_s11.on_fd = s11_on_fd;
  t_s11.on_msg = s11_on_msg;
  task_add_fd(&t_s11, s11_sock);
  task_start(&t_app);
  task_start(&t_s1ap);
  task_start(&t_s6a);
  task_start(&t_s11);
  task_start(&t_sctp);
  print_ready();
  main_loop(arg_long(argc, argv, "--stats-every-ms", 0), NULL);
}
