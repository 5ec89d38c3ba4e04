/**
 * How a detector did on labelled windows, the way the paper and LID-DS report it (pure):
 * window-level rates, ROC-AUC and curve, per-attack-run detection, false alarms per hour
 * with consecutive false alarms counted once.
 */
export interface Interval {
  start: number;
  end: number;
}

export interface AttackRun extends Interval {
  id: string;
  kind: string;
}

export interface ScoredWindow extends Interval {
  score: number;
}

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

export interface Metrics extends Confusion {
  windows: number;
  attackWindows: number;
  tpr: number;
  fpr: number;
  precision: number;
  f1: number;
  rocAuc: number;
  /** false alarms per hour of normal time; a run of consecutive false windows is one alarm */
  falseAlarmsPerHour: number;
  falseAlarms: number;
  normalHours: number;
  /** per attack run: detected when any window overlapping it is over the threshold */
  runs: { id: string; kind: string; detected: boolean; firstAlertMs?: number }[];
}

export const overlaps = (a: Interval, b: Interval): boolean => a.start < b.end && b.start < a.end;

export function isAttack(w: Interval, runs: readonly AttackRun[]): boolean {
  return runs.some((r) => overlaps(w, r));
}

/** Area under the ROC curve by ranks (Mann–Whitney), ties counted half; NaN without both classes. */
export function rocAuc(scores: readonly number[], positive: readonly boolean[]): number {
  const idx = scores.map((s, i) => i).sort((a, b) => scores[a] - scores[b]);
  const ranks = new Array<number>(scores.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]] === scores[idx[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[idx[k]] = r;
    i = j + 1;
  }
  let nPos = 0;
  let sumPos = 0;
  positive.forEach((p, i) => {
    if (p) {
      nPos++;
      sumPos += ranks[i];
    }
  });
  const nNeg = scores.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (sumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** ROC curve points (fpr, tpr) from the highest threshold down, for plots. */
export function rocCurve(scores: readonly number[], positive: readonly boolean[]): { fpr: number; tpr: number }[] {
  const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const P = positive.filter(Boolean).length;
  const N = positive.length - P;
  const pts = [{ fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < order.length; k++) {
    if (positive[order[k]]) tp++;
    else fp++;
    if (k + 1 === order.length || scores[order[k + 1]] !== scores[order[k]]) pts.push({ fpr: N ? fp / N : 0, tpr: P ? tp / P : 0 });
  }
  return pts;
}

export function evaluate(windows: readonly ScoredWindow[], threshold: number, runs: readonly AttackRun[]): Metrics {
  const sorted = [...windows].sort((a, b) => a.start - b.start);
  const c: Confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
  const positive = sorted.map((w) => isAttack(w, runs));
  let falseAlarms = 0;
  let inFalse = false;
  let normalMs = 0;
  sorted.forEach((w, i) => {
    const alert = w.score > threshold;
    if (positive[i]) {
      if (alert) c.tp++;
      else c.fn++;
      inFalse = false;
      return;
    }
    normalMs += w.end - w.start;
    if (alert) {
      c.fp++;
      if (!inFalse) falseAlarms++;
      inFalse = true;
    } else {
      c.tn++;
      inFalse = false;
    }
  });
  const tpr = c.tp + c.fn ? c.tp / (c.tp + c.fn) : NaN;
  const fpr = c.fp + c.tn ? c.fp / (c.fp + c.tn) : NaN;
  const precision = c.tp + c.fp ? c.tp / (c.tp + c.fp) : c.fn ? 0 : NaN;
  const f1 = precision + tpr > 0 ? (2 * precision * tpr) / (precision + tpr) : 0;
  const normalHours = normalMs / 3_600_000;
  return {
    ...c,
    windows: sorted.length,
    attackWindows: positive.filter(Boolean).length,
    tpr,
    fpr,
    precision,
    f1,
    rocAuc: rocAuc(sorted.map((w) => w.score), positive),
    falseAlarms,
    normalHours,
    falseAlarmsPerHour: normalHours > 0 ? falseAlarms / normalHours : NaN,
    runs: runs.map((r) => {
      const hit = sorted.find((w) => overlaps(w, r) && w.score > threshold);
      return { id: r.id, kind: r.kind, detected: hit !== undefined, firstAlertMs: hit?.start };
    }),
  };
}
