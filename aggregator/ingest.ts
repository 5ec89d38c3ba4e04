/**
 * From received partials to committed windows: partials are committed to the store in
 * batches (one transaction per batch, so 1,000 agents do not mean 1,000 fsyncs a second),
 * each agent is acknowledged only after the batch holding its partial committed, and closed
 * windows are handed to the merge queue (merge-queue.ts: correlate and store, on the merge
 * worker). Late partials re-merge their window. Hellos' agent rows ride in the next batch.
 */
import type { MergedWindow } from '../shared/graph.js';
import { WindowAssembler, type CloseReason, type WindowKey } from './assemble.js';
import type { MergeQueue } from './merge-queue.js';
import type { MergeResult, MergeSummary } from './merge.js';
import type { AgentInfo, PartialIn } from './store/index.js';

/** What ingest needs of the store (aggregator/store implements it). */
export interface IngestStore {
  commitPartials(batch: readonly PartialIn[], agents?: readonly AgentInfo[]): { committed: number; duplicates: number };
}

export interface IngestCounters {
  partials: number;
  duplicates: number;
  latePartials: number;
  batches: number;
  windowsClosed: number;
  windowsRemerged: number;
  closedComplete: number;
  closedGrace: number;
  commitErrors: number;
  /** ms from a window's end to its merged commit, last and worst */
  lastCloseLagMs: number;
  maxCloseLagMs: number;
}

interface Waiting {
  p: PartialIn;
  done: (err?: Error) => void;
}

export interface IngestOptions {
  graceMs: number;
  /** how long a partial may wait for others to share its transaction */
  batchMs: number;
  maxBatch: number;
  /** where closed windows go to be merged */
  merges: (onDone: (r: MergeResult) => void) => MergeQueue;
  now?: () => number;
  /** every merge stored: its summary, and the whole window when the queue was asked for it */
  onWindow?: (s: MergeSummary & { app: string; windowStart: number }, reason: CloseReason | 'late', w: MergedWindow | undefined) => void;
  onError?: (err: Error, what: string) => void;
}

/** A failed merge is asked again after 0.5 s, doubling up to 30 s. */
const MERGE_RETRY_MS = 500;
const MERGE_RETRY_MAX_MS = 30_000;

export class Ingest {
  readonly counters: IngestCounters = {
    partials: 0, duplicates: 0, latePartials: 0, batches: 0, windowsClosed: 0, windowsRemerged: 0,
    closedComplete: 0, closedGrace: 0, commitErrors: 0, lastCloseLagMs: 0, maxCloseLagMs: 0,
  };
  readonly assembler: WindowAssembler;
  private queue: Waiting[] = [];
  /** hellos since the last batch: their agent rows go in with it */
  private agents: AgentInfo[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly late = new Map<string, number>();
  private readonly now: () => number;
  readonly merges: MergeQueue;
  /** highest seq committed per agent: a partial at or below it is a resend (the store skips it too) */
  private readonly lastSeq = new Map<string, number>();
  /** merges that failed (a full disk, an I/O error), retried with backoff until they commit */
  private readonly mergeRetries = new Map<string, { attempts: number; timer?: NodeJS.Timeout }>();
  private closing = false;

  constructor(
    private readonly store: IngestStore,
    private readonly opts: IngestOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.merges = opts.merges((r) => this.merged(r));
    this.assembler = new WindowAssembler(opts.graceMs, (k, reason) => this.merge(k, reason));
  }

  /** What the store had committed from an agent when it connected (its Welcome), so its resends are known. */
  committedUpTo(agentId: string, seq: number): void {
    if (seq > (this.lastSeq.get(agentId) ?? -Infinity)) this.lastSeq.set(agentId, seq);
  }

  /** Queue a partial; `done` is called once it is committed (then the agent may be acked). */
  submit(p: PartialIn, done: (err?: Error) => void): void {
    this.queue.push({ p, done });
    if (this.queue.length >= this.opts.maxBatch) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.opts.batchMs);
  }

  /** An agent said hello: its row (Store.upsertAgent) is written with the next batch. */
  hello(a: AgentInfo): void {
    this.agents.push(a);
    this.timer ??= setTimeout(() => this.flush(), this.opts.batchMs);
  }

