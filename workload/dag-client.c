/*
 * dag-client: the sending half of DistAppGuard's ground-truth workload. Named threads move
 * exactly the bytes they are told to, in `--rounds` rounds `--interval-ms` apart:
 *   file-writer  writes --file-bytes to --file, --chunk bytes per write()
 *   tcp-send     sends --tcp-bytes, --chunk bytes per write(), to 127.0.0.1:--tcp-port over one TCP connection
 *   udp-send     sends --udp-bytes in --udp-size datagrams to 127.0.0.1:--udp-port
 *   mem-release  maps --mem-bytes of anonymous memory, touches it, unmaps it
 */
#include "common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

static long rounds, interval_ms, chunk, file_bytes, tcp_bytes, udp_bytes, udp_size, mem_bytes, tcp_port, udp_port;
static const char *file_path, *host;
static char buf[65536];

static void nap(void) {
  struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* bytes of round r out of total, spread so the rounds add up exactly */
static long share(long total, long r) { return total / rounds + (r < total % rounds ? 1 : 0); }

static void *file_writer(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "file-writer");
  int fd = open(file_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("open");
  for (long r = 0; r < rounds; r++) {
    for (long left = share(file_bytes, r); left > 0;) {
      long n = left < chunk ? left : chunk;
      if (write_all(fd, buf, (size_t)n) < 0) die("write file");
      left -= n;
    }
    if (r + 1 < rounds) nap();
  }
  close(fd);
  worker_done();
  return NULL;
}

static void *tcp_send(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "tcp-send");
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tcp_port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  for (long r = 0; r < rounds; r++) {
    for (long left = share(tcp_bytes, r); left > 0;) {
      long n = left < chunk ? left : chunk;
      if (write_all(s, buf, (size_t)n) < 0) die("send tcp");
      left -= n;
    }
    if (r + 1 < rounds) nap();
  }
  close(s);
  worker_done();
  return NULL;
}

static void *udp_send(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "udp-send");
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)udp_port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  for (long r = 0; r < rounds; r++) {
    for (long left = share(udp_bytes, r); left > 0;) {
      long n = left < udp_size ? left : udp_size;
      if (sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&a, sizeof a) != n) die("sendto");
      left -= n;
      /* pace datagrams so the receiver's socket buffer never drops one on loopback */
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
    if (r + 1 < rounds) nap();
  }
  /* an empty datagram tells the receiver we are done; it moves no bytes */
  sendto(s, buf, 0, 0, (struct sockaddr *)&a, sizeof a);
  close(s);
  worker_done();
  return NULL;
}

static void *mem_release(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "mem-release");
  for (long r = 0; r < rounds; r++) {
    long n = share(mem_bytes, r);
    if (n > 0) {
      char *p = mmap(NULL, (size_t)n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) die("mmap");
      memset(p, 1, (size_t)n);
      munmap(p, (size_t)n);
    }
    if (r + 1 < rounds) nap();
  }
  worker_done();
  return NULL;
}

int main(int argc, char **argv) {
  rounds = arg_long(argc, argv, "--rounds", 1);
  interval_ms = arg_long(argc, argv, "--interval-ms", 0);
  file_bytes = arg_long(argc, argv, "--file-bytes", 100000);
  tcp_bytes = arg_long(argc, argv, "--tcp-bytes", 200000);
  udp_bytes = arg_long(argc, argv, "--udp-bytes", 30000);
  udp_size = arg_long(argc, argv, "--udp-size", 1000);
  chunk = arg_long(argc, argv, "--chunk", (long)sizeof buf);
  mem_bytes = arg_long(argc, argv, "--mem-bytes", 1 << 20);
  tcp_port = arg_long(argc, argv, "--tcp-port", 17001);
  udp_port = arg_long(argc, argv, "--udp-port", 17002);
  file_path = arg_str(argc, argv, "--file", "/tmp/dag-client.out");
  host = arg_str(argc, argv, "--host", "127.0.0.1");
  if (rounds < 1 || udp_size < 1 || udp_size > (long)sizeof buf || chunk < 1 || chunk > (long)sizeof buf) {
    fprintf(stderr, "dag-client: --rounds must be ≥ 1, --udp-size and --chunk 1..%zu\n", sizeof buf);
    return 2;
  }
  memset(buf, 'x', sizeof buf);
  spawn(file_writer, NULL);
  spawn(tcp_send, NULL);
  spawn(udp_send, NULL);
  spawn(mem_release, NULL);
  wait_workers(4);
  return 0;
}
