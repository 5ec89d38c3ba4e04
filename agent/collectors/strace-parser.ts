/**
 * strace text → SyscallEvent. Pure: no I/O; the live collector (strace.ts) and the replay
 * (strace-file.ts) feed it lines.
 *
 * Input is what `strace -f -ttt -y -yy -s N -o FILE` writes:
 *   3493  1795690895.178167 write(5</tmp/a file.txt>, "0123456789", 10) = 10
 * and also the forms without the tid (no -f, or stderr with one traced process) and with
 * the `[pid  3493] ` prefix strace puts on stderr.
 *
 * Decisions:
 * - pid is always 0: strace prints tids only; the state maps tids to processes.
 * - A call split as `<unfinished ...>` / `<... NAME resumed>` is joined per tid and stamped
 *   with the *resumed* line's time: that is when the bytes moved and the new fd existed,
 *   and it keeps the output in time order (the LTTng parser does the same with exits).
 * - The hot path is a charCode scan over the line: no regexes, no per-argument strings.
 *   Arguments are located once (start/end offsets in typed arrays); only the few fields a
 *   call needs are cut out. String arguments are skipped, never decoded, except the ones
 *   that become fields (paths, argv, thread names).
 * - Calls not in the traced set are only counted (`ignoredCall`); their unfinished halves
 *   are not kept, their resumed halves are recognised by name.
 * - fd annotations become FdTargets, cached by their text (frozen objects: the same target
 *   is shared by many events; consumers must not modify it).
 * - Field conventions, as agent/state expects them:
 *   * data calls: fd + target of the fd argument; bytes = ret (≥ 0), or the sum of msg_len
 *     for sendmmsg/recvmmsg; transfers: fd/target = output, fd2/target2 = input.
 *   * calls that create an fd (open, openat, openat2, creat, socket, accept, accept4,
 *     eventfd, eventfd2): ret = the new fd and `target` = what the new fd refers to (the
 *     annotation strace prints on the return value: the resolved absolute path, the accepted
 *     connection's 4-tuple). `fd` stays the fd argument: openat's dirfd (absent for
 *     AT_FDCWD), accept's listening socket.
 *   * dup/dup2/dup3/fcntl(F_DUPFD*): fd/target = old fd; fd2/target2 = the new fd.
 *   * pipe/pipe2/socketpair: fds, and fd/target, fd2/target2 = the two ends.
 *   * connect/bind: target = the socket as it is *after* the call (strace annotates at entry,
 *     before the address is set, so the address argument is merged in).
 *   * close_range: fd = first, fd2 = last, flags.
 * - `+++ exited with N +++` / `+++ killed by SIG +++` become an `exit_group` event (ret N;
 *   for a kill ret -1 and err = the signal name) so the state forgets the process — or an
 *   `exit` event when the tid is known to be a thread (seen created with CLONE_THREAD).
 *   Nothing is emitted when the tid's own exit/exit_group call already said it (see gone()).
 *   Caveat: threads of a process that another thread replaced by execve also end with
 *   "+++ exited"; when those threads were attached (-p, origin unknown) this reads as the
 *   process's end.
 * - Failed calls: ret -1, err "EAGAIN", bytes 0. `= ?` (exit, a call cut by a kill) is ret 0;
 *   `= ? ERESTARTSYS (…)` is ret -1, err "ERESTARTSYS".
 * - Nothing throws: bad lines are counted and reported through the sink (at most
 *   `maxProblemsPerKind` reports per kind; counters stay exact).
 */
import { ProblemReporter } from './problems.js';
import { TRACED_CALLS } from '../../shared/event.js';
import type { FdTarget, SockAddr, SyscallEvent } from '../../shared/event.js';
import type { CollectorCounters, ProblemSink } from './collector.js';

// ---------------------------------------------------------------------------------------
// Call kinds: how each traced call's arguments map to fields.

const K_OTHER = 0;
const K_DATA = 1; // fd arg 0, bytes = ret
const K_MSG = 2; // sendmsg/recvmsg: + msg_name address
const K_ADDR4 = 3; // sendto/recvfrom: + address arg 4
const K_MMSG = 4;
const K_SENDFILE = 5; // out, in
const K_SPLICE = 6; // in, -, out (splice, copy_file_range)
const K_TEE = 7; // in, out
const K_OPEN = 8;
const K_OPENAT = 9;
const K_OPENAT2 = 10;
const K_CREAT = 11;
const K_CLOSE = 12; // fd only (close, listen)
const K_CLOSE_RANGE = 13;
const K_SOCKET = 14;
const K_SOCKETPAIR = 15;
const K_CONNECT = 16;
const K_BIND = 17;
const K_ACCEPT = 18;
const K_PIPE = 19;
const K_DUP = 20;
const K_DUP2 = 21;
const K_FCNTL = 22;
const K_EVENTFD = 23;
const K_CLONE = 24;
const K_FORK = 25;
const K_EXECVE = 26;
const K_EXECVEAT = 27;
const K_EXIT = 28;
const K_PRCTL = 29;
const K_MMAP = 30;
const K_MUNMAP = 31;
const K_MADVISE = 32;
const K_MREMAP = 33;
const K_BRK = 34;
const K_EXIT_GROUP = 35; // only as a note in exitAnnounced: exit_group's kind is K_EXIT

const CREATED_THREAD = 1;
const CREATED_PROCESS = 2;

const KINDS: Record<string, number> = {
  read: K_DATA, pread64: K_DATA, readv: K_DATA, preadv: K_DATA, preadv2: K_DATA, recv: K_DATA,
  write: K_DATA, pwrite64: K_DATA, writev: K_DATA, pwritev: K_DATA, pwritev2: K_DATA, send: K_DATA,
  vmsplice: K_DATA, recvmsg: K_MSG, sendmsg: K_MSG, recvfrom: K_ADDR4, sendto: K_ADDR4,
  recvmmsg: K_MMSG, sendmmsg: K_MMSG, sendfile: K_SENDFILE, sendfile64: K_SENDFILE,
  splice: K_SPLICE, copy_file_range: K_SPLICE, tee: K_TEE,
  open: K_OPEN, openat: K_OPENAT, openat2: K_OPENAT2, creat: K_CREAT, close: K_CLOSE,
  close_range: K_CLOSE_RANGE, socket: K_SOCKET, socketpair: K_SOCKETPAIR, connect: K_CONNECT,
  bind: K_BIND, listen: K_CLOSE, accept: K_ACCEPT, accept4: K_ACCEPT, pipe: K_PIPE, pipe2: K_PIPE,
  dup: K_DUP, dup2: K_DUP2, dup3: K_DUP2, fcntl: K_FCNTL, eventfd: K_EVENTFD, eventfd2: K_EVENTFD,
  clone: K_CLONE, clone3: K_CLONE, fork: K_FORK, vfork: K_FORK, execve: K_EXECVE,
  execveat: K_EXECVEAT, exit: K_EXIT, exit_group: K_EXIT, prctl: K_PRCTL, mmap: K_MMAP,
  munmap: K_MUNMAP, madvise: K_MADVISE, mremap: K_MREMAP, brk: K_BRK,
};

