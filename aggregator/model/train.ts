/**
 * Training one model from normal windows: feature index → scaling → split → fit with early
 * stopping → per-microservice error scales → threshold for the target false-alarm rate.
 * Everything random is seeded, so the same windows and seed give the same model.
 */
import type { Edge } from '../../shared/graph.js';
import type { ModelArtifact } from '../../shared/model/artifact.js';
import { ARTIFACT_FORMAT } from '../../shared/model/artifact.js';
import { planArchitecture, parameterCount, type ArchitectureOptions, type ModelKind } from '../../shared/model/architecture.js';
import { Autoencoder, initialWeights, type EpochReport } from '../../shared/model/autoencoder.js';
import { loadTf } from '../../shared/model/backend.js';
import { chooseThreshold, fitEdgeScale, fitGroupScale } from '../../shared/model/calibrate.js';
import { buildFeatureIndex, keyIndex, vectorise } from '../../shared/model/features.js';
import { seeded, shuffle } from '../../shared/model/random.js';
import { fitScaling, scaleInto } from '../../shared/model/scaling.js';
import { windowErrors } from '../../shared/model/score.js';

export interface TrainingWindow {
  windowStart: number;
  edges: readonly Edge[];
}

export interface TrainOptions {
  app: string;
  scope?: ModelArtifact['scope'];
  kind?: ModelKind;
  windowMs: number;
  seed?: number;
  /** false alarms per window to calibrate for (default 1e-4) */
  targetFpr?: number;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  patience?: number;
  /** fewer windows than this is refused (default 20) */
  minWindows?: number;
  /** edges an operator accepted: features even when the range lacks them */
  acceptedEdges?: readonly Edge[];
  architecture?: ArchitectureOptions;
  stdFloor?: number;
  onEpoch?: (e: EpochReport & { epochs: number }) => void;
  now?: () => number;
}

export class TrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingError';
  }
}

/** Seeded split of window positions: 70 % fit, 15 % early stopping and error scales, 15 % threshold. */
export function splitWindows(n: number, seed: number): { train: number[]; validation: number[]; calibration: number[] } {
  const order = shuffle(Array.from({ length: n }, (_, i) => i), seeded(seed ^ 0x9e3779b9));
  const nVal = Math.max(1, Math.round(n * 0.15));
  const nCal = Math.max(1, Math.round(n * 0.15));
  return {
    validation: order.slice(0, nVal).sort((a, b) => a - b),
    calibration: order.slice(nVal, nVal + nCal).sort((a, b) => a - b),
    train: order.slice(nVal + nCal).sort((a, b) => a - b),
  };
}

export async function trainModel(windows: readonly TrainingWindow[], o: TrainOptions): Promise<ModelArtifact> {
  const minWindows = o.minWindows ?? 20;
  if (windows.length < minWindows) {
    throw new TrainingError(`${o.app}: ${windows.length} window(s) to train on; at least ${minWindows} are needed (a longer learning period or a wider --from/--to)`);
  }
  const started = Date.now();
  const seed = o.seed ?? 1;
  const kind = o.kind ?? 'msae';
  const index = buildFeatureIndex(
    windows.map((w) => w.edges),
    o.acceptedEdges ?? [],
  );
  if (index.features.length === 0) throw new TrainingError(`${o.app}: the ${windows.length} training windows have no edges`);
  const keys = keyIndex(index);
  const D = index.features.length;
  const bytes = windows.map((w) => vectorise(index, keys, w.edges).bytes);
  const split = splitWindows(windows.length, seed);
  // scaling from every training window, like the feature index: a feature met only in the
  // held-out windows would otherwise get the floor deviation and its one legitimate
  // occurrence an error of thousands (no labels are involved, nothing leaks)
  const scaling = fitScaling(bytes, D, o.stdFloor);
  const presence = new Array<number>(D).fill(0);
  for (const b of bytes) for (let i = 0; i < D; i++) if (b[i] > 0) presence[i] += 1 / bytes.length;
  const pack = (ids: number[]) => {
    const x = new Float32Array(ids.length * D);
    ids.forEach((id, r) => scaleInto(scaling, bytes[id], x, r * D));
    return x;
  };
  const xTrain = pack(split.train);
  const xVal = pack(split.validation);
  const xCal = pack(split.calibration);

  const { tf, backend } = await loadTf();
  const arch = planArchitecture(kind, index, o.architecture);
  const ae = new Autoencoder(tf, arch, initialWeights(arch, seed));
  try {
    const epochs = o.epochs ?? 200;
    const fit = ae.fit(xTrain, split.train.length, xVal, split.validation.length, {
      epochs,
      // ~50 steps an epoch: small sets still get many updates, large ones do not crawl
      batchSize: o.batchSize ?? Math.min(128, Math.max(16, Math.round(split.train.length / 50))),
      learningRate: o.learningRate ?? 2e-3,
      patience: o.patience ?? 8,
      seed,
      onEpoch: o.onEpoch ? (e) => o.onEpoch!({ ...e, epochs }) : undefined,
    });
    // error scales on the validation windows, threshold on the calibration windows: the
    // threshold is chosen on windows that shaped nothing else
    const yVal = ae.reconstruct(xVal, split.validation.length);
    const ones = new Array(index.groups.length).fill(1);
    const valEdges = split.validation.map((_, r) => windowErrors(index, ones, xVal, yVal, r * D).edge);
    const edgeScale = fitEdgeScale(valEdges, presence);
    const valGroups = split.validation.map((_, r) => windowErrors(index, ones, xVal, yVal, r * D, edgeScale).group);
    const groupScale = fitGroupScale(valGroups, index.groups.length);
    const yCal = ae.reconstruct(xCal, split.calibration.length);
    const calScores = split.calibration.map((_, r) => windowErrors(index, groupScale, xCal, yCal, r * D, edgeScale).score);
    const calibration = { ...chooseThreshold(calScores, o.targetFpr ?? 1e-4), groupScale, edgeScale };
    const starts = windows.map((w) => w.windowStart);
    return {
      format: ARTIFACT_FORMAT,
      app: o.app,
      scope: o.scope ?? { kind: 'app' },
      model: kind,
      createdAt: (o.now ?? Date.now)(),
      seed,
      features: index,
      scaling,
      architecture: arch,
      weights: ae.weights(),
      calibration,
      training: {
        from: Math.min(...starts),
        to: Math.max(...starts) + o.windowMs,
        windowMs: o.windowMs,
        windows: { train: split.train.length, validation: split.validation.length, calibration: split.calibration.length },
        epochs: fit.epochs,
        bestEpoch: fit.bestEpoch,
        loss: fit.loss,
        valLoss: fit.valLoss,
        seconds: (Date.now() - started) / 1000,
        backend,
        parameters: parameterCount(arch),
      },
    };
  } finally {
    ae.dispose();
  }
}
