/**
 * bpftrace-parser on real output of agent/collectors/bpftrace/syscalls.bt (captured here by
 * test/integration/ebpf-live.test.ts with DISTAPPGUARD_SAVE_FIXTURE=1), and on hand-made
 * lines for what a short run does not show: reprinted rows, bad lines, IPv6, signals.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BpftraceParser, formatIp, openFlags, cloneFlags, socketFlags, mmapFlags } from '../../agent/collectors/bpftrace-parser.js';
import { buildBpftraceScript, tickMs } from '../../agent/collectors/ebpf.js';
import type { CollectorProblem } from '../../agent/collectors/collector.js';
import { dataDirection, type SyscallEvent } from '../../shared/event.js';

const FX = join(import.meta.dirname, '../fixtures/bpftrace');
const meta = JSON.parse(readFileSync(join(FX, 'live-x64.json'), 'utf8')) as {
  offsetNs: string; intervalMs: number; file: string; exe: string; N: number; M: number; K: number;
  udpSize: number; tcpPort: number; udpPort: number; serverPid: number; mainPid: number; clientPort: number;
};
const rawLines = readFileSync(join(FX, 'live-x64.txt'), 'utf8').split('\n');

function parse(lines: string[], opts: { intervalMs?: number; offsetNs?: bigint } = {}) {
  const problems: CollectorProblem[] = [];
  const exits: number[] = [];
  const starts: number[] = [];
  const p = new BpftraceParser({
    intervalMs: opts.intervalMs ?? meta.intervalMs,
    offsetNs: opts.offsetNs ?? BigInt(meta.offsetNs),
    arch: 'x64',
    onProblem: (x) => problems.push(x),
    onProcessExit: (pid) => exits.push(pid),
    onProcessStart: (pid) => starts.push(pid),
  });
  const batches: SyscallEvent[][] = [];
  for (const l of lines) {
    const b = p.push(l);
    if (b) batches.push(b);
  }
  const last = p.finish();
  if (last.length) batches.push(last);
  return { p, problems, exits, starts, batches, events: batches.flat() };
}

const bytesOf = (evs: SyscallEvent[]) => evs.reduce((a, e) => a + e.bytes, 0);
const callsOf = (evs: SyscallEvent[]) => evs.reduce((a, e) => a + (e.count ?? 1), 0);

describe('bpftrace parser on a real capture', () => {
  const r = parse(rawLines);

  it('reads every line and reports nothing', () => {
    expect(r.problems).toEqual([]);
    expect(r.p.counters()).toMatchObject({ malformed: 0, unknownCall: 0, unknownLine: 0, lostEvents: 0, staleRows: 0, mapFull: 0 });
    expect(r.p.ended).toBe(true);
    expect(r.p.ready).toBeGreaterThan(0);
    expect(r.batches.length).toBeGreaterThan(1);
    for (const b of r.batches) for (let i = 1; i < b.length; i++) expect(b[i].ts).toBeGreaterThanOrEqual(b[i - 1].ts);
  });

  it('sums the bytes of each named thread exactly, per target kind', () => {
    const ev = r.events;
    const out = (e: SyscallEvent) => dataDirection(e.call) === 'out';
    const inn = (e: SyscallEvent) => dataDirection(e.call) === 'in';
    const fw = ev.filter((e) => e.comm === 'file-writer' && out(e));
    expect(bytesOf(fw)).toBe(meta.N);
    expect(fw.every((e) => e.target === undefined && e.call === 'write')).toBe(true);
    expect(fw.some((e) => (e.count ?? 1) > 100)).toBe(true); // summed in the kernel
    const tcp = ev.filter((e) => e.comm === 'net-sender' && out(e) && e.target?.kind === 'tcp');
    expect(bytesOf(tcp)).toBe(meta.M);
    for (const e of tcp) {
      expect(e.target).toMatchObject({ local: { ip: '127.0.0.1', port: meta.clientPort }, remote: { ip: '127.0.0.1', port: meta.tcpPort } });
      expect(e.target?.inode).toBeGreaterThan(0);
    }
    const udp = ev.filter((e) => e.comm === 'net-sender' && out(e) && e.target?.kind === 'udp');
    expect(bytesOf(udp)).toBe(meta.K);
    expect(callsOf(udp)).toBe(Math.ceil(meta.K / 2 / meta.udpSize) * 2);
    for (const e of udp) {
      expect(e.addr).toEqual({ ip: '127.0.0.1', port: meta.udpPort });
      expect(e.target?.remote).toBeUndefined();
    }
    const srv = ev.filter((e) => e.pid === meta.serverPid && inn(e));
    expect(bytesOf(srv.filter((e) => e.target?.kind === 'tcp'))).toBe(meta.M);
    expect(bytesOf(srv.filter((e) => e.target?.kind === 'udp'))).toBe(meta.K);
    // the gate the collector holds the command at moves no data of its own
    expect(ev.filter((e) => e.comm === 'sh' && e.bytes > 0)).toEqual([]);
  });

  it('gives the calls that name fds their arguments', () => {
    const ev = r.events;
    const open = ev.find((e) => e.call === 'openat' && e.path === meta.file)!;
    expect(open).toMatchObject({ comm: 'file-writer', flags: 'O_WRONLY|O_CREAT|O_TRUNC', path: meta.file });
    expect(open?.target).toBeUndefined(); // the state resolves the path, as for every collector
    expect(open.fd).toBeUndefined(); // AT_FDCWD
    expect(ev.find((e) => e.call === 'connect')).toMatchObject({
      ret: 0, addr: { ip: '127.0.0.1', port: meta.tcpPort },
      target: { kind: 'tcp', local: { ip: '127.0.0.1', port: meta.clientPort }, remote: { ip: '127.0.0.1', port: meta.tcpPort } },
    });
    expect(ev.find((e) => e.call === 'accept')).toMatchObject({ pid: meta.serverPid, addr: { ip: '127.0.0.1', port: meta.clientPort } });
    const binds = ev.filter((e) => e.call === 'bind');
    expect(binds.map((e) => e.target?.kind).sort()).toEqual(['tcp', 'udp']);
    expect(ev.find((e) => e.call === 'execve' && e.ret === 0)).toMatchObject({ path: meta.exe, argv: [meta.exe, meta.file, String(meta.N), String(meta.M), String(meta.K), String(meta.udpSize), expect.any(String)] });
    expect(ev.find((e) => e.call === 'prctl')).toMatchObject({ name: 'server', flags: 'PR_SET_NAME' });
    const pipe = ev.find((e) => e.call === 'pipe2' || e.call === 'pipe')!;
    expect(pipe.fds).toEqual([pipe.fd, pipe.fd2]);
    const clones = ev.filter((e) => e.call.startsWith('clone') && e.ret > 0);
    expect(clones.filter((e) => e.flags?.includes('CLONE_THREAD'))).toHaveLength(2);
    expect(r.starts).toContain(meta.serverPid);
    expect(r.exits.sort()).toEqual([meta.mainPid, meta.serverPid].sort());
    // both processes called exit_group: the X lines add no second exit
    expect(ev.filter((e) => e.call === 'exit_group')).toHaveLength(2);
    const mm = ev.find((e) => e.call === 'mmap' && e.flags?.includes('MAP_ANONYMOUS'));
    expect(mm?.len).toBeGreaterThan(0);
    expect(mm?.fd).toBeUndefined();
  });

  it('puts a row after the open of its fd and before its close', () => {
    const ev = r.events;
    const i = (f: (e: SyscallEvent) => boolean) => ev.findIndex(f);
    const open = i((e) => e.call === 'openat' && e.path === meta.file);
    const fd = ev[open].ret;
    const writes = ev.map((e, k) => [e, k] as const).filter(([e]) => e.comm === 'file-writer' && e.call === 'write');
    const close = i((e) => e.call === 'close' && e.comm === 'file-writer' && e.fd === fd);
    expect(close).toBeGreaterThan(open);
    for (const [, k] of writes) {
      expect(k).toBeGreaterThan(open);
      expect(k).toBeLessThan(close);
    }
  });

  it('converts bpftrace time to epoch ms with the offset the script got', () => {
    const ready = rawLines.find((l) => l.startsWith('R\t'))!;
    const ns = Number(ready.split('\t')[1]);
    const ts = r.p.tsOf(ns);
    expect(ts).toBeCloseTo(Number((BigInt(ns) + BigInt(meta.offsetNs)) / 1000n) / 1000, 3);
    // rows fall inside their aligned bucket
    for (const e of r.events.filter((x) => (x.count ?? 1) > 1)) expect(e.ts).toBeGreaterThan(1.7e12);
  });
});

// ---------------------------------------------------------------------------------------

const OFF = 1_700_000_000_000_000_000n; // epoch ns at monotonic 0
const B = 8_500_000_000; // bucket index at 200 ms: 1_700_000_000_000 ms / 200
/** bpftrace nsecs of a time `ms` into bucket `bucket` (monotonic 0 is epoch OFF) */
const mono = (ms: number, bucket = B) => String(BigInt((bucket - B) * 200 + ms) * 1_000_000n);
/** the script's packed key fields */
const pt = (pid: number, tid: number) => String((BigInt(pid) << 32n) | BigInt(tid));
const fds = (fd: number, fd2 = -1) => String((BigInt(fd) << 32n) | (BigInt(fd2) & 0xffffffffn));
const packMeta = (nr: number, ftype = 8, fam = 0, proto = 0) => nr + ftype * 0x1000 + fam * 0x10000 + proto * 0x1000000;
const ports = (lport: number, rportRaw: number) => lport * 0x10000 + rportRaw;
/** @d key of a write(2)-like row on a regular file */
const key = (bucket: number, tid: number, nr: number, fd: number, comm: string) =>
  `${bucket}, ${pt(100, tid)}, ${fds(fd)}, ${packMeta(nr)}, 555, 0, 0, 0, 0, 0, ${comm}`;

