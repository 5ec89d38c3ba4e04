/**
 * Local detection on the agent: its host's model scores each closed window before it is
 * spooled, and the verdict travels with the window. Never-seen edges and anomalous scores are
 * logged at once, whether or not the aggregator is reachable.
 */
import type { Logger } from '../shared/log.js';
import type { LocalVerdict, PartialWindow } from '../shared/graph.js';
import type { ModelArtifact } from '../shared/model/artifact.js';
import { Detector } from '../shared/model/detector.js';

export class LocalDetection {
  private detector: Detector | undefined;
  version = '';
  readonly counters = { scored: 0, alerts: 0, newEdges: 0 };

  constructor(private readonly log: Logger) {}

  async setModel(version: string, artifact: ModelArtifact): Promise<void> {
    const next = await Detector.load(artifact);
    this.detector?.dispose();
    this.detector = next;
    this.version = version;
    this.log.info({ model: version, features: artifact.features.features.length, threshold: artifact.calibration.threshold }, 'local model active');
  }

  /** The verdict on a window of this host, or undefined without a model. */
  verdict(w: PartialWindow): LocalVerdict | undefined {
    const d = this.detector;
    if (!d) return undefined;
    const v = d.scoreOne(w.edges);
    this.counters.scored++;
    const verdict: LocalVerdict = {
      modelVersion: this.version,
      score: v.score,
      threshold: v.threshold,
      anomalous: v.anomalous,
      newEdges: v.newEdges,
      groups: v.groups,
      edges: v.edges.map((e) => ({ srcId: e.srcId, dstId: e.dstId, src: e.src, dst: e.dst, kind: e.kind, observedBytes: e.observedBytes, expectedBytes: e.expectedBytes, error: e.error })),
    };
    if (verdict.anomalous || verdict.newEdges.length > 0) {
      this.counters.alerts++;
      this.counters.newEdges += verdict.newEdges.length;
      this.log.warn(
        {
          window: new Date(w.windowStart).toISOString(), model: this.version, score: +v.score.toFixed(3), threshold: +v.threshold.toFixed(3),
          microservice: v.groups[0]?.name, newEdges: verdict.newEdges.map((e) => `${e.src} → ${e.dst} (${e.kind})`),
        },
        'local alert',
      );
    }
    return verdict;
  }

  dispose(): void {
    this.detector?.dispose();
  }
}