// ---------------------------------------------------------------------------------------
// Scanning helpers. All take the text and an index range and return an index.

const BS = 92; // backslash
const QUOTE = 34;
const LT = 60;
const GT = 62;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** s[p] is the opening quote; returns the index after the closing one (end if none). */
function skipString(s: string, p: number, end: number): number {
  let q = p + 1;
  for (;;) {
    const k = s.indexOf('"', q);
    if (k < 0 || k >= end) return end;
    let b = k - 1;
    while (b > p && s.charCodeAt(b) === BS) b--;
    if (((k - 1 - b) & 1) === 0) return k + 1; // an even run of backslashes: a real quote
    q = k + 1;
  }
}

/**
 * s[p] is '<' opening an fd annotation (or "<... resuming interrupted read ...>"); returns
 * the index after its '>' and an optional "(deleted)" (end if unterminated).
 * A path cannot hold a raw '<' or '>' (strace escapes them as \74 \76), so in a path a '<'
 * opens the -yy device note ("</dev/null<char 1:3>>"). Socket forms hold "->" and quoted
 * unix paths inside brackets: there a '>' only closes outside the brackets.
 */
function skipAngle(s: string, p: number, end: number): number {
  const path = s.charCodeAt(p + 1) === 47; /* / */
  let q = p + 1;
  let br = 0;
  while (q < end) {
    const c = s.charCodeAt(q);
    if (c === BS) {
      q += 2;
      continue;
    }
    if (c === GT && br <= 0) {
      q++;
      if (s.charCodeAt(q) === 40 && s.startsWith('(deleted)', q)) q += 9;
      return q;
    }
    if (c === LT) {
      q = skipAngle(s, q, end);
      continue;
    }
    if (!path) {
      if (c === QUOTE) {
        q = skipString(s, q, end);
        continue;
      }
      if (c === 91) br++;
      else if (c === 93) br--;
    }
    q++;
  }
  return end;
}

/** s[p] opens a {…}, […] or (…) group; returns the index after its close. */
function skipGroup(s: string, p: number, end: number): number {
  let depth = 0;
  while (p < end) {
    const c = s.charCodeAt(p);
    if (c === QUOTE) {
      p = skipString(s, p, end);
      continue;
    }
    if (c === LT) {
      p = skipAngle(s, p, end);
      continue;
    }
    if (c === 123 || c === 91 || c === 40) depth++;
    else if (c === 125 || c === 93 || c === 41) {
      if (--depth === 0) return p + 1;
    }
    p++;
  }
  return end;
}

/** index after `key` at its first occurrence outside strings in [p, end), or -1 */
function findKey(s: string, p: number, end: number, key: string): number {
  const k0 = key.charCodeAt(0);
  while (p < end) {
    const c = s.charCodeAt(p);
    if (c === QUOTE) {
      p = skipString(s, p, end);
      continue;
    }
    if (c === k0 && s.startsWith(key, p)) return p + key.length;
    p++;
  }
  return -1;
}

/** end of a flags value ("CLONE_VM|SIGCHLD") starting at p: the next ',', '}' or ')' */
function valueEnd(s: string, p: number, end: number): number {
  while (p < end) {
    const c = s.charCodeAt(p);
    if (c === 44 || c === 125 || c === 41) return p;
    p++;
  }
  return end;
}

/** decimal or 0x-hex unsigned number in [p, end); NaN if none */
function parseNum(s: string, p: number, end: number): number {
  if (p >= end) return NaN;
  let neg = false;
  if (s.charCodeAt(p) === 45) {
    neg = true;
    p++;
  }
  let v = 0;
  if (s.charCodeAt(p) === 48 && s.charCodeAt(p + 1) === 120) {
    p += 2;
    const s0 = p;
    for (; p < end; p++) {
      const h = hexVal(s.charCodeAt(p));
      if (h < 0) break;
      v = v * 16 + h;
    }
    if (p === s0) return NaN;
  } else {
    const s0 = p;
    for (; p < end; p++) {
      const c = s.charCodeAt(p);
      if (!isDigit(c)) break;
      v = v * 10 + (c - 48);
    }
    if (p === s0) return NaN;
  }
  return neg ? -v : v;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

// ---------------------------------------------------------------------------------------
// Unescaping strace strings and paths.

const utf8 = new TextDecoder('utf-8');
const utf8enc = new TextEncoder();

/**
 * strace prints bytes outside printable ASCII as \n \t \" \\ or octal (\303\251; \xNN with
 * -x). Decode the bytes, then UTF-8. Text without a backslash is returned as it is.
 */
export function unescapeStrace(s: string): string {
  if (s.indexOf('\\') < 0) return s;
  const out: number[] = [];
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c !== BS) {
      if (c < 128) out.push(c);
      else for (const b of utf8enc.encode(s[i])) out.push(b);
      continue;
    }
    const e = s.charCodeAt(++i);
    switch (e) {
      case 110: out.push(10); break; // n
      case 116: out.push(9); break; // t
      case 114: out.push(13); break; // r
      case 118: out.push(11); break; // v
      case 102: out.push(12); break; // f
      case 97: out.push(7); break; // a
      case 98: out.push(8); break; // b
      case 120: { // xNN
        let v = 0;
        let k = 0;
        for (; k < 2 && i + 1 < n; k++) {
          const h = hexVal(s.charCodeAt(i + 1));
          if (h < 0) break;
          v = v * 16 + h;
          i++;
        }
        out.push(k === 0 ? 120 : v);
        break;
      }
      default:
        if (e >= 48 && e <= 55) {
          let v = e - 48;
          for (let k = 0; k < 2 && i + 1 < n; k++) {
            const d = s.charCodeAt(i + 1);
            if (d < 48 || d > 55) break;
            v = v * 8 + (d - 48);
            i++;
          }
          out.push(v & 255);
        } else if (!Number.isNaN(e)) out.push(e); // \\ \" \' and anything else: the char itself
    }
  }
  return utf8.decode(new Uint8Array(out));
}

// ---------------------------------------------------------------------------------------
// fd annotations → FdTarget.

/**
 * What an fd annotation says. Accepts "3</etc/hosts>", "</etc/hosts>" or the inner text
 * ("TCP:[127.0.0.1:40000->127.0.0.1:5000]"). Undefined for a bare number or empty text.
 */
export function parseFdAnnotation(text: string): FdTarget | undefined {
  const s = text.trim();
  let i = 0;
  if (s.charCodeAt(0) === 45) i++;
  while (i < s.length && isDigit(s.charCodeAt(i))) i++;
  if (s.charCodeAt(i) === LT) {
    const e = skipAngle(s, i, s.length);
    return annotationTarget(s.slice(i, e));
  }
  if (i > 0 || s.length === 0) return undefined;
  return innerTarget(s);
}

