/**
 * Calibration on held-out normal windows (pure): each microservice's usual error, then the
 * threshold on the window score for a target false-alarm rate.
 */
export interface Calibration {
  /** false alarms per window the operator asked for */
  targetFpr: number;
  threshold: number;
  /**
   * 'quantile': the (1 − targetFpr) quantile of the calibration scores; 'max-margin': there
   * were too few windows to resolve targetFpr, so the largest score times `margin`
   */
  method: 'quantile' | 'max-margin';
  margin: number;
  /** per group of the feature index */
  groupScale: number[];
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

export function chooseThreshold(scores: readonly number[], targetFpr: number, margin = 1.2): Omit<Calibration, 'groupScale'> {
  if (!(targetFpr > 0 && targetFpr < 1)) throw new Error(`calibration: target false-alarm rate ${targetFpr} must be between 0 and 1`);
  if (scores.length === 0) throw new Error('calibration: no held-out windows');
  const sorted = [...scores].sort((a, b) => a - b);
  const n = sorted.length;
  const resolvable = n * targetFpr >= 1;
  const threshold = resolvable ? quantile(sorted, 1 - targetFpr) : sorted[n - 1] * margin;
  return {
    targetFpr,
    threshold,
    method: resolvable ? 'quantile' : 'max-margin',
    margin,
    windows: n,
    resolvableFpr: 1 / n,
    falseAlarms: sorted.filter((s) => s > threshold).length,
    scores: { p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99), max: sorted[n - 1] },
  };
}
