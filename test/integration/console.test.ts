/**
 * The web console as an operator uses it: a real SQLite store with windows, a trained model,
 * host models acknowledged (or not) by agents, and alerts raised by the detection service;
 * the console mounted on the aggregator's HTTP server on loopback; Debian's Chromium driven by
 * playwright-core — log in with the token, see the agents, open an alert (its window drawn with
 * the explaining edges highlighted, observed vs expected bytes), label it benign (the store
 * records it), see the models. Also: the API refuses calls without the token, cross-site writes
 * and, without a token, requests for a non-loopback host name; a role label carrying markup is
 * shown as text and never runs. Writes docs/console.png (the alert view).
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'node:http';
import { pino } from 'pino';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleHandler, isLoopbackAddress, isLoopbackHost } from '../../aggregator/console/index.js';
import { DetectionService } from '../../aggregator/detect.js';
import { trainFromStore } from '../../aggregator/model/trainer.js';
import { DetectionStore, type AlertRow } from '../../aggregator/store/detection.js';
import { Store } from '../../aggregator/store/index.js';
import { decodeArtifact, encodeArtifact, sha256Hex } from '../../shared/model/artifact.js';
import { startHttpServer, type HttpServer } from '../../shared/http/server.js';
import type { Edge, MergedWindow } from '../../shared/graph.js';
import { roleId } from '../../shared/role-id.js';
import { generate } from '../../bench/load-windows.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = resolve(import.meta.dirname, '../../docs/console.png');
const TOKEN = 'k3y-for-the-console-test-7d1f0a';
const W = 5000;
const T0 = Date.UTC(2026, 10, 26, 9, 0, 0);
const HOSTILE = 'ext:<script>window.__pwned=2</script><img src=x onerror="window.__pwned=1">';

const e = (src: string, dst: string, bytes: number, kind: Edge['kind'] = 'net'): Edge => ({ srcId: roleId(src), dstId: roleId(dst), src, dst, kind, bytes, count: Math.max(1, Math.round(bytes / 400)) });
// a small web shop: nginx in front of two application workers, postgres and redis behind them
const template = {
  edges: [
    e('nginx/worker', 'app/gunicorn 1', 5000), e('app/gunicorn 1', 'nginx/worker', 20000),
    e('nginx/worker', 'app/gunicorn 2', 4800), e('app/gunicorn 2', 'nginx/worker', 19000),
    e('app/gunicorn 1', 'db/postgres', 800), e('db/postgres', 'app/gunicorn 1', 12000),
    e('app/gunicorn 2', 'cache/redis-server', 300), e('cache/redis-server', 'app/gunicorn 2', 2400),
    e('nginx/worker', 'file:/var/log/nginx/access.log', 1500, 'file'), e('file:/srv/shop/settings.py', 'app/gunicorn 1', 600, 'file'),
  ],
};
const merged = (w: { windowStart: number; edges: Edge[] }): MergedWindow & { latePartials: number } => ({
  app: 'shop', windowStart: w.windowStart, windowMs: W, hosts: ['web-1', 'db-1'], edges: w.edges, matchedFlows: 12, unmatchedFlows: 0, latePartials: 0,
});

const dir = mkdtempSync(join(tmpdir(), 'dag-console-'));
const log = pino({ level: 'silent' });
let store: Store;
let det: DetectionStore;
let withToken: HttpServer;
let loopbackOnly: HttpServer;
let exfil: AlertRow;
let hostile: AlertRow;
let appModel: number;
let svc: DetectionService;

beforeAll(async () => {
  store = Store.open(join(dir, 'agg.db'));
  det = new DetectionStore(store.connection);
  for (const w of generate(template, 80, T0, W, { seed: 1 })) store.saveMergedWindow(merged(w), 'closed');
  const trained = await trainFromStore(store, det, { app: 'shop', seed: 3, targetFpr: 0.01, epochs: 60, hostModels: false });
  appModel = trained.app.id;
  // host models as the trainer would make them (the application's, scoped to each host): the agents view compares what agents acknowledged
  const art = decodeArtifact(det.model(appModel)!.body);
  const hostModel: Record<string, number> = {};
  for (const host of ['web-1', 'db-1']) {
    const body = encodeArtifact({ ...art, scope: { kind: 'host', host } });
    hostModel[host] = det.saveModel(decodeArtifact(body), body, sha256Hex(body), { activate: true, parent: appModel });
  }
  const now = Date.now();
  store.upsertAgent({ agentId: 'web-1', host: 'web-1', app: 'shop', agentVersion: '0.1.0', windowMs: W });
  store.upsertAgent({ agentId: 'db-1', host: 'db-1', app: 'shop', agentVersion: '0.1.0', windowMs: W });
  det.recordAgentModel('web-1', String(hostModel['web-1']), now);

  // what the aggregator does with each merged window: score it, raise alerts, fold incidents
  svc = new DetectionService({ store, log });
  const t1 = T0 + 100 * W;
  const attack = generate(template, 2, t1, W, { seed: 9 }, () => 1).map((w) => ({
    ...w,
    edges: [...w.edges.map((x) => (x.src === 'db/postgres' ? { ...x, bytes: x.bytes * 20 } : x)), e('app/gunicorn 1', 'ext:tcp/203.0.113.9:443', 240_000)],
  }));
  const quiet = generate(template, 4, t1 + 2 * W, W, { seed: 5 }, () => 1);
  const odd = generate(template, 1, t1 + 6 * W, W, { seed: 6 }, () => 1).map((w) => ({ ...w, edges: [...w.edges, e('cache/redis-server', HOSTILE, 700)] }));
  for (const w of [...attack, ...quiet, ...odd]) {
    store.saveMergedWindow(merged(w), 'closed');
    svc.onWindow(merged(w));
  }
  await svc.idle();
  const alerts = det.listAlerts({ app: 'shop' });
  exfil = alerts.find((a) => a.windowStart === t1)!;
  hostile = alerts.find((a) => a.windowStart === t1 + 6 * W)!;
  expect(exfil.explanation.edges.length).toBeGreaterThan(0);
  expect(hostile.explanation.newEdges[0].dst).toBe(HOSTILE);

  withToken = await startHttpServer({
    listen: '127.0.0.1:0', log,
    handlers: [consoleHandler({ store, detection: svc, token: TOKEN, log, connectedAgents: () => [{ agentId: 'web-1' }] })],
  });
  loopbackOnly = await startHttpServer({ listen: '127.0.0.1:0', log, handlers: [consoleHandler({ store, log })] });
}, 90_000);

afterAll(async () => {
  await withToken?.close();
  await loopbackOnly?.close();
  await svc?.close();
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw request (fetch would not let us set Host). */
function call(url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((res, rej) => {
    const r = request(url, { method: o.method ?? 'GET', headers: o.headers }, (m) => {
      let body = '';
      m.setEncoding('utf8');
      m.on('data', (c: string) => (body += c));
      m.on('end', () => res({ status: m.statusCode!, headers: m.headers, body }));
    });
    r.on('error', rej);
    r.end(o.body);
  });
}

