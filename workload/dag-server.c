/*
 * dag-server: the receiving half of the ground-truth workload. Listens on TCP and UDP,
 * optionally starts a client program (everything after `--`, so one traced command runs
 * both), and counts what arrives in two named threads:
 *   tcp-accept  accepts --tcp-conns connections; a tcp-recv thread reads each to EOF
 *   udp-recv  receives datagrams until --udp-senders empty ones have arrived
 * Prints "tcp_bytes=N udp_bytes=M" on stdout.
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

static int tcp_listener, udp_sock;
static long tcp_conns, udp_senders, tcp_total, udp_total;

static pthread_mutex_t tcp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tcp_cv = PTHREAD_COND_INITIALIZER;
static long tcp_finished;

/* one thread per connection, all named tcp-recv: clients on several hosts are read at once */
static void *tcp_conn(void *arg) {
  pthread_setname_np(pthread_self(), "tcp-recv");
  int s = (int)(long)arg;
  static __thread char cbuf[65536];
  long got = 0;
  for (;;) {
    ssize_t n = read(s, cbuf, sizeof cbuf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += n;
  }
  close(s);
  pthread_mutex_lock(&tcp_mu);
  tcp_total += got;
  tcp_finished++;
  pthread_cond_broadcast(&tcp_cv);
  pthread_mutex_unlock(&tcp_mu);
  for (;;) pause(); /* never return: see worker_done */
  return NULL;
}

static void *tcp_accept(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "tcp-accept");
  for (long c = 0; c < tcp_conns; c++) {
    int s = accept(tcp_listener, NULL, NULL);
    if (s < 0) die("accept");
    spawn(tcp_conn, (void *)(long)s);
  }
  pthread_mutex_lock(&tcp_mu);
  while (tcp_finished < tcp_conns) pthread_cond_wait(&tcp_cv, &tcp_mu);
  pthread_mutex_unlock(&tcp_mu);
  worker_done();
  return NULL;
}

static void *udp_recv(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "udp-recv");
  static char ubuf[65536];
  long ended = 0;
  while (ended < udp_senders) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(udp_sock, ubuf, sizeof ubuf, 0, (struct sockaddr *)&from, &fl);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("recvfrom");
    if (n == 0) ended++;
    udp_total += n;
  }
  worker_done();
  return NULL;
}

static int listen_on(int type, long port, const char *host) {
  int s = socket(AF_INET, type, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (type == SOCK_STREAM && listen(s, 16) < 0) die("listen");
  return s;
}

int main(int argc, char **argv) {
  const char *host = arg_str(argc, argv, "--host", "127.0.0.1");
  tcp_conns = arg_long(argc, argv, "--tcp-conns", 1);
  udp_senders = arg_long(argc, argv, "--udp-senders", 1);
  tcp_listener = listen_on(SOCK_STREAM, arg_long(argc, argv, "--tcp-port", 17001), host);
  udp_sock = listen_on(SOCK_DGRAM, arg_long(argc, argv, "--udp-port", 17002), host);
  spawn(tcp_accept, NULL);
  spawn(udp_recv, NULL);

  /* start the clients: each `--` starts one command, so replicas can run side by side */
  int children = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") != 0) continue;
    int end = i + 1;
    while (end < argc && strcmp(argv[end], "--") != 0) end++;
    char **cargv = calloc((size_t)(end - i), sizeof *cargv);
    for (int j = i + 1; j < end; j++) cargv[j - i - 1] = argv[j];
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      execv(cargv[0], cargv);
      die("execv");
    }
    children++;
    i = end - 1;
  }
  int failed = 0;
  for (int c = 0; c < children; c++) {
    int st;
    if (wait(&st) > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) failed = 1;
  }
  wait_workers(2);
  printf("tcp_bytes=%ld udp_bytes=%ld\n", tcp_total, udp_total);
  fflush(stdout);
  return failed;
}
