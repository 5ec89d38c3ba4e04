/**
 * The aggregator's Prometheus metrics and health endpoints. Every figure is read at scrape
 * time from the counters each stage keeps where it works (server.counters: streams;
 * ingest.counters: partials and windows; detection.counters: scoring and alerts), except the
 * scoring latency histogram, fed by DetectionService.onScored. The HTTP server (shared/http)
 * carries /metrics, /healthz, /readyz, and whatever else is mounted on it (the console).
 */
import type { Registry } from 'prom-client';
import { writableFileCheck } from '../shared/metrics/checks.js';
import { startObservabilityHttp, type Check, type ObservabilityHttp, type ObservabilityHttpOptions, type Readiness } from '../shared/metrics/http.js';
import { registerTlsMetrics } from '../shared/metrics/tls.js';
import { counterOf, countersOf, gaugeOf, gaugesOf, histogram, type Sample } from '../shared/metrics/registry.js';
import type { AggregatorServer } from './server.js';
import type { DetectionService } from './detect.js';
import type { OutputCounters } from './alerts/outputs.js';
import type { Store } from './store/index.js';

export interface AggregatorObserved {
  server: AggregatorServer;
  /** absent: no detection metrics */
  detection?: DetectionService;
  store: Store;
}

/** Scoring one window takes milliseconds (DESIGN: well inside the grace period); buckets in seconds. */
export const SCORING_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Registers the aggregator's metrics on `reg`. */
export function registerAggregatorMetrics(reg: Registry, o: AggregatorObserved): void {
  const { server, detection, store } = o;
  const ing = server.ingest.counters;
  const srv = server.counters;

  // agents and their streams
  gaugesOf(reg, 'distappguard_agents_connected', 'Agents with an open stream, by application', ['app'], () => {
    const by = new Map<string, number>();
    for (const h of server.connectedAgents()) by.set(h.app, (by.get(h.app) ?? 0) + 1);
    return [...by].map(([app, n]): Sample => [{ app }, n]);
  });
  counterOf(reg, 'distappguard_streams_total', 'Agent streams opened (first connections and reconnects)', () => srv.streams);
  counterOf(reg, 'distappguard_streams_refused_total', 'Agent streams ended by the aggregator: bad hello, duplicate agent, invalid window, oversized message, identity mismatch, commit failure', () => srv.refused);
  counterOf(reg, 'distappguard_streams_identity_refused_total', "Hellos refused because the agent's certificate names another host than the one it claims", () => srv.identityRefused);
  counterOf(reg, 'distappguard_tls_handshakes_refused_total', 'TLS handshakes refused: no client certificate, expired, not signed by the CA…', () => srv.handshakeRefused);
  registerTlsMetrics(reg, 'distappguard_', () => server.tlsFiles);

  // partial windows
  countersOf(reg, 'distappguard_partials_total', 'Partial windows received from agents, by outcome: committed, duplicate (a resend, skipped), refused (invalid)', ['result'], () => [
    [{ result: 'committed' }, ing.partials],
    [{ result: 'duplicate' }, ing.duplicates],
    [{ result: 'refused' }, srv.invalidMessages],
  ]);
  counterOf(reg, 'distappguard_partials_late_total', 'Committed partials that arrived after their window had closed (the window is merged again)', () => ing.latePartials);
  counterOf(reg, 'distappguard_commit_batches_total', 'Store transactions that committed partials', () => ing.batches);
  counterOf(reg, 'distappguard_store_errors_total', 'Failed store commits and merges (the agents are not acknowledged and send again)', () => ing.commitErrors);

  // merged windows
  countersOf(reg, 'distappguard_windows_merged_total', 'Windows merged and stored, by why: complete (every agent reported), grace (the grace period ran out), late (merged again for a late partial)', ['reason'], () => [
    [{ reason: 'complete' }, ing.closedComplete],
    [{ reason: 'grace' }, ing.closedGrace],
    [{ reason: 'late' }, ing.windowsRemerged],
  ]);
  gaugeOf(reg, 'distappguard_window_close_lag_seconds', "Time from the last merged window's end to its commit", () => ing.lastCloseLagMs / 1000);
  gaugeOf(reg, 'distappguard_window_close_lag_max_seconds', 'Longest time from a window\'s end to its merged commit since start', () => ing.maxCloseLagMs / 1000);
  gaugeOf(reg, 'distappguard_merge_queue_windows', 'Windows waiting to be merged', () => server.ingest.merges.waiting);

  // models going to the agents
  counterOf(reg, 'distappguard_model_pushes_total', 'Signed host models sent to agents', () => srv.modelPushes);
  countersOf(reg, 'distappguard_model_acks_total', 'Agents\' answers to pushed models: accepted (loaded) or refused (see the aggregator log for why)', ['result'], () => [
    [{ result: 'accepted' }, srv.modelAcks],
    [{ result: 'refused' }, srv.modelRefusals],
  ]);
  gaugesOf(reg, 'distappguard_model_active_version', 'Active model id per application (host="") and per host model', ['app', 'host'], () => {
    try {
      const rows = store.connection.prepare('SELECT app, scope, id FROM models WHERE active = 1').all() as { app: string; scope: string; id: number }[];
      return rows.map((r): Sample => [{ app: r.app, host: r.scope }, r.id]);
    } catch {
      return []; // store closed (stopping)
    }
  });
  gaugesOf(reg, 'distappguard_connected_agent_model_version', 'Model id each connected agent runs (0: none)', ['agent', 'host', 'app'], () =>
    server.connectedAgents().map((h): Sample => [{ agent: h.agentId, host: h.host, app: h.app }, Number(h.modelVersion) || 0]),
  );

  if (!detection) return;
  const det = detection.counters;
  counterOf(reg, 'distappguard_windows_scored_total', 'Merged windows scored by an application model', () => det.scored);
  const scoring = histogram(reg, 'distappguard_scoring_duration_seconds', 'Time to score one merged window', SCORING_BUCKETS);
  detection.onScored = (ms) => scoring.observe(ms / 1000);
  countersOf(reg, 'distappguard_alerts_total', 'Alerts raised (by the aggregator and by agents), by severity', ['severity'], () => {
    const by = { low: 0, medium: 0, high: 0, ...det.alertsBySeverity };
    return Object.entries(by).map(([severity, n]): Sample => [{ severity }, n]);
  });
  // alert outputs (aggregator/alerts/outputs.ts): per output, as its counters say
  const outs = () => Object.entries(detection.outputs?.counters ?? {});
  const perOutput = (name: string, help: string, pick: (c: OutputCounters) => number): void =>
    void countersOf(reg, name, help, ['output'], () => outs().map(([output, c]): Sample => [{ output }, pick(c)]));
  perOutput('distappguard_alert_output_delivered_total', 'Alerts the output delivered (the receiver has them)', (c) => c.delivered);
  perOutput('distappguard_alert_output_retries_total', 'Delivery tries after a failed one', (c) => c.retried);
  perOutput('distappguard_alert_output_failures_total', 'Alerts refused by the receiver, and times the output went down (its retries used up)', (c) => c.failed);
  perOutput('distappguard_alert_output_dropped_total', 'Alerts given up for the output: refused by the receiver, or beyond the backlog bound (they stay in the store)', (c) => c.dropped);
  gaugesOf(reg, 'distappguard_alert_output_queued', 'Alerts waiting for the output (in memory and in the store)', ['output'], () => outs().map(([output, c]): Sample => [{ output }, c.queued]));
  gaugesOf(reg, 'distappguard_alert_output_up', '1 while deliveries to the output succeed, 0 while it is down', ['output'], () => outs().map(([output, c]): Sample => [{ output }, c.up]));
  countersOf(reg, 'distappguard_trainings_total', 'Model trainings (automatic, scheduled, asked for), by result', ['result'], () => [
    [{ result: 'ok' }, det.trainings],
    [{ result: 'failed' }, det.trainingFailures],
  ]);
}