describe('bpftrace parser on hand-made lines', () => {
  it('never counts a reprinted row twice (a dropped clear), but keeps what grew', () => {
    const k = key(B, 101, 1, 7, 'w');
    const r = parse(
      [
        'R\t1\t42',
        `@d0[${k}]: (3, 300, ${mono(50)})`,
        `D\t${B}`,
        // the clear was lost: the same row comes again two buckets later, plus 2 late calls
        `@d0[${k}]: (5, 500, ${mono(70)})`,
        `D\t${B + 2}`,
        `@d0[${k}]: (5, 500, ${mono(70)})`,
        'Z',
      ],
      { intervalMs: 200, offsetNs: OFF },
    );
    const w = r.events.filter((e) => e.call === 'write');
    expect(w.map((e) => [e.bytes, e.count ?? 1])).toEqual([[300, 3], [200, 2]]);
    expect(r.p.counters()).toMatchObject({ reprintedRows: 2, staleRows: 1, rowBytes: 500, rowCalls: 5 });
    expect(w[0].ts).toBe(B * 200 + 50);
    expect(w[1].ts).toBe(B * 200 + 70);
  });

  it('holds single events until their bucket is dumped, then sorts them with the rows', () => {
    const k = key(B, 101, 1, 7, 'w'); // write, fd 7
    const r = parse(
      [
        'R\t1\t42',
        `A\t100\t101\t-1\t/data/x`, // the path, just before its S line
        `S\t${mono(10)}\t100\t101\t257\t7\t-100\t577\t420\t0\t0\tw`, // openat → 7
        `S\t${mono(90)}\t100\t101\t3\t0\t7\t0\t0\t0\t0\tw`, // close(7)
        `S\t${mono(250)}\t100\t101\t3\t0\t8\t0\t0\t0\t0\tw`, // close(8), next bucket
        `@d0[${k}]: (2, 10, ${mono(60)})`,
        `D\t${B}`,
        `D\t${B + 1}`,
      ],
      { intervalMs: 200, offsetNs: OFF },
    );
    expect(r.batches.map((b) => b.map((e) => `${e.call}:${e.fd ?? e.ret}`))).toEqual([['openat:7', 'write:7', 'close:7'], ['close:8']]);
    expect(r.batches[0][0]).toMatchObject({ flags: 'O_WRONLY|O_CREAT|O_TRUNC', path: '/data/x' });
    expect(r.batches[0][2].path).toBeUndefined();
    expect(r.p.counters().lateSingles).toBe(0);
  });

  it('reports bad lines with their line numbers and carries on', () => {
    const r = parse(
      [
        'R\t1\t42',
        'S\t123\t100', // truncated
        'complete nonsense',
        '@d0[1, 2]: (1, 1, 1)', // key too short
        '@e1[1, 2, 3]: not-a-number',
        `S\t${mono(1)}\t100\t101\t999\t0\t0\t0\t0\t0\t0\tw`, // a syscall the script does not trace
        'Lost 17 events',
        `S\t${mono(2)}\t100\t101\t3\t-9\t55\t0\t0\t0\t0\tw`, // close(55) = -EBADF
        'Z',
        'S\tafter the end is ignored',
      ],
      { intervalMs: 200, offsetNs: OFF },
    );
    expect(r.problems.map((p) => [p.kind, p.line])).toEqual([
      ['malformed', 2],
      ['unknownLine', 3],
      ['malformed', 5],
      ['unknownCall', 6],
      ['lostEvents', 7],
      ['malformed', 9],
    ]);
    expect(r.p.counters()).toMatchObject({ malformed: 3, unknownLine: 1, unknownCall: 1, lostEvents: 17 });
    expect(r.events).toEqual([expect.objectContaining({ call: 'close', fd: 55, ret: -1, err: 'EBADF' })]);
  });

  it('counts the rows a full map dropped (bpftrace -k warnings) and skips their source lines', () => {
    const r = parse(
      [
        'R\t1\t42',
        '/tmp/x/syscalls.bt:262:9-120: WARNING: Failed to map_update_elem: Argument list too long (-7)',
        '        @d1[$b, $pt, $fds, $meta, $ino, $ports, $lhi, $llo, $rhi, $rlo, comm] = ($o.0 + 1, $o.1 + $bytes, $now);',
        '        ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~',
        '/tmp/x/syscalls.bt:262:9-120: WARNING: Failed to map_update_elem: Argument list too long (-7)',
        `S\t${mono(2)}\t100\t101\t3\t0\t5\t0\t0\t0\t0\tw`, // a record right after: not skipped
        'Z',
      ],
      { intervalMs: 200, offsetNs: OFF },
    );
    expect(r.p.counters()).toMatchObject({ mapFull: 2, malformed: 0, unknownLine: 0 });
    expect(r.problems.map((p) => p.kind)).toEqual(['mapFull', 'mapFull']);
    expect(r.events.map((e) => e.call)).toEqual(['close']);
  });

  it('turns error rows into failed calls and a kill into an exit_group', () => {
    const r = parse(
      [
        'R\t1\t42',
        `@e1[${B + 1}, ${pt(100, 101)}, 0, 9, 11, w]: 40`, // read(9) = -EAGAIN, 40 times
        `@e1[${B + 1}, ${pt(100, 101)}, 0, 10, 0, w]: 3`, // read(10) = 0 (EOF), 3 times
        `D\t${B + 1}`,
        `X\t${mono(900)}\t100\t100\t9\tw`, // killed by SIGKILL
        `X\t${mono(901)}\t200\t200\t768\tv`, // exit(3) from a thread, no exit_group call
        'Z',
      ],
      { intervalMs: 200, offsetNs: OFF },
    );
    expect(r.events.map((e) => [e.call, e.pid, e.ret, e.err, e.count])).toEqual([
      ['read', 100, -1, 'EAGAIN', 40],
      ['read', 100, 0, undefined, 3],
      ['exit_group', 100, -1, 'SIGKILL', undefined],
      ['exit_group', 200, 3, undefined, undefined],
    ]);
    expect(r.exits).toEqual([100, 200]);
  });

  it('reads socket rows: IPv6, v4-mapped, unix peers, pipes, datagram peers', () => {
    // ::1 is words [0, 0, 0, 0x01000000]; ::ffff:10.0.0.5 is [0, 0, 0xffff0000, 0x0500000a]
    const v6lo = String((0n << 32n) | 0x01000000n);
    const mappedLo = String((0xffff0000n << 32n) | 0x0500000an);
    const row = (fd: number, fd2: number, m: number, ino: number, p: number, lhi: string | number, llo: string | number, rhi: string | number, rlo: string | number, comm: string, calls: number, bytes: number) =>
      `@d0[${B}, ${pt(1, 1)}, ${fds(fd, fd2)}, ${m}, ${ino}, ${p}, ${lhi}, ${llo}, ${rhi}, ${rlo}, ${comm}]: (${calls}, ${bytes}, ${mono(5)})`;
    const rows = [
      // tcp6 ::1:8080 -> ::1:40000 (dport 40000 = 0x9c40, stored as 0x409c)
      row(3, -1, packMeta(1, 12, 10, 6), 77, ports(8080, 0x409c), 0, v6lo, 0, v6lo, 'a', 1, 9),
      // tcp6 v4-mapped 10.0.0.5
      row(4, -1, packMeta(1, 12, 10, 6), 78, ports(8080, 0x409c), 0, mappedLo, 0, mappedLo, 'a', 1, 9),
      // unix socket with peer inode 91 (in laddr lo)
      row(5, -1, packMeta(1, 12, 1, 0), 90, 0, 0, 91, 0, 0, 'a', 1, 9),
      // pipe, and a comm with ", " in it
      row(6, -1, packMeta(0, 1), 92, 0, 0, 0, 0, 0, 'a, b', 1, 9),
      // unconnected udp, peer 10.0.0.7:53 from the argument (0x10000)
      row(7, -1, packMeta(44, 12, 2, 0x10011), 93, ports(65535, 0x3500), 0, 0, 0, 0x0700000a, 'a', 2, 60),
      // sendfile: fd 8 <- fd2 9
      row(8, 9, packMeta(40, 12, 2, 6), 94, ports(80, 0x409c), 0, 0x0100007f, 0, 0x0100007f, 'a', 1, 9),
    ];
    const r = parse(['R\t1\t42', ...rows, `D\t${B}`], { intervalMs: 200, offsetNs: OFF });
    const byFd = new Map(r.events.map((e) => [e.fd, e]));
    expect(byFd.get(3)?.target).toEqual({ kind: 'tcp', inode: 77, local: { ip: '::1', port: 8080 }, remote: { ip: '::1', port: 40000 } });
    expect(byFd.get(4)?.target).toMatchObject({ local: { ip: '10.0.0.5' }, remote: { ip: '10.0.0.5', port: 40000 } });
    expect(byFd.get(5)?.target).toEqual({ kind: 'unix', inode: 90, peerInode: 91 });
    expect(byFd.get(6)).toMatchObject({ call: 'read', comm: 'a, b', target: { kind: 'pipe', inode: 92 } });
    expect(byFd.get(7)).toMatchObject({ call: 'sendto', bytes: 60, count: 2, addr: { ip: '10.0.0.7', port: 53 }, target: { kind: 'udp', local: { ip: '0.0.0.0', port: 65535 } } });
    expect(byFd.get(7)?.target?.remote).toBeUndefined();
    expect(byFd.get(8)).toMatchObject({ call: 'sendfile', fd2: 9, bytes: 9 });
    expect(r.events.every((e) => e.ts === B * 200 + 5)).toBe(true);
  });

  it('formats addresses and flags as strace does', () => {
    expect(formatIp(10, (0xb80d0120n << 32n) | 0n, 0x01000000n)).toBe('2001:db8::1');
    expect(formatIp(10, 0n, 0n)).toBe('::');
    expect(formatIp(2, 0n, 0x0100007fn)).toBe('127.0.0.1');
    expect(openFlags(0o2000000 | 0o100 | 0o1 | 0o1000)).toBe('O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC');
    expect(openFlags(0)).toBe('O_RDONLY');
    expect(socketFlags(2, 1 | 0o2000000)).toBe('AF_INET|SOCK_STREAM|SOCK_CLOEXEC');
    expect(cloneFlags(0x3d0f00, 0)).toBe('CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID');
    expect(cloneFlags(0x1200011, 17)).toBe('CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD');
    expect(mmapFlags(0x22)).toBe('MAP_PRIVATE|MAP_ANONYMOUS');
  });
});

