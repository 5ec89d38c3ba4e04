import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CollectorProblem } from '../../agent/collectors/collector.js';
import {
  LttngFields,
  LttngParser,
  cloneFlagsText,
  ipv6Text,
  openFlagsText,
  parseLttngLine,
  parseNumber,
  parseString,
  socketFlagsText,
  type LttngParserOptions,
} from '../../agent/collectors/lttng-parser.js';
import type { SyscallEvent } from '../../shared/event.js';

const FIX = join(import.meta.dirname, '../fixtures/lttng');
const fixture = (name: string): string[] => readFileSync(join(FIX, name), 'utf8').split('\n').filter((l) => l !== '');

function run(lines: string[], opts: LttngParserOptions = {}) {
  const problems: CollectorProblem[] = [];
  const p = new LttngParser((x) => problems.push(x), opts);
  const events: SyscallEvent[] = [];
  for (const l of lines) {
    const ev = p.push(l);
    if (ev !== undefined) events.push(ev);
  }
  p.finish();
  return { events, problems, c: p.counters(), parser: p };
}

/** every non-blank line is counted exactly once */
function expectLinesAccounted(c: Record<string, number>): void {
  expect(c.entries + c.exits + c.ignoredCall + c.otherEvent + c.malformed + c.needsClockSeconds).toBe(c.lines);
  expect(c.paired + c.entryReplaced + c.mismatchedExit + c.unfinishedAtEnd + c.noReturn).toBe(c.entries);
  expect(c.paired + c.exitWithoutEntry + c.childReturn).toBe(c.exits);
}

// synthetic lines in babeltrace2's format, with LTTng's field names, for calls the sample lacks
const CTX = '{ cpu_id = 1 }, { procname = "app", pid = 500, vpid = 1, tid = 501, vtid = 1, pid_ns = 4026531836 }';
let clock = 1700000000;
function L(event: string, payload?: string, ctx = CTX, host = 'h1'): string {
  clock += 0.000001;
  return `[${clock.toFixed(9)}] (+0.000001000) ${host} ${event}: ${ctx}${payload === undefined ? '' : `, { ${payload} }`}`;
}
const pair = (call: string, entry: string | undefined, exit: string, ctx = CTX): string[] => [
  L(`syscall_entry_${call}`, entry, ctx),
  L(`syscall_exit_${call}`, exit, ctx),
];
const one = (lines: string[], opts?: LttngParserOptions): SyscallEvent => {
  const r = run(lines, opts);
  expect(r.events).toHaveLength(1);
  return r.events[0];
};

