/*
 * epc-rogue-gw: the malicious gateway of the SGW IP modification attack. It is not part
 * of the EPC: it takes the user data a rogue eNB sends it over GTP-U and plays the Internet
 * itself, answering each request with the downlink it asked for (capped per request).
 *   gw-relay  the only task: receive, answer
 */
#include "epc.h"

static int sock;
static long cap;

static void relay_on_fd(task_t *t, int fd) {
  (void)t;
  imsg *m = udp_recv_msg(fd);
  if (!m) return;
  io_count("gtpu", 0, m->len);
  long want = H(m)->val < (uint32_t)cap ? (long)H(m)->val : cap;
  while (want > 0) {
    int n = want < 1400 ? (int)want : 1400;
    imsg *d = msg_new(GTPU_GPDU, 0, H(m)->ue, n - (int)sizeof(hdr_t));
    H(d)->teid = H(m)->ue + 1;
    if (udp_send_msg(sock, d, m->addr) == 0) io_count("gtpu", 1, d->len);
    free(d);
    want -= n;
  }
  free(m);
}

int main(int argc, char **argv) {
  stats_init("rogue-gw");
  block_signals();
  sock = udp_bind(arg_str(argc, argv, "--ip", "0.0.0.0"), (int)arg_long(argc, argv, "--port", 2152));
  cap = arg_long(argc, argv, "--max-reply-bytes", 64000);
  static task_t relay;
  task_init(&relay, "gw-relay");
  relay.on_fd = relay_on_fd;
  task_add_fd(&relay, sock);
  task_start(&relay);
  print_ready();
  main_loop(arg_long(argc, argv, "--stats-every-ms", 0), NULL);
}
