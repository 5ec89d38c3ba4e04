/**
 * The eBPF collector on a real workload: a tiny C program (compiled here) forks a server
 * process, then two named threads move exactly known byte counts: "file-writer" writes N
 * bytes to a file, "net-sender" sends M bytes over TCP and K bytes in UDP datagrams to the
 * server on 127.0.0.1. The events' byte sums per (thread name, target kind) must be exactly
 * N, M, K on both ends, with the right ports — across several aggregation buckets.
 *
 * Set DISTAPPGUARD_SAVE_FIXTURE=1 to refresh test/fixtures/bpftrace/ from this run.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dataDirection, type SyscallEvent } from '../../shared/event.js';
import type { CollectorProblem } from '../../agent/collectors/collector.js';
import { EbpfCollector, ebpfAvailable } from '../../agent/collectors/ebpf.js';

const avail = await ebpfAvailable();
if (!avail.ok) console.warn(`eBPF live test skipped: ${avail.reason}`);

const N = 250_001; // file bytes, 1000 per write
const M = 300_007; // TCP bytes, 4096 per send
const K = 20_500; // UDP bytes, 500 per datagram
const UDP_SIZE = 500;
const INTERVAL_MS = 200;

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long N, M, K, UDP;
static const char *path;
static int tcp_port, udp_port;
static char buf[65536];

static void die(const char *w) { perror(w); exit(2); }
static void nap(long ms) { struct timespec t = {ms / 1000, (ms % 1000) * 1000000L}; nanosleep(&t, NULL); }

static void *file_writer(void *a) {
  (void)a;
  pthread_setname_np(pthread_self(), "file-writer");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("open");
  for (int round = 0; round < 2; round++) {
    long part = round == 0 ? N / 2 : N - N / 2;
    while (part > 0) {
      long n = part < 1000 ? part : 1000;
      if (write(fd, buf, n) != n) die("write");
      part -= n;
    }
    if (round == 0) nap(450);
  }
  close(fd);
  return NULL;
}

static void *net_sender(void *a) {
  (void)a;
  pthread_setname_np(pthread_self(), "net-sender");
  struct sockaddr_in sa = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  int t = socket(AF_INET, SOCK_STREAM, 0);
  sa.sin_port = htons(tcp_port);
  if (connect(t, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  sa.sin_port = htons(udp_port);
  for (int round = 0; round < 2; round++) {
    long part = round == 0 ? M / 2 : M - M / 2;
    while (part > 0) {
      long n = part < 4096 ? part : 4096;
      long w = send(t, buf, n, 0);
      if (w <= 0) die("send");
      part -= w;
    }
    long upart = round == 0 ? K / 2 : K - K / 2;
    while (upart > 0) {
      long n = upart < UDP ? upart : UDP;
      if (sendto(u, buf, n, 0, (struct sockaddr *)&sa, sizeof sa) != n) die("sendto");
      upart -= n;
      nap(1);
    }
    if (round == 0) nap(450);
  }
  close(t);
  close(u);
  return NULL;
}

static void server(int report) {
  prctl(PR_SET_NAME, "server");
  struct sockaddr_in sa = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  socklen_t len = sizeof sa;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0) die("tcp bind");
  getsockname(l, (struct sockaddr *)&sa, &len);
  int ports[2] = {ntohs(sa.sin_port), 0};
  sa.sin_port = 0;
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 4 << 20;
  setsockopt(u, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  struct timeval tv = {10, 0};
  setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (bind(u, (struct sockaddr *)&sa, sizeof sa) < 0) die("udp bind");
  len = sizeof sa;
  getsockname(u, (struct sockaddr *)&sa, &len);
  ports[1] = ntohs(sa.sin_port);
  if (write(report, ports, sizeof ports) != sizeof ports) die("report");
  close(report);
  int c = accept(l, NULL, NULL);
  if (c < 0) die("accept");
  long got = 0, ugot = 0;
  while (got < M) {
    long r = recv(c, buf, sizeof buf, 0);
    if (r <= 0) die("recv");
    got += r;
  }
  while (ugot < K) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    long r = recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (r < 0) die("recvfrom");
    ugot += r;
  }
  exit(0);
}

int main(int argc, char **argv) {
  if (argc != 7) return 64;
  path = argv[1]; N = atol(argv[2]); M = atol(argv[3]); K = atol(argv[4]); UDP = atol(argv[5]);
  int p[2];
  if (pipe(p) < 0) die("pipe");
  pid_t child = fork();
  if (child == 0) { close(p[0]); server(p[1]); }
  close(p[1]);
  int ports[2];
  if (read(p[0], ports, sizeof ports) != sizeof ports) die("ports");
  tcp_port = ports[0]; udp_port = ports[1];
  FILE *f = fopen(argv[6], "w");
  fprintf(f, "%d %d %d\n", tcp_port, udp_port, (int)child);
  fclose(f);
  pthread_t a, b;
  pthread_create(&a, NULL, file_writer, NULL);
  pthread_create(&b, NULL, net_sender, NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  int st;
  waitpid(child, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}
`;

const dir = mkdtempSync(join(tmpdir(), 'dag-ebpf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** calls the program makes for `total` bytes in two rounds of `size`-byte chunks */
function chunks(total: number, size: number): number {
  const first = Math.floor(total / 2);
  return Math.ceil(first / size) + Math.ceil((total - first) / size);
}