/** raw is "<…>" possibly followed by "(deleted)" (strace 6 puts it outside the brackets) */
function annotationTarget(raw: string): FdTarget | undefined {
  let e = raw.length;
  if (raw.endsWith('(deleted)')) e -= 9;
  if (e < 2 || raw.charCodeAt(e - 1) !== GT) return undefined;
  return innerTarget(raw.slice(1, e - 1));
}

function innerTarget(inner: string): FdTarget | undefined {
  if (inner.length === 0) return undefined;
  if (inner.charCodeAt(0) === 47) {
    // a path, maybe followed by "<char 1:3>" (-yy device numbers)
    const lt = inner.indexOf('<');
    let path = lt >= 0 ? inner.slice(0, lt) : inner;
    if (path.endsWith(' (deleted)')) path = path.slice(0, -10);
    return { kind: 'file', path: unescapeStrace(path) };
  }
  const colon = inner.indexOf(':');
  if (colon <= 0) return { kind: 'file', path: unescapeStrace(inner) };
  const proto = inner.slice(0, colon);
  let body = inner.slice(colon + 1);
  if (body.charCodeAt(0) === 91 && body.charCodeAt(body.length - 1) === 93) body = body.slice(1, -1);
  switch (proto) {
    case 'TCP':
    case 'TCPv6':
      return inetTarget('tcp', body);
    case 'UDP':
    case 'UDPv6':
    case 'UDPLITE':
    case 'UDPLITEv6':
      return inetTarget('udp', body);
    case 'pipe':
      return inodeTarget('pipe', body);
    case 'socket':
      return inodeTarget('socket', body);
    case 'anon_inode':
      return body === 'eventfd' ? { kind: 'eventfd' } : { kind: 'anon', path: body };
    case 'NETLINK': {
      // "NETLINK:[5681]" (inode) or "NETLINK:[ROUTE:3666]" (protocol and port id)
      if (isAllDigits(body)) return { kind: 'netlink', inode: Number(body) };
      const c = body.indexOf(':');
      return { kind: 'netlink', path: c > 0 ? body.slice(0, c) : body };
    }
  }
  if (proto.startsWith('UNIX')) return unixTarget(body);
  const c0 = proto.charCodeAt(0);
  if (c0 >= 65 && c0 <= 90) return inetTarget('socket', body); // RAW, PING, SCTP, …
  return { kind: 'anon', path: unescapeStrace(inner) }; // net:[…], mnt:[…] and the like
}

function isAllDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

function inodeTarget(kind: 'pipe' | 'socket', body: string): FdTarget {
  return isAllDigits(body) ? { kind, inode: Number(body) } : { kind };
}

/** "[inode]", "[ip:port]" (bound), "[ip:port->ip:port]"; IPv6 as "[::1]:5000" */
function inetTarget(kind: 'tcp' | 'udp' | 'socket', body: string): FdTarget {
  if (isAllDigits(body)) return { kind, inode: Number(body) };
  const arrow = body.indexOf('->');
  const local = endpoint(arrow >= 0 ? body.slice(0, arrow) : body);
  const remote = arrow >= 0 ? endpoint(body.slice(arrow + 2)) : undefined;
  const t: FdTarget = { kind };
  if (local) t.local = local;
  if (remote) t.remote = remote;
  return t;
}

function endpoint(t: string): SockAddr | undefined {
  let ip: string;
  let port: string;
  if (t.charCodeAt(0) === 91) {
    const close = t.indexOf(']');
    if (close < 0 || t.charCodeAt(close + 1) !== 58) return undefined;
    ip = t.slice(1, close);
    port = t.slice(close + 2);
  } else {
    const colon = t.lastIndexOf(':');
    if (colon < 0) return undefined;
    ip = t.slice(0, colon);
    port = t.slice(colon + 1);
  }
  if (!isAllDigits(port)) return undefined;
  return { ip, port: Number(port) };
}

/** "[6794]", "[6794,"/run/x.sock"]", "[6796->6795,"/run/x.sock"]", "[6797->6798]" */
function unixTarget(body: string): FdTarget {
  const t: FdTarget = { kind: 'unix' };
  let p = 0;
  let v = 0;
  while (p < body.length && isDigit(body.charCodeAt(p))) v = v * 10 + (body.charCodeAt(p++) - 48);
  if (p > 0) t.inode = v;
  if (body.startsWith('->', p)) {
    p += 2;
    const s0 = p;
    v = 0;
    while (p < body.length && isDigit(body.charCodeAt(p))) v = v * 10 + (body.charCodeAt(p++) - 48);
    if (p > s0) t.peerInode = v;
  }
  if (body.charCodeAt(p) === 44 && body.charCodeAt(p + 1) === QUOTE) {
    const e = skipString(body, p + 1, body.length);
    t.path = unescapeStrace(body.slice(p + 2, e - 1));
  }
  return t;
}

// ---------------------------------------------------------------------------------------
// The parser.

export interface StraceParserOptions {
  /** calls that become events (default TRACED_CALLS); others are counted as ignoredCall */
  calls?: Iterable<string>;
  /** tid for lines without a tid prefix when none can be inferred (default 0) */
  defaultTid?: number;
  /** problems reported to the sink per kind; more are only counted (default 100) */
  maxProblemsPerKind?: number;
}

interface Pending {
  name: string;
  kind: number;
  /** argument text of the head, without " <unfinished ...>" */
  args: string;
  line: number;
  text: string;
}

const COUNTER_NAMES = [
  'lines', 'events', 'blank', 'ignoredCall', 'unknownCall', 'signal', 'exited', 'killed',
  'superseded', 'detached', 'straceMessage', 'unfinished', 'resumed', 'orphanResumed',
  'unfinishedLost', 'unfinishedAtExit', 'unfinishedAtEnd', 'malformed', 'truncated', 'failed',
  'bytesUnknown', 'truncatedName', 'truncatedArgv',
] as const;
type CounterName = (typeof COUNTER_NAMES)[number];

const MAX_ARGS = 8;
const UNFINISHED = '<unfinished ...>';
const DETACHED = '<detached ...>';
const TARGET_CACHE_MAX = 8192;

