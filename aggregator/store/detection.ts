/**
 * The detection tables (schema-detection.ts): models with their versions and the active one,
 * window scores, alerts grouped into incidents, labels and accepted edges. Shares the store's
 * connection; every multi-row change is one IMMEDIATE transaction: it takes the write lock
 * before reading, so a concurrent writer (the merge worker's connection) makes it wait (busy
 * timeout) instead of failing with SQLITE_BUSY when a read would have to upgrade.
 */
import type Database from 'better-sqlite3';
import type { Edge } from '../../shared/graph.js';
import type { ModelArtifact } from '../../shared/model/artifact.js';
import type { EdgeExplanation, GroupExplanation } from '../../shared/model/score.js';
import type { NewEdge } from '../../shared/model/detector.js';
import { hexOf, idToSql } from './ids.js';

export type Severity = 'low' | 'medium' | 'high';
export type Label = 'benign' | 'malicious';

export interface ModelRow {
  id: number;
  app: string;
  /** '' for the application model, else the host */
  scope: string;
  kind: 'msae' | 'dense';
  createdAt: number;
  trainFrom: number;
  trainTo: number;
  windows: number;
  features: number;
  threshold: number;
  metrics: Record<string, unknown>;
  sha256: string;
  parent: number | null;
  active: boolean;
}

export interface Explanation {
  groups: GroupExplanation[];
  edges: EdgeExplanation[];
  newEdges: NewEdge[];
}

export interface AlertIn {
  app: string;
  windowStart: number;
  windowMs: number;
  /** 'aggregator' or 'agent:<host>' */
  source: string;
  modelId: number | null;
  score: number;
  threshold: number;
  anomalous: boolean;
  severity: Severity;
  explanation: Explanation;
}

export interface AlertRow extends AlertIn {
  id: number;
  incidentId: number;
  createdAt: number;
  label: Label | null;
  labelledAt: number | null;
}

export interface IncidentRow {
  id: number;
  app: string;
  source: string;
  /** ms: start of the first alerting window, end of the last */
  start: number;
  end: number;
  windowMs: number;
  alerts: number;
  maxScore: number;
  newEdges: number;
}

export interface AlertQuery {
  app?: string;
  from?: number;
  to?: number;
  limit?: number;
  incident?: number;
}

/** How severe an alert is: far over the threshold or over it with never-seen edges → high;
 *  over it → medium; only never-seen edges in an otherwise normal window → low. */
export function severityOf(score: number, threshold: number, newEdges: number): Severity {
  const over = score > threshold;
  if (over && (score >= 2 * threshold || newEdges > 0)) return 'high';
  if (over) return 'medium';
  return 'low';
}

interface AlertSql {
  id: number;
  app: string;
  window_start: number;
  window_ms: number;
  source: string;
  model_id: number | null;
  score: number;
  threshold: number;
  anomalous: number;
  severity: Severity;
  explanation: string;
  incident_id: number;
  created_at: number;
  label: Label | null;
  labelled_at: number | null;
}

const alertRow = (r: AlertSql): AlertRow => ({
  id: r.id,
  app: r.app,
  windowStart: r.window_start,
  windowMs: r.window_ms,
  source: r.source,
  modelId: r.model_id,
  score: r.score,
  threshold: r.threshold,
  anomalous: r.anomalous === 1,
  severity: r.severity,
  explanation: JSON.parse(r.explanation) as Explanation,
  incidentId: r.incident_id,
  createdAt: r.created_at,
  label: r.label,
  labelledAt: r.labelled_at,
});

interface ModelSql {
  id: number;
  app: string;
  scope: string;
  kind: 'msae' | 'dense';
  created_at: number;
  train_from: number;
  train_to: number;
  windows: number;
  features: number;
  threshold: number;
  metrics: string;
  sha256: string;
  parent: number | null;
  active: number;
}

const modelRow = (r: ModelSql): ModelRow => ({
  id: r.id,
  app: r.app,
  scope: r.scope,
  kind: r.kind,
  createdAt: r.created_at,
  trainFrom: r.train_from,
  trainTo: r.train_to,
  windows: r.windows,
  features: r.features,
  threshold: r.threshold,
  metrics: JSON.parse(r.metrics) as Record<string, unknown>,
  sha256: r.sha256,
  parent: r.parent,
  active: r.active === 1,
});

