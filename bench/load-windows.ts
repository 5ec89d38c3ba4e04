/**
 * Windows for model tests, built on the structure of a real capture: the edges (roles, ids,
 * labels, kinds) and their relative sizes come from an imported recording; each generated
 * window scales them all by one load factor drawn from a heavy-tailed distribution (so every
 * edge's own range is wide) with a little independent noise per edge (so ratios between edges
 * are steady). An attack that changes one ratio can then keep every edge inside its range.
 */
import type { Edge } from '../shared/graph.js';
import { seeded } from '../shared/model/random.js';

export interface Template {
  edges: Edge[];
}

function gaussian(rnd: () => number): number {
  const u = Math.max(rnd(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
}

export interface GenOptions {
  seed: number;
  /** sd of log load (default 0.8: the load spans ~10× either way) */
  loadSigma?: number;
  /** sd of per-edge log noise (default 0.05) */
  noise?: number;
}

/** `n` windows; window i starts at `start + i·windowMs`. `load(i)` overrides the drawn load. */
export function generate(t: Template, n: number, start: number, windowMs: number, o: GenOptions, load?: (i: number) => number | undefined) {
  const rnd = seeded(o.seed);
  const out: { windowStart: number; edges: Edge[] }[] = [];
  for (let i = 0; i < n; i++) {
    const drawn = Math.exp(gaussian(rnd) * (o.loadSigma ?? 0.8));
    const L = load?.(i) ?? drawn;
    const edges = t.edges.map((e) => {
      const f = L * Math.exp(gaussian(rnd) * (o.noise ?? 0.05));
      return { ...e, bytes: Math.max(1, Math.round(e.bytes * f)), count: Math.max(1, Math.round(e.count * f)) };
    });
    out.push({ windowStart: start + i * windowMs, edges });
  }
  return out;
}

/** The mean bytes per window of every edge of the imported windows: the template. */
export function templateOf(windows: readonly { edges: readonly Edge[] }[]): Template {
  const sum = new Map<string, Edge>();
  for (const w of windows) {
    for (const e of w.edges) {
      const k = `${e.srcId}>${e.dstId}/${e.kind}`;
      const s = sum.get(k);
      if (s) {
        s.bytes += e.bytes;
        s.count += e.count;
      } else sum.set(k, { ...e });
    }
  }
  const n = windows.length;
  return { edges: [...sum.values()].map((e) => ({ ...e, bytes: Math.max(100, e.bytes / n), count: Math.max(1, Math.round(e.count / n)) })) };
}

/**
 * A synthetic application of `edges` edges over `services` microservices (threads `svcK/tN`,
 * peers, files, memory), sizes spread over orders of magnitude: for benchmarks at scale.
 */
export function syntheticTemplate(edges: number, services = Math.max(1, Math.round(edges / 20)), seed = 1): Template {
  const rnd = seeded(seed);
  const id = (s: string) => {
    let h = 0n;
    for (const c of s) h = (h * 131n + BigInt(c.charCodeAt(0))) & 0xffffffffffffffffn;
    return h.toString(16).padStart(16, '0');
  };
  const out: Edge[] = [];
  for (let i = 0; i < edges; i++) {
    const s = i % services;
    const src = `svc${s}/t${i % 7}`;
    const kind = (['net', 'file', 'mem', 'net'] as const)[i % 4];
    const dst = kind === 'net' ? `svc${(s + 1 + (i % 5)) % services}/t${i % 3}` : kind === 'file' ? `file:/var/lib/svc${s}/f${i}` : `mem:svc${s}#${i}`;
    out.push({ srcId: id(src), dstId: id(dst + i), src, dst, kind, bytes: Math.round(100 * Math.exp(rnd() * 9)), count: 1 + Math.round(rnd() * 50) });
  }
  return { edges: out };
}
