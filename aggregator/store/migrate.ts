/**
 * Opening a file as the store: recognise it, refuse what we must not touch, bring an older
 * schema up to date. Every refusal is a StoreError naming the file; nothing here may crash
 * the aggregator or leave a half-migrated file.
 */
import Database from 'better-sqlite3';
import { StoreError, openError } from './errors.js';
import { APPLICATION_ID, MIGRATIONS, type Migration } from './schema.js';

type DB = Database.Database;

export interface HeaderInfo {
  version: number;
  applicationId: number;
  /** tables, views and indexes in the file (0: a new or empty file) */
  objects: number;
}

/** Reads the header and the schema table; this is where a non-SQLite or damaged file shows. */
export function readHeader(db: DB, file: string): HeaderInfo {
  try {
    return {
      version: db.pragma('user_version', { simple: true }) as number,
      applicationId: db.pragma('application_id', { simple: true }) as number,
      objects: (db.prepare('SELECT count(*) AS n FROM sqlite_schema').get() as { n: number }).n,
    };
  } catch (e) {
    throw openError(file, e);
  }
}

/**
 * Refuses a file written by a newer version (its schema may mean things this code does not
 * know; writing to it could corrupt data the newer version relies on) and an SQLite file
 * that belongs to something else.
 */
export function checkHeader(h: HeaderInfo, file: string, migrations: readonly Migration[] = MIGRATIONS): void {
  const latest = migrations[migrations.length - 1].version;
  if (h.version > latest) {
    throw new StoreError(
      file,
      `written by a newer DistAppGuard (store schema version ${h.version}; this version knows up to ${latest}). ` +
        'Upgrade DistAppGuard to use it; it was left unchanged.',
    );
  }
  const fresh = h.objects === 0 && h.version === 0 && h.applicationId === 0;
  if (!fresh && h.applicationId !== APPLICATION_ID) {
    throw new StoreError(
      file,
      `an SQLite database, but not a DistAppGuard store (application_id ${h.applicationId}). ` +
        'Give --db a new file or an existing store; it was left unchanged.',
    );
  }
}

/**
 * Applies every migration newer than the file's version, all in one IMMEDIATE transaction:
 * the file is either fully upgraded or untouched. The version is read again under the write
 * lock so two processes opening a new file at once do not both create the tables.
 * Returns the versions applied.
 */
export function migrate(db: DB, file: string, migrations: readonly Migration[] = MIGRATIONS): number[] {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`store migrations must be numbered 1, 2, 3…; entry ${i} is version ${m.version}`);
  });
  const applied: number[] = [];
  const run = db.transaction(() => {
    const h = readHeader(db, file);
    checkHeader(h, file, migrations);
    for (const m of migrations) {
      if (m.version <= h.version) continue;
      try {
        db.exec(m.sql);
      } catch (e) {
        throw new StoreError(file, `migration ${m.version} (${m.name}) failed: ${(e as Error).message}; the file was left at version ${h.version}`, {
          cause: e,
        });
      }
      applied.push(m.version);
    }
    if (applied.length > 0) {
      // pragmas take no bound parameters; both values are integers from this module
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${migrations[migrations.length - 1].version}`);
    }
  });
  run.immediate();
  return applied;
}
