/* Shared bits of the ground-truth workload: argument parsing and exact-count I/O. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long arg_long(int argc, char **argv, const char *name, long def) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return atol(argv[i + 1]);
  return def;
}

__attribute__((unused)) static const char *arg_str(int argc, char **argv, const char *name, const char *def) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

/* write() until every byte is out: short writes must not change the total */
__attribute__((unused)) static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

/* Workers never return: a returning glibc thread madvise()s its stack away, which would
   add memory releases the ground truth does not count. The main thread ends the process. */
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int done_count = 0;

static void worker_done(void) {
  pthread_mutex_lock(&done_mu);
  done_count++;
  pthread_cond_broadcast(&done_cv);
  pthread_mutex_unlock(&done_mu);
  for (;;) pause();
}

__attribute__((unused)) static void wait_workers(int n) {
  pthread_mutex_lock(&done_mu);
  while (done_count < n) pthread_cond_wait(&done_cv, &done_mu);
  pthread_mutex_unlock(&done_mu);
}

static void spawn(void *(*fn)(void *), void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, arg) != 0) die("pthread_create");
  pthread_detach(t);
}
