#!/usr/bin/env node
/**
 * distappguard: one program, subcommands per job. Output for programs goes to stdout (JSON
 * Lines) or a file; logs go to stderr (JSON, or pretty at a terminal).
 */
import { Command, Option } from 'commander';
import { createWriteStream, statSync, type WriteStream } from 'node:fs';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { createLogger, type Logger } from '../shared/log.js';
import { parseDuration } from '../shared/duration.js';
import { startProgress } from '../shared/progress.js';
import { onStopSignal } from '../shared/signals.js';
import type { PartialWindow } from '../shared/graph.js';
import { runCollector, type RunSummary } from '../agent/run.js';
import { openCollector, type CollectorChoice, type TraceTarget } from '../agent/collectors/open.js';
import { CollectorUnavailable, tapCollector } from '../agent/collectors/collector.js';
import { LocalFilesAttribution, ProcAttribution, noAttribution } from '../agent/state/attribution.js';
import type { TrackerOptions } from '../agent/tracker.js';
import { windowJson, windowTable } from './format.js';
import { buildWorkload } from './workload.js';
import { CliError, addDistributedCommands } from './distributed.js';
import { addDetectionCommands } from './detection.js';
import { addEvalCommand } from './eval.js';
import { addConfigCommands } from './config.js';
import { addInstallCommand } from './install.js';
import { addCertsCommands } from './certs.js';
import { distributedDemo } from './demo.js';
import { epcDemo } from './demo-epc.js';

const VERSION = '0.1.0';

/** A user mistake: printed as one clear line, no stack trace. */
class UsageError extends Error {}

