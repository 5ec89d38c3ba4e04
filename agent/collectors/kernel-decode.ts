/**
 * Kernel numbers → the text strace prints for them: errno and signal names, open/socket/
 * clone/mmap/… flags, madvise/prctl/fcntl names, IPv6 addresses. Pure, no state.
 *
 * Why it exists: strace is the reference collector and agent/state matches on its spelling
 * ("EINPROGRESS", "CLONE_THREAD", "AF_INET|SOCK_STREAM", "MAP_ANONYMOUS", "MADV_DONTNEED"…),
 * so every collector that gets raw numbers (bpftrace-parser.ts, lttng-parser.ts) must turn
 * them into exactly the same text, and addresses into the same form (roles and flows are
 * matched across collectors and hosts). One copy here keeps them from drifting apart.
 *
 * Values are those of x86-64; arm64 shares all of them (asm-generic).
 */

/** [bit(s), name]; a name covering several bits (O_SYNC) must come before its parts */
export type BitNames = ReadonlyArray<readonly [number, string]>;

/** Names of the bits of v (< 2^32) named in table, in table order, leftover bits in hex; appended to parts. */
export function bitsText(v: number, table: BitNames, parts: string[] = []): string[] {
  let rest = v >>> 0;
  for (const [bit, name] of table) {
    if (bit !== 0 && (rest & bit) >>> 0 === bit >>> 0) {
      parts.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) parts.push('0x' + rest.toString(16));
  return parts;
}

/** flags as strace prints a flags argument: "A|B|0x40", or "0" */
export function flagsText(v: number, table: BitNames): string {
  return v === 0 ? '0' : bitsText(v, table).join('|');
}

// ---------------------------------------------------------------------------------------
// errno, signals

const ERRNO: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 7: 'E2BIG', 8: 'ENOEXEC',
  9: 'EBADF', 10: 'ECHILD', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 15: 'ENOTBLK',
  16: 'EBUSY', 17: 'EEXIST', 18: 'EXDEV', 19: 'ENODEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL',
  23: 'ENFILE', 24: 'EMFILE', 25: 'ENOTTY', 26: 'ETXTBSY', 27: 'EFBIG', 28: 'ENOSPC', 29: 'ESPIPE',
  30: 'EROFS', 31: 'EMLINK', 32: 'EPIPE', 33: 'EDOM', 34: 'ERANGE', 35: 'EDEADLK',
  36: 'ENAMETOOLONG', 37: 'ENOLCK', 38: 'ENOSYS', 39: 'ENOTEMPTY', 40: 'ELOOP', 42: 'ENOMSG',
  43: 'EIDRM', 61: 'ENODATA', 62: 'ETIME', 71: 'EPROTO', 74: 'EBADMSG', 75: 'EOVERFLOW',
  77: 'EBADFD', 84: 'EILSEQ', 88: 'ENOTSOCK', 89: 'EDESTADDRREQ', 90: 'EMSGSIZE',
  91: 'EPROTOTYPE', 92: 'ENOPROTOOPT', 93: 'EPROTONOSUPPORT', 94: 'ESOCKTNOSUPPORT',
  95: 'EOPNOTSUPP', 96: 'EPFNOSUPPORT', 97: 'EAFNOSUPPORT', 98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL',
  100: 'ENETDOWN', 101: 'ENETUNREACH', 102: 'ENETRESET', 103: 'ECONNABORTED', 104: 'ECONNRESET',
  105: 'ENOBUFS', 106: 'EISCONN', 107: 'ENOTCONN', 108: 'ESHUTDOWN', 109: 'ETOOMANYREFS',
  110: 'ETIMEDOUT', 111: 'ECONNREFUSED', 112: 'EHOSTDOWN', 113: 'EHOSTUNREACH', 114: 'EALREADY',
  115: 'EINPROGRESS', 116: 'ESTALE', 122: 'EDQUOT', 125: 'ECANCELED', 130: 'EOWNERDEAD',
  131: 'ENOTRECOVERABLE',
  // kernel-internal restart codes a sys_exit tracepoint sees before signal handling rewrites them
  512: 'ERESTARTSYS', 513: 'ERESTARTNOINTR', 514: 'ERESTARTNOHAND', 516: 'ERESTART_RESTARTBLOCK',
};