  /** Commit what is queued now, in one transaction. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    const agents = this.agents;
    if (batch.length === 0 && agents.length === 0) return;
    this.queue = [];
    this.agents = [];
    const keys = batch.map((w) => this.key(w.p));
    // the late flag is decided before the commit so it is stored with the partial
    batch.forEach((w, i) => (w.p.late = this.assembler.isClosed(keys[i].app, keys[i].windowStart)));
    // resends (a seq already committed, or twice in this batch) are skipped by the store; they
    // must not reach the assembler either, or a resend for a closed window counts as late
    const seen = new Set<string>();
    const resend = batch.map(({ p }) => {
      const id = `${p.agentId}\u0000${p.seq}`;
      const r = seen.has(id) || p.seq <= (this.lastSeq.get(p.agentId) ?? -Infinity);
      seen.add(id);
      return r;
    });
    let res: { committed: number; duplicates: number };
    try {
      res = this.store.commitPartials(
        batch.map((w) => w.p),
        agents,
      );
    } catch (e) {
      this.counters.commitErrors++;
      const err = e as Error;
      this.opts.onError?.(err, 'commit');
      this.agents = agents.concat(this.agents); // the rows are written with a later batch
      for (const w of batch) w.done(err);
      return;
    }
    this.counters.batches++;
    this.counters.partials += res.committed;
    this.counters.duplicates += res.duplicates;
    for (const w of batch) this.committedUpTo(w.p.agentId, w.p.seq);
    for (const w of batch) w.done();
    // when the store skipped other partials than those (an agent sending seqs out of order),
    // which ones is unknown: assemble them all, as a fresh partial must not be left out
    const skipResends = resend.filter(Boolean).length === res.duplicates;
    // assembly after the commit: a window merges only what is durably stored
    const remerge = new Map<string, WindowKey>();
    batch.forEach((w, i) => {
      const k = keys[i];
      if (skipResends && resend[i]) return;
      const id = `${k.app}\u0000${k.windowStart}`;
      if (this.assembler.add(k, w.p.agentId) === 'late') {
        this.counters.latePartials++;
        this.late.set(id, (this.late.get(id) ?? 0) + 1);
        remerge.set(id, k);
      }
    });
    for (const k of remerge.values()) this.merge(k, 'late');
  }

  /** The clock: windows past their grace close. */
  tick(): void {
    this.assembler.tick(this.now());
  }

  /** Commits what is queued and waits for every merge asked for; then stops the merge worker. */
  async close(): Promise<void> {
    // a window whose merge still fails stays open in the store and is merged at the next start
    this.closing = true;
    for (const r of this.mergeRetries.values()) if (r.timer) clearTimeout(r.timer);
    this.flush();
    await this.merges.close();
  }

  private key(p: PartialIn): WindowKey {
    return { app: p.app, windowStart: p.windowStart, windowMs: p.windowMs };
  }

  private merge(k: WindowKey, reason: CloseReason | 'late'): void {
    const id = `${k.app}\u0000${k.windowStart}`;
    this.merges.request({ app: k.app, windowStart: k.windowStart, windowMs: k.windowMs, reason, latePartials: this.late.get(id) ?? 0 });
  }

  private merged(r: MergeResult): void {
    const { job } = r;
    const id = `${job.app}\u0000${job.windowStart}`;
    if (r.error !== undefined || !r.summary) {
      this.counters.commitErrors++;
      this.opts.onError?.(new Error(r.error ?? 'no result'), `merge of ${job.app} window ${new Date(job.windowStart).toISOString()}`);
      // the window's partials are committed: merging again once the store takes writes loses nothing
      const retry = this.mergeRetries.get(id) ?? { attempts: 0 };
      retry.attempts++;
      if (!this.closing) {
        retry.timer = setTimeout(() => this.merges.request(job), Math.min(MERGE_RETRY_MAX_MS, MERGE_RETRY_MS * 2 ** Math.min(10, retry.attempts - 1)));
        retry.timer.unref?.();
      }
      this.mergeRetries.set(id, retry);
      return;
    }
    this.mergeRetries.delete(id);
    if (job.reason === 'late') this.counters.windowsRemerged++;
    else {
      this.counters.windowsClosed++;
      if (job.reason === 'complete') this.counters.closedComplete++;
      else this.counters.closedGrace++;
      const lag = this.now() - (job.windowStart + job.windowMs);
      this.counters.lastCloseLagMs = lag;
      if (lag > this.counters.maxCloseLagMs) this.counters.maxCloseLagMs = lag;
    }
    this.opts.onWindow?.({ ...r.summary, app: job.app, windowStart: job.windowStart }, job.reason, r.window);
  }
}
