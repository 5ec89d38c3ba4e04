/**
 * LTTng kernel traces, as printed by `babeltrace2 --clock-seconds` (default "pretty" text
 * sink), turned into SyscallEvents. Pure: no I/O; the replay collector (lttng.ts) feeds it.
 *
 * A line looks like
 *   [1666346774.265773152] (+0.000007165) T5600 syscall_exit_recvfrom: { cpu_id = 1 },
 *   { procname = "nginx", pid = 94665, vpid = 10, tid = 94665, vtid = 10, pid_ns = … },
 *   { ret = 424, ubuf = 18335568, addr = 0, addr_len = 0 }
 * i.e. time, optional delta, optional trace host name, event name, then brace groups:
 * stream packet context, the context fields added at recording time (procname, pid, tid…),
 * and the payload (absent for events without fields).
 *
 * LTTng splits every call into syscall_entry_X (arguments) and syscall_exit_X (ret and
 * output arguments); a thread is in at most one call at a time, so entries and exits pair
 * per tid. One pair gives one SyscallEvent, stamped with the *exit* time: that is when the
 * bytes moved and the new fd existed, and it keeps the output in time order across threads
 * (babeltrace2 merges the per-CPU streams by time).
 *
 * Decisions (see also the counters below):
 * - pid is the context `pid` (host tgid), tid the context `tid`: both are unique on the host,
 *   while vpid/vtid are namespace-local (every container's nginx is "pid 10") and would merge
 *   unrelated processes. procname becomes `comm` (the thread name, at exit time, so execve
 *   already shows the new program).
 * - An exit without an entry (the trace began while the call was in progress, or the entry
 *   was discarded) still carries ret and the exit-side data (bytes, accepted peer, pipe fds),
 *   so by default it becomes an event without the entry's arguments (no fd): dropping it
 *   would lose bytes that really moved. `exitWithoutEntry: 'drop'` drops it instead.
 *   The child's return from clone/fork/vfork/clone3 (ret 0, never an entry on that tid) is
 *   not an event: the parent's call already describes the new thread (`childReturn`).
 * - exit/exit_group never return: they become events at their entry (ret 0).
 * - A second entry on a tid whose entry is still open means the exit was lost: the older
 *   entry is dropped (`entryReplaced`). An exit of another call than the open entry drops
 *   the entry (`mismatchedExit`) and is handled as an exit without entry.
 * - Counters count trace lines, except `events`. Every non-blank line lands in exactly one of
 *   entries, exits, ignoredCall, otherEvent, malformed, needsClockSeconds.
 * - Failed calls: LTTng's ret is the negative errno; the event gets ret -1 and err "EAGAIN"…
 * - Flags are decoded to the names strace prints ("O_RDONLY|O_NONBLOCK"), x86-64 values, by
 *   kernel-decode.ts (shared with the eBPF collector). IPv4-mapped IPv6 addresses are given as
 *   the dotted IPv4 address, as the eBPF collector gives them: flows must match across hosts.
 * - Fields follow the strace collector's conventions (agent/state reads both): transfers
 *   fd = output, fd2 = input; dup/dup2/dup3/fcntl(F_DUPFD*) fd = old, fd2 = new;
 *   pipe/pipe2/socketpair fds and fd/fd2 = the two ends; open/socket/accept ret = new fd,
 *   openat's fd = its dirfd (absent for AT_FDCWD), accept's fd = the listening socket and
 *   addr = the peer; connect's addr from the fields LTTng copies from user memory
 *   (family, dport, v4addr/v6addr; older tracers give only the pointer: no addr).
 *   LTTng gives no fd annotations: `target` is never set.
 * - Not available from LTTng (user pointers it does not copy): bind's address, sendto's and
 *   recvfrom's address, execve's argv, PR_SET_NAME's name, clone3's flags, openat2's flags,
 *   the msg_len sum of sendmmsg/recvmmsg (bytes 0, counted `bytesUnknown`).
 */
import { ProblemReporter } from './problems.js';
import { TRACED_CALLS, dataDirection } from '../../shared/event.js';
import type { SockAddr, SyscallEvent } from '../../shared/event.js';
import type { CollectorCounters, ProblemSink } from './collector.js';
import {
  atFlagsText, cloneFlagsText, errnoName, fcntlName, fdFlagsText, ipv6Text, madviseName, mmapFlagsText,
  mremapFlagsText, openFlagsText, prctlName, socketFlagsText,
} from './kernel-decode.js';

// the decoders this module has always exported (tests use them)
export { cloneFlagsText, errnoName, ipv6Text, mmapFlagsText, openFlagsText, socketFlagsText };

// ---------------------------------------------------------------------------------------
// Payload fields: the top-level "name = value" pairs of one brace group, values kept raw.

export class LttngFields {
  readonly names: string[] = [];
  readonly values: string[] = [];

  /** raw value text ("10", "0x800", "\"/etc/x\"", "[ [0] = 192, … ]"), or undefined */
  raw(name: string): string | undefined {
    const n = this.names;
    for (let i = 0; i < n.length; i++) if (n[i] === name) return this.values[i];
    return undefined;
  }

