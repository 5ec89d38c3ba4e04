/**
 * Opening the spool's SQLite file: pragmas, schema, and telling a corrupt file (moved aside,
 * the agent carries on with a fresh spool) from conditions the operator must fix (a newer
 * schema, another process holding the file, a file that is some other program's database).
 */
import Database from 'better-sqlite3';
import { existsSync, renameSync } from 'node:fs';

/** Bumped with every change to the tables below; migrations go in `createOrMigrate`. */
export const SCHEMA_VERSION = 1;

export type SyncLevel = 'FULL' | 'NORMAL';

export type SpoolErrorCode = 'newer-schema' | 'in-use' | 'not-a-spool';

/** A spool file the agent must not touch on its own; the message says what to do. */
export class SpoolError extends Error {
  override readonly name = 'SpoolError';
  constructor(
    readonly code: SpoolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Thrown inside this module when our own checks find damage; handled like SQLITE_CORRUPT. */
class CorruptSpool extends Error {}

// seq is the rowid: seq order is storage order, and "oldest first" is a walk of the b-tree.
// body is the last column, so scans of the small columns never read its overflow pages.
// last_seq is kept in `state`, not derived from max(seq): acked entries are deleted, and a
// seq must never be issued twice. Counters live beside it, updated in the same transaction,
// so the totals survive restarts just as the entries do.
const SCHEMA = `
CREATE TABLE entries (
  seq          INTEGER PRIMARY KEY,
  window_start INTEGER NOT NULL,
  appended_at  INTEGER NOT NULL,
  bytes        INTEGER NOT NULL,
  body         BLOB NOT NULL
);
CREATE INDEX entries_by_age ON entries(appended_at);
CREATE TABLE state (
  id                 INTEGER PRIMARY KEY CHECK (id = 1),
  last_seq           INTEGER NOT NULL,
  appended           INTEGER NOT NULL,
  appended_bytes     INTEGER NOT NULL,
  acked              INTEGER NOT NULL,
  acked_bytes        INTEGER NOT NULL,
  dropped_size       INTEGER NOT NULL,
  dropped_size_bytes INTEGER NOT NULL,
  dropped_age        INTEGER NOT NULL,
  dropped_age_bytes  INTEGER NOT NULL,
  ack_unknown        INTEGER NOT NULL
);
`;

export interface OpenedDb {
  db: Database.Database;
  /** true when the schema was created now (new or empty file) */
  created: boolean;
}

/**
 * Opens (or creates) the file and checks it. Throws SpoolError for conditions to report,
 * and SqliteError/CorruptSpool for damage (see `isCorruption`).
 */
export function openDatabase(path: string, sync: SyncLevel, firstSeq: number): OpenedDb {
  // A short busy timeout: the only other holder can be a second agent on the same spool,
  // and waiting for it would not help.
  const db = new Database(path, { timeout: 250 });
  try {
    // EXCLUSIVE before WAL: no -shm file, and the file stays locked while this agent runs,
    // so a second agent pointed at the same spool fails at open instead of interleaving
    // its sequence numbers with ours. The lock goes with the process, also on SIGKILL.
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`spool ${path}: could not switch to WAL (journal_mode=${String(mode)})`);
    db.pragma(`synchronous = ${sync}`);
    const created = createOrMigrate(db, path, firstSeq);
    // Check every page once at start (one read of the file, about 1 s per GB): damage found
    // now is moved aside cleanly; damage found mid-run would fail appends instead.
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new CorruptSpool(`quick_check: ${String(check).trim().slice(0, 500)}`);
    const row = db.prepare('SELECT count(*) AS n FROM state').get() as { n: number };
    if (row.n !== 1) throw new CorruptSpool(`state has ${row.n} rows`);
    return { db, created };
  } catch (e) {
    try {
      db.close();
    } catch {
      /* a corrupt file may refuse even this; the error that matters is `e` */
    }
    if (e instanceof Error && (e as { code?: string }).code === 'SQLITE_BUSY') {
      throw new SpoolError('in-use', `spool ${path} is locked by another process (a second agent with the same spool?)`);
    }
    throw e;
  }
}

function createOrMigrate(db: Database.Database, path: string, firstSeq: number): boolean {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new SpoolError(
      'newer-schema',
      `spool ${path} has schema version ${version}, this agent knows up to ${SCHEMA_VERSION}: ` +
        'it was written by a newer agent; run that version, or move the file away to start an empty spool',
    );
  }
  if (version === SCHEMA_VERSION) {
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('entries', 'state')").get() as { n: number };
    if (tables.n !== 2) throw new CorruptSpool(`schema version ${version} but tables missing`);
    return false;
  }
  // version 0: a new, empty file — or some other program's database, which we must neither
  // write into nor move aside as if it were ours.
  const other = db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number };
  if (other.n > 0) {
    throw new SpoolError('not-a-spool', `${path} is an SQLite database but not a spool (user_version 0, ${other.n} schema objects); refusing to use it`);
  }
  db.transaction(() => {
    db.exec(SCHEMA);
    db.prepare('INSERT INTO state VALUES (1, ?, 0, 0, 0, 0, 0, 0, 0, 0, 0)').run(firstSeq - 1);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
  return true;
}

/** Damage to the file, as opposed to a condition the operator must resolve. */
export function isCorruption(e: unknown): boolean {
  if (e instanceof CorruptSpool) return true;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT'));
}

/**
 * Renames the file (and its -wal/-shm, so the pair can still be opened for a post-mortem) to
 * `<path>.corrupt-<time>`. Returns the new path of the main file.
 */
export function moveAside(path: string, nowMs: number): string {
  const stamp = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace('.', '-');
  let aside = `${path}.corrupt-${stamp}`;
  for (let i = 1; existsSync(aside); i++) aside = `${path}.corrupt-${stamp}-${i}`;
  renameSync(path, aside);
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix);
  }
  return aside;
}
