/**
 * Process, thread and fd tables of one host (libsinsp style), kept up to date from the
 * events themselves: clone/fork/execve/exit for processes, open/socket/accept/connect/bind/
 * pipe/dup/close for fds, prctl for thread names. Collectors that annotate fds (strace -yy,
 * bpftrace) refresh entries; collectors that do not (LTTng) rely on the table alone.
 */
import type { FdTarget, SockAddr, SyscallEvent } from '../../shared/event.js';
import type { Role } from '../role-table.js';
import type { RoleSpec } from '../roles.js';
import type { Attribution, ProcessFacts } from './attribution.js';

/** How the agent learned what an fd is: decides the socket side and tells unknowns apart. */
export type FdOrigin = 'open' | 'socket' | 'accept' | 'connect' | 'bind' | 'listen' | 'pipe' | 'annotated' | 'stdio';

export interface FdEntry {
  target: FdTarget;
  origin: FdOrigin;
  /** role of what the fd refers to; cached by the tracker, dropped when the entry changes */
  role?: Role;
  /** IPC channels written into / read from (indexes interned by the tracker), -1 when none */
  sendCh?: number;
  recvCh?: number;
  /** last flow this fd was folded into, and for which thread role */
  flowRole?: Role;
  flow?: number;
}

export class FdTable {
  readonly fds = new Map<number, FdEntry>();
  /** A forked child's table: a copy (threads and CLONE_FILES children share the table instead). */
  clone(): FdTable {
    const t = new FdTable();
    // fork copies descriptors: the child sees the same objects, so same targets and roles
    for (const [fd, e] of this.fds) t.fds.set(fd, { target: e.target, origin: e.origin, role: e.role, sendCh: e.sendCh, recvCh: e.recvCh });
    return t;
  }
}

export interface ProcessInfo {
  pid: number;
  exePath?: string;
  exeHash?: string;
  argv?: string[];
  /** the main thread's name (kernel truncates to 15 chars) */
  comm?: string;
  containerId?: string;
  fds: FdTable;
  /** current program break, to turn brk() into bytes obtained/released */
  brk?: number;
  /** process role, cached by the tracker; reset when the identity changes */
  roleSpec?: RoleSpec;
  memRole?: Role;
  /** bumps on execve so threads re-resolve their roles */
  generation: number;
}

export interface ThreadInfo {
  tid: number;
  proc: ProcessInfo;
  name?: string;
  role?: Role;
  roleGeneration: number;
}

const KERNEL_COMM_LEN = 15;

export function commOf(exePath: string): string {
  const i = exePath.lastIndexOf('/');
  return exePath.slice(i + 1, i + 1 + KERNEL_COMM_LEN);
}

export interface StateCounters {
  processes: number;
  threads: number;
}

export class HostState {
  readonly procs = new Map<number, ProcessInfo>();
  readonly threads = new Map<number, ThreadInfo>();
  readonly counters: StateCounters = { processes: 0, threads: 0 };
  private synthetic = 0;

  constructor(private readonly attribution: Attribution) {}

  /** The thread an event belongs to, created on first sight. */
  thread(ev: SyscallEvent): ThreadInfo {
    let t = this.threads.get(ev.tid);
    if (t !== undefined) {
      if (ev.pid !== 0 && t.proc.pid !== ev.pid) this.moveThread(t, this.process(ev.pid));
      if (ev.comm !== undefined && ev.comm !== t.name) this.rename(t, ev.comm);
      return t;
    }
    const pid = ev.pid !== 0 ? ev.pid : (this.attribution.tgid(ev.tid) ?? ev.tid);
    const proc = this.process(pid);
    t = { tid: ev.tid, proc, roleGeneration: -1, name: ev.comm ?? this.attribution.threadName(pid, ev.tid) };
    if (t.name === undefined && ev.tid === pid) t.name = proc.comm;
    if (proc.comm === undefined && ev.tid === pid && t.name !== undefined) {
      proc.comm = t.name;
      this.identityChanged(proc);
    }
    this.threads.set(ev.tid, t);
    this.counters.threads++;
    return t;
  }

  process(pid: number): ProcessInfo {
    let p = this.procs.get(pid);
    if (p === undefined) {
      p = { pid, fds: new FdTable(), generation: 0 };
      this.fill(p, this.attribution.process(pid));
      this.procs.set(pid, p);
      this.counters.processes++;
    }
    return p;
  }

  private fill(p: ProcessInfo, f: ProcessFacts | undefined): void {
    if (!f) return;
    p.exePath ??= f.exePath;
    p.exeHash ??= f.exeHash;
    p.argv ??= f.argv;
    p.comm ??= f.comm;
    p.containerId ??= f.containerId;
  }

  private rename(t: ThreadInfo, name: string): void {
    t.name = name;
    t.role = undefined;
    if (t.tid === t.proc.pid && t.proc.comm === undefined) {
      t.proc.comm = name;
      this.identityChanged(t.proc);
    }
  }

