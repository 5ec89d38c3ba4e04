/**
 * Processes of the web-stack testbed: each started in its namespace host in its own process
 * group (so one kill reaches the program and anything it forked), with its output kept, and
 * remembered in a module-wide set so a crashing test can still kill what it started.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { spawnIn, type NsHost } from '../../cli/netns.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Proc {
  name: string;
  host: NsHost;
  argv: string[];
  child: ChildProcess;
  /** the spawned process: also its process group id */
  pid: number;
  exited: Promise<number | null>;
  code?: number | null;
  /** last 20 kB of stderr and of stdout */
  err(): string;
  out(): string;
  /** called with every complete stdout line */
  onLine(f: (line: string) => void): void;
}

/** process groups started here and not yet seen to exit */
const live = new Set<number>();
let exitHook = false;

/** SIGKILL every process group this module started that is still running. */
export function killAllWebstack(): void {
  for (const pgid of live) signalGroup(pgid, 'SIGKILL');
  live.clear();
}

export function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* gone */
  }
}

export function launch(name: string, host: NsHost, argv: string[], env?: NodeJS.ProcessEnv): Proc {
  if (!exitHook) {
    // daemons must not outlive the runner, even when a test dies without calling stop()
    process.once('exit', killAllWebstack);
    exitHook = true;
  }
  const child = spawnIn(host, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  if (!child.pid) throw new Error(`could not start ${name} (${argv[0]})`);
  const pid = child.pid;
  live.add(pid);
  let err = '';
  let out = '';
  let partial = '';
  const listeners: ((line: string) => void)[] = [];
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  child.stdout!.on('data', (d: Buffer) => {
    const s = d.toString();
    out = (out + s).slice(-20_000);
    partial += s;
    for (let i = partial.indexOf('\n'); i >= 0; i = partial.indexOf('\n')) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      for (const f of listeners) f(line);
    }
  });
  const p: Proc = {
    name,
    host,
    argv,
    child,
    pid,
    exited: Promise.resolve(null),
    err: () => err,
    out: () => out,
    onLine: (f) => listeners.push(f),
  };
  p.exited = new Promise((res) =>
    child.once('exit', (code, sig) => {
      live.delete(pid);
      p.code = code ?? (sig ? -1 : null);
      res(p.code);
    }),
  );
  return p;
}

/** Signal the group, wait up to `graceMs`, then SIGKILL it; resolves once the leader has exited. */
export async function stopProc(p: Proc, sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (p.code === undefined) signalGroup(p.pid, sig);
  const done = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
  // members that left the group (setsid) are the caller's to stop; the rest go now
  signalGroup(p.pid, 'SIGKILL');
  if (!done) await p.exited;
}

/** Poll until `check` returns a value, or throw after `timeoutMs` with `what` and the process's stderr. */
export async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs: number, p?: Proc): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (p && p.code !== undefined) throw new Error(`${p.name} exited (code ${p.code}) while waiting for ${what}:\n${p.err().slice(-3000)}${p.out().slice(-1500)}`);
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${p ? `:\n${p.err().slice(-3000)}` : ''}`);
    await sleep(100);
  }
}

/** Run a short command inside a host and return its stdout. */
export function runIn(host: NsHost, argv: string[], timeoutMs = 15_000): string {
  return execFileSync('ip', ['netns', 'exec', host.ns, ...argv], { timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).toString();
}

/** Whether something listens on a TCP port in the host (asks the kernel: no connection made). */
export function listening(host: NsHost, port: number): boolean {
  try {
    return runIn(host, ['ss', '-Hltn', `sport = :${port}`], 5000).trim() !== '';
  } catch {
    return false;
  }
}

/** The process and every process below it. */
export function descendants(pid: number): number[] {
  const out = [pid];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (kids) for (const k of kids.split(/\s+/)) out.push(...descendants(Number(k)));
    }
  } catch {
    /* exited meanwhile */
  }
  return out;
}

/** Names (comm) of every thread of the processes. */
export function threadNames(pids: number[]): string[] {
  const names: string[] = [];
  for (const p of pids) {
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) names.push(readFileSync(`/proc/${p}/task/${tid}/comm`, 'utf8').trim());
    } catch {
      /* exited meanwhile */
    }
  }
  return names;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