export class StraceParser {
  private readonly c: Record<CounterName, number>;
  private readonly kinds = new Map<string, number>();
  private readonly markExit: boolean;
  private readonly markExitGroup: boolean;
  private readonly defaultTid: number;
  private readonly problems: ProblemReporter;
  /** unfinished heads, per tid */
  private readonly pending = new Map<number, Pending>();
  /** tids whose exit/exit_group call was already an event, and which one */
  private readonly exitAnnounced = new Map<number, number>();
  /** tids seen created: CREATED_THREAD (CLONE_THREAD) or CREATED_PROCESS (fork, clone without it) */
  private readonly created = new Map<number, number>();
  /** tids seen in prefixes and not yet gone: a line without a prefix is the only one left */
  private readonly live = new Set<number>();
  private lastTid = 0;
  /** head of a line cut by a strace message, waiting for its rest on the next line */
  private carry: string | undefined;
  private readonly targets = new Map<string, FdTarget>();
  // argument offsets of the line being parsed
  private readonly as = new Int32Array(MAX_ARGS);
  private readonly ae = new Int32Array(MAX_ARGS);
  private nargs = 0;
  // results of parseFdAt
  private fdNum = NaN;
  private fdTarget: FdTarget | undefined;

  constructor(
    sink?: ProblemSink,
    options: StraceParserOptions = {},
  ) {
    this.c = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as Record<CounterName, number>;
    for (const name of options.calls ?? TRACED_CALLS) this.kinds.set(name, Object.hasOwn(KINDS, name) ? KINDS[name] : K_OTHER);
    this.markExit = this.kinds.has('exit');
    this.markExitGroup = this.kinds.has('exit_group');
    this.defaultTid = options.defaultTid ?? 0;
    this.problems = new ProblemReporter(sink, options.maxProblemsPerKind ?? 100);
  }

  counters(): CollectorCounters {
    return { ...this.c };
  }

  /**
   * One line (without its newline) → the event it completes, if any. `unterminated` marks
   * the last line of a trace that ended without a newline: if it does not parse, it is
   * counted as `truncated` rather than `malformed`.
   */
  parseLine(line: string, lineNo: number, unterminated = false): SyscallEvent | undefined {
    this.c.lines++;
    if (this.carry !== undefined) {
      line = this.carry + line;
      this.carry = undefined;
    }
    try {
      return this.parse(line, lineNo, unterminated);
    } catch (e) {
      // a bug here must not end a capture: count the line like any other bad one
      return this.bad('malformed', `parser error: ${(e as Error).message}`, lineNo, line);
    }
  }

  /** End of the trace: calls still unfinished are reported and dropped. Returns their number. */
  finish(): number {
    let n = 0;
    for (const [tid, p] of this.pending) {
      n++;
      this.c.unfinishedAtEnd++;
      this.problems.report('unfinishedAtEnd', `${p.name} of tid ${tid} did not finish before the end of the trace`, p.line, p.text);
    }
    this.pending.clear();
    return n;
  }

  private parse(line: string, lineNo: number, unterminated: boolean): SyscallEvent | undefined {
    let end = line.length;
    if (end > 0 && line.charCodeAt(end - 1) === 13) end--; // CRLF
    while (end > 0 && line.charCodeAt(end - 1) === 32) end--;
    if (end === 0) {
      this.c.blank++;
      return undefined;
    }
    let p = 0;
    let tid = -1;
    let c = line.charCodeAt(0);
    if (c === 91 /* [ */) {
      if (!line.startsWith('[pid', 0)) return this.bad('malformed', 'unknown line prefix', lineNo, line);
      p = 4;
      while (line.charCodeAt(p) === 32) p++;
      const s0 = p;
      tid = 0;
      for (c = line.charCodeAt(p); isDigit(c); c = line.charCodeAt(++p)) tid = tid * 10 + (c - 48);
      if (p === s0 || c !== 93) return this.bad('malformed', 'bad [pid N] prefix', lineNo, line);
      p++;
      while (line.charCodeAt(p) === 32) p++;
    } else if (isDigit(c)) {
      // "TID  1700000000.123456 …" or, without -f, just the time
      let n = 0;
      for (; isDigit(c); c = line.charCodeAt(++p)) n = n * 10 + (c - 48);
      if (c === 32) {
        tid = n;
        while (line.charCodeAt(p) === 32) p++;
      } else p = 0;
    } else if (line.startsWith('strace: ')) {
      this.c.straceMessage++; // stderr captures mix strace's own messages in
      return undefined;
    } else return this.bad(unterminated ? 'truncated' : 'malformed', 'not a strace line', lineNo, line);

    // epoch time with fraction (-ttt)
    let sec = 0;
    const t0 = p;
    for (c = line.charCodeAt(p); isDigit(c); c = line.charCodeAt(++p)) sec = sec * 10 + (c - 48);
    if (p === t0 || c !== 46) {
      return this.bad(unterminated ? 'truncated' : 'malformed', 'no epoch timestamp (strace -ttt)', lineNo, line);
    }
    let frac = 0;
    let scale = 1;
    for (c = line.charCodeAt(++p); isDigit(c); c = line.charCodeAt(++p)) {
      frac = frac * 10 + (c - 48);
      scale *= 10;
    }
    if (c !== 32) return this.bad(unterminated ? 'truncated' : 'malformed', 'bad timestamp', lineNo, line);
    p++;
    const ts = sec * 1000 + (frac * 1000) / scale;

    if (tid >= 0) {
      if (tid !== this.lastTid) {
        this.lastTid = tid;
        this.live.add(tid);
      }
    } else tid = this.impliedTid();

    c = line.charCodeAt(p);
    if (c === 43 /* + */) return this.endLine(line, p, end, ts, tid, lineNo);
    if (c === 45 /* - */ && line.startsWith('---', p)) {
      this.c.signal++;
      return undefined;
    }
    // strace -T: the time spent in the call follows its result. A line printed whole carries
    // the call's *entry* time: a receive that blocked for seconds moved its bytes at its end,
    // and that is the window it belongs to (the sender's window). A resumed line's time is
    // already the exit's.
    let spentMs = 0;
    const d = durationAt(line, end);
    if (d >= 0) {
      spentMs = Number(line.slice(d + 2, end - 1)) * 1000;
      end = d;
    }
    if (c === LT) return this.resumed(line, p, end, ts, tid, lineNo, unterminated);

    const ns = p;
    for (; p < end; p++) {
      c = line.charCodeAt(p);
      if (!((c >= 97 && c <= 122) || isDigit(c) || c === 95)) break;
    }
    if (p === ns || c !== 40 /* ( */) {
      return this.bad(unterminated ? 'truncated' : 'malformed', 'no system call', lineNo, line);
    }
    const name = line.slice(ns, p);
    const kind = this.kinds.get(name);
    if (kind === undefined) {
      if (name.startsWith('syscall_')) {
        // a number strace has no name for
        this.c.unknownCall++;
        this.problems.report('unknownCall', `unknown system call ${name}`, lineNo, line);
      } else this.c.ignoredCall++;
      return undefined;
    }
    if (endsWithAt(line, end, UNFINISHED)) {
      this.c.unfinished++;
      const prev = this.pending.get(tid);
      if (prev !== undefined) {
        this.c.unfinishedLost++;
        this.problems.report('unfinishedLost', `${prev.name} of tid ${tid} (line ${prev.line}) never resumed`, lineNo, line);
      }
      this.pending.set(tid, { name, kind, args: line.slice(p + 1, end - UNFINISHED.length), line: lineNo, text: line });
      return undefined;
    }
    if (endsWithAt(line, end, DETACHED)) {
      this.c.detached++;
      return undefined;
    }
    return this.call(line, p + 1, end, kind, name, ts + spentMs, tid, lineNo, line, unterminated);
  }

