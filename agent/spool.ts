/**
 * Durable local queue of encoded windows (DESIGN §3.4): every closed window is appended here
 * before it is sent, resent from here after a reconnect, and deleted only when the aggregator
 * acknowledges it as committed. One SQLite file (WAL), one agent at a time.
 *
 * - Sequence numbers are per agent, start at 1, are persisted with each entry in the same
 *   transaction, and are never reused (acked and dropped seqs are gone for good).
 * - Bounded by bytes (sum of body lengths; the file itself is somewhat larger: pages, WAL),
 *   optionally by entry count, and by age (time since append, by the spool's clock — not
 *   windowStart, which for a replayed trace may lie years in the past). What has to go is the
 *   OLDEST entries, and every drop is returned to the caller, who logs it: this module does
 *   no logging.
 * - `append` returning means the entry is committed: durable against a kill of the agent with
 *   either sync level, against power loss with 'FULL' (the default; see `DEFAULT_SYNC`).
 * - A method that throws (disk full, I/O error) has changed nothing, on disk or in memory.
 * - A corrupt file found at open is renamed aside and a fresh spool started; `recovered` says
 *   so, for the caller to log. Damage that appears while running makes calls throw; closing
 *   and opening again then goes through the same recovery.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { isCorruption, moveAside, openDatabase, type SyncLevel } from './spool-open.js';

export { SCHEMA_VERSION, SpoolError, type SpoolErrorCode, type SyncLevel } from './spool-open.js';

/**
 * FULL: the WAL is fsynced at every commit, so an append that returned survives a power loss,
 * not only a process kill. NORMAL syncs only at checkpoints: same safety against a kill, but
 * the last commits may vanish on power loss — and those are exactly the windows the spool
 * exists to keep. Measured on the 2-core dev VM (8 KiB bodies, `node dist/bench/spool.js
 * 10000`, runs spread by other load): FULL 1,300–3,100 appends/s, NORMAL 3,300–7,300/s; one
 * fsync costs ~50 µs there (virtual disk with a write cache). On a disk where fsync takes
 * 1–10 ms FULL still gives 100–1,000/s. An agent appends one window per window length (≥ 1 s),
 * so FULL leaves two orders of magnitude of headroom even then: FULL it is.
 */
export const DEFAULT_SYNC: SyncLevel = 'FULL';

export interface SpoolLimits {
  /** bound on the sum of body bytes held */
  maxBytes: number;
  /** entries appended longer ago than this are dropped (on append and on `expire`) */
  maxAgeMs: number;
  /** optional bound on the number of entries held */
  maxEntries?: number;
}

export interface SpoolOptions {
  /** wall clock in ms; injectable for tests */
  clock?: () => number;
  synchronous?: SyncLevel;
}

export type DropReason = 'size' | 'age';

export interface DropInfo {
  seq: number;
  windowStart: number;
  bytes: number;
  reason: DropReason;
}

export interface PendingEntry {
  seq: number;
  windowStart: number;
  body: Uint8Array;
}

export interface AppendResult {
  seq: number;
  /** entries removed by this append to respect the limits, oldest first (may include `seq`
   *  itself when a single body is larger than maxBytes) */
  dropped: DropInfo[];
}

export interface AckResult {
  /** entries deleted by this ack (0 when repeated: acks are idempotent) */
  removed: number;
  bytes: number;
  /** the ack named a seq this spool never issued; nothing was deleted */
  ignored: boolean;
}

/** Set when `open` found a corrupt file: the caller should log it as an error. */
export interface SpoolRecovery {
  /** where the corrupt file now is (its -wal beside it, if there was one) */
  movedTo: string;
  /** what SQLite or the integrity check said */
  error: string;
  /** first seq of the fresh spool (see `open`) */
  firstSeq: number;
}

/** Totals over the life of the spool file (persisted), plus what it holds now. */
export interface SpoolStats {
  lastSeq: number;
  entriesHeld: number;
  bytesHeld: number;
  /** lowest seq held, or null when empty */
  oldestSeq: number | null;
  appended: number;
  appendedBytes: number;
  acked: number;
  ackedBytes: number;
  dropped: Record<DropReason, { entries: number; bytes: number }>;
  /** acks naming a seq beyond lastSeq, ignored */
  ackUnknown: number;
}