  /** integer value (decimal, hex, or an enum's container value); undefined if absent */
  num(name: string): number | undefined {
    const r = this.raw(name);
    return r === undefined ? undefined : parseNumber(r);
  }

  /** a C int argument (fd): LTTng prints some as unsigned ("4294967295" for -1) */
  int(name: string): number | undefined {
    const r = this.raw(name);
    return r === undefined ? undefined : toInt32(r);
  }

  str(name: string): string | undefined {
    const r = this.raw(name);
    return r === undefined ? undefined : parseString(r);
  }

  /** integer array/sequence "[ [0] = 192, [1] = 168 ]" */
  arr(name: string): number[] | undefined {
    const r = this.raw(name);
    return r === undefined ? undefined : parseArray(r);
  }
}

const EMPTY_FIELDS = new LttngFields();

/** Parse an integer as babeltrace2 prints it; NaN when it is not one. */
export function parseNumber(raw: string): number {
  let s = raw;
  if (s.charCodeAt(0) === 40 /* ( */) {
    // enumeration: ( "EPOLL_CTL_ADD" : container = 1 ) — the number is the container value
    const k = s.lastIndexOf('container = ');
    if (k < 0) return NaN;
    const e = s.indexOf(' ', k + 12);
    s = s.slice(k + 12, e < 0 ? s.length - 1 : e);
  }
  const len = s.length;
  if (len === 0) return NaN;
  let i = 0;
  let neg = false;
  if (s.charCodeAt(0) === 45 /* - */) {
    neg = true;
    i = 1;
  }
  if (len > i + 2 && s.charCodeAt(i) === 48 && (s.charCodeAt(i + 1) | 32) === 120 /* 0x */) {
    const v = parseInt(s.slice(i + 2), 16);
    return neg ? -v : v;
  }
  if (i === len) return NaN;
  let v = 0;
  for (; i < len; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return neg ? -v : v;
}

/** C int view of an integer printed possibly as unsigned (32 or 64 bit): fds, dirfds. */
function toInt32(raw: string): number {
  const v = parseNumber(raw);
  if (!(v >= 0x80000000)) return v; // also NaN
  // exact low 32 bits of large decimal/hex values (doubles lose them above 2^53)
  const s = raw.charCodeAt(0) === 40 ? String(v) : raw;
  try {
    return Number(BigInt.asIntN(32, BigInt(s)));
  } catch {
    return v;
  }
}

/** Decode a babeltrace2 string literal: it escapes \\ \" \' \? and control characters. */
export function parseString(raw: string): string | undefined {
  const len = raw.length;
  if (len < 2 || raw.charCodeAt(0) !== 34 || raw.charCodeAt(len - 1) !== 34) return undefined;
  const body = raw.slice(1, -1);
  if (body.indexOf('\\') < 0) return body;
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== '\\' || i + 1 >= body.length) {
      out += c;
      continue;
    }
    const d = body[++i];
    switch (d) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '0': out += '\0'; break;
      case 'a': out += '\x07'; break;
      case 'b': out += '\b'; break;
      case 'e': out += '\x1b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case 'x': {
        const h = parseInt(body.slice(i + 1, i + 3), 16);
        if (Number.isNaN(h)) out += 'x';
        else {
          out += String.fromCharCode(h);
          i += 2;
        }
        break;
      }
      default: out += d; // \\ \" \' \?
    }
  }
  return out;
}

function parseArray(raw: string): number[] | undefined {
  if (raw.charCodeAt(0) !== 91 /* [ */) return undefined;
  const out: number[] = [];
  let i = raw.indexOf('] = ', 1);
  while (i >= 0) {
    let e = raw.indexOf(',', i + 4);
    if (e < 0) e = raw.lastIndexOf(' ]');
    const v = parseNumber(raw.slice(i + 4, e).trim());
    if (Number.isNaN(v)) return undefined;
    out.push(v);
    i = raw.indexOf('] = ', e);
  }
  return out;
}

/** Index after the string literal opening at s[i] === '"', or -1 if it is not closed. */
function skipString(s: string, i: number): number {
  for (let j = s.indexOf('"', i + 1); j >= 0; j = s.indexOf('"', j + 1)) {
    // closed unless preceded by an odd number of backslashes
    let b = j - 1;
    while (s.charCodeAt(b) === 92 /* \ */) b--;
    if ((j - 1 - b) % 2 === 0) return j + 1;
  }
  return -1;
}

/** Index after the bracketed value opening at s[i] ('{', '[' or '('), or -1 if unbalanced. */
function skipNested(s: string, i: number): number {
  let depth = 0;
  const len = s.length;
  for (let j = i; j < len; j++) {
    const c = s.charCodeAt(j);
    if (c === 34) {
      j = skipString(s, j);
      if (j < 0) return -1;
      j--;
    } else if (c === 123 || c === 91 || c === 40) depth++;
    else if (c === 125 || c === 93 || c === 41) {
      if (--depth === 0) return j + 1;
    }
  }
  return -1;
}

/**
 * Parse the group "{ name = value, … }" opening at s[i] === '{' into out (when given).
 * Returns the index of its closing '}', or -1 when the text is not such a group (truncated
 * line, garbage). One pass; scalars (numbers, hex) end at the next ',', ' ' or '}' — only
 * strings and nested values need a character scan.
 */
