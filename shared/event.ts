/**
 * The one event type every collector produces (strace live or replayed, bpftrace, LTTng).
 * Collectors only translate; the process/thread/fd state (agent/state) gives fds their
 * meaning, and roles and windows are built from that state.
 */

export interface SockAddr {
  ip: string; // dotted IPv4 or canonical IPv6 text, no brackets; "" when unknown
  port: number;
}

/** What a file descriptor refers to. */
export type FdKind =
  | 'file' // regular file, directory, device: path
  | 'tcp'
  | 'udp'
  | 'unix' // AF_UNIX socket: path and/or inode, peerInode
  | 'pipe' // pipe or FIFO: inode
  | 'eventfd'
  | 'netlink'
  | 'anon' // other anon_inode (epoll, timerfd, signalfd, inotify…)
  | 'socket'; // a socket whose family/protocol is not known yet

export interface FdTarget {
  kind: FdKind;
  /** file path (absolute as the kernel printed it), unix socket path, or anon inode name */
  path?: string;
  /** inode of a socket or pipe, when known (strace -yy, /proc) */
  inode?: number;
  /** inode of the other end of a unix socket (strace -yy "UNIX-STREAM:[a->b]") */
  peerInode?: number;
  local?: SockAddr;
  remote?: SockAddr;
}

/**
 * One observed system call (or, from in-kernel aggregation, `count` calls of the same kind
 * on the same fd by the same thread).
 */
export interface SyscallEvent {
  /** milliseconds since the epoch, fractional (µs or ns precision) */
  ts: number;
  /** process id (tgid); 0 when the collector only knows the tid (strace -f prefixes tids) */
  pid: number;
  tid: number;
  /** thread name, when the collector sees it (LTTng procname, bpftrace comm) */
  comm?: string;
  /** syscall name as the kernel names it, without collector prefixes: "read", "pread64", "accept4" */
  call: string;
  /** return value; for brk/mmap the address; -1 on failure */
  ret: number;
  /** errno name when the call failed ("EAGAIN") */
  err?: string;
  /**
   * Bytes of data moved by the call (read/write/send/recv/sendfile/splice…), from the
   * collector: ret for most calls, the sum of msg_len for sendmmsg/recvmmsg. 0 otherwise.
   */
  bytes: number;
  /** number of calls this event stands for; absent means 1 */
  count?: number;

  /** primary fd argument (the output fd for sendfile/splice/copy_file_range/tee) */
  fd?: number;
  /** what `fd` refers to, when the collector saw it (strace -yy, bpftrace BTF) */
  target?: FdTarget;
  /** second fd: the input fd of sendfile/splice/copy_file_range/tee; new fd of dup2/dup3 */
  fd2?: number;
  target2?: FdTarget;

  /** path argument: open/openat/creat/execve/unlink; unix path of bind/connect */
  path?: string;
  /** socket address argument (connect/bind/sendto) or result (accept/recvfrom) */
  addr?: SockAddr;
  /** result fds of pipe/pipe2/socketpair */
  fds?: [number, number];
  /** raw flags text: clone flags, open flags, socket "AF_INET|SOCK_STREAM", mmap/madvise flags */
  flags?: string;
  /** execve argv */
  argv?: string[];
  /** length argument of mmap/munmap/madvise/mremap */
  len?: number;
  /** new thread name (prctl PR_SET_NAME) */
  name?: string;
}

/** How a data call moves data relative to the calling thread. */
export type DataDirection = 'in' | 'out' | 'transfer';

const IN_CALLS = [
  'read', 'pread64', 'readv', 'preadv', 'preadv2', 'recv', 'recvfrom', 'recvmsg', 'recvmmsg',
];
const OUT_CALLS = [
  'write', 'pwrite64', 'writev', 'pwritev', 'pwritev2', 'send', 'sendto', 'sendmsg', 'sendmmsg',
  'vmsplice',
];
/** fd2 (input) → thread → fd (output) */
const TRANSFER_CALLS = ['sendfile', 'sendfile64', 'splice', 'tee', 'copy_file_range'];

const DIRECTIONS: ReadonlyMap<string, DataDirection> = new Map<string, DataDirection>([
  ...IN_CALLS.map((c) => [c, 'in'] as const),
  ...OUT_CALLS.map((c) => [c, 'out'] as const),
  ...TRANSFER_CALLS.map((c) => [c, 'transfer'] as const),
]);

export function dataDirection(call: string): DataDirection | undefined {
  return DIRECTIONS.get(call);
}

/**
 * The calls a collector must deliver for the state to work: data calls, the calls that
 * give fds their meaning, process/thread life cycle and memory release.
 */
export const TRACED_CALLS: readonly string[] = [
  ...IN_CALLS,
  ...OUT_CALLS,
  ...TRANSFER_CALLS,
  'open', 'openat', 'openat2', 'creat', 'close', 'close_range',
  'socket', 'socketpair', 'connect', 'accept', 'accept4', 'bind', 'listen',
  'pipe', 'pipe2', 'dup', 'dup2', 'dup3', 'fcntl', 'eventfd', 'eventfd2',
  'clone', 'clone3', 'fork', 'vfork', 'execve', 'execveat', 'exit', 'exit_group', 'prctl',
  'mmap', 'munmap', 'brk', 'madvise', 'mremap',
];
