/**
 * The live strace collector against real processes: small C programs compiled here (cc),
 * traced as a command, attached to by pid and by cgroup. Needs strace, cc and ptrace
 * permission (root or CAP_SYS_PTRACE); the cgroup test also needs a writable cgroup tree.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyscallEvent } from '../../shared/event.js';
import { CollectorUnavailable, type CollectorProblem } from '../../agent/collectors/collector.js';
import { StraceCollector, cgroupPids, findCgroupDirs, straceKnownCalls } from '../../agent/collectors/strace.js';
import { StraceFileCollector } from '../../agent/collectors/strace-file.js';

const WRITER_C = String.raw`
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
static int N;
static const char *path;
static char buf[1024];
static void *filer(void *a) {
  (void)a;
  prctl(PR_SET_NAME, "filer");
  int f = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  for (int i = 0; i < N; i++) write(f, buf, 100 + (i * 7) % 500);
  close(f);
  return NULL;
}
int main(int argc, char **argv) {
  path = argv[1];
  N = atoi(argv[2]);
  memset(buf, 'a', sizeof buf);
  int r = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(r, (void *)&a, sizeof a);
  socklen_t l = sizeof a;
  getsockname(r, (void *)&a, &l);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  pthread_t t;
  pthread_create(&t, NULL, filer, NULL);
  char in[1024];
  for (int i = 0; i < N; i++) {
    sendto(s, buf, 50 + i % 200, 0, (void *)&a, sizeof a);
    recv(r, in, sizeof in, 0);
  }
  pthread_join(t, NULL);
  return 7;
}
`;

/** ticks forever: a named thread writes 10 bytes to argv[1] every 10 ms, main 5 bytes to /dev/null every 15 ms */
const TICKER_C = String.raw`
#define _GNU_SOURCE
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
static const char *path;
static void *tick(void *a) {
  (void)a;
  prctl(PR_SET_NAME, "ticker");
  int f = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  for (;;) { write(f, "0123456789", 10); usleep(10000); }
  return NULL;
}
int main(int argc, char **argv) {
  (void)argc;
  path = argv[1];
  pthread_t t;
  pthread_create(&t, NULL, tick, NULL);
  int n = open("/dev/null", O_WRONLY);
  for (;;) { write(n, "hello", 5); usleep(15000); }
}
`;

let dir = '';
let writer = '';
let ticker = '';
const children: ChildProcess[] = [];

function sum(n: number, f: (i: number) => number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += f(i);
  return s;
}

async function collect(c: { events(): AsyncIterable<SyscallEvent[]> }): Promise<{ events: SyscallEvent[]; batches: number }> {
  const events: SyscallEvent[] = [];
  let batches = 0;
  for await (const b of c.events()) {
    batches++;
    for (const e of b) events.push(e);
  }
  return { events, batches };
}

function startTicker(out: string): ChildProcess {
  const p = spawn(ticker, [out], { stdio: 'ignore' });
  children.push(p);
  return p;
}

