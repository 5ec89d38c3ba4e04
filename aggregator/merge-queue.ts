/**
 * Merges to run, one at a time, in order, off the ingest path. A window asked for again while
 * its merge is still waiting (late partials arriving batch after batch) is merged once, with
 * everything committed by then: an overloaded aggregator re-merges a window once per merge
 * slot, not once per batch, so it degrades instead of spiralling.
 *
 * Runners: the merge worker (a worker thread with its own SQLite connection, merge-worker.ts),
 * or inline on the main thread — for a store that cannot be shared (`:memory:`), or when the
 * worker cannot start or dies (then its jobs are run again inline: a merge replaces the
 * window's edges, so running one twice is harmless).
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { projectRoot } from '../shared/project-root.js';
import type { MergeJob, MergeResult, WindowMerger } from './merge.js';
import type { MergeWorkerData } from './merge-worker.js';

export interface MergeRunner {
  readonly kind: 'worker' | 'inline';
  /** Resolves with the job's result (a failed merge is a result with `error`); rejects only when the runner itself failed. */
  run(job: MergeJob, withWindow: boolean): Promise<MergeResult>;
  close(): Promise<void>;
}

export class InlineRunner implements MergeRunner {
  readonly kind = 'inline';
  constructor(private readonly merger: WindowMerger) {}

  run(job: MergeJob, withWindow: boolean): Promise<MergeResult> {
    // a turn of the event loop first, so acks and reads go out between merges
    return new Promise((res) =>
      setImmediate(() => {
        try {
          res(this.merger.merge(job, withWindow));
        } catch (e) {
          res({ job, error: (e as Error).message });
        }
      }),
    );
  }

  async close(): Promise<void> {}
}

/** The compiled worker script: next to this module in dist/, or dist/ when running from source (vitest; `npm test` builds first). */
export function mergeWorkerFile(): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith('.js') ? join(here, '..', 'merge-worker.js') : join(projectRoot(), 'dist', 'aggregator', 'merge-worker.js');
}

export class WorkerRunner implements MergeRunner {
  readonly kind = 'worker';
  private readonly w: Worker;
  private waiting: { resolve: (r: MergeResult) => void; reject: (e: Error) => void } | undefined;
  private failed: Error | undefined;
  private closing = false;
  private readonly exited: Promise<void>;

  constructor(file: string, data: MergeWorkerData) {
    this.w = new Worker(pathToFileURL(file), { workerData: data });
    this.w.unref(); // held (ref) only while it has work, so an idle worker never keeps the process up
    this.exited = new Promise((res) => this.w.once('exit', () => res()));
    this.w.on('message', (m: MergeResult | { closed: true }) => {
      if ('closed' in m) return;
      const w = this.waiting;
      this.waiting = undefined;
      this.w.unref();
      w?.resolve(m);
    });
    this.w.on('error', (e) => this.fail(e));
    this.w.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`merge worker exited (code ${code})`));
    });
  }

  run(job: MergeJob, withWindow: boolean): Promise<MergeResult> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.w.ref();
      this.w.postMessage({ job, withWindow });
    });
  }

  /** Closes the worker's store and waits for the thread to end. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.failed) {
      await this.w.terminate();
      return;
    }
    this.w.ref();
    this.w.postMessage({ close: true });
    await this.exited;
  }

  private fail(e: Error): void {
    this.failed ??= e;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(e);
  }
}

const idOf = (j: { app: string; windowStart: number }): string => `${j.app}\u0000${j.windowStart}`;

export class MergeQueue {
  private pending = new Map<string, MergeJob>();
  private busy = false;
  private idle: (() => void)[] = [];

  constructor(
    private runner: MergeRunner,
    private readonly o: {
      /** pass merged windows whole to onDone (they are copied from the worker) */
      withWindow: boolean;
      onDone: (r: MergeResult) => void;
      /** the runner failed: merges go on with this one */
      fallback: (err: Error) => MergeRunner;
    },
  ) {}

  get kind(): 'worker' | 'inline' {
    return this.runner.kind;
  }

  get waiting(): number {
    return this.pending.size;
  }

  /** Asks for a window to be merged; a request for a window already waiting updates that one. */
  request(job: MergeJob): void {
    const q = this.pending.get(idOf(job));
    if (q) {
      q.latePartials = job.latePartials;
      if (job.reason !== 'late') q.reason = job.reason; // a first close stays counted as one
    } else this.pending.set(idOf(job), { ...job });
    this.pump();
  }

  /** Resolves once nothing is waiting or running. */
  drain(): Promise<void> {
    if (!this.busy && this.pending.size === 0) return Promise.resolve();
    return new Promise((res) => this.idle.push(res));
  }

  async close(): Promise<void> {
    await this.drain();
    await this.runner.close();
  }

  private pump(): void {
    if (this.busy) return;
    const first = this.pending.entries().next();
    if (first.done) {
      for (const f of this.idle.splice(0)) f();
      return;
    }
    const [id, job] = first.value;
    this.pending.delete(id);
    this.busy = true;
    this.runner.run(job, this.o.withWindow).then(
      (r) => {
        this.busy = false;
        this.o.onDone(r);
        this.pump();
      },
      (err: Error) => {
        this.busy = false;
        const failed = this.runner;
        this.runner = this.o.fallback(err);
        void failed.close().catch(() => {});
        // run it again first, folding in a request for the same window made meanwhile
        const again = this.pending.get(id);
        if (again) {
          if (job.reason !== 'late') again.reason = job.reason;
        } else this.pending = new Map([[id, job], ...this.pending]);
        this.pump();
      },
    );
  }
}

/** The worker runner when the store's file can be shared and the compiled worker exists, else undefined. */
export function startWorkerRunner(file: string, durability: 'full' | 'normal'): MergeRunner | undefined {
  if (file === '' || file === ':memory:') return undefined;
  const script = mergeWorkerFile();
  if (!existsSync(script)) return undefined;
  return new WorkerRunner(script, { file, durability });
}