/** The persisted `state` row, in memory; mirrors the file after every commit. */
interface State {
  lastSeq: number;
  appended: number;
  appendedBytes: number;
  acked: number;
  ackedBytes: number;
  droppedSize: number;
  droppedSizeBytes: number;
  droppedAge: number;
  droppedAgeBytes: number;
  ackUnknown: number;
  entriesHeld: number;
  bytesHeld: number;
}

interface MetaRow {
  seq: number;
  windowStart: number;
  bytes: number;
}

function prepare(db: Database.Database) {
  return {
    insert: db.prepare('INSERT INTO entries (seq, window_start, appended_at, bytes, body) VALUES (?, ?, ?, ?, ?)'),
    saveState: db.prepare(`UPDATE state SET last_seq = @lastSeq, appended = @appended, appended_bytes = @appendedBytes,
      acked = @acked, acked_bytes = @ackedBytes, dropped_size = @droppedSize, dropped_size_bytes = @droppedSizeBytes,
      dropped_age = @droppedAge, dropped_age_bytes = @droppedAgeBytes, ack_unknown = @ackUnknown WHERE id = 1`),
    aged: db.prepare('SELECT seq, window_start AS windowStart, bytes FROM entries WHERE appended_at < ? ORDER BY seq'),
    deleteAged: db.prepare('DELETE FROM entries WHERE appended_at < ?'),
    oldest: db.prepare('SELECT seq, window_start AS windowStart, bytes FROM entries ORDER BY seq'),
    deleteUpTo: db.prepare('DELETE FROM entries WHERE seq <= ?'),
    deleteOne: db.prepare('DELETE FROM entries WHERE seq = ? RETURNING bytes'),
    countUpTo: db.prepare('SELECT count(*) AS n, total(bytes) AS b FROM entries WHERE seq <= ?'),
    pending: db.prepare('SELECT seq, window_start AS windowStart, body FROM entries WHERE seq > ? ORDER BY seq LIMIT ?'),
    minSeq: db.prepare('SELECT min(seq) AS s FROM entries'),
  };
}

