/**
 * The evaluation written out: results.json (everything), results.md (the table), SVG plots,
 * and report.html that holds the table and the pictures together.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MethodResult } from './evaluate.js';
import type { AttackRun } from './metrics.js';
import { rocSpec, timelineSpec, toSvg } from './plots.js';
import type { MergedWindow } from '../shared/graph.js';
import { graphDot } from '../shared/graph-dot.js';
import { dotToSvg } from '../shared/graph-svg.js';

export interface DatasetResult {
  dataset: string;
  windowMs: number;
  trainWindows: number;
  testWindows: number;
  runs: AttackRun[];
  methods: MethodResult[];
  notes?: string[];
}

const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : `${(100 * x).toFixed(2)} %`);
const num = (x: number | undefined, d = 3) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));

export function tableMarkdown(d: DatasetResult): string {
  const head = `### ${d.dataset}, ${d.windowMs / 1000} s windows (${d.trainWindows} training, ${d.testWindows} test windows, ${d.runs.length} attack runs)\n\n`;
  const rows = d.methods.map((m) => {
    if (m.error) return `| ${m.method} | ${m.model} | – | – | – | – | – | – | – | – | – | ${m.error} |`;
    const x = m.metrics!;
    const detected = `${x.runs.filter((r) => r.detected).length}/${x.runs.length}`;
    return `| ${m.method} | ${m.model} | ${detected} | ${pct(x.tpr)} | ${pct(x.fpr)} | ${num(x.precision)} | ${num(x.f1)} | ${num(x.rocAuc)} | ${num(x.falseAlarmsPerHour, 1)} | ${num(m.msPerWindow?.p50)} | ${m.features} | |`;
  });
  const perRun = d.runs.length
    ? `\n\nPer attack run (detected by):\n\n${d.runs.map((r) => `- ${r.id} (${r.kind}): ${d.methods.filter((m) => m.metrics?.runs.find((x) => x.id === r.id)?.detected).map((m) => m.method).join(', ') || 'none'}`).join('\n')}`
    : '';
  return (
    head +
    '| method | model | runs detected | TPR | FPR | precision | F1 | ROC-AUC | false alarms/h | ms/window (p50) | features | note |\n' +
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n' +
    rows.join('\n') +
    perRun +
    (d.notes?.length ? `\n\n${d.notes.map((n) => `- ${n}`).join('\n')}` : '') +
    '\n'
  );
}

const slug = (s: string) => s.replace(/[^a-z0-9]+/gi, '-').toLowerCase();

/** The merged window a method's top alert was on, for the graph picture (the caller knows its datasets). */
export type WindowLookup = (dataset: string, windowMs: number, windowStart: number) => MergedWindow | undefined;

export async function writeReport(dir: string, title: string, results: readonly DatasetResult[], lookup?: WindowLookup): Promise<{ files: string[] }> {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    files.push(join(dir, name));
  };
  // scores are large; results.json keeps them for replotting
  put('results.json', JSON.stringify({ title, results }, null, 1));
  const md = `# ${title}\n\n${results.map(tableMarkdown).join('\n')}`;
  put('results.md', md);
  const sections: string[] = [];
  for (const d of results) {
    const key = `${slug(d.dataset)}-${d.windowMs / 1000}s`;
    const ok = d.methods.filter((m) => !m.error);
    const svgs: string[] = [];
    if (ok.length) {
      const roc = await toSvg(rocSpec(`${d.dataset}, ${d.windowMs / 1000} s windows: ROC`, ok));
      put(`roc-${key}.svg`, roc);
      svgs.push(roc);
      for (const m of ok) {
        const t = await toSvg(timelineSpec(`${d.dataset}, ${d.windowMs / 1000} s: ${m.method} scores (attacks shaded, threshold dashed)`, m, d.runs));
        put(`timeline-${key}-${slug(m.method)}.svg`, t);
        svgs.push(t);
      }
    }
    const dag = ok.find((m) => m.method === 'distappguard');
    const w = dag?.top && lookup?.(d.dataset, d.windowMs, dag.top.windowStart);
    if (dag?.top && w) {
      const x = dag.top.explanation;
      const svg = await dotToSvg(graphDot(w, { explained: x.edges.slice(0, 5), newEdges: x.newEdges, groups: x.groups.slice(0, 1).map((g) => g.name) }));
      put(`graph-${key}-top-alert.svg`, svg);
      svgs.push(`<h3>MSDEG of the top-scoring ${dag.top.attack ? 'attack' : ''} window (${new Date(dag.top.windowStart).toISOString()}, score ${dag.top.score.toFixed(2)}): explaining edges in red, observed vs expected bytes</h3>${svg.replace(/^<\?xml[^>]*>\s*<!DOCTYPE[^>]*>/, '')}`);
    }
    sections.push(`<section><pre>${escapeHtml(tableMarkdown(d))}</pre>${svgs.join('\n')}</section>`);
  }
  put(
    'report.html',
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em;overflow:auto}svg{margin:1em 0;display:block}</style></head><body><h1>${escapeHtml(title)}</h1>${sections.join('\n')}</body></html>\n`,
  );
  return { files };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