  /** A thread first seen on its own turned out to belong to another process (clone seen late). */
  private moveThread(t: ThreadInfo, to: ProcessInfo): void {
    const from = t.proc;
    if (from.pid === t.tid && from !== to) {
      // the provisional process made for this tid: its fds are the real process's fds
      for (const [fd, e] of from.fds.fds) if (!to.fds.fds.has(fd)) to.fds.fds.set(fd, e);
      from.fds = to.fds;
      this.procs.delete(from.pid);
    }
    t.proc = to;
    t.role = undefined;
  }

  /**
   * Apply what an event says about processes, threads and fds. Called for every event
   * before its data is folded; cheap for data calls (returns at once).
   */
  apply(ev: SyscallEvent, t: ThreadInfo): void {
    // failed calls change nothing, but a non-blocking connect connects all the same
    if (ev.ret < 0 && ev.call !== 'close' && !(ev.call === 'connect' && ev.err === 'EINPROGRESS')) return;
    const p = t.proc;
    switch (ev.call) {
      case 'open':
      case 'openat':
      case 'openat2':
      case 'creat':
        if (ev.ret >= 0 && ev.path !== undefined) {
          this.setFd(p, ev.ret, ev.target ?? { kind: 'file', path: this.attribution.resolvePath(p.pid, ev.path) }, 'open');
        }
        return;
      case 'socket':
        if (ev.ret >= 0) this.setFd(p, ev.ret, ev.target ?? socketTarget(ev.flags), 'socket');
        return;
      case 'accept':
      case 'accept4':
        if (ev.ret >= 0) {
          const listening = p.fds.fds.get(ev.fd ?? -1);
          const lt = listening?.target;
          const target: FdTarget = ev.target ?? {
            kind: lt && lt.kind !== 'socket' ? lt.kind : ev.addr ? 'tcp' : 'socket',
            local: lt?.local,
            remote: ev.addr,
            path: lt?.kind === 'unix' ? lt.path : undefined,
          };
          this.setFd(p, ev.ret, target, 'accept');
        }
        return;
      case 'connect':
        if (ev.fd !== undefined) this.connected(p, ev);
        return;
      case 'bind':
        if (ev.fd !== undefined) {
          const e = p.fds.fds.get(ev.fd);
          const target: FdTarget = ev.target ?? { ...(e?.target ?? { kind: 'socket' }) };
          if (!ev.target) {
            if (ev.addr) target.local = ev.addr;
            else if (ev.path !== undefined && target.kind === 'socket') target.kind = 'unix';
            if (ev.path !== undefined) target.path = ev.path;
          }
          this.setFd(p, ev.fd, target, e?.origin === 'socket' ? 'bind' : (e?.origin ?? 'bind'));
        }
        return;
      case 'listen':
        if (ev.fd !== undefined) {
          const e = p.fds.fds.get(ev.fd);
          if (e) e.origin = 'listen';
        }
        return;
      case 'pipe':
      case 'pipe2':
      case 'socketpair':
        if (ev.fds) {
          // without inodes from the collector (LTTng), make up negative ones so both ends
          // and every process that inherits them name the same channel
          const a = --this.synthetic;
          const b = ev.call === 'socketpair' ? --this.synthetic : a;
          const kind = ev.call === 'socketpair' ? 'unix' : 'pipe';
          const peer = (i: number, o: number): FdTarget => (kind === 'unix' ? { kind, inode: i, peerInode: o } : { kind, inode: i });
          this.setFd(p, ev.fds[0], ev.target ?? peer(a, b), 'pipe');
          this.setFd(p, ev.fds[1], ev.target2 ?? peer(b, a), 'pipe');
        }
        return;
      case 'eventfd':
      case 'eventfd2':
        if (ev.ret >= 0) this.setFd(p, ev.ret, { kind: 'eventfd' }, 'open');
        return;
      case 'dup':
      case 'dup2':
      case 'dup3':
      case 'fcntl': {
        if (ev.fd === undefined || ev.ret < 0) return;
        if (ev.call === 'fcntl' && !(ev.flags ?? '').includes('F_DUPFD')) return;
        const e = p.fds.fds.get(ev.fd);
        if (e && ev.ret !== ev.fd) p.fds.fds.set(ev.ret, { target: e.target, origin: e.origin, role: e.role, sendCh: e.sendCh, recvCh: e.recvCh });
        return;
      }
      case 'close':
        if (ev.fd !== undefined) p.fds.fds.delete(ev.fd);
        return;
      case 'close_range':
        return; // rare, and a stale entry is refreshed by the next open/annotation
      case 'clone':
      case 'clone3':
      case 'fork':
      case 'vfork':
        if (ev.ret > 0) this.cloned(t, ev);
        return;
      case 'execve':
      case 'execveat':
        if (ev.ret === 0) this.execed(p, t, ev);
        return;
      case 'exit_group':
        this.exited(p);
        return;
      case 'exit':
        this.threads.delete(t.tid);
        return;
      case 'prctl':
        if (ev.name !== undefined) this.rename(t, ev.name);
        return;
    }
  }

