/**
 * The detection model on windows shaped like a real capture (the LID-DS nginx recording's
 * roles and relative edge sizes): a ratio attack that keeps every edge inside its own normal
 * range is detected, never-seen edges are reported, and the same seed gives the same model.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCollector } from '../../agent/collectors/open.js';
import { runCollector } from '../../agent/run.js';
import { noAttribution } from '../../agent/state/attribution.js';
import { trainModel, TrainingError } from '../../aggregator/model/train.js';
import type { Edge, PartialWindow } from '../../shared/graph.js';
import { decodeArtifact, encodeArtifact, sha256Hex } from '../../shared/model/artifact.js';
import { Detector } from '../../shared/model/detector.js';
import { generate, templateOf, type Template } from '../../bench/load-windows.js';

const REC = resolve(import.meta.dirname, '../../../shared/data/lid-ds-ctf-nginx/training/aggressive_galois_5453');
const W = 1000;
const T0 = 1_800_000_000_000;

let nginx: Template;

beforeAll(async () => {
  const opened = await openCollector({ choice: 'lttng', path: REC });
  const windows: PartialWindow[] = [];
  await runCollector(opened.collector, { tracker: { app: 'lid-ds', host: 'victim', windowMs: W, attribution: noAttribution }, live: false }, (w) => windows.push(w));
  nginx = templateOf(windows);
}, 60_000);

function range(windows: { edges: Edge[] }[], pick: (e: Edge) => boolean) {
  const xs = windows.map((w) => w.edges.filter(pick).reduce((s, e) => s + e.bytes, 0));
  return { min: Math.min(...xs), max: Math.max(...xs) };
}

describe.skipIf(!existsSync(REC))('microservice-aware autoencoder on the structure of a real capture', () => {
  it('detects a ratio change that keeps every edge in its normal range, and flags a never-seen edge', async () => {
    const train = generate(nginx, 400, T0, W, { seed: 11 });
    const art = await trainModel(train, { app: 'lid-ds', windowMs: W, seed: 3, targetFpr: 0.01 });
    expect(art.features.features.length).toBe(nginx.edges.length);
    const det = await Detector.load(art);

    // held-out normal windows (another seed): few false alarms
    const normal = generate(nginx, 300, T0 + 400 * W, W, { seed: 99 });
    const normalVerdicts = det.score(normal.map((w) => w.edges));
    const falseAlarms = normalVerdicts.filter((v) => v.anomalous).length;
    expect(falseAlarms).toBeLessThanOrEqual(6);
    expect(normalVerdicts.every((v) => v.newEdges.length === 0)).toBe(true);

    // attack: nginx sends 40 % of what it read from its files (a response cut short / diverted)
    // at a typical load, so the edge stays inside the range it had in training
    const isSend = (e: Edge) => e.src === 'nginx' && e.dst.startsWith('net:tcp/');
    const attack = generate(nginx, 50, T0 + 800 * W, W, { seed: 5 }, () => 1).map((w) => ({
      ...w,
      edges: w.edges.map((e) => (isSend(e) ? { ...e, bytes: Math.round(e.bytes * 0.4) } : e)),
    }));
    const normalRange = range(train, isSend);
    const attackRange = range(attack, isSend);
    expect(attackRange.min).toBeGreaterThan(normalRange.min);
    expect(attackRange.max).toBeLessThan(normalRange.max);
    const verdicts = det.score(attack.map((w) => w.edges));
    const detected = verdicts.filter((v) => v.anomalous).length;
    expect(detected).toBeGreaterThanOrEqual(48);
    // and the explanation names that edge, observed below expected
    const top = verdicts[0].edges[0];
    expect(top.src).toBe('nginx');
    expect(top.dst).toMatch(/^net:tcp\//);
    expect(top.observedBytes).toBeLessThan(top.expectedBytes);
    expect(verdicts[0].groups[0].name).toBe('nginx');

    // a never-seen edge is reported on its own, with its bytes
    const extra: Edge = { srcId: 'ffffffffffffffff', dstId: nginx.edges[0].dstId, src: 'file:/etc/shadow', dst: 'nginx', kind: 'file', bytes: 1234, count: 1 };
    const v = det.scoreOne([...normal[0].edges, extra]);
    expect(v.newEdges).toEqual([expect.objectContaining({ src: 'file:/etc/shadow', dst: 'nginx', bytes: 1234 })]);
    det.dispose();
  }, 120_000);

  it('is reproducible: same windows and seed → identical model bytes and scores', async () => {
    const train = generate(nginx, 120, T0, W, { seed: 21 });
    const a = await trainModel(train, { app: 'lid-ds', windowMs: W, seed: 7, now: () => 0 });
    const b = await trainModel(train, { app: 'lid-ds', windowMs: W, seed: 7, now: () => 0 });
    const strip = (x: typeof a) => encodeArtifact({ ...x, training: { ...x.training, seconds: 0 } });
    expect(sha256Hex(strip(a))).toBe(sha256Hex(strip(b)));
    const test = generate(nginx, 20, T0, W, { seed: 4 }).map((w) => w.edges);
    const [da, db] = [await Detector.load(a), await Detector.load(b)];
    expect(da.score(test).map((v) => v.score)).toEqual(db.score(test).map((v) => v.score));
    // a different seed gives a different model
    const c = await trainModel(train, { app: 'lid-ds', windowMs: W, seed: 8, now: () => 0 });
    expect(sha256Hex(strip(c))).not.toBe(sha256Hex(strip(a)));
    da.dispose();
    db.dispose();
  }, 120_000);

  it('round-trips through its file form, and refuses a tampered or corrupt file', async () => {
    const art = await trainModel(generate(nginx, 40, T0, W, { seed: 1 }), { app: 'lid-ds', windowMs: W, epochs: 3 });
    const bytes = encodeArtifact(art);
    const sha = sha256Hex(bytes);
    const back = decodeArtifact(bytes, sha);
    expect(back.weights).toEqual(art.weights);
    const tampered = new Uint8Array(bytes);
    tampered[tampered.length - 10] ^= 1;
    expect(() => decodeArtifact(tampered, sha)).toThrow(/integrity check failed/);
    expect(() => decodeArtifact(new TextEncoder().encode('{"format":"x"}'))).toThrow(/format "x"/);
    expect(() => decodeArtifact(bytes.subarray(0, 100))).toThrow(/not a model file/);
    const wrongShape = JSON.parse(new TextDecoder().decode(bytes));
    wrongShape.scaling.mean.pop();
    expect(() => decodeArtifact(new TextEncoder().encode(JSON.stringify(wrongShape)))).toThrow(/scaling/);
  }, 60_000);

  it('refuses too few windows and windows without edges, with the reason', async () => {
    await expect(trainModel(generate(nginx, 5, T0, W, { seed: 1 }), { app: 'a', windowMs: W })).rejects.toThrow(/5 window\(s\) to train on; at least 20/);
    const empty = Array.from({ length: 30 }, (_, i) => ({ windowStart: T0 + i * W, edges: [] }));
    await expect(trainModel(empty, { app: 'a', windowMs: W })).rejects.toBeInstanceOf(TrainingError);
  });
});

describe('microservice groups', () => {
  // three services with fixed ratios inside each: an attack inside one names that one
  const svc = (name: string, peers: string[], i: number): Edge[] =>
    peers.map((p, j) => ({ srcId: `${i}${j}`.padStart(16, '0'), dstId: `9${i}${j}`.padStart(16, '0'), src: `${name}/main`, dst: p, kind: 'net', bytes: 1000 * (j + 1), count: 1 + j }));
  const template: Template = {
    edges: [...svc('enb', ['mme/ITTI 1', 'sgw/gtpu'], 1), ...svc('mme', ['enb/s1ap', 'hss/diameter', 'sgw/s11'], 2), ...svc('sgw', ['pgw/s5', 'enb/gtpu'], 3)],
  };

  it('grouped by owner, and the explanation names the microservice whose ratio broke', async () => {
    const art = await trainModel(generate(template, 200, T0, W, { seed: 2 }), { app: 'epc', windowMs: W, seed: 1, targetFpr: 0.01 });
    expect(art.features.groups.map((g) => g.name)).toEqual(['enb', 'mme', 'sgw']);
    expect(art.architecture.kind).toBe('msae');
    const det = await Detector.load(art);
    const atk = generate(template, 20, T0, W, { seed: 3 }, () => 1).map((w) =>
      w.edges.map((e) => (e.src === 'mme/main' && e.dst === 'hss/diameter' ? { ...e, bytes: e.bytes * 3 } : e)),
    );
    const vs = det.score(atk);
    expect(vs.filter((v) => v.anomalous).length).toBeGreaterThanOrEqual(19);
    expect(vs.every((v) => v.groups[0].name === 'mme')).toBe(true);
    det.dispose();
  }, 60_000);
});
