/**
 * One method on one dataset: prepare → train on the normal training windows (the product's
 * own training and calibration; nothing is tuned on the test windows) → score every test
 * window, timing each → metrics against the attack runs.
 */
import { trainModel, TrainingError } from '../aggregator/model/train.js';
import { Detector, type Verdict } from '../shared/model/detector.js';
import type { Method } from './methods.js';
import { evaluate, rocCurve, isAttack, type AttackRun, type Metrics, type ScoredWindow } from './metrics.js';
import type { EvalWindow } from './replay.js';

export interface Dataset {
  name: string;
  app: string;
  windowMs: number;
  train: EvalWindow[];
  test: EvalWindow[];
  runs: AttackRun[];
}

export interface MethodResult {
  method: string;
  model: string;
  windowMs: number;
  /** set when the method could not be trained (too few windows…) */
  error?: string;
  threshold?: number;
  features?: number;
  trainSeconds?: number;
  /** featurising and scoring one window, ms */
  msPerWindow?: { mean: number; p50: number; p99: number };
  metrics?: Metrics;
  roc?: { fpr: number; tpr: number }[];
  scores?: (ScoredWindow & { attack: boolean; newEdges: number })[];
  /** the highest-scoring attack window (else the highest of all) with what explains it: for the graph picture */
  top?: { windowStart: number; score: number; attack: boolean; explanation: Pick<Verdict, 'groups' | 'edges' | 'newEdges'> };
}

export interface EvalOptions {
  seed?: number;
  targetFpr?: number;
  minWindows?: number;
  /** what the method is doing now, often (every epoch, every few hundred windows): for a progress line, not for a log */
  onProgress?: (what: string) => void;
}

/** Scoring progress is told every this many windows. */
const SCORING_NOTE_EVERY = 256;

/** A window with never-seen features is an alert whatever its reconstruction (the paper's rule), for every method alike. */
const NEW_FEATURE_FACTOR = 10;

export async function evaluateMethod(m: Method, ds: Dataset, o: EvalOptions = {}): Promise<MethodResult> {
  const base = { method: m.name, model: m.model, windowMs: ds.windowMs };
  if (m.prepare) {
    o.onProgress?.(`preparing on ${ds.train.length} training windows`);
    m.prepare(ds.train);
  }
  o.onProgress?.(`training on ${ds.train.length} windows`);
  const t0 = performance.now();
  let det: Detector;
  try {
    const art = await trainModel(
      ds.train.map((w) => ({ windowStart: w.windowStart, edges: m.features(w) })),
      {
        app: ds.app,
        windowMs: ds.windowMs,
        kind: m.model,
        seed: o.seed ?? 1,
        targetFpr: o.targetFpr ?? 1e-4,
        minWindows: o.minWindows ?? 20,
        onEpoch: o.onProgress ? (e) => o.onProgress!(`training epoch ${e.epoch + 1}/${e.epochs}, loss ${e.loss.toFixed(4)}`) : undefined,
      },
    );
    det = await Detector.load(art);
  } catch (e) {
    if (e instanceof TrainingError) return { ...base, error: e.message };
    throw e;
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  o.onProgress?.(`trained in ${trainSeconds.toFixed(1)} s, scoring ${ds.test.length} windows`);
  const threshold = det.artifact.calibration.threshold;
  const times: number[] = [];
  let top: MethodResult['top'];
  const scores = ds.test.map((w, i) => {
    if (i > 0 && i % SCORING_NOTE_EVERY === 0) o.onProgress?.(`scoring ${i}/${ds.test.length} windows`);
    const s = performance.now();
    const v = det.scoreOne(m.features(w));
    times.push(performance.now() - s);
    const score = v.newEdges.length > 0 ? Math.max(v.score, threshold * NEW_FEATURE_FACTOR) : v.score;
    const win = { start: w.windowStart, end: w.windowStart + w.windowMs };
    const attack = isAttack(win, ds.runs);
    if (!top || (attack && !top.attack) || (attack === top.attack && score > top.score)) {
      top = { windowStart: w.windowStart, score, attack, explanation: { groups: v.groups, edges: v.edges, newEdges: v.newEdges } };
    }
    return { ...win, score, attack, newEdges: v.newEdges.length };
  });
  det.dispose();
  const sorted = [...times].sort((a, b) => a - b);
  const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return {
    ...base,
    threshold,
    features: det.artifact.features.features.length,
    trainSeconds,
    msPerWindow: { mean: times.reduce((a, b) => a + b, 0) / Math.max(1, times.length), p50: pick(0.5), p99: pick(0.99) },
    metrics: evaluate(scores, threshold, ds.runs),
    roc: rocCurve(scores.map((s) => s.score), scores.map((s) => s.attack)),
    scores,
    top,
  };
}
