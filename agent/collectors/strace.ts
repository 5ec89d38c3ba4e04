/**
 * Live strace collector: runs `strace -f -ttt -T -y -yy` on a command, on running processes, or
 * on every process of a container/cgroup, and turns its output into SyscallEvent batches.
 *
 * Decisions:
 * - strace writes its trace into a FIFO in a private temp dir (`-o FIFO`), not into one of
 *   its own stdio fds: an inherited pipe would show up in the traced command as an extra fd
 *   (shifting its fd numbers) and would keep our read end from seeing EOF while any traced
 *   process lives. strace opens -o files close-on-exec, so traced programs never see it.
 *   We hold a write end of the FIFO ourselves until strace exits, so the reader neither sees
 *   a premature EOF before strace opens it nor hangs if strace dies before opening it.
 * - `-s 128` by default, not `-s 0`: -s limits arrays as well as strings, so -s 0 loses pipe
 *   fds ("pipe2([...])"), msg_len ("sendmmsg(…, [...], …)"), thread names
 *   ("prctl(PR_SET_NAME, \"\"...)") and argv ("execve(…, [...], …)"). Thread names need 15,
 *   but argv elements (script paths: the role of an interpreter) need much more, and the
 *   parser drops a cut argv rather than pass a wrong one. The price is up to 128 bytes of
 *   each data buffer in strace's text: the parser skips them, a rawOut copy keeps them
 *   (lower `stringLimit` where payload must not reach the disk).
 * - The trace list is filtered to the calls this strace knows (`strace -e trace=LIST -V`
 *   validates the list without tracing anything), once per strace binary and list.
 * - Not `-qq`: it would drop the "+++ exited" lines the parser turns into exit events. In
 *   attach mode not even `-q`, because "Process N attached" is how we know attaching worked.
 * - Not `-e signal=none`: it also drops "+++ killed by SIG +++".
 * - `--seccomp-bpf` (stop only on traced calls: much cheaper) is opt-in: with it, processes
 *   strace leaves behind (children of the command still running when tracing stops) get
 *   ENOSYS from every traced call. Only for commands (strace ignores it with -p).
 * - strace exits with its command's status (or re-raises its signal): that is the command's
 *   exit status.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, constants as fsc, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TRACED_CALLS } from '../../shared/event.js';
import type { SyscallEvent } from '../../shared/event.js';
import { type Collector, type CollectorCounters, type CollectorProblem, CollectorUnavailable, type ProblemSink } from './collector.js';
import { StraceLineFeeder, StraceParser } from './strace-parser.js';

export type StraceTarget =
  /** run a command under strace; the collector ends when it (and its children) exit */
  | { command: string[]; cwd?: string; env?: NodeJS.ProcessEnv }
  /** attach to running processes (all their threads) */
  | { pids: number[] }
  /** attach to every process of a cgroup: a cgroup path ("/system.slice/x.service", or a
   * directory under /sys/fs/cgroup) or a container id (full or ≥ 12-char prefix) */
  | { cgroup: string };

export interface StraceCollectorOptions {
  target: StraceTarget;
  /** strace binary (default "strace", looked up in PATH) */
  stracePath?: string;
  /** calls to trace (default TRACED_CALLS); those this strace does not know are dropped */
  calls?: readonly string[];
  /** strace -s: string and array length shown (default 128, see above) */
  stringLimit?: number;
  /** keep a copy of strace's raw text here, to replay it later with StraceFileCollector */
  rawOut?: string;
  onProblem?: ProblemSink;
  /** the traced command's stdin/stdout/stderr: passed through (default) or discarded */
  commandOutput?: 'inherit' | 'ignore';
  /** how long start() waits for strace to attach or the command to start (default 5000 ms) */
  startTimeoutMs?: number;
  /** where cgroup hierarchies are mounted (default /sys/fs/cgroup) */
  cgroupRoot?: string;
  /** strace --seccomp-bpf for commands (see above; default false) */
  seccompBpf?: boolean;
  /** more strace options, placed before the target */
  extraArgs?: string[];
}

export interface StraceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const NAME = 'strace';