describe('LttngParser on real nginx lines (LID-DS sample)', () => {
  const lines = fixture('nginx-request.txt');

  it('pairs entries and exits into the calls nginx made, with the kernel fields', () => {
    const { events, c, problems } = run(lines);
    expect(events.map((e) => e.call)).toEqual([
      'accept4', 'accept4', 'recvfrom', 'open', 'writev', 'sendfile64', 'write', 'close', 'recvfrom',
    ]);
    const ids = { pid: 94665, tid: 94665, comm: 'nginx' }; // host pid, not the container's vpid 10
    expect(events[0]).toEqual({
      ...ids, ts: 1666346774265.45987, call: 'accept4', ret: 3, bytes: 0, fd: 6,
      addr: { ip: '192.168.192.2', port: 47782 }, flags: 'SOCK_NONBLOCK',
    });
    expect(events[1]).toMatchObject({ ret: 9, fd: 6, addr: { ip: '192.168.192.3', port: 45358 } });
    expect(events[2]).toEqual({ ...ids, ts: 1666346774265.773152, call: 'recvfrom', ret: 424, bytes: 424, fd: 3 });
    expect(events[3]).toEqual({
      ...ids, ts: 1666346774265.834626, call: 'open', ret: 10, bytes: 0,
      path: '/etc/nginx/html/index.html', flags: 'O_RDONLY|O_NONBLOCK',
    });
    expect(events[4]).toMatchObject({ call: 'writev', fd: 3, ret: 240, bytes: 240 });
    expect(events[5]).toMatchObject({ call: 'sendfile64', fd: 3, fd2: 10, ret: 21080, bytes: 21080 });
    expect(events[6]).toMatchObject({ call: 'write', fd: 4, ret: 185, bytes: 185 });
    expect(events[7]).toMatchObject({ call: 'close', fd: 10, ret: 0, bytes: 0 });
    expect(events[8]).toMatchObject({ call: 'recvfrom', fd: 3, ret: -1, err: 'EAGAIN', bytes: 0 });
    for (const e of events) expect(e.ts).toBeCloseTo(events[0].ts, -2); // ms, within the same second
    expect(events.map((e) => e.ts)).toEqual([...events.map((e) => e.ts)].sort((a, b) => a - b)); // exit times: in order

    expect(c).toMatchObject({ lines: 35, entries: 9, exits: 9, paired: 9, events: 9, ignoredCall: 17, malformed: 0, failed: 1 });
    expectLinesAccounted(c);
    expect(problems).toEqual([]);
  });

  it('reads time-of-day stamps only with a base date, and says --clock-seconds is needed', () => {
    const tod = fixture('nginx-request-time-of-day.txt');
    const without = run(tod);
    expect(without.events).toEqual([]);
    expect(without.c.needsClockSeconds).toBe(35);
    expectLinesAccounted(without.c);
    expect(without.problems).toHaveLength(1); // said once, not 35 times
    expect(without.problems[0]).toMatchObject({ kind: 'needsClockSeconds', line: 1 });
    expect(without.problems[0].message).toContain('--clock-seconds');

    const withBase = run(tod, { baseDateMs: Date.UTC(2022, 9, 21) });
    const reference = run(lines).events;
    expect(withBase.events.map((e) => ({ ...e, ts: 0 }))).toEqual(reference.map((e) => ({ ...e, ts: 0 })));
    withBase.events.forEach((e, i) => expect(Math.abs(e.ts - reference[i].ts)).toBeLessThan(1e-3));
  });

  it('rolls time-of-day stamps over midnight', () => {
    const base = Date.UTC(2022, 9, 21);
    const ctx = CTX;
    const lines2 = [
      `[23:59:59.900000000] h1 syscall_entry_close: ${ctx}, { fd = 3 }`,
      `[23:59:59.950000000] h1 syscall_exit_close: ${ctx}, { ret = 0 }`,
      `[00:00:00.100000000] h1 syscall_entry_close: ${ctx}, { fd = 4 }`,
      `[00:00:00.200000000] h1 syscall_exit_close: ${ctx}, { ret = 0 }`,
    ];
    const { events } = run(lines2, { baseDateMs: base });
    expect(events.map((e) => e.ts)).toEqual([base + 86_399_950, base + 86_400_200]);
  });

  it('maps failed calls to ret -1 and the errno name', () => {
    const { events, c } = run(fixture('errors.txt'));
    expect(events.map((e) => [e.call, e.ret, e.err, e.bytes])).toEqual([
      ['recvfrom', -1, 'EAGAIN', 0],
      ['open', -1, 'ENOENT', 0],
      ['sendfile64', -1, 'EINVAL', 0],
    ]);
    expect(events[1].path).toBe('/etc/nginx/html/favicon.ico');
    expect(events[2]).toMatchObject({ fd: 38, fd2: 39 });
    expect(c.failed).toBe(3);
  });

  it('parses a line into a record: host pid/tid, vpid/vtid, procname, payload', () => {
    const r = parseLttngLine(lines[2]);
    expect(r).toMatchObject({
      ts: 1666346774265.45987, host: 'T5600', event: 'syscall_exit_accept4', kind: 'exit', call: 'accept4',
      compat: false, pid: 94665, tid: 94665, vpid: 10, vtid: 10, comm: 'nginx',
    });
    if ('error' in r) throw new Error(r.message);
    expect(r.fields.num('ret')).toBe(3);
    expect(r.fields.arr('v4addr')).toEqual([192, 168, 192, 2]);
    expect(r.fields.arr('v6addr')).toEqual([]);
    expect(parseLttngLine(lines[0])).toMatchObject({ kind: 'exit', call: 'epoll_wait' });
    const stat = parseLttngLine(lines[20]);
    expect(stat).toMatchObject({ event: 'syscall_exit_newfstat', call: 'fstat' }); // LTTng's sys_newfstat
  });
});

