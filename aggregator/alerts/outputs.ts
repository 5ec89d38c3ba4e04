/**
 * Alert outputs for the SOC (JSON Lines, syslog, webhook) behind one fan-out. Detection only
 * enqueues (synchronous, O(1)); each output has its own bounded queue and delivery loop, so a
 * slow or dead receiver never holds up scoring or the other outputs.
 *
 * Delivery, per output, in alert id order:
 * - a delivery that fails for a passing reason (network, timeout, HTTP 5xx/429, a full disk) is
 *   retried `retries` times with exponential backoff and jitter (or after the receiver's
 *   Retry-After); when the retries are used up the output counts a failure, says once that it
 *   is down, and keeps trying the same alert every `downRetryMs` (alerts behind it wait);
 * - a receiver that refuses the alert itself (HTTP 4xx) is not retried: counted failed and
 *   dropped for this output, with a log line naming the output and the reason;
 * - every alert is in the store (SQLite) before it is enqueued, and each output keeps a cursor
 *   there (store/deliveries.ts): after a restart, or when the in-memory queue is full, the
 *   undelivered alerts are read back from the store. The backlog is bounded (`maxBacklog`
 *   alerts per output; the oldest beyond it are skipped for that output, logged and counted
 *   as dropped, and stay in the store and the console).
 * Delivery is at least once: an alert in flight when the aggregator stops or crashes is sent
 * again after the restart; receivers deduplicate on the alert id.
 */
import type Database from 'better-sqlite3';
import { formatDuration } from '../../shared/duration.js';
import type { Logger } from '../../shared/log.js';
import { DeliveryCursors, type StoredAlert } from '../store/deliveries.js';
import type { AlertRow } from '../store/detection.js';

/** One alert as the outputs get it. */
export type AlertEvent = StoredAlert;

/** Why a delivery failed. `permanent`: the receiver refused this alert; retrying cannot help. */
export class DeliveryError extends Error {
  readonly permanent: boolean;
  /** the receiver asked to wait this long before the next try (HTTP Retry-After) */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, o: { permanent?: boolean; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: o.cause });
    this.name = 'DeliveryError';
    this.permanent = o.permanent === true;
    this.retryAfterMs = o.retryAfterMs;
  }
}

export interface AlertOutput {
  /**
   * Kind and destination, e.g. `webhook:https://siem.example/hook`: in log lines, as the
   * metrics' label, and the key of the output's delivery cursor in the store (an output given
   * a new name starts from the newest alert).
   */
  readonly name: string;
  /** quick retries of one alert before the output counts as down (default: the fan-out's) */
  readonly retries?: number;
  /**
   * Delivers one alert: resolves once the receiver has it (as far as the transport tells),
   * rejects (a DeliveryError, or any error: counted as passing) otherwise. `signal` aborts at
   * shutdown.
   */
  deliver(e: AlertEvent, signal: AbortSignal): Promise<void>;
  close(): Promise<void> | void;
}

/** Per output; plain numbers, read by the metrics. */
export interface OutputCounters {
  /** alerts the receiver has */
  delivered: number;
  /** tries after a failed one */
  retried: number;
  /** alerts refused by the receiver + times the output went down (its retries used up) */
  failed: number;
  /** alerts given up for this output: refused by the receiver, or beyond the backlog bound */
  dropped: number;
  /** alerts waiting for this output now (in memory and in the store) */
  queued: number;
  /** 1 while deliveries succeed, 0 while the output is down */
  up: number;
}

export interface AlertOutputsOptions {
  log: Logger;
  /**
   * The store's connection: outputs resume from their cursor after a restart and fall back on
   * the store when their queue is full. Without it (tests, tools) a full queue drops alerts.
   */
  db?: Database.Database;
  /** alerts held in memory per output before it reads the rest from the store (default 1000) */
  queueMax?: number;
  /** undelivered alerts kept per output; older ones are skipped (default 10,000) */
  maxBacklog?: number;
  /** quick retries for outputs that do not set their own (default 5) */
  retries?: number;
  /** first retry delay, doubled each try, ±50% jitter (default 500 ms) */
  backoffMs?: number;
  /** longest delay between quick retries (default 30 s) */
  maxBackoffMs?: number;
  /** a down output tries again this often (default 30 s, with jitter) */
  downRetryMs?: number;
  /** at close, how long queued alerts may take to go out (default 2 s); the rest wait in the store */
  drainMs?: number;
  /** a failure was counted (DetectionCounters.outputFailures) */
  onFailure?: (output: string) => void;
  now?: () => number;
}

