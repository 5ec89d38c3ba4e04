/**
 * Output of agent/collectors/bpftrace/syscalls.bt → SyscallEvent batches. Pure: no I/O; the
 * live collector (ebpf.ts) feeds it the lines of bpftrace's stdout; tests feed it fixtures.
 *
 * The line format is documented at the top of the script. Decisions:
 * - Text output, not `-f json`: bpftrace 0.17 prints a whole map as ONE json line (a dump of
 *   thousands of rows would be one multi-megabyte line parsed at once), while the text form
 *   is a line per row; our own records are printf lines we designed (tab separated, numbers
 *   first, comm and strings last so anything they contain stays in the last field).
 * - Aggregated rows (@d/@e) are collected until the dump's `D <bucket>` line, then turned
 *   into events: one per (bucket, thread, fd, call, what the fd is), `count` = calls,
 *   `bytes` = `ret` = sum of the return values (sendmmsg/recvmmsg: of msg_len). Calls that
 *   failed or returned 0 (EOF, an empty datagram) are rows of their own (per errno, bytes
 *   0, no target) so that, as with strace, only calls that moved data count on an edge.
 *   A row's time is its last call's (kept in the row), so a row sorts after the open that
 *   made its fd and before the close that ended it; single events (open, close, …) are held
 *   back until the dump of their bucket and released together with the rows, sorted by
 *   time. The state can then resolve fds correctly although the rows were summed in the
 *   kernel.
 * - A row printed twice (bpftrace dropped the clear(), or a late writer re-created it) is
 *   turned into a delta against what was already emitted for that bucket and key: bytes are
 *   never counted twice.
 * - Targets come from the kernel's own socket (BTF walk): tcp/udp with local and remote
 *   address, unix with inode and peer inode, pipes with inode, netlink. Regular files get no
 *   target: the path comes from the open event (a path-less target would replace it in the
 *   state's fd table). Unconnected datagram sockets: the peer of each row is `addr`, the
 *   socket's target has no remote (as with strace).
 * - IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are given as the dotted IPv4 address: the
 *   peer on the other host sees an IPv4 socket, and cross-host correlation must match them.
 * - Field conventions follow strace-parser.ts (what agent/state expects): fd-creating calls
 *   ret = new fd; dup*: fd = old, fd2 = new; pipe/socketpair: fds and fd/fd2; connect/bind/
 *   accept: target = the socket after the call; close_range: fd = first, fd2 = last.
 * - A traced process whose last thread exits without calling exit_group (killed by a signal)
 *   gets an `exit_group` event from the X line (ret = status, or -1 and err = signal name).
 * - Nothing throws: bad lines are counted and reported through the sink (at most
 *   `maxProblemsPerKind` reports per kind; the counters stay exact).
 */
import { ProblemReporter } from './problems.js';
import type { FdTarget, SockAddr, SyscallEvent } from '../../shared/event.js';
import type { CollectorCounters, ProblemSink } from './collector.js';
import {
  closeRangeFlagsText, cloneFlagsText, errnoName, fdFlagsText, ipv6Text, madviseName, mmapFlagsText,
  mremapFlagsText, openFlagsText, signalName, socketFlagsText,
} from './kernel-decode.js';

// Numbers to text as strace prints them (agent/state matches on those names) are in
// kernel-decode.ts, shared with the LTTng parser; re-exported under the names this module had.
export {
  cloneFlagsText as cloneFlags,
  errnoName,
  mmapFlagsText as mmapFlags,
  openFlagsText as openFlags,
  socketFlagsText as socketFlags,
};

// ---------------------------------------------------------------------------------------
// Syscall numbers: the script keys rows by args->__syscall_nr (a number per probe costs
// nothing; a name string in a map key would cost 64 bytes per row).

export type SyscallArch = 'x64' | 'arm64';