describe('LttngParser pairing', () => {
  const [recvEntry, recvExit] = fixture('nginx-request.txt').slice(13, 15);

  it('turns an exit without its entry into an event without the entry arguments (default), or drops it', () => {
    const { events, c, problems } = run(['', recvExit]);
    expect(events).toEqual([{ ts: 1666346774265.773152, pid: 94665, tid: 94665, comm: 'nginx', call: 'recvfrom', ret: 424, bytes: 424 }]);
    expect(c.exitWithoutEntry).toBe(1);
    expectLinesAccounted(c);
    expect(problems).toEqual([expect.objectContaining({ kind: 'exitWithoutEntry', line: 2 })]); // 1-based, blank lines count
    const dropped = run([recvExit], { exitWithoutEntry: 'drop' });
    expect(dropped.events).toEqual([]);
    expect(dropped.c.exitWithoutEntry).toBe(1);
  });

  it('reports entries never exited at finish()', () => {
    const problems: CollectorProblem[] = [];
    const p = new LttngParser((x) => problems.push(x));
    expect(p.push(recvEntry)).toBeUndefined();
    expect(p.finish()).toBe(1);
    expect(p.counters().unfinishedAtEnd).toBe(1);
    expect(problems).toEqual([expect.objectContaining({ kind: 'unfinishedAtEnd', line: 1 })]);
    expect(p.finish()).toBe(0); // forgotten once reported
  });

  it('replaces an open entry by a newer one on the same tid (its exit was lost)', () => {
    const second = recvEntry.replace('fd = 3,', 'fd = 7,');
    const { events, c, problems } = run([recvEntry, second, recvExit]);
    expect(events).toHaveLength(1);
    expect(events[0].fd).toBe(7);
    expect(c).toMatchObject({ entryReplaced: 1, paired: 1 });
    expect(problems[0]).toMatchObject({ kind: 'entryReplaced', line: 2 });
    expectLinesAccounted(c);
  });

  it('drops the open entry when the exit is of another call', () => {
    const { events, c } = run([...pair('close', 'fd = 3', 'ret = 0').slice(0, 1), L('syscall_exit_read', 'ret = 5, buf = 0')]);
    expect(events).toEqual([expect.objectContaining({ call: 'read', bytes: 5 })]);
    expect(events[0].fd).toBeUndefined();
    expect(c).toMatchObject({ mismatchedExit: 1, exitWithoutEntry: 1 });
    expectLinesAccounted(c);
  });

  it('keeps threads and hosts apart', () => {
    const other = CTX.replace('tid = 501', 'tid = 502');
    const lines = [
      L('syscall_entry_read', 'fd = 3, count = 10'),
      L('syscall_entry_read', 'fd = 4, count = 10', other),
      L('syscall_exit_read', 'ret = 2, buf = 0', other),
      L('syscall_exit_read', 'ret = 1, buf = 0', CTX, 'h2'), // same tid, another host
      L('syscall_exit_read', 'ret = 3, buf = 0'),
    ];
    const { events, c } = run(lines);
    expect(events.map((e) => [e.tid, e.fd, e.bytes])).toEqual([[502, 4, 2], [501, undefined, 1], [501, 3, 3]]);
    expect(c).toMatchObject({ paired: 2, exitWithoutEntry: 1 });
  });

  it('does not make an event of the child returning from clone', () => {
    const child = CTX.replace('tid = 501', 'tid = 777');
    const lines = [
      L('syscall_entry_clone', 'clone_flags = 0x3D0F00, newsp = 0x7F0000, parent_tid = 0x7F0010, child_tid = 0x7F0010'),
      L('syscall_exit_clone', 'ret = 0', child),
      L('syscall_exit_clone', 'ret = 777'),
    ];
    const { events, c } = run(lines);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ call: 'clone', ret: 777, tid: 501 });
    expect(events[0].flags).toBe(
      'CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID',
    );
    expect(c).toMatchObject({ childReturn: 1, exitWithoutEntry: 0 });
    expectLinesAccounted(c);
  });

  it('makes exit/exit_group events at their entry: they never return', () => {
    const { events, c } = run([L('syscall_entry_exit_group', 'error_code = 0')]);
    expect(events).toEqual([expect.objectContaining({ call: 'exit_group', ret: 0, pid: 500, tid: 501, comm: 'app' })]);
    expect(c).toMatchObject({ noReturn: 1, unfinishedAtEnd: 0 });
  });
});

