/**
 * Models going down the agent streams: for an agent of host H in application A, the active
 * host model of (A, H), signed with the aggregator's model key. Acks are recorded per agent,
 * so an operator sees which agents run which model.
 */
import { create } from '@bufbuild/protobuf';
import { ModelUpdateSchema, type ModelUpdate } from '../shared/gen/distappguard/v1/agent_pb.js';
import { signDigest, type SigningKey } from '../shared/model/signing.js';
import type { DetectionStore } from './store/detection.js';

export class ModelPusher {
  /** signed updates by model id: signing and reading the body once per model, not per agent */
  private readonly cache = new Map<number, ModelUpdate>();

  constructor(
    private readonly det: DetectionStore,
    private readonly key: SigningKey,
  ) {}

  /** The update an agent of (app, host) should have, or undefined when there is no host model. */
  updateFor(app: string, host: string): ModelUpdate | undefined {
    const row = this.det.activeModel(app, host);
    if (!row) return undefined;
    let u = this.cache.get(row.id);
    if (!u) {
      u = create(ModelUpdateSchema, {
        version: String(row.id),
        model: row.body,
        sha256: row.sha256,
        signature: signDigest(this.key, row.sha256),
        signerPublicKey: this.key.publicPem,
      });
      this.cache.clear(); // older versions are not pushed again
      this.cache.set(row.id, u);
    }
    return u;
  }

  recordAck(agentId: string, version: string, accepted: boolean, now: number): void {
    if (accepted) this.det.recordAgentModel(agentId, version, now);
  }
}
