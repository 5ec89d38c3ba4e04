/**
 * Live eBPF collector: runs bpftrace with agent/collectors/bpftrace/syscalls.bt on the
 * syscalls:* tracepoints, and turns its output (bpftrace-parser.ts) into SyscallEvent batches.
 *
 * Decisions:
 * - Reads and writes are summed in the kernel, per (bucket, thread, fd, call, what the fd
 *   is); buckets are `intervalMs` long and aligned to the epoch, so a row never straddles a
 *   window boundary when the interval divides the window. User space handles rows per
 *   bucket instead of a line per call. The calls that give fds their meaning come one by one.
 * - Time: the script sees only CLOCK_MONOTONIC (`nsecs`). The agent measures epoch −
 *   monotonic once at start (at the edge of a Date.now() millisecond, so to ~µs) and gives
 *   it to the script, which needs it to align buckets, and to the parser for timestamps.
 *   Not strftime(): it formats in user space per line and bpftrace 0.17 has no epoch clock
 *   to align buckets in the kernel. A clock step (settimeofday) while running shifts the
 *   buckets by the step; NTP slewing moves both clocks alike.
 * - A command is started *before* bpftrace, held at a gate (a shell blocked reading fd 3),
 *   so its pid seeds the traced set; the gate opens when the script's BEGIN has printed its
 *   ready line, i.e. after every probe is attached: nothing the command does is missed, and
 *   its descendants are followed in the kernel (sched_process_fork).
 * - The collector ends when the command and every traced process it started have exited
 *   (pid targets: when all traced processes have), or on stop(). Either way it waits for
 *   the dump of the bucket it ends in (≤ an interval + 2 ticks) so no bytes are lost, then
 *   lets bpftrace go. Not SIGINT-and-wait-for-END: with ~115 tracepoints bpftrace 0.17
 *   takes ~10 s to detach them before END runs (measured here). END still prints the last
 *   buckets when bpftrace is ended from outside, and is the fallback when no dump comes.
 * - bpftrace runs with -k: a failed map update (map full: rows dropped) is reported at run
 *   time and counted (`mapFull`), so a too-small map never loses bytes silently.
 * - Containers/cgroups: on cgroup v2 the filter is the kernel's cgroup id (all processes of
 *   the cgroup and its sub-cgroups at start, including later arrivals like `docker exec`);
 *   where the container has no v2 cgroup (cgroup v1) its processes at start and their
 *   descendants are traced.
 * - Startup costs 10–20 s: bpftrace 0.17 compiles each of the ~115 probes separately
 *   (measured: ~0.1 s per probe). One raw_syscalls probe would compile in a second but
 *   runs a BPF program on every syscall of every process on the host; the specific
 *   tracepoints only cost the calls we trace.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { constants as fsc, createWriteStream, existsSync, readFileSync, readlinkSync, type WriteStream } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SyscallEvent } from '../../shared/event.js';
import { BpftraceParser, hostArch, type SyscallArch } from './bpftrace-parser.js';
import { type Collector, type CollectorCounters, type CollectorProblem, CollectorUnavailable, type ProblemSink } from './collector.js';
import { cgroupPids, findCgroupDirs } from './strace.js';

export type EbpfTarget =
  /** run a command; the collector ends when it and the processes it started have exited */
  | { command: string[]; cwd?: string; env?: NodeJS.ProcessEnv }
  /** running processes and everything they start from now on */
  | { pids: number[] }
  /** a cgroup path ("/system.slice/x.service", a directory under /sys/fs/cgroup) or a container id */
  | { cgroup: string }
  /** every process on the host but the agent and bpftrace */
  | { all: true };

