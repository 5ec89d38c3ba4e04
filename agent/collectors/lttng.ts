/**
 * Replay of LTTng kernel traces (CTF): `babeltrace2 --clock-seconds` prints the trace as
 * text, ordered by time across the per-CPU streams; LttngParser pairs entries and exits
 * into SyscallEvents. LTTng gives no fd annotations: the state module learns what fds are
 * from the open/socket/accept/connect/dup/close events delivered here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, openSync, readSync, closeSync, readdirSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import type { SyscallEvent } from '../../shared/event.js';
import { CollectorUnavailable, type Collector, type CollectorCounters, type ProblemSink } from './collector.js';
import { LttngParser, type LttngParserOptions } from './lttng-parser.js';

export interface LttngCollectorOptions extends LttngParserOptions {
  /** an LTTng trace folder (holding kernel/), a CTF folder (holding metadata), or a folder of traces */
  path: string;
  /** babeltrace2 executable (default: babeltrace2 on PATH) */
  babeltrace?: string;
  /** most events per yielded batch (default 2048) */
  batchSize?: number;
  onProblem?: ProblemSink;
}

const INSTALL_HINT = 'install the Debian/Ubuntu package babeltrace2 (apt-get install babeltrace2)';

/** Full path of an executable: `name` itself when it has a slash, else the first on PATH. */
export function findExecutable(name: string, path = process.env.PATH ?? ''): string | undefined {
  const candidates = name.includes('/') ? [name] : path.split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not there, or not executable: try the next one
    }
  }
  return undefined;
}

/** CTF metadata starts with "/* CTF" (text form) or the packet magic 0x75d11d57 (either byte order). */
function isCtfMetadata(file: string): boolean {
  const buf = Buffer.alloc(6);
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const n = readSync(fd, buf, 0, 6, 0);
    if (n >= 6 && buf.toString('latin1') === '/* CTF') return true;
    if (n < 4) return false;
    const magic = buf.readUInt32LE(0);
    return magic === 0x75d11d57 || buf.readUInt32BE(0) === 0x75d11d57;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The CTF trace folder(s) to give babeltrace2 for `path`:
 * - a CTF folder (with metadata) → itself;
 * - an LTTng session/recording folder with kernel/ → kernel/ only (ust/ traces hold no syscalls);
 * - otherwise every CTF folder below (at most 6 levels), e.g. a folder of recordings.
 * Throws an Error saying why when there is none.
 */
export function findCtfTraces(path: string): string[] {
  let root = resolve(path);
  if (!existsSync(root)) throw new Error(`LTTng trace not found: ${path}`);
  if (statSync(root).isFile()) {
    if (basename(root) !== 'metadata')
      throw new Error(`not a CTF trace: ${path} is a file; give the trace folder (with kernel/) or the CTF folder (with metadata)`);
    root = dirname(root);
  }
  const meta = join(root, 'metadata');
  if (existsSync(meta)) {
    if (!isCtfMetadata(meta)) throw new Error(`not a CTF trace: ${meta} is not CTF metadata`);
    return [root];
  }
  const kernel = join(root, 'kernel');
  if (existsSync(join(kernel, 'metadata')) && isCtfMetadata(join(kernel, 'metadata'))) return [kernel];
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // unreadable folder: not ours to judge
    }
    if (entries.some((e) => e.isFile() && e.name === 'metadata') && isCtfMetadata(join(dir, 'metadata'))) {
      found.push(dir);
      return; // CTF folders do not nest
    }
    if (depth === 0) return;
    for (const e of entries) if (e.isDirectory() && e.name !== 'index') walk(join(dir, e.name), depth - 1);
  };
  walk(root, 6);
  if (found.length === 0)
    throw new Error(`not a CTF trace: no CTF 'metadata' file in ${path} or below (expected an LTTng trace folder with kernel/, or a CTF folder)`);
  return found.sort();
}

/** "WARNING: Tracer discarded 12 events between […] and […] in trace …" (babeltrace2 stderr) */
const DISCARDED = /discarded (\d+) (events|packets)/;

export class LttngCollector implements Collector {
  readonly name = 'lttng';
  private readonly parser: LttngParser;
  private child: ChildProcess | undefined;
  private started = false;
  private stopped = false;
  private discardedEvents = 0;
  private discardedPackets = 0;
  private babeltraceLines = 0;