export class Spool {
  private state: State;
  private readonly stmts: ReturnType<typeof prepare>;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly maxEntries: number;
  private closed = false;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
    limits: SpoolLimits,
    private readonly clock: () => number,
    /** set when a corrupt file was moved aside at open */
    readonly recovered: SpoolRecovery | undefined,
  ) {
    this.maxBytes = limits.maxBytes;
    this.maxAgeMs = limits.maxAgeMs;
    this.maxEntries = limits.maxEntries ?? Infinity;
    this.stmts = prepare(db);
    this.state = loadState(db);
  }

  /**
   * Creates or opens the spool at `path` (parent directories are created).
   *
   * A corrupt file is renamed to `<path>.corrupt-<time>` and a fresh spool started, reported in
   * `spool.recovered`. Its sequence starts at the clock in ms, not at 1: the aggregator keeps
   * the highest seq it committed for this agent and ignores anything at or below it as a
   * resend, so restarting at 1 would have our next windows discarded. Seqs from a clock floor
   * stay ahead of any earlier ones as long as fewer than 1,000 windows per second were appended.
   *
   * Throws SpoolError for what the agent must not resolve by itself: a file from a newer
   * schema ('newer-schema'), the file locked by another process ('in-use'), or another
   * program's SQLite database at this path ('not-a-spool'). Other errors (permissions,
   * invalid limits) are thrown as they are.
   */
  static open(path: string, limits: SpoolLimits, options: SpoolOptions = {}): Spool {
    checkLimits(limits);
    const clock = options.clock ?? Date.now;
    const sync = options.synchronous ?? DEFAULT_SYNC;
    mkdirSync(dirname(path), { recursive: true });
    try {
      return new Spool(openDatabase(path, sync, 1).db, path, limits, clock, undefined);
    } catch (e) {
      if (!isCorruption(e)) throw e;
      const now = clock();
      const movedTo = moveAside(path, now);
      const firstSeq = Math.max(1, Math.floor(now));
      const { db } = openDatabase(path, sync, firstSeq);
      const error = e instanceof Error ? e.message : String(e);
      return new Spool(db, path, limits, clock, { movedTo, error, firstSeq });
    }
  }

  /**
   * Stores one window durably under the next seq, then drops what the limits no longer allow:
   * entries older than maxAgeMs, then the oldest entries until bytes and count fit.
   */
  append(windowStart: number, body: Uint8Array): AppendResult {
    this.assertOpen();
    if (!Number.isFinite(windowStart)) throw new TypeError(`windowStart must be a finite number, got ${windowStart}`);
    if (!(body instanceof Uint8Array)) throw new TypeError('body must be a Uint8Array');
    const now = this.clock();
    const bytes = body.byteLength;
    return this.mutate((s) => {
      const seq = ++s.lastSeq;
      s.appended++;
      s.appendedBytes += bytes;
      const dropped = this.dropAged(s, now);
      if (bytes > this.maxBytes) {
        // Cannot fit even alone: emptying the spool for it would lose everything else too.
        // It takes its seq (so the gap is visible downstream) and is reported as dropped.
        this.account(s, { seq, windowStart, bytes, reason: 'size' });
        dropped.push({ seq, windowStart, bytes, reason: 'size' });
        return { seq, dropped };
      }
      this.stmts.insert.run(seq, windowStart, now, bytes, body);
      s.entriesHeld++;
      s.bytesHeld += bytes;
      dropped.push(...this.dropForSize(s));
      return { seq, dropped };
    });
  }

  /** Drops entries appended longer than maxAgeMs before `now`; returns them, oldest first. */
  expire(now: number = this.clock()): DropInfo[] {
    this.assertOpen();
    return this.mutate((s) => this.dropAged(s, now));
  }

  /** Held entries with seq > afterSeq, in seq order, at most `limit` of them. */
  pending(afterSeq = 0, limit = Infinity): PendingEntry[] {
    this.assertOpen();
    if (!(limit >= 0)) throw new RangeError(`limit must be ≥ 0, got ${limit}`);
    // SQLite reads a negative LIMIT as "no limit"
    return this.stmts.pending.all(afterSeq, Number.isFinite(limit) ? Math.floor(limit) : -1) as PendingEntry[];
  }

  /**
   * Deletes every entry with seq ≤ uptoSeq: the aggregator commits each agent's windows in
   * order, so one ack covers all before it. Repeating an ack does nothing. An ack beyond
   * lastSeq names a window this spool never issued (an aggregator confused about who we are,
   * or a spool replaced since): it is ignored and counted in `ackUnknown`.
   */
  ack(uptoSeq: number): AckResult {
    this.assertOpen();
    if (!Number.isSafeInteger(uptoSeq)) throw new TypeError(`ack needs an integer seq, got ${uptoSeq}`);
    if (uptoSeq > this.state.lastSeq) {
      this.mutate((s) => void s.ackUnknown++);
      return { removed: 0, bytes: 0, ignored: true };
    }
    // Read first, so that a repeated ack costs no write (and no fsync).
    const held = this.stmts.countUpTo.get(uptoSeq) as { n: number; b: number };
    if (held.n === 0) return { removed: 0, bytes: 0, ignored: false };
    return this.mutate((s) => {
      const removed = this.stmts.deleteUpTo.run(uptoSeq).changes;
      s.acked += removed;
      s.ackedBytes += held.b;
      s.entriesHeld -= removed;
      s.bytesHeld -= held.b;
      return { removed, bytes: held.b, ignored: false };
    });
  }

  /**
   * Removes one entry the aggregator refused (it fails validation there and would be refused
   * again on every resend, holding up every window after it). Returns its size, or undefined.
   */
  discard(seq: number): number | undefined {
    this.assertOpen();
    return this.mutate((s) => {
      const row = this.stmts.deleteOne.get(seq) as { bytes: number } | undefined;
      if (!row) return undefined;
      s.entriesHeld--;
      s.bytesHeld -= row.bytes;
      return row.bytes;
    });
  }

  /**
   * Moves the sequence past `seq` when the aggregator has committed further than this spool
   * ever issued (the spool file was lost or replaced): new windows must not be taken for
   * resends of old ones and discarded.
   */
  advanceTo(seq: number): boolean {
    this.assertOpen();
    if (!Number.isSafeInteger(seq) || seq <= this.state.lastSeq) return false;
    this.mutate((s) => void (s.lastSeq = seq));
    return true;
  }

  /** The last seq issued (0 before the first append); persisted, never decreases. */
  lastSeq(): number {
    return this.state.lastSeq;
  }

  stats(): SpoolStats {
    this.assertOpen();
    const s = this.state;
    const oldest = (this.stmts.minSeq.get() as { s: number | null }).s;
    return {
      lastSeq: s.lastSeq,
      entriesHeld: s.entriesHeld,
      bytesHeld: s.bytesHeld,
      oldestSeq: oldest,
      appended: s.appended,
      appendedBytes: s.appendedBytes,
      acked: s.acked,
      ackedBytes: s.ackedBytes,
      dropped: {
        size: { entries: s.droppedSize, bytes: s.droppedSizeBytes },
        age: { entries: s.droppedAge, bytes: s.droppedAgeBytes },
      },
      ackUnknown: s.ackUnknown,
    };
  }

  /** Checkpoints and closes the file (removing the -wal); calling it again does nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /**
   * Runs `fn` on a copy of the state inside one transaction that also saves the state row;
   * the in-memory state is replaced only once the commit succeeded, so a failed write leaves
   * memory and file agreeing.
   */
  private mutate<T>(fn: (s: State) => T): T {
    const s = { ...this.state };
    const out = this.db.transaction(() => {
      const r = fn(s);
      this.stmts.saveState.run(s);
      return r;
    })();
    this.state = s;
    return out;
  }

  private dropAged(s: State, now: number): DropInfo[] {
    if (!Number.isFinite(this.maxAgeMs)) return [];
    const cutoff = now - this.maxAgeMs;
    // by the appended_at index: costs nothing when no entry is that old
    const rows = this.stmts.aged.all(cutoff) as MetaRow[];
    if (rows.length === 0) return [];
    this.stmts.deleteAged.run(cutoff);
    return rows.map((r) => this.account(s, { ...r, reason: 'age' }, true));
  }

  private dropForSize(s: State): DropInfo[] {
    if (s.bytesHeld <= this.maxBytes && s.entriesHeld <= this.maxEntries) return [];
    const victims: DropInfo[] = [];
    let bytes = s.bytesHeld;
    let entries = s.entriesHeld;
    for (const r of this.stmts.oldest.iterate() as IterableIterator<MetaRow>) {
      if (bytes <= this.maxBytes && entries <= this.maxEntries) break;
      victims.push({ ...r, reason: 'size' });
      bytes -= r.bytes;
      entries--;
    }
    // victims are a prefix in seq order, so one range delete removes exactly them
    if (victims.length > 0) this.stmts.deleteUpTo.run(victims[victims.length - 1].seq);
    return victims.map((d) => this.account(s, d, true));
  }

  /** Counts a drop; `held` when the entry had been stored (and so leaves the held totals). */
  private account(s: State, d: DropInfo, held = false): DropInfo {
    if (d.reason === 'size') {
      s.droppedSize++;
      s.droppedSizeBytes += d.bytes;
    } else {
      s.droppedAge++;
      s.droppedAgeBytes += d.bytes;
    }
    if (held) {
      s.entriesHeld--;
      s.bytesHeld -= d.bytes;
    }
    return d;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`spool ${this.path} is closed`);
  }
}

function checkLimits(l: SpoolLimits): void {
  const positive = (name: string, v: number | undefined) => {
    if (typeof v !== 'number' || !(v > 0)) throw new RangeError(`spool limit ${name} must be a positive number (Infinity for none), got ${v}`);
  };
  positive('maxBytes', l.maxBytes);
  positive('maxAgeMs', l.maxAgeMs);
  if (l.maxEntries !== undefined) positive('maxEntries', l.maxEntries);
}

function loadState(db: Database.Database): State {
  const row = db
    .prepare(
      `SELECT last_seq AS lastSeq, appended, appended_bytes AS appendedBytes, acked, acked_bytes AS ackedBytes,
        dropped_size AS droppedSize, dropped_size_bytes AS droppedSizeBytes, dropped_age AS droppedAge,
        dropped_age_bytes AS droppedAgeBytes, ack_unknown AS ackUnknown FROM state WHERE id = 1`,
    )
    .get() as Omit<State, 'entriesHeld' | 'bytesHeld'>;
  const held = db.prepare('SELECT count(*) AS n, total(bytes) AS b FROM entries').get() as { n: number; b: number };
  return { ...row, entriesHeld: held.n, bytesHeld: held.b };
}