/** x86_64 (asm/unistd_64.h); sendfile is the kernel's sendfile64, named as strace names it */
const NR_X64: Record<string, number> = {
  read: 0, write: 1, open: 2, close: 3, mmap: 9, munmap: 11, brk: 12, pread64: 17, pwrite64: 18,
  readv: 19, writev: 20, pipe: 22, mremap: 25, madvise: 28, dup: 32, dup2: 33, sendfile: 40,
  socket: 41, connect: 42, accept: 43, sendto: 44, recvfrom: 45, sendmsg: 46, recvmsg: 47,
  bind: 49, listen: 50, socketpair: 53, clone: 56, fork: 57, vfork: 58, execve: 59, exit: 60,
  fcntl: 72, creat: 85, prctl: 157, exit_group: 231, openat: 257, splice: 275, tee: 276,
  vmsplice: 278, eventfd: 284, accept4: 288, eventfd2: 290, dup3: 292, pipe2: 293, preadv: 295,
  pwritev: 296, recvmmsg: 299, sendmmsg: 307, execveat: 322, copy_file_range: 326, preadv2: 327,
  pwritev2: 328, clone3: 435, close_range: 436, openat2: 437,
};

/** arm64 (asm-generic/unistd.h): no open, pipe, dup2, fork, vfork, creat, eventfd */
const NR_ARM64: Record<string, number> = {
  eventfd2: 19, dup: 23, dup3: 24, fcntl: 25, openat: 56, close: 57, pipe2: 59, read: 63, write: 64,
  readv: 65, writev: 66, pread64: 67, pwrite64: 68, preadv: 69, pwritev: 70, sendfile: 71,
  vmsplice: 75, splice: 76, tee: 77, exit: 93, exit_group: 94, prctl: 167, socket: 198,
  socketpair: 199, bind: 200, listen: 201, accept: 202, connect: 203, sendto: 206, recvfrom: 207,
  sendmsg: 211, recvmsg: 212, brk: 214, munmap: 215, mremap: 216, clone: 220, execve: 221,
  mmap: 222, madvise: 233, accept4: 242, recvmmsg: 243, sendmmsg: 269, execveat: 281,
  copy_file_range: 285, preadv2: 286, pwritev2: 287, clone3: 435, close_range: 436, openat2: 437,
};

export function syscallNames(arch: SyscallArch): string[] {
  const t = arch === 'arm64' ? NR_ARM64 : NR_X64;
  const names: string[] = [];
  for (const [name, nr] of Object.entries(t)) names[nr] = name;
  return names;
}

export function hostArch(): SyscallArch | undefined {
  return process.arch === 'x64' ? 'x64' : process.arch === 'arm64' ? 'arm64' : undefined;
}

// ---------------------------------------------------------------------------------------
// Addresses as the kernel keeps them (little-endian reads of network-order bytes).

const U32 = 0xffffffffn;

/** bpftrace prints u64 keys unsigned and %lld signed: accept both */
function u64(t: string): bigint {
  if (t === '0') return 0n;
  return BigInt.asUintN(64, BigInt(t));
}

function swap16(v: number): number {
  return ((v & 0xff) << 8) | ((v >> 8) & 0xff);
}

function ipv4(lo: number): string {
  return `${lo & 255}.${(lo >>> 8) & 255}.${(lo >>> 16) & 255}.${lo >>> 24}`;
}

/** canonical text (RFC 5952) of the address whose four LE-read words are hi:lo; IPv4-mapped as dotted IPv4 */
export function formatIp(family: number, hi: bigint, lo: bigint): string {
  if (family === 2) return ipv4(Number(lo & U32));
  const g: number[] = []; // eight 16-bit groups, network order
  for (const x of [Number(hi >> 32n), Number(hi & U32), Number(lo >> 32n), Number(lo & U32)]) {
    g.push(((x & 255) << 8) | ((x >>> 8) & 255), (((x >>> 16) & 255) << 8) | (x >>> 24));
  }
  return ipv6Text(g);
}

function sockKind(protocol: number): 'tcp' | 'udp' | 'socket' {
  const p = protocol & 0xffff;
  return p === 6 ? 'tcp' : p === 17 || p === 136 ? 'udp' : 'socket';
}

