/**
 * Training from the store: the application's normal windows in a range (windows without an
 * alert, or with one labelled benign) → the application model; each host's partial graphs of
 * the same windows → that host's model, pushed to its agent. Everything is trained before
 * anything is written, and all models are written in one transaction: a failure stores nothing.
 */
import type { Edge } from '../../shared/graph.js';
import { encodeArtifact, sha256Hex, type ModelArtifact } from '../../shared/model/artifact.js';
import type { ModelKind } from '../../shared/model/architecture.js';
import type { DetectionStore, ModelRow } from '../store/detection.js';
import type { Store } from '../store/store.js';
import { decodeStoredWindow } from '../window-decode.js';
import { trainModel, TrainingError, type TrainOptions, type TrainingWindow } from './train.js';

export interface TrainRequest {
  app: string;
  from?: number;
  to?: number;
  kind?: ModelKind;
  seed?: number;
  targetFpr?: number;
  minWindows?: number;
  epochs?: number;
  /** also train one model per host for the agents (default true) */
  hostModels?: boolean;
  /** progress: which model, epoch figures */
  onProgress?: (p: { model: string; epoch: number; epochs: number; loss: number; valLoss: number }) => void;
}

export interface TrainOutcome {
  app: ModelRow;
  hosts: ModelRow[];
}

export function collectAppWindows(store: Store, det: DetectionStore, r: Pick<TrainRequest, 'app' | 'from' | 'to'>): { windows: TrainingWindow[]; windowMs: number; hosts: string[] } {
  const starts = det.normalWindowStarts(r.app, r.from, r.to);
  const windows: TrainingWindow[] = [];
  const lengths = new Set<number>();
  const hosts = new Set<string>();
  for (const s of starts) {
    const g = store.windowGraph(r.app, s);
    if (!g) continue;
    lengths.add(g.windowMs);
    g.hosts.forEach((h) => hosts.add(h));
    windows.push({ windowStart: s, edges: g.edges });
  }
  if (lengths.size > 1) {
    throw new TrainingError(`${r.app}: the range holds windows of different lengths (${[...lengths].join(', ')} ms); choose --from/--to inside one`);
  }
  return { windows, windowMs: [...lengths][0] ?? 0, hosts: [...hosts].sort() };
}

/** One host's partial edges per window (a host with no partial in a window: an empty window — it was idle or down). */
export function collectHostWindows(store: Store, app: string, host: string, starts: readonly number[]): TrainingWindow[] {
  return starts.map((s) => {
    const edges: Edge[] = [];
    for (const p of store.partialsOf(app, s)) if (p.host === host) edges.push(...decodeStoredWindow(p.body).edges);
    return { windowStart: s, edges };
  });
}

export async function trainFromStore(store: Store, det: DetectionStore, r: TrainRequest): Promise<TrainOutcome> {
  const { windows, windowMs, hosts } = collectAppWindows(store, det, r);
  const common: Omit<TrainOptions, 'app' | 'windowMs'> = {
    kind: r.kind,
    seed: r.seed,
    targetFpr: r.targetFpr,
    minWindows: r.minWindows,
    epochs: r.epochs,
  };
  const progress = (model: string): TrainOptions['onEpoch'] => (r.onProgress ? (e) => r.onProgress!({ model, epoch: e.epoch, epochs: e.epochs, loss: e.loss, valLoss: e.valLoss }) : undefined);
  const app = await trainModel(windows, { ...common, app: r.app, windowMs, acceptedEdges: det.acceptedEdges(r.app), onEpoch: progress(r.app) });
  const perHost: ModelArtifact[] = [];
  if (r.hostModels !== false) {
    const starts = windows.map((w) => w.windowStart);
    for (const host of hosts) {
      const hw = collectHostWindows(store, r.app, host, starts);
      if (!hw.some((w) => w.edges.length > 0)) continue;
      perHost.push(await trainModel(hw, { ...common, app: r.app, windowMs, scope: { kind: 'host', host }, onEpoch: progress(`${r.app}@${host}`) }));
    }
  }
  // every model trained: now write them all, or nothing
  const saved = store.connection.transaction(() => {
    const body = encodeArtifact(app);
    const appId = det.saveModel(app, body, sha256Hex(body), { activate: true });
    for (const h of perHost) {
      const hb = encodeArtifact(h);
      det.saveModel(h, hb, sha256Hex(hb), { activate: true, parent: appId });
    }
    return appId;
  }).immediate();
  return { app: det.model(saved)!, hosts: det.hostModels(saved) };
}