export class StraceCollector implements Collector {
  readonly name = NAME;
  private readonly parser: StraceParser;
  private readonly sink: ProblemSink | undefined;
  private child: ChildProcess | undefined;
  private reader: net.Socket | undefined;
  private keepFd = -1;
  private dir: string | undefined;
  private raw: WriteStream | undefined;
  private startP: Promise<void> | undefined;
  private exitP: Promise<StraceExit> | undefined;
  private status: StraceExit | undefined;
  private spawnError: Error | undefined;
  private iterated = false;
  private gotData = false;
  private pids: number[] = [];
  private readonly attached = new Set<number>();
  private readonly attachFailed = new Map<number, string>();
  private onAttach: (() => void) | undefined;
  /** strace's own messages other than attach/detach notes (last ones kept) */
  private readonly straceErrors: string[] = [];
  private readonly c = { bytesRead: 0, chunks: 0, attached: 0, attachFailed: 0, straceErrors: 0 };

  constructor(private readonly opts: StraceCollectorOptions) {
    this.sink = opts.onProblem;
    this.parser = new StraceParser(opts.onProblem, { calls: opts.calls ?? TRACED_CALLS });
  }

  counters(): CollectorCounters {
    return { ...this.parser.counters(), ...this.c };
  }

  /** pids strace was asked to attach to (pid and cgroup targets) */
  tracedPids(): readonly number[] {
    return this.pids;
  }

  /** strace's exit status, which is its command's; undefined while it runs */
  commandExit(): StraceExit | undefined {
    return this.status;
  }

  /** the command's exit code (128 + signal number if a signal ended it); undefined while running */
  exitCode(): number | undefined {
    const s = this.status;
    if (s === undefined) return undefined;
    if (s.code !== null) return s.code;
    const n = s.signal ? os.constants.signals[s.signal] : undefined;
    return n === undefined ? undefined : 128 + n;
  }

  /**
   * Starts strace and waits until it is tracing: attached to the pids (or some of them), or
   * the command has started. Rejects with CollectorUnavailable when it cannot trace at all.
   * events() calls it; call it yourself to learn early.
   */
  start(): Promise<void> {
    if (this.startP === undefined) {
      this.startP = this.doStart();
      // a failed start is reported to whoever awaits start() or events(); never unhandled
      this.startP.catch(() => this.cleanup().catch(() => undefined));
    }
    return this.startP;
  }

  async *events(): AsyncGenerator<SyscallEvent[]> {
    if (this.iterated) throw new Error('StraceCollector.events() can be iterated only once');
    this.iterated = true;
    await this.start();
    const feeder = new StraceLineFeeder(this.parser);
    let ended = false;
    try {
      for await (const chunk of readAvailable(this.reader!)) {
        this.c.chunks++;
        this.c.bytesRead += chunk.length;
        this.raw?.write(chunk, 'latin1');
        const out: SyscallEvent[] = [];
        feeder.push(chunk, out);
        if (out.length > 0) yield out;
      }
      const out: SyscallEvent[] = [];
      feeder.end(out);
      if (out.length > 0) yield out;
      ended = true;
      await this.exitP;
      if (this.spawnError) this.problem('straceError', `strace failed: ${this.spawnError.message}`);
      else if (this.straceErrors.length > 0) this.problem('straceError', `strace said: ${this.straceErrors.join('; ')}`);
    } finally {
      // the consumer stopped early (break/return): stop tracing, dropping what is left
      if (!ended) await this.halt(true);
      await this.cleanup();
    }
  }

  /** Detaches (SIGINT to strace; a command it started is ended too). Remaining lines still come out of events(). */
  async stop(): Promise<void> {
    if (this.startP === undefined) return;
    try {
      await this.startP;
    } catch {
      return;
    }
    await this.halt(!this.iterated);
    if (!this.iterated) await this.cleanup();
  }

  /** SIGINT to strace and wait for it; `discard`: nobody will read the rest of the trace */
  private async halt(discard: boolean): Promise<void> {
    const child = this.child;
    if (child === undefined || this.status !== undefined) return;
    child.kill('SIGINT');
    // strace may sit in a write to the full FIFO: with no reader left the write fails and
    // it can finish exiting (after it has ended the command and detached, on SIGINT)
    if (discard) this.reader?.destroy();
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.exitP;
    clearTimeout(kill);
  }