export interface ReadinessOptions {
  /** the store's file system must have this much free space (default 16 MiB) */
  minFreeBytes?: number;
}

/**
 * Ready: the gRPC server listens (its health status is SERVING), and the store can take
 * writes — opened read-write, its file and directory writable, free space on the file
 * system, and the last commits did not fail.
 */
export function aggregatorReadiness(o: AggregatorObserved, r: ReadinessOptions = {}): Readiness {
  const minFree = r.minFreeBytes ?? 16 << 20;
  let seen = { errors: o.server.ingest.counters.commitErrors, batches: o.server.ingest.counters.batches };
  let failing = false;
  return (): Check[] => {
    const grpcOk = o.server.health.status === 'SERVING';
    const checks: Check[] = [{ name: 'grpc', ok: grpcOk, reason: grpcOk ? undefined : 'the gRPC server is not listening (starting or stopping)' }];
    checks.push(storeCheck(o.store, minFree));
    // commits since the last probe: errors without any success mean the store refuses writes now
    const c = o.server.ingest.counters;
    if (c.commitErrors > seen.errors) failing = c.batches === seen.batches;
    else if (c.batches > seen.batches) failing = false;
    seen = { errors: c.commitErrors, batches: c.batches };
    if (failing) checks.push({ name: 'commits', ok: false, reason: `commits to the store are failing (${c.commitErrors} failures so far; see the log)` });
    else checks.push({ name: 'commits', ok: true });
    return checks;
  };
}

function storeCheck(store: Store, minFree: number): Check {
  if (store.readonly) return { name: 'store', ok: false, reason: `${store.file} is open read-only` };
  return writableFileCheck('store', store.file, minFree);
}

export interface AggregatorHttpOptions extends AggregatorObserved, ObservabilityHttpOptions {
  readiness?: ReadinessOptions;
}

/** Starts the aggregator's HTTP(S) server with /metrics, /healthz, /readyz and the extra handlers. */
export function startAggregatorHttp(o: AggregatorHttpOptions): Promise<ObservabilityHttp> {
  return startObservabilityHttp(o, (reg) => registerAggregatorMetrics(reg, o), aggregatorReadiness(o, o.readiness), () => {
    if (o.detection?.onScored) o.detection.onScored = undefined;
  });
}