  /** The fd entry for a data call; an annotation from the collector refreshes the table. */
  fdEntry(p: ProcessInfo, fd: number, target: FdTarget | undefined): FdEntry | undefined {
    const e = p.fds.fds.get(fd);
    if (target === undefined) return e;
    if (e !== undefined && (e.target === target || sameTarget(e.target, target))) return e;
    const origin: FdOrigin = e?.origin ?? 'annotated';
    const n: FdEntry = { target, origin };
    p.fds.fds.set(fd, n);
    return n;
  }

  private setFd(p: ProcessInfo, fd: number, target: FdTarget, origin: FdOrigin): void {
    p.fds.fds.set(fd, { target, origin });
  }

  private connected(p: ProcessInfo, ev: SyscallEvent): void {
    const e = p.fds.fds.get(ev.fd!);
    const base: FdTarget = ev.target ?? { ...(e?.target ?? { kind: ev.addr ? 'tcp' : 'socket' }) };
    if (!ev.target) {
      if (ev.addr) base.remote = ev.addr;
      if (ev.path !== undefined) {
        base.kind = 'unix';
        base.path = ev.path;
      }
    }
    p.fds.fds.set(ev.fd!, { target: base, origin: 'connect' });
  }

  private cloned(parent: ThreadInfo, ev: SyscallEvent): void {
    const childTid = ev.ret;
    const flags = ev.flags ?? '';
    const isThread = flags.includes('CLONE_THREAD');
    const existing = this.threads.get(childTid);
    if (isThread) {
      if (existing) this.moveThread(existing, parent.proc);
      else {
        this.threads.set(childTid, { tid: childTid, proc: parent.proc, roleGeneration: -1, name: parent.name });
        this.counters.threads++;
      }
      return;
    }
    // a new process: same program, copy of the fd table (or the same one with CLONE_FILES)
    const pp = parent.proc;
    let child = this.procs.get(childTid);
    if (!child) {
      child = { pid: childTid, fds: new FdTable(), generation: 0 };
      this.procs.set(childTid, child);
      this.counters.processes++;
    }
    child.exePath ??= pp.exePath;
    child.exeHash ??= pp.exeHash;
    child.argv ??= pp.argv;
    child.comm ??= pp.comm;
    child.containerId ??= pp.containerId;
    child.brk ??= pp.brk;
    const copied = flags.includes('CLONE_FILES') ? pp.fds : pp.fds.clone();
    for (const [fd, e] of child.fds.fds) if (!copied.fds.has(fd)) copied.fds.set(fd, e);
    child.fds = copied;
    if (!existing) {
      this.threads.set(childTid, { tid: childTid, proc: child, roleGeneration: -1, name: parent.name });
      this.counters.threads++;
    } else if (existing.proc !== child) this.moveThread(existing, child);
  }

  private execed(p: ProcessInfo, t: ThreadInfo, ev: SyscallEvent): void {
    const path = ev.path ?? p.exePath;
    p.exePath = path;
    // a cut argv is left out by the collector: ask /proc rather than keep the old program's
    p.argv = ev.argv ?? this.attribution.process(p.pid)?.argv;
    p.exeHash = path ? this.attribution.hashExe(path, p.pid) : undefined;
    // the kernel names the thread after the new program unless it renames itself later
    if (path) {
      p.comm = commOf(path);
      t.name = p.comm;
    }
    p.brk = undefined;
    this.identityChanged(p);
    // close-on-exec fds are gone; we cannot tell which, annotations will refresh the rest
  }

  private identityChanged(p: ProcessInfo): void {
    p.roleSpec = undefined;
    p.memRole = undefined;
    p.generation++;
  }

  private exited(p: ProcessInfo): void {
    for (const [tid, t] of this.threads) if (t.proc === p) this.threads.delete(tid);
    this.procs.delete(p.pid);
  }
}

function socketTarget(flags: string | undefined): FdTarget {
  const f = flags ?? '';
  if (f.includes('AF_UNIX') || f.includes('AF_LOCAL')) return { kind: 'unix' };
  if (f.includes('AF_NETLINK')) return { kind: 'netlink' };
  if (f.includes('AF_INET')) {
    if (f.includes('SOCK_STREAM')) return { kind: 'tcp' };
    if (f.includes('SOCK_DGRAM')) return { kind: 'udp' };
  }
  return { kind: 'socket' };
}

function sameAddr(a: SockAddr | undefined, b: SockAddr | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.port === b.port && a.ip === b.ip);
}

export function sameTarget(a: FdTarget, b: FdTarget): boolean {
  return (
    a.kind === b.kind &&
    a.path === b.path &&
    a.inode === b.inode &&
    a.peerInode === b.peerInode &&
    sameAddr(a.local, b.local) &&
    sameAddr(a.remote, b.remote)
  );
}
