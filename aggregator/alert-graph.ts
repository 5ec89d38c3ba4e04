/**
 * One window's MSDEG as a picture, with an alert's explanation drawn over it: the part shared
 * by `distappguard graph` and the web console. Finding the window (of an alert, or holding a
 * time), choosing what to highlight, trimming a huge window to what a person can read, and
 * rendering JSON, DOT or SVG (Graphviz compiled to WebAssembly, loaded on first use).
 */
import type { MergedWindow } from '../shared/graph.js';
import { graphDot, type DotHighlight } from '../shared/graph-dot.js';
import { dotToSvg } from '../shared/graph-svg.js';
import { edgeKey } from '../shared/model/features.js';
import type { AlertRow, DetectionStore } from './store/detection.js';
import type { Store } from './store/store.js';

/** The window or alert asked for is not in the store; the message says which and why. */
export class GraphNotFound extends Error {}

export type GraphFormat = 'json' | 'dot' | 'svg';

/** What explains an alert, as the graph draws it: its top edges, its never-seen edges, its top microservice. */
export function alertHighlight(a: AlertRow): DotHighlight {
  return {
    explained: a.explanation.edges.slice(0, 5),
    newEdges: a.explanation.newEdges,
    groups: a.explanation.groups.slice(0, 1).map((g) => g.name),
  };
}

/** An alert, its window's merged graph and the highlight of its explanation. */
export function alertGraph(store: Store, det: DetectionStore, id: number): { alert: AlertRow; window: MergedWindow; highlight: DotHighlight } {
  const alert = det.alert(id);
  if (!alert) throw new GraphNotFound(`no alert ${id}`);
  const window = store.windowGraph(alert.app, alert.windowStart);
  if (!window) throw new GraphNotFound(`alert ${alert.id}: its window (${new Date(alert.windowStart).toISOString()}) is not in the store`);
  return { alert, window, highlight: alertHighlight(alert) };
}

/** The stored window of `app` that holds time `t` (ms), looking back at most an hour. */
export function windowHolding(store: Store, app: string, t: number): MergedWindow {
  const rows = store.listWindows({ app, from: t - 3_600_000, to: t + 1 });
  const row = rows.filter((r) => r.windowStart <= t && t < r.windowStart + r.windowMs).pop();
  const w = row ? store.windowGraph(app, row.windowStart) : undefined;
  if (!w) throw new GraphNotFound(`no window of app '${app}' holds ${new Date(t).toISOString()}`);
  return w;
}

/**
 * At most `maxEdges` edges of a window: every highlighted edge first, then the largest by
 * bytes. Graphviz lays out ~1,000 edges in a third of a second on the calling thread, and a
 * picture of more is unreadable anyway. `dropped`: how many edges were left out.
 */
export function trimWindow(w: MergedWindow, h: DotHighlight, maxEdges: number): { window: MergedWindow; dropped: number } {
  if (w.edges.length <= maxEdges) return { window: w, dropped: 0 };
  const marked = new Set([...(h.explained ?? []), ...(h.newEdges ?? [])].map(edgeKey));
  const edges = [...w.edges].sort((a, b) => Number(marked.has(edgeKey(b))) - Number(marked.has(edgeKey(a))) || b.bytes - a.bytes).slice(0, maxEdges);
  return { window: { ...w, edges }, dropped: w.edges.length - edges.length };
}

/** The window as JSON (the merged graph, one line), Graphviz DOT, or SVG with the highlight drawn. */
export async function renderGraph(w: MergedWindow, h: DotHighlight, format: GraphFormat): Promise<string> {
  if (format === 'json') return JSON.stringify(w) + '\n';
  const dot = graphDot(w, h);
  return format === 'dot' ? dot : dotToSvg(dot);
}