function parseGroup(s: string, i: number, out: LttngFields | undefined): number {
  const len = s.length;
  let p = i + 1;
  for (;;) {
    while (s.charCodeAt(p) === 32) p++;
    if (p >= len) return -1;
    if (s.charCodeAt(p) === 125) return p;
    const eq = s.indexOf(' = ', p);
    if (eq <= p || s.indexOf(' ', p) !== eq) return -1; // a name has no spaces
    const v = eq + 3;
    const c = s.charCodeAt(v);
    let j: number;
    if (c === 34) j = skipString(s, v);
    else if (c === 123 || c === 91 || c === 40) j = skipNested(s, v);
    else {
      j = v;
      for (let d = c; j < len && d !== 44 && d !== 32 && d !== 125; d = s.charCodeAt(++j));
      if (j === v) return -1;
    }
    if (j < 0) return -1;
    if (out !== undefined) {
      out.names.push(s.slice(p, eq));
      out.values.push(s.slice(v, j));
    }
    while (s.charCodeAt(j) === 32) j++;
    const d = s.charCodeAt(j);
    if (d === 125) return j;
    if (d !== 44) return -1;
    p = j + 1;
  }
}

// ---------------------------------------------------------------------------------------
// One line → record.

export type LttngEventKind = 'entry' | 'exit' | 'other';

export interface LttngRecord {
  /** ms since the epoch */
  ts: number;
  /** trace host name (env.hostname), when babeltrace2 prints it */
  host?: string;
  /** full event name: "syscall_exit_recvfrom", "sched_switch" */
  event: string;
  kind: LttngEventKind;
  /** kernel call name for syscall events ("recvfrom", "fstat" for newfstat); "" otherwise */
  call: string;
  /** compat_syscall_* (32-bit task on a 64-bit kernel) */
  compat: boolean;
  /** context fields; 0 / undefined when the trace lacks them */
  pid: number;
  tid: number;
  vpid?: number;
  vtid?: number;
  comm?: string;
  fields: LttngFields;
}

export interface LttngLineError {
  /** counter it is counted under */
  error: 'malformed' | 'needsClockSeconds';
  message: string;
}

export interface LttngClockOptions {
  /**
   * For traces printed without --clock-seconds ("[10:06:14.265765987]", time of day only):
   * ms since the epoch of midnight of the trace's first day, in the time zone babeltrace2
   * printed in. Without it such lines are refused (`needsClockSeconds`).
   */
  baseDateMs?: number;
}

/** divisor turning an n-digit fraction of a second into ms: 10^(n-3) */
const FRACTION_DIV = [1, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];