describe('LttngParser robustness', () => {
  const real = fixture('nginx-request.txt');

  it('counts every truncated traced line as malformed, with its line number, and makes no event of it', () => {
    const traced = real.filter((l) => /syscall_(entry|exit)_(accept4|recvfrom|open|writev|sendfile64|write|close):/.test(l));
    expect(traced.length).toBe(18);
    for (const full of traced) {
      for (let n = 1; n < full.length; n++) {
        const problems: CollectorProblem[] = [];
        const p = new LttngParser((x) => problems.push(x));
        p.push('');
        expect(p.push(full.slice(0, n))).toBeUndefined();
        const c = p.counters();
        expect([n, c.malformed, c.entries + c.exits]).toEqual([n, 1, 0]);
        expect(problems[0]).toMatchObject({ kind: 'malformed', line: 2 });
      }
    }
  });

  it('never throws on garbage, and counts it', () => {
    const garbage = [
      'hello', '[', ']', '[]', '[abc] x y: { }', '[1.5] h syscall_exit_read: { cpu_id = 1 }, { tid = }, { ret = 1 }',
      '[1.5] h syscall_exit_read: { cpu_id = 1 }, { procname = "a }, { ret = 1 }', '{ ret = 3 }',
      '[1.5] h syscall_exit_read: garbage', '\u0000\u0001\u0002', '[1.5]',
      '[1.5] h syscall_exit_read: { cpu_id = 1 }, { procname = "a", tid = 5 }, { ret = 1 } trailing',
      '[1.5] h syscall_exit_read: { cpu_id = 1 }, { procname = "a", tid = 5 }, { ret = 1 }, { x = 2 }, { y = 3 }',
      '[1.5] h syscall_exit_read: { cpu_id = 1 }, { procname = "a", tid = 5 }, { ret = one }',
      '[1.5] h sched_switch: { cpu_id = 1 }, { procname = "a", tid = 5 }, { prev_comm = "x',
      '[1.5] h syscall_exit_read: { cpu_id = 1 }, { procname = "a", pid = 1 }, { ret = 1 }', // no tid context
    ];
    const { events, c, problems } = run(garbage);
    expect(events).toEqual([]);
    expect(c.malformed).toBe(garbage.length);
    expectLinesAccounted(c);
    expect(problems.map((p) => p.line)).toEqual(garbage.map((_, i) => i + 1));
    expect(problems.at(-1)?.message).toContain('add-context');
  });

  it('counts non-syscall events and untraced calls without making events', () => {
    const lines = [
      L('sched_switch', 'prev_comm = "swapper/0", prev_tid = 0, prev_prio = 20, prev_state = 0, next_comm = "nginx", next_tid = 501, next_prio = 20'),
      L('lttng_statedump_file_descriptor', 'pid = 500, fd = 3, flags = 524288, fmode = 0x5801F, filename = "socket:[123]"'),
      L('lttng_ust_statedump:start', ''),
      L('syscall_entry_newfstat', 'fd = 3'),
      L('syscall_exit_newfstat', 'ret = 0, statbuf = 140722787749456'),
      L('syscall_entry_unknown', 'id = 451, args = [ [0] = 0, [1] = 0, [2] = 0, [3] = 0, [4] = 0, [5] = 0 ]'),
      L('syscall_entry_epoll_wait', 'epfd = 8, maxevents = 512, timeout = 60000'),
    ];
    const { events, c } = run(lines);
    expect(events).toEqual([]);
    expect(c).toMatchObject({ otherEvent: 3, ignoredCall: 4, malformed: 0 });
    expectLinesAccounted(c);
  });

  it('decodes thread names, escaped ones too, line after line', () => {
    const names = ['nginx', 'we\\"ird\\\\', 'we\\"ird\\\\', 'nginx', 'ngin', ''];
    const lines = names.flatMap((n) => {
      const ctx = CTX.replace('"app"', `"${n}"`);
      return pair('close', 'fd = 3', 'ret = 0', ctx);
    });
    expect(run(lines).events.map((e) => e.comm)).toEqual(['nginx', 'we"ird\\', 'we"ird\\', 'nginx', 'ngin', '']);
  });

  it('caps the problems reported per kind; the counters stay exact', () => {
    const { problems, c } = run(['a', 'b', 'c', 'd', 'e'], { maxProblemsPerKind: 2 });
    expect(c.malformed).toBe(5);
    expect(problems).toHaveLength(3);
    expect(problems[2].message).toContain('only counted');
  });

  it('accepts lines without host name or delta, compat calls and CRLF', () => {
    const bare = `[1700000000.000000100] syscall_entry_read: ${CTX}, { fd = 3, count = 100 }`;
    const e = one([bare, `[1700000000.000000200] syscall_exit_read: ${CTX}, { ret = 100, buf = 0 }\r`]);
    expect(e).toMatchObject({ call: 'read', fd: 3, bytes: 100, ts: 1700000000000.0002 });
    const compat = one([L('compat_syscall_entry_read', 'fd = 5, count = 10'), L('compat_syscall_exit_read', 'ret = 10, buf = 0')]);
    expect(compat).toMatchObject({ call: 'read', fd: 5, bytes: 10 });
    expect(parseLttngLine(L('compat_syscall_exit_read', 'ret = 10, buf = 0'))).toMatchObject({ compat: true, call: 'read' });
  });
});

