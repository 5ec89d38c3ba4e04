/**
 * Drives one collector into the tracker: batches in, closed windows out. Live collectors
 * also close windows by the wall clock, so a quiet application still yields its windows.
 */
import type { Logger } from 'pino';
import type { PartialWindow } from '../shared/graph.js';
import type { Collector, CollectorCounters } from './collectors/collector.js';
import { Tracker, type TrackerCounters, type TrackerOptions } from './tracker.js';
import type { StateCounters } from './state/host-state.js';

export interface RunSummary {
  collector: string;
  collectorCounters: CollectorCounters;
  tracker: TrackerCounters;
  state: StateCounters;
  roles: number;
  durationMs: number;
}

export interface RunOptions {
  tracker: TrackerOptions;
  /** live capture: windows start now and close by the clock as well as by event time */
  live: boolean;
  log?: Logger;
  /** stop after this long (live) */
  durationMs?: number;
  /** told the tracker once it exists (agent/metrics.ts reads its counters) */
  onTracker?: (t: Tracker) => void;
}

export async function runCollector(
  collector: Collector,
  opts: RunOptions,
  onWindow: (w: PartialWindow) => void,
): Promise<RunSummary> {
  const started = Date.now();
  const tracker = new Tracker(opts.tracker, onWindow);
  opts.onTracker?.(tracker);
  let timer: NodeJS.Timeout | undefined;
  let stopTimer: NodeJS.Timeout | undefined;
  if (opts.live) {
    // windows start when tracing does (bpftrace takes seconds to compile), not before
    await collector.start?.();
    opts.log?.info({ collector: collector.name, ms: Date.now() - started }, 'tracing');
    tracker.folder.begin(Date.now());
    timer = setInterval(() => tracker.tick(Date.now()), Math.min(250, opts.tracker.windowMs / 4));
    if (opts.durationMs !== undefined) {
      stopTimer = setTimeout(() => {
        opts.log?.info({ durationMs: opts.durationMs }, 'capture duration reached, stopping');
        void collector.stop();
      }, opts.durationMs);
    }
  }
  try {
    for await (const batch of collector.events()) tracker.push(batch);
  } finally {
    if (timer) clearInterval(timer);
    if (stopTimer) clearTimeout(stopTimer);
  }
  // every window that has ended by now, without waiting out the lateness: the trace is over
  if (opts.live) tracker.tick(Date.now() + (opts.tracker.latenessMs ?? 0));
  tracker.end();
  return {
    collector: collector.name,
    collectorCounters: collector.counters(),
    tracker: tracker.counters,
    state: tracker.state.counters,
    roles: tracker.roles.size,
    durationMs: Date.now() - started,
  };
}
