/** The agent's model store: only models signed by the trusted key, meant for this host, intact. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentModelStore, type ModelUpdateIn } from '../../agent/model-store.js';
import { trainModel } from '../../aggregator/model/train.js';
import { encodeArtifact, sha256Hex } from '../../shared/model/artifact.js';
import { loadOrCreateSigningKey, signDigest, type SigningKey } from '../../shared/model/signing.js';
import { generate, syntheticTemplate } from '../../bench/load-windows.js';

let dir: string;
let key: SigningKey;
let other: SigningKey;
let update: (host?: string, k?: SigningKey) => Promise<ModelUpdateIn>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dag-agent-model-'));
  key = loadOrCreateSigningKey(join(dir, 'agg', 'model-key.pem'));
  other = loadOrCreateSigningKey(join(dir, 'rogue', 'model-key.pem'));
  update = async (host = 'h1', k = key) => {
    const art = await trainModel(generate(syntheticTemplate(12), 30, 0, 1000, { seed: 1 }), { app: 'epc', windowMs: 1000, scope: { kind: 'host', host }, epochs: 2 });
    const model = encodeArtifact(art);
    const sha256 = sha256Hex(model);
    return { version: '7', model, sha256, signature: signDigest(k, sha256), signerPublicKey: k.publicPem };
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('agent model store', () => {
  it('creates the aggregator key once (0600) and reuses it', () => {
    const again = loadOrCreateSigningKey(join(dir, 'agg', 'model-key.pem'));
    expect(again.publicPem).toBe(key.publicPem);
    expect(readFileSync(join(dir, 'agg', 'model-key.pem'), 'utf8')).toMatch(/BEGIN PRIVATE KEY/);
  });

  it('accepts a signed model for its host, pins the key, and loads it back verified', async () => {
    const s = new AgentModelStore(join(dir, 'a1'), { host: 'h1', app: 'epc' });
    const u = await update();
    expect(s.accept(u).scope).toEqual({ kind: 'host', host: 'h1' });
    expect(s.trustedKey()).toBe(key.publicPem);
    expect(new AgentModelStore(join(dir, 'a1'), { host: 'h1', app: 'epc' }).load()?.version).toBe('7');
    // after pinning, a model signed by another key is refused, even if its signature is valid
    expect(() => s.accept({ ...u, signature: signDigest(other, u.sha256), signerPublicKey: other.publicPem })).toThrow(/does not trust/);
  });

  it('refuses tampered bytes, a bad signature, another host or app, and a model changed on disk', async () => {
    const s = new AgentModelStore(join(dir, 'a2'), { host: 'h1', app: 'epc', trustedKeyPem: key.publicPem });
    const u = await update();
    const bad = new Uint8Array(u.model);
    bad[50] ^= 1;
    expect(() => s.accept({ ...u, model: bad })).toThrow(/sha256 is/);
    // tampered and re-hashed: the signature gives it away
    expect(() => s.accept({ ...u, model: bad, sha256: sha256Hex(bad) })).toThrow(/signature does not verify/);
    expect(() => s.accept({ ...u, signature: signDigest(other, u.sha256), signerPublicKey: other.publicPem })).toThrow(/does not trust/);
    expect(() => s.accept(u)).not.toThrow();
    expect(() => new AgentModelStore(join(dir, 'a3'), { host: 'h2', app: 'epc' }).accept(u)).toThrow(/for host h1, this agent is host h2/);
    expect(() => new AgentModelStore(join(dir, 'a4'), { host: 'h1', app: 'web' }).accept(u)).toThrow(/for application epc/);
    const file = join(dir, 'a2', 'model.json');
    const onDisk = readFileSync(file);
    onDisk[onDisk.length - 3] ^= 1;
    writeFileSync(file, onDisk);
    expect(() => s.load()).toThrow(/sha256 is/);
  });
});
