import { describe, expect, it } from 'vitest';
import { evaluate, rocAuc, rocCurve } from '../../eval/metrics.js';

const w = (i: number, score: number) => ({ start: i * 1000, end: (i + 1) * 1000, score });

describe('evaluation metrics', () => {
  it('counts window outcomes, consecutive false alarms once, and per-run detection', () => {
    // windows 0..9; attack run over windows 4–5; false alarms at 1,2 (one alarm) and 8
    const scores = [0, 5, 5, 0, 9, 0, 0, 0, 5, 0];
    const m = evaluate(scores.map((s, i) => w(i, s)), 1, [{ id: 'r1', kind: 'x', start: 4000, end: 6000 }, { id: 'r2', kind: 'y', start: 9500, end: 9800 }]);
    expect([m.tp, m.fn, m.fp, m.tn]).toEqual([1, 2, 3, 4]);
    expect(m.attackWindows).toBe(3);
    expect(m.tpr).toBeCloseTo(1 / 3);
    expect(m.fpr).toBeCloseTo(3 / 7);
    expect(m.precision).toBeCloseTo(0.25);
    expect(m.f1).toBeCloseTo((2 * 0.25 * (1 / 3)) / (0.25 + 1 / 3));
    expect(m.falseAlarms).toBe(2);
    expect(m.falseAlarmsPerHour).toBeCloseTo(2 / (7000 / 3_600_000));
    expect(m.runs).toEqual([{ id: 'r1', kind: 'x', detected: true, firstAlertMs: 4000 }, { id: 'r2', kind: 'y', detected: false, firstAlertMs: undefined }]);
  });

  it('ROC-AUC by ranks with ties, and a curve from (0,0) to (1,1)', () => {
    expect(rocAuc([1, 2, 3, 4], [false, false, true, true])).toBe(1);
    expect(rocAuc([1, 2, 3, 4], [true, true, false, false])).toBe(0);
    expect(rocAuc([1, 1, 1, 1], [true, false, true, false])).toBe(0.5);
    expect(rocAuc([1, 2], [true, true])).toBeNaN();
    const c = rocCurve([0.1, 0.4, 0.35, 0.8], [false, false, true, true]);
    expect(c[0]).toEqual({ fpr: 0, tpr: 0 });
    expect(c[c.length - 1]).toEqual({ fpr: 1, tpr: 1 });
  });
});