/** "EAGAIN" for 11 (a positive errno); unknown ones as "ERRNO_<n>" */
export function errnoName(errno: number): string {
  return ERRNO[errno] ?? `ERRNO_${errno}`;
}

const SIGNALS = [
  '', 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL',
  'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD',
  'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ',
  'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS',
];

/** "SIGCHLD" for 17; others (real-time) as "SIG<n>" */
export function signalName(n: number): string {
  return SIGNALS[n] || `SIG${n}`;
}

// ---------------------------------------------------------------------------------------
// open, fd-creating calls, sockets

const O_FLAGS: BitNames = [
  [0o4010000, 'O_SYNC'], [0o20200000, 'O_TMPFILE'], // before O_DSYNC / O_DIRECTORY, their parts
  [0o100, 'O_CREAT'], [0o200, 'O_EXCL'], [0o400, 'O_NOCTTY'], [0o1000, 'O_TRUNC'],
  [0o2000, 'O_APPEND'], [0o4000, 'O_NONBLOCK'], [0o10000, 'O_DSYNC'], [0o20000, 'O_ASYNC'],
  [0o40000, 'O_DIRECT'], [0o100000, 'O_LARGEFILE'], [0o200000, 'O_DIRECTORY'],
  [0o400000, 'O_NOFOLLOW'], [0o1000000, 'O_NOATIME'], [0o2000000, 'O_CLOEXEC'], [0o10000000, 'O_PATH'],
];
const ACCMODE = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_ACCMODE'];

/** open/openat flags: "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC" */
export function openFlagsText(v: number): string {
  return bitsText(v & ~3, O_FLAGS, [ACCMODE[v & 3]]).join('|');
}

/** the fd-creation flags of pipe2/dup3 (O_), accept4/socket types (SOCK_), eventfd2 (EFD_); strace's order */
const FD_FLAGS: Record<'O' | 'SOCK' | 'EFD', BitNames> = {
  O: [[0o2000000, 'O_CLOEXEC'], [0o4000, 'O_NONBLOCK'], [0o40000, 'O_DIRECT']],
  SOCK: [[0o2000000, 'SOCK_CLOEXEC'], [0o4000, 'SOCK_NONBLOCK']],
  EFD: [[0o2000000, 'EFD_CLOEXEC'], [0o4000, 'EFD_NONBLOCK'], [1, 'EFD_SEMAPHORE']],
};

/** "O_CLOEXEC|O_NONBLOCK", or "0" */
export function fdFlagsText(v: number, prefix: 'O' | 'SOCK' | 'EFD'): string {
  return flagsText(v, FD_FLAGS[prefix]);
}

const AF: Record<number, string> = {
  0: 'AF_UNSPEC', 1: 'AF_UNIX', 2: 'AF_INET', 10: 'AF_INET6', 15: 'AF_KEY', 16: 'AF_NETLINK',
  17: 'AF_PACKET', 31: 'AF_BLUETOOTH', 38: 'AF_ALG', 40: 'AF_VSOCK', 44: 'AF_XDP',
};
const SOCK_TYPE: Record<number, string> = {
  1: 'SOCK_STREAM', 2: 'SOCK_DGRAM', 3: 'SOCK_RAW', 4: 'SOCK_RDM', 5: 'SOCK_SEQPACKET',
  6: 'SOCK_DCCP', 10: 'SOCK_PACKET',
};

/** socket(2)/socketpair(2) family and type, as strace's first two arguments: "AF_INET|SOCK_STREAM|SOCK_CLOEXEC" */
export function socketFlagsText(family: number, type: number): string {
  const parts = [AF[family] ?? `AF_${family}`, SOCK_TYPE[type & 0xf] ?? `SOCK_${type & 0xf}`];
  const extra = type & ~0xf;
  if (extra !== 0) parts.push(fdFlagsText(extra, 'SOCK'));
  return parts.join('|');
}

const AT_FLAGS: BitNames = [[0x100, 'AT_SYMLINK_NOFOLLOW'], [0x1000, 'AT_EMPTY_PATH']];

/** execveat's flags */
export function atFlagsText(v: number): string {
  return flagsText(v, AT_FLAGS);
}

