import type { SyscallEvent } from '../../shared/event.js';

/**
 * Something the collector could not use: a malformed or truncated line, an unknown call,
 * a call left unfinished at the end of the trace. Reported, counted, never fatal.
 */
export interface CollectorProblem {
  /** counter name it was counted under, e.g. "malformed", "unfinishedAtEnd" */
  kind: string;
  message: string;
  /** 1-based line number in the trace text, where there is one */
  line?: number;
  /** the offending text, cut to a reasonable length */
  text?: string;
}

export type ProblemSink = (p: CollectorProblem) => void;

/** Counters every collector keeps next to itself (Tetragon style): what it read and dropped. */
export type CollectorCounters = Record<string, number>;

/**
 * A collector is an engine that yields batches of events in time order per thread
 * (live collectors: in arrival order). It ends when the trace or the traced processes end,
 * or when stop() is called.
 */
export interface Collector {
  readonly name: string;
  /** live collectors: resolves once tracing has begun (attached, or the command started) */
  start?(): Promise<void>;
  events(): AsyncIterable<SyscallEvent[]>;
  stop(): Promise<void>;
  counters(): CollectorCounters;
}

/** Thrown when a collector cannot start at all (tool missing, no permission): message says why. */
export class CollectorUnavailable extends Error {
  constructor(
    readonly collector: string,
    message: string,
  ) {
    super(message);
    this.name = 'CollectorUnavailable';
  }
}

/** The same collector, its event batches also handed to `tap` on their way (progress, side folds). */
export function tapCollector(c: Collector, tap: (batch: SyscallEvent[]) => void): Collector {
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