type Resolved = Required<Omit<AlertOutputsOptions, 'db' | 'onFailure'>> & Pick<AlertOutputsOptions, 'db' | 'onFailure'>;

const DOWN_LOG_EVERY_MS = 5 * 60_000;
const SAVE_EVERY_MS = 250;

/** Waits `ms`, or less if `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((res) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      res();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

const jitter = (ms: number) => Math.round(ms * (0.5 + Math.random() / 2));

class Runner {
  readonly counters: OutputCounters = { delivered: 0, retried: 0, failed: 0, dropped: 0, queued: 0, up: 1 };
  private queue: AlertEvent[] = [];
  /** alerts not in `queue` wait in the store: read back, in id order, once `queue` is empty */
  private fromStore = false;
  private inStore = 0;
  private cursor = 0;
  private savedCursor = 0;
  private lastSave = 0;
  private state: 'idle' | 'busy' | 'backoff' = 'busy';
  private wake: (() => void) | undefined;
  private readonly abort = new AbortController();
  private closing = false;
  private downSince: number | undefined;
  private lastDownLog = 0;
  private lastStoreError = 0;
  private overflowLogged = false;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    readonly output: AlertOutput,
    private readonly o: Resolved,
    private readonly cursors: DeliveryCursors | undefined,
  ) {
    if (cursors) {
      this.cursor = this.savedCursor = cursors.init(output.name);
      const backlog = cursors.countAfter(this.cursor);
      if (backlog > 0) {
        this.fromStore = true;
        this.inStore = backlog;
        o.log.info({ output: output.name, backlog, after: this.cursor }, 'alert output: sending the alerts it had not delivered before the restart');
      }
    }
    this.updateQueued();
    this.loop = this.run().catch((e: Error) => {
      // a bug, not a receiver's fault: say so; the alerts stay in the store for the next start
      o.log.error({ output: output.name, err: e.message }, 'alert output stopped; undelivered alerts are sent after the next start');
      this.counters.up = 0;
      this.stopped = true;
    });
  }

  get name(): string {
    return this.output.name;
  }

  enqueue(e: AlertEvent): void {
    if (this.stopped || this.abort.signal.aborted || this.closing) return; // in the store: sent after the next start
    if (!this.fromStore && this.queue.length < this.o.queueMax) {
      this.queue.push(e);
      this.overflowLogged = false;
    } else if (this.cursors) {
      this.fromStore = true;
      this.inStore++;
    } else {
      this.counters.dropped++;
      this.o.onFailure?.(this.name);
      if (!this.overflowLogged) {
        this.overflowLogged = true;
        this.o.log.error({ output: this.name, alert: e.alert.id, queueMax: this.o.queueMax }, 'alert output queue full and no store to fall back on: alerts dropped for this output');
      }
    }
    this.updateQueued();
    this.wake?.();
  }

  /** Nothing to do now, or waiting to retry: the state a test (or `idle()`) waits for. */
  get settled(): boolean {
    if (this.stopped || this.abort.signal.aborted || this.state === 'backoff') return true;
    return this.state === 'idle' && this.queue.length === 0 && !this.fromStore;
  }

  private updateQueued(): void {
    this.counters.queued = this.queue.length + this.inStore;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      if (this.queue.length === 0 && this.fromStore && !this.refill()) {
        this.state = 'backoff';
        await sleep(jitter(this.o.downRetryMs), signal);
        continue;
      }
      const e = this.queue[0];
      if (!e) {
        this.save(true);
        if (this.closing) break;
        this.state = 'idle';
        await new Promise<void>((res) => {
          this.wake = res;
          if (signal.aborted) res();
        });
        this.wake = undefined;
        this.state = 'busy';
        continue;
      }
      this.state = 'busy';
      if (!(await this.deliver(e))) break;
      this.queue.shift();
      this.cursor = Math.max(this.cursor, e.alert.id);
      this.updateQueued();
      this.save(false);
    }
    this.save(true);
  }

  /** Reads the next alerts from the store into the queue; false when the store failed. */
  private refill(): boolean {
    const c = this.cursors!;
    try {
      let pending = c.countAfter(this.cursor);
      if (pending > this.o.maxBacklog) {
        const through = c.keepNewest(this.cursor, this.o.maxBacklog);
        const skipped = pending - this.o.maxBacklog;
        this.counters.dropped += skipped;
        this.o.onFailure?.(this.name);
        this.o.log.error(
          { output: this.name, dropped: skipped, maxBacklog: this.o.maxBacklog, from: this.cursor + 1, through },
          `alert output backlog over ${this.o.maxBacklog} alerts: the oldest ${skipped} are not sent to this output (they stay in the store)`,
        );
        this.cursor = through;
        pending = this.o.maxBacklog;
        this.save(true);
      }
      const batch = c.after(this.cursor, this.o.queueMax);
      this.queue.push(...batch);
      // read synchronously: an alert recorded after this read is enqueued in memory, in order
      if (batch.length >= pending) {
        this.fromStore = false;
        this.inStore = 0;
      } else this.inStore = pending - batch.length;
      this.updateQueued();
      return true;
    } catch (e) {
      if (this.o.now() - this.lastStoreError > DOWN_LOG_EVERY_MS) {
        this.lastStoreError = this.o.now();
        this.o.log.error({ output: this.name, err: (e as Error).message }, 'alert output cannot read its backlog from the store; trying again');
      }
      return false;
    }
  }

  /** Persists the cursor (coalesced while a backlog drains); a failure is retried at the next call. */
  private save(force: boolean): void {
    if (!this.cursors || this.cursor === this.savedCursor) return;
    const now = this.o.now();
    if (!force && now - this.lastSave < SAVE_EVERY_MS) return;
    try {
      this.cursors.save(this.name, this.cursor);
      this.savedCursor = this.cursor;
      this.lastSave = now;
    } catch (e) {
      if (now - this.lastStoreError > DOWN_LOG_EVERY_MS) {
        this.lastStoreError = now;
        this.o.log.error({ output: this.name, err: (e as Error).message, cursor: this.cursor }, 'alert output cannot save how far it got; alerts may be sent again after a restart');
      }
    }
  }

  /** One alert until it is delivered or given up: true; false when shutting down first. */
  private async deliver(e: AlertEvent): Promise<boolean> {
    const signal = this.abort.signal;
    const retries = this.output.retries ?? this.o.retries;
    for (let attempt = 0; ; ) {
      if (signal.aborted) return false;
      try {
        await this.output.deliver(e, signal);
      } catch (err) {
        if (signal.aborted) return false;
        const d = err instanceof DeliveryError ? err : new DeliveryError((err as Error).message ?? String(err), { cause: err });
        if (d.permanent) {
          this.counters.failed++;
          this.counters.dropped++;
          this.o.onFailure?.(this.name);
          this.o.log.error(
            { output: this.name, alert: e.alert.id, app: e.alert.app, reason: d.message },
            `alert refused by ${this.name}: ${d.message}; not retried, dropped for this output (it stays in the store)`,
          );
          return true;
        }
        // shutting down: no more tries; the alert is sent after the next start
        if (this.closing) return false;
        attempt++;
        let wait: number;
        const now = this.o.now();
        if (attempt <= retries) {
          wait = d.retryAfterMs ?? jitter(Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** (attempt - 1)));
          if (attempt === 1 && this.downSince === undefined) {
            this.o.log.warn({ output: this.name, alert: e.alert.id, err: d.message, retryInMs: wait }, `alert delivery to ${this.name} failed: ${d.message}; retrying`);
          }
        } else {
          wait = d.retryAfterMs ?? jitter(this.o.downRetryMs);
          if (this.downSince === undefined) {
            this.downSince = now;
            this.lastDownLog = now;
            this.counters.failed++;
            this.counters.up = 0;
            this.o.onFailure?.(this.name);
            this.o.log.error(
              { output: this.name, alert: e.alert.id, err: d.message, retries, queued: this.counters.queued, retryEveryMs: this.o.downRetryMs },
              `alert output ${this.name} is down: ${d.message} (after ${retries} retries); its alerts wait in the store and it is tried again every ${formatDuration(this.o.downRetryMs)}`,
            );
          } else if (now - this.lastDownLog >= DOWN_LOG_EVERY_MS) {
            this.lastDownLog = now;
            this.o.log.error(
              { output: this.name, alert: e.alert.id, err: d.message, downForMs: now - this.downSince, queued: this.counters.queued },
              `alert output ${this.name} is still down: ${d.message}`,
            );
          }
        }
        this.counters.retried++;
        this.state = 'backoff';
        await sleep(wait, signal);
        this.state = 'busy';
        continue;
      }
      this.counters.delivered++;
      if (this.downSince !== undefined) {
        this.o.log.info(
          { output: this.name, downForMs: this.o.now() - this.downSince, queued: this.counters.queued },
          `alert output ${this.name} is back: sending the alerts that waited`,
        );
        this.downSince = undefined;
        this.counters.up = 1;
      }
      return true;
    }
  }

  /** Lets the queue go out for up to `drainMs` (not while the output is failing), then stops. */
  async close(drainMs: number): Promise<void> {
    this.closing = true;
    if (this.state === 'backoff' || this.downSince !== undefined) this.abort.abort();
    this.wake?.();
    const t = setTimeout(() => this.abort.abort(), drainMs);
    await this.loop;
    clearTimeout(t);
    this.abort.abort();
    try {
      await this.output.close();
    } catch (e) {
      this.o.log.warn({ output: this.name, err: (e as Error).message }, 'alert output did not close cleanly');
    }
  }
}