const CLOSE_RANGE_FLAGS: BitNames = [[2, 'CLOSE_RANGE_UNSHARE'], [4, 'CLOSE_RANGE_CLOEXEC']];

export function closeRangeFlagsText(v: number): string {
  return flagsText(v, CLOSE_RANGE_FLAGS);
}

const FCNTL: Record<number, string> = {
  0: 'F_DUPFD', 1: 'F_GETFD', 2: 'F_SETFD', 3: 'F_GETFL', 4: 'F_SETFL', 5: 'F_GETLK', 6: 'F_SETLK',
  7: 'F_SETLKW', 8: 'F_SETOWN', 9: 'F_GETOWN', 10: 'F_SETSIG', 11: 'F_GETSIG', 36: 'F_OFD_GETLK',
  37: 'F_OFD_SETLK', 38: 'F_OFD_SETLKW', 1024: 'F_SETLEASE', 1025: 'F_GETLEASE', 1026: 'F_NOTIFY',
  1030: 'F_DUPFD_CLOEXEC', 1031: 'F_SETPIPE_SZ', 1032: 'F_GETPIPE_SZ', 1033: 'F_ADD_SEALS',
  1034: 'F_GET_SEALS',
};

/** fcntl's cmd: "F_DUPFD_CLOEXEC"; unknown ones as "F_<n>" */
export function fcntlName(cmd: number): string {
  return FCNTL[cmd] ?? `F_${cmd}`;
}

// ---------------------------------------------------------------------------------------
// processes

const CLONE_FLAGS: BitNames = [
  [0x100, 'CLONE_VM'], [0x200, 'CLONE_FS'], [0x400, 'CLONE_FILES'], [0x800, 'CLONE_SIGHAND'],
  [0x1000, 'CLONE_PIDFD'], [0x2000, 'CLONE_PTRACE'], [0x4000, 'CLONE_VFORK'], [0x8000, 'CLONE_PARENT'],
  [0x10000, 'CLONE_THREAD'], [0x20000, 'CLONE_NEWNS'], [0x40000, 'CLONE_SYSVSEM'],
  [0x80000, 'CLONE_SETTLS'], [0x100000, 'CLONE_PARENT_SETTID'], [0x200000, 'CLONE_CHILD_CLEARTID'],
  [0x400000, 'CLONE_DETACHED'], [0x800000, 'CLONE_UNTRACED'], [0x1000000, 'CLONE_CHILD_SETTID'],
  [0x2000000, 'CLONE_NEWCGROUP'], [0x4000000, 'CLONE_NEWUTS'], [0x8000000, 'CLONE_NEWIPC'],
  [0x10000000, 'CLONE_NEWUSER'], [0x20000000, 'CLONE_NEWPID'], [0x40000000, 'CLONE_NEWNET'],
  [0x80000000, 'CLONE_IO'],
];

/**
 * clone flags (up to 64 bits: clone3's CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP), then the exit
 * signal: "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD". clone() keeps the exit signal in
 * the low byte of its flags (the default); clone3 gives it apart.
 */
export function cloneFlagsText(flags: number, exitSignal?: number): string {
  const lo = (flags % 0x100000000) >>> 0;
  const hi = Math.floor(flags / 0x100000000);
  const parts = bitsText(lo & ~0xff, CLONE_FLAGS);
  if (hi & 1) parts.push('CLONE_CLEAR_SIGHAND');
  if (hi & 2) parts.push('CLONE_INTO_CGROUP');
  if (hi & ~3) parts.push('0x' + (hi & ~3).toString(16) + '00000000');
  const sig = exitSignal ?? (lo & 0xff);
  if (sig > 0) parts.push(signalName(sig));
  return parts.length === 0 ? '0' : parts.join('|');
}

const PRCTL: Record<number, string> = {
  1: 'PR_SET_PDEATHSIG', 4: 'PR_SET_DUMPABLE', 15: 'PR_SET_NAME', 16: 'PR_GET_NAME',
  22: 'PR_SET_SECCOMP', 24: 'PR_CAPBSET_DROP', 36: 'PR_SET_CHILD_SUBREAPER', 38: 'PR_SET_NO_NEW_PRIVS',
};