// ---------------------------------------------------------------------------------------

export interface BpftraceParserOptions {
  /** bucket length given to the script (ms) */
  intervalMs: number;
  /** epoch ns − CLOCK_MONOTONIC ns: the offset given to the script */
  offsetNs: bigint;
  /** whose syscall numbers (default: this machine's) */
  arch?: SyscallArch;
  onProblem?: ProblemSink;
  /** reports per problem kind before going quiet (counters stay exact); default 20 */
  maxProblemsPerKind?: number;
  /** the last thread of a traced process exited (X line) */
  onProcessExit?: (pid: number, tsMs: number) => void;
  /** a traced task forked a new process (clone without CLONE_THREAD, fork, vfork) */
  onProcessStart?: (pid: number) => void;
}

interface DumpRow {
  count: number;
  total: number;
  /** bpftrace nsecs of the row's last call (@d rows) */
  lastNs?: number;
}

/** how many past buckets keep their emitted totals, to turn reprinted rows into deltas */
const KEEP_BUCKETS = 16;
/** numeric fields before comm in @d keys, and in @e keys */
const D_FIELDS = 10;
const E_FIELDS = 5;
const MAP_LINE = /^@([de])([01])\[(.*)\]: (.*)$/;
/** a line of ours (after a warning, the next two lines are bpftrace's unless they are ours) */
const RECORD = /^(?:[SNAXRD]\t|Z$|@[de][01]\[)/;
/** calls whose S line follows A lines (path, name, argv) */
const STRING_CALLS = new Set(['open', 'openat', 'openat2', 'creat', 'execve', 'execveat', 'prctl']);
const ROW_VALUE = /^\((\d+), (-?\d+), (\d+)\)$/;

/** "pid << 32 | tid" style keys: the high and low 32 bits */
function split64(t: string): [number, number] {
  const v = u64(t);
  return [Number(v >> 32n), Number(v & U32)];
}

export class BpftraceParser {
  private readonly intervalMs: number;
  /** offset split so that ts = offMs + (ns + offRemNs) / 1e6 stays exact in doubles */
  private readonly offMs: number;
  private readonly offRemNs: number;
  private readonly names: string[];
  private readonly problems: ProblemReporter;
  private readonly onProcessExit: ((pid: number, tsMs: number) => void) | undefined;
  private readonly onProcessStart: ((pid: number) => void) | undefined;

  private lineNo = 0;
  private readyPid = 0;
  /** lines still to skip after a runtime warning (bpftrace -k prints the source line and a caret line) */
  private skipLines = 0;
  private dumpedTo = -Infinity;
  private done = false;
  /** singles waiting for the dump of their bucket */
  private held: SyscallEvent[] = [];
  /** rows of the dump being read */
  private dRows = new Map<string, DumpRow>();
  private eRows = new Map<string, number>();
  /** bucket → key → what was emitted already */
  private readonly emitted = new Map<number, Map<string, DumpRow>>();
  /** A lines waiting for their S/N line, per tid */
  private readonly strings = new Map<number, { path?: string; argv?: string[] }>();
  /** pids whose exit_group call was seen: their X line adds nothing */
  private readonly exitCalled = new Set<number>();
  /** singles released up to this time (ms): later arrivals before it are "late" */
  private releasedTo = -Infinity;
  private readonly c = {
    lines: 0, singles: 0, rows: 0, errorRows: 0, rowCalls: 0, rowBytes: 0, dumps: 0,
    reprintedRows: 0, staleRows: 0, lateSingles: 0, lostEvents: 0, mapFull: 0, bpftraceWarnings: 0, processExits: 0,
    malformed: 0, unknownCall: 0, unknownLine: 0, events: 0,
  };

  constructor(opts: BpftraceParserOptions) {
    this.intervalMs = opts.intervalMs;
    this.offMs = Number(opts.offsetNs / 1_000_000n);
    this.offRemNs = Number(opts.offsetNs % 1_000_000n);
    this.names = syscallNames(opts.arch ?? hostArch() ?? 'x64');
    this.problems = new ProblemReporter(opts.onProblem, opts.maxProblemsPerKind ?? 20);
    this.onProcessExit = opts.onProcessExit;
    this.onProcessStart = opts.onProcessStart;
  }

  /** bpftrace's pid once the script said it is attached (R line), else 0 */
  get ready(): number {
    return this.readyPid;
  }

  /** the END marker (Z) was seen, or finish() called: everything was flushed */
  get ended(): boolean {
    return this.done;
  }

  /** the highest bucket whose rows are all printed (last D line) */
  get lastDump(): number {
    return this.dumpedTo;
  }

  counters(): CollectorCounters {
    return { ...this.c };
  }

  /** epoch ms of a bpftrace nsecs value */
  tsOf(monoNs: number): number {
    return this.offMs + (monoNs + this.offRemNs) / 1e6;
  }

  /**
   * One line of output (without its newline). Returns the events a dump completed
   * (`D`, `Z`), in time order, or undefined.
   */
  push(line: string): SyscallEvent[] | undefined {
    this.lineNo++;
    this.c.lines++;
    if (this.done || line.length === 0) return undefined; // bpftrace prints maps again at exit
    if (this.skipLines > 0) {
      this.skipLines--;
      if (!RECORD.test(line)) return undefined;
      this.skipLines = 0;
    }
    if (line.includes(': WARNING: ')) return this.warning(line);
    try {
      switch (line.charCodeAt(0)) {
        case 83 /* S */:
          return this.single(line);
        case 78 /* N */:
          return this.net(line);
        case 65 /* A */:
          if (line.charCodeAt(1) === 9) return this.stringLine(line);
          break;
        case 64 /* @ */:
          return this.mapLine(line);
        case 68 /* D */:
          if (line.charCodeAt(1) === 9) return this.dump(line);
          break;
        case 88 /* X */:
          if (line.charCodeAt(1) === 9) return this.exitLine(line);
          break;
        case 82 /* R */:
          if (line.charCodeAt(1) === 9) {
            const f = line.split('\t');
            this.readyPid = Number(f[2]) || -1;
            return undefined;
          }
          break;
        case 90 /* Z */:
          if (line === 'Z') return this.finish();
          break;
        case 76 /* L */: {
          const m = /^Lost (\d+) events/.exec(line);
          if (m) {
            this.c.lostEvents += Number(m[1]);
            this.problem('lostEvents', `bpftrace lost ${m[1]} events (perf buffer full)`, line);
            return undefined;
          }
          break;
        }
      }
      if (line.startsWith('Attaching ')) return undefined;
      this.c.unknownLine++;
      this.problem('unknownLine', 'unrecognised line', line);
    } catch (e) {
      this.c.malformed++;
      this.problem('malformed', `cannot parse: ${(e as Error).message}`, line);
    }
    return undefined;
  }

  /**
   * A runtime warning of bpftrace -k: "FILE:L:C: WARNING: Failed to map_update_elem: … (-7)"
   * then the script line and a caret line. A failed map update is a row the kernel dropped
   * (the map is full: raise mapKeysMax); each is counted.
   */
  private warning(line: string): undefined {
    this.skipLines = 2;
    if (line.includes('map_update_elem')) {
      this.c.mapFull++;
      this.problem('mapFull', 'a BPF map is full: calls were not counted (raise BPFTRACE_MAP_KEYS_MAX / mapKeysMax)', line);
    } else {
      this.c.bpftraceWarnings++;
      this.problem('bpftraceWarning', 'bpftrace runtime warning', line);
    }
    return undefined;
  }

  /** End of the stream (or Z): everything held is released. */
  finish(): SyscallEvent[] {
    const out = this.done ? [] : this.release(Infinity);
    this.done = true;
    return out;
  }

  // ------------------------------------------------------------------ record kinds

  private single(line: string): undefined {
    const f = line.split('\t');
    if (f.length < 12) return this.bad(line, 'S line with too few fields');
    const call = this.names[Number(f[4])];
    if (call === undefined) return this.unknown(line, f[4]);
    const tid = Number(f[3]);
    const ev = this.base(f, call, f.slice(11).join('\t'));
    const a1 = Number(f[6]);
    const a2 = Number(f[7]);
    const a3 = Number(f[8]);
    const a4 = Number(f[9]);
    const a5 = Number(f[10]);
    const ok = ev.ret >= 0;
    // only the calls that print strings take them: a string must not stick to another call
    const strs = STRING_CALLS.has(call) ? this.takeStrings(tid) : undefined;
    switch (call) {
      case 'open':
      case 'openat':
      case 'openat2':
      case 'creat': {
        const dfd = a1 | 0;
        if (call !== 'open' && call !== 'creat' && dfd !== -100) ev.fd = dfd;
        ev.flags = openFlagsText(a2);
        if (strs?.path) {
          // "" when bpftrace could not read the user string
          // as the program gave it: the state resolves it (cwd, symlinks) the way strace -y shows it
          ev.path = strs.path;
        }
        break;
      }
      case 'close':
      case 'listen':
        ev.fd = a1 | 0;
        break;
      case 'close_range':
        ev.fd = a1 >>> 0;
        ev.fd2 = a2 >>> 0;
        if (a3) ev.flags = closeRangeFlagsText(a3);
        break;
      case 'dup':
        ev.fd = a1 | 0;
        if (ok) ev.fd2 = ev.ret;
        break;
      case 'dup2':
      case 'dup3':
        ev.fd = a1 | 0;
        ev.fd2 = a2 | 0;
        if (a3) ev.flags = fdFlagsText(a3, 'O');
        break;
      case 'fcntl':
        ev.fd = a1 | 0;
        ev.flags = a2 === 1030 ? 'F_DUPFD_CLOEXEC' : 'F_DUPFD';
        if (ok) ev.fd2 = ev.ret;
        break;
      case 'socket':
        ev.flags = socketFlagsText(a1, a2);
        break;
      case 'socketpair':
      case 'pipe':
      case 'pipe2':
        if (call === 'socketpair') ev.flags = socketFlagsText(a1, a2);
        else if (a1) ev.flags = fdFlagsText(a1, 'O');
        if (ok) {
          ev.fds = [a4 | 0, a5 | 0];
          ev.fd = a4 | 0;
          ev.fd2 = a5 | 0;
        }
        break;
      case 'eventfd':
      case 'eventfd2':
        if (a2) ev.flags = fdFlagsText(a2, 'EFD');
        break;
      case 'clone':
      case 'clone3':
      case 'fork':
      case 'vfork':
        if (call === 'clone') ev.flags = cloneFlagsText(a1);
        else if (call === 'clone3') ev.flags = cloneFlagsText(a1, a2);
        if (ev.ret > 0 && (call === 'fork' || call === 'vfork' || (a1 & 0x10000) === 0)) this.onProcessStart?.(ev.ret);
        break;
      case 'execve':
      case 'execveat':
        if (strs?.path !== undefined) ev.path = strs.path;
        if (strs?.argv) ev.argv = strs.argv;
        break;
      case 'exit_group':
        this.exitCalled.add(ev.pid);
        ev.ret = 0;
        break;
      case 'exit':
        ev.ret = 0;
        break;
      case 'prctl':
        ev.flags = 'PR_SET_NAME';
        if (strs?.path !== undefined) ev.name = strs.path;
        break;
      case 'mmap':
        ev.len = a2;
        ev.flags = mmapFlagsText(a4);
        if ((a4 & 0x20) === 0 && (a5 | 0) >= 0) ev.fd = a5 | 0;
        break;
      case 'munmap':
        ev.len = a2;
        break;
      case 'madvise':
        ev.len = a2;
        ev.flags = madviseName(a3);
        break;
      case 'mremap':
        ev.len = a3;
        if (a4) ev.flags = mremapFlagsText(a4);
        break;
    }
    this.hold(ev);
    return undefined;
  }

  private net(line: string): undefined {
    const f = line.split('\t');
    if (f.length < 20) return this.bad(line, 'N line with too few fields');
    const call = this.names[Number(f[4])];
    if (call === undefined) return this.unknown(line, f[4]);
    const tid = Number(f[3]);
    const ev = this.base(f, call, f.slice(19).join('\t'));
    ev.fd = Number(f[6]) | 0;
    const afam = Number(f[7]);
    const strs = afam === 1 ? this.takeStrings(tid) : undefined; // a unix address: its path
    if (afam === 2 || afam === 10) {
      ev.addr = { ip: formatIp(afam, u64(f[9]), u64(f[10])), port: swap16(Number(f[8]) & 0xffff) };
    } else if (afam === 1 && strs?.path !== undefined) {
      ev.path = strs.path;
    }
    const fam = Number(f[11]);
    if (fam === 2 || fam === 10) {
      const t: FdTarget = {
        kind: sockKind(Number(f[12])),
        local: { ip: formatIp(fam, u64(f[14]), u64(f[15])), port: Number(f[13]) & 0xffff },
      };
      const rport = swap16(Number(f[16]) & 0xffff);
      const rhi = u64(f[17]);
      const rlo = u64(f[18]);
      if (rport !== 0 || rhi !== 0n || rlo !== 0n) t.remote = { ip: formatIp(fam, rhi, rlo), port: rport };
      ev.target = t;
      if ((call === 'accept' || call === 'accept4') && t.remote) ev.addr = t.remote;
    }
    this.hold(ev);
    return undefined;
  }

  private stringLine(line: string): undefined {
    const f = line.split('\t');
    if (f.length < 5) return this.bad(line, 'A line with too few fields');
    const tid = Number(f[2]);
    const i = Number(f[3]);
    const s = f.length === 5 ? f[4] : f.slice(4).join('\t');
    let e = this.strings.get(tid);
    if (!e) {
      // strings whose call never came (a thread killed inside execve): keep the map bounded
      if (this.strings.size >= 10_000) this.strings.clear();
      this.strings.set(tid, (e = {}));
    }
    if (i < 0) e.path = s;
    else (e.argv ??= [])[i] = s;
    return undefined;
  }

  private takeStrings(tid: number): { path?: string; argv?: string[] } | undefined {
    const s = this.strings.get(tid);
    if (s) this.strings.delete(tid);
    return s;
  }

  private exitLine(line: string): undefined {
    const f = line.split('\t');
    if (f.length < 6) return this.bad(line, 'X line with too few fields');
    const pid = Number(f[2]);
    const ts = this.tsOf(Number(f[1]));
    this.c.processExits++;
    if (!this.exitCalled.delete(pid)) {
      // killed by a signal (or the leader exited via exit() last): tell the state it is gone
      const code = Number(f[4]);
      const sig = code & 0x7f;
      const ev: SyscallEvent = {
        ts, pid, tid: Number(f[3]), comm: f.slice(5).join('\t'), call: 'exit_group',
        ret: sig ? -1 : (code >> 8) & 0xff, bytes: 0,
      };
      if (sig) ev.err = signalName(sig);
      this.hold(ev);
    }
    this.onProcessExit?.(pid, ts);
    return undefined;
  }

  private mapLine(line: string): undefined {
    const m = MAP_LINE.exec(line);
    if (!m) return this.bad(line, 'map line not understood');
    const kind = m[1];
    const key = m[3];
    const value = m[4];
    if (kind === 'd') {
      const v = ROW_VALUE.exec(value);
      if (!v) return this.bad(line, 'row value not understood');
      const prev = this.dRows.get(key);
      const count = Number(v[1]);
      const total = Number(v[2]);
      const lastNs = Number(v[3]);
      // the same key in both parity maps cannot happen (the bucket is in the key); a
      // repeated line within a dump is summed
      this.dRows.set(key, prev ? { count: prev.count + count, total: prev.total + total, lastNs: Math.max(lastNs, prev.lastNs ?? 0) } : { count, total, lastNs });
    } else {
      if (!/^\d+$/.test(value)) return this.bad(line, 'value not a number');
      this.eRows.set(key, (this.eRows.get(key) ?? 0) + Number(value));
    }
    return undefined;
  }

  private dump(line: string): SyscallEvent[] {
    const b = Number(line.slice(2));
    if (!Number.isFinite(b)) {
      this.bad(line, 'D line without a bucket');
      return [];
    }
    this.c.dumps++;
    this.dumpedTo = Math.max(this.dumpedTo, b);
    for (const old of this.emitted.keys()) if (old < b - KEEP_BUCKETS) this.emitted.delete(old);
    return this.release((b + 1) * this.intervalMs);
  }

  // ------------------------------------------------------------------ assembling

  /** rows of the dump read so far + singles before `upTo` (ms), sorted by time */
  private release(upTo: number): SyscallEvent[] {
    const out: SyscallEvent[] = [];
    for (const [key, r] of this.dRows) {
      const ev = this.rowEvent(key, r);
      if (ev) out.push(ev);
    }
    for (const [key, n] of this.eRows) {
      const ev = this.errorRowEvent(key, n);
      if (ev) out.push(ev);
    }
    this.dRows = new Map();
    this.eRows = new Map();
    if (this.held.length > 0) {
      const keep: SyscallEvent[] = [];
      for (const ev of this.held) (ev.ts < upTo ? out : keep).push(ev);
      this.held = keep;
    }
    if (Number.isFinite(upTo)) this.releasedTo = Math.max(this.releasedTo, upTo);
    out.sort((x, y) => x.ts - y.ts);
    this.c.events += out.length;
    return out;
  }

  /** the part of a (bucket, key) row not emitted yet; undefined when nothing is new */
  private delta(bucket: number, key: string, count: number, total: number): DumpRow | undefined {
    let m = this.emitted.get(bucket);
    if (!m) this.emitted.set(bucket, (m = new Map()));
    const prev = m.get(key);
    if (!prev) {
      m.set(key, { count, total });
      return { count, total };
    }
    // printed again: either a clear() bpftrace dropped (cumulative) or a fresh row
    this.c.reprintedRows++;
    if (count <= prev.count && total <= prev.total) {
      this.c.staleRows++;
      return undefined;
    }
    const d = { count: Math.max(0, count - prev.count), total: Math.max(0, total - prev.total) };
    m.set(key, { count: Math.max(count, prev.count), total: Math.max(total, prev.total) });
    return d;
  }

  /** key: bucket, pid|tid, fd|fd2, nr|ftype|family|protocol, inode, lport|rport, lhi, llo, rhi, rlo, comm */
  private rowEvent(key: string, r: DumpRow): SyscallEvent | undefined {
    const f = key.split(', ');
    if (f.length < D_FIELDS + 1) return this.bad(`@d[${key}]`, 'row key with too few fields');
    const bucket = Number(f[0]);
    const meta = Number(f[3]);
    const nr = meta & 0xfff;
    const call = this.names[nr];
    if (call === undefined) return this.unknown(`@d[${key}]`, String(nr));
    const d = this.delta(bucket, 'd' + key, r.count, r.total);
    if (!d) return undefined;
    this.c.rows++;
    this.c.rowCalls += d.count;
    this.c.rowBytes += d.total;
    const [pid, tid] = split64(f[1]);
    const [fd, fd2] = split64(f[2]);
    const ev: SyscallEvent = {
      ts: r.lastNs !== undefined ? this.tsOf(r.lastNs) : (bucket + 1) * this.intervalMs - 0.001,
      pid,
      tid,
      comm: f.length === D_FIELDS + 1 ? f[D_FIELDS] : f.slice(D_FIELDS).join(', '),
      call,
      ret: d.total,
      bytes: d.total,
      fd: fd | 0,
    };
    if (d.count !== 1) ev.count = d.count;
    if ((fd2 | 0) >= 0) ev.fd2 = fd2 | 0;
    this.rowTarget(ev, f, meta);
    return ev;
  }

  /** what the fd is, from the BTF walk: ftype, inode, family, protocol, addresses */
  private rowTarget(ev: SyscallEvent, f: string[], meta: number): void {
    const ftype = (meta >>> 12) & 0xf;
    const ino = Number(f[4]);
    if (ftype === 1) {
      ev.target = { kind: 'pipe', inode: ino };
      return;
    }
    if (ftype !== 12) return; // files, devices, anon inodes: the state knows them from open
    const fam = (meta >>> 16) & 0xff;
    const proto = Math.floor(meta / 0x1000000);
    const ports = Number(f[5]);
    if (fam === 2 || fam === 10) {
      const t: FdTarget = {
        kind: sockKind(proto),
        inode: ino,
        local: { ip: formatIp(fam, u64(f[6]), u64(f[7])), port: Math.floor(ports / 0x10000) & 0xffff },
      };
      const rport = swap16(ports & 0xffff);
      const rhi = u64(f[8]);
      const rlo = u64(f[9]);
      if (rport !== 0 || rhi !== 0n || rlo !== 0n) {
        const remote: SockAddr = { ip: formatIp(fam, rhi, rlo), port: rport };
        // 0x10000: the peer is the call's address argument, the socket is not connected
        if (proto & 0x10000) ev.addr = remote;
        else t.remote = remote;
      }
      ev.target = t;
    } else if (fam === 1) {
      const t: FdTarget = { kind: 'unix', inode: ino };
      const peer = Number(f[7]);
      if (peer) t.peerInode = peer;
      ev.target = t;
    } else if (fam === 16) {
      ev.target = { kind: 'netlink', inode: ino };
    } else {
      ev.target = { kind: 'socket', inode: ino };
    }
  }

  private errorRowEvent(key: string, n: number): SyscallEvent | undefined {
    const f = key.split(', ');
    if (f.length < E_FIELDS + 1) return this.bad(`@e[${key}]`, 'error row key with too few fields');
    const bucket = Number(f[0]);
    const call = this.names[Number(f[2])];
    if (call === undefined) return this.unknown(`@e[${key}]`, f[2]);
    const d = this.delta(bucket, 'e' + key, n, 0);
    if (!d) return undefined;
    this.c.errorRows++;
    const errno = Number(f[4]);
    const [pid, tid] = split64(f[1]);
    const ev: SyscallEvent = {
      // no time per row: the end of its bucket
      ts: (bucket + 1) * this.intervalMs - 0.001,
      pid,
      tid,
      comm: f.length === E_FIELDS + 1 ? f[E_FIELDS] : f.slice(E_FIELDS).join(', '),
      call,
      ret: errno === 0 ? 0 : -1, // errno 0: calls that returned 0 (EOF, empty datagram)
      bytes: 0,
      fd: Number(f[3]) | 0,
    };
    if (errno !== 0) ev.err = errnoName(errno);
    if (d.count !== 1) ev.count = d.count;
    return ev;
  }

  private base(f: string[], call: string, comm: string): SyscallEvent {
    const ret = Number(f[5]);
    const ev: SyscallEvent = {
      ts: this.tsOf(Number(f[1])),
      pid: Number(f[2]),
      tid: Number(f[3]),
      comm,
      call,
      ret: ret < 0 ? -1 : ret,
      bytes: 0,
    };
    if (ret < 0) ev.err = errnoName(-ret);
    return ev;
  }

  private hold(ev: SyscallEvent): void {
    this.c.singles++;
    if (ev.ts < this.releasedTo) this.c.lateSingles++;
    this.held.push(ev);
  }

  // ------------------------------------------------------------------ problems

  private bad(line: string, why: string): undefined {
    this.c.malformed++;
    this.problem('malformed', why, line);
    return undefined;
  }

  private unknown(line: string, nr: string): undefined {
    this.c.unknownCall++;
    this.problem('unknownCall', `syscall number ${nr} is not one the script traces`, line);
    return undefined;
  }

  private problem(kind: string, message: string, text: string): void {
    this.problems.report(kind, message, this.lineNo, text);
  }

}