  private impliedTid(): number {
    if (this.live.size === 1) for (const t of this.live) return t;
    return this.lastTid !== 0 ? this.lastTid : this.defaultTid;
  }

  /** "<... NAME resumed>REST" */
  private resumed(line: string, p: number, end: number, ts: number, tid: number, lineNo: number, unterminated: boolean): SyscallEvent | undefined {
    const r = line.startsWith('<... ', p) ? line.indexOf(' resumed>', p + 5) : -1;
    if (r < 0) return this.bad(unterminated ? 'truncated' : 'malformed', 'unknown line', lineNo, line);
    const name = line.slice(p + 5, r);
    const kind = this.kinds.get(name);
    if (kind === undefined) {
      this.c.ignoredCall++;
      return undefined;
    }
    const head = this.pending.get(tid);
    if (head === undefined || head.name !== name) {
      if (head !== undefined) {
        this.pending.delete(tid);
        this.c.unfinishedLost++;
        this.problems.report('unfinishedLost', `${head.name} of tid ${tid} (line ${head.line}) never resumed`, lineNo, line);
      }
      this.c.orphanResumed++;
      this.problems.report('orphanResumed', `${name} of tid ${tid} resumed without its start (trace began mid-call?)`, lineNo, line);
      return undefined;
    }
    this.pending.delete(tid);
    this.c.resumed++;
    if (endsWithAt(line, end, DETACHED)) {
      this.c.detached++;
      return undefined;
    }
    const text = head.args + line.slice(r + 9, end);
    return this.call(text, 0, text.length, kind, name, ts, tid, lineNo, line, unterminated);
  }

  /** "+++ exited with N +++", "+++ killed by SIGKILL (core dumped) +++", "+++ superseded by execve in pid N +++" */
  private endLine(line: string, p: number, end: number, ts: number, tid: number, lineNo: number): SyscallEvent | undefined {
    if (line.startsWith('+++ exited with ', p)) {
      this.c.exited++;
      const code = parseNum(line, p + 16, end);
      return this.gone(tid, ts, Number.isNaN(code) ? 0 : code, undefined);
    }
    if (line.startsWith('+++ killed by ', p)) {
      this.c.killed++;
      let q = p + 14;
      while (q < end && line.charCodeAt(q) !== 32) q++;
      return this.gone(tid, ts, -1, line.slice(p + 14, q));
    }
    if (line.startsWith('+++ superseded by execve in pid ', p)) {
      // a non-leader thread called execve and took over the leader's tid: its unfinished
      // execve resumes under this tid
      this.c.superseded++;
      const old = parseNum(line, p + 32, end);
      const head = this.pending.get(old);
      if (head !== undefined) {
        this.pending.delete(old);
        this.pending.set(tid, head);
      }
      this.live.delete(old);
      this.created.delete(old);
      return undefined;
    }
    return this.bad('malformed', 'unknown +++ line', lineNo, line);
  }

  private gone(tid: number, ts: number, ret: number, signal: string | undefined): SyscallEvent | undefined {
    this.live.delete(tid);
    if (this.lastTid === tid) this.lastTid = 0;
    if (this.pending.delete(tid)) this.c.unfinishedAtExit++;
    const created = this.created.get(tid);
    if (created !== undefined) this.created.delete(tid);
    const said = this.exitAnnounced.get(tid);
    if (said !== undefined) this.exitAnnounced.delete(tid);
    // A known thread's end is the thread's; a known process's end (even by a raw exit()
    // of its only thread) is the process's. A tid of unknown origin (attached with -p)
    // that called exit() is taken for a thread: a pool thread ending must not end its process.
    let call: string | undefined;
    if (created === CREATED_THREAD) call = said === undefined && this.markExit ? 'exit' : undefined;
    else if (created === CREATED_PROCESS) call = said !== K_EXIT_GROUP && this.markExitGroup ? 'exit_group' : undefined;
    else call = said === undefined && this.markExitGroup ? 'exit_group' : undefined;
    if (call === undefined) return undefined;
    const ev: SyscallEvent = { ts, pid: 0, tid, call, ret, bytes: 0 };
    if (signal !== undefined) ev.err = signal;
    this.c.events++;
    return ev;
  }

