/**
 * Tracker logic on hand-made events shaped like what each collector delivers: with fd
 * annotations (strace -yy), and without (LTTng), where the fd table alone gives meaning.
 */
import { describe, expect, it } from 'vitest';
import { Tracker } from '../../agent/tracker.js';
import { noAttribution } from '../../agent/state/attribution.js';
import type { SyscallEvent } from '../../shared/event.js';
import type { PartialWindow } from '../../shared/graph.js';

const T0 = 1_700_000_000_000;

function run(events: Partial<SyscallEvent>[], windowMs = 1000): PartialWindow[] {
  const out: PartialWindow[] = [];
  const tr = new Tracker({ app: 't', host: 'h', windowMs, attribution: noAttribution }, (w) => out.push(w));
  tr.push(events.map((e) => ({ ts: T0, pid: 100, tid: 100, ret: 0, bytes: 0, call: 'read', ...e }) as SyscallEvent));
  tr.end();
  return out;
}

function edges(ws: PartialWindow[]) {
  return ws.flatMap((w) => w.edges.map((e) => `${e.src} -> ${e.dst} ${e.kind} ${e.bytes}/${e.count}`));
}

describe('tracker', () => {
  it('builds file and net edges in the direction data flows, from the fd table alone (LTTng)', () => {
    const ws = run([
      { call: 'execve', path: '/usr/sbin/nginx', argv: ['nginx'], ret: 0 },
      { call: 'open', path: '/srv/www/index.html', ret: 7 },
      { call: 'read', fd: 7, ret: 500, bytes: 500 },
      { call: 'accept4', fd: 6, ret: 9, addr: { ip: '172.21.0.2', port: 47782 } },
      { call: 'recvfrom', fd: 9, ret: 300, bytes: 300 },
      { call: 'sendfile64', fd: 9, fd2: 7, ret: 1200, bytes: 1200 },
      { call: 'close', fd: 7 },
      { call: 'write', fd: 7, ret: 10, bytes: 10 }, // fd closed: unknown
    ]);
    expect(edges(ws)).toEqual([
      'file:/srv/www/index.html -> nginx file 1700/2',
      'net:tcp/private:*→:? -> nginx net 300/1',
      'nginx -> net:tcp/private:*→:? net 1200/1',
    ]);
    expect(ws[0].stats).toMatchObject({ unknownFdCalls: 1, unknownFdBytes: 10 });
    expect(ws[0].flows).toEqual([
      expect.objectContaining({ proto: 'tcp', side: 'server', remote: { ip: '172.21.0.2', port: 47782 }, bytesIn: 300, bytesOut: 1200 }),
    ]);
  });

  it('uses annotations, names threads by prctl, folds unnamed threads into the main role', () => {
    const ws = run([
      { call: 'execve', path: '/opt/dag-client', argv: ['dag-client'], ret: 0 },
      { call: 'clone3', flags: 'CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM', ret: 101 },
      { tid: 101, call: 'prctl', name: 'tcp-send', ret: 0 },
      {
        tid: 101, call: 'write', fd: 3, ret: 64, bytes: 64,
        target: { kind: 'tcp', local: { ip: '127.0.0.1', port: 45000 }, remote: { ip: '127.0.0.1', port: 17001 } },
      },
      { call: 'write', fd: 4, ret: 8, bytes: 8, target: { kind: 'file', path: '/tmp/out.1' } },
    ]);
    expect(edges(ws)).toEqual([
      'dag-client -> file:/tmp/out.# file 8/1',
      'dag-client/tcp-send -> net:tcp/loopback:17001 net 64/1',
    ]);
  });

  it('resolves pipe peers across fork when both ends are on the host, counting bytes once', () => {
    const ws = run([
      { call: 'execve', path: '/bin/producer', argv: ['producer'], ret: 0 },
      { call: 'pipe2', fds: [3, 4], ret: 0 },
      { call: 'clone', flags: 'CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD', ret: 200 },
      { pid: 200, tid: 200, call: 'execve', path: '/bin/consumer', argv: ['consumer'], ret: 0 },
      { call: 'write', fd: 4, ret: 100, bytes: 100 },
      { pid: 200, tid: 200, call: 'read', fd: 3, ret: 100, bytes: 100 },
    ]);
    expect(edges(ws)).toEqual(['producer -> consumer ipc 100/1']);
  });

  it('keeps an IPC role when the reader is not on the host', () => {
    const ws = run([
      { call: 'execve', path: '/bin/producer', argv: ['producer'], ret: 0 },
      { call: 'write', fd: 5, ret: 40, bytes: 40, target: { kind: 'pipe', inode: 999 } },
      { call: 'write', fd: 1, ret: 3, bytes: 3 },
    ]);
    expect(edges(ws)).toEqual(['producer -> ipc:pipe ipc 40/1', 'producer -> ipc:stdio:stdout ipc 3/1']);
  });

  it('counts memory obtained and released, brk by its change', () => {
    const ws = run([
      { call: 'execve', path: '/bin/pgw', argv: ['pgw'], ret: 0 },
      { call: 'brk', ret: 0x1000000 },
      { call: 'brk', ret: 0x1021000 },
      { call: 'mmap', len: 8192, flags: 'PROT_READ|PROT_WRITE MAP_PRIVATE|MAP_ANONYMOUS', ret: 0x7f0000000000 },
      { call: 'munmap', len: 8192, ret: 0 },
      { call: 'madvise', len: 4096, flags: 'MADV_DONTNEED', ret: 0 },
      { call: 'madvise', len: 4096, flags: 'MADV_WILLNEED', ret: 0 },
      { call: 'brk', ret: 0x1011000 },
    ]);
    expect(edges(ws)).toEqual(['mem:pgw -> pgw mem 143360/2', 'pgw -> mem:pgw mem 77824/3']);
  });

  it('names unconnected UDP peers per datagram and records the flows', () => {
    const sock = { kind: 'udp' as const, local: { ip: '127.0.0.1', port: 17002 } };
    const ws = run([
      { call: 'execve', path: '/bin/srv', argv: ['srv'], ret: 0 },
      { call: 'recvfrom', fd: 3, ret: 100, bytes: 100, target: sock, addr: { ip: '127.0.0.1', port: 40001 } },
      { call: 'recvfrom', fd: 3, ret: 50, bytes: 50, target: sock, addr: { ip: '127.0.0.1', port: 40002 } },
    ]);
    expect(edges(ws)).toEqual(['net:udp/loopback:*→:17002 -> srv net 150/2']);
    expect(ws[0].flows.map((f) => [f.remote.port, f.bytesIn, f.side])).toEqual([[40001, 100, 'server'], [40002, 50, 'server']]);
  });

  it('gives the same roles to a restart with new pids', () => {
    const life = (pid: number) => [
      { pid, tid: pid, call: 'execve', path: '/bin/svc', argv: ['svc'], ret: 0 },
      { pid, tid: pid + 1, call: 'prctl', name: 'io', ret: 0 },
      { pid, tid: pid + 1, call: 'write', fd: 3, ret: 5, bytes: 5, target: { kind: 'file' as const, path: `/var/run/svc.${pid}.pid` } },
    ];
    const a = run(life(100));
    const b = run(life(5000));
    expect(a[0].edges).toEqual(b[0].edges);
    expect(a[0].edges[0].dst).toBe('file:/var/run/svc.#.pid');
  });
});