  private async doStart(): Promise<void> {
    const o = this.opts;
    const stracePath = o.stracePath ?? 'strace';
    const { known, unknown } = await straceKnownCalls(stracePath, o.calls ?? TRACED_CALLS);
    if (unknown.length > 0) this.problem('unknownToStrace', `this strace does not know ${unknown.join(', ')}: not traced`);
    if (known.length === 0) throw new CollectorUnavailable(NAME, 'strace knows none of the calls to trace');

    const t = o.target;
    const isCommand = 'command' in t;
    let targetArgs: string[];
    if ('command' in t) {
      if (t.command.length === 0) throw new CollectorUnavailable(NAME, 'empty command to trace');
      targetArgs = ['--', ...t.command];
    } else {
      const pids = 'pids' in t ? t.pids : (await cgroupPids(t.cgroup, o.cgroupRoot)).pids;
      for (const p of pids) if (!Number.isInteger(p) || p <= 0) throw new CollectorUnavailable(NAME, `not a pid: ${p}`);
      const mine = new Set([process.pid, process.ppid]); // tracing ourselves would deadlock
      this.pids = [...new Set(pids)].filter((p) => !mine.has(p));
      if (this.pids.length === 0) throw new CollectorUnavailable(NAME, 'no process to attach to');
      targetArgs = this.pids.flatMap((p) => ['-p', String(p)]);
    }

    this.dir = await mkdtemp(path.join(os.tmpdir(), 'distappguard-strace-'));
    const fifo = path.join(this.dir, 'trace');
    try {
      await run('mkfifo', ['-m', '600', fifo]);
    } catch (e) {
      throw new CollectorUnavailable(NAME, `cannot make a FIFO for strace's output (mkfifo): ${(e as Error).message}`);
    }
    // O_NONBLOCK: opening a FIFO's read end must not wait for a writer
    const rfd = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
    this.keepFd = openSync(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK);
    this.reader = new net.Socket({ fd: rfd, readable: true, writable: false });
    this.reader.setEncoding('latin1'); // strace writes ASCII; latin1 keeps every byte as it is
    if (o.rawOut !== undefined) {
      this.raw = createWriteStream(o.rawOut);
      this.raw.on('error', (e) => this.problem('rawOut', `cannot write ${o.rawOut}: ${e.message}`));
    }

    // -T: the time spent in each call, so a blocking receive is stamped when its bytes moved
    const args = ['-f', '-ttt', '-T', '-y', '-yy', '-s', String(o.stringLimit ?? 128), '-e', `trace=${known.join(',')}`, '-o', fifo];
    if (isCommand) {
      // -I2: with "-o FILE PROG" strace blocks fatal signals (-I3) and stop() could not end
      // it; -I2 takes SIGINT between calls, detaches, and ends the command the same way
      args.push('-q', '-I2');
      if (o.seccompBpf) args.push('--seccomp-bpf');
    }
    args.push(...(o.extraArgs ?? []), ...targetArgs);
    const pass = isCommand && o.commandOutput !== 'ignore';
    const child = spawn(stracePath, args, {
      stdio: [pass ? 'inherit' : 'ignore', pass ? 'inherit' : 'ignore', 'pipe'],
      cwd: 'cwd' in t ? t.cwd : undefined,
      env: 'env' in t ? t.env : undefined,
    });
    this.child = child;
    this.exitP = this.watchExit(child, pass);
    await this.ready(isCommand, o.startTimeoutMs ?? 5000);
  }

