/** The aggregator's SQLite store: `Store.open(file)`. See store.ts for durability, schema.ts for the tables. */
export { Store } from './store.js';
export { StoreError } from './errors.js';
export { MIGRATIONS, SCHEMA_VERSION, APPLICATION_ID, type Migration } from './schema.js';
export { idToSql, idFromSql } from './ids.js';
export type * from './types.js';