describe('console API', () => {
  it('needs the token when one is set, compared whole', async () => {
    const u = `${withToken.url}/api/v1/agents`;
    const none = await call(u);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(JSON.parse(none.body)).toEqual({ error: expect.stringMatching(/token/) });
    expect((await call(u, { headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` } })).status).toBe(401);
    expect((await call(u, { headers: { authorization: `Bearer ${TOKEN}x` } })).status).toBe(401);
    expect((await call(u, { headers: { authorization: TOKEN } })).status).toBe(401);
    const ok = await call(u, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(ok.headers['cache-control']).toBe('no-store');
    const agents = JSON.parse(ok.body);
    expect(agents.map((a: { agentId: string; health: string }) => [a.agentId, a.health])).toEqual([['db-1', 'disconnected'], ['web-1', 'ok']]);
    // the page holds no data: served without the token, with a policy that allows only its own files
    const page = await call(`${withToken.url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(page.headers['content-security-policy']).not.toMatch(/unsafe-inline/);
    expect(page.body).not.toMatch(/<script>|<style>| on\w+=/i);
    expect((await call(`${withToken.url}/`)).headers.location).toBe('/console/');
    // paths that are not the console's are left to the next handler (here: the server's 404)
    expect((await call(`${withToken.url}/metrics`)).status).toBe(404);
  });

  it('refuses cross-site and malformed label requests; the label is what `distappguard label` does', async () => {
    const u = `${withToken.url}/api/v1/alerts/${hostile.id}/label`;
    const auth = { authorization: `Bearer ${TOKEN}` };
    const json = { ...auth, 'content-type': 'application/json', 'x-distappguard-console': '1' };
    const body = JSON.stringify({ label: 'malicious' });
    expect((await call(u, { method: 'POST', headers: { ...auth, 'content-type': 'text/plain', 'x-distappguard-console': '1' }, body })).status).toBe(415);
    expect((await call(u, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body })).status).toBe(403);
    expect((await call(u, { method: 'POST', headers: { ...json, origin: 'http://attacker.example' }, body })).status).toBe(403);
    expect((await call(u, { method: 'POST', headers: { ...json, 'sec-fetch-site': 'cross-site' }, body })).status).toBe(403);
    expect((await call(u, { method: 'POST', headers: json, body: '{"label":"fine"}' })).status).toBe(400);
    expect((await call(u, { method: 'POST', headers: json, body: 'not json' })).status).toBe(400);
    expect((await call(u, { headers: auth })).status).toBe(405);
    expect((await call(`${withToken.url}/api/v1/alerts/999999/label`, { method: 'POST', headers: json, body })).status).toBe(404);
    expect(det.alert(hostile.id)!.label).toBeNull();
    const ok = await call(u, { method: 'POST', headers: { ...json, origin: withToken.url }, body });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).alert).toMatchObject({ id: hostile.id, label: 'malicious' });
    expect(det.alert(hostile.id)!.label).toBe('malicious');
  });

  it('without a token answers loopback host names only (no DNS rebinding)', async () => {
    const u = `${loopbackOnly.url}/api/v1/status`;
    expect((await call(u)).status).toBe(200);
    expect(JSON.parse((await call(u)).body)).toMatchObject({ auth: 'loopback', alerts: det.listAlerts().length });
    expect((await call(u, { headers: { host: 'localhost:1234' } })).status).toBe(200);
    const evil = await call(u, { headers: { host: 'attacker.example:80' } });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body).error).toMatch(/loopback/);
    expect((await call(u, { headers: { host: '10.0.0.1' } })).status).toBe(403);
    expect(['[::1]:9443', '127.0.0.2', 'LOCALHOST', 'console.localhost:80'].map(isLoopbackHost)).toEqual([true, true, true, true]);
    expect(['localhost.attacker.example', '127.0.0.1.nip.io', '[::ffff:10.0.0.1]', '', 'a:b:c'].map(isLoopbackHost)).toEqual([false, false, false, false, false]);
    expect(['::ffff:127.0.0.1', '127.9.9.9', '::1', '10.1.1.1', '::ffff:10.0.0.1'].map(isLoopbackAddress)).toEqual([true, true, true, false, false]);
  });

  it('refuses an empty, short or spaced token at start', () => {
    expect(() => consoleHandler({ store, log, token: '  ' })).toThrow(/token is empty/);
    expect(() => consoleHandler({ store, log, token: 'secret' })).toThrow(/too short/);
    expect(() => consoleHandler({ store, log, token: 'two words of a long token' })).toThrow(/one word/);
  });
});

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`console browser test skipped: ${CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium)`);