/** digits s[i..e) as an integer, or -1 */
function digits(s: string, i: number, e: number): number {
  if (e <= i) return -1;
  let v = 0;
  for (; i < e; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** ms of a fraction s[i..e) of a second ("265765987") */
function fractionMs(s: string, i: number, e: number): number {
  const n = e - i;
  if (n === 0) return 0;
  const v = digits(s, i, e);
  if (v < 0 || n > 9) return -1;
  return v / FRACTION_DIV[n];
}

/** Time stamp between '[' and s[close] === ']': ms since the epoch, or an error. */
function parseTime(s: string, close: number, clock: LttngClockOptions | undefined): number | LttngLineError {
  if (s.charCodeAt(3) !== 58 /* [HH: */ && s.charCodeAt(5) !== 45 /* [YYYY- */) {
    // [1666346774.265765987] — or [00000004467854961690] from --clock-cycles
    let j = 1;
    let sec = 0;
    for (let c = s.charCodeAt(j) - 48; c >= 0 && c <= 9; c = s.charCodeAt(++j) - 48) sec = sec * 10 + c;
    if (j === close && j > 1) return NEEDS_SECONDS_CYCLES;
    if (j === 1 || s.charCodeAt(j) !== 46 /* . */) return MALFORMED_TIME;
    const frac = fractionMs(s, j + 1, close);
    if (frac < 0) return MALFORMED_TIME;
    return sec * 1000 + frac;
  }
  // [HH:MM:SS.ns] or, with --clock-date, [YYYY-MM-DD HH:MM:SS.ns]
  const dot = s.lastIndexOf('.', close);
  let dayMs: number | undefined;
  let t = 1;
  if (s.charCodeAt(5) === 45 && s.charCodeAt(11) === 32) {
    const y = digits(s, 1, 5);
    const mo = digits(s, 6, 8);
    const d = digits(s, 9, 11);
    if (y < 0 || mo < 1 || d < 1) return MALFORMED_TIME;
    // taken as UTC: run babeltrace2 with --clock-gmt (or TZ=UTC) when using --clock-date
    dayMs = Date.UTC(y, mo - 1, d);
    t = 12;
  }
  if (dot < 0 || s.charCodeAt(t + 2) !== 58 || s.charCodeAt(t + 5) !== 58 || dot !== t + 8) return MALFORMED_TIME;
  const h = digits(s, t, t + 2);
  const m = digits(s, t + 3, t + 5);
  const sec = digits(s, t + 6, t + 8);
  const frac = fractionMs(s, dot + 1, close);
  if (h < 0 || m < 0 || sec < 0 || frac < 0) return MALFORMED_TIME;
  if (dayMs === undefined) {
    if (clock?.baseDateMs === undefined) return NEEDS_SECONDS_TOD;
    dayMs = clock.baseDateMs;
  }
  return dayMs + (h * 3600 + m * 60 + sec) * 1000 + frac;
}

const MALFORMED_TIME: LttngLineError = { error: 'malformed', message: 'bad time stamp' };
const NEEDS_SECONDS_TOD: LttngLineError = {
  error: 'needsClockSeconds',
  message:
    'time stamps are time of day only: print the trace with `babeltrace2 --clock-seconds`, or give the trace date (baseDateMs)',
};
const NEEDS_SECONDS_CYCLES: LttngLineError = {
  error: 'needsClockSeconds',
  message: 'time stamps are clock cycles (--clock-cycles): print the trace with `babeltrace2 --clock-seconds`',
};

interface Header {
  ts: number;
  host?: string;
  event: string;
  /** index of the first '{' after "name: ", or -1 when the event prints no fields */
  body: number;
}

function parseHeader(s: string, clock: LttngClockOptions | undefined): Header | LttngLineError {
  if (s.charCodeAt(0) !== 91 /* [ */) return { error: 'malformed', message: 'line does not start with a [time stamp]' };
  const close = s.indexOf(']', 1);
  if (close < 0) return { error: 'malformed', message: 'unterminated time stamp' };
  const ts = parseTime(s, close, clock);
  if (typeof ts !== 'number') return ts;
  let p = close + 1;
  while (s.charCodeAt(p) === 32) p++;
  if (s.charCodeAt(p) === 40 /* ( delta */) {
    const e = s.indexOf(')', p);
    if (e < 0) return { error: 'malformed', message: 'unterminated time delta' };
    p = e + 1;
    while (s.charCodeAt(p) === 32) p++;
  }
  // "[host ]name: {" — names may contain ':' (UST "provider:event") but never ": "
  let colon = s.indexOf(': {', p);
  let body = colon + 2;
  if (colon < 0) {
    if (s.charCodeAt(s.length - 1) !== 58) return { error: 'malformed', message: 'no event name' };
    colon = s.length - 1;
    body = -1;
  }
  const sp = s.lastIndexOf(' ', colon);
  const nameStart = sp < p ? p : sp + 1;
  if (nameStart >= colon) return { error: 'malformed', message: 'no event name' };
  let host: string | undefined;
  if (nameStart > p) {
    // the same host on every line: reuse the string rather than slicing it each time
    host = lastHost;
    if (nameStart - 1 - p !== host.length || !s.startsWith(host, p)) host = lastHost = s.slice(p, nameStart - 1);
  }
  return { ts, host, event: s.slice(nameStart, colon), body };
}
let lastHost = '';
let lastComm = '';

const ENTRY = 'syscall_entry_';
const EXIT = 'syscall_exit_';
const C_ENTRY = 'compat_syscall_entry_';
const C_EXIT = 'compat_syscall_exit_';

/** LTTng names the events after the kernel's sys_* functions; the project uses call names. */
const RENAMES: ReadonlyMap<string, string> = new Map([
  ['newfstat', 'fstat'],
  ['newstat', 'stat'],
  ['newlstat', 'lstat'],
  ['newuname', 'uname'],
  ['mmap_pgoff', 'mmap2'], // 32-bit mmap2(2): offset in pages, not the 64-bit mmap
  ['old_mmap', 'mmap'], // 32-bit mmap(2) through a struct pointer
]);

interface EventClass {
  kind: LttngEventKind;
  call: string;
  compat: boolean;
  /** a syscall event of a call in TRACED_CALLS */
  traced: boolean;
}

/** A trace has a few hundred distinct event names: classify each once. */
const CLASSES = new Map<string, EventClass>();

function classify(event: string): EventClass {
  const known = CLASSES.get(event);
  if (known !== undefined) return known;
  let kind: LttngEventKind = 'other';
  let call = '';
  let compat = false;
  if (event.startsWith(ENTRY)) {
    kind = 'entry';
    call = event.slice(ENTRY.length);
  } else if (event.startsWith(EXIT)) {
    kind = 'exit';
    call = event.slice(EXIT.length);
  } else if (event.startsWith(C_ENTRY)) {
    kind = 'entry';
    call = event.slice(C_ENTRY.length);
    compat = true;
  } else if (event.startsWith(C_EXIT)) {
    kind = 'exit';
    call = event.slice(C_EXIT.length);
    compat = true;
  }
  if (call !== '') call = RENAMES.get(call) ?? call;
  const c: EventClass = { kind, call, compat, traced: kind !== 'other' && TRACED.has(call) };
  if (CLASSES.size < 10_000) CLASSES.set(event, c); // bounded against garbage names
  return c;
}

type Ids = { pid: number; tid: number; vpid?: number; vtid?: number; comm?: string; fields: LttngFields };

/**
 * Fast path for the usual context group "{ procname = "nginx", pid = 1, vpid = 10, tid = 1,
 * vtid = 10, pid_ns = … }" (it is on every line): one left-to-right pass, no field arrays.
 * Returns the index of its '}', -1 for a truncated group, -2 when the group has another
 * shape or no tid (the caller then parses it generically).
 */
function parseContext(s: string, i: number, rec: Ids): number {
  let j = i + 1;
  if (s.startsWith(' procname = "', j)) {
    const q = skipString(s, i + 13);
    if (q < 0) return -1;
    // consecutive lines mostly name the same thread: reuse the string rather than slice again
    if (q - i - 15 === lastComm.length && s.startsWith(lastComm, i + 14)) rec.comm = lastComm;
    else {
      const raw = s.slice(i + 14, q - 1);
      if (raw.indexOf('\\') < 0) rec.comm = lastComm = raw; // no escapes: the text is the name
      else rec.comm = parseString(s.slice(i + 13, q));
    }
    j = q;
  }
  let tid = -1;
  for (;;) {
    for (let c = s.charCodeAt(j); c === 32 || c === 44; c = s.charCodeAt(++j));
    if (j >= s.length) return -1;
    if (s.charCodeAt(j) === 125) {
      if (tid < 0) return -2;
      rec.tid = tid;
      return j;
    }
    const eq = s.indexOf(' = ', j);
    if (eq < 0) return -1;
    let k = eq + 3;
    const neg = s.charCodeAt(k) === 45;
    if (neg) k++;
    let v = 0;
    const k0 = k;
    for (let c = s.charCodeAt(k) - 48; c >= 0 && c <= 9; c = s.charCodeAt(++k) - 48) v = v * 10 + c;
    const after = s.charCodeAt(k);
    if (k === k0 || (after !== 44 && after !== 32 && after !== 125 && k < s.length)) return -2; // not a plain integer
    if (neg) v = -v;
    switch (eq - j) {
      case 3:
        if (s.startsWith('tid', j)) tid = v;
        else if (s.startsWith('pid', j)) rec.pid = v;
        break;
      case 4:
        if (s.startsWith('vtid', j)) rec.vtid = v;
        else if (s.startsWith('vpid', j)) rec.vpid = v;
        break;
    }
    j = k;
  }
}

/** Brace groups after the event name → context (the group holding `tid`) and payload fields. */
function parseBody(s: string, body: number, rec: Ids): string | undefined {
  let ctxFound = false;
  let i = body;
  const len = s.length;
  while (i < len) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 44) {
      i++;
      continue;
    }
    if (c !== 123) return 'unexpected text between field groups';
    let e: number;
    if (ctxFound) {
      if (rec.fields !== EMPTY_FIELDS) return 'more field groups than expected';
      const f = new LttngFields();
      e = parseGroup(s, i, f);
      rec.fields = f;
    } else if (s.startsWith('{ cpu_id = ', i)) {
      e = s.indexOf(' }', i) + 1; // stream packet context: nothing we need
    } else {
      e = parseContext(s, i, rec);
      if (e >= 0) ctxFound = true;
      else if (e === -2) {
        const f = new LttngFields();
        e = parseGroup(s, i, f);
        const tid = f.num('tid');
        if (tid !== undefined) {
          ctxFound = true;
          rec.tid = tid;
          rec.pid = f.num('pid') ?? 0;
          rec.vpid = f.num('vpid');
          rec.vtid = f.num('vtid');
          rec.comm = f.str('procname');
        }
      }
    }
    if (e <= 0) return 'unreadable or truncated field group';
    i = e + 1;
  }
  if (!ctxFound)
    return 'no tid in the event context: record with `lttng add-context -k -t procname -t pid -t tid` (vpid, vtid optional)';
  if (Number.isNaN(rec.tid) || Number.isNaN(rec.pid)) return 'bad pid/tid';
  return undefined;
}

