/**
 * What the console's JSON API answers, read from the store (pure reads, plain objects). The
 * browser only ever gets these shapes; no store row goes out without being picked field by
 * field here, so a column added later (a model body, a partial) is not sent by accident.
 */
import type { AlertRow, DetectionStore, Label, ModelRow } from '../store/detection.js';
import type { Store } from '../store/store.js';

export type AgentHealth = 'ok' | 'silent' | 'disconnected';

export interface AgentView {
  agentId: string;
  host: string;
  app: string;
  agentVersion: string;
  windowMs: number;
  firstSeen: number;
  lastSeen: number;
  lastSeq: number | null;
  /** on a stream right now; null: the console was not told (no live server) */
  connected: boolean | null;
  health: AgentHealth;
  /** the host model the agent acknowledged loading, and when */
  modelVersion: string | null;
  modelAckedAt: number | null;
  /** the active host model of its (app, host): what it should run; null when there is none */
  expectedModel: number | null;
}

/** An agent not heard from for this many windows (at least SILENT_MIN_MS) is 'silent'. */
const SILENT_WINDOWS = 3;
const SILENT_MIN_MS = 30_000;

export function agentsView(store: Store, det: DetectionStore, now: number, connected?: ReadonlySet<string>): AgentView[] {
  const models = new Map(det.agentModels().map((m) => [m.agentId, m]));
  // active host models by (app, host), read once (listModels leaves the model bodies in the file)
  const expected = new Map(det.listModels().filter((m) => m.active && m.scope !== '').map((m) => [JSON.stringify([m.app, m.scope]), m.id]));
  const expectedOf = (app: string, host: string): number | null => expected.get(JSON.stringify([app, host])) ?? null;
  return store.listAgents().map((a) => {
    const isConnected = connected ? connected.has(a.agentId) : null;
    const silent = now - a.lastSeen > Math.max(SILENT_WINDOWS * a.windowMs, SILENT_MIN_MS);
    const m = models.get(a.agentId);
    return {
      agentId: a.agentId,
      host: a.host,
      app: a.app,
      agentVersion: a.agentVersion,
      windowMs: a.windowMs,
      firstSeen: a.firstSeen,
      lastSeen: a.lastSeen,
      lastSeq: a.lastSeq,
      connected: isConnected,
      health: isConnected === false ? 'disconnected' : silent ? 'silent' : 'ok',
      modelVersion: m?.modelVersion ?? null,
      modelAckedAt: m?.modelAckedAt ?? null,
      expectedModel: expectedOf(a.app, a.host),
    };
  });
}

export interface AlertSummary {
  id: number;
  incidentId: number;
  app: string;
  windowStart: number;
  windowMs: number;
  source: string;
  modelId: number | null;
  severity: string;
  score: number;
  threshold: number;
  anomalous: boolean;
  createdAt: number;
  label: Label | null;
  labelledAt: number | null;
  /** the microservice that explains the score most, and how many times its usual error */
  topGroup: { name: string; ratio: number } | null;
  topEdge: { src: string; dst: string; kind: string; observedBytes: number; expectedBytes: number } | null;
  newEdges: number;
}

export function alertSummary(a: AlertRow): AlertSummary {
  const g = a.explanation.groups[0];
  const e = a.explanation.edges[0];
  return {
    id: a.id,
    incidentId: a.incidentId,
    app: a.app,
    windowStart: a.windowStart,
    windowMs: a.windowMs,
    source: a.source,
    modelId: a.modelId,
    severity: a.severity,
    score: a.score,
    threshold: a.threshold,
    anomalous: a.anomalous,
    createdAt: a.createdAt,
    label: a.label,
    labelledAt: a.labelledAt,
    topGroup: g ? { name: g.name, ratio: g.ratio } : null,
    topEdge: e ? { src: e.src, dst: e.dst, kind: e.kind, observedBytes: e.observedBytes, expectedBytes: e.expectedBytes } : null,
    newEdges: a.explanation.newEdges.length,
  };
}

/** An alert with its whole explanation, its window's figures and the model that raised it. */
export function alertDetail(store: Store, det: DetectionStore, a: AlertRow) {
  const w = store.window(a.app, a.windowStart);
  const m = a.source === 'aggregator' && a.modelId !== null ? det.listModels(a.app).find((x) => x.id === a.modelId) : undefined;
  return {
    ...alertSummary(a),
    explanation: {
      groups: a.explanation.groups.map((g) => ({ name: g.name, error: g.error, ratio: g.ratio })),
      edges: a.explanation.edges.map((e) => ({
        src: e.src, dst: e.dst, kind: e.kind, group: e.group, observedBytes: e.observedBytes, expectedBytes: e.expectedBytes, error: e.error,
      })),
      newEdges: a.explanation.newEdges.map((e) => ({ src: e.src, dst: e.dst, kind: e.kind, bytes: e.bytes, count: e.count })),
    },
    window: w ? { hosts: w.hosts, edges: w.edges, bytes: w.bytes, status: w.status, latePartials: w.latePartials, matchedFlows: w.matchedFlows, unmatchedFlows: w.unmatchedFlows } : null,
    model: m ? { id: m.id, kind: m.kind, createdAt: m.createdAt, active: m.active, threshold: m.threshold } : null,
  };
}

export function incidentsView(det: DetectionStore, app: string | undefined, limit: number) {
  return det.listIncidents(app).slice(0, limit);
}

/** A model as the console shows it: its row, with the training and calibration figures picked out of `metrics`. */
export interface ModelView extends Omit<ModelRow, 'metrics'> {
  training: Record<string, unknown> | null;
  calibration: Record<string, unknown> | null;
}

export function modelView(m: ModelRow): ModelView {
  const obj = (x: unknown) => (x !== null && typeof x === 'object' ? (x as Record<string, unknown>) : null);
  const { metrics, ...row } = m;
  return { ...row, training: obj(metrics.training), calibration: obj(metrics.calibration) };
}

/** Windows newest first, with how many alerts each has. */
export function windowsView(store: Store, det: DetectionStore, app: string | undefined, limit: number) {
  const rows = store.listWindows({ app, limit });
  const alerts = new Map<string, number>();
  if (rows.length > 0) {
    const from = rows[rows.length - 1].windowStart;
    for (const a of det.listAlerts({ app, from })) {
      const k = `${a.app}\u0000${a.windowStart}`;
      alerts.set(k, (alerts.get(k) ?? 0) + 1);
    }
  }
  return rows.map((r) => ({
    app: r.app,
    windowStart: r.windowStart,
    windowMs: r.windowMs,
    status: r.status,
    hosts: r.hosts,
    edges: r.edges,
    bytes: r.bytes,
    latePartials: r.latePartials,
    alerts: alerts.get(`${r.app}\u0000${r.windowStart}`) ?? 0,
  }));
}