const MODEL_COLS = 'id, app, scope, kind, created_at, train_from, train_to, windows, features, threshold, metrics, sha256, parent, active';

export class DetectionStore {
  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {}

  // ------------------------------------------------------------------ models

  /** Stores a model; `activate` makes it the one in use for its app and scope (in the same transaction). */
  saveModel(a: ModelArtifact, body: Uint8Array, sha256: string, o: { activate: boolean; parent?: number }): number {
    const scope = a.scope.kind === 'host' ? a.scope.host : '';
    const t = a.training;
    const metrics = { training: t, calibration: { ...a.calibration, groupScale: undefined } };
    return this.db.transaction(() => {
      if (o.activate) this.db.prepare('UPDATE models SET active = 0 WHERE app = ? AND scope = ? AND active = 1').run(a.app, scope);
      const r = this.db
        .prepare(
          `INSERT INTO models (app, scope, kind, created_at, train_from, train_to, windows, features, threshold, metrics, sha256, body, parent, active)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          a.app, scope, a.model, a.createdAt, t.from, t.to, t.windows.train + t.windows.validation + t.windows.calibration,
          a.features.features.length, a.calibration.threshold, JSON.stringify(metrics), sha256, Buffer.from(body), o.parent ?? null, o.activate ? 1 : 0,
        );
      return Number(r.lastInsertRowid);
    }).immediate();
  }

  listModels(app?: string): ModelRow[] {
    const rows = (app === undefined
      ? this.db.prepare(`SELECT ${MODEL_COLS} FROM models ORDER BY id`).all()
      : this.db.prepare(`SELECT ${MODEL_COLS} FROM models WHERE app = ? ORDER BY id`).all(app)) as ModelSql[];
    return rows.map(modelRow);
  }

  model(id: number): (ModelRow & { body: Uint8Array }) | undefined {
    const r = this.db.prepare(`SELECT ${MODEL_COLS}, body FROM models WHERE id = ?`).get(id) as (ModelSql & { body: Buffer }) | undefined;
    return r && { ...modelRow(r), body: new Uint8Array(r.body) };
  }

  activeModel(app: string, scope = ''): (ModelRow & { body: Uint8Array }) | undefined {
    const r = this.db.prepare('SELECT id FROM models WHERE app = ? AND scope = ? AND active = 1').get(app, scope) as { id: number } | undefined;
    return r && this.model(r.id);
  }

  /** Host models trained with an application model. */
  hostModels(parent: number): ModelRow[] {
    return (this.db.prepare(`SELECT ${MODEL_COLS} FROM models WHERE parent = ? ORDER BY scope`).all(parent) as ModelSql[]).map(modelRow);
  }

  /**
   * Makes model `id` the active one of its app and scope (rollback: an older id), and with an
   * application model, the host models trained with it. Throws for an unknown id.
   */
  activate(id: number): ModelRow {
    const m = this.model(id);
    if (!m) throw new Error(`no model ${id}`);
    this.db.transaction(() => {
      const set = (row: { app: string; scope: string; id: number }) => {
        this.db.prepare('UPDATE models SET active = 0 WHERE app = ? AND scope = ? AND active = 1').run(row.app, row.scope);
        this.db.prepare('UPDATE models SET active = 1 WHERE id = ?').run(row.id);
      };
      set(m);
      if (m.scope === '') for (const h of this.hostModels(id)) set(h);
    }).immediate();
    return { ...m, active: true };
  }

  /** An agent acknowledged loading model `version`. */
  recordAgentModel(agentId: string, version: string, at: number): void {
    this.db.prepare('UPDATE agents SET model_version = ?, model_acked_at = ? WHERE agent_id = ?').run(version, at, agentId);
  }

  agentModels(): { agentId: string; host: string; app: string; modelVersion: string | null; modelAckedAt: number | null }[] {
    return this.db
      .prepare('SELECT agent_id AS agentId, host, app, model_version AS modelVersion, model_acked_at AS modelAckedAt FROM agents ORDER BY app, host')
      .all() as { agentId: string; host: string; app: string; modelVersion: string | null; modelAckedAt: number | null }[];
  }

  // ------------------------------------------------------------------ scores and alerts

  saveScore(app: string, windowStart: number, modelId: number, score: number): void {
    this.db.prepare('INSERT OR REPLACE INTO scores (app, window_start, model_id, score, scored_at) VALUES (?, ?, ?, ?, ?)').run(app, windowStart, modelId, score, this.now());
  }

  scores(app: string, modelId: number, from = Number.MIN_SAFE_INTEGER, to = Number.MAX_SAFE_INTEGER): { windowStart: number; score: number }[] {
    return this.db
      .prepare('SELECT window_start AS windowStart, score FROM scores WHERE app = ? AND model_id = ? AND window_start >= ? AND window_start < ? ORDER BY window_start')
      .all(app, modelId, from, to) as { windowStart: number; score: number }[];
  }

  /**
   * Records an alert and folds it into an incident: the incident of the same app and source
   * whose windows reach within `gap` quiet windows of this one, else a new one. A window
   * scored again (a late partial re-merged it) updates its alert and keeps its id and label.
   */
  recordAlert(a: AlertIn, gap = 1): { alert: AlertRow; newIncident: boolean; created: boolean } {
    return this.db.transaction(() => {
      const reach = (gap + 1) * a.windowMs;
      const existing = this.db.prepare('SELECT * FROM alerts WHERE app = ? AND source = ? AND window_start = ?').get(a.app, a.source, a.windowStart) as AlertSql | undefined;
      const explanation = JSON.stringify(a.explanation);
      const newEdges = a.explanation.newEdges.length;
      if (existing) {
        this.db
          .prepare('UPDATE alerts SET model_id = ?, score = ?, threshold = ?, anomalous = ?, new_edges = ?, severity = ?, explanation = ? WHERE id = ?')
          .run(a.modelId, a.score, a.threshold, a.anomalous ? 1 : 0, newEdges, a.severity, explanation, existing.id);
        this.db.prepare('UPDATE incidents SET max_score = max(max_score, ?), new_edges = max(new_edges, ?) WHERE id = ?').run(a.score, newEdges, existing.incident_id);
        return { alert: this.alert(existing.id)!, newIncident: false, created: false };
      }
      const near = this.db
        .prepare('SELECT id FROM incidents WHERE app = ? AND source = ? AND last_window >= ? AND first_window <= ? ORDER BY last_window DESC LIMIT 1')
        .get(a.app, a.source, a.windowStart - reach, a.windowStart + reach) as { id: number } | undefined;
      let incidentId: number;
      if (near) {
        incidentId = near.id;
        this.db
          .prepare(
            'UPDATE incidents SET first_window = min(first_window, ?), last_window = max(last_window, ?), alerts = alerts + 1, max_score = max(max_score, ?), new_edges = new_edges + ? WHERE id = ?',
          )
          .run(a.windowStart, a.windowStart, a.score, newEdges, incidentId);
      } else {
        incidentId = Number(
          this.db
            .prepare('INSERT INTO incidents (app, source, first_window, last_window, window_ms, alerts, max_score, new_edges) VALUES (?, ?, ?, ?, ?, 1, ?, ?)')
            .run(a.app, a.source, a.windowStart, a.windowStart, a.windowMs, a.score, newEdges).lastInsertRowid,
        );
      }
      const id = Number(
        this.db
          .prepare(
            `INSERT INTO alerts (app, window_start, window_ms, source, model_id, score, threshold, anomalous, new_edges, severity, explanation, incident_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(a.app, a.windowStart, a.windowMs, a.source, a.modelId, a.score, a.threshold, a.anomalous ? 1 : 0, newEdges, a.severity, explanation, incidentId, this.now()).lastInsertRowid,
      );
      return { alert: this.alert(id)!, newIncident: !near, created: true };
    }).immediate();
  }

  alert(id: number): AlertRow | undefined {
    const r = this.db.prepare('SELECT * FROM alerts WHERE id = ?').get(id) as AlertSql | undefined;
    return r && alertRow(r);
  }

  listAlerts(q: AlertQuery = {}): AlertRow[] {
    const where: string[] = ['window_start >= ?', 'window_start < ?'];
    const args: unknown[] = [q.from ?? Number.MIN_SAFE_INTEGER, q.to ?? Number.MAX_SAFE_INTEGER];
    if (q.app !== undefined) {
      where.push('app = ?');
      args.push(q.app);
    }
    if (q.incident !== undefined) {
      where.push('incident_id = ?');
      args.push(q.incident);
    }
    args.push(q.limit ?? -1);
    return (this.db.prepare(`SELECT * FROM alerts WHERE ${where.join(' AND ')} ORDER BY window_start DESC, id DESC LIMIT ?`).all(...args) as AlertSql[]).map(alertRow);
  }

  listIncidents(app?: string): IncidentRow[] {
    const rows = (app === undefined
      ? this.db.prepare('SELECT * FROM incidents ORDER BY last_window DESC').all()
      : this.db.prepare('SELECT * FROM incidents WHERE app = ? ORDER BY last_window DESC').all(app)) as {
      id: number; app: string; source: string; first_window: number; last_window: number; window_ms: number; alerts: number; max_score: number; new_edges: number;
    }[];
    return rows.map((r) => ({
      id: r.id, app: r.app, source: r.source, start: r.first_window, end: r.last_window + r.window_ms, windowMs: r.window_ms, alerts: r.alerts, maxScore: r.max_score, newEdges: r.new_edges,
    }));
  }

  /**
   * An operator's verdict. Benign: the window may join the training data, and its never-seen
   * edges are accepted (features at the next training, no longer flagged as new).
   */
  label(id: number, label: Label): AlertRow {
    const a = this.alert(id);
    if (!a) throw new Error(`no alert ${id}`);
    const now = this.now();
    this.db.transaction(() => {
      this.db.prepare('UPDATE alerts SET label = ?, labelled_at = ? WHERE id = ?').run(label, now, id);
      if (label === 'benign') {
        const ins = this.db.prepare('INSERT OR IGNORE INTO accepted_edges (app, src, dst, kind, alert_id, accepted_at) VALUES (?, ?, ?, ?, ?, ?)');
        for (const e of a.explanation.newEdges) ins.run(a.app, idToSql(e.srcId), idToSql(e.dstId), e.kind, id, now);
      } else {
        this.db.prepare('DELETE FROM accepted_edges WHERE alert_id = ?').run(id);
      }
    }).immediate();
    return this.alert(id)!;
  }

  /** Edges operators accepted, with their labels (bytes 0: they are features, not observations). */
  acceptedEdges(app: string): Edge[] {
    return this.db
      .prepare(
        `SELECT ${hexOf('a.src')} AS srcId, ${hexOf('a.dst')} AS dstId, coalesce(s.label, ${hexOf('a.src')}) AS src, coalesce(d.label, ${hexOf('a.dst')}) AS dst, a.kind AS kind, 0 AS bytes, 0 AS count
         FROM accepted_edges a LEFT JOIN roles s ON s.id = a.src LEFT JOIN roles d ON d.id = a.dst WHERE a.app = ? ORDER BY a.src, a.dst, a.kind`,
      )
      .all(app) as Edge[];
  }

  /**
   * Closed windows of `app` in [from, to) that count as normal: no alert from the aggregator,
   * or one an operator labelled benign.
   */
  normalWindowStarts(app: string, from = Number.MIN_SAFE_INTEGER, to = Number.MAX_SAFE_INTEGER): number[] {
    return (
      this.db
        .prepare(
          `SELECT w.window_start AS s FROM windows w
           WHERE w.app = ? AND w.status = 'closed' AND w.window_start >= ? AND w.window_start < ?
             AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.app = w.app AND a.window_start = w.window_start
                             AND a.source = 'aggregator' AND (a.label IS NULL OR a.label = 'malicious'))
           ORDER BY w.window_start`,
        )
        .all(app, from, to) as { s: number }[]
    ).map((r) => r.s);
  }
}