/**
 * Parse one babeltrace2 text line. Pure: time-of-day stamps use clock.baseDateMs as given
 * (LttngParser handles the midnight roll-over).
 */
export function parseLttngLine(line: string, clock?: LttngClockOptions): LttngRecord | LttngLineError {
  const h = parseHeader(line, clock);
  if ('error' in h) return h;
  const { kind, call, compat } = classify(h.event);
  const rec: LttngRecord = { ts: h.ts, host: h.host, event: h.event, kind, call, compat, pid: 0, tid: 0, fields: EMPTY_FIELDS };
  if (h.body < 0) return { error: 'malformed', message: 'no context fields (procname, pid, tid)' };
  const err = parseBody(line, h.body, rec);
  if (err !== undefined) return { error: 'malformed', message: err };
  return rec;
}

// ---------------------------------------------------------------------------------------
// Field decoding: errno names and flag texts as strace prints them (kernel-decode.ts).

function named(name: (v: number) => string, v: number | undefined): string | undefined {
  return v === undefined || Number.isNaN(v) ? undefined : name(v);
}

/** LTTng prints clone flags as a hex integer, or (experimental bitwise enums) as a struct */
function cloneFlags(f: LttngFields): string | undefined {
  const raw = f.raw('flags') ?? f.raw('clone_flags');
  if (raw === undefined) return undefined;
  if (raw.charCodeAt(0) === 123 /* { */) {
    const sub = new LttngFields();
    if (parseGroup(raw, 0, sub) < 0) return undefined;
    const sig = sub.num('exit_signal') ?? 0;
    const opts = sub.num('options') ?? 0;
    return cloneFlagsText(opts * 256 + sig);
  }
  const v = parseNumber(raw);
  return Number.isNaN(v) ? undefined : cloneFlagsText(v);
}

