/**
 * The detectors compared, all behind one interface: a method turns a window into weighted
 * features written as edges (its own "graph"), and the same training, calibration and scoring
 * (aggregator/model/train.ts, shared/model/detector.ts) do the rest. So the methods differ
 * only in what they look at and, for DistAppGuard, in the model's architecture:
 *
 *   bag-of-syscalls  per host, how many times each system call was made (Kang et al.)
 *   ngrams           per host, thread-aware 3-grams of system calls (LID-DS style), the 2,000
 *                    most frequent in training, the rest pooled
 *   malchain         the data exchange graph at process level: thread roles folded into their
 *                    process (Malchain-style: processes and resources, no thread roles)
 *   dense-ae         DistAppGuard's graph (thread roles, cross-host edges), plain autoencoder
 *   distappguard     DistAppGuard's graph, microservice-aware autoencoder
 */
import type { Edge } from '../shared/graph.js';
import type { ModelKind } from '../shared/model/architecture.js';
import { microserviceOf } from '../shared/model/features.js';
import { roleId } from '../shared/role-id.js';
import type { EvalWindow } from './replay.js';

export interface Method {
  name: string;
  model: ModelKind;
  /** learns what it needs from the training windows (a vocabulary) */
  prepare?(train: readonly EvalWindow[]): void;
  features(w: EvalWindow): Edge[];
}

const ids = new Map<string, string>();
const idOf = (label: string) => {
  let id = ids.get(label);
  if (!id) ids.set(label, (id = roleId(`eval\u0000${label}`)));
  return id;
};

/** A count as an edge from the host to a token: the detector sees one feature per (host, token). */
function tokenEdge(host: string, token: string, n: number): Edge {
  const src = `host:${host}`;
  const dst = `tok:${token}`;
  return { srcId: idOf(src), dstId: idOf(dst), src, dst, kind: 'ipc', bytes: n, count: n };
}

export const bagOfSyscalls: Method = {
  name: 'bag-of-syscalls',
  model: 'dense',
  features: (w) => [...w.bags].flatMap(([host, b]) => [...b.calls].map(([call, n]) => tokenEdge(host, call, n))),
};

export function ngrams(vocabulary = 2000): Method {
  let keep = new Set<string>();
  return {
    name: 'ngrams',
    model: 'dense',
    prepare(train) {
      const freq = new Map<string, number>();
      for (const w of train) for (const b of w.bags.values()) for (const [g, n] of b.ngrams) freq.set(g, (freq.get(g) ?? 0) + n);
      keep = new Set([...freq].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, vocabulary).map(([g]) => g));
    },
    features: (w) =>
      [...w.bags].flatMap(([host, b]) => {
        let rest = 0;
        const out: Edge[] = [];
        for (const [g, n] of b.ngrams) {
          if (keep.has(g)) out.push(tokenEdge(host, g, n));
          else rest += n;
        }
        if (rest > 0) out.push(tokenEdge(host, '(other n-grams)', rest));
        return out;
      }),
  };
}

/** Thread roles folded into their process: `mme/ITTI 3` → `mme`. */
export const malchain: Method = {
  name: 'malchain',
  model: 'dense',
  features: (w) => {
    const sum = new Map<string, Edge>();
    const fold = (label: string) => {
      const p = label.startsWith('mem:') ? undefined : microserviceOf(label);
      return p ?? label;
    };
    for (const e of w.merged.edges) {
      const src = fold(e.src);
      const dst = fold(e.dst);
      const key = `${src}\u0000${dst}\u0000${e.kind}`;
      const s = sum.get(key);
      if (s) {
        s.bytes += e.bytes;
        s.count += e.count;
      } else sum.set(key, { srcId: idOf(src), dstId: idOf(dst), src, dst, kind: e.kind, bytes: e.bytes, count: e.count });
    }
    return [...sum.values()];
  },
};

export const denseAe: Method = { name: 'dense-ae', model: 'dense', features: (w) => w.merged.edges };
export const distAppGuard: Method = { name: 'distappguard', model: 'msae', features: (w) => w.merged.edges };

export function allMethods(): Method[] {
  return [bagOfSyscalls, ngrams(), malchain, denseAe, distAppGuard];
}
