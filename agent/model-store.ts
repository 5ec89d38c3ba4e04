/**
 * The agent's copy of the model pushed to it: verified (sha256, Ed25519 signature by a trusted
 * aggregator key, model document checks, meant for this host and app), then stored atomically
 * in the agent's state directory, and verified again every time it is loaded — a model file
 * changed on disk is refused like one changed in transit, and the previous one stays active.
 *
 * Trust: a key given by configuration (`--model-key`), else the first key seen is pinned in
 * the state directory (trust on first use, as SSH does). Mutual TLS identity (the ops issue)
 * makes the first use safe as well.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { decodeArtifact, sha256Hex, type ModelArtifact } from '../shared/model/artifact.js';
import { sameKey, verifyDigest } from '../shared/model/signing.js';

export interface ModelUpdateIn {
  version: string;
  model: Uint8Array;
  sha256: string;
  signature: string;
  signerPublicKey: string;
}

export class ModelRefused extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'ModelRefused';
  }
}

interface Meta {
  version: string;
  sha256: string;
  signature: string;
  signerPublicKey: string;
}

function writeAtomic(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

export class AgentModelStore {
  private readonly modelFile: string;
  private readonly metaFile: string;
  private readonly pinFile: string;

  constructor(
    readonly dir: string,
    private readonly expect: { host: string; app: string; trustedKeyPem?: string },
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.modelFile = join(dir, 'model.json');
    this.metaFile = join(dir, 'model.meta.json');
    this.pinFile = join(dir, 'aggregator-model-key.pem');
  }

  /** The key this agent trusts now: configured, or pinned; undefined before the first model. */
  trustedKey(): string | undefined {
    if (this.expect.trustedKeyPem) return this.expect.trustedKeyPem;
    return existsSync(this.pinFile) ? readFileSync(this.pinFile, 'utf8') : undefined;
  }

  private verify(u: ModelUpdateIn): ModelArtifact {
    const got = sha256Hex(u.model);
    if (got !== u.sha256) throw new ModelRefused(`model ${u.version}: sha256 is ${got}, the update says ${u.sha256}`);
    const trusted = this.trustedKey();
    if (trusted !== undefined && !sameKey(trusted, u.signerPublicKey)) throw new ModelRefused(`model ${u.version}: signed by a key this agent does not trust`);
    if (!verifyDigest(u.signerPublicKey, u.sha256, u.signature)) throw new ModelRefused(`model ${u.version}: the signature does not verify`);
    let a: ModelArtifact;
    try {
      a = decodeArtifact(u.model, u.sha256);
    } catch (e) {
      throw new ModelRefused(`model ${u.version}: ${(e as Error).message}`);
    }
    if (a.app !== this.expect.app) throw new ModelRefused(`model ${u.version}: for application ${a.app}, this agent is ${this.expect.app}`);
    if (a.scope.kind !== 'host' || a.scope.host !== this.expect.host) {
      throw new ModelRefused(`model ${u.version}: for ${a.scope.kind === 'host' ? `host ${a.scope.host}` : 'the whole application'}, this agent is host ${this.expect.host}`);
    }
    return a;
  }

  /** Verifies and stores a pushed model; throws ModelRefused with the reason. */
  accept(u: ModelUpdateIn): ModelArtifact {
    const a = this.verify(u);
    if (this.trustedKey() === undefined) writeAtomic(this.pinFile, u.signerPublicKey);
    writeAtomic(this.modelFile, u.model);
    const meta: Meta = { version: u.version, sha256: u.sha256, signature: u.signature, signerPublicKey: u.signerPublicKey };
    writeAtomic(this.metaFile, JSON.stringify(meta));
    return a;
  }

  /** The stored model, verified as if it had just arrived; undefined when there is none. Throws ModelRefused. */
  load(): { version: string; artifact: ModelArtifact } | undefined {
    if (!existsSync(this.metaFile) || !existsSync(this.modelFile)) return undefined;
    let meta: Meta;
    try {
      meta = JSON.parse(readFileSync(this.metaFile, 'utf8')) as Meta;
    } catch (e) {
      throw new ModelRefused(`stored model ${this.metaFile}: ${(e as Error).message}`);
    }
    const artifact = this.verify({ ...meta, model: new Uint8Array(readFileSync(this.modelFile)) });
    return { version: meta.version, artifact };
  }
}