  /** s[p..end) is "ARGS) = RET…" of a complete call */
  private call(
    s: string,
    p: number,
    end: number,
    kind: number,
    name: string,
    ts: number,
    tid: number,
    lineNo: number,
    line: string,
    unterminated: boolean,
  ): SyscallEvent | undefined {
    const close = this.scanArgs(s, p, end);
    if (close < 0) return this.bad(unterminated ? 'truncated' : 'malformed', 'unbalanced arguments', lineNo, line);
    let q = close;
    while (s.charCodeAt(q) === 32) q++;
    if (s.charCodeAt(q) !== 61 /* = */) return this.bad(unterminated ? 'truncated' : 'malformed', 'no return value', lineNo, line);
    q++;
    while (s.charCodeAt(q) === 32) q++;

    let ret = 0;
    let unknownRet = false;
    let retAnn = -1;
    let retAnnEnd = -1;
    let c = s.charCodeAt(q);
    if (c === 63 /* ? */) {
      unknownRet = true;
      q++;
    } else {
      const r0 = q;
      if (c === 45) q++;
      if (s.charCodeAt(q) === 48 && s.charCodeAt(q + 1) === 120) {
        q += 2;
        while (hexVal(s.charCodeAt(q)) >= 0) q++;
      } else while (isDigit(s.charCodeAt(q))) q++;
      ret = parseNum(s, r0, q);
      if (Number.isNaN(ret)) return this.bad(unterminated ? 'truncated' : 'malformed', 'bad return value', lineNo, line);
      if (s.charCodeAt(q) === LT) {
        retAnn = q;
        q = skipAngle(s, q, end);
        retAnnEnd = q;
      }
    }
    let err: string | undefined;
    if ((ret < 0 || unknownRet) && s.charCodeAt(q) === 32) {
      c = s.charCodeAt(q + 1);
      if (c >= 65 && c <= 90) {
        const e0 = q + 1;
        q = e0;
        for (c = s.charCodeAt(q); (c >= 65 && c <= 90) || isDigit(c) || c === 95; c = s.charCodeAt(++q));
        err = s.slice(e0, q);
      }
    }
    if (err !== undefined || ret < 0) {
      ret = -1;
      this.c.failed++;
    }

    const ev: SyscallEvent = { ts, pid: 0, tid, call: name, ret, bytes: 0 };
    if (err !== undefined) ev.err = err;
    const ok = ret >= 0 && err === undefined;
    const as = this.as;
    const ae = this.ae;
    const n = this.nargs;

    switch (kind) {
      case K_DATA:
        this.fdField(ev, s, 0);
        if (ok) ev.bytes = ret;
        break;
      case K_MSG:
        this.fdField(ev, s, 0);
        if (ok) ev.bytes = ret;
        if (n > 1) {
          const k = findKey(s, as[1], ae[1], 'msg_name=');
          if (k >= 0 && s.charCodeAt(k) === 123) this.sockaddr(ev, s, k, skipGroup(s, k, ae[1]));
        }
        break;
      case K_ADDR4:
        this.fdField(ev, s, 0);
        if (ok) ev.bytes = ret;
        if (n > 4 && s.charCodeAt(as[4]) === 123) this.sockaddr(ev, s, as[4], ae[4]);
        break;
      case K_MMSG:
        this.fdField(ev, s, 0);
        if (ok && n > 1) ev.bytes = this.msgLens(s, as[1], ae[1], ret);
        break;
      case K_SENDFILE:
        this.fdField(ev, s, 0);
        this.fd2Field(ev, s, 1);
        if (ok) ev.bytes = ret;
        break;
      case K_SPLICE:
        this.fdField(ev, s, 2);
        this.fd2Field(ev, s, 0);
        if (ok) ev.bytes = ret;
        break;
      case K_TEE:
        this.fdField(ev, s, 1);
        this.fd2Field(ev, s, 0);
        if (ok) ev.bytes = ret;
        break;
      case K_OPEN:
      case K_CREAT:
        this.pathField(ev, s, 0);
        if (kind === K_OPEN) this.rawField(ev, 'flags', s, 1);
        else ev.flags = 'O_WRONLY|O_CREAT|O_TRUNC'; // what creat() is
        this.retTarget(ev, s, retAnn, retAnnEnd);
        break;
      case K_OPENAT:
      case K_OPENAT2:
        this.fdField(ev, s, 0);
        delete ev.target; // the dirfd's path; target is the new fd's
        this.pathField(ev, s, 1);
        if (kind === K_OPENAT) this.rawField(ev, 'flags', s, 2);
        else if (n > 2) this.keyField(ev, s, as[2], ae[2]);
        this.retTarget(ev, s, retAnn, retAnnEnd);
        break;
      case K_CLOSE:
        this.fdField(ev, s, 0);
        break;
      case K_CLOSE_RANGE: {
        if (n > 0) {
          const a = parseNum(s, as[0], ae[0]);
          if (!Number.isNaN(a)) ev.fd = a;
        }
        if (n > 1) {
          const b = parseNum(s, as[1], ae[1]);
          if (!Number.isNaN(b)) ev.fd2 = b;
        }
        this.rawField(ev, 'flags', s, 2);
        break;
      }
      case K_SOCKET:
      case K_SOCKETPAIR:
        if (n > 1) ev.flags = s.slice(as[0], ae[0]) + '|' + s.slice(as[1], ae[1]);
        if (kind === K_SOCKET) this.retTarget(ev, s, retAnn, retAnnEnd);
        else if (ok && n > 3) this.fdPair(ev, s, as[3], ae[3]);
        break;
      case K_CONNECT:
      case K_BIND:
        this.fdField(ev, s, 0);
        if (n > 1 && s.charCodeAt(as[1]) === 123) this.sockaddr(ev, s, as[1], ae[1]);
        this.afterAddress(ev, kind === K_CONNECT);
        break;
      case K_ACCEPT:
        this.fdField(ev, s, 0);
        delete ev.target; // the listening socket; target is the new connection
        if (n > 1 && s.charCodeAt(as[1]) === 123) this.sockaddr(ev, s, as[1], ae[1]);
        this.rawField(ev, 'flags', s, 3);
        this.retTarget(ev, s, retAnn, retAnnEnd);
        break;
      case K_PIPE:
        if (ok && n > 0) this.fdPair(ev, s, as[0], ae[0]);
        this.rawField(ev, 'flags', s, 1);
        break;
      case K_DUP:
      case K_DUP2:
        this.fdField(ev, s, 0);
        if (kind === K_DUP2 && n > 1) {
          const nf = parseNum(s, as[1], ae[1]);
          if (!Number.isNaN(nf)) ev.fd2 = nf;
        } else if (ok) ev.fd2 = ret;
        if (ok) this.retTarget2(ev, s, retAnn, retAnnEnd);
        this.rawField(ev, 'flags', s, 2);
        break;
      case K_FCNTL:
        this.fdField(ev, s, 0);
        this.rawField(ev, 'flags', s, 1);
        if (ok && ev.flags !== undefined && ev.flags.startsWith('F_DUPFD')) {
          ev.fd2 = ret;
          this.retTarget2(ev, s, retAnn, retAnnEnd);
        }
        break;
      case K_EVENTFD:
        this.rawField(ev, 'flags', s, 1);
        this.retTarget(ev, s, retAnn, retAnnEnd);
        break;
      case K_CLONE:
        // clone(child_stack=…, flags=CLONE_VM|…|SIGCHLD, …); clone3({flags=…, …} => {…}, 88)
        if (n > 0) this.keyField(ev, s, as[0], ae[n - 1]);
        if (ok && ret > 0) this.created.set(ret, ev.flags !== undefined && ev.flags.includes('CLONE_THREAD') ? CREATED_THREAD : CREATED_PROCESS);
        break;
      case K_FORK:
        if (ok && ret > 0) this.created.set(ret, CREATED_PROCESS);
        break;
      case K_EXECVE:
        this.pathField(ev, s, 0);
        if (n > 1) this.argvField(ev, s, as[1], ae[1]);
        break;
      case K_EXECVEAT:
        this.fdField(ev, s, 0);
        this.pathField(ev, s, 1);
        if (n > 2) this.argvField(ev, s, as[2], ae[2]);
        this.rawField(ev, 'flags', s, 4);
        break;
      case K_EXIT:
        this.exitAnnounced.set(tid, name === 'exit_group' ? K_EXIT_GROUP : K_EXIT);
        break;
      case K_PRCTL:
        this.rawField(ev, 'flags', s, 0);
        if (ev.flags === 'PR_SET_NAME' && n > 1 && s.charCodeAt(as[1]) === QUOTE) {
          const e = skipString(s, as[1], ae[1]);
          if (e < ae[1]) this.c.truncatedName++; // "name"... : -s too small; the state reads /proc instead
          else ev.name = unescapeStrace(s.slice(as[1] + 1, e - 1));
        }
        break;
      case K_MMAP:
        this.lenField(ev, s, 1);
        this.rawField(ev, 'flags', s, 3);
        if (n > 4 && s.charCodeAt(as[4]) !== 45) this.fdField(ev, s, 4); // -1: anonymous
        break;
      case K_MUNMAP:
        this.lenField(ev, s, 1);
        break;
      case K_MADVISE:
        this.lenField(ev, s, 1);
        this.rawField(ev, 'flags', s, 2);
        break;
      case K_MREMAP:
        this.lenField(ev, s, 2); // the size the mapping has afterwards
        this.rawField(ev, 'flags', s, 3);
        break;
      case K_BRK:
        break;
      default:
        if (n > 0 && isDigit(s.charCodeAt(as[0]))) this.fdField(ev, s, 0);
    }
    this.c.events++;
    return ev;
  }

