/**
 * The agent's detection set-up: the stored model (verified again) at start, and the handler
 * for models the aggregator pushes — verify, store, load, answer. A refused model leaves the
 * previous one active.
 */
import type { Logger } from '../shared/log.js';
import type { ModelUpdate } from '../shared/gen/distappguard/v1/agent_pb.js';
import type { PartialWindow } from '../shared/graph.js';
import { LocalDetection } from './local-detect.js';
import { AgentModelStore, ModelRefused } from './model-store.js';

export interface LocalModel {
  detection: LocalDetection;
  /** the version loaded at start ('' when none) */
  version: string;
  onModel: (u: ModelUpdate) => Promise<{ accepted: boolean; reason: string }>;
}

export async function startLocalModel(o: { dir: string; host: string; app: string; trustedKeyPem?: string; log: Logger }): Promise<LocalModel> {
  const store = new AgentModelStore(o.dir, { host: o.host, app: o.app, trustedKeyPem: o.trustedKeyPem });
  const detection = new LocalDetection(o.log);
  let version = '';
  try {
    const stored = store.load();
    if (stored) {
      await detection.setModel(stored.version, stored.artifact);
      version = stored.version;
    }
  } catch (e) {
    if (!(e instanceof ModelRefused)) throw e;
    o.log.error({ dir: o.dir, reason: e.message }, 'stored model refused: no local detection until the aggregator pushes a valid one');
  }
  const onModel = async (u: ModelUpdate) => {
    try {
      const artifact = store.accept({ version: u.version, model: u.model, sha256: u.sha256, signature: u.signature, signerPublicKey: u.signerPublicKey });
      await detection.setModel(u.version, artifact);
      return { accepted: true, reason: '' };
    } catch (e) {
      const reason = (e as Error).message;
      o.log.error({ model: u.version, reason, active: detection.version || undefined }, 'model refused; the previous model stays active');
      return { accepted: false, reason };
    }
  };
  return { detection, version, onModel };
}

/** Scores a closed window; the verdict rides with the window only when it is an alert, so most windows stay small. */
export function attachVerdict(local: LocalModel | undefined, w: PartialWindow): PartialWindow {
  const v = local?.detection.verdict(w);
  if (v && (v.anomalous || v.newEdges.length > 0)) w.verdict = v;
  return w;
}
