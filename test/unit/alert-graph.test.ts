/** The part of `distappguard graph` the console shares: trimming a huge window keeps what explains the alert. */
import { describe, expect, it } from 'vitest';
import { renderGraph, trimWindow } from '../../aggregator/alert-graph.js';
import type { Edge, MergedWindow } from '../../shared/graph.js';

const id = (n: number) => n.toString(16).padStart(16, '0');
const edge = (s: number, d: number, bytes: number): Edge => ({ srcId: id(s), dstId: id(d), src: `s${s}/t`, dst: `s${d}/t`, kind: 'net', bytes, count: 1 });
const win = (edges: Edge[]): MergedWindow => ({ app: 'a', windowStart: 0, windowMs: 1000, hosts: ['h'], edges, matchedFlows: 0, unmatchedFlows: 0 });

describe('trimWindow', () => {
  it('keeps every highlighted edge, then the largest; says how many it left out', () => {
    const edges = Array.from({ length: 50 }, (_, i) => edge(i, i + 1, 1000 + i));
    const small = edge(100, 101, 1);
    const w = win([...edges, small]);
    const h = { explained: [{ srcId: small.srcId, dstId: small.dstId, kind: small.kind, observedBytes: 1, expectedBytes: 900 }] };
    const { window, dropped } = trimWindow(w, h, 10);
    expect(dropped).toBe(41);
    expect(window.edges).toHaveLength(10);
    expect(window.edges[0]).toBe(small);
    expect(window.edges.slice(1).map((e) => e.bytes)).toEqual([1049, 1048, 1047, 1046, 1045, 1044, 1043, 1042, 1041]);
    expect(w.edges).toHaveLength(51); // the stored window is not changed
    expect(trimWindow(w, h, 100)).toEqual({ window: w, dropped: 0 });
  });

  it('renders JSON and DOT without loading Graphviz', async () => {
    const w = win([edge(1, 2, 5)]);
    expect(JSON.parse(await renderGraph(w, {}, 'json'))).toEqual(w);
    expect(await renderGraph(w, {}, 'dot')).toMatch(/^digraph msdeg \{[\s\S]*net 5 B \/ 1/);
  });
});