/** running, not gone and not a zombie (a traced command outliving strace is reparented and may wait to be reaped) */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'dag-strace-live-'));
  writeFileSync(path.join(dir, 'writer.c'), WRITER_C);
  writeFileSync(path.join(dir, 'ticker.c'), TICKER_C);
  writer = path.join(dir, 'writer');
  ticker = path.join(dir, 'ticker');
  execFileSync('cc', ['-O1', '-pthread', '-o', writer, path.join(dir, 'writer.c')]);
  execFileSync('cc', ['-O1', '-pthread', '-o', ticker, path.join(dir, 'ticker.c')]);
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('strace live: a command', () => {
  it('sees exactly the bytes written to a file and over UDP, and the exit code', async () => {
    const N = 400;
    const out = path.join(dir, 'writer.out');
    const raw = path.join(dir, 'writer.strace');
    const problems: CollectorProblem[] = [];
    const c = new StraceCollector({ target: { command: [writer, out, String(N)] }, rawOut: raw, commandOutput: 'ignore', onProblem: (p) => problems.push(p) });
    const { events, batches } = await collect(c);

    const fileBytes = sum(N, (i) => 100 + ((i * 7) % 500));
    const udpBytes = sum(N, (i) => 50 + (i % 200));
    expect(readFileSync(out).length).toBe(fileBytes);
    const writes = events.filter((e) => e.call === 'write' && e.target?.kind === 'file' && e.target.path === out);
    expect(writes).toHaveLength(N);
    expect(writes.reduce((s, e) => s + e.bytes, 0)).toBe(fileBytes);
    const sent = events.filter((e) => e.call === 'sendto' && e.target?.kind === 'udp');
    expect(sent.reduce((s, e) => s + e.bytes, 0)).toBe(udpBytes);
    const port = sent[0].addr!.port;
    expect(sent.every((e) => e.addr?.ip === '127.0.0.1' && e.addr.port === port)).toBe(true);
    const received = events.filter((e) => e.call === 'recvfrom' && e.target?.kind === 'udp' && e.target.local?.port === port);
    expect(received.reduce((s, e) => s + e.bytes, 0)).toBe(udpBytes);

    // the thread: created with clone3 (CLONE_THREAD), named, writes the file
    const clone = events.find((e) => e.call === 'clone3' || e.call === 'clone');
    expect(clone?.flags).toContain('CLONE_THREAD');
    expect(events.find((e) => e.call === 'prctl')).toMatchObject({ tid: clone!.ret, name: 'filer' });
    expect(new Set(writes.map((e) => e.tid))).toEqual(new Set([clone!.ret]));
    expect(events[0]).toMatchObject({ call: 'execve', path: writer, argv: [writer, out, String(N)] });
    expect(events.at(-1)).toMatchObject({ call: 'exit_group', ret: 0 });

    expect(c.exitCode()).toBe(7);
    expect(c.commandExit()).toEqual({ code: 7, signal: null });
    expect(batches).toBeGreaterThan(0);
    expect(c.counters()).toMatchObject({ malformed: 0, truncated: 0, orphanResumed: 0, unfinishedAtEnd: 0 });
    expect(problems).toEqual([]);

    // the raw copy replays to the very same events
    const replay = await collect(new StraceFileCollector(raw));
    expect(replay.events).toEqual(events);
  });

  it('stop() ends a long command: strace detaches and ends it', async () => {
    const c = new StraceCollector({ target: { command: [ticker, path.join(dir, 'stop.out')] }, commandOutput: 'ignore' });
    await c.start();
    const t0 = Date.now();
    setTimeout(() => void c.stop(), 300);
    const { events } = await collect(c);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(events.filter((e) => e.call === 'write' && e.bytes === 10).length).toBeGreaterThan(5);
    // strace passed its SIGINT on to the command and re-raised it: the command's status
    expect(c.commandExit()).toEqual({ code: null, signal: 'SIGINT' });
    expect(c.exitCode()).toBe(130);
    expect(events[0].call).toBe('execve');
    expect(alive(events[0].tid)).toBe(false);
  });

  it('leaving the events() loop early stops strace and its command', async () => {
    const c = new StraceCollector({ target: { command: [ticker, path.join(dir, 'break.out')] }, commandOutput: 'ignore' });
    let pid = 0;
    for await (const b of c.events()) {
      pid ||= b[0].tid;
      if (b.some((e) => e.call === 'write')) break;
    }
    expect(c.commandExit()).toBeDefined();
    await sleep(100);
    expect(alive(pid)).toBe(false);
  });

  it('a command that does not exist is CollectorUnavailable', async () => {
    const c = new StraceCollector({ target: { command: [path.join(dir, 'no-such-program')] } });
    await expect(c.start()).rejects.toThrow(CollectorUnavailable);
    await expect(c.start()).rejects.toThrow(/no-such-program/);
  });
});

