/**
 * Online detection in the aggregator: every merged window of an application with an active
 * model is scored as it is stored (a few ms, well inside the grace period); an anomalous score
 * or a never-seen edge becomes an alert with its explanation, folded into an incident, written
 * to the store and handed to the alert outputs (alerts/outputs.ts: JSON Lines, syslog, webhook;
 * each with its own queue, so a down receiver never holds up scoring). Also runs the life
 * cycle: automatic training after a learning period, scheduled retraining, and noticing a new
 * active model (trained or rolled back by the CLI) so it can be pushed to the agents.
 */
import type { Logger } from '../shared/log.js';
import type { LocalVerdict, MergedWindow } from '../shared/graph.js';
import { decodeArtifact } from '../shared/model/artifact.js';
import { Detector, type Verdict } from '../shared/model/detector.js';
import { edgeKey } from '../shared/model/features.js';
import { JsonlAlertOutput } from './alerts/jsonl.js';
import { AlertOutputs, type AlertOutput, type AlertOutputsOptions } from './alerts/outputs.js';
import { trainInBackground } from './model/train-runner.js';
import type { TrainRequest } from './model/trainer.js';
import { DetectionStore, severityOf, type AlertIn, type AlertRow, type ModelRow } from './store/detection.js';
import type { Store } from './store/store.js';

export interface DetectionOptions {
  store: Store;
  log: Logger;
  /** JSON Lines alert output (the same as a JsonlAlertOutput in `outputs`) */
  alertsFile?: string;
  /** where alerts go besides the store (alerts/index.ts alertOutputsFromConfig); each is resumed from the store after a restart */
  outputs?: AlertOutput[];
  /** queue, retry and backlog settings of the outputs (tests; the defaults suit production) */
  outputOptions?: Omit<AlertOutputsOptions, 'log' | 'db' | 'onFailure'>;
  /** train automatically once an application without a model has this many normal windows (0: never) */
  learnAfter?: number;
  /** retrain an application's model when it is older than this (ms; 0: never) */
  retrainEveryMs?: number;
  /** automatic and scheduled trainings use windows of this last stretch of time (ms; 0: all) */
  historyMs?: number;
  /** training settings for automatic and scheduled training */
  train?: Omit<TrainRequest, 'app' | 'onProgress'>;
  /** quiet windows allowed inside one incident */
  incidentGap?: number;
  /** a new application model became active (trained, retrained, rolled back) */
  onModel?: (app: string, model: ModelRow) => void;
  now?: () => number;
}

export interface DetectionCounters {
  scored: number;
  alerts: number;
  alertsBySeverity: Record<string, number>;
  lastScoringMs: number;
  maxScoringMs: number;
  trainings: number;
  trainingFailures: number;
  outputFailures: number;
}