/** prctl's option: "PR_SET_NAME"; unknown ones as "PR_<n>" */
export function prctlName(option: number): string {
  return PRCTL[option] ?? `PR_${option}`;
}

// ---------------------------------------------------------------------------------------
// memory

const MAP_TYPE: Record<number, string> = { 1: 'MAP_SHARED', 2: 'MAP_PRIVATE', 3: 'MAP_SHARED_VALIDATE' };
const MAP_FLAGS: BitNames = [
  [0x10, 'MAP_FIXED'], [0x20, 'MAP_ANONYMOUS'], [0x40, 'MAP_32BIT'], [0x100, 'MAP_GROWSDOWN'],
  [0x800, 'MAP_DENYWRITE'], [0x1000, 'MAP_EXECUTABLE'], [0x2000, 'MAP_LOCKED'],
  [0x4000, 'MAP_NORESERVE'], [0x8000, 'MAP_POPULATE'], [0x10000, 'MAP_NONBLOCK'],
  [0x20000, 'MAP_STACK'], [0x40000, 'MAP_HUGETLB'], [0x80000, 'MAP_SYNC'],
  [0x100000, 'MAP_FIXED_NOREPLACE'],
];
const MAP_HUGETLB = 0x40000;
const MAP_HUGE_SHIFT = 26;

/** mmap flags: "MAP_PRIVATE|MAP_ANONYMOUS"; with MAP_HUGETLB the page size as "21<<MAP_HUGE_SHIFT" */
export function mmapFlagsText(v: number): string {
  const t = v & 0xf; // MAP_TYPE
  const huge = v & MAP_HUGETLB ? (v >>> MAP_HUGE_SHIFT) & 0x3f : 0;
  const parts = bitsText(v & ~0xf & ~(huge << MAP_HUGE_SHIFT), MAP_FLAGS, [MAP_TYPE[t] ?? `MAP_TYPE_${t}`]);
  if (huge !== 0) parts.push(`${huge}<<MAP_HUGE_SHIFT`);
  return parts.join('|');
}

const MADV: Record<number, string> = {
  0: 'MADV_NORMAL', 1: 'MADV_RANDOM', 2: 'MADV_SEQUENTIAL', 3: 'MADV_WILLNEED', 4: 'MADV_DONTNEED',
  8: 'MADV_FREE', 9: 'MADV_REMOVE', 10: 'MADV_DONTFORK', 11: 'MADV_DOFORK', 12: 'MADV_MERGEABLE',
  13: 'MADV_UNMERGEABLE', 14: 'MADV_HUGEPAGE', 15: 'MADV_NOHUGEPAGE', 16: 'MADV_DONTDUMP',
  17: 'MADV_DODUMP', 18: 'MADV_WIPEONFORK', 19: 'MADV_KEEPONFORK', 20: 'MADV_COLD',
  21: 'MADV_PAGEOUT', 22: 'MADV_POPULATE_READ', 23: 'MADV_POPULATE_WRITE',
  24: 'MADV_DONTNEED_LOCKED', 25: 'MADV_COLLAPSE', 100: 'MADV_HWPOISON',
};

/** madvise's advice: "MADV_DONTNEED"; unknown ones as "MADV_<n>" */
export function madviseName(advice: number): string {
  return MADV[advice] ?? `MADV_${advice}`;
}

const MREMAP_FLAGS: BitNames = [[1, 'MREMAP_MAYMOVE'], [2, 'MREMAP_FIXED'], [4, 'MREMAP_DONTUNMAP']];

export function mremapFlagsText(v: number): string {
  return flagsText(v, MREMAP_FLAGS);
}

// ---------------------------------------------------------------------------------------
// addresses

/**
 * RFC 5952 text of an IPv6 address given as eight 16-bit groups (network order): the longest
 * run (≥ 2) of zero groups becomes "::", the first one on a tie. An IPv4-mapped address
 * (::ffff:a.b.c.d) is given as the dotted IPv4 address "a.b.c.d": the peer on the other host
 * sees an IPv4 socket, and flows and roles must match across hosts and collectors.
 */
export function ipv6Text(g: readonly number[]): string {
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`;
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
}