  /** Resolves once strace runs (attached / command started), rejects if it ended without tracing. */
  private ready(isCommand: boolean, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.onAttach = undefined;
        this.reader?.off('readable', onReadable);
        if (err) reject(err);
        else resolve();
      };
      // a slow attach (many threads) is not a failure: carry on after the timeout
      const timer = setTimeout(() => done(), timeoutMs);
      const onReadable = (): void => {
        if ((this.reader?.readableLength ?? 0) > 0) {
          this.gotData = true;
          done();
        }
      };
      if (isCommand) this.reader!.on('readable', onReadable);
      else {
        this.onAttach = () => {
          if (this.attached.size + this.attachFailed.size >= this.pids.length && this.attached.size > 0) done();
        };
      }
      void this.exitP!.then((st) => {
        if (this.gotData || (this.reader?.readableLength ?? 0) > 0) return done();
        // a command may fail on its own (its status is strace's): only strace's words or a
        // failed spawn say that strace could not trace; with pids, no attach at all does
        const failed = this.spawnError !== undefined || this.straceErrors.length > 0 || (!isCommand && this.attached.size === 0);
        done(failed ? this.unavailable(st) : undefined);
      });
    });
  }

  private unavailable(st: StraceExit): CollectorUnavailable {
    const e = this.spawnError as NodeJS.ErrnoException | undefined;
    const bin = this.opts.stracePath ?? 'strace';
    if (e?.code === 'ENOENT') return new CollectorUnavailable(NAME, `strace not found ("${bin}"): install strace or give its path`);
    if (e) return new CollectorUnavailable(NAME, `cannot run strace ("${bin}"): ${e.message}`);
    const msgs = [...this.straceErrors, ...[...this.attachFailed].map(([p, m]) => `attach to ${p}: ${m}`)];
    let text = msgs.length > 0 ? msgs.join('; ') : `strace exited with ${st.code ?? st.signal}`;
    if (/Operation not permitted/.test(text)) {
      text += ' — ptrace not permitted: run as root or with CAP_SYS_PTRACE, check kernel.yama.ptrace_scope, and that no other tracer (strace, gdb) is attached';
    }
    return new CollectorUnavailable(NAME, text);
  }

  private watchExit(child: ChildProcess, forwardStderr: boolean): Promise<StraceExit> {
    let stderrEnded: () => void = () => {};
    const stderrDone = new Promise<void>((r) => (stderrEnded = r));
    let tail = '';
    const stderr = child.stderr!;
    stderr.setEncoding('latin1');
    stderr.on('data', (chunk: string) => {
      const text = tail + chunk;
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        this.stderrLine(text.slice(start, nl), forwardStderr);
        start = nl + 1;
      }
      tail = text.slice(start);
    });
    stderr.on('end', () => {
      if (tail) this.stderrLine(tail, forwardStderr);
      stderrEnded();
    });
    stderr.on('error', () => stderrEnded());
    return new Promise<StraceExit>((resolve) => {
      let finished = false;
      const finish = async (st: StraceExit): Promise<void> => {
        if (finished) return;
        finished = true;
        // the FIFO's last writer besides strace: closing it lets the reader reach EOF
        this.closeKeep();
        // a traced daemon may hold the stderr pipe open: do not wait long for its end
        await Promise.race([stderrDone, delay(500)]);
        this.status = st;
        resolve(st);
      };
      child.on('error', (e) => {
        this.spawnError = e;
        void finish({ code: null, signal: null });
      });
      child.on('exit', (code, signal) => void finish({ code, signal }));
    });
  }

  private stderrLine(line: string, forward: boolean): void {
    if (line.startsWith('strace: ')) {
      const m = /^strace: Process (\d+) attached/.exec(line);
      if (m) {
        const pid = Number(m[1]);
        if (this.pids.includes(pid) && !this.attached.has(pid)) {
          this.attached.add(pid);
          this.c.attached++;
          this.onAttach?.();
        }
        return;
      }
      if (/^strace: Process \d+ (detached|suspended)/.test(line)) return;
      const a = /^strace: attach: ptrace\(PTRACE_[A-Z]+, (\d+)\): (.*)$/.exec(line);
      if (a) {
        const pid = Number(a[1]);
        this.attachFailed.set(pid, a[2]);
        this.c.attachFailed++;
        this.problem('attachFailed', `cannot attach to pid ${pid}: ${a[2]}`);
        this.onAttach?.();
        return;
      }
      this.c.straceErrors++;
      if (this.straceErrors.length < 20) this.straceErrors.push(line.slice(8));
      return;
    }
    // the traced command's own stderr (it inherits strace's)
    if (forward) process.stderr.write(line + '\n', 'latin1');
  }

  private closeKeep(): void {
    if (this.keepFd >= 0) {
      try {
        closeSync(this.keepFd);
      } catch {
        // already closed
      }
      this.keepFd = -1;
    }
  }

  private async cleanup(): Promise<void> {
    this.closeKeep();
    if (this.status === undefined && this.child !== undefined && this.exitP !== undefined) {
      // start failed half way: do not leave strace running
      this.child.kill('SIGKILL');
      await this.exitP;
    }
    this.reader?.destroy();
    if (this.raw !== undefined) {
      const raw = this.raw;
      this.raw = undefined;
      await new Promise<void>((r) => raw.end(() => r()));
    }
    if (this.dir !== undefined) {
      const d = this.dir;
      this.dir = undefined;
      await rm(d, { recursive: true, force: true });
    }
  }

  private problem(kind: string, message: string): void {
    const p: CollectorProblem = { kind, message };
    this.sink?.(p);
  }
}

// ---------------------------------------------------------------------------------------
// Which calls this strace knows.

export interface KnownCalls {
  known: string[];
  unknown: string[];
}

const knownCache = new Map<string, Promise<KnownCalls>>();

