/**
 * Pictures of an evaluation as SVG, drawn by Vega-Lite (rendered headless, no browser):
 * ROC curves of every method, and score timelines with the attack runs shaded and the
 * threshold drawn.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { MethodResult } from './evaluate.js';
import type { AttackRun } from './metrics.js';

export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function rocSpec(title: string, results: readonly MethodResult[]): TopLevelSpec {
  const values = results.flatMap((r) => (r.roc ?? []).map((p) => ({ method: `${r.method} (AUC ${r.metrics?.rocAuc.toFixed(3) ?? '–'})`, fpr: p.fpr, tpr: p.tpr })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 420,
    height: 360,
    data: { values },
    layer: [
      { mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2 }, encoding: { x: { field: 'fpr', type: 'quantitative', title: 'false positive rate' }, y: { field: 'tpr', type: 'quantitative', title: 'true positive rate' }, color: { field: 'method', type: 'nominal', title: 'method' } } },
      { data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] }, mark: { type: 'line', strokeDash: [4, 4], color: '#999' }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } } },
    ],
  };
}

export function timelineSpec(title: string, r: MethodResult, runs: readonly AttackRun[]): TopLevelSpec {
  const values = (r.scores ?? []).map((s) => ({ t: s.start, score: Math.max(s.score, 1e-4), alert: s.score > (r.threshold ?? Infinity) ? 'alert' : 'normal' }));
  const t0 = values.length ? values[0].t : 0;
  const rel = (t: number) => (t - t0) / 1000;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 720,
    height: 220,
    layer: [
      {
        data: { values: runs.map((a) => ({ from: rel(a.start), to: rel(a.end), kind: a.kind })) },
        mark: { type: 'rect', color: '#f4a6a6', opacity: 0.5 },
        encoding: { x: { field: 'from', type: 'quantitative', title: 'seconds' }, x2: { field: 'to' }, tooltip: { field: 'kind' } },
      },
      {
        data: { values: values.map((v) => ({ ...v, s: rel(v.t) })) },
        mark: { type: 'point', filled: true, size: 14 },
        encoding: {
          x: { field: 's', type: 'quantitative' },
          y: { field: 'score', type: 'quantitative', scale: { type: 'log' }, title: 'window score (log)' },
          color: { field: 'alert', type: 'nominal', scale: { domain: ['normal', 'alert'], range: ['#4c78a8', '#d62728'] } },
        },
      },
      { data: { values: [{ y: r.threshold ?? 1 }] }, mark: { type: 'rule', strokeDash: [6, 3], color: '#333' }, encoding: { y: { field: 'y', type: 'quantitative' } } },
    ],
  };
}