function sum(evs: SyscallEvent[], pick: (e: SyscallEvent) => boolean): { bytes: number; calls: number } {
  let bytes = 0;
  let calls = 0;
  for (const e of evs) {
    if (!pick(e)) continue;
    bytes += e.bytes;
    calls += e.count ?? 1;
  }
  return { bytes, calls };
}

describe('live eBPF collector (bpftrace)', () => {
  it.skipIf(!avail.ok)(
    'reports exactly the bytes each named thread moved, with the right socket ends',
    async () => {
      const src = join(dir, 'w.c');
      const exe = join(dir, 'w');
      writeFileSync(src, SOURCE);
      execFileSync(process.env.CC ?? 'cc', ['-O1', '-pthread', '-o', exe, src]);
      const file = join(dir, 'out.dat');
      const portsFile = join(dir, 'ports');
      const raw = join(dir, 'raw.txt');

      const problems: CollectorProblem[] = [];
      const c = new EbpfCollector({
        target: { command: [exe, file, String(N), String(M), String(K), String(UDP_SIZE), portsFile] },
        intervalMs: INTERVAL_MS,
        onProblem: (p) => problems.push(p),
        commandOutput: 'ignore',
        rawOut: raw,
      });
      const t0 = Date.now();
      const events: SyscallEvent[] = [];
      let batches = 0;
      for await (const batch of c.events()) {
        batches++;
        for (let i = 1; i < batch.length; i++) expect(batch[i].ts).toBeGreaterThanOrEqual(batch[i - 1].ts);
        events.push(...batch);
      }
      const t1 = Date.now();
      expect(c.exitCode()).toBe(0);
      const [tcpPort, udpPort, serverPid] = readFileSync(portsFile, 'utf8').trim().split(' ').map(Number);
      const counters = c.counters();
      expect(problems.filter((p) => p.kind !== 'lateSingles'), JSON.stringify(problems.slice(0, 5))).toEqual([]);
      expect(counters.malformed).toBe(0);
      expect(counters.lostEvents).toBe(0);
      expect(counters.mapFull).toBe(0);
      expect(counters.bpftraceWarnings).toBe(0);
      // the gate the command waited at moved no data
      expect(events.filter((e) => e.comm === 'sh' && e.bytes > 0)).toEqual([]);
      expect(batches).toBeGreaterThan(1);
      for (const e of events) {
        expect(e.ts).toBeGreaterThan(t0 - 1000);
        expect(e.ts).toBeLessThan(t1 + 1000);
      }

      const mainPid = c.pid;
      const out = (e: SyscallEvent): boolean => dataDirection(e.call) === 'out';
      const inn = (e: SyscallEvent): boolean => dataDirection(e.call) === 'in';

      // file-writer: N bytes by write() on the file it opened; files carry no target (the path is the open's)
      const open = events.find((e) => e.comm === 'file-writer' && e.call === 'openat' && e.path === file);
      expect(open?.ret).toBeGreaterThanOrEqual(0);
      expect(open?.path).toBe(file);
      const fw = sum(events, (e) => e.comm === 'file-writer' && out(e) && e.fd === open!.ret && e.target === undefined);
      expect(fw).toEqual({ bytes: N, calls: chunks(N, 1000) });
      expect(events.some((e) => e.comm === 'file-writer' && e.call === 'write' && (e.count ?? 1) > 1)).toBe(true);

      // net-sender: M bytes over TCP to the server's port, K bytes of datagrams to its UDP port
      const tcpOut = events.filter((e) => e.comm === 'net-sender' && out(e) && e.target?.kind === 'tcp');
      expect(sum(tcpOut, () => true).bytes).toBe(M);
      for (const e of tcpOut) {
        expect(e.pid).toBe(mainPid);
        expect(e.target?.remote).toEqual({ ip: '127.0.0.1', port: tcpPort });
        expect(e.target?.local?.ip).toBe('127.0.0.1');
      }
      const clientPort = tcpOut[0].target!.local!.port;
      expect(clientPort).toBeGreaterThan(0);
      const udpOut = events.filter((e) => e.comm === 'net-sender' && out(e) && e.target?.kind === 'udp');
      expect(sum(udpOut, () => true)).toEqual({ bytes: K, calls: chunks(K, UDP_SIZE) });
      for (const e of udpOut) {
        expect(e.call).toBe('sendto');
        expect(e.addr).toEqual({ ip: '127.0.0.1', port: udpPort }); // unconnected: the peer per datagram
        expect(e.target?.remote).toBeUndefined();
        expect(e.target?.local?.port).toBeGreaterThan(0);
      }
      // nothing else left the sender
      expect(sum(events, (e) => e.comm === 'net-sender' && out(e)).bytes).toBe(M + K);

      // the server process (forked, so followed in the kernel) received the same bytes
      const tcpIn = events.filter((e) => e.pid === serverPid && inn(e) && e.target?.kind === 'tcp');
      expect(sum(tcpIn, () => true).bytes).toBe(M);
      for (const e of tcpIn) expect(e.target).toMatchObject({ local: { ip: '127.0.0.1', port: tcpPort }, remote: { ip: '127.0.0.1', port: clientPort } });
      const udpIn = events.filter((e) => e.pid === serverPid && inn(e) && e.target?.kind === 'udp');
      expect(sum(udpIn, () => true).bytes).toBe(K);
      for (const e of udpIn) expect(e.target?.local?.port).toBe(udpPort);
      expect(events.filter((e) => e.pid === serverPid && inn(e)).every((e) => e.comm === 'server')).toBe(true);

      // the calls that give fds their meaning, with their arguments
      const connect = events.find((e) => e.call === 'connect' && e.comm === 'net-sender');
      expect(connect).toMatchObject({ ret: 0, addr: { ip: '127.0.0.1', port: tcpPort } });
      expect(connect?.target).toMatchObject({ kind: 'tcp', local: { port: clientPort }, remote: { port: tcpPort } });
      const accept = events.find((e) => e.call === 'accept' || (e.call === 'accept4' && e.pid === serverPid));
      expect(accept?.addr).toEqual({ ip: '127.0.0.1', port: clientPort });
      expect(events.find((e) => e.call === 'bind' && e.pid === serverPid)?.addr?.ip).toBe('127.0.0.1');
      expect(events.find((e) => e.call === 'socket' && e.comm === 'net-sender')?.flags).toMatch(/^AF_INET\|SOCK_STREAM/);
      expect(events.find((e) => e.call === 'pipe2' || e.call === 'pipe')?.fds).toHaveLength(2);
      expect(events.find((e) => e.call === 'prctl' && e.pid === serverPid)?.name).toBe('server');
      const exec = events.find((e) => e.call === 'execve' && e.ret === 0);
      expect(exec?.path).toBe(exe);
      expect(exec?.argv?.slice(0, 2)).toEqual([exe, file]);
      const clones = events.filter((e) => (e.call === 'clone' || e.call === 'clone3') && e.pid === mainPid && e.ret > 0);
      expect(clones.filter((e) => e.flags?.includes('CLONE_THREAD'))).toHaveLength(2);
      expect(clones.some((e) => e.ret === serverPid && !e.flags?.includes('CLONE_THREAD'))).toBe(true);
      expect(events.filter((e) => e.call === 'exit_group').map((e) => e.pid).sort()).toEqual([mainPid, serverPid].sort());
      expect(events.filter((e) => e.call === 'mmap').length).toBeGreaterThan(0);

      if (process.env.DISTAPPGUARD_SAVE_FIXTURE === '1') {
        const fx = join(import.meta.dirname, '../fixtures/bpftrace');
        mkdirSync(fx, { recursive: true });
        copyFileSync(raw, join(fx, 'live-x64.txt'));
        const meta = { offsetNs: String(c.clockOffsetNs), intervalMs: INTERVAL_MS, arch: 'x64', file, exe, N, M, K, udpSize: UDP_SIZE, tcpPort, udpPort, serverPid, mainPid, clientPort };
        writeFileSync(join(fx, 'live-x64.json'), JSON.stringify(meta, null, 2) + '\n');
      }
    },
    180_000,
  );
});