/**
 * Splits `calls` into those this strace accepts in -e trace= and those it rejects. strace
 * stops at the first unknown name, so drop it and ask again. Cached per binary and list.
 * Rejects with CollectorUnavailable when strace cannot be run.
 */
export function straceKnownCalls(stracePath: string, calls: readonly string[]): Promise<KnownCalls> {
  const key = `${stracePath}\u0000${calls.join(',')}`;
  let p = knownCache.get(key);
  if (p === undefined) {
    p = checkCalls(stracePath, calls);
    knownCache.set(key, p);
    p.catch(() => knownCache.delete(key)); // a missing strace may be installed later
  }
  return p;
}

async function checkCalls(stracePath: string, calls: readonly string[]): Promise<KnownCalls> {
  const known = [...calls];
  const unknown: string[] = [];
  while (known.length > 0) {
    // -V after -e: strace checks the list, prints its version and exits, tracing nothing
    const r = await runStatus(stracePath, ['-e', `trace=${known.join(',')}`, '-V']);
    if (r.error !== undefined) {
      if (r.error.code === 'ENOENT') throw new CollectorUnavailable(NAME, `strace not found ("${stracePath}"): install strace or give its path`);
      throw new CollectorUnavailable(NAME, `cannot run strace ("${stracePath}"): ${r.error.message}`);
    }
    if (r.code === 0) break;
    const m = /invalid system call '([^']+)'/.exec(r.stderr);
    const i = m ? known.indexOf(m[1]) : -1;
    if (i < 0) throw new CollectorUnavailable(NAME, `strace rejected the trace list: ${r.stderr.trim() || `exit ${r.code}`}`);
    unknown.push(known[i]);
    known.splice(i, 1);
  }
  return { known, unknown };
}

// ---------------------------------------------------------------------------------------
// Cgroups and containers → pids.

/** how container runtimes name a container's cgroup: "<prefix><id>.scope" or just "<id>" */
const RUNTIME_PREFIXES = ['docker-', 'cri-containerd-', 'crio-', 'libpod-', 'containerd-', 'podman-'];

function containerIdOfDir(name: string): string | undefined {
  if (name.includes('conmon')) return undefined; // podman's monitor, not the container
  let n = name.endsWith('.scope') ? name.slice(0, -6) : name;
  for (const p of RUNTIME_PREFIXES) {
    if (n.startsWith(p)) {
      n = n.slice(p.length);
      break;
    }
  }
  return n;
}

function matchesContainer(dirName: string, id: string): boolean {
  const n = containerIdOfDir(dirName);
  if (n === undefined) return false;
  if (n === id) return true;
  // short ids (docker ps shows 12 hex digits) name the full 64-digit id by prefix
  return id.length >= 12 && /^[0-9a-f]+$/.test(id) && /^[0-9a-f]{32,}$/.test(n) && n.startsWith(id);
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** the cgroup hierarchies under root: root itself (v2), or unified + the v1 controllers */
async function hierarchies(root: string): Promise<string[]> {
  if (await exists(path.join(root, 'cgroup.controllers'))) return [root];
  if (await exists(path.join(root, 'cgroup.procs'))) return [root]; // a v1 hierarchy given as root
  const out: string[] = [];
  const preferred = ['unified', 'pids', 'memory', 'systemd', 'cpu,cpuacct', 'cpu', 'cpuacct', 'freezer', 'devices', 'blkio', 'cpuset'];
  let names: string[] = [];
  try {
    names = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory() || d.isSymbolicLink()).map((d) => d.name);
  } catch {
    return out;
  }
  const ordered = [...preferred.filter((n) => names.includes(n)), ...names.filter((n) => !preferred.includes(n)).sort()];
  for (const n of ordered) if (await exists(path.join(root, n, 'cgroup.procs'))) out.push(path.join(root, n));
  return out;
}

