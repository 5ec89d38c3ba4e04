/**
 * Record once, evaluate many: recorded traces of every host (strace logs written live with
 * `--raw-out`, or LTTng CTF) replayed at full speed into one window length — each host's
 * partial graphs (the agents' pipeline), the application-wide merged windows (the
 * aggregator's correlation), and the syscall bags the sequence baselines need.
 */
import type { Logger } from 'pino';
import { openCollector } from '../agent/collectors/open.js';
import type { Collector } from '../agent/collectors/collector.js';
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

/** A collector whose events are also handed to `tap`. */
function tapped(c: Collector, tap: (batch: Parameters<BagFolder['push']>[0]) => void): Collector {
  return {
    name: c.name,
    start: c.start?.bind(c),
    stop: () => c.stop(),
    counters: () => c.counters(),
    async *events() {
      for await (const batch of c.events()) {
        tap(batch);
        yield batch;
      }
    },
  };
}

export async function replayHost(t: HostTrace, app: string, windowMs: number, log?: Logger): Promise<{ partials: PartialWindow[]; bags: Map<number, SyscallBag> }> {
  const opened = await openCollector({ choice: t.format === 'strace' ? 'strace-file' : 'lttng', path: t.path, log });
  const bags = new BagFolder(windowMs);
  const partials: PartialWindow[] = [];
  await runCollector(
    tapped(opened.collector, (b) => bags.push(b)),
    { tracker: { app, host: t.host, windowMs, attribution: t.format === 'strace' ? new LocalFilesAttribution() : noAttribution }, live: false, log },
    (w) => partials.push(w),
  );
  return { partials, bags: bags.windows };
}

/** Every host's trace into windows of `windowMs`, merged across hosts in time order. */
export async function replayTraces(traces: readonly HostTrace[], app: string, windowMs: number, log?: Logger): Promise<EvalWindow[]> {
  const perHost = await Promise.all(traces.map(async (t) => ({ host: t.host, ...(await replayHost(t, app, windowMs, log)) })));
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