export interface EbpfCollectorOptions {
  target: EbpfTarget;
  /** bucket length, ms: how often the kernel maps are dumped (default 1000; ≤ the window) */
  intervalMs?: number;
  /** bpftrace binary (default: looked up in PATH) */
  bpftracePath?: string;
  onProblem?: ProblemSink;
  /** the traced command's stdin/stdout/stderr: passed through (default) or discarded */
  commandOutput?: 'inherit' | 'ignore';
  /** how long start() waits for bpftrace to compile and attach (default 120 s) */
  startTimeoutMs?: number;
  /** where cgroup hierarchies are mounted (default /sys/fs/cgroup) */
  cgroupRoot?: string;
  /** BPFTRACE_MAP_KEYS_MAX: rows per bucket and map before the kernel drops updates (default 65536) */
  mapKeysMax?: number;
  /** BPFTRACE_STRLEN: longest path/argv string read (default 160; 176 is the most that fits the BPF stack) */
  strlen?: number;
  /** BPFTRACE_PERF_RB_PAGES per CPU (default 256): room for bursts of single events */
  perfPages?: number;
  /** keep the generated script at this path (debugging) */
  scriptOut?: string;
  /** keep a copy of bpftrace's output here (replay with BpftraceParser and clockOffsetNs) */
  rawOut?: string;
}

export interface EbpfExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const NAME = 'ebpf';
const TEMPLATE = new URL('./bpftrace/syscalls.bt', import.meta.url);
const TRACEFS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];
const BTF = '/sys/kernel/btf/vmlinux';
/** batches waiting for the consumer before we stop reading bpftrace (it then blocks, and the kernel counts lost events) */
const MAX_QUEUED = 256;

// ---------------------------------------------------------------------------------------
// Prerequisites

export type EbpfAvailability = { ok: true } | { ok: false; reason: string };

const availability = new Map<string, Promise<EbpfAvailability>>();

/**
 * Whether the eBPF collector can run here: bpftrace ≥ 0.17, root (or CAP_BPF+CAP_PERFMON),
 * kernel BTF, tracefs with syscall tracepoints (mounted here when we may), and a real
 * smoke test (a tracepoint program with a BTF walk loads and runs). Cached per binary.
 */
export function ebpfAvailable(opts: { bpftracePath?: string; fresh?: boolean } = {}): Promise<EbpfAvailability> {
  const key = opts.bpftracePath ?? '';
  let p = availability.get(key);
  if (p === undefined || opts.fresh) {
    p = checkAvailable(opts.bpftracePath).catch((e: Error) => ({ ok: false as const, reason: e.message }));
    availability.set(key, p);
  }
  return p;
}

async function checkAvailable(bin: string | undefined): Promise<EbpfAvailability> {
  const no = (reason: string): EbpfAvailability => ({ ok: false, reason });
  if (process.platform !== 'linux') return no(`eBPF needs Linux (this is ${process.platform})`);
  if (hostArch() === undefined) return no(`no syscall table for ${process.arch} (x64 and arm64 are known)`);
  const exe = await findBpftrace(bin);
  if (exe === undefined) return no(bin ? `bpftrace not found at ${bin}` : 'bpftrace not found in PATH (Debian/Ubuntu: apt install bpftrace)');
  const v = await runCapture(exe, ['--version'], 10_000);
  const m = /v?(\d+)\.(\d+)/.exec(v.stdout);
  if (!m) return no(`cannot tell the bpftrace version (${exe} --version said "${(v.stdout + v.stderr).trim().slice(0, 100)}")`);
  if (Number(m[1]) === 0 && Number(m[2]) < 17) return no(`bpftrace ${m[0]} is too old (0.17 or newer needed)`);
  if (!hasBpfPrivileges()) return no('not root and without CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN): bpftrace cannot load programs');
  if (!(await exists(BTF))) return no(`kernel BTF missing (${BTF}): the kernel needs CONFIG_DEBUG_INFO_BTF for the socket walk`);
  const tracefs = await syscallTracefs(true);
  if (typeof tracefs !== 'string') return no(tracefs.reason);
  // the real thing: a syscall tracepoint program with a BTF walk must load, attach and run
  const smoke = await runCapture(
    exe,
    ['--no-warnings', '-e', 'tracepoint:syscalls:sys_enter_getppid { @n = curtask->files->fdt->max_fds; } BEGIN { printf("DAG_OK\\n"); exit(); } END { clear(@n); }'],
    60_000,
  );
  if (!smoke.stdout.includes('DAG_OK')) {
    return no(`bpftrace cannot load a syscall tracepoint program here: ${bpftraceErrors(smoke.stderr) || smoke.error || `exit ${smoke.code}`}`);
  }
  return { ok: true };
}