describe('LttngParser fields of the traced calls (LTTng field names)', () => {
  it('connect: the address from family/dport/v4addr/v6addr; only a pointer → no addr', () => {
    const v4 = one(pair('connect',
      'fd = 3, uservaddr = 0x7FFD5D1C2E40, addrlen = 16, family = 2, dport = 80, _v4addr_length = 4, v4addr = [ [0] = 10, [1] = 0, [2] = 0, [3] = 1 ], _v6addr_length = 0, v6addr = [ ]',
      'ret = -115'));
    expect(v4).toMatchObject({ call: 'connect', fd: 3, addr: { ip: '10.0.0.1', port: 80 }, ret: -1, err: 'EINPROGRESS' });
    const v6 = one(pair('connect',
      'fd = 4, uservaddr = 0x7FFD5D1C2E40, addrlen = 28, family = 10, dport = 443, _v4addr_length = 0, v4addr = [ ], _v6addr_length = 8, v6addr = [ [0] = 8193, [1] = 3512, [2] = 0, [3] = 0, [4] = 0, [5] = 0, [6] = 0, [7] = 1 ]',
      'ret = 0'));
    expect(v6.addr).toEqual({ ip: '2001:db8::1', port: 443 });
    const old = one(pair('connect', 'fd = 3, uservaddr = 140726168350272, addrlen = 16', 'ret = 0'));
    expect(old.addr).toBeUndefined();
    expect(old.fd).toBe(3);
  });

  it('socket, socketpair, pipe2, dup, dup2, fcntl: flags and fds', () => {
    expect(one(pair('socket', 'family = 2, type = 526337, protocol = 6', 'ret = 5'))).toMatchObject({
      ret: 5, flags: 'AF_INET|SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK',
    });
    expect(one(pair('socketpair', 'family = 1, type = 1, protocol = 0', 'ret = 0, socket = [ [0] = 7, [1] = 8 ]'))).toMatchObject({
      flags: 'AF_UNIX|SOCK_STREAM', fds: [7, 8], fd: 7, fd2: 8,
    });
    expect(one(pair('pipe2', 'flags = 524288', 'ret = 0, fildes = [ [0] = 5, [1] = 6 ]'))).toMatchObject({
      fds: [5, 6], fd: 5, fd2: 6, flags: 'O_CLOEXEC',
    });
    expect(one(pair('dup', 'fildes = 5', 'ret = 9'))).toMatchObject({ fd: 5, fd2: 9, ret: 9 });
    expect(one(pair('dup2', 'oldfd = 5, newfd = 1', 'ret = 1'))).toMatchObject({ fd: 5, fd2: 1 });
    expect(one(pair('fcntl', 'fd = 5, cmd = 1030, arg = 10', 'ret = 11'))).toMatchObject({ fd: 5, fd2: 11, flags: 'F_DUPFD_CLOEXEC' });
    expect(one(pair('close', 'fd = 4294967295', 'ret = -9'))).toMatchObject({ fd: -1, err: 'EBADF' }); // printed unsigned
  });

  it('open/openat: path, decoded flags (also as a bitwise enum), dirfd only when it is one', () => {
    const at = one(pair('openat', 'dfd = -100, filename = "/tmp/a \\"b\\"\\\\c", flags = 577, mode = 438', 'ret = 3'));
    expect(at).toMatchObject({ path: '/tmp/a "b"\\c', flags: 'O_WRONLY|O_CREAT|O_TRUNC', ret: 3 });
    expect(at.fd).toBeUndefined();
    const enumFlags = one(pair('openat',
      'dfd = 7, filename = "x", flags = ( "O_RDONLY" | "O_CLOEXEC" : container = 524288 ), mode = ( <unknown> : container = 0 )',
      'ret = 4'));
    expect(enumFlags).toMatchObject({ fd: 7, path: 'x', flags: 'O_RDONLY|O_CLOEXEC' });
  });

  it('execve, clone (struct flags), memory calls, sendmmsg, splice', () => {
    const newName = CTX.replace('"app"', '"curl"');
    const ex = one([
      L('syscall_entry_execve', 'filename = "/usr/bin/curl", argv = 0x7FFC5E1A8B40, envp = 0x7FFC5E1A8B58'),
      L('syscall_exit_execve', 'ret = 0', newName),
    ]);
    expect(ex).toMatchObject({ call: 'execve', path: '/usr/bin/curl', comm: 'curl', ret: 0 });
    const cl = one(pair('clone',
      'flags = { exit_signal = ( "SIGCHLD" : container = 17 ), options = ( "CLONE_CHILD_CLEARTID" | "CLONE_CHILD_SETTID" : container = 0x12000 ) }, newsp = 0x0, parent_tid = 0x0, child_tid = 0x7F1A2B3C4D50',
      'ret = 1234'));
    expect(cl.flags).toBe('CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD');
    const mm = one(pair('mmap', 'addr = 0, len = 8192, prot = 3, flags = 34, fd = 18446744073709551615, off = 0', 'ret = 140006281216000'));
    expect(mm).toMatchObject({ len: 8192, flags: 'MAP_PRIVATE|MAP_ANONYMOUS', ret: 140006281216000, bytes: 0 });
    expect(mm.fd).toBeUndefined();
    expect(one(pair('mmap', 'addr = 0, len = 4096, prot = 1, flags = 2, fd = 3, off = 0', 'ret = 140006281216000')).fd).toBe(3);
    expect(one(pair('munmap', 'addr = 140006281216000, len = 8192', 'ret = 0'))).toMatchObject({ len: 8192 });
    expect(one(pair('brk', 'brk = 0', 'ret = 94367717376000'))).toMatchObject({ ret: 94367717376000 });
    expect(one(pair('madvise', 'start = 140006281216000, len_in = 4096, behavior = 4', 'ret = 0'))).toMatchObject({
      len: 4096, flags: 'MADV_DONTNEED',
    });
    const r = run(pair('sendmmsg', 'fd = 3, mmsg = 0x7FFC0, vlen = 3, flags = 0', 'ret = 3'));
    expect(r.events[0]).toMatchObject({ fd: 3, ret: 3, bytes: 0 }); // msg_len not in the trace
    expect(r.c.bytesUnknown).toBe(1);
    expect(one(pair('splice', 'fd_in = 5, off_in = 0, fd_out = 6, off_out = 0, len = 65536, flags = 0', 'ret = 4096'))).toMatchObject({
      fd: 6, fd2: 5, bytes: 4096,
    });
  });
});

