/**
 * Calibration on held-out normal windows (pure): each microservice's usual error, then the
 * threshold on the window score for a target false-alarm rate.
 */
export interface Calibration {
  /** false alarms per window the operator asked for */
  targetFpr: number;
  threshold: number;
  /**
   * 'quantile': the (1 − targetFpr) quantile of the calibration scores; 'tail-fit': too few
   * windows to resolve targetFpr, so the scores' upper tail is extrapolated (peaks over a
   * high threshold fitted with a generalised Pareto distribution), never below the largest
   * calibration score; 'max-margin': too few windows even for that, so the largest score
   * times `margin`
   */
  method: 'quantile' | 'tail-fit' | 'max-margin';
  /** tail-fit: the fitted tail (exceedances over `u`: shape ξ, scale σ, how many) */
  tail?: { u: number; xi: number; sigma: number; exceedances: number };
  margin: number;
  /** per group of the feature index */
  groupScale: number[];
  /**
   * per feature: its usual squared error on held-out normal windows (p99, floored at one
   * standard deviation); 0 for a sporadic feature, left out of the volume score (models
   * before this field: absent, groups' means only)
   */
  edgeScale?: number[];
  /** calibration windows, and the smallest false-alarm rate they can resolve (1/n) */
  windows: number;
  resolvableFpr: number;
  /** calibration windows above the threshold */
  falseAlarms: number;
  scores: { p50: number; p90: number; p99: number; max: number };
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** A group's usual error: the 99th percentile of its mean error over normal windows, floored. */
export function fitGroupScale(groupErrors: readonly number[][], groups: number, floor = 1e-3): number[] {
  const out: number[] = [];
  for (let g = 0; g < groups; g++) {
    const xs = groupErrors.map((e) => e[g]).sort((a, b) => a - b);
    out.push(Math.max(quantile(xs, 0.99), floor));
  }
  return out;
}

/** Features seen in fewer than this share of training windows are sporadic (see score.ts). */
export const SPORADIC_BELOW = 0.05;

/**
 * Each feature's usual error: the 99th percentile of its squared error over normal held-out
 * windows, floored at 1 (one standard deviation in scaled units) so an edge the model
 * reconstructs almost exactly does not alarm on a small wobble; 0 for sporadic features.
 */
export function fitEdgeScale(edgeErrors: readonly Float32Array[], presence: readonly number[], floor = 1): number[] {
  return presence.map((p, i) => {
    if (p < SPORADIC_BELOW) return 0;
    const xs = edgeErrors.map((e) => e[i]).sort((a, b) => a - b);
    return Math.max(quantile(xs, 0.99), floor);
  });
}

/**
 * Generalised Pareto fit of exceedances by probability-weighted moments (Hosking & Wallis
 * 1987): closed form, well behaved on the few dozen points a calibration tail has. The shape
 * is kept in [-0.5, 0.5], where the estimator is reliable.
 */
export function fitGpd(excesses: readonly number[]): { xi: number; sigma: number } {
  const y = [...excesses].sort((a, b) => a - b);
  const n = y.length;
  const a0 = y.reduce((s, v) => s + v, 0) / n;
  let a1 = 0;
  for (let i = 0; i < n; i++) a1 += (1 - (i + 1 - 0.35) / n) * y[i];
  a1 /= n;
  const d = a0 - 2 * a1;
  if (!(d > 0) || !(a0 > 0)) return { xi: 0, sigma: Math.max(a0, 1e-9) };
  const xi = Math.min(0.5, Math.max(-0.5, 2 - a0 / d));
  // with ξ clamped, σ from the mean excess: E[Y] = σ / (1 − ξ)
  return { xi, sigma: Math.max(a0 * (1 - xi), 1e-9) };
}

/** Fewest exceedances a tail fit is made from. */
const MIN_TAIL = 10;

export function chooseThreshold(scores: readonly number[], targetFpr: number, margin = 1.2): Omit<Calibration, 'groupScale'> {
  if (!(targetFpr > 0 && targetFpr < 1)) throw new Error(`calibration: target false-alarm rate ${targetFpr} must be between 0 and 1`);
  if (scores.length === 0) throw new Error('calibration: no held-out windows');
  const sorted = [...scores].sort((a, b) => a - b);
  const n = sorted.length;
  const max = sorted[n - 1];
  let method: Calibration['method'];
  let threshold: number;
  let tail: Calibration['tail'];
  if (n * targetFpr >= 1) {
    method = 'quantile';
    threshold = quantile(sorted, 1 - targetFpr);
  } else {
    // peaks over the 90th percentile (at least MIN_TAIL of them)
    const k = Math.max(MIN_TAIL, Math.ceil(n * 0.1));
    if (n >= 2 * k) {
      const u = sorted[n - k - 1];
      const { xi, sigma } = fitGpd(sorted.slice(n - k).map((v) => v - u));
      // P(S > u + y) = (k/n) · (1 + ξ y/σ)^(−1/ξ) = targetFpr
      const p = (targetFpr * n) / k;
      const y = Math.abs(xi) < 1e-6 ? -sigma * Math.log(p) : (sigma / xi) * (Math.pow(p, -xi) - 1);
      method = 'tail-fit';
      threshold = Math.max(u + y, max);
      tail = { u, xi, sigma, exceedances: k };
    } else {
      method = 'max-margin';
      threshold = max * margin;
    }
  }
  return {
    targetFpr,
    threshold,
    method,
    margin,
    ...(tail ? { tail } : {}),
    windows: n,
    resolvableFpr: 1 / n,
    falseAlarms: sorted.filter((s) => s > threshold).length,
    scores: { p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99), max },
  };
}