describe('bpftrace script template', () => {
  const template = readFileSync(join(import.meta.dirname, '../../agent/collectors/bpftrace/syscalls.bt'), 'utf8');

  it('fills every marker', () => {
    const s = buildBpftraceScript(template, { init: '@traced[5] = 1;', filter: '@traced[pid]', intervalMs: 1000, offsetNs: 123n });
    expect(s).not.toMatch(/\{\{/);
    expect(s).toContain('interval:ms:100\n');
    expect(s).toContain('/ 1000000000;');
    expect(s).toContain('+ 123)');
    expect(tickMs(50)).toBe(10);
    expect(() => buildBpftraceScript(template, { init: '', filter: '1', intervalMs: 5, offsetNs: 0n })).toThrow(/intervalMs/);
  });

  it("drops the probes a kernel lacks (arm64 has no open, pipe, fork…), and blocks left empty", () => {
    const missing = new Set(['sys_enter_open', 'sys_exit_open', 'sys_enter_pipe', 'sys_exit_pipe', 'sys_enter_fork', 'sys_exit_fork', 'sys_enter_creat', 'sys_exit_creat']);
    const s = buildBpftraceScript(template, {
      init: '', filter: '@traced[pid]', intervalMs: 200, offsetNs: 0n, hasTracepoint: (_c, n) => !missing.has(n),
    });
    for (const m of missing) expect(s).not.toMatch(new RegExp(`:${m}[,\\s]`));
    expect(s).toContain('tracepoint:syscalls:sys_enter_openat\n');
    expect(s).toMatch(/tracepoint:syscalls:sys_exit_openat,\ntracepoint:syscalls:sys_exit_openat2,/);
    expect(s).toMatch(/tracepoint:syscalls:sys_exit_pipe2,\ntracepoint:syscalls:sys_exit_socketpair\n/);
    expect(s).toMatch(/tracepoint:syscalls:sys_enter_vfork\n\/@traced\[pid\]\/\n\{/);
    // braces still balance
    expect(s.split('{').length).toBe(s.split('}').length);
  });
});