  /** Locates the top-level arguments of "ARGS)…"; returns the index after ')' or -1. */
  private scanArgs(s: string, p: number, end: number): number {
    let depth = 0;
    let start = p;
    let n = 0;
    while (p < end) {
      const c = s.charCodeAt(p);
      if (c === QUOTE) {
        p = skipString(s, p, end);
        continue;
      }
      if (c === LT) {
        p = skipAngle(s, p, end);
        continue;
      }
      if (c === 40 || c === 91 || c === 123) depth++;
      else if (c === 41) {
        if (depth === 0) {
          n = this.pushArg(s, start, p, n);
          if (n === 1 && this.as[0] === this.ae[0]) n = 0; // "()"
          this.nargs = n < MAX_ARGS ? n : MAX_ARGS;
          return p + 1;
        }
        depth--;
      } else if (c === 93 || c === 125) depth--;
      else if (c === 44 && depth === 0) {
        n = this.pushArg(s, start, p, n);
        start = p + 1;
      } else if (c === 47 && s.charCodeAt(p + 1) === 42) {
        // "/* 35 vars */"
        const k = s.indexOf('*/', p + 2);
        if (k < 0 || k >= end) return -1;
        p = k + 2;
        continue;
      }
      p++;
    }
    return -1;
  }

  private pushArg(s: string, start: number, e: number, n: number): number {
    if (n >= MAX_ARGS) return n + 1;
    while (start < e && s.charCodeAt(start) === 32) start++;
    while (e > start && s.charCodeAt(e - 1) === 32) e--;
    this.as[n] = start;
    this.ae[n] = e;
    return n + 1;
  }

  /** "3</path>", "3", "-1", "AT_FDCWD</dir>" at p: sets fdNum (NaN if no number) and fdTarget */
  private parseFdAt(s: string, p: number, end: number): number {
    let v = 0;
    const s0 = p;
    let c = s.charCodeAt(p);
    const neg = c === 45;
    if (neg) c = s.charCodeAt(++p);
    const d0 = p;
    for (; p < end && isDigit(c); c = s.charCodeAt(++p)) v = v * 10 + (c - 48);
    this.fdNum = p === d0 ? NaN : neg ? -v : v;
    if (p === d0) {
      // a name like AT_FDCWD
      while (p < end && (c = s.charCodeAt(p)) !== LT && c !== 44 && c !== 93) p++;
      if (p === s0) {
        this.fdTarget = undefined;
        return p;
      }
    }
    if (p < end && s.charCodeAt(p) === LT) {
      const e = skipAngle(s, p, end);
      this.fdTarget = this.target(s, p, e);
      return e;
    }
    this.fdTarget = undefined;
    return p;
  }

  private target(s: string, p: number, e: number): FdTarget | undefined {
    const key = s.slice(p, e);
    let t = this.targets.get(key);
    if (t === undefined) {
      t = annotationTarget(key);
      if (t === undefined) return undefined;
      if (t.local) Object.freeze(t.local);
      if (t.remote) Object.freeze(t.remote);
      Object.freeze(t);
      // traces name few distinct fds; a bound keeps a long capture from growing the cache
      if (this.targets.size >= TARGET_CACHE_MAX) this.targets.clear();
      this.targets.set(key, t);
    }
    return t;
  }

  private fdField(ev: SyscallEvent, s: string, i: number): void {
    if (i >= this.nargs) return;
    this.parseFdAt(s, this.as[i], this.ae[i]);
    if (!Number.isNaN(this.fdNum)) ev.fd = this.fdNum;
    if (this.fdTarget !== undefined && !Number.isNaN(this.fdNum)) ev.target = this.fdTarget;
  }

  private fd2Field(ev: SyscallEvent, s: string, i: number): void {
    if (i >= this.nargs) return;
    this.parseFdAt(s, this.as[i], this.ae[i]);
    if (!Number.isNaN(this.fdNum)) ev.fd2 = this.fdNum;
    if (this.fdTarget !== undefined && !Number.isNaN(this.fdNum)) ev.target2 = this.fdTarget;
  }

  private retTarget(ev: SyscallEvent, s: string, p: number, e: number): void {
    if (p < 0) return;
    const t = this.target(s, p, e);
    if (t !== undefined) ev.target = t;
  }

  private retTarget2(ev: SyscallEvent, s: string, p: number, e: number): void {
    if (p < 0) return;
    const t = this.target(s, p, e);
    if (t !== undefined) ev.target2 = t;
  }

  /** "[3<pipe:[1]>, 4<pipe:[1]>]" → fds, fd/target, fd2/target2 */
  private fdPair(ev: SyscallEvent, s: string, p: number, end: number): void {
    if (s.charCodeAt(p) !== 91) return;
    let q = this.parseFdAt(s, p + 1, end);
    const a = this.fdNum;
    const ta = this.fdTarget;
    if (Number.isNaN(a) || s.charCodeAt(q) !== 44) return;
    q++;
    while (s.charCodeAt(q) === 32) q++;
    this.parseFdAt(s, q, end);
    const b = this.fdNum;
    if (Number.isNaN(b)) return;
    ev.fds = [a, b];
    ev.fd = a;
    if (ta !== undefined) ev.target = ta;
    ev.fd2 = b;
    if (this.fdTarget !== undefined) ev.target2 = this.fdTarget;
  }

  private rawField(ev: SyscallEvent, k: 'flags', s: string, i: number): void {
    if (i < this.nargs) ev[k] = s.slice(this.as[i], this.ae[i]);
  }

  /** the "flags=" member in [p, end) (clone, clone3, openat2's struct open_how) */
  private keyField(ev: SyscallEvent, s: string, p: number, end: number): void {
    const k = findKey(s, p, end, 'flags=');
    if (k >= 0) ev.flags = s.slice(k, valueEnd(s, k, end));
  }

  private lenField(ev: SyscallEvent, s: string, i: number): void {
    if (i >= this.nargs) return;
    const v = parseNum(s, this.as[i], this.ae[i]);
    if (!Number.isNaN(v)) ev.len = v;
  }

  private pathField(ev: SyscallEvent, s: string, i: number): void {
    if (i >= this.nargs) return;
    const p = this.as[i];
    if (s.charCodeAt(p) !== QUOTE) return; // an address: strace could not read the path
    const e = skipString(s, p, this.ae[i]);
    ev.path = unescapeStrace(s.slice(p + 1, e - 1));
  }

