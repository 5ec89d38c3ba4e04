/**
 * Observability end to end, over real sockets: an aggregator (real gRPC on loopback, real
 * SQLite in a temporary directory, detection) and two agents with real spools — one replays a
 * recorded strace trace through the real collector and tracker, the other sends windows of
 * an application that gets a model trained and pushed. Their /metrics are scraped over HTTP
 * and checked against the text format Prometheus reads and against the counters they read;
 * /readyz follows the aggregator's start and stop; grpc.health.v1 answers on the agents'
 * port; the HTTP server refuses 0.0.0.0 without TLS and serves HTTPS (and mutual TLS) with
 * certificates made by openssl.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { pino } from 'pino';
import { contentType as promContentType } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentLink } from '../../agent/link.js';
import { attachVerdict, startLocalModel } from '../../agent/local-model.js';
import { startAgentHttp, type AgentObserved } from '../../agent/metrics.js';
import { openCollector } from '../../agent/collectors/open.js';
import { runCollector } from '../../agent/run.js';
import { Spool } from '../../agent/spool.js';
import { LocalFilesAttribution } from '../../agent/state/attribution.js';
import { DetectionService } from '../../aggregator/detect.js';
import { startAggregatorHttp } from '../../aggregator/metrics.js';
import { ModelPusher } from '../../aggregator/model-push.js';
import { AggregatorServer } from '../../aggregator/server.js';
import { Store } from '../../aggregator/store/index.js';
import type { Edge, PartialWindow } from '../../shared/graph.js';
import { startHttpServer } from '../../shared/http/server.js';
import { healthHandlers, metricsHandler } from '../../shared/metrics/http.js';
import { counterOf, createRegistry } from '../../shared/metrics/registry.js';
import { loadOrCreateSigningKey } from '../../shared/model/signing.js';
import { roleId } from '../../shared/role-id.js';
import { PROTOCOL_VERSION } from '../../shared/wire.js';
import { generate, type Template } from '../../bench/load-windows.js';

const W = 1000;
const dir = mkdtempSync(join(tmpdir(), 'dag-obs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const quiet = pino({ level: 'silent' });
const FIXTURE = resolve(import.meta.dirname, '../fixtures/strace/features.log');

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

function get(url: string, o: https.RequestOptions = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((res, rej) => {
    const mod = url.startsWith('https:') ? https : http;
    mod
      .get(url, { ...o, agent: false }, (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (d) => (body += d));
        r.on('end', () => res({ status: r.statusCode!, type: String(r.headers['content-type']), body }));
      })
      .on('error', rej);
  });
}

// ---- the Prometheus text format (exposition format 0.0.4), checked line by line ----
type Family = { type: string; help: string; samples: { name: string; labels: Record<string, string>; value: number }[] };
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
// values as Prometheus reads them (Go's ParseFloat: NaN in any case — prom-client writes "Nan")
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|[Nn][Aa][Nn]|\\+Inf|-Inf))(?: -?[0-9]+)?$`);

function parseExposition(text: string): Map<string, Family> {
  const fams = new Map<string, Family>();
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.split('\n').slice(0, -1)) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m) {
      const f = fams.get(m[2]) ?? { type: '', help: '', samples: [] };
      if (m[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped'], line).toContain(m[3]);
        expect(f.samples.length, `TYPE after samples: ${line}`).toBe(0);
        f.type = m[3];
      } else f.help = m[3];
      fams.set(m[2], f);
      continue;
    }
    m = SAMPLE.exec(line);
    expect(m, `not a sample line: ${line}`).not.toBeNull();
    const name = m![1];
    const base = [...fams.keys()].find((k) => name === k || (/_(bucket|sum|count)$/.test(name) && name.replace(/_(bucket|sum|count)$/, '') === k));
    expect(base, `sample without a TYPE: ${line}`).toBeDefined();
    const labels = Object.fromEntries([...(m![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    fams.get(base!)!.samples.push({ name, labels, value: Number(m![3]) });
  }
  for (const [name, f] of fams) {
    expect(f.type, `${name} has no TYPE`).not.toBe('');
    if (name.startsWith('distappguard_')) {
      expect(f.help.length, `${name} has no HELP`).toBeGreaterThan(10);
      if (f.type === 'counter') expect(name).toMatch(/_total$/);
      for (const s of f.samples) expect(Number.isFinite(s.value), `${s.name} = ${s.value}`).toBe(true);
    }
    if (f.type === 'histogram') {
      const inf = f.samples.find((s) => s.name === `${name}_bucket` && s.labels.le === '+Inf');
      const count = f.samples.find((s) => s.name === `${name}_count`);
      expect(inf?.value, name).toBe(count?.value);
    }
  }
  return fams;
}

async function scrape(url: string): Promise<{ fams: Map<string, Family>; v: (name: string, labels?: Record<string, string>) => number }> {
  const r = await get(`${url}/metrics`);
  expect(r.status).toBe(200);
  expect(r.type).toBe(promContentType);
  const fams = parseExposition(r.body);
  const v = (name: string, labels: Record<string, string> = {}): number => {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const f = fams.get(name) ?? fams.get(base);
    if (!f) throw new Error(`no metric ${name}`);
    const s = f.samples.filter((x) => x.name === name && Object.entries(labels).every(([k, val]) => x.labels[k] === val));
    if (s.length === 0) throw new Error(`no series ${name}${JSON.stringify(labels)}`);
    return s.reduce((a, x) => a + x.value, 0);
  };
  return { fams, v };
}

// ---- the gRPC health client (the package's own service definition) ----
const HealthClient = grpc.makeClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'grpc.health.v1.Health');
type HealthCheck = (req: { service: string }, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void) => void;

function healthCheck(client: grpc.Client, service: string): Promise<string> {
  return new Promise((res, rej) =>
    (client as unknown as { check: HealthCheck }).check({ service }, (e, r) => (e ? rej(e) : res(r!.status))),
  );
}

const r = (label: string) => roleId(label);
const e = (src: string, dst: string, bytes: number, kind: Edge['kind'] = 'net'): Edge => ({ srcId: r(src), dstId: r(dst), src, dst, kind, bytes, count: 1 });
const template: Template = {
  edges: [e('enb/s1ap', 'net:tcp/private:36412', 4000), e('net:tcp/private:36412', 'enb/s1ap', 3000), e('enb/gtpu', 'net:udp/private:2152', 90000), e('file:/etc/enb.conf', 'enb/main', 2000, 'file')],
};
const win = (host: string, app: string, start: number, edges: Edge[]): PartialWindow => ({
  app, host, windowStart: start, windowMs: W, edges, flows: [], stats: { events: edges.length, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 },
});

describe('metrics and health of a running aggregator and agents', () => {
  it('exposes figures that move, readiness that follows start and stop, gRPC health', async () => {
    const store = Store.open(join(dir, 'agg.db'));
    const key = loadOrCreateSigningKey(join(dir, 'model-key.pem'));
    let server: AggregatorServer | undefined = undefined;
    const alertsFile = join(dir, 'alerts.jsonl');
    const detection = new DetectionService({ store, log: quiet, alertsFile, onModel: (app) => server?.pushModels(app) });
    server = new AggregatorServer({
      listen: '127.0.0.1:0', store, log: quiet, graceMs: 300,
      onWindow: (w) => detection.onWindow(w),
      models: new ModelPusher(detection.det, key),
      onLocalVerdict: (a, w, v) => detection.raiseLocal(a, w, v),
    });
    // the HTTP side comes up first (as a service manager may probe before gRPC listens)
    const aggHttp = await startAggregatorHttp({ server, detection, store, listen: '127.0.0.1:0', log: quiet });
    expect((await get(`${aggHttp.http.url}/healthz`)).status).toBe(200);
    const before = await get(`${aggHttp.http.url}/readyz`);
    expect(before.status).toBe(503);
    expect(JSON.parse(before.body)).toMatchObject({ status: 'not ready', reason: expect.stringMatching(/^grpc: the gRPC server is not listening/), checks: { grpc: { ok: false }, store: { ok: true } } });

    const addr = await server.start();
    const ready = await get(`${aggHttp.http.url}/readyz`);
    expect(ready.status, ready.body).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', checks: { grpc: { ok: true }, store: { ok: true }, commits: { ok: true } } });

    // grpc.health.v1 on the agents' port
    const hc = new HealthClient(addr, grpc.credentials.createInsecure());
    expect(await healthCheck(hc, '')).toBe('SERVING');
    expect(await healthCheck(hc, 'distappguard.v1.AgentService')).toBe('SERVING');
    await expect(healthCheck(hc, 'no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });

    // agent r1 replays a recorded trace through the real collector and tracker
    const replaySpool = Spool.open(join(dir, 'r1', 'spool.db'), { maxBytes: 1 << 24, maxAgeMs: 3_600_000 });
    const replayLink = new AgentLink({
      aggregator: addr, spool: replaySpool, log: quiet, initialBackoffMs: 50, maxBackoffMs: 300,
      hello: { agentId: 'r1', host: 'r1', app: 'replay', agentVersion: 'test', protocolVersion: PROTOCOL_VERSION, windowMs: W, collector: 'strace-file' },
    });
    const r1: AgentObserved = { link: replayLink, spool: replaySpool };
    const r1Http = await startAgentHttp({ observed: r1, listen: '127.0.0.1:0', log: quiet });
    const notYet = await get(`${r1Http.http.url}/readyz`);
    expect(notYet.status).toBe(503);
    expect(JSON.parse(notYet.body).reason).toMatch(/collector: the collector has not started yet; aggregator: no stream to the aggregator yet/);
    replayLink.start();
    await until('r1 connected', () => replayLink.connected);
    const opened = await openCollector({ choice: 'strace-file', path: FIXTURE, log: quiet });
    r1.collector = opened.collector;
    r1.phase = 'collecting';
    const summary = await runCollector(
      opened.collector,
      { tracker: { app: 'replay', host: 'r1', windowMs: W, latenessMs: 0, attribution: new LocalFilesAttribution() }, live: false, onTracker: (t) => (r1.tracker = t) },
      (w) => replayLink.enqueue(w),
    );
    // the trace is over, the windows are on their way: what a collector that still runs would show
    expect((await get(`${r1Http.http.url}/readyz`)).status).toBe(200);
    expect(await replayLink.waitDrained(10_000)).toBe(true);
    r1.phase = 'stopped';
    const m1 = await scrape(r1Http.http.url);
    expect(summary.tracker.windows).toBeGreaterThan(0);
    expect(m1.v('distappguard_agent_events_total')).toBe(summary.tracker.events);
    expect(m1.v('distappguard_agent_events_total')).toBeGreaterThan(50);
    expect(m1.v('distappguard_agent_windows_produced_total')).toBe(summary.tracker.windows);
    expect(m1.v('distappguard_agent_windows_spooled_total')).toBe(summary.tracker.windows);
    expect(m1.v('distappguard_agent_windows_sent_total')).toBe(summary.tracker.windows);
    expect(m1.v('distappguard_agent_windows_acked_total')).toBe(summary.tracker.windows);
    expect(m1.v('distappguard_agent_spool_windows')).toBe(0);
    expect(m1.v('distappguard_agent_collector_counter_total', { collector: 'strace-file', counter: 'lines' })).toBe(summary.collectorCounters.lines);
    expect(m1.v('distappguard_agent_events_dropped_total', { collector: 'strace-file' })).toBeGreaterThanOrEqual(0);
    expect(m1.v('distappguard_agent_stream_up')).toBe(1);
    expect(m1.v('distappguard_agent_collector_running')).toBe(0);
    expect(m1.fams.get('process_cpu_seconds_total')?.type).toBe('counter'); // Node.js process metrics too
    const stopped = JSON.parse((await get(`${r1Http.http.url}/readyz`)).body);
    expect(stopped.reason).toBe('collector: the collector has stopped (stopped)');

    const replayWindows = store.listWindows({ app: 'replay' }).length;
    expect(replayWindows).toBeGreaterThan(0);
    // merging is asynchronous (the merge worker): wait for every replayed window to be stored merged
    await until('the replayed windows merged', async () => (await scrape(aggHttp.http.url)).v('distappguard_windows_merged_total') >= replayWindows);
    let a = await scrape(aggHttp.http.url);
    expect(a.v('distappguard_partials_total', { result: 'committed' })).toBe(summary.tracker.windows);
    expect(a.v('distappguard_windows_merged_total')).toBeGreaterThanOrEqual(replayWindows);
    expect(a.v('distappguard_agents_connected', { app: 'replay' })).toBe(1);
    expect(a.v('distappguard_streams_total')).toBe(1);
    expect(a.v('distappguard_scoring_duration_seconds_count')).toBe(0);

    // agent h1 sends windows of 'epc'; the aggregator trains, pushes h1's host model, scores
    const local = await startLocalModel({ dir: join(dir, 'h1', 'model'), host: 'h1', app: 'epc', log: quiet });
    const spool = Spool.open(join(dir, 'h1', 'spool.db'), { maxBytes: 1 << 24, maxAgeMs: 3_600_000 });
    const link = new AgentLink({
      aggregator: addr, spool, log: quiet, initialBackoffMs: 50, maxBackoffMs: 300, onModel: local.onModel,
      hello: { agentId: 'h1', host: 'h1', app: 'epc', agentVersion: 'test', protocolVersion: PROTOCOL_VERSION, windowMs: W, collector: 'test', modelVersion: local.version },
    });
    const h1: AgentObserved = { link, spool, local: local.detection, phase: 'collecting' };
    const h1Http = await startAgentHttp({ observed: h1, listen: '127.0.0.1:0', log: quiet });
    link.start();
    const t0 = Math.floor(Date.now() / W) * W - 600 * W;
    const normal = generate(template, 60, t0, W, { seed: 4 });
    for (const n of normal) link.enqueue(attachVerdict(local, win('h1', 'epc', n.windowStart, n.edges)));
    await until('60 merged epc windows', () => store.listWindows({ app: 'epc' }).filter((x) => x.status === 'closed').length === 60);
    a = await scrape(aggHttp.http.url);
    expect(a.v('distappguard_partials_total', { result: 'committed' })).toBe(summary.tracker.windows + 60);
    expect(a.v('distappguard_windows_merged_total', { reason: 'complete' })).toBeGreaterThanOrEqual(60);
    expect(a.v('distappguard_agents_connected')).toBe(2);
    expect(a.v('distappguard_model_pushes_total')).toBe(0);

    const modelId = await detection.train('epc', { seed: 1, targetFpr: 0.01 });
    const hostModel = detection.det.hostModels(modelId).find((m) => m.scope === 'h1')!;
    link.enqueue(attachVerdict(local, win('h1', 'epc', t0 + 60 * W, normal[0].edges))); // the push comes with the next window
    await until('h1 runs its host model', () => local.detection.version === String(hostModel.id));
    // a never-seen edge: a local alert on h1, an alert at the aggregator
    const rogue = e('enb/s1ap', 'net:tcp/public:4444', 777);
    link.enqueue(attachVerdict(local, win('h1', 'epc', t0 + 61 * W, [...normal[3].edges, rogue])));
    // another partial for a window that has closed: late, merged again
    link.enqueue(attachVerdict(local, win('h1', 'epc', t0 + 5 * W, normal[5].edges)));
    await until('drained', () => link.drained);
    await until('scored and alerted', async () => {
      await detection.idle();
      return detection.counters.scored >= 2 && detection.counters.alerts >= 1 && server!.ingest.counters.windowsRemerged >= 1;
    });
    await detection.idle(); // the re-merged window scored too

    a = await scrape(aggHttp.http.url);
    expect(a.v('distappguard_model_pushes_total')).toBe(1);
    expect(a.v('distappguard_model_acks_total', { result: 'accepted' })).toBe(1);
    expect(a.v('distappguard_model_acks_total', { result: 'refused' })).toBe(0);
    expect(a.v('distappguard_model_active_version', { app: 'epc', host: '' })).toBe(modelId);
    expect(a.v('distappguard_model_active_version', { app: 'epc', host: 'h1' })).toBe(hostModel.id);
    expect(a.v('distappguard_connected_agent_model_version', { agent: 'h1' })).toBe(hostModel.id);
    expect(a.v('distappguard_trainings_total', { result: 'ok' })).toBe(1);
    expect(a.v('distappguard_windows_scored_total')).toBe(detection.counters.scored);
    expect(a.v('distappguard_scoring_duration_seconds_count')).toBe(detection.counters.scored);
    expect(a.v('distappguard_scoring_duration_seconds_sum')).toBeGreaterThan(0);
    expect(a.v('distappguard_scoring_duration_seconds_sum')).toBeLessThan(detection.counters.scored * 5);
    expect(a.v('distappguard_alerts_total')).toBe(detection.counters.alerts);
    for (const [severity, n] of Object.entries(detection.counters.alertsBySeverity)) expect(a.v('distappguard_alerts_total', { severity })).toBe(n);
    const jsonl = { output: `jsonl:${alertsFile}` };
    await until('the alert written out', async () => (await scrape(aggHttp.http.url)).v('distappguard_alert_output_delivered_total', jsonl) === detection.counters.alerts);
    a = await scrape(aggHttp.http.url);
    expect(a.v('distappguard_alert_output_up', jsonl)).toBe(1);
    expect(a.v('distappguard_alert_output_failures_total', jsonl)).toBe(0);
    expect(a.v('distappguard_alert_output_queued', jsonl)).toBe(0);
    expect(a.v('distappguard_partials_late_total')).toBe(1);
    expect(a.v('distappguard_windows_merged_total', { reason: 'late' })).toBeGreaterThanOrEqual(1);
    expect(a.v('distappguard_partials_total', { result: 'refused' })).toBe(0);
    const h = await scrape(h1Http.http.url);
    expect(h.v('distappguard_agent_model_version')).toBe(hostModel.id);
    expect(h.v('distappguard_agent_local_alerts_total')).toBe(local.detection.counters.alerts);
    expect(h.v('distappguard_agent_local_alerts_total')).toBeGreaterThanOrEqual(1);
    expect(h.v('distappguard_agent_windows_scored_total')).toBeGreaterThanOrEqual(2);
    expect(h.v('distappguard_agent_windows_acked_total')).toBe(63);
    expect((await get(`${h1Http.http.url}/readyz`)).status).toBe(200);

    // stopping: a health watcher hears NOT_SERVING, /readyz goes 503, agents notice
    const watch = (hc as unknown as { watch: (req: { service: string }) => grpc.ClientReadableStream<{ status: string }> }).watch({ service: '' });
    const heard: string[] = [];
    watch.on('data', (m: { status: string }) => {
      heard.push(m.status);
      if (m.status === 'NOT_SERVING') watch.cancel();
    });
    watch.on('error', () => {});
    await until('the watch says SERVING', () => heard.includes('SERVING'));
    const stopping = server.stop();
    expect(server.health.status).toBe('NOT_SERVING');
    const during = await get(`${aggHttp.http.url}/readyz`);
    expect(during.status).toBe(503);
    await stopping;
    expect(heard).toEqual(['SERVING', 'NOT_SERVING']);
    expect(JSON.parse((await get(`${aggHttp.http.url}/readyz`)).body).checks.grpc).toEqual({ ok: false, reason: 'the gRPC server is not listening (starting or stopping)' });
    await until('h1 sees the stream gone', () => !link.connected);
    const h1Ready = await get(`${h1Http.http.url}/readyz`);
    expect(h1Ready.status).toBe(503);
    expect(JSON.parse(h1Ready.body).reason).toMatch(/^aggregator: no stream to the aggregator \(last error: .+\); 0 windows wait in the spool$/);
    await until('a reconnect counted', async () => (await scrape(h1Http.http.url)).v('distappguard_agent_stream_reconnects_total') >= 1);
    expect((await scrape(h1Http.http.url)).v('distappguard_agent_stream_up')).toBe(0);

    hc.close();
    for (const x of [aggHttp, r1Http, h1Http]) await x.close();
    await link.stop();
    await replayLink.stop();
    spool.close();
    replaySpool.close();
    local.detection.dispose();
    await detection.close();
    store.close();
  }, 120_000);

  it('refuses to serve metrics on 0.0.0.0 without TLS', async () => {
    const store = Store.open(join(dir, 'refuse.db'));
    const server = new AggregatorServer({ listen: '127.0.0.1:0', store, log: quiet, graceMs: 300, mergeWorker: false });
    for (const listen of ['0.0.0.0:0', '[::]:0']) {
      await expect(startAggregatorHttp({ server, store, listen, log: quiet })).rejects.toThrow(/is reachable from other machines: give a TLS certificate and key/);
    }
    await server.stop();
    store.close();
  });
});

describe('HTTPS', () => {
  const pki = join(dir, 'pki');
  const ssl = (...args: string[]) => execFileSync('/usr/bin/openssl', args, { cwd: pki, stdio: 'pipe' });
  function makePki(): void {
    execFileSync('mkdir', ['-p', pki]);
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=test CA');
    const issue = (name: string, ext: string) => {
      writeFileSync(join(pki, `${name}.ext`), ext);
      ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
    };
    issue('server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    issue('client', 'extendedKeyUsage=clientAuth\n');
    issue('h7', 'subjectAltName=URI:distappguard:host:h7\nextendedKeyUsage=clientAuth\n');
    issue('server2', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  }

  beforeAll(makePki);

  it('serves /metrics over TLS on all interfaces, asks for client certificates when given a CA, reloads its certificate', async () => {
    const reg = createRegistry({ processMetrics: false });
    counterOf(reg, 'distappguard_test_things_total', 'things counted by the test', () => 42);
    const handlers = [metricsHandler(reg), ...healthHandlers(() => [{ name: 'x', ok: true }])];
    // the files the server is given, renewed in place below
    const certFiles = { cert: join(pki, 'served.pem'), key: join(pki, 'served.key') };
    execFileSync('cp', [join(pki, 'server.pem'), certFiles.cert]);
    execFileSync('cp', [join(pki, 'server.key'), certFiles.key]);
    const logged: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (x: string) => logged.push(JSON.parse(x)) });
    const s = await startHttpServer({ listen: '0.0.0.0:0', tls: certFiles, log, handlers, tlsReloadMs: 100 });
    expect(s.url).toMatch(/^https:\/\/0\.0\.0\.0:\d+$/);
    const url = s.url.replace('0.0.0.0', '127.0.0.1');
    const ca = execFileSync('cat', [join(pki, 'ca.pem')]);
    const m = await get(`${url}/metrics`, { ca });
    expect(m.status).toBe(200);
    expect(m.body).toContain('distappguard_test_things_total 42');
    parseExposition(m.body);
    // a client that does not trust the CA gets no answer; plain HTTP neither
    await expect(get(`${url}/healthz`)).rejects.toThrow(/self.signed|unable to (get|verify)/i);
    await expect(get(`${url.replace('https:', 'http:')}/healthz`)).rejects.toThrow();
    // a renewed certificate is picked up from disk and served from the next connection on
    const serial = (c: Buffer | string) => execFileSync('/usr/bin/openssl', ['x509', '-noout', '-serial'], { input: c }).toString().trim();
    const seen = () =>
      new Promise<string>((res, rej) => {
        const req = https.get(`${url}/healthz`, { ca, agent: false }, (r) => {
          const pem = `-----BEGIN CERTIFICATE-----\n${(r.socket as import('node:tls').TLSSocket).getPeerCertificate().raw.toString('base64')}\n-----END CERTIFICATE-----\n`;
          r.resume();
          res(serial(pem));
        });
        req.on('error', rej);
      });
    expect(await seen()).toBe(serial(execFileSync('cat', [join(pki, 'server.pem')])));
    const second = serial(execFileSync('cat', [join(pki, 'server2.pem')]));
    execFileSync('cp', [join(pki, 'server2.key'), certFiles.key]);
    execFileSync('cp', [join(pki, 'server2.pem'), certFiles.cert]);
    await until('the renewed certificate is served', async () => (await seen()) === second, 10_000);
    // a broken file is not loaded: the server keeps the certificate it has
    writeFileSync(certFiles.cert, 'not a certificate\n');
    await until('the broken file is reported', () => logged.some((l) => l.msg === 'http: the TLS files changed but cannot be used; the previous certificate stays in use'), 10_000);
    expect(await seen()).toBe(second);
    execFileSync('cp', [join(pki, 'server.pem'), certFiles.cert]);
    execFileSync('cp', [join(pki, 'server.key'), certFiles.key]);
    await s.close();

    // with a CA: mutual TLS
    const mtls = await startHttpServer({ listen: '127.0.0.1:0', tls: { ...certFiles, ca: join(pki, 'ca.pem') }, log: quiet, handlers });
    await expect(get(`${mtls.url}/readyz`, { ca })).rejects.toThrow();
    const ok = await get(`${mtls.url}/readyz`, { ca, cert: execFileSync('cat', [join(pki, 'client.pem')]), key: execFileSync('cat', [join(pki, 'client.key')]) });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ status: 'ready', checks: { x: { ok: true } } });
    await mtls.close();
  });

  it('over mutual TLS: certificate expiry and refused handshakes are metrics, the health check answers', async () => {
    const store = Store.open(join(dir, 'tls.db'));
    const server = new AggregatorServer({
      listen: '127.0.0.1:0', store, log: quiet, graceMs: 300, mergeWorker: false,
      tls: { cert: join(pki, 'server.pem'), key: join(pki, 'server.key'), ca: join(pki, 'ca.pem') },
    });
    const addr = await server.start();
    const aggHttp = await startAggregatorHttp({ server, store, listen: '127.0.0.1:0', log: quiet, processMetrics: false });
    const spool = Spool.open(join(dir, 'h7', 'spool.db'), { maxBytes: 1 << 24, maxAgeMs: 3_600_000 });
    const link = new AgentLink({
      aggregator: addr, spool, log: quiet, initialBackoffMs: 50, maxBackoffMs: 300,
      tls: { cert: join(pki, 'h7.pem'), key: join(pki, 'h7.key'), ca: join(pki, 'ca.pem') },
      hello: { agentId: 'h7', host: 'h7', app: 'tls', agentVersion: 'test', protocolVersion: PROTOCOL_VERSION, windowMs: W, collector: 'test' },
    });
    const observed: AgentObserved = { link, spool, phase: 'collecting' };
    const agentHttp = await startAgentHttp({ observed, listen: '127.0.0.1:0', log: quiet, processMetrics: false });
    link.start();
    link.enqueue(win('h7', 'tls', Math.floor(Date.now() / W) * W - 5 * W, template.edges));
    await until('h7 drained', () => link.drained);

    const notAfter = (name: string) => Date.parse(execFileSync('/usr/bin/openssl', ['x509', '-noout', '-enddate', '-in', join(pki, name)]).toString().replace(/^notAfter=/, '').trim()) / 1000;
    const a = await scrape(aggHttp.http.url);
    expect(a.v('distappguard_tls_certificate_expiry_timestamp_seconds')).toBe(notAfter('server.pem'));
    expect(a.v('distappguard_tls_reloads_total', { result: 'failed' })).toBe(0);
    const g = await scrape(agentHttp.http.url);
    expect(g.v('distappguard_agent_tls_certificate_expiry_timestamp_seconds')).toBe(notAfter('h7.pem'));
    expect(g.v('distappguard_agent_windows_acked_total')).toBe(1);
    expect((await get(`${agentHttp.http.url}/readyz`)).status).toBe(200);

    // the health check with a client certificate; a client without one is refused at the handshake, and counted
    const ca = execFileSync('cat', [join(pki, 'ca.pem')]);
    const withCert = new HealthClient(addr, grpc.credentials.createSsl(ca, execFileSync('cat', [join(pki, 'client.key')]), execFileSync('cat', [join(pki, 'client.pem')])));
    expect(await healthCheck(withCert, '')).toBe('SERVING');
    const noCert = new HealthClient(addr, grpc.credentials.createSsl(ca));
    await expect(healthCheck(noCert, '')).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await until('the refused handshake counted', async () => (await scrape(aggHttp.http.url)).v('distappguard_tls_handshakes_refused_total') >= 1);
    withCert.close();
    noCert.close();

    await agentHttp.close();
    await aggHttp.close();
    await link.stop();
    spool.close();
    await server.stop();
    store.close();
  });
});
