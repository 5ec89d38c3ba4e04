/**
 * From a window's scaled input and its reconstruction to a score and an explanation (pure).
 *
 * Per-edge error: squared difference in scaled units. Per-microservice error: the mean over
 * its edges, divided by that microservice's usual error (`groupScale`, fitted on held-out
 * normal windows) so a noisy service does not drown a quiet one. The window's score is the
 * largest of these ratios: "service X reconstructs 6× worse than it normally does".
 */
import type { EdgeKind } from '../graph.js';
import type { FeatureIndex } from './features.js';
import type { Scaling } from './scaling.js';
import { unscale } from './scaling.js';

export interface EdgeExplanation {
  srcId: string;
  dstId: string;
  src: string;
  dst: string;
  kind: EdgeKind;
  group: string;
  observedBytes: number;
  expectedBytes: number;
  /** squared error in scaled units */
  error: number;
}

export interface GroupExplanation {
  name: string;
  /** mean squared error of its edges */
  error: number;
  /** error ÷ its usual error on normal windows */
  ratio: number;
}

export interface WindowErrors {
  /** per feature */
  edge: Float32Array;
  /** per group: mean of its edges */
  group: number[];
  /** per group: group ÷ groupScale */
  ratio: number[];
  score: number;
  meanError: number;
}

/**
 * Per-edge usual errors (`edgeScale`, from held-out normal windows) make a window's score
 * catch one edge far off its usual error even in a microservice with many edges, where the
 * mean alone would dilute it. An edge scale of 0 marks a sporadic edge (seen in too few
 * training windows to learn its volume): it counts neither in the mean nor in the maximum —
 * its presence was seen in training, its absence is normal, and a volume learnt from one or
 * two windows would turn every legitimate occurrence into an alarm. Never-seen edges are
 * reported separately whatever their volume.
 */
export function windowErrors(index: FeatureIndex, groupScale: readonly number[], x: Float32Array, y: Float32Array, offset = 0, edgeScale?: readonly number[]): WindowErrors {
  const D = index.features.length;
  const edge = new Float32Array(D);
  let total = 0;
  for (let i = 0; i < D; i++) {
    const d = x[offset + i] - y[offset + i];
    edge[i] = d * d;
    total += d * d;
  }
  const group: number[] = [];
  const ratio: number[] = [];
  let score = 0;
  index.groups.forEach((g, gi) => {
    let s = 0;
    let n = 0;
    let worst = 0;
    for (const f of g.features) {
      if (edgeScale) {
        const es = edgeScale[f];
        if (es <= 0) continue;
        const r = edge[f] / es;
        if (r > worst) worst = r;
      }
      s += edge[f];
      n++;
    }
    const e = n > 0 ? s / n : 0;
    group.push(e);
    const r = Math.max(e / groupScale[gi], worst);
    ratio.push(r);
    if (r > score) score = r;
  });
  return { edge, group, ratio, score, meanError: total / D };
}

export function explainEdges(index: FeatureIndex, scaling: Scaling, bytes: Float64Array, y: Float32Array, err: WindowErrors, top: number, offset = 0): EdgeExplanation[] {
  const order = topK(err.edge, top);
  return order.map((i) => {
    const f = index.features[i];
    return {
      srcId: f.srcId,
      dstId: f.dstId,
      src: f.src,
      dst: f.dst,
      kind: f.kind,
      group: f.group,
      observedBytes: bytes[i],
      expectedBytes: Math.round(unscale(scaling, i, y[offset + i])),
      error: err.edge[i],
    };
  });
}

export function explainGroups(index: FeatureIndex, err: WindowErrors, top: number): GroupExplanation[] {
  return index.groups
    .map((g, gi) => ({ name: g.name, error: err.group[gi], ratio: err.ratio[gi] }))
    .sort((a, b) => b.ratio - a.ratio)
    .slice(0, top);
}

/** Positions of the k largest values, largest first: one pass, no sort of the whole vector. */
export function topK(xs: Float32Array, k: number): number[] {
  const best: number[] = [];
  if (k <= 0) return best;
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    if (best.length === k) {
      if (v <= xs[best[k - 1]]) continue;
      best.pop();
    }
    let j = best.length;
    best.push(i);
    while (j > 0 && xs[best[j - 1]] < v) {
      best[j] = best[j - 1];
      j--;
    }
    best[j] = i;
  }
  return best;
}