interface GraphOutputOptions {
  window: string;
  app: string;
  host: string;
  out?: string;
  format?: 'table' | 'json';
  pathGlob?: string[];
  service?: string[];
  lateness: string;
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

function addGraphOptions(c: Command, defaultWindow = '5s'): Command {
  return c
    .option('--window <duration>', 'window length (aligned to multiples since the epoch)', defaultWindow)
    .option('--app <name>', 'application name', 'default')
    .option('--host <id>', 'host id written into every window', hostname())
    .option('--out <file>', 'write windows as JSON Lines to this file')
    .addOption(new Option('--format <format>', 'stdout format (default: table at a terminal, else json)').choices(['table', 'json']))
    .option('--path-glob <glob>', 'name file roles by this glob, e.g. "/var/log/nginx/*.log" (repeatable)', collect)
    .option('--service <id=name>', 'container id (prefix) = service name, for process roles (repeatable)', collect)
    .option('--lateness <duration>', 'how long a window waits for late events after its end', '1s');
}

function trackerOptions(o: GraphOutputOptions, attribution: TrackerOptions['attribution']): TrackerOptions {
  const services: Record<string, string> = {};
  for (const s of o.service ?? []) {
    const i = s.indexOf('=');
    if (i <= 0 || i === s.length - 1) throw new UsageError(`--service '${s}': expected CONTAINER_ID=NAME`);
    services[s.slice(0, i)] = s.slice(i + 1);
  }
  if (!o.app.trim()) throw new UsageError('--app: must not be empty');
  return {
    app: o.app,
    host: o.host,
    windowMs: wrap(() => parseDuration(o.window, '--window')),
    latenessMs: wrap(() => parseDuration(o.lateness, '--lateness')),
    pathGlobs: o.pathGlob,
    services,
    attribution,
  };
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Writes each window to the --out file and to stdout in the chosen format. */
class WindowSink {
  private file?: WriteStream;
  private readonly stdoutFormat: 'table' | 'json' | 'none';
  windows = 0;
  /** `beforeStdout`: called before a window is printed at the terminal (a progress line wipes itself) */
  constructor(
    o: GraphOutputOptions,
    private readonly beforeStdout?: () => void,
  ) {
    if (o.out) this.file = createWriteStream(o.out, { flags: 'w' });
    this.stdoutFormat = o.format ?? (process.stdout.isTTY ? 'table' : o.out ? 'none' : 'json');
  }
  write = (w: PartialWindow): void => {
    this.windows++;
    this.file?.write(windowJson(w) + '\n');
    if (this.stdoutFormat !== 'none' && process.stdout.isTTY) this.beforeStdout?.();
    if (this.stdoutFormat === 'table') process.stdout.write(windowTable(w));
    else if (this.stdoutFormat === 'json') process.stdout.write(windowJson(w) + '\n');
  };
  async close(): Promise<void> {
    const f = this.file;
    if (f) await new Promise<void>((res, rej) => f.end((err?: Error | null) => (err ? rej(err) : res())));
  }
}

function logSummary(log: Logger, s: RunSummary, windows: number): void {
  const skipped = Object.entries(s.collectorCounters).filter(([k, v]) => v > 0 && !/^(lines|events|batches)$/.test(k));
  log.info(
    {
      collector: s.collector,
      windows,
      events: s.tracker.events,
      dataCalls: s.tracker.dataCalls,
      roles: s.roles,
      processes: s.state.processes,
      threads: s.state.threads,
      unknownFdCalls: s.tracker.unknownFdCalls,
      unknownFdBytes: s.tracker.unknownFdBytes,
      lateEvents: s.tracker.lateEvents,
      collectorCounters: s.collectorCounters,
      ms: s.durationMs,
      maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    },
    skipped.length ? `done; the collector counted: ${skipped.map(([k, v]) => `${k}=${v}`).join(', ')}` : 'done',
  );
}

async function capture(target: TraceTarget, o: GraphOutputOptions & { collector: CollectorChoice; rawOut?: string; duration?: string; strace?: string }, log: Logger): Promise<number> {
  const topts = trackerOptions(o, new ProcAttribution());
  const durationMs = o.duration ? wrap(() => parseDuration(o.duration!, '--duration')) : undefined;
  const opened = await openCollector({ choice: o.collector, target, rawOut: o.rawOut, intervalMs: Math.min(1000, topts.windowMs), stracePath: o.strace, log });
  const sink = new WindowSink(o);
  const dispose = onStopSignal(log, 'stopping: flushing the last window', () => void opened.collector.stop());
  try {
    const summary = await runCollector(opened.collector, { tracker: topts, live: true, log, durationMs }, sink.write);
    logSummary(log, summary, sink.windows);
  } finally {
    dispose();
    await sink.close();
  }
  return opened.exitCode?.() ?? 0;
}

async function importTrace(format: 'strace' | 'lttng', path: string, o: GraphOutputOptions & { exeHash: boolean }, log: Logger): Promise<void> {
  // a strace log recorded on this host names executables that can still be hashed here,
  // which gives the same roles as the live capture did
  const attribution = format === 'strace' && o.exeHash ? new LocalFilesAttribution() : noAttribution;
  const topts = trackerOptions(o, attribution);
  const opened = await openCollector({ choice: format === 'strace' ? 'strace-file' : 'lttng', path, log });
  // a strace log is read here, so its read position against its size is the progress; an
  // LTTng trace is read by babeltrace2, so there only the windows made can be counted
  let size: number | undefined;
  if (format === 'strace') {
    try {
      size = statSync(path).size;
    } catch {
      size = undefined; // the collector says what is wrong with the file
    }
  }
  const label = `import ${format} ${basename(path)}`;
  const progress = size !== undefined ? startProgress({ label, total: size, unit: 'B', log }) : startProgress({ label, unit: 'windows', log });
  const sink = new WindowSink(o, () => progress.clear());
  const c = opened.collector;
  let events = 0;
  // bytes: the note counts windows and events; windows: the note counts events
  const note = () => (size !== undefined ? `${sink.windows} windows, ${events} events` : `${events} events`);
  const show = () => progress.update(size !== undefined ? (c.counters().bytesRead ?? 0) : sink.windows, note());
  const watched = tapCollector(c, (batch) => {
    events += batch.length;
    show();
  });
  try {
    const summary = await runCollector(watched, { tracker: topts, live: false, log }, sink.write);
    show();
    progress.end(note());
    logSummary(log, summary, sink.windows);
  } catch (e) {
    progress.end('failed');
    throw e;
  } finally {
    await sink.close();
  }
}

export function buildProgram(log: Logger): Command {
  const program = new Command('distappguard')
    .description('DistAppGuard: profile distributed applications from their system calls (MSDEG per window)')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)');

  addGraphOptions(
    program
      .command('capture')
      .description('trace live processes and print each window\'s partial MSDEG')
      .addOption(new Option('--collector <name>', 'ebpf (bpftrace), strace, or auto: eBPF when it works, else strace').choices(['auto', 'ebpf', 'strace']).default('auto'))
      .option('--pid <pid>', 'attach to a running process (repeatable)', collect)
      .option('--container <id>', 'attach to every process of a container (id, or a cgroup path)')
      .option('--raw-out <file>', 'strace collector: also keep the raw strace text, for `import strace` later')
      .option('--strace <path>', 'strace binary to use', 'strace')
      .option('--duration <duration>', 'stop after this long')
      .argument('[command...]', 'command to run and trace (after --)'),
  ).action(async (command: string[], o) => {
    const targets = [command.length > 0, (o.pid ?? []).length > 0, o.container !== undefined].filter(Boolean).length;
    if (targets !== 1) throw new UsageError('capture: give exactly one of --pid PID…, --container ID, or -- COMMAND ARGS…');
    let target: TraceTarget;
    if (command.length > 0) target = { command };
    else if (o.container !== undefined) target = { container: o.container };
    else {
      const pids = (o.pid as string[]).map((p) => Number(p));
      const bad = (o.pid as string[]).find((p) => !/^\d+$/.test(p));
      if (bad !== undefined) throw new UsageError(`--pid '${bad}': not a process id`);
      target = { pids };
    }
    process.exitCode = await capture(target, o, log);
  });

  addGraphOptions(
    program
      .command('import')
      .description('replay a recorded trace (strace log, or LTTng CTF through babeltrace2) into windows')
      .addOption(new Option('--no-exe-hash', 'strace: do not hash executables named in the log (they may differ from when it was recorded)'))
      .argument('<format>', 'strace | lttng')
      .argument('<path>', 'strace log file, or LTTng trace folder'),
  ).action(async (format: string, path: string, o) => {
    if (format !== 'strace' && format !== 'lttng') throw new UsageError(`import: format must be 'strace' or 'lttng', not '${format}'`);
    await importTrace(format, path, o, log);
  });

  addGraphOptions(
    program
      .command('demo')
      .description('the LTE core testbed on three hosts (network namespaces), an agent per component, the aggregator learning, training, then three attacks and the alerts with their explanations as they happen; --workload: the bundled workload, graphs only; --local: one host, capture only')
      .addOption(new Option('--collector <name>', 'ebpf, strace, or auto (the demo defaults to strace: it starts at once)').choices(['auto', 'ebpf', 'strace']).default('strace'))
      .option('--learn <duration>', 'normal traffic to learn from before training', '75s')
      .option('--attack-duration <duration>', 'how long each attack lasts', '18s')
      .option('--gap <duration>', 'quiet time between attacks', '15s')
      .option('--seed <n>', 'traffic and training seed', '1')
      .option('--keep', 'keep the SQLite file at the end (it is removed otherwise)')
      .option('--workload', 'the earlier demo: the bundled client/server workload, merged graphs printed, no detection')
      .option('--rounds <n>', '--workload/--local: rounds of traffic, one per second', '6')
      .option('--db <file>', 'the aggregator\'s SQLite file', 'distappguard-demo.db')
      .option('--local', 'trace the bundled workload on this host only and print its partial graphs'),
    '1s',
  ).action(async (o) => {
    const rounds = Number(o.rounds);
    if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError(`--rounds '${o.rounds}': a whole number ≥ 1`);
    if (!o.local && !o.workload) {
      const seed = Number(o.seed);
      if (!Number.isInteger(seed)) throw new UsageError(`--seed '${o.seed}': a whole number`);
      const ms = (text: string, what: string, min: number) => {
        let v: number;
        try {
          v = parseDuration(text, what);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        if (v < min) throw new UsageError(`${what} '${text}': at least ${min / 1000} s`);
        return v;
      };
      const opts = { db: o.db, collector: o.collector, learnMs: ms(o.learn, '--learn', 25_000), attackMs: ms(o.attackDuration, '--attack-duration', 3000), gapMs: ms(o.gap, '--gap', 3000), keep: Boolean(o.keep), seed, log };
      process.exitCode = await epcDemo(opts).catch((e: Error) => {
        throw new UsageError(e.message);
      });
      return;
    }
    if (!o.local) {
      process.exitCode = await distributedDemo({ db: o.db, collector: o.collector, rounds, window: o.window, log }).catch((e: Error) => {
        throw new UsageError(e.message);
      });
      return;
    }
    const w = buildWorkload();
    const file = `/tmp/distappguard-demo-${process.pid}.dat`;
    const command = [
      w.server, '--tcp-port', '17001', '--udp-port', '17002', '--',
      w.client, '--tcp-port', '17001', '--udp-port', '17002', '--rounds', String(rounds), '--interval-ms', '1000',
      '--file', file, '--file-bytes', String(100_000 * rounds), '--tcp-bytes', String(400_000 * rounds),
      '--udp-bytes', String(30_000 * rounds), '--mem-bytes', String((1 << 20) * rounds),
    ];
    log.info({ command: command.join(' ') }, 'demo: tracing the bundled workload');
    process.exitCode = await capture({ command }, { ...o, app: o.app === 'default' ? 'demo' : o.app }, log);
  });

  addDistributedCommands(program, log, VERSION);
  addDetectionCommands(program, log);
  addEvalCommand(program, log);
  addConfigCommands(program);
  addInstallCommand(program);
  addCertsCommands(program, log);
  return program;
}

async function main(): Promise<void> {
  const log = createLogger();
  const program = buildProgram(log);
  program.exitOverride();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    const err = e as Error & { code?: string; exitCode?: number };
    if (err.code?.startsWith('commander.')) {
      process.exitCode = err.exitCode ?? 1;
      return; // commander already printed help or the error
    }
    // one clear line for people; the stack only when asked for (DISTAPPGUARD_LOG_LEVEL=debug)
    process.stderr.write(`distappguard: ${err.message}\n`);
    log.debug({ err }, 'failed');
    process.exitCode = e instanceof UsageError || e instanceof CollectorUnavailable || e instanceof CliError ? 2 : 1;
  }
}

await main();