/** The fan-out: one queue and delivery loop per output. */
export class AlertOutputs {
  /** per output name: delivered, retried, failed, dropped, queued, up */
  readonly counters: Record<string, OutputCounters> = {};
  private readonly runners: Runner[] = [];
  private readonly o: Resolved;

  constructor(outputs: readonly AlertOutput[], o: AlertOutputsOptions) {
    const maxBacklog = Math.max(1, o.maxBacklog ?? 10_000);
    this.o = {
      log: o.log,
      db: o.db,
      onFailure: o.onFailure,
      maxBacklog,
      queueMax: Math.min(maxBacklog, Math.max(1, o.queueMax ?? 1000)),
      retries: o.retries ?? 5,
      backoffMs: o.backoffMs ?? 500,
      maxBackoffMs: o.maxBackoffMs ?? 30_000,
      downRetryMs: o.downRetryMs ?? 30_000,
      drainMs: o.drainMs ?? 2000,
      now: o.now ?? Date.now,
    };
    const seen = new Set<string>();
    for (const out of outputs) {
      if (seen.has(out.name)) throw new Error(`two alert outputs are both ${out.name}: give each destination once`);
      seen.add(out.name);
    }
    const cursors = o.db ? new DeliveryCursors(o.db, this.o.now) : undefined;
    for (const out of outputs) {
      const r = new Runner(out, this.o, cursors);
      this.runners.push(r);
      this.counters[out.name] = r.counters;
    }
  }

  get names(): string[] {
    return this.runners.map((r) => r.name);
  }

  /** Hands a stored alert to every output; returns at once. */
  enqueue(alert: AlertRow, incident: { id: number; isNew: boolean }): void {
    const e: AlertEvent = { alert, incident };
    for (const r of this.runners) r.enqueue(e);
  }

  /** Resolves when every output has sent what it was given, or is waiting to retry. */
  async settled(): Promise<void> {
    while (!this.runners.every((r) => r.settled)) await new Promise((res) => setTimeout(res, 5));
  }

  /** Stops every output: queued alerts get `drainMs` to go out; the rest are sent after the next start. */
  async close(drainMs = this.o.drainMs): Promise<void> {
    await Promise.all(this.runners.map((r) => r.close(drainMs)));
  }
}
