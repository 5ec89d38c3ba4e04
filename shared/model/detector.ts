/**
 * A loaded model scoring windows: edges → features → scaled → reconstructed → score and
 * explanation, plus the edges the model never saw (reported on their own, never dropped).
 * Used by the aggregator on merged windows and by agents on their host's partial windows.
 */
import type { Edge, EdgeKind } from '../graph.js';
import type { ModelArtifact } from './artifact.js';
import { Autoencoder } from './autoencoder.js';
import { loadTf } from './backend.js';
import { keyIndex, vectorise, type KeyIndex } from './features.js';
import { scaleInto } from './scaling.js';
import { explainEdges, explainGroups, windowErrors, type EdgeExplanation, type GroupExplanation } from './score.js';

export interface NewEdge {
  src: string;
  dst: string;
  srcId: string;
  dstId: string;
  kind: EdgeKind;
  bytes: number;
  count: number;
}

export interface Verdict {
  score: number;
  threshold: number;
  /** score above threshold */
  anomalous: boolean;
  meanError: number;
  /** microservices by error ratio, the worst first */
  groups: GroupExplanation[];
  /** edges by error, the worst first */
  edges: EdgeExplanation[];
  newEdges: NewEdge[];
}

export interface ScoreOptions {
  topEdges?: number;
  topGroups?: number;
}

export class Detector {
  private readonly keys: KeyIndex;

  private constructor(
    readonly artifact: ModelArtifact,
    private readonly ae: Autoencoder,
  ) {
    this.keys = keyIndex(artifact.features);
  }

  static async load(artifact: ModelArtifact): Promise<Detector> {
    const { tf } = await loadTf();
    return new Detector(artifact, new Autoencoder(tf, artifact.architecture, artifact.weights));
  }

  /** Windows scored in batches (evaluation, calibration); one window costs one small forward pass. */
  score(windows: readonly (readonly Edge[])[], o: ScoreOptions = {}): Verdict[] {
    const a = this.artifact;
    const D = a.features.features.length;
    const x = new Float32Array(windows.length * D);
    const vec = windows.map((edges, w) => {
      const v = vectorise(a.features, this.keys, edges);
      scaleInto(a.scaling, v.bytes, x, w * D);
      return v;
    });
    const y = this.ae.reconstruct(x, windows.length);
    return vec.map((v, w) => {
      const err = windowErrors(a.features, a.calibration.groupScale, x, y, w * D, a.calibration.edgeScale);
      return {
        score: err.score,
        threshold: a.calibration.threshold,
        anomalous: err.score > a.calibration.threshold,
        meanError: err.meanError,
        groups: explainGroups(a.features, err, o.topGroups ?? 5),
        edges: explainEdges(a.features, a.scaling, v.bytes, y, err, o.topEdges ?? 10, w * D),
        newEdges: v.unseen.map((e) => ({ src: e.src, dst: e.dst, srcId: e.srcId, dstId: e.dstId, kind: e.kind, bytes: e.bytes, count: e.count })),
      };
    });
  }

  scoreOne(edges: readonly Edge[], o: ScoreOptions = {}): Verdict {
    return this.score([edges], o)[0];
  }

  dispose(): void {
    this.ae.dispose();
  }
}