describe.skipIf(!haveChromium)('console in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('agents → alerts → alert graph → label benign → models; hostile labels shown as text', async () => {
    const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('dialog', (d) => {
      problems.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });

    await page.goto(`${withToken.url}/`);
    // no token yet: the page asks for it
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#token', 'wrong');
    await page.click('#login button[type=submit]');
    await expect.poll(() => page.textContent('#login-error')).toMatch(/refused/);
    await page.fill('#token', TOKEN);
    await page.click('#login button[type=submit]');

    // agents and their health
    const agents = page.locator('table.agents tbody tr');
    await expect.poll(() => agents.count()).toBe(2);
    const web = page.locator('tr[data-agent="web-1"]');
    await expect.poll(() => web.textContent()).toMatch(/connected.*current/);
    expect(await page.locator('tr[data-agent="db-1"]').textContent()).toMatch(/disconnected.*none loaded.*expected v\d+/);
    const alerts = det.listAlerts();
    expect(await page.textContent('#status')).toContain(`2 agent(s) · ${alerts.length} alert(s), ${alerts.length - 1} unlabelled`);

    // the alert timeline with incidents
    await page.click('nav a[data-view=alerts]');
    await page.locator('table.alerts').waitFor();
    const incidents = det.listIncidents();
    expect(incidents.length).toBeGreaterThanOrEqual(2);
    expect(await page.locator('svg.timeline rect.incident').count()).toBe(incidents.length);
    expect(await page.locator('table.incidents tbody tr').count()).toBe(incidents.length);
    expect(await page.locator('table.alerts tbody tr').count()).toBe(alerts.length);
    // the hostile role label is text in the list, and nothing of it ran
    await page.click(`tr[data-alert="${hostile.id}"]`);
    await page.locator('table.new-edges').waitFor();
    expect(await page.locator('table.new-edges td').first().textContent()).toBe(`cache/redis-server → ${HOSTILE}`);
    await page.locator('#graph svg.msdeg').waitFor();
    expect(await page.locator('#graph svg').textContent()).toContain('<script>window.__pwned=2</script>');
    expect(await page.locator('#main script, #main img, #main foreignObject').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();

    // the exfiltration alert: its window drawn, the edges that explain it in red with observed vs expected bytes
    await page.click('nav a[data-view=alerts]');
    await page.click(`tr[data-alert="${exfil.id}"]`);
    await page.locator('#graph svg.msdeg').waitFor();
    const red = page.locator('#graph g.edge path[stroke="#d62728"]');
    expect(await red.count()).toBeGreaterThanOrEqual(2);
    const top = exfil.explanation.edges[0];
    const svgText = (await page.locator('#graph svg').textContent()) ?? '';
    expect(svgText).toContain(`${top.observedBytes} B (expected ${top.expectedBytes})`);
    expect(svgText).toContain('NEW net 240000 B');
    expect(svgText).toContain('ext:tcp/203.0.113.9:443');
    const firstRow = page.locator('table.edges tbody tr').first();
    expect(await firstRow.locator('td.observed').textContent()).toBe(`${top.observedBytes.toLocaleString('en-US')} B`);
    expect(await firstRow.locator('td.expected').textContent()).toBe(`${top.expectedBytes.toLocaleString('en-US')} B`);
    expect(await page.locator('table.new-edges').textContent()).toContain('app/gunicorn 1 → ext:tcp/203.0.113.9:443');
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
    expect(statSync(SCREENSHOT).size).toBeLessThan(300 * 1024);

    // label it benign: the store records it, its never-seen edge is accepted for the next training
    await page.click('#label-benign');
    await expect.poll(() => page.textContent('#label-result')).toMatch(/labelled benign; 1 edge\(s\) accepted/);
    expect(det.alert(exfil.id)!.label).toBe('benign');
    expect(det.acceptedEdges('shop').map((x) => x.dst)).toEqual(['ext:tcp/203.0.113.9:443']);
    expect(await page.locator('#label-benign').isDisabled()).toBe(true);

    // models with their metrics
    await page.click('nav a[data-view=models]');
    await page.locator('table.models').waitFor();
    const row = page.locator(`tr[data-model="${appModel}"]`);
    const text = (await row.textContent()) ?? '';
    expect(text).toMatch(/active.*shop.*\(application\).*msae/);
    expect(text).toContain(det.model(appModel)!.threshold.toFixed(3));
    expect(text).toMatch(/target FPR 0\.01/);
    expect(text).toMatch(/\d+ epochs/);
    expect(await page.locator('table.models tbody tr').count()).toBe(3);

    // one window's graph from the windows list
    await page.click('nav a[data-view=windows]');
    await page.locator('table.windows tbody tr').first().click();
    await page.locator('#graph svg.msdeg').waitFor();
    expect(await page.locator('#graph g.edge').count()).toBeGreaterThanOrEqual(template.edges.length);

    // forgetting the token asks for it again
    await page.click('#logout');
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(problems.filter((p) => !/401 \(Unauthorized\)/.test(p))).toEqual([]);
    await page.close();
  }, 60_000);
});