/** family/port/v4addr/v6addr as LTTng's accept/connect instrumentation prints them */
function sockAddr(f: LttngFields, portField: 'sport' | 'dport'): SockAddr | undefined {
  const family = f.num('family');
  const port = f.num(portField) ?? 0;
  if (family === 2) {
    const a = f.arr('v4addr');
    if (a === undefined || a.length !== 4) return undefined;
    return { ip: a.join('.'), port };
  }
  if (family === 10) {
    const a = f.arr('v6addr');
    if (a === undefined || a.length !== 8) return undefined;
    return { ip: ipv6Text(a), port };
  }
  return undefined; // AF_UNIX and others: LTTng gives only the user pointer
}

// ---------------------------------------------------------------------------------------
// Entry + exit → SyscallEvent.

const TRACED: ReadonlySet<string> = new Set(TRACED_CALLS);
/** calls that never return to the caller: the event is made at the entry */
const NO_RETURN: ReadonlySet<string> = new Set(['exit', 'exit_group']);
/** calls whose child also "returns" from them, with ret 0 and no entry on its tid */
const FORKS: ReadonlySet<string> = new Set(['clone', 'clone3', 'fork', 'vfork']);
/** calls whose entry has no payload */
const NO_ARGS: ReadonlySet<string> = new Set(['fork', 'vfork']);
/** recvmmsg/sendmmsg return a message count; LTTng gives no msg_len, so bytes are unknown */
const MMSG: ReadonlySet<string> = new Set(['recvmmsg', 'sendmmsg']);

/** pipe/pipe2/socketpair: fds, and fd/fd2 = the two ends (the strace collector's convention) */
function setEnds(ev: SyscallEvent, p: number[]): void {
  ev.fds = [p[0], p[1]];
  ev.fd = p[0];
  ev.fd2 = p[1];
}

function setIf<K extends keyof SyscallEvent>(ev: SyscallEvent, k: K, v: SyscallEvent[K] | undefined): void {
  if (v !== undefined && !(typeof v === 'number' && Number.isNaN(v))) ev[k] = v;
}

/** a = entry payload (arguments), x = exit payload (ret and output arguments) */
function fillArgs(ev: SyscallEvent, call: string, a: LttngFields, x: LttngFields): void {
  switch (call) {
    case 'sendfile':
    case 'sendfile64':
      setIf(ev, 'fd', a.int('out_fd'));
      setIf(ev, 'fd2', a.int('in_fd'));
      return;
    case 'splice':
    case 'copy_file_range':
      setIf(ev, 'fd', a.int('fd_out'));
      setIf(ev, 'fd2', a.int('fd_in'));
      return;
    case 'tee':
      setIf(ev, 'fd', a.int('fdout'));
      setIf(ev, 'fd2', a.int('fdin'));
      return;
    case 'open':
    case 'openat':
    case 'openat2': {
      const dfd = a.int('dfd');
      if (dfd !== undefined && dfd >= 0) ev.fd = dfd; // AT_FDCWD (-100) is no fd
      setIf(ev, 'path', a.str('filename'));
      const fl = a.num('flags');
      if (fl !== undefined && !Number.isNaN(fl)) ev.flags = openFlagsText(fl);
      return;
    }
    case 'creat':
      setIf(ev, 'path', a.str('pathname'));
      ev.flags = 'O_WRONLY|O_CREAT|O_TRUNC';
      return;
    case 'close_range': // [fd, max_fd]
      setIf(ev, 'fd', a.int('fd'));
      setIf(ev, 'fd2', a.int('max_fd'));
      return;
    case 'socket':
    case 'socketpair': {
      const fam = a.num('family');
      const type = a.num('type');
      if (fam !== undefined && type !== undefined) ev.flags = socketFlagsText(fam, type);
      const pair = x.arr('socket');
      if (pair?.length === 2 && ev.ret >= 0) setEnds(ev, pair);
      return;
    }
    case 'connect':
      setIf(ev, 'fd', a.int('fd'));
      setIf(ev, 'addr', sockAddr(a, 'dport'));
      return;
    case 'accept':
    case 'accept4': {
      setIf(ev, 'fd', a.int('fd'));
      setIf(ev, 'addr', sockAddr(x, 'sport')); // the peer: its port is "sport" in LTTng
      const fl = a.num('flags');
      if (fl !== undefined && !Number.isNaN(fl)) ev.flags = fdFlagsText(fl, 'SOCK');
      return;
    }
    case 'pipe':
    case 'pipe2': {
      const p = x.arr('fildes');
      if (p?.length === 2 && ev.ret >= 0) setEnds(ev, p);
      const fl = a.num('flags');
      if (fl !== undefined && !Number.isNaN(fl)) ev.flags = fdFlagsText(fl, 'O');
      return;
    }
    case 'dup': // fd = old, fd2 = new (as for dup2/dup3)
      setIf(ev, 'fd', a.int('fildes'));
      if (ev.ret >= 0) ev.fd2 = ev.ret;
      return;
    case 'dup2':
    case 'dup3': {
      setIf(ev, 'fd', a.int('oldfd'));
      setIf(ev, 'fd2', a.int('newfd'));
      const fl = a.num('flags');
      if (fl !== undefined && !Number.isNaN(fl)) ev.flags = fdFlagsText(fl, 'O');
      return;
    }
    case 'fcntl':
      setIf(ev, 'fd', a.int('fd'));
      setIf(ev, 'flags', named(fcntlName, a.num('cmd')));
      if (ev.ret >= 0 && ev.flags?.startsWith('F_DUPFD')) ev.fd2 = ev.ret; // a dup
      return;
    case 'eventfd2': {
      const fl = a.num('flags');
      if (fl !== undefined && !Number.isNaN(fl)) ev.flags = fdFlagsText(fl, 'EFD');
      return;
    }
    case 'clone':
      setIf(ev, 'flags', cloneFlags(a));
      return;
    case 'execve':
      setIf(ev, 'path', a.str('filename'));
      return;
    case 'execveat': {
      const dfd = a.int('fd');
      if (dfd !== undefined && dfd >= 0) ev.fd = dfd;
      setIf(ev, 'path', a.str('filename'));
      const fl = a.num('flags');
      if (fl !== undefined && !Number.isNaN(fl)) ev.flags = atFlagsText(fl);
      return;
    }
    case 'prctl': // PR_SET_NAME's name is a user pointer LTTng does not copy
      setIf(ev, 'flags', named(prctlName, a.num('option')));
      return;
    case 'mmap':
    case 'mmap2': {
      setIf(ev, 'len', a.num('len'));
      const fl = a.num('flags');
      if (fl !== undefined && !Number.isNaN(fl)) {
        ev.flags = mmapFlagsText(fl);
        const fd = a.int('fd');
        if (!(fl & 0x20) && fd !== undefined && fd >= 0) ev.fd = fd; // file mapping
      }
      return;
    }
    case 'munmap':
      setIf(ev, 'len', a.num('len'));
      return;
    case 'madvise':
      setIf(ev, 'len', a.num('len_in') ?? a.num('len'));
      setIf(ev, 'flags', named(madviseName, a.num('behavior')));
      return;
    case 'mremap': {
      setIf(ev, 'len', a.num('new_len')); // the size the mapping has afterwards
      const fl = a.num('flags');
      if (fl !== undefined && !Number.isNaN(fl)) ev.flags = mremapFlagsText(fl);
      return;
    }
    default:
      // read/write/recv/send families, close, bind, listen…: the fd argument
      setIf(ev, 'fd', a.int('fd'));
  }
}

