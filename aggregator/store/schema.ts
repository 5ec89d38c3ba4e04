/**
 * The store's schema as an ordered list of migrations. A migration is never edited once
 * released: a change is a new entry at the end. `PRAGMA user_version` holds the number of
 * the last migration applied, `PRAGMA application_id` marks the file as ours (both live in
 * the database header, so they change in the same transaction as the tables).
 *
 * Tables are STRICT (SQLite ≥ 3.37): a wrong type is refused at insert instead of stored,
 * which matters for a file users query with their own tools.
 *
 * Times are ms since the epoch (INTEGER). Role ids are signed 64-bit INTEGERs (ids.ts).
 */

import { AGENT_MODEL_SQL, DETECTION_SQL } from './schema-detection.js';
import { DELIVERIES_SQL } from './schema-deliveries.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** 'DAG1' — `PRAGMA application_id` of a DistAppGuard store (`file` reports it too). */
export const APPLICATION_ID = 0x44414731;

const V1 = /* sql */ `
-- One row per agent identity: what its last hello said, and the highest seq committed from
-- it (NULL: nothing yet), which the aggregator tells a reconnecting agent.
CREATE TABLE agents (
  agent_id      TEXT PRIMARY KEY,
  host          TEXT NOT NULL,
  app           TEXT NOT NULL,
  agent_version TEXT NOT NULL DEFAULT '',
  window_ms     INTEGER NOT NULL,
  first_seen    INTEGER NOT NULL,
  last_seen     INTEGER NOT NULL,
  last_seq      INTEGER
) STRICT;

-- Role id → readable label. id is the rowid (INTEGER PRIMARY KEY): no second index.
-- A role's label never changes (the id is a hash of the identity), so rows are insert-or-ignore.
CREATE TABLE roles (
  id    INTEGER PRIMARY KEY,
  label TEXT NOT NULL,
  kind  TEXT NOT NULL
) STRICT;

-- Every partial graph as the agent sent it (protobuf bytes), so a window can be merged again
-- when a late partial comes, or with a better correlator later. (agent_id, seq) recognises a
-- resend. A rowid table, not WITHOUT ROWID: bodies are KiBs, and large rows belong out of
-- the key b-tree (SQLite advises WITHOUT ROWID only for rows well under 1/20 of a page).
CREATE TABLE partials (
  agent_id     TEXT NOT NULL,
  seq          INTEGER NOT NULL,
  app          TEXT NOT NULL,
  host         TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  window_ms    INTEGER NOT NULL,
  received_at  INTEGER NOT NULL,
  late         INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
  body         BLOB NOT NULL,
  PRIMARY KEY (agent_id, seq)
) STRICT;
CREATE INDEX partials_window ON partials (app, window_start);

-- One row per application window, from its first partial ('open') to its merge ('closed').
-- edge_count and bytes are kept here, written with the edges in one transaction, so listing
-- windows never scans edges.
CREATE TABLE windows (
  app             TEXT NOT NULL,
  window_start    INTEGER NOT NULL,
  window_ms       INTEGER NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('open', 'closed')),
  closed_at       INTEGER,
  merged_at       INTEGER,
  hosts           TEXT NOT NULL DEFAULT '[]',  -- JSON array of the hosts merged in
  late_partials   INTEGER NOT NULL DEFAULT 0,
  matched_flows   INTEGER NOT NULL DEFAULT 0,
  unmatched_flows INTEGER NOT NULL DEFAULT 0,
  edge_count      INTEGER NOT NULL DEFAULT 0,
  bytes           INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (app, window_start)
) STRICT;
CREATE INDEX windows_time ON windows (window_start);
-- what a restarted aggregator must finish; stays tiny because closed windows leave it
CREATE INDEX windows_open ON windows (app, window_start) WHERE status = 'open';

-- The merged graph: one row per edge. WITHOUT ROWID, so the primary key IS the table — one
-- b-tree per row inserted, the cheapest shape that stays queryable in plain SQL. Measured by
-- bench/store.ts on a shared 2-core VM: 100–150k rows/s, ~48 bytes a row on disk; a 2,000-edge
-- window in ~14 ms, a 200,000-edge window (1,000 agents × 200 edges, none shared) in 1.5–2 s.
-- If merged windows grow that large, a later migration should pack a window's edges into one
-- BLOB (a scratch test packed and stored 1.2–1.7 M edges/s) and keep rows only for queries.
CREATE TABLE edges (
  app          TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  src          INTEGER NOT NULL,
  dst          INTEGER NOT NULL,
  kind         TEXT NOT NULL CHECK (kind IN ('net', 'file', 'mem', 'ipc')),
  bytes        INTEGER NOT NULL,
  count        INTEGER NOT NULL,
  PRIMARY KEY (app, window_start, src, dst, kind)
) STRICT, WITHOUT ROWID;

-- Socket flows per window and host, compactly: counts, and the unmatched flows as JSON (those
-- that became external roles: what an operator checks when a peer shows up as ext:…). Matched
-- flows became edges; every flow as reported is in partials.body. A row per flow would add
-- a row per socket per host per second to the ingest for data nobody queries row by row.
CREATE TABLE flows (
  app          TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  host         TEXT NOT NULL,
  flows        INTEGER NOT NULL,
  matched      INTEGER NOT NULL,
  unmatched    TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (app, window_start, host)
) STRICT;  -- rowid: the JSON can be long (a host serving many outside clients)

-- For people with the sqlite3 shell: edges with hex ids, labels and readable times.
CREATE VIEW edges_view AS
SELECT e.app, e.window_start,
       strftime('%Y-%m-%dT%H:%M:%fZ', e.window_start / 1000.0, 'unixepoch') AS time,
       printf('%016x', e.src) AS src_id, coalesce(s.label, printf('%016x', e.src)) AS src,
       printf('%016x', e.dst) AS dst_id, coalesce(d.label, printf('%016x', e.dst)) AS dst,
       e.kind, e.bytes, e.count
FROM edges e LEFT JOIN roles s ON s.id = e.src LEFT JOIN roles d ON d.id = e.dst;
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'agents, roles, partials, windows, edges, flows', sql: V1 },
  { version: 2, name: 'models, scores, incidents, alerts, accepted edges, agent models', sql: DETECTION_SQL + AGENT_MODEL_SQL },
  { version: 3, name: 'alert delivery cursors', sql: DELIVERIES_SQL },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;
