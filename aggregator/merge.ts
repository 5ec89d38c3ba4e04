/**
 * Merging one window: its partials as the store has them (the store decides what a window
 * holds) → correlate → the merged window stored. The same code runs on the merge worker
 * (merge-worker.ts, its own SQLite connection) or, as a fallback, on the main thread.
 */
import type { MergedWindow, PartialWindow } from '../shared/graph.js';
import type { CloseReason } from './assemble.js';
import { FlowRegistry, correlate } from './correlate.js';

export interface MergeJob {
  app: string;
  windowStart: number;
  windowMs: number;
  reason: CloseReason | 'late';
  /** late partials of the window so far, stored with it */
  latePartials: number;
}

/** A merged window without its edges: what the log and counters need. */
export interface MergeSummary {
  hosts: string[];
  edges: number;
  matchedFlows: number;
  unmatchedFlows: number;
}

export interface MergeResult {
  job: MergeJob;
  summary?: MergeSummary;
  /** the whole merged window, when asked for (it is copied between threads) */
  window?: MergedWindow;
  error?: string;
}

/** What a merge needs of the store (aggregator/store implements it). */
export interface MergeStore {
  partialsOf(app: string, windowStart: number): { agentId: string; seq: number; host: string; body: Uint8Array }[];
  saveMergedWindow(w: MergedWindow & { latePartials: number }, status: 'closed'): void;
}

export class WindowMerger {
  /** sockets seen in earlier windows, for connections quiet on one side in a window */
  readonly flows = new FlowRegistry();

  constructor(
    private readonly store: MergeStore,
    private readonly decode: (body: Uint8Array) => PartialWindow,
  ) {}

  /** Merges and stores the window; throws what the store or decoder throws. */
  merge(job: MergeJob, withWindow: boolean): MergeResult {
    // a resent partial of an agent is stored once; several seqs of one agent for one window
    // (a restarted agent) are all its data
    const partials = this.store.partialsOf(job.app, job.windowStart).map((r) => {
      const p = this.decode(r.body);
      p.host = r.host;
      p.app = job.app;
      return p;
    });
    const merged = correlate(job.app, job.windowStart, job.windowMs, partials, this.flows);
    this.store.saveMergedWindow({ ...merged, latePartials: job.latePartials }, 'closed');
    const summary = { hosts: merged.hosts, edges: merged.edges.length, matchedFlows: merged.matchedFlows, unmatchedFlows: merged.unmatchedFlows };
    return withWindow ? { job, summary, window: merged } : { job, summary };
  }
}