// ---------------------------------------------------------------------------------------
// The pairing parser.

export interface LttngParserOptions extends LttngClockOptions {
  /** an exit whose entry was not seen: 'emit' an event without the entry's arguments (default) or 'drop' it */
  exitWithoutEntry?: 'emit' | 'drop';
  /** problems reported to the sink per kind; more are only counted (default 100) */
  maxProblemsPerKind?: number;
}

interface Pending {
  rec: LttngRecord;
  line: number;
  text: string;
}

/** counters as a class: a fixed shape keeps the per-line increments fast */
class Counters {
  lines = 0;
  events = 0;
  entries = 0;
  exits = 0;
  paired = 0;
  exitWithoutEntry = 0;
  childReturn = 0;
  noReturn = 0;
  entryReplaced = 0;
  mismatchedExit = 0;
  unfinishedAtEnd = 0;
  ignoredCall = 0;
  otherEvent = 0;
  malformed = 0;
  needsClockSeconds = 0;
  failed = 0;
  bytesUnknown = 0;
}

const DAY_MS = 86_400_000;

export class LttngParser {
  private readonly c = new Counters();
  /** open entries per host, per tid */
  private readonly open = new Map<string, Map<number, Pending>>();
  private lastHost: string | undefined = '\u0000';
  private lastOpen: Map<number, Pending> | undefined;
  private lineNo = 0;
  private readonly problems: ProblemReporter;
  private readonly emitOrphans: boolean;
  private readonly clock: LttngClockOptions;
  /** time-of-day stamps: days added after passing midnight */
  private dayOffset = 0;
  private lastTs = -Infinity;

  constructor(
    sink?: ProblemSink,
    options: LttngParserOptions = {},
  ) {
    this.problems = new ProblemReporter(sink, options.maxProblemsPerKind ?? 100);
    this.emitOrphans = (options.exitWithoutEntry ?? 'emit') === 'emit';
    this.clock = { baseDateMs: options.baseDateMs };
  }

