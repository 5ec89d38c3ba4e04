/**
 * From received partials to committed windows: partials are committed to the store in
 * batches (one transaction per batch, so 1,000 agents do not mean 1,000 fsyncs a second),
 * each agent is acknowledged only after the batch holding its partial committed, and closed
 * windows are merged (correlate) and stored. Late partials re-merge their window.
 */
import type { MergedWindow, PartialWindow } from '../shared/graph.js';
import { WindowAssembler, type CloseReason, type WindowKey } from './assemble.js';
import { FlowRegistry, correlate } from './correlate.js';
import type { PartialIn } from './store/index.js';

/** What ingest needs of the store (aggregator/store implements it). */
export interface IngestStore {
  commitPartials(batch: readonly PartialIn[]): { committed: number; duplicates: number };
  partialsOf(app: string, windowStart: number): { agentId: string; seq: number; host: string; body: Uint8Array }[];
  saveMergedWindow(w: MergedWindow & { latePartials: number }, status: 'closed'): void;
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
  /** the partial as the server decoded it on receipt, if it passed it */
  decoded?: PartialWindow;
}

export interface IngestOptions {
  graceMs: number;
  /** how long a partial may wait for others to share its transaction */
  batchMs: number;
  maxBatch: number;
  decode: (body: Uint8Array) => PartialWindow;
  now?: () => number;
  onWindow?: (w: MergedWindow, reason: CloseReason | 'late') => void;
  onError?: (err: Error, what: string) => void;
}

export class Ingest {
  readonly counters: IngestCounters = {
    partials: 0, duplicates: 0, latePartials: 0, batches: 0, windowsClosed: 0, windowsRemerged: 0,
    closedComplete: 0, closedGrace: 0, commitErrors: 0, lastCloseLagMs: 0, maxCloseLagMs: 0,
  };
  readonly assembler: WindowAssembler;
  private queue: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly late = new Map<string, number>();
  private readonly now: () => number;
  /** sockets seen in earlier windows, for connections quiet on one side in a window */
  readonly flows = new FlowRegistry();
  /** highest seq committed per agent: a partial at or below it is a resend (the store skips it too) */
  private readonly lastSeq = new Map<string, number>();
  /**
   * Committed partials of open windows as decoded on receipt, by window then `agent\0seq`, so
   * closing a window does not parse every stored body again (a fifth of the aggregator's CPU
   * at 1,000 agents × 200 edges, bench/aggregator.ts). The store still says which partials a
   * window has; a partial not found here (stored before a restart, late) is decoded from its
   * body. Dropped when the window merges, so it holds at most the windows within their grace.
   */
  private readonly decoded = new Map<string, Map<string, PartialWindow>>();

  constructor(
    private readonly store: IngestStore,
    private readonly opts: IngestOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.assembler = new WindowAssembler(opts.graceMs, (k, reason) => this.merge(k, reason));
  }

  /** What the store had committed from an agent when it connected (its Welcome), so its resends are known. */
  committedUpTo(agentId: string, seq: number): void {
    if (seq > (this.lastSeq.get(agentId) ?? -Infinity)) this.lastSeq.set(agentId, seq);
  }

  /**
   * Queue a partial; `done` is called once it is committed (then the agent may be acked).
   * `decoded`: the same partial in plain form, if the caller has it (saves decoding it again).
   */
  submit(p: PartialIn, done: (err?: Error) => void, decoded?: PartialWindow): void {
    this.queue.push({ p, done, decoded });
    if (this.queue.length >= this.opts.maxBatch) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.opts.batchMs);
  }

  /** Commit what is queued now, in one transaction. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
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
      res = this.store.commitPartials(batch.map((w) => w.p));
    } catch (e) {
      this.counters.commitErrors++;
      const err = e as Error;
      this.opts.onError?.(err, 'commit');
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
      if (w.decoded && !resend[i] && !this.assembler.isClosed(k.app, k.windowStart)) {
        let c = this.decoded.get(id);
        if (!c) this.decoded.set(id, (c = new Map()));
        c.set(`${w.p.agentId}\u0000${w.p.seq}`, w.decoded);
      }
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

  async close(): Promise<void> {
    this.flush();
  }

  private key(p: PartialIn): WindowKey {
    return { app: p.app, windowStart: p.windowStart, windowMs: p.windowMs };
  }

  private merge(k: WindowKey, reason: CloseReason | 'late'): void {
    const id = `${k.app}\u0000${k.windowStart}`;
    const cached = this.decoded.get(id);
    this.decoded.delete(id);
    try {
      const rows = this.store.partialsOf(k.app, k.windowStart);
      // a resent partial of an agent is stored once; several seqs of one agent for one
      // window (a restarted agent) are all its data
      const partials = rows.map((r) => ({ ...(cached?.get(`${r.agentId}\u0000${r.seq}`) ?? this.opts.decode(r.body)), host: r.host }));
      const merged = correlate(k.app, k.windowStart, k.windowMs, partials, this.flows);
      this.store.saveMergedWindow({ ...merged, latePartials: this.late.get(id) ?? 0 }, 'closed');
      if (reason === 'late') this.counters.windowsRemerged++;
      else {
        this.counters.windowsClosed++;
        if (reason === 'complete') this.counters.closedComplete++;
        else this.counters.closedGrace++;
        const lag = this.now() - (k.windowStart + k.windowMs);
        this.counters.lastCloseLagMs = lag;
        if (lag > this.counters.maxCloseLagMs) this.counters.maxCloseLagMs = lag;
      }
      this.opts.onWindow?.(merged, reason);
    } catch (e) {
      this.counters.commitErrors++;
      this.opts.onError?.(e as Error, `merge of ${k.app} window ${new Date(k.windowStart).toISOString()}`);
    }
  }
}
