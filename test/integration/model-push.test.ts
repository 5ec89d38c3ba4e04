/**
 * Detection end to end through real gRPC over loopback, real SQLite files and real spools:
 * the aggregator trains on what two agents sent, pushes each its host model (signed), both
 * acknowledge it; then, with the aggregator down, one agent sees a never-seen edge, raises a
 * local alert at once, and the alert reaches the aggregator's store after it comes back.
 * Also: a model that fails verification is refused by the agent and the old one stays.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentLink } from '../../agent/link.js';
import { attachVerdict, startLocalModel, type LocalModel } from '../../agent/local-model.js';
import { Spool } from '../../agent/spool.js';
import { DetectionService } from '../../aggregator/detect.js';
import { ModelPusher } from '../../aggregator/model-push.js';
import { AggregatorServer } from '../../aggregator/server.js';
import { Store } from '../../aggregator/store/index.js';
import type { Edge, PartialWindow } from '../../shared/graph.js';
import { loadOrCreateSigningKey, signDigest } from '../../shared/model/signing.js';
import { roleId } from '../../shared/role-id.js';
import { PROTOCOL_VERSION } from '../../shared/wire.js';
import { generate, type Template } from '../../bench/load-windows.js';

const W = 1000;
const dir = mkdtempSync(join(tmpdir(), 'dag-push-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const r = (label: string) => roleId(label);
const e = (src: string, dst: string, bytes: number, kind: Edge['kind'] = 'net'): Edge => ({ srcId: r(src), dstId: r(dst), src, dst, kind, bytes, count: 1 });
const hostTemplates: Record<string, Template> = {
  h1: { edges: [e('enb/s1ap', 'net:tcp/private:36412', 4000), e('net:tcp/private:36412', 'enb/s1ap', 3000), e('enb/gtpu', 'net:udp/private:2152', 90000), e('file:/etc/enb.conf', 'enb/main', 2000, 'file')] },
  h2: { edges: [e('mme/ITTI 3', 'net:tcp/private:3868', 1500), e('net:tcp/private:3868', 'mme/ITTI 3', 2500), e('mme/ITTI 3', 'net:udp/private:2123', 1200), e('mem:mme', 'mme/ITTI 3', 8000, 'mem')] },
};

function lines() {
  const out: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => out.push(JSON.parse(s)) });
  return { out, log };
}

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('models pushed to agents, local alerts delivered after reconnect', () => {
  it('trains, pushes, both agents acknowledge; a cut-off agent alerts on a never-seen edge and the alert arrives later', async () => {
    const db = join(dir, 'agg.db');
    const aggLog = lines();
    const key = loadOrCreateSigningKey(join(dir, 'model-key.pem'));
    let store = Store.open(db);
    let server: AggregatorServer | undefined;
    let detection: DetectionService;
    const startAggregator = async (listen: string) => {
      detection = new DetectionService({ store, log: aggLog.log, onModel: (app) => server?.pushModels(app) });
      server = new AggregatorServer({
        listen, store, log: aggLog.log, graceMs: 300,
        onWindow: (w) => detection.onWindow(w),
        models: new ModelPusher(detection.det, key),
        onLocalVerdict: (a, w, v) => detection.raiseLocal(a, w, v),
      });
      return server.start();
    };
    const addr = await startAggregator('127.0.0.1:0');

    const agents: { host: string; link: AgentLink; spool: Spool; local: LocalModel; log: ReturnType<typeof lines> }[] = [];
    for (const host of ['h1', 'h2']) {
      const log = lines();
      const local = await startLocalModel({ dir: join(dir, host, 'model'), host, app: 'epc', log: log.log });
      const spool = Spool.open(join(dir, host, 'spool.db'), { maxBytes: 1 << 24, maxAgeMs: 3_600_000 });
      const link = new AgentLink({
        aggregator: addr, spool, log: log.log, initialBackoffMs: 100, maxBackoffMs: 500, onModel: local.onModel,
        hello: { agentId: host, host, app: 'epc', agentVersion: 'test', protocolVersion: PROTOCOL_VERSION, windowMs: W, collector: 'replay', modelVersion: local.version },
      });
      link.start();
      agents.push({ host, link, spool, local, log });
    }
    const window = (host: string, start: number, edges: Edge[]): PartialWindow => ({
      app: 'epc', host, windowStart: start, windowMs: W, edges, flows: [], stats: { events: edges.length, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 },
    });
    // 60 windows of normal traffic, in the recent past
    const t0 = Math.floor(Date.now() / W) * W - 600 * W;
    const normal = Object.fromEntries(agents.map((a, i) => [a.host, generate(hostTemplates[a.host], 60, t0, W, { seed: 10 + i })]));
    for (let i = 0; i < 60; i++) for (const a of agents) a.link.enqueue(attachVerdict(a.local, window(a.host, normal[a.host][i].windowStart, normal[a.host][i].edges)));
    await until('60 merged windows', () => store.listWindows({ app: 'epc' }).filter((w) => w.status === 'closed').length === 60);

    const modelId = await detection!.train('epc', { seed: 1, targetFpr: 0.01 });
    const hostModels = detection!.det.hostModels(modelId);
    expect(hostModels.map((m) => m.scope)).toEqual(['h1', 'h2']);
    // the push happens when the aggregator notices the new model: at its next window
    for (const a of agents) a.link.enqueue(attachVerdict(a.local, window(a.host, t0 + 60 * W, normal[a.host][0].edges)));
    await until('both agents acknowledge their host model', () => {
      const rows = detection.det.agentModels();
      return rows.length === 2 && rows.every((x) => x.modelVersion === String(hostModels.find((m) => m.scope === x.host)!.id));
    });
    for (const a of agents) expect(a.local.detection.version).toBe(String(hostModels.find((m) => m.scope === a.host)!.id));

    // a model that fails verification is refused and the old one stays
    const good = new ModelPusher(detection!.det, key).updateFor('epc', 'h1')!;
    const forged = { ...good, version: '999', signature: signDigest(loadOrCreateSigningKey(join(dir, 'rogue.pem')), good.sha256) };
    expect(await agents[0].local.onModel(forged)).toEqual({ accepted: false, reason: expect.stringMatching(/signature does not verify/) });
    expect(agents[0].local.detection.version).toBe(good.version);

    // the aggregator goes away; h2 meets a never-seen edge: a local alert at once, spooled
    await server!.stop();
    await detection!.close();
    store.close();
    const h2 = agents[1];
    const rogueEdge = e('mme/ITTI 3', 'net:tcp/public:4444', 777);
    const tAlert = t0 + 61 * W;
    const alerting = attachVerdict(h2.local, window('h2', tAlert, [...normal.h2[5].edges, rogueEdge]));
    expect(alerting.verdict?.newEdges.map((x) => x.dst)).toEqual(['net:tcp/public:4444']);
    h2.link.enqueue(alerting);
    expect(h2.log.out.some((l) => l.msg === 'local alert' && JSON.stringify(l.newEdges).includes('net:tcp/public:4444'))).toBe(true);
    expect(h2.spool.stats().entriesHeld).toBeGreaterThan(0);

    // back on the same address: the spooled window (and its verdict) is delivered
    store = Store.open(db);
    await startAggregator(addr);
    await until('the local alert in the store', () => detection.det.listAlerts({ app: 'epc' }).some((a) => a.source === 'agent:h2'), 30_000);
    const alert = detection!.det.listAlerts({ app: 'epc' }).find((a) => a.source === 'agent:h2')!;
    expect(alert.windowStart).toBe(tAlert);
    expect(alert.explanation.newEdges).toEqual([expect.objectContaining({ src: 'mme/ITTI 3', dst: 'net:tcp/public:4444', bytes: 777 })]);
    expect(alert.modelId).toBe(Number(h2.local.detection.version));
    await until('h2 spool drained', () => h2.spool.stats().entriesHeld === 0);

    for (const a of agents) {
      await a.link.stop();
      a.spool.close();
      a.local.detection.dispose();
    }
    await server!.stop();
    await detection!.close();
    store.close();
  }, 120_000);
});