  /** Feed one line (without its newline); returns the event it completes, if any. */
  push(line: string): SyscallEvent | undefined {
    const n = ++this.lineNo;
    if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1); // CRLF files
    if (line.length === 0) return undefined;
    this.c.lines++;
    const h = parseHeader(line, this.clock);
    if ('error' in h) return this.bad(h, n, line);
    const { kind, call, compat, traced } = classify(h.event);
    // cheap exits first: most lines of a full kernel trace are of no interest
    if (!traced) {
      if (h.body >= 0 && line.charCodeAt(line.length - 1) !== 125 /* } */)
        return this.bad({ error: 'malformed', message: 'truncated line' }, n, line);
      if (kind === 'other') this.c.otherEvent++;
      else this.c.ignoredCall++;
      return undefined;
    }
    if (h.body < 0) return this.bad({ error: 'malformed', message: 'no context fields (procname, pid, tid)' }, n, line);
    let ts = h.ts;
    if (this.clock.baseDateMs !== undefined && line.charCodeAt(3) === 58 /* [HH: */) {
      // time of day only: passing midnight shows as a jump back of most of a day
      ts += this.dayOffset;
      if (ts < this.lastTs - DAY_MS / 2) {
        this.dayOffset += DAY_MS;
        ts += DAY_MS;
      }
      this.lastTs = ts;
    }
    const rec: LttngRecord = { ts, host: h.host, event: h.event, kind, call, compat, pid: 0, tid: 0, fields: EMPTY_FIELDS };
    const err = parseBody(line, h.body, rec);
    if (err !== undefined) return this.bad({ error: 'malformed', message: err }, n, line);

    const open = this.openFor(h.host);
    if (kind === 'entry') {
      if (rec.fields === EMPTY_FIELDS && !NO_ARGS.has(call))
        return this.bad({ error: 'malformed', message: `${h.event} without arguments (truncated line?)` }, n, line);
      this.c.entries++;
      const prev = open.get(rec.tid);
      if (prev !== undefined) {
        this.c.entryReplaced++;
        this.problems.report('entryReplaced', `${prev.rec.event} of tid ${rec.tid} (line ${prev.line}) never exited before ${h.event}`, n, line);
      }
      if (NO_RETURN.has(call)) {
        if (prev !== undefined) open.delete(rec.tid);
        this.c.noReturn++;
        return this.emit(rec, rec.fields, EMPTY_FIELDS);
      }
      open.set(rec.tid, { rec, line: n, text: line });
      return undefined;
    }

    // exit
    const ret = rec.fields.num('ret');
    if (ret === undefined || Number.isNaN(ret))
      return this.bad({ error: 'malformed', message: `${h.event} without ret (truncated line?)` }, n, line);
    this.c.exits++;
    const p = open.get(rec.tid);
    if (p !== undefined) {
      open.delete(rec.tid);
      if (p.rec.call === call) {
        this.c.paired++;
        return this.emit(rec, p.rec.fields, rec.fields);
      }
      this.c.mismatchedExit++;
      this.problems.report('mismatchedExit', `${h.event} of tid ${rec.tid} while ${p.rec.event} (line ${p.line}) was open`, n, line);
    }
    if (ret === 0 && FORKS.has(call)) {
      this.c.childReturn++; // the new thread returning from clone/fork
      return undefined;
    }
    this.c.exitWithoutEntry++;
    this.problems.report('exitWithoutEntry', `${h.event} of tid ${rec.tid} without its entry (trace began mid-call?)`, n, line);
    return this.emitOrphans ? this.emit(rec, EMPTY_FIELDS, rec.fields) : undefined;
  }

  /** End of trace: entries never exited are reported and dropped. Returns their number. */
  finish(): number {
    let count = 0;
    for (const open of this.open.values()) {
      for (const p of open.values()) {
        count++;
        this.problems.report('unfinishedAtEnd', `${p.rec.event} of tid ${p.rec.tid} did not exit before the end of the trace`, p.line, p.text);
      }
      open.clear();
    }
    this.c.unfinishedAtEnd += count;
    return count;
  }

  counters(): CollectorCounters {
    return { ...this.c };
  }

  private openFor(host: string | undefined): Map<number, Pending> {
    if (host === this.lastHost && this.lastOpen !== undefined) return this.lastOpen;
    const key = host ?? '';
    let m = this.open.get(key);
    if (m === undefined) {
      m = new Map();
      this.open.set(key, m);
    }
    this.lastHost = host;
    this.lastOpen = m;
    return m;
  }

  /** rec: the exit (or the entry of a call that never returns); a, x: entry and exit payloads */
  private emit(rec: LttngRecord, a: LttngFields, x: LttngFields): SyscallEvent {
    const call = rec.call;
    let ret = rec.kind === 'exit' ? (x.num('ret') as number) : 0;
    let err: string | undefined;
    if (ret < 0 && ret >= -4095) {
      err = errnoName(-ret);
      ret = -1;
      this.c.failed++;
    }
    let bytes = 0;
    if (ret > 0 && dataDirection(call) !== undefined) {
      if (MMSG.has(call)) this.c.bytesUnknown++;
      else bytes = ret;
    }
    const ev: SyscallEvent = { ts: rec.ts, pid: rec.pid, tid: rec.tid, call, ret, bytes };
    if (rec.comm !== undefined) ev.comm = rec.comm;
    if (err !== undefined) ev.err = err;
    fillArgs(ev, call, a, x);
    this.c.events++;
    return ev;
  }

  private bad(e: LttngLineError, line: number, text: string): undefined {
    this.c[e.error]++;
    // a missing --clock-seconds concerns every line: say it once
    if (e.error === 'needsClockSeconds' && this.c.needsClockSeconds > 1) return undefined;
    this.problems.report(e.error, e.message, line, text);
    return undefined;
  }

}
