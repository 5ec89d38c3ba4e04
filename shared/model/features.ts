/**
 * The feature index: the edges seen in training, in a fixed order, each owned by the
 * microservice it belongs to (DESIGN §6). Pure functions.
 *
 * Ownership: an edge belongs to the microservice of its thread end — the sender's for an
 * edge between two threads, so the ratios between what one service sends to each of its
 * peers are learnt inside that service's block (the paper's (eNB,MME) vs (eNB,SGW) case);
 * cross-service ratios are learnt at the shared bottleneck.
 */
import type { Edge, EdgeKind } from '../graph.js';

export interface Feature {
  /** `srcId>dstId/kind` */
  key: string;
  srcId: string;
  dstId: string;
  src: string;
  dst: string;
  kind: EdgeKind;
  /** the microservice (process role label) that owns the edge */
  group: string;
}

export interface FeatureGroup {
  name: string;
  /** positions in `features` (contiguous: features are ordered by group) */
  features: number[];
}

export interface FeatureIndex {
  features: Feature[];
  groups: FeatureGroup[];
}

export function edgeKey(e: Pick<Edge, 'srcId' | 'dstId' | 'kind'>): string {
  return `${e.srcId}>${e.dstId}/${e.kind}`;
}

const ENDPOINT = /^(file|net|ext|ipc|unix|pipe|anon|mem):/;

/**
 * The microservice of a role label, or undefined for roles that are not a process's
 * (files, endpoints, IPC). Labels are built by agent/roles.ts: a process is
 * `[service:]exe[[program]]`, its threads `<process>/<thread name>`, its memory `mem:<process>`.
 */
export function microserviceOf(label: string): string | undefined {
  if (label.startsWith('mem:')) return microserviceOf(label.slice(4)) ?? label.slice(4);
  if (ENDPOINT.test(label)) return undefined;
  // `[program]` may hold a path with slashes: the process label ends at its closing bracket
  const open = label.indexOf('[');
  const slash = label.indexOf('/');
  if (open >= 0 && (slash < 0 || open < slash)) {
    const close = label.indexOf(']', open);
    if (close > 0) return label.slice(0, close + 1);
  }
  return slash < 0 ? label : label.slice(0, slash);
}

/** The owning microservice: the sender if it is a process's thread, else the receiver. */
export function edgeGroup(e: Pick<Edge, 'src' | 'dst'>): string {
  return microserviceOf(e.src) ?? microserviceOf(e.dst) ?? 'other';
}

/**
 * Every edge that appears in any of the windows, ordered by group then key, so the same
 * training data always gives the same index whatever order windows were read in.
 * `extra`: edges an operator accepted (from alerts labelled benign) that must be features
 * even if the training range does not contain them.
 */
export function buildFeatureIndex(windows: Iterable<readonly Edge[]>, extra: Iterable<Edge> = []): FeatureIndex {
  const byKey = new Map<string, Feature>();
  const add = (e: Edge) => {
    const key = edgeKey(e);
    if (!byKey.has(key)) byKey.set(key, { key, srcId: e.srcId, dstId: e.dstId, src: e.src, dst: e.dst, kind: e.kind, group: edgeGroup(e) });
  };
  for (const edges of windows) for (const e of edges) add(e);
  for (const e of extra) add(e);
  const features = [...byKey.values()].sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const groups: FeatureGroup[] = [];
  features.forEach((f, i) => {
    const last = groups[groups.length - 1];
    if (last && last.name === f.group) last.features.push(i);
    else groups.push({ name: f.group, features: [i] });
  });
  return { features, groups };
}

export interface Vectorised {
  /** bytes per feature (0 where the window lacks the edge) */
  bytes: Float64Array;
  /** edges of the window that are not features: never seen in training */
  unseen: Edge[];
}

const KINDS: Record<EdgeKind, number> = { net: 0, file: 1, mem: 2, ipc: 3 };

/**
 * Feature position by (src, dst, kind). Two levels of maps on the ids as they arrive: building
 * one `src>dst/kind` string per edge and hashing it cost most of a window's scoring time.
 */
export class KeyIndex {
  private readonly bySrc = new Map<string, Map<string, Int32Array>>();

  constructor(index: FeatureIndex) {
    index.features.forEach((f, i) => {
      let d = this.bySrc.get(f.srcId);
      if (!d) this.bySrc.set(f.srcId, (d = new Map()));
      let k = d.get(f.dstId);
      if (!k) d.set(f.dstId, (k = new Int32Array(4).fill(-1)));
      k[KINDS[f.kind]] = i;
    });
  }

  /** the feature's position, or -1 */
  get(e: Pick<Edge, 'srcId' | 'dstId' | 'kind'>): number {
    const k = this.bySrc.get(e.srcId)?.get(e.dstId);
    return k ? k[KINDS[e.kind]] : -1;
  }
}

export function keyIndex(index: FeatureIndex): KeyIndex {
  return new KeyIndex(index);
}

/** A window's edges as the model's input; what the index does not know is returned, never dropped. */
export function vectorise(index: FeatureIndex, keys: KeyIndex, edges: readonly Edge[]): Vectorised {
  const bytes = new Float64Array(index.features.length);
  const unseen: Edge[] = [];
  for (const e of edges) {
    const i = keys.get(e);
    if (i < 0) unseen.push(e);
    else bytes[i] += e.bytes;
  }
  return { bytes, unseen };
}