  constructor(private readonly opts: LttngCollectorOptions) {
    this.parser = new LttngParser(opts.onProblem, opts);
  }

  /** pid of the running babeltrace2, for diagnostics */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  counters(): CollectorCounters {
    return {
      ...this.parser.counters(),
      tracerDiscardedEvents: this.discardedEvents,
      tracerDiscardedPackets: this.discardedPackets,
      babeltraceLines: this.babeltraceLines,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.child;
    if (c !== undefined && c.exitCode === null && c.signalCode === null) {
      // 'exit', not 'close': stdout may hold unread output while the consumer is in here
      const exited = new Promise<void>((res) => c.once('exit', () => res()));
      c.kill('SIGTERM');
      await exited;
    }
  }

  async *events(): AsyncGenerator<SyscallEvent[]> {
    if (this.started) throw new Error('LttngCollector.events() can be iterated only once');
    this.started = true;
    const dirs = findCtfTraces(this.opts.path);
    const bin = findExecutable(this.opts.babeltrace ?? 'babeltrace2');
    if (bin === undefined)
      throw new CollectorUnavailable('lttng', `${this.opts.babeltrace ?? 'babeltrace2'} not found: it prints LTTng CTF traces as text; ${INSTALL_HINT}`);
    if (this.stopped) return;

    // --clock-seconds: epoch seconds (the default time of day has no date);
    // --no-delta: the (+0.000007165) column is not needed and costs parsing time
    const child = spawn(bin, ['--clock-seconds', '--no-delta', ...dirs], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((res) => {
      child.once('error', (error) => res({ code: null, signal: null, error }));
      child.once('close', (code, signal) => res({ code, signal }));
    });

    const stderrHead: string[] = [];
    let stderrCarry = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      const lines = (stderrCarry + chunk).split('\n');
      stderrCarry = lines.pop() ?? '';
      for (const l of lines) this.stderrLine(l, stderrHead);
    });

    const batchSize = this.opts.batchSize ?? 2048;
    let batch: SyscallEvent[] = [];
    let carry = '';
    try {
      child.stdout!.setEncoding('utf8');
      for await (const chunk of child.stdout! as AsyncIterable<string>) {
        const text = carry.length > 0 ? carry + chunk : chunk;
        let start = 0;
        for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
          this.babeltraceLines++;
          const ev = this.parser.push(text.slice(start, nl));
          start = nl + 1;
          if (ev !== undefined) {
            batch.push(ev);
            if (batch.length >= batchSize) {
              yield batch;
              batch = [];
              if (this.stopped) return;
            }
          }
        }
        carry = text.slice(start);
        if (this.stopped) break;
      }
      if (this.stopped) return;
      if (carry.length > 0) {
        // output cut short without a final newline: the parser judges the fragment
        this.babeltraceLines++;
        const ev = this.parser.push(carry);
        if (ev !== undefined) batch.push(ev);
      }
      const end = await closed;
      if (stderrCarry) this.stderrLine(stderrCarry, stderrHead);
      if (end.error !== undefined) {
        const code = (end.error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EACCES')
          throw new CollectorUnavailable('lttng', `cannot run ${bin}: ${end.error.message}; ${INSTALL_HINT}`);
        throw end.error;
      }
      if (this.stopped) return;
      if (end.code !== 0) {
        const why = stderrHead.length > 0 ? `:\n${stderrHead.join('\n')}` : ' (no message)';
        throw new Error(`babeltrace2 failed on ${dirs.join(' ')} (${end.signal ?? `exit code ${end.code}`})${why}`);
      }
      this.parser.finish();
      if (batch.length > 0) yield batch;
    } finally {
      // consumer stopped early or an error: do not leave babeltrace2 running
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
  }

  private stderrLine(line: string, head: string[]): void {
    const m = DISCARDED.exec(line);
    if (m !== null) {
      // the tracer's ring buffer overflowed: syscalls are missing, pairing counters will show it
      if (m[2] === 'events') this.discardedEvents += Number(m[1]);
      else this.discardedPackets += Number(m[1]);
      this.opts.onProblem?.({ kind: 'tracerDiscarded', message: line.trim() });
      return;
    }
    if (line.trim() !== '' && head.length < 8) head.push(line.length > 300 ? line.slice(0, 300) + '…' : line);
  }
}
