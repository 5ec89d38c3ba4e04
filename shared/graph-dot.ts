/**
 * A merged window as Graphviz DOT (pure): roles as nodes shaped by kind, edges labelled with
 * bytes and calls. An alert's explanation can be laid over it: edges that explain the score in
 * red with observed vs expected bytes, never-seen edges dashed.
 */
import type { EdgeKind, MergedWindow } from './graph.js';
import { edgeKey } from './model/features.js';
import { formatDuration } from './duration.js';

export interface DotHighlight {
  /** edges that explain an alert: observed vs expected bytes */
  explained?: { srcId: string; dstId: string; kind: EdgeKind; observedBytes: number; expectedBytes: number }[];
  /** never-seen edges (also drawn when the window lacks them) */
  newEdges?: { srcId: string; dstId: string; src: string; dst: string; kind: EdgeKind; bytes: number }[];
  /** microservices to outline */
  groups?: string[];
}

const SHAPES: Record<string, string> = { file: 'note', mem: 'component', ext: 'doubleoctagon', net: 'diamond', ipc: 'cds' };

export function graphDot(w: MergedWindow, h: DotHighlight = {}): string {
  const q = (s: string) => JSON.stringify(s);
  const key = edgeKey;
  const explained = new Map((h.explained ?? []).map((x) => [key(x), x]));
  const fresh = new Map((h.newEdges ?? []).map((x) => [key(x), x]));
  const groups = new Set(h.groups ?? []);
  const lines = [`digraph msdeg {`, `  label=${q(`${w.app} ${new Date(w.windowStart).toISOString()} +${formatDuration(w.windowMs)}`)};`, '  rankdir=LR;', '  node [fontsize=10]; edge [fontsize=9];'];
  const nodes = new Map<string, string>();
  for (const e of [...w.edges, ...(h.newEdges ?? [])]) {
    nodes.set(e.srcId, e.src);
    nodes.set(e.dstId, e.dst);
  }
  for (const [id, label] of nodes) {
    const kind = /^(file|mem|ext|net|ipc):/.exec(label)?.[1];
    const owner = kind ? undefined : label.split('/')[0];
    const mark = owner && groups.has(owner) ? ', color="#d62728", penwidth=2' : '';
    lines.push(`  "${id}" [label=${q(label)}, shape=${kind ? SHAPES[kind] : 'box'}${mark}];`);
  }
  const drawn = new Set<string>();
  for (const e of w.edges) {
    const k = key(e);
    drawn.add(k);
    const x = explained.get(k);
    if (fresh.has(k)) lines.push(`  "${e.srcId}" -> "${e.dstId}" [label=${q(`NEW ${e.kind} ${e.bytes} B`)}, color="#d62728", style=dashed, penwidth=2];`);
    else if (x) lines.push(`  "${e.srcId}" -> "${e.dstId}" [label=${q(`${e.kind} ${x.observedBytes} B (expected ${x.expectedBytes})`)}, color="#d62728", penwidth=2.5];`);
    else lines.push(`  "${e.srcId}" -> "${e.dstId}" [label=${q(`${e.kind} ${e.bytes} B / ${e.count}`)}, color="#777777"];`);
  }
  // explained edges missing from the window: the model expected bytes that did not come
  for (const [k, x] of explained) {
    if (drawn.has(k) || !nodes.has(x.srcId) || !nodes.has(x.dstId)) continue;
    lines.push(`  "${x.srcId}" -> "${x.dstId}" [label=${q(`${x.kind} 0 B (expected ${x.expectedBytes})`)}, color="#d62728", style=dotted, penwidth=2];`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
