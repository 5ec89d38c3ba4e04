/**
 * Migration 2: detection — models, window scores, alerts grouped into incidents, operator
 * labels and the edges operators accepted. Kept beside schema.ts so the store's first
 * migration stays as released.
 */
export const DETECTION_SQL = /* sql */ `
-- Every trained model, versioned by id. scope '' is the application model; a host id marks
-- the part pushed to that host's agent (trained on its partial graphs). body is the model
-- document (shared/model/artifact.ts), sha256 its digest, checked whenever it is loaded.
CREATE TABLE models (
  id           INTEGER PRIMARY KEY,
  app          TEXT NOT NULL,
  scope        TEXT NOT NULL DEFAULT '',
  kind         TEXT NOT NULL CHECK (kind IN ('msae', 'dense')),
  created_at   INTEGER NOT NULL,
  train_from   INTEGER NOT NULL,
  train_to     INTEGER NOT NULL,
  windows      INTEGER NOT NULL,
  features     INTEGER NOT NULL,
  threshold    REAL NOT NULL,
  metrics      TEXT NOT NULL,               -- JSON: training and calibration figures
  sha256       TEXT NOT NULL,
  body         BLOB NOT NULL,
  parent       INTEGER REFERENCES models(id), -- host models: the application model trained with them
  active       INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
) STRICT;
-- one active model per application and scope: activation and rollback flip this flag
CREATE UNIQUE INDEX models_active ON models (app, scope) WHERE active = 1;

-- The score of every window a model scored (timelines, ROC curves); explanations only on alerts.
CREATE TABLE scores (
  app          TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  model_id     INTEGER NOT NULL,
  score        REAL NOT NULL,
  scored_at    INTEGER NOT NULL,
  PRIMARY KEY (app, window_start, model_id)
) STRICT, WITHOUT ROWID;

-- Consecutive alerting windows of one application and source are one incident.
CREATE TABLE incidents (
  id           INTEGER PRIMARY KEY,
  app          TEXT NOT NULL,
  source       TEXT NOT NULL,               -- 'aggregator' or 'agent:<host>'
  first_window INTEGER NOT NULL,
  last_window  INTEGER NOT NULL,            -- start of the last alerting window
  window_ms    INTEGER NOT NULL,
  alerts       INTEGER NOT NULL,
  max_score    REAL NOT NULL,
  new_edges    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX incidents_last ON incidents (app, source, last_window);

CREATE TABLE alerts (
  id           INTEGER PRIMARY KEY,
  app          TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  window_ms    INTEGER NOT NULL,
  source       TEXT NOT NULL,
  model_id     INTEGER,                     -- aggregator alerts: models.id; agent alerts: the agent's model id
  score        REAL NOT NULL,
  threshold    REAL NOT NULL,
  anomalous    INTEGER NOT NULL CHECK (anomalous IN (0, 1)),  -- score above threshold
  new_edges    INTEGER NOT NULL,
  severity     TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
  explanation  TEXT NOT NULL,               -- JSON: microservices, edges (observed vs expected), new edges
  incident_id  INTEGER NOT NULL REFERENCES incidents(id),
  created_at   INTEGER NOT NULL,
  label        TEXT CHECK (label IN ('benign', 'malicious')),
  labelled_at  INTEGER,
  UNIQUE (app, source, window_start)
) STRICT;
CREATE INDEX alerts_time ON alerts (app, window_start);

-- Edges an operator accepted by labelling an alert benign: features from the next training on,
-- and no longer reported as never seen.
CREATE TABLE accepted_edges (
  app          TEXT NOT NULL,
  src          INTEGER NOT NULL,
  dst          INTEGER NOT NULL,
  kind         TEXT NOT NULL,
  alert_id     INTEGER NOT NULL,
  accepted_at  INTEGER NOT NULL,
  PRIMARY KEY (app, src, dst, kind)
) STRICT, WITHOUT ROWID;
`;

/** Also in migration 2: which model each agent acknowledged (pushed models, DESIGN §6). */
export const AGENT_MODEL_SQL = /* sql */ `
ALTER TABLE agents ADD COLUMN model_version TEXT;
ALTER TABLE agents ADD COLUMN model_acked_at INTEGER;
`;
