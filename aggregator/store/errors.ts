/**
 * The one error the store throws for a file it cannot use: it names the file and says what is
 * wrong in words a user can act on (the CLI prints `message` as its one line), and keeps the
 * SQLite error as `cause` for the log.
 */
export class StoreError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
    this.name = 'StoreError';
  }
}

/** SQLite result codes (better-sqlite3 puts them in `err.code`) that mean "this file is not a usable database". */
const NOT_A_DB = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT', 'SQLITE_CANTOPEN', 'SQLITE_IOERR_SHORT_READ']);

/** Turns what SQLite threw while opening or checking a file into a StoreError naming it. */
export function openError(file: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as { code?: unknown })?.code;
  const text = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && NOT_A_DB.has(code)) {
    const what = code === 'SQLITE_CANTOPEN' ? 'cannot open the file' : 'not an SQLite database, or corrupt';
    return new StoreError(file, `${what} (${text})`, { cause: err });
  }
  return new StoreError(file, `cannot use this file as the store: ${text}`, { cause: err });
}
