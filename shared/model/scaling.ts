/**
 * Scaling of edge weights fitted on training data: log1p(bytes) — byte counts span orders of
 * magnitude — then per-edge standardisation. Pure functions.
 */
export interface Scaling {
  /** per feature, of log1p(bytes) over the training windows */
  mean: number[];
  /** per feature, floored at `stdFloor` so a steady edge does not turn noise into alarms */
  std: number[];
  stdFloor: number;
}

export function fitScaling(rows: readonly Float64Array[], dim: number, stdFloor = 0.1): Scaling {
  if (rows.length === 0) throw new Error('scaling: no training windows');
  const mean = new Array<number>(dim).fill(0);
  const sq = new Array<number>(dim).fill(0);
  for (const r of rows) {
    for (let i = 0; i < dim; i++) {
      const v = Math.log1p(r[i]);
      mean[i] += v;
      sq[i] += v * v;
    }
  }
  const n = rows.length;
  const std = new Array<number>(dim);
  for (let i = 0; i < dim; i++) {
    mean[i] /= n;
    const variance = Math.max(0, sq[i] / n - mean[i] * mean[i]);
    std[i] = Math.max(Math.sqrt(variance), stdFloor);
  }
  return { mean, std, stdFloor };
}

export function scaleInto(s: Scaling, bytes: Float64Array, out: Float32Array, offset = 0): void {
  for (let i = 0; i < s.mean.length; i++) out[offset + i] = (Math.log1p(bytes[i]) - s.mean[i]) / s.std[i];
}

export function scale(s: Scaling, bytes: Float64Array): Float32Array {
  const out = new Float32Array(s.mean.length);
  scaleInto(s, bytes, out);
  return out;
}

/** The bytes a scaled value stands for (the model's expectation, in the operator's units). */
export function unscale(s: Scaling, i: number, v: number): number {
  return Math.max(0, Math.expm1(v * s.std[i] + s.mean[i]));
}
