/**
 * Detection life cycle on a real SQLite file: training from stored windows, online scoring of
 * merged windows, alerts with explanations in the store and the JSON Lines output, incidents,
 * benign labelling + retraining that removes the alert, rollback, a tampered stored model
 * refused, and training refused without storing anything.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DetectionService } from '../../aggregator/detect.js';
import { trainFromStore } from '../../aggregator/model/trainer.js';
import { DetectionStore } from '../../aggregator/store/detection.js';
import { Store } from '../../aggregator/store/store.js';
import type { Edge, MergedWindow } from '../../shared/graph.js';
import { createLogger } from '../../shared/log.js';
import { generate, type Template } from '../../bench/load-windows.js';
import { decodeArtifact } from '../../shared/model/artifact.js';
import { Detector } from '../../shared/model/detector.js';

const require = createRequire(import.meta.url);
const W = 1000;
const T0 = 1_800_000_000_000;
const id = (n: number) => n.toString(16).padStart(16, '0');
const e = (s: number, src: string, d: number, dst: string, bytes: number, kind: Edge['kind'] = 'net'): Edge => ({ srcId: id(s), dstId: id(d), src, dst, kind, bytes, count: 1 });
// an LTE-core-shaped application: eNB, MME, HSS, SGW, PGW threads
const template: Template = {
  edges: [
    e(1, 'enb/s1ap', 2, 'mme/ITTI 3', 4000), e(2, 'mme/ITTI 3', 1, 'enb/s1ap', 3000), e(1, 'enb/s1ap', 5, 'sgw/gtpu', 90000),
    e(2, 'mme/ITTI 3', 3, 'hss/diameter', 1500), e(3, 'hss/diameter', 2, 'mme/ITTI 3', 2500), e(2, 'mme/ITTI 3', 4, 'sgw/s11', 1200),
    e(4, 'sgw/s11', 2, 'mme/ITTI 3', 800), e(5, 'sgw/gtpu', 6, 'pgw/gtpu', 88000), e(6, 'pgw/gtpu', 5, 'sgw/gtpu', 70000),
    e(7, 'file:/var/lib/hss/subscribers.db', 3, 'hss/diameter', 6000, 'file'),
  ],
};

function merged(w: { windowStart: number; edges: Edge[] }): MergedWindow & { latePartials: number } {
  return { app: 'epc', windowStart: w.windowStart, windowMs: W, hosts: ['h1', 'h2'], edges: w.edges, matchedFlows: 0, unmatchedFlows: 0, latePartials: 0 };
}

let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dag-detect-'));
  store = Store.open(join(dir, 'agg.db'));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('detection life cycle', () => {
  it('trains, scores, alerts with explanations, groups incidents, learns from a benign label, rolls back', async () => {
    const normal = generate(template, 200, T0, W, { seed: 1 });
    for (const w of normal) store.saveMergedWindow(merged(w), 'closed');
    const det = new DetectionStore(store.connection);
    const first = await trainFromStore(store, det, { app: 'epc', seed: 1, targetFpr: 0.01, hostModels: false });
    expect(first.app.active).toBe(true);
    expect(first.app.features).toBe(template.edges.length);
    expect(first.app.windows).toBe(200);

    const log = createLogger({ level: 'silent' });
    const alertsFile = join(dir, 'alerts.jsonl');
    const svc = new DetectionService({ store, log, alertsFile });
    // three attack windows in a row: the MME talks 4× more to the HSS than the load explains
    const t1 = T0 + 300 * W;
    const attack = generate(template, 3, t1, W, { seed: 2 }, () => 1).map((w) => ({
      ...w,
      edges: w.edges.map((x) => (x.src === 'mme/ITTI 3' && x.dst === 'hss/diameter' ? { ...x, bytes: x.bytes * 4 } : x)),
    }));
    // then a quiet stretch, then a window with an edge never seen: a rogue peer of the SGW
    const quiet = generate(template, 5, t1 + 3 * W, W, { seed: 3 }, () => 1);
    const rogue = generate(template, 1, t1 + 8 * W, W, { seed: 4 }, () => 1).map((w) => ({ ...w, edges: [...w.edges, e(9, 'sgw/s11', 8, 'rogue/main', 500)] }));
    for (const w of [...attack, ...quiet, ...rogue]) {
      store.saveMergedWindow(merged(w), 'closed');
      svc.onWindow(merged(w));
    }
    await svc.idle();
    const alerts = det.listAlerts({ app: 'epc' });
    const ratio = alerts.filter((a) => a.windowStart < t1 + 3 * W);
    expect(ratio).toHaveLength(3);
    for (const a of ratio) {
      expect(a.anomalous).toBe(true);
      expect(a.explanation.groups[0].name).toBe('mme');
      expect(a.explanation.edges[0]).toMatchObject({ src: 'mme/ITTI 3', dst: 'hss/diameter' });
      expect(a.explanation.edges[0].observedBytes).toBeGreaterThan(a.explanation.edges[0].expectedBytes);
    }
    const rogueAlert = alerts.find((a) => a.windowStart === t1 + 8 * W)!;
    expect(rogueAlert.explanation.newEdges).toEqual([expect.objectContaining({ src: 'sgw/s11', dst: 'rogue/main', bytes: 500 })]);
    // the 3 consecutive windows are one incident; the rogue edge another
    const incidents = det.listIncidents('epc');
    expect(incidents.map((i) => [i.alerts, i.start, i.end])).toContainEqual([3, t1, t1 + 3 * W]);
    expect(incidents.find((i) => i.start === t1 + 8 * W)?.newEdges).toBe(1);
    expect(det.scores('epc', first.app.id).length).toBe(9);
    // JSON Lines output: one line per alert, with the explanation
    const lines = readFileSync(alertsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id).sort()).toEqual(alerts.map((a) => a.id).sort());
    expect(lines.find((l) => l.id === rogueAlert.id).newEdges[0].dst).toBe('rogue/main');

    // the operator says the rogue peer is a new, legitimate component; retrain: no alert on it
    det.label(rogueAlert.id, 'benign');
    for (const a of ratio) det.label(a.id, 'malicious');
    const second = await trainFromStore(store, det, { app: 'epc', seed: 1, targetFpr: 0.01, hostModels: false });
    expect(second.app.features).toBe(template.edges.length + 1);
    // trained on the normal windows + the quiet ones + the benign one; the malicious ones stay out
    expect(second.app.windows).toBe(200 + 5 + 1);
    const svc2 = new DetectionService({ store, log });
    const before = det.listAlerts({ app: 'epc' }).length;
    svc2.onWindow(merged(rogue[0]));
    await svc2.idle();
    expect(det.listAlerts({ app: 'epc' }).length).toBe(before);
    const again = det.scores('epc', second.app.id);
    expect(again).toHaveLength(1);
    expect(again[0].score).toBeLessThan(second.app.threshold);
    // the ratio attack is still caught by the new model
    svc2.onWindow(merged(attack[1]));
    await svc2.idle();
    expect(det.alert(ratio[1].id)!.modelId).toBe(second.app.id);

    // rollback
    det.activate(first.app.id);
    expect(det.activeModel('epc')!.id).toBe(first.app.id);
    const seen: number[] = [];
    const svc3 = new DetectionService({ store, log, onModel: (_app, m) => seen.push(m.id) });
    svc3.onWindow(merged(quiet[0]));
    await svc3.idle();
    expect(seen).toEqual([first.app.id]);
    await Promise.all([svc.close(), svc2.close(), svc3.close()]);
  }, 120_000);

  it('refuses a tampered stored model with a log line and keeps running; failed training stores nothing', async () => {
    for (const w of generate(template, 60, T0, W, { seed: 1 })) store.saveMergedWindow(merged(w), 'closed');
    const det = new DetectionStore(store.connection);
    const m = await trainFromStore(store, det, { app: 'epc', seed: 1, epochs: 5, hostModels: false });
    const body = Buffer.from(det.model(m.app.id)!.body);
    body[body.length - 5] ^= 0x20;
    store.connection.prepare('UPDATE models SET body = ? WHERE id = ?').run(body, m.app.id);
    const lines: string[] = [];
    const svc = new DetectionService({ store, log: pino({ level: 'info' }, { write: (s: string) => lines.push(s) }) });
    svc.onWindow(merged(generate(template, 1, T0 + 100 * W, W, { seed: 5 })[0]));
    await svc.idle();
    expect(lines.join('\n')).toMatch(/integrity check failed.*model refused/);
    expect(det.listAlerts()).toHaveLength(0);

    const models = det.listModels().length;
    await expect(trainFromStore(store, det, { app: 'nothing-here', hostModels: false })).rejects.toThrow(/0 window\(s\) to train on/);
    await expect(trainFromStore(store, det, { app: 'epc', minWindows: 1000, hostModels: false })).rejects.toThrow(/at least 1000/);
    expect(det.listModels().length).toBe(models);
    await svc.close();
  }, 60_000);

  it('learning mode trains by itself after N windows, the schedule retrains, and a window of another application is refused', async () => {
    let now = T0 + 1_000_000;
    const log = createLogger({ level: 'silent' });
    const models: number[] = [];
    const svc = new DetectionService({ store, log, learnAfter: 40, retrainEveryMs: 3_600_000, train: { seed: 2, epochs: 20 }, now: () => now, onModel: (_a, m) => models.push(m.id) });
    const windows = generate(template, 45, T0, W, { seed: 8 });
    for (const w of windows.slice(0, 39)) {
      store.saveMergedWindow(merged(w), 'closed');
      svc.onWindow(merged(w));
    }
    await svc.idle();
    expect(svc.det.listModels()).toHaveLength(0);
    store.saveMergedWindow(merged(windows[39]), 'closed');
    svc.onWindow(merged(windows[39]));
    await svc.idle();
    const first = await svc.train('epc'); // joins the training the 40th window started
    expect(svc.det.listModels().map((m) => m.id)).toEqual([first]);
    svc.onWindow(merged(windows[40]));
    await svc.idle();
    expect(models).toEqual([first]);
    expect(svc.det.scores('epc', first)).toHaveLength(1);
    // an hour later the model is due: the next window starts a retraining
    now += 3_600_000;
    for (const w of windows.slice(41, 43)) {
      store.saveMergedWindow(merged(w), 'closed');
      svc.onWindow(merged(w));
    }
    await svc.idle();
    const second = await svc.train('epc');
    expect(second).toBeGreaterThan(first);
    svc.onWindow(merged(windows[43]));
    await svc.idle();
    expect(models).toEqual([first, second]);
    // trained on every window stored by then except those the first model alerted on
    expect(svc.det.activeModel('epc')!.windows).toBe(43 - svc.det.listAlerts({ app: 'epc' }).length);

    const detector = await Detector.load(decodeArtifact(svc.det.activeModel('epc')!.body));
    expect(() => svc.score(detector, { ...merged(windows[44]), app: 'shop' })).toThrow(/window of application shop given to the model of epc/);
    detector.dispose();
    await svc.close();
  }, 120_000);
});

describe('detection writes beside the merge worker', () => {
  it('waits for another connection holding the write lock instead of failing with SQLITE_BUSY', async () => {
    const d = mkdtempSync(join(tmpdir(), 'dag-busy-'));
    const s = Store.open(join(d, 'agg.db'));
    try {
      const det = new DetectionStore(s.connection);
      const alert = (t: number) => ({
        app: 'epc', windowStart: t, windowMs: W, source: 'agent:h1', modelId: 1, score: 5, threshold: 1, anomalous: true, severity: 'high' as const,
        explanation: { groups: [], edges: [], newEdges: [] },
      });
      det.recordAlert(alert(T0));
      // another process takes the write lock for 800 ms (as the merge worker's commits do) and writes
      const holder = spawn(process.execPath, ['-e', `
        const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
        const db = new D(${JSON.stringify(join(d, 'agg.db'))}); db.pragma('busy_timeout = 5000');
        db.exec('BEGIN IMMEDIATE'); db.prepare("INSERT OR REPLACE INTO roles (id, label, kind) VALUES (424242, 'x', 'proc')").run(); process.stdout.write('locked\\n');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 800); db.exec('COMMIT'); db.close();`], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((res) => holder.stdout!.once('data', () => res()));
      const t0 = Date.now();
      const r = det.recordAlert(alert(T0 + W));
      expect(r.created).toBe(true);
      expect(Date.now() - t0).toBeGreaterThan(300); // it waited for the lock
      expect(det.listIncidents('epc')).toEqual([expect.objectContaining({ alerts: 2 })]);
      await new Promise((res) => holder.once('exit', res));
    } finally {
      s.close();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