describe('strace live: attaching', () => {
  it('attaches to a running process and all its threads, detaches on stop', async () => {
    const out = path.join(dir, 'ticker.out');
    const p = startTicker(out);
    await sleep(200);
    const c = new StraceCollector({ target: { pids: [p.pid!] } });
    await c.start();
    expect(c.counters().attached).toBe(1);
    setTimeout(() => void c.stop(), 500);
    const { events } = await collect(c);
    const ticks = events.filter((e) => e.call === 'write' && e.target?.path === out);
    const hellos = events.filter((e) => e.call === 'write' && e.target?.path === '/dev/null');
    expect(ticks.length).toBeGreaterThan(10);
    expect(hellos.length).toBeGreaterThan(10);
    expect(ticks.every((e) => e.bytes === 10)).toBe(true);
    expect(hellos.every((e) => e.bytes === 5 && e.tid === p.pid)).toBe(true);
    expect(new Set(ticks.map((e) => e.tid)).size).toBe(1);
    expect(ticks[0].tid).not.toBe(p.pid); // the other thread was attached too
    // detached, not killed
    expect(alive(p.pid!)).toBe(true);
    p.kill('SIGKILL');
  });

  it('ptrace refused (the process already has a tracer) is CollectorUnavailable with the reason', async () => {
    const p = startTicker(path.join(dir, 'ticker2.out'));
    await sleep(100);
    const other = spawn('strace', ['-p', String(p.pid), '-o', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(other);
    await new Promise<void>((resolve) => {
      other.stderr!.on('data', (d: Buffer) => {
        if (d.toString().includes('attached')) resolve();
      });
    });
    const c = new StraceCollector({ target: { pids: [p.pid!] } });
    await expect(c.start()).rejects.toThrow(CollectorUnavailable);
    await expect(c.start()).rejects.toThrow(/Operation not permitted.*ptrace not permitted/);
    // events() says the same, without an unhandled rejection
    const c2 = new StraceCollector({ target: { pids: [p.pid!] } });
    await expect(collect(c2)).rejects.toThrow(/Operation not permitted/);
    other.kill('SIGINT');
    await new Promise((r) => other.on('exit', r));
    p.kill('SIGKILL');
  });

  it('a pid that does not exist is CollectorUnavailable', async () => {
    await expect(new StraceCollector({ target: { pids: [2 ** 22 + 12345] } }).start()).rejects.toThrow(/No such process/);
  });
});

describe('strace live: the strace binary', () => {
  it('a missing strace is CollectorUnavailable with a clear message', async () => {
    const c = new StraceCollector({ target: { command: ['true'] }, stracePath: path.join(dir, 'no-strace-here') });
    const err = await collect(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CollectorUnavailable);
    expect((err as Error).message).toMatch(/strace not found .*no-strace-here/);
  });

  it('knows which calls this strace can trace', async () => {
    const r = await straceKnownCalls('strace', ['read', 'write', 'no_such_call_x', 'clone3', 'also_not_a_call']);
    expect(r).toEqual({ known: ['read', 'write', 'clone3'], unknown: ['no_such_call_x', 'also_not_a_call'] });
  });
});

describe('strace live: cgroups and containers', () => {
  const ID = 'f00dfacecafe' + '0123456789abcdef'.repeat(3) + '0123';

  it('finds container cgroups in v2 and v1 layouts (by full id, short id, path)', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'dag-cgroup-'));
    const mk = (rel: string, procs: number[]) => {
      mkdirSync(path.join(root, rel), { recursive: true });
      writeFileSync(path.join(root, rel, 'cgroup.procs'), procs.map((p) => `${p}\n`).join(''));
    };
    // v2 unified at the root
    const v2 = path.join(root, 'v2');
    mkdirSync(v2);
    writeFileSync(path.join(v2, 'cgroup.controllers'), 'cpu memory pids\n');
    writeFileSync(path.join(v2, 'cgroup.procs'), '1\n');
    mk('v2/system.slice', []);
    mk('v2/empty.slice', []);
    mk(`v2/system.slice/docker-${ID}.scope`, [101, 102]);
    mk(`v2/system.slice/docker-${ID}.scope/init.scope`, [103]);
    mk('v2/kubepods.slice/kubepods-pod1.slice/cri-containerd-abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789.scope', [201]);
    mk('v2/machine.slice/libpod-conmon-1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef.scope', [300]);
    mk('v2/machine.slice/libpod-1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef.scope', [301]);
    expect(await cgroupPids(ID, v2)).toEqual({ dir: path.join(v2, `system.slice/docker-${ID}.scope`), pids: [101, 102, 103] });
    expect((await cgroupPids(ID.slice(0, 12), v2)).pids).toEqual([101, 102, 103]);
    expect((await cgroupPids('abcdef012345', v2)).pids).toEqual([201]);
    expect((await cgroupPids('1234567890ab', v2)).pids).toEqual([301]); // not conmon's
    expect((await cgroupPids(`/system.slice/docker-${ID}.scope`, v2)).pids).toEqual([101, 102, 103]);
    await expect(cgroupPids('0000000000000000', v2)).rejects.toThrow(CollectorUnavailable);
    await expect(cgroupPids('/empty.slice', v2)).rejects.toThrow(/no processes/);

    // v1 (plus an empty unified tree, as in hybrid setups): docker's "/docker/<id>"
    const v1 = path.join(root, 'v1');
    mk('v1/unified', [1]);
    mk('v1/pids', [1]);
    mk(`v1/pids/docker/${ID}`, [401]);
    mk('v1/memory', [1]);
    mk(`v1/memory/docker/${ID}`, [401]);
    expect(await findCgroupDirs(ID.slice(0, 16), v1)).toEqual([path.join(v1, `pids/docker/${ID}`), path.join(v1, `memory/docker/${ID}`)]);
    expect(await cgroupPids(ID.slice(0, 16), v1)).toEqual({ dir: path.join(v1, `pids/docker/${ID}`), pids: [401] });
    expect(await cgroupPids(`/docker/${ID}`, v1)).toEqual({ dir: path.join(v1, `pids/docker/${ID}`), pids: [401] });

    // two containers sharing a short prefix
    mk(`v1/pids/docker/${ID.slice(0, 20)}ffffffffffffffffffffffffffffffffffffffffffff`, [402]);
    await expect(findCgroupDirs(ID.slice(0, 12), v1)).rejects.toThrow(/ambiguous/);
    rmSync(root, { recursive: true, force: true });
  });

  it('traces every process of a real cgroup named like a container', async (ctx) => {
    // a v1 hierarchy or cgroup v2 where we may make a child cgroup (root, writable /sys/fs/cgroup)
    const candidates = ['/sys/fs/cgroup/pids', '/sys/fs/cgroup'];
    let cg: string | undefined;
    for (const h of candidates) {
      if (!existsSync(path.join(h, 'cgroup.procs'))) continue;
      const d = path.join(h, `docker-${ID}.scope`);
      try {
        mkdirSync(d);
        cg = d;
        break;
      } catch {
        // not allowed here
      }
    }
    if (cg === undefined) return ctx.skip();
    const out = path.join(dir, 'cg.out');
    const p = startTicker(out);
    try {
      writeFileSync(path.join(cg, 'cgroup.procs'), String(p.pid));
      const c = new StraceCollector({ target: { cgroup: ID.slice(0, 12) } });
      await c.start();
      expect(c.tracedPids()).toEqual([p.pid]);
      setTimeout(() => void c.stop(), 400);
      const { events } = await collect(c);
      expect(events.filter((e) => e.call === 'write' && e.target?.path === out).length).toBeGreaterThan(5);
    } finally {
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(cg);
          break;
        } catch {
          await sleep(50); // the killed process leaves the cgroup a moment later
        }
      }
    }
  });
});