async function findBpftrace(bin: string | undefined): Promise<string | undefined> {
  const candidates = bin
    ? [bin]
    : [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin'].map((d) => path.join(d, 'bpftrace'));
  for (const c of candidates) {
    try {
      await access(c, fsc.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

/** euid 0, or the effective capabilities bpftrace needs (CAP_BPF 39 + CAP_PERFMON 38, or CAP_SYS_ADMIN 21) */
function hasBpfPrivileges(): boolean {
  if (process.geteuid?.() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (!m) return false;
    const caps = BigInt('0x' + m[1]);
    const has = (n: bigint): boolean => ((caps >> n) & 1n) === 1n;
    return has(21n) || (has(38n) && has(39n));
  } catch {
    return false;
  }
}

/** the tracefs directory with syscall tracepoints; mounts tracefs when it is missing and we may */
async function syscallTracefs(mount: boolean): Promise<string | { reason: string }> {
  for (const d of TRACEFS) if (await exists(path.join(d, 'events/syscalls/sys_enter_read'))) return d;
  for (const d of TRACEFS) {
    if (await exists(path.join(d, 'events'))) {
      return { reason: `tracefs at ${d} has no syscall tracepoints: the kernel lacks CONFIG_FTRACE_SYSCALLS` };
    }
  }
  if (!mount || process.geteuid?.() !== 0) return { reason: 'tracefs is not mounted (as root: mount -t tracefs tracefs /sys/kernel/tracing)' };
  const r = await runCapture('mount', ['-t', 'tracefs', 'tracefs', TRACEFS[0]], 10_000);
  if (await exists(path.join(TRACEFS[0], 'events/syscalls/sys_enter_read'))) return TRACEFS[0];
  return { reason: `tracefs is not mounted and mounting it failed: ${(r.stderr || r.error || '').trim() || `exit ${r.code}`}` };
}

/** bpftrace's error lines, without the harmless RLIMIT_MEMLOCK complaint (kernels ≥ 5.11 account BPF memory to the cgroup) */
function bpftraceErrors(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => l.trim() && !/RLIMIT_MEMLOCK|available_filter_functions/.test(l))
    .slice(0, 8)
    .join('; ');
}

// ---------------------------------------------------------------------------------------
// The script

export interface ScriptParams {
  /** BEGIN statements: seed @traced / @excluded */
  init: string;
  /** which tasks are traced (bpftrace boolean expression) */
  filter: string;
  intervalMs: number;
  /** epoch ns − CLOCK_MONOTONIC ns */
  offsetNs: bigint;
  /** does this kernel have the tracepoint? (default: all exist) */
  hasTracepoint?: (category: string, name: string) => boolean;
}

/** tick: a tenth of the interval (10 ms – 1 s); the dumper waits one tick into the new bucket */
export function tickMs(intervalMs: number): number {
  return Math.min(1000, Math.max(10, Math.round(intervalMs / 10)));
}

/** Fills the template's markers and drops probes whose tracepoint the kernel lacks. */
export function buildBpftraceScript(template: string, p: ScriptParams): string {
  if (!Number.isInteger(p.intervalMs) || p.intervalMs < 20) throw new Error(`intervalMs must be an integer ≥ 20 (got ${p.intervalMs})`);
  const tick = tickMs(p.intervalMs);
  const filled = template
    .replaceAll('{{INIT}}', p.init)
    .replaceAll('{{FILTER}}', p.filter)
    .replaceAll('{{OFFSET_NS}}', String(p.offsetNs))
    .replaceAll('{{INTERVAL_NS}}', String(BigInt(p.intervalMs) * 1_000_000n))
    .replaceAll('{{TICK_MS}}', String(tick))
    .replaceAll('{{GUARD_NS}}', String(BigInt(tick) * 1_000_000n));
  const has = p.hasTracepoint;
  if (!has) return filled;
  const out: string[] = [];
  const lines = filled.split('\n');
  const PROBE = /^tracepoint:(\w+):(\w+),?\s*$/;
  for (let i = 0; i < lines.length; ) {
    if (!PROBE.test(lines[i])) {
      out.push(lines[i++]);
      continue;
    }
    // a probe list: one probe per line, comma separated
    const kept: string[] = [];
    for (; i < lines.length && PROBE.test(lines[i]); i++) {
      const m = PROBE.exec(lines[i])!;
      if (has(m[1], m[2])) kept.push(`tracepoint:${m[1]}:${m[2]}`);
    }
    if (kept.length > 0) {
      out.push(kept.join(',\n'));
      continue;
    }
    // nothing left to attach to: drop the block (up to its closing brace at column 0)
    while (i < lines.length && lines[i] !== '}') i++;
    i++;
  }
  return out.join('\n');
}

/** epoch ns − CLOCK_MONOTONIC ns, taken right after Date.now() ticks so it is good to ~µs */
export function clockOffsetNs(): bigint {
  const t0 = Date.now();
  let t = t0;
  while (t === t0) t = Date.now();
  const mono = process.hrtime.bigint();
  return BigInt(t) * 1_000_000n - mono;
}

// ---------------------------------------------------------------------------------------

export class EbpfCollector implements Collector {
  readonly name = NAME;
  private readonly intervalMs: number;
  private readonly sink: ProblemSink | undefined;
  private parser: BpftraceParser | undefined;
  private bpftrace: ChildProcess | undefined;
  private command: ChildProcess | undefined;
  private commandPid = 0;
  private commandStatus: EbpfExit | undefined;
  private bpftraceExit: Promise<EbpfExit> | undefined;
  private bpftraceStatus: EbpfExit | undefined;
  private startP: Promise<void> | undefined;
  private dir: string | undefined;
  private iterated = false;
  private stopping = false;
  /** traced processes believed alive: seeds, plus every fork seen, minus every exit */
  private readonly live = new Set<number>();
  /** found gone by one poll: removed by the next unless their X line came first */
  private readonly goneOnce = new Set<number>();
  /** the collector ends by itself when the traced processes are gone (not for cgroup ids, all) */
  private endsWithProcesses = false;
  private liveTimer: NodeJS.Timeout | undefined;
  private readonly queue: SyscallEvent[][] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  private readonly stderrTail: string[] = [];
  private onReady: (() => void) | undefined;
  /** called after every D line while draining */
  private onDump: (() => void) | undefined;
  private drainP: Promise<void> | undefined;
  /** undefined while running; true: ended by drain(); false: bpftrace ended before any drain without its END */
  private drainedEarly: boolean | undefined;
  private raw: WriteStream | undefined;
  private offsetNs = 0n;
  private readonly c = { batches: 0, bpftraceErrors: 0, resolvedPaths: 0 };

  constructor(private readonly opts: EbpfCollectorOptions) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.sink = opts.onProblem;
  }

  counters(): CollectorCounters {
    return { ...(this.parser?.counters() ?? {}), ...this.c };
  }

  /** the command's exit code (128 + signal number if a signal ended it); undefined while running */
  exitCode(): number | undefined {
    const s = this.commandStatus;
    if (s === undefined) return undefined;
    if (s.code !== null) return s.code;
    const n = s.signal ? os.constants.signals[s.signal] : undefined;
    return n === undefined ? undefined : 128 + n;
  }

  /** epoch ns − CLOCK_MONOTONIC ns given to the script (0 before start): what a replay of rawOut needs */
  get clockOffsetNs(): bigint {
    return this.offsetNs;
  }

  /** pid of the command started by the collector (0 before start) */
  get pid(): number {
    return this.commandPid;
  }

  /**
   * Compiles and attaches the script, then (command target) lets the command run.
   * Rejects with CollectorUnavailable when eBPF cannot trace here. events() calls it.
   */
  start(): Promise<void> {
    if (this.startP === undefined) {
      this.startP = this.doStart();
      this.startP.catch(() => this.cleanup().catch(() => undefined));
    }
    return this.startP;
  }

  async *events(): AsyncGenerator<SyscallEvent[]> {
    if (this.iterated) throw new Error('EbpfCollector.events() can be iterated only once');
    this.iterated = true;
    await this.start();
    let finished = false;
    try {
      for (;;) {
        const batch = this.queue.shift();
        if (batch !== undefined) {
          if (this.queue.length < MAX_QUEUED / 2) this.bpftrace?.stdout?.resume();
          this.c.batches++;
          yield batch;
          continue;
        }
        if (this.ended) break;
        await new Promise<void>((r) => (this.wake = r));
      }
      finished = true;
      if (this.drainedEarly === false) {
        const st = this.bpftraceStatus;
        this.problem('bpftraceExit', `bpftrace ended without flushing its maps (${st?.code ?? st?.signal}): ${bpftraceErrors(this.stderrTail.join('\n')) || 'no message'}`);
      }
    } finally {
      if (!finished) await this.stop();
      await this.cleanup();
    }
  }

  /**
   * Stops tracing once everything up to now is out (see drain()); a command the collector
   * started is ended too (SIGTERM). Remaining batches still come out of events().
   */
  async stop(): Promise<void> {
    if (this.startP === undefined) return;
    try {
      await this.startP;
    } catch {
      return;
    }
    this.stopping = true;
    if (!this.ended) await this.drain();
    if (this.command !== undefined && this.commandStatus === undefined) this.command.kill('SIGTERM');
  }

  /**
   * Ends the stream once everything up to now is out: waits for the dump of the current
   * bucket (≤ an interval and two ticks), then lets bpftrace go. Not SIGINT-and-wait: with
   * ~115 tracepoints bpftrace 0.17 needs ~10 s to detach them before its END block runs.
   * If no dump comes (bpftrace stuck), falls back to SIGINT and END.
   */
  private drain(): Promise<void> {
    if (this.drainP) return this.drainP;
    this.drainP = new Promise<void>((resolve) => {
      const target = Math.floor(Date.now() / this.intervalMs);
      const fallback = setTimeout(() => {
        this.onDump = undefined;
        this.bpftrace?.kill('SIGINT');
        const kill = setTimeout(() => this.bpftrace?.kill('SIGKILL'), 30_000);
        kill.unref();
        void this.bpftraceExit!.then(() => {
          clearTimeout(kill);
          resolve();
        });
      }, 2 * this.intervalMs + 3000);
      const check = (): void => {
        if (this.ended) {
          clearTimeout(fallback);
          this.onDump = undefined;
          resolve();
          return;
        }
        if (this.parser!.lastDump < target) return;
        clearTimeout(fallback);
        this.onDump = undefined;
        this.finishEarly();
        resolve();
      };
      this.onDump = check;
      check();
    });
    return this.drainP;
  }

  /** everything wanted is out: end the stream now and let bpftrace exit on its own time */
  private finishEarly(): void {
    if (this.ended) return;
    this.drainedEarly = true;
    this.enqueue(this.parser!.finish());
    this.ended = true;
    if (this.liveTimer) clearInterval(this.liveTimer);
    this.wake?.();
    const b = this.bpftrace;
    if (b && this.bpftraceStatus === undefined) {
      // no reader: its next write fails and it exits; SIGINT for the case it stays quiet
      b.stdout?.destroy();
      b.stderr?.destroy();
      b.kill('SIGINT');
      const kill = setTimeout(() => b.kill('SIGKILL'), 30_000);
      kill.unref();
      b.once('exit', () => clearTimeout(kill));
      b.unref();
    }
  }

  // ------------------------------------------------------------------ starting

  private async doStart(): Promise<void> {
    const o = this.opts;
    const ok = await ebpfAvailable({ bpftracePath: o.bpftracePath });
    if (!ok.ok) throw new CollectorUnavailable(NAME, ok.reason);
    const exe = (await findBpftrace(o.bpftracePath))!;
    const tracefs = await syscallTracefs(true);
    if (typeof tracefs !== 'string') throw new CollectorUnavailable(NAME, tracefs.reason);
    const arch: SyscallArch = hostArch()!;

    const t = o.target;
    let init: string;
    let filter: string;
    const seeds: number[] = [];
    if ('command' in t) {
      if (t.command.length === 0) throw new CollectorUnavailable(NAME, 'empty command to trace');
      this.command = this.spawnGated(t);
      this.commandPid = this.command.pid ?? 0;
      if (this.commandPid === 0) throw new CollectorUnavailable(NAME, `cannot start ${t.command[0]}`);
      seeds.push(this.commandPid);
    } else if ('pids' in t) {
      seeds.push(...t.pids);
    } else if ('cgroup' in t) {
      const ids = await cgroupV2Dirs(t.cgroup, o.cgroupRoot);
      if (ids.length === 0) seeds.push(...(await cgroupPids(t.cgroup, o.cgroupRoot)).pids);
      else {
        filter = '(' + ids.map((d) => `cgroup == cgroupid("${d}")`).join(' || ') + ')';
      }
    }
    if ('all' in t) {
      init = `@excluded[pid] = 1; @excluded[${process.pid}] = 1; @traced[0] = 0;`;
      filter = '!@excluded[pid]';
    } else if (seeds.length > 0) {
      const mine = new Set([process.pid, process.ppid]);
      const pids = [...new Set(seeds)].filter((p) => Number.isInteger(p) && p > 0 && !mine.has(p));
      if (pids.length === 0) throw new CollectorUnavailable(NAME, 'no process to trace');
      for (const p of pids) this.live.add(p);
      init = pids.map((p) => `@traced[${p}] = 1;`).join(' ') + ' @excluded[0] = 0;';
      filter = '@traced[pid]';
    } else {
      init = '@traced[0] = 0; @excluded[0] = 0;';
    }

    const offsetNs = clockOffsetNs();
    this.offsetNs = offsetNs;
    const template = readFileSync(TEMPLATE, 'utf8');
    const script = buildBpftraceScript(template, {
      init,
      filter: filter!,
      intervalMs: this.intervalMs,
      offsetNs,
      hasTracepoint: (cat, name) => existsSync(path.join(tracefs, 'events', cat, name, 'id')),
    });
    this.dir = await mkdtemp(path.join(os.tmpdir(), 'distappguard-bpftrace-'));
    const file = o.scriptOut ?? path.join(this.dir, 'syscalls.bt');
    await writeFile(file, script);

    this.parser = new BpftraceParser({
      intervalMs: this.intervalMs,
      offsetNs,
      arch,
      onProblem: this.sink,
      onProcessExit: (pid) => this.processExited(pid),
      onProcessStart: (pid) => this.live.add(pid),
    });
    // -k: failed helper calls are reported at run time (a failed map update is a dropped
    // row); not --no-warnings, which silences those too (compile warnings go to stderr)
    const child = spawn(exe, ['-k', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        BPFTRACE_STRLEN: String(o.strlen ?? 160),
        BPFTRACE_MAP_KEYS_MAX: String(o.mapKeysMax ?? 65536),
        BPFTRACE_PERF_RB_PAGES: String(o.perfPages ?? 256),
      },
    });
    this.bpftrace = child;
    if (o.rawOut !== undefined) {
      this.raw = createWriteStream(o.rawOut);
      this.raw.on('error', (e) => this.problem('rawOut', `cannot write ${o.rawOut}: ${e.message}`));
    }
    this.bpftraceExit = this.watchBpftrace(child);
    await this.ready(o.startTimeoutMs ?? 120_000);
    if (this.command) this.openGate();
    // pid targets end when every traced process is gone; exits are seen in X lines, and a
    // poll catches the ones missed (lost events, or a fork's exit seen before the fork)
    if (!('all' in t) && seeds.length > 0) {
      this.endsWithProcesses = true;
      this.liveTimer = setInterval(() => this.pollLive(), 1000);
      this.liveTimer.unref();
    }
  }

  /** the command behind a gate: `sh` waits for a line on fd 3, then execs it with fd 3 closed */
  private spawnGated(t: { command: string[]; cwd?: string; env?: NodeJS.ProcessEnv }): ChildProcess {
    const pass = this.opts.commandOutput !== 'ignore';
    const child = spawn('/bin/sh', ['-c', 'read -r _ <&3 || exit 126; exec "$@" 3<&-', 'distappguard-gate', ...t.command], {
      stdio: [pass ? 'inherit' : 'ignore', pass ? 'inherit' : 'ignore', pass ? 'inherit' : 'ignore', 'pipe'],
      cwd: t.cwd,
      env: t.env,
    });
    child.on('exit', (code, signal) => {
      this.commandStatus = { code, signal };
      // not live.delete(): its X line (or the next polls) say when its last events are out
      this.maybeEnd();
    });
    child.on('error', (e) => {
      this.commandStatus = { code: null, signal: null };
      this.problem('command', `cannot run ${t.command[0]}: ${e.message}`);
    });
    return child;
  }

  private openGate(): void {
    const gate = this.command?.stdio[3] as NodeJS.WritableStream | undefined;
    if (!gate) return;
    gate.on?.('error', () => undefined); // the command may already be gone
    // one byte: the shell reads byte by byte, and only the read that was already waiting
    // before the probes were attached may see it (its exit has no traced entry: not counted)
    gate.end('\n');
  }

  private ready(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.onReady = undefined;
        if (err) {
          this.command?.kill('SIGKILL');
          this.bpftrace?.kill('SIGKILL');
          reject(err);
        } else resolve();
      };
      const timer = setTimeout(
        () => done(new CollectorUnavailable(NAME, `bpftrace did not attach within ${timeoutMs} ms: ${bpftraceErrors(this.stderrTail.join('\n'))}`)),
        timeoutMs,
      );
      this.onReady = () => done();
      void this.bpftraceExit!.then((st) => {
        if (this.parser?.ready) return done();
        done(new CollectorUnavailable(NAME, `bpftrace failed (${st.code ?? st.signal}): ${bpftraceErrors(this.stderrTail.join('\n')) || 'no message'}`));
      });
    });
  }

  // ------------------------------------------------------------------ running

  private watchBpftrace(child: ChildProcess): Promise<EbpfExit> {
    const out = child.stdout!;
    out.setEncoding('utf8');
    let tail = '';
    out.on('data', (chunk: string) => {
      this.raw?.write(chunk);
      const text = tail + chunk;
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        this.line(text.slice(start, nl));
        start = nl + 1;
      }
      tail = text.slice(start);
    });
    const outDone = new Promise<void>((r) => out.on('close', () => r()));
    const err = child.stderr!;
    err.setEncoding('utf8');
    let errTail = '';
    err.on('data', (chunk: string) => {
      const lines = (errTail + chunk).split('\n');
      errTail = lines.pop()!;
      for (const l of lines) this.stderrLine(l);
    });
    err.on('end', () => errTail && this.stderrLine(errTail));
    return new Promise<EbpfExit>((resolve) => {
      const finish = async (st: EbpfExit): Promise<void> => {
        this.bpftraceStatus = st;
        if (!this.ended) {
          await Promise.race([outDone, delay(2000)]);
          if (tail) this.line(tail);
          tail = '';
          if (!this.ended) {
            if (!this.parser!.ended) this.drainedEarly = false; // no Z: its END never ran
            this.enqueue(this.parser!.finish());
            this.ended = true;
            if (this.liveTimer) clearInterval(this.liveTimer);
            this.wake?.();
          }
        }
        resolve(st);
      };
      child.on('error', (e) => {
        this.stderrTail.push(`ERROR: cannot run bpftrace: ${e.message}`);
        void finish({ code: null, signal: null });
      });
      child.on('exit', (code, signal) => void finish({ code, signal }));
    });
  }

  private stderrLine(l: string): void {
    if (!l.trim()) return;
    if (this.stderrTail.length >= 50) this.stderrTail.shift();
    this.stderrTail.push(l);
    // RLIMIT_MEMLOCK: bpftrace 0.17 complains when it may not raise it, harmless since
    // kernel 5.11 charges BPF memory to the cgroup
    if (/^ERROR/.test(l) && !/RLIMIT_MEMLOCK/.test(l)) {
      this.c.bpftraceErrors++;
      this.problem('bpftraceError', l);
    }
  }

  private line(l: string): void {
    if (this.ended) return;
    const p = this.parser!;
    const wasReady = p.ready !== 0;
    const batch = p.push(l);
    if (!wasReady && p.ready !== 0) this.onReady?.();
    if (batch !== undefined) {
      this.enqueue(batch);
      this.onDump?.();
    }
  }

  private enqueue(batch: SyscallEvent[]): void {
    if (batch.length === 0) return;
    this.resolvePaths(batch);
    this.queue.push(batch);
    if (this.queue.length >= MAX_QUEUED) this.bpftrace?.stdout?.pause();
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /**
   * Open paths relative to a dirfd made absolute from /proc/PID/fd/DIRFD (the state module
   * resolves the rest — cwd-relative paths and symlinks — for every collector); the process
   * may be gone by now (a dump comes up to an interval later), then the path stays relative.
   */
  private resolvePaths(batch: SyscallEvent[]): void {
    let cache: Map<string, string | null> | undefined;
    for (const ev of batch) {
      if (ev.path === undefined || ev.ret < 0 || ev.path.charCodeAt(0) === 47) continue;
      if ((ev.call !== 'openat' && ev.call !== 'openat2') || ev.fd === undefined) continue;
      const link = `/proc/${ev.pid}/fd/${ev.fd}`;
      cache ??= new Map();
      let base = cache.get(link);
      if (base === undefined) {
        try {
          base = readlinkSync(link);
        } catch {
          base = null;
        }
        cache.set(link, base);
      }
      if (base === null || base.charCodeAt(0) !== 47) continue;
      ev.path = path.resolve(base, ev.path);
      this.c.resolvedPaths++;
    }
  }

  private processExited(pid: number): void {
    this.live.delete(pid);
    this.goneOnce.delete(pid);
    this.maybeEnd();
  }

  private pollLive(): void {
    for (const p of this.live) {
      let gone = false;
      try {
        process.kill(p, 0);
      } catch (e) {
        gone = (e as NodeJS.ErrnoException).code === 'ESRCH';
      }
      if (!gone) this.goneOnce.delete(p);
      else if (this.goneOnce.has(p)) {
        this.goneOnce.delete(p);
        this.live.delete(p);
      } else this.goneOnce.add(p);
    }
    this.maybeEnd();
  }

  /** every traced process is gone (and the command, if any, has been reaped): flush and end */
  private maybeEnd(): void {
    if (!this.endsWithProcesses || this.stopping || this.live.size > 0) return;
    if (this.command !== undefined && this.commandStatus === undefined) return;
    void this.stop();
  }

  private async cleanup(): Promise<void> {
    if (this.raw) {
      const r = this.raw;
      this.raw = undefined;
      await new Promise<void>((res) => r.end(() => res()));
    }
    if (this.liveTimer) clearInterval(this.liveTimer);
    this.liveTimer = undefined;
    if (this.dir) {
      const d = this.dir;
      this.dir = undefined;
      await rm(d, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private problem(kind: string, message: string): void {
    const p: CollectorProblem = { kind, message };
    this.sink?.(p);
  }
}

/** cgroup v2 directories of a cgroup/container (with sub-cgroups, which `cgroup ==` does not cover), if it has any with processes */
async function cgroupV2Dirs(spec: string, root?: string): Promise<string[]> {
  const dirs = await findCgroupDirs(spec, root);
  const out: string[] = [];
  for (const d of dirs) {
    if (!(await exists(path.join(d, 'cgroup.controllers')))) continue; // v1 hierarchy
    const all: string[] = [];
    await subdirs(d, all, 64);
    if (all.some((x) => /"|\\/.test(x))) continue; // not quotable in the script
    let procs = 0;
    for (const x of all) procs += (await readFileSafe(path.join(x, 'cgroup.procs'))).split('\n').filter(Boolean).length;
    if (procs > 0) out.push(...all);
  }
  return out;
}

async function subdirs(d: string, into: string[], max: number): Promise<void> {
  if (into.length >= max) return;
  into.push(d);
  let entries;
  try {
    entries = await readdir(d, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await subdirs(path.join(d, e.name), into, max);
}

// ---------------------------------------------------------------------------------------

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function readFileSafe(p: string): Promise<string> {
  try {
    return await readFile(p, 'utf8');
  } catch {
    return '';
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function runCapture(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; error?: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
      const e = error as (NodeJS.ErrnoException & { code?: string | number }) | null;
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        stdout: String(stdout),
        stderr: String(stderr),
        error: e ? e.message : undefined,
      });
    });
  });
}
