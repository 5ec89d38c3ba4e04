/**
 * Record once, evaluate many: recorded traces of every host (strace logs written live with
 * `--raw-out`, or LTTng CTF) replayed at full speed into one window length — each host's
 * partial graphs (the agents' pipeline), the application-wide merged windows (the
 * aggregator's correlation), and the syscall bags the sequence baselines need.
 */
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import { openCollector } from '../agent/collectors/open.js';
import { tapCollector } from '../agent/collectors/collector.js';
import { runCollector } from '../agent/run.js';
import { LocalFilesAttribution, noAttribution } from '../agent/state/attribution.js';
import { FlowRegistry, correlate } from '../aggregator/correlate.js';
import type { MergedWindow, PartialWindow } from '../shared/graph.js';
import { BagFolder, newBag, type SyscallBag } from './syscall-bags.js';

export interface HostTrace {
  host: string;
  format: 'strace' | 'lttng';
  path: string;
}

export interface EvalWindow {
  windowStart: number;
  windowMs: number;
  merged: MergedWindow;
  partials: PartialWindow[];
  /** per host */
  bags: Map<string, SyscallBag>;
}

/**
 * How far a replay has got, for a progress display: strace logs are read by this process, so
 * their bytes read are known (of their sizes on disk, compressed or not); LTTng traces are read
 * by babeltrace2, so for them there is only the events count.
 */
export interface ReplayProgress {
  bytesRead: number;
  /** sum of the strace files' sizes; absent when any trace is LTTng */
  bytesTotal?: number;
  events: number;
  /** traces read to the end, of `traces` */
  tracesDone: number;
  traces: number;
}

/** `onRead(bytesRead, events)` after every batch (bytesRead: the strace file's read position; 0 for LTTng). */
export async function replayHost(
  t: HostTrace,
  app: string,
  windowMs: number,
  log?: Logger,
  onRead?: (bytesRead: number, events: number) => void,
): Promise<{ partials: PartialWindow[]; bags: Map<number, SyscallBag> }> {
  const opened = await openCollector({ choice: t.format === 'strace' ? 'strace-file' : 'lttng', path: t.path, log });
  const bags = new BagFolder(windowMs);
  const partials: PartialWindow[] = [];
  let events = 0;
  await runCollector(
    tapCollector(opened.collector, (b) => {
      bags.push(b);
      if (onRead) {
        events += b.length;
        onRead(opened.collector.counters().bytesRead ?? 0, events);
      }
    }),
    { tracker: { app, host: t.host, windowMs, attribution: t.format === 'strace' ? new LocalFilesAttribution() : noAttribution }, live: false, log },
    (w) => partials.push(w),
  );
  return { partials, bags: bags.windows };
}

/** Every host's trace into windows of `windowMs`, merged across hosts in time order. */
export async function replayTraces(
  traces: readonly HostTrace[],
  app: string,
  windowMs: number,
  log?: Logger,
  onProgress?: (p: ReplayProgress) => void,
): Promise<EvalWindow[]> {
  // the hosts are replayed side by side: their figures are summed
  const read = traces.map(() => ({ bytes: 0, events: 0, done: false }));
  let sizes: number[] | undefined;
  if (onProgress && traces.every((t) => t.format === 'strace')) {
    try {
      sizes = traces.map((t) => statSync(t.path).size);
    } catch {
      sizes = undefined; // a missing file: the replay says so
    }
  }
  const bytesTotal = sizes?.reduce((a, b) => a + b, 0);
  const report = () => {
    const sum = read.reduce((a, r) => ({ bytes: a.bytes + r.bytes, events: a.events + r.events, done: a.done + (r.done ? 1 : 0) }), { bytes: 0, events: 0, done: 0 });
    onProgress!({ bytesRead: sum.bytes, bytesTotal, events: sum.events, tracesDone: sum.done, traces: traces.length });
  };
  const perHost = await Promise.all(
    traces.map(async (t, i) => {
      const onRead = onProgress
        ? (bytes: number, events: number) => {
            read[i].bytes = bytes;
            read[i].events = events;
            report();
          }
        : undefined;
      const out = await replayHost(t, app, windowMs, log, onRead);
      if (onProgress) {
        read[i].done = true;
        if (sizes) read[i].bytes = sizes[i];
        report();
      }
      return { host: t.host, ...out };
    }),
  );
  const starts = new Set<number>();
  for (const h of perHost) {
    h.partials.forEach((p) => starts.add(p.windowStart));
    h.bags.forEach((_, s) => starts.add(s));
  }
  const registry = new FlowRegistry();
  return [...starts]
    .sort((a, b) => a - b)
    .map((s) => {
      const partials = perHost.flatMap((h) => h.partials.filter((p) => p.windowStart === s));
      const bags = new Map(perHost.map((h) => [h.host, h.bags.get(s) ?? newBag()]));
      return { windowStart: s, windowMs, merged: correlate(app, s, windowMs, partials, registry), partials, bags };
    });
}
