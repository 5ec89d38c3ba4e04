/*
 * epc-hss: the Home Subscriber Server. Serves S6a (Diameter-like over TCP, port 3868) to
 * MMEs and keeps the subscriber database in a file (<state-dir>/hss-subscribers.db, one
 * fixed-size record per IMSI: keys, SQN, serving MME), as OAI's HSS keeps it in a database:
 *   TASK_S6A     accepts MME connections, reads requests, writes answers
 *   TASK_HSS_DB  Authentication-Information: reads the record, steps SQN, writes it back;
 *                Update-Location: reads the record, writes the serving MME
 */
#include "epc.h"

#define REC 256 /* bytes per subscriber record */

typedef struct __attribute__((packed)) {
  char imsi[16];
  unsigned char k[16], opc[16];
  uint64_t sqn;
  char mme[64];
  uint32_t location_updates;
  unsigned char pad[REC - 16 - 32 - 8 - 64 - 4];
} subscriber_t;

static task_t t_s6a, t_db;
static int db_fd, listener;
static long n_subs;

static void s6a_on_fd(task_t *t, int fd) {
  if (fd == listener) {
    int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) task_add_fd(t, c), ev("s6a_connections");
    return;
  }
  imsg *m = tcp_recv_msg(fd);
  if (!m) {
    task_del_fd(t, fd);
    close(fd);
    return;
  }
  io_count("s6a", 0, m->len);
  itti_send(&t_db, m);
}

static void s6a_on_msg(task_t *t, imsg *m) {
  (void)t;
  if (write_all(m->fd, m->buf, (size_t)m->len) == 0) io_count("s6a", 1, m->len);
}

static int rec_read(uint32_t ue, subscriber_t *s) {
  if ((long)ue >= n_subs) return -1;
  return pread(db_fd, s, REC, (off_t)ue * REC) == REC ? 0 : -1;
}

static void rec_write(uint32_t ue, const subscriber_t *s) {
  if (pwrite(db_fd, s, REC, (off_t)ue * REC) == REC) stat_add("db.write_bytes", REC), ev("db.writes");
}

static void db_on_msg(task_t *t, imsg *req) {
  (void)t;
  hdr_t *h = H(req);
  subscriber_t s;
  int found = rec_read(h->ue, &s) == 0;
  if (found) stat_add("db.read_bytes", REC), ev("db.reads");
  imsg *ans = NULL;
  if (h->type == S6A_AIR) {
    ev("air");
    /* one E-UTRAN vector per request; SQN moves on as Milenage requires */
    ans = msg_new(S6A_AIA, 0, h->ue, 0);
    if (found) {
      s.sqn += 32;
      rec_write(h->ue, &s);
    }
  } else if (h->type == S6A_ULR) {
    ev("ulr");
    ans = msg_new(S6A_ULA, 0, h->ue, 0);
    if (found) {
      snprintf(s.mme, sizeof s.mme, "mme.epc.mnc093.mcc208.3gppnetwork.org/%u", h->seq % 8);
      s.location_updates++;
      rec_write(h->ue, &s);
    }
  } else {
    return;
  }
  if (!found) H(ans)->cause = CAUSE_UNKNOWN, ev("unknown_subscriber");
  H(ans)->seq = h->seq;
  ans->fd = req->fd;
  itti_send(&t_s6a, ans);
}

/* create the database when it is missing or has another size */
static void open_db(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/hss-subscribers.db", dir);
  db_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (db_fd < 0) die(path);
  struct stat st;
  fstat(db_fd, &st);
  if (st.st_size == n_subs * REC) return;
  if (ftruncate(db_fd, 0) < 0) die("ftruncate");
  for (long i = 0; i < n_subs; i++) {
    subscriber_t s;
    memset(&s, 0, sizeof s);
    snprintf(s.imsi, sizeof s.imsi, "208930%09u", (unsigned)(i + 1) % 1000000000u);
    for (int j = 0; j < 16; j++) s.k[j] = (unsigned char)(0x8b + j * 7 + i), s.opc[j] = (unsigned char)(0xe7 + j * 3 + i);
    s.sqn = 0x20;
    if (pwrite(db_fd, &s, REC, (off_t)i * REC) != REC) die("write db");
  }
  fsync(db_fd);
}

int main(int argc, char **argv) {
  stats_init("hss");
  block_signals();
  const char *ip = arg_str(argc, argv, "--ip", "0.0.0.0");
  n_subs = arg_long(argc, argv, "--subscribers", 4096);
  if (n_subs < 1 || n_subs > MAXUE) n_subs = MAXUE;
  open_db(arg_str(argc, argv, "--state-dir", "/tmp"));
  listener = tcp_listen(ip, (int)arg_long(argc, argv, "--port", 3868));

  task_init(&t_s6a, "TASK_S6A");
  t_s6a.on_fd = s6a_on_fd;
  t_s6a.on_msg = s6a_on_msg;
  task_add_fd(&t_s6a, listener);
  task_init(&t_db, "TASK_HSS_DB");
  t_db.on_msg = db_on_msg;
  task_start(&t_db);
  task_start(&t_s6a);
  print_ready();
  main_loop(arg_long(argc, argv, "--stats-every-ms", 0), NULL);
}
