/**
 * A trained model as one self-describing document: feature index, scaling, architecture,
 * weights, calibration and how it was trained. Serialised as JSON (weights base64 float32),
 * identified by its sha256; decoding checks every part against the others so a corrupt or
 * tampered file is refused with the reason, never half-loaded.
 */
import { createHash } from 'node:crypto';
import type { Architecture, ModelKind } from './architecture.js';
import { weightShapes } from './architecture.js';
import type { Weights } from './autoencoder.js';
import type { Calibration } from './calibrate.js';
import type { FeatureIndex } from './features.js';
import type { Scaling } from './scaling.js';

export const ARTIFACT_FORMAT = 'distappguard-model/1';

export interface TrainingInfo {
  /** window starts (ms) of the training range, inclusive / exclusive */
  from: number;
  to: number;
  windowMs: number;
  windows: { train: number; validation: number; calibration: number };
  epochs: number;
  bestEpoch: number;
  loss: number;
  valLoss: number;
  seconds: number;
  backend: string;
  parameters: number;
}

export interface ModelArtifact {
  format: typeof ARTIFACT_FORMAT;
  app: string;
  /** the whole application, or one host's partial graphs (for the agent) */
  scope: { kind: 'app' } | { kind: 'host'; host: string };
  model: ModelKind;
  createdAt: number;
  seed: number;
  features: FeatureIndex;
  scaling: Scaling;
  architecture: Architecture;
  weights: Weights;
  calibration: Calibration;
  training: TrainingInfo;
}

interface WireWeights {
  [name: string]: string;
}

export function encodeArtifact(a: ModelArtifact): Uint8Array {
  const weights: WireWeights = {};
  for (const [name, w] of Object.entries(a.weights)) weights[name] = Buffer.from(w.buffer, w.byteOffset, w.byteLength).toString('base64');
  return new TextEncoder().encode(JSON.stringify({ ...a, weights }));
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class ModelFormatError extends Error {
  constructor(message: string) {
    super(`model: ${message}`);
    this.name = 'ModelFormatError';
  }
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isNumArray = (x: unknown, len: number): x is number[] => Array.isArray(x) && x.length === len && x.every(isNum);

/**
 * Bytes → artifact, checked. `expectedSha256`: the digest it must have (from the store or the
 * model update) — anything else is refused before parsing.
 */
export function decodeArtifact(bytes: Uint8Array, expectedSha256?: string): ModelArtifact {
  if (expectedSha256 !== undefined) {
    const got = sha256Hex(bytes);
    if (got !== expectedSha256) throw new ModelFormatError(`integrity check failed: sha256 is ${got}, expected ${expectedSha256}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch (e) {
    throw new ModelFormatError(`not a model file (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null) throw new ModelFormatError('not a model file');
  if (raw.format !== ARTIFACT_FORMAT) throw new ModelFormatError(`format "${String(raw.format)}" is not ${ARTIFACT_FORMAT}`);
  if (typeof raw.app !== 'string' || !raw.app) throw new ModelFormatError('app: missing');
  if (raw.model !== 'msae' && raw.model !== 'dense') throw new ModelFormatError(`model kind "${String(raw.model)}" is not msae or dense`);
  const features = raw.features as FeatureIndex;
  if (!features || !Array.isArray(features.features) || !Array.isArray(features.groups)) throw new ModelFormatError('features: missing');
  const D = features.features.length;
  if (D === 0) throw new ModelFormatError('features: empty');
  const covered = new Set<number>();
  for (const g of features.groups) {
    if (typeof g.name !== 'string' || !Array.isArray(g.features) || g.features.length === 0) throw new ModelFormatError('features: malformed group');
    for (const f of g.features) {
      if (!Number.isInteger(f) || f < 0 || f >= D || covered.has(f)) throw new ModelFormatError(`features: group ${g.name} has a bad position ${f}`);
      covered.add(f);
    }
  }
  if (covered.size !== D) throw new ModelFormatError('features: groups do not cover every feature');
  const scaling = raw.scaling as Scaling;
  if (!scaling || !isNumArray(scaling.mean, D) || !isNumArray(scaling.std, D) || scaling.std.some((s) => s <= 0)) throw new ModelFormatError(`scaling: needs ${D} means and positive deviations`);
  const arch = raw.architecture as Architecture;
  if (!arch || arch.kind !== raw.model || arch.inputDim !== D) throw new ModelFormatError(`architecture: does not match the ${D} features`);
  if (arch.kind === 'msae') {
    if (!Array.isArray(arch.blocks) || arch.blocks.some((b) => !Array.isArray(b) || b.length > arch.width || b.some((f) => !Number.isInteger(f) || f < 0 || f >= D)))
      throw new ModelFormatError('architecture: malformed blocks');
    if (arch.blocks.reduce((s, b) => s + b.length, 0) !== D) throw new ModelFormatError('architecture: blocks do not cover every feature');
  }
  const wire = raw.weights as WireWeights;
  if (!wire || typeof wire !== 'object') throw new ModelFormatError('weights: missing');
  const weights: Weights = {};
  for (const [name, shape] of Object.entries(weightShapes(arch))) {
    const b64 = wire[name];
    if (typeof b64 !== 'string') throw new ModelFormatError(`weights: ${name} missing`);
    const buf = Buffer.from(b64, 'base64');
    const size = shape.reduce((p, d) => p * d, 1);
    if (buf.length !== size * 4) throw new ModelFormatError(`weights: ${name} has ${buf.length} bytes, expected ${size * 4}`);
    const w = new Float32Array(size);
    new Uint8Array(w.buffer).set(buf);
    if (!w.every(Number.isFinite)) throw new ModelFormatError(`weights: ${name} has non-finite values`);
    weights[name] = w;
  }
  const cal = raw.calibration as Calibration;
  if (!cal || !isNum(cal.threshold) || !isNumArray(cal.groupScale, features.groups.length) || cal.groupScale.some((s) => s <= 0))
    throw new ModelFormatError('calibration: missing threshold or group scales');
  if (cal.edgeScale !== undefined && (!isNumArray(cal.edgeScale, D) || cal.edgeScale.some((s) => s < 0))) throw new ModelFormatError(`calibration: edge scales must be ${D} numbers, none negative`);
  const scope = raw.scope as ModelArtifact['scope'];
  if (!scope || (scope.kind !== 'app' && !(scope.kind === 'host' && typeof scope.host === 'string'))) throw new ModelFormatError('scope: malformed');
  return { ...(raw as unknown as ModelArtifact), weights };
}