/** directories named after the container, breadth first, within a hierarchy */
async function searchContainer(h: string, id: string): Promise<string[]> {
  const found: string[] = [];
  let level = [h];
  let visited = 0;
  for (let depth = 0; depth < 10 && level.length > 0 && visited < 200_000; depth++) {
    const next: string[] = [];
    for (const d of level) {
      let entries;
      try {
        entries = await readdir(d, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        visited++;
        const p = path.join(d, e.name);
        if (matchesContainer(e.name, id)) found.push(p);
        else next.push(p);
      }
    }
    if (found.length > 0) return found;
    level = next;
  }
  return found;
}

/**
 * Cgroup directories for a cgroup path or container id, one per hierarchy that has it
 * (v2 unified first). Throws CollectorUnavailable when nothing matches, or when a short id
 * matches several containers.
 */
export async function findCgroupDirs(spec: string, root = '/sys/fs/cgroup'): Promise<string[]> {
  const s = spec.trim();
  if (s.length === 0) throw new CollectorUnavailable(NAME, 'empty cgroup or container id');
  if (path.isAbsolute(s) && s.startsWith(root + '/') && (await exists(path.join(s, 'cgroup.procs')))) return [s];
  const hs = await hierarchies(root);
  if (hs.length === 0) throw new CollectorUnavailable(NAME, `no cgroup hierarchy under ${root}`);
  const out: string[] = [];
  if (s.includes('/')) {
    // a cgroup path as /proc/PID/cgroup prints it, relative to each hierarchy
    for (const h of hs) {
      const d = path.join(h, s);
      if (await exists(path.join(d, 'cgroup.procs'))) out.push(d);
    }
    if (out.length === 0) throw new CollectorUnavailable(NAME, `no cgroup "${s}" under ${root}`);
    return out;
  }
  for (const h of hs) {
    const found = await searchContainer(h, s);
    if (found.length > 1 && new Set(found.map((f) => containerIdOfDir(path.basename(f)))).size > 1) {
      throw new CollectorUnavailable(NAME, `container id "${s}" is ambiguous: ${found.join(', ')}`);
    }
    if (found.length > 0) out.push(found[0]);
  }
  if (out.length === 0) throw new CollectorUnavailable(NAME, `no cgroup of container "${s}" under ${root}`);
  return out;
}

/** pids in a cgroup directory and all its descendants */
async function pidsUnder(dir: string, into: Set<number>): Promise<void> {
  try {
    const text = await readFile(path.join(dir, 'cgroup.procs'), 'utf8');
    for (const l of text.split('\n')) {
      const n = Number(l);
      if (l.length > 0 && Number.isInteger(n) && n > 0) into.add(n);
    }
  } catch {
    return;
  }
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await pidsUnder(path.join(dir, e.name), into);
}

/**
 * The processes of a cgroup or container, from the first hierarchy where it has any
 * (in hybrid setups the unified tree may hold none). Processes that join later (docker
 * exec) are not included; children of these are traced anyway (strace -f).
 */
export async function cgroupPids(spec: string, root = '/sys/fs/cgroup'): Promise<{ dir: string; pids: number[] }> {
  const dirs = await findCgroupDirs(spec, root);
  for (const dir of dirs) {
    if (!(await isDir(dir))) continue;
    const pids = new Set<number>();
    await pidsUnder(dir, pids);
    if (pids.size > 0) return { dir, pids: [...pids].sort((a, b) => a - b) };
  }
  throw new CollectorUnavailable(NAME, `cgroup ${dirs[0]} has no processes`);
}

// ---------------------------------------------------------------------------------------

/**
 * Everything buffered at each wake-up as one string (the stream's async iterator would give
 * strace's line-sized writes one by one: a batch per line when the consumer keeps up).
 */
async function* readAvailable(s: net.Socket): AsyncGenerator<string> {
  for (;;) {
    const c = s.read() as string | null;
    if (c !== null) {
      yield c;
      continue;
    }
    if (s.readableEnded || s.destroyed) return;
    await new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        off();
        resolve();
      };
      const fail = (e: Error): void => {
        off();
        reject(e);
      };
      const off = (): void => {
        s.off('readable', wake);
        s.off('end', wake);
        s.off('close', wake);
        s.off('error', fail);
      };
      s.on('readable', wake);
      s.on('end', wake);
      s.on('close', wake);
      s.on('error', fail);
    });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function runStatus(cmd: string, args: string[]): Promise<{ code: number | null; stderr: string; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000 }, (error, _stdout, stderr) => {
      const e = error as (NodeJS.ErrnoException & { code?: string | number }) | null;
      if (e && typeof e.code === 'string') resolve({ code: null, stderr: String(stderr), error: e });
      else resolve({ code: e ? ((e.code as number | undefined) ?? 1) : 0, stderr: String(stderr) });
    });
  });
}

async function run(cmd: string, args: string[]): Promise<void> {
  const r = await runStatus(cmd, args);
  if (r.error) throw r.error;
  if (r.code !== 0) throw new Error(r.stderr.trim() || `${cmd} exited with ${r.code}`);
}