describe('decoders', () => {
  it('numbers: decimal, negative, hex, enum container', () => {
    expect(parseNumber('424')).toBe(424);
    expect(parseNumber('-11')).toBe(-11);
    expect(parseNumber('0x7FFC93C693E0')).toBe(0x7ffc93c693e0);
    expect(parseNumber('( "EPOLL_CTL_ADD" : container = 1 )')).toBe(1);
    expect(parseNumber('abc')).toBeNaN();
    const f = new LttngFields();
    f.names.push('fd', 'big');
    f.values.push('4294967295', '18446744073709551615');
    expect([f.int('fd'), f.int('big')]).toEqual([-1, -1]);
  });

  it('strings as babeltrace2 escapes them', () => {
    expect(parseString('"plain"')).toBe('plain');
    expect(parseString('"a\\nb\\t\\"q\\"\\\\\\x01"')).toBe('a\nb\t"q"\\\u0001');
    expect(parseString('unquoted')).toBeUndefined();
  });

  it('flag texts and addresses', () => {
    expect(openFlagsText(2048)).toBe('O_RDONLY|O_NONBLOCK');
    expect(openFlagsText(0o4010002)).toBe('O_RDWR|O_SYNC');
    expect(socketFlagsText(10, 2)).toBe('AF_INET6|SOCK_DGRAM');
    expect(cloneFlagsText(0x1200011)).toBe('CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD');
    expect(ipv6Text([0, 0, 0, 0, 0, 0, 0, 1])).toBe('::1');
    expect(ipv6Text([0, 0, 0, 0, 0, 0xffff, 0xc0a8, 0x0102])).toBe('192.168.1.2'); // v4-mapped: as the eBPF collector
    expect(ipv6Text([0xfe80, 0, 0, 0, 1, 0, 0, 1])).toBe('fe80::1:0:0:1');
    expect(ipv6Text([1, 2, 3, 4, 5, 6, 7, 8])).toBe('1:2:3:4:5:6:7:8');
  });
});