  /** ["true", "arg with space", "q\"uote"] ; elements cut by -s end in "...", arrays in ", ...]" */
  private argvField(ev: SyscallEvent, s: string, p: number, end: number): void {
    if (s.charCodeAt(p) !== 91) return;
    const argv: string[] = [];
    let cut = false;
    let q = p + 1;
    while (q < end) {
      const c = s.charCodeAt(q);
      if (c === QUOTE) {
        const e = skipString(s, q, end);
        argv.push(unescapeStrace(s.slice(q + 1, e - 1)));
        q = e;
        if (s.startsWith('...', q)) {
          cut = true;
          q += 3;
        }
        continue;
      }
      if (c === 46 && s.startsWith('...', q)) {
        cut = true; // more elements than -s lets strace print
        q += 3;
        continue;
      }
      q++;
    }
    // a cut argv ("/root/.pyenv/ver"...) would name the program wrongly: leave it to /proc
    if (cut) this.c.truncatedArgv++;
    else ev.argv = argv;
  }

  /** sum of msg_len over the messages strace shows; counts calls whose array was cut */
  private msgLens(s: string, p: number, end: number, ret: number): number {
    let sum = 0;
    let shown = 0;
    for (let k = findKey(s, p, end, 'msg_len='); k >= 0; k = findKey(s, k, end, 'msg_len=')) {
      const v = parseNum(s, k, valueEnd(s, k, end));
      if (!Number.isNaN(v)) {
        sum += v;
        shown++;
      }
    }
    if (shown < ret) this.c.bytesUnknown++; // "[...]" or "{…}, ...]": raise strace -s
    return sum;
  }

  /** {sa_family=AF_INET, sin_port=htons(6000), sin_addr=inet_addr("127.0.0.1")} and friends */
  private sockaddr(ev: SyscallEvent, s: string, p: number, end: number): void {
    const f = findKey(s, p, end, 'sa_family=');
    if (f < 0) return;
    const fe = valueEnd(s, f, end);
    const fam = s.slice(f, fe);
    if (fam === 'AF_INET' || fam === 'AF_INET6') {
      const v6 = fam === 'AF_INET6';
      const pk = s.indexOf(v6 ? 'sin6_port=htons(' : 'sin_port=htons(', fe);
      const ik = s.indexOf(v6 ? 'inet_pton(AF_INET6, "' : 'inet_addr("', fe);
      if (pk < 0 || pk >= end || ik < 0 || ik >= end) return;
      const ps = pk + (v6 ? 16 : 15);
      const port = parseNum(s, ps, valueEnd(s, ps, end));
      const is = ik + (v6 ? 21 : 11);
      const ie = s.indexOf('"', is);
      if (Number.isNaN(port) || ie < 0 || ie >= end) return;
      ev.addr = { ip: s.slice(is, ie), port };
    } else if (fam === 'AF_UNIX' || fam === 'AF_LOCAL') {
      let k = findKey(s, fe, end, 'sun_path=');
      if (k < 0) return;
      let at = '';
      if (s.charCodeAt(k) === 64) {
        at = '@'; // abstract socket
        k++;
      }
      if (s.charCodeAt(k) !== QUOTE) return;
      const e = skipString(s, k, end);
      ev.path = at + unescapeStrace(s.slice(k + 1, e - 1));
    }
  }

  /** connect/bind: strace annotated the socket before the call; add what the call set */
  private afterAddress(ev: SyscallEvent, isConnect: boolean): void {
    const t = ev.target;
    if (t === undefined) return;
    if (ev.addr !== undefined) {
      if (isConnect) ev.target = { ...t, remote: ev.addr };
      else if (ev.addr.port !== 0 && t.local === undefined) ev.target = { ...t, local: ev.addr }; // port 0: the kernel picks, unknown here
    } else if (ev.path !== undefined && t.kind === 'unix' && t.path === undefined) {
      ev.target = { ...t, path: ev.path };
    }
  }

  private bad(kind: 'malformed' | 'truncated', message: string, line: number, text: string): undefined {
    // On stderr strace writes its own messages ("strace: Process 3705 attached\n") in the
    // middle of a trace line: keep the head and join it with the next line, which holds the rest.
    const k = text.indexOf('strace: Process ');
    if (k > 0) {
      this.carry = text.slice(0, k);
      this.c.straceMessage++;
      return undefined;
    }
    this.c[kind]++;
    this.problems.report(kind, message, line, text);
    return undefined;
  }

}

/** Where a trailing strace -T duration (" <0.000123>") starts before `end`, or -1. */
function durationAt(line: string, end: number): number {
  if (line.charCodeAt(end - 1) !== 62 /* > */) return -1;
  let q = end - 2;
  let dot = false;
  for (; q > 0; q--) {
    const c = line.charCodeAt(q);
    if (isDigit(c)) continue;
    if (c === 46 && !dot) {
      dot = true;
      continue;
    }
    break;
  }
  return dot && q > 0 && line.charCodeAt(q) === LT && line.charCodeAt(q - 1) === 32 && q < end - 2 ? q - 1 : -1;
}

function endsWithAt(s: string, end: number, suffix: string): boolean {
  return end >= suffix.length && s.startsWith(suffix, end - suffix.length);
}

// ---------------------------------------------------------------------------------------
// Chunks → lines.

/**
 * Splits text chunks into lines for a parser, keeping line numbers across chunks. Both the
 * live collector and the file replay use it. Decode the bytes as latin1: strace writes
 * ASCII only (other bytes are escaped), and latin1 never splits a character across chunks.
 */
export class StraceLineFeeder {
  private tail = '';
  private n = 0;

  constructor(readonly parser: StraceParser) {}

  /** lines read so far */
  get lineNo(): number {
    return this.n;
  }

  /** Parses the complete lines in `chunk`, appending their events to `out`. */
  push(chunk: string, out: SyscallEvent[]): void {
    let start = 0;
    let nl = chunk.indexOf('\n');
    if (this.tail.length > 0) {
      if (nl < 0) {
        this.tail += chunk;
        return;
      }
      const ev = this.parser.parseLine(this.tail + chunk.slice(0, nl), ++this.n);
      if (ev !== undefined) out.push(ev);
      this.tail = '';
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    const parser = this.parser;
    while (nl >= 0) {
      const ev = parser.parseLine(chunk.slice(start, nl), ++this.n);
      if (ev !== undefined) out.push(ev);
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    if (start < chunk.length) this.tail = chunk.slice(start);
  }

  /** End of input: the last line without a newline (maybe cut short), then parser.finish(). */
  end(out: SyscallEvent[]): void {
    if (this.tail.length > 0) {
      const ev = this.parser.parseLine(this.tail, ++this.n, true);
      if (ev !== undefined) out.push(ev);
      this.tail = '';
    }
    this.parser.finish();
  }
}