export class DetectionService {
  readonly det: DetectionStore;
  readonly counters: DetectionCounters = { scored: 0, alerts: 0, alertsBySeverity: {}, lastScoringMs: 0, maxScoringMs: 0, trainings: 0, trainingFailures: 0, outputFailures: 0 };
  /** told each window's scoring time in ms (aggregator/metrics.ts: the latency histogram) */
  onScored: ((ms: number) => void) | undefined;
  private readonly detectors = new Map<number, Detector | Error>();
  private readonly active = new Map<string, number>();
  private readonly training = new Map<string, Promise<number>>();
  private readonly lastLearnCheck = new Map<string, number>();
  private readonly lastRetry = new Map<string, number>();
  /** the alert outputs with their `counters` (per output: delivered, retried, failed, dropped, queued, up) */
  readonly outputs: AlertOutputs | undefined;
  private chain: Promise<void> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly o: DetectionOptions) {
    this.det = new DetectionStore(o.store.connection, o.now);
    this.now = o.now ?? Date.now;
    const outputs = [...(o.outputs ?? [])];
    if (o.alertsFile) {
      const jsonl = new JsonlAlertOutput(o.alertsFile);
      if (!outputs.some((x) => x.name === jsonl.name)) outputs.push(jsonl);
    }
    if (outputs.length > 0) {
      this.outputs = new AlertOutputs(outputs, {
        ...o.outputOptions,
        log: o.log,
        db: o.store.connection,
        onFailure: () => this.counters.outputFailures++,
      });
    }
  }

  /** Called for every merged window (late re-merges too: the window is scored again). */
  onWindow(w: MergedWindow): void {
    this.chain = this.chain.then(() => this.handle(w)).catch((e: Error) => this.o.log.error({ err: e.message, app: w.app }, 'detection failed for a window'));
  }

  /**
   * Resolves when every window handed in so far has been scored, and every alert output has
   * sent the alerts raised so far or is waiting to retry (a down receiver does not hold it up).
   */
  async idle(): Promise<void> {
    await this.chain;
    await this.outputs?.settled();
  }

  private async handle(w: MergedWindow): Promise<void> {
    const modelId = this.activeModelId(w.app);
    if (modelId === undefined) {
      this.maybeLearn(w.app);
      return;
    }
    const detector = await this.detector(modelId);
    if (!detector) return;
    this.maybeRetrain(w.app, detector);
    const t0 = performance.now();
    const verdict = this.score(detector, w);
    const ms = performance.now() - t0;
    this.counters.scored++;
    this.counters.lastScoringMs = ms;
    this.counters.maxScoringMs = Math.max(this.counters.maxScoringMs, ms);
    this.onScored?.(ms);
    this.det.saveScore(w.app, w.windowStart, modelId, verdict.score);
    if (verdict.anomalous || verdict.newEdges.length > 0) {
      this.raise({
        app: w.app,
        windowStart: w.windowStart,
        windowMs: w.windowMs,
        source: 'aggregator',
        modelId,
        score: verdict.score,
        threshold: verdict.threshold,
        anomalous: verdict.anomalous,
        severity: severityOf(verdict.score, verdict.threshold, verdict.newEdges.length),
        explanation: { groups: verdict.groups, edges: verdict.edges, newEdges: verdict.newEdges },
      });
    }
  }

  /** Scores one window; edges an operator accepted are not reported as never seen. */
  score(detector: Detector, w: MergedWindow): Verdict {
    if (w.app !== detector.artifact.app) throw new Error(`window of application ${w.app} given to the model of ${detector.artifact.app}`);
    const v = detector.scoreOne(w.edges);
    if (v.newEdges.length === 0) return v;
    const accepted = new Set(this.det.acceptedEdges(w.app).map(edgeKey));
    return { ...v, newEdges: v.newEdges.filter((e) => !accepted.has(edgeKey(e))) };
  }

  /** An alert an agent raised on its own host's window, delivered with the window (perhaps long after). */
  raiseLocal(agent: { host: string; app: string }, w: { windowStart: number; windowMs: number }, v: LocalVerdict): AlertRow | undefined {
    if (!v.anomalous && v.newEdges.length === 0) return undefined;
    const version = Number(v.modelVersion);
    return this.raise({
      app: agent.app,
      windowStart: w.windowStart,
      windowMs: w.windowMs,
      source: `agent:${agent.host}`,
      modelId: Number.isSafeInteger(version) ? version : null,
      score: v.score,
      threshold: v.threshold,
      anomalous: v.anomalous,
      severity: severityOf(v.score, v.threshold, v.newEdges.length),
      explanation: {
        groups: v.groups,
        edges: v.edges.map((e) => ({ ...e, group: '' })),
        newEdges: v.newEdges,
      },
    });
  }

  /** Stores an alert (a window raised again — a resend, a re-merge — updates its alert) and writes it out. */
  raise(a: AlertIn): AlertRow {
    const { alert, newIncident, created } = this.det.recordAlert(a, this.o.incidentGap ?? 1);
    if (!created) return alert;
    this.counters.alerts++;
    this.counters.alertsBySeverity[alert.severity] = (this.counters.alertsBySeverity[alert.severity] ?? 0) + 1;
    const top = alert.explanation.groups[0];
    this.o.log.warn(
      {
        alert: alert.id, incident: alert.incidentId, app: alert.app, source: alert.source, window: new Date(alert.windowStart).toISOString(),
        severity: alert.severity, score: +alert.score.toFixed(3), threshold: +alert.threshold.toFixed(3), microservice: top?.name,
        newEdges: alert.explanation.newEdges.map((e) => `${e.src} → ${e.dst} (${e.kind})`),
      },
      'alert',
    );
    this.outputs?.enqueue(alert, { id: alert.incidentId, isNew: newIncident });
    return alert;
  }

  private activeModelId(app: string): number | undefined {
    const row = this.o.store.connection.prepare("SELECT id FROM models WHERE app = ? AND scope = '' AND active = 1").get(app) as { id: number } | undefined;
    const id = row?.id;
    if (id !== undefined && this.active.get(app) !== id) {
      this.active.set(app, id);
      const m = this.det.model(id)!;
      this.o.log.info({ app, model: id, kind: m.kind, features: m.features, threshold: m.threshold }, 'model active');
      this.o.onModel?.(app, m);
    }
    return id;
  }

  /** The detector of a stored model, checked against its sha256; a model that fails is reported once and skipped. */
  private async detector(id: number): Promise<Detector | undefined> {
    const cached = this.detectors.get(id);
    if (cached instanceof Error) return undefined;
    if (cached) return cached;
    const row = this.det.model(id)!;
    try {
      const d = await Detector.load(decodeArtifact(row.body, row.sha256));
      for (const [old, x] of this.detectors) if (x instanceof Detector && old !== id && ![...this.active.values()].includes(old)) (x.dispose(), this.detectors.delete(old));
      this.detectors.set(id, d);
      return d;
    } catch (e) {
      this.detectors.set(id, e as Error);
      this.o.log.error({ model: id, app: row.app, err: (e as Error).message }, 'model refused: windows of this application are not scored until another model is activated (distappguard models activate)');
      return undefined;
    }
  }

  /** Trains now (CLI `train` through the aggregator, schedule, learning mode); one training per app at a time. */
  train(app: string, req: Omit<TrainRequest, 'app'> = {}): Promise<number> {
    const running = this.training.get(app);
    if (running) return running;
    this.o.log.info({ app }, 'training started');
    let lastLog = 0;
    const p = trainInBackground(this.o.store, {
      ...this.o.train,
      ...req,
      app,
      onProgress: (e) => {
        req.onProgress?.(e);
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          this.o.log.info({ app, model: e.model, epoch: e.epoch + 1, loss: +e.loss.toFixed(5), valLoss: +e.valLoss.toFixed(5) }, 'training');
        }
      },
    })
      .then((id) => {
        this.counters.trainings++;
        this.o.log.info({ app, model: id }, 'training done');
        this.activeModelId(app);
        return id;
      })
      .catch((e: Error) => {
        this.counters.trainingFailures++;
        this.o.log.error({ app, err: e.message }, 'training failed; the previous model (if any) stays active');
        throw e;
      })
      .finally(() => this.training.delete(app));
    this.training.set(app, p);
    return p;
  }

  private maybeLearn(app: string): void {
    const n = this.o.learnAfter ?? 0;
    if (n <= 0 || this.training.has(app)) return;
    const last = this.lastLearnCheck.get(app) ?? 0;
    if (this.now() - last < 2000) return;
    this.lastLearnCheck.set(app, this.now());
    const normal = (this.o.store.connection.prepare("SELECT count(*) AS n FROM windows WHERE app = ? AND status = 'closed'").get(app) as { n: number }).n;
    if (normal >= n) this.train(app, this.range()).catch(() => {});
  }

  private maybeRetrain(app: string, d: Detector): void {
    const every = this.o.retrainEveryMs ?? 0;
    if (every <= 0 || this.training.has(app)) return;
    const lastTry = this.lastRetry.get(app) ?? 0;
    // a failing retraining (too few normal windows lately) is tried again a period later, not every window
    if (this.now() - d.artifact.createdAt < every || this.now() - lastTry < every) return;
    this.lastRetry.set(app, this.now());
    this.train(app, this.range()).catch(() => {});
  }

  /** Scheduled and automatic trainings use the last `historyMs` of windows (all when unset). */
  private range(): Omit<TrainRequest, 'app'> {
    const h = this.o.historyMs ?? 0;
    return h > 0 ? { from: this.now() - h } : {};
  }

  async close(): Promise<void> {
    await this.chain;
    await Promise.allSettled(this.training.values());
    for (const d of this.detectors.values()) if (d instanceof Detector) d.dispose();
    // queued alerts get a moment to go out; what is left is sent after the next start
    await this.outputs?.close();
  }
}
