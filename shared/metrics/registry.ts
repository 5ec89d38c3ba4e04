/**
 * Prometheus metrics for one process, on a registry of its own (never prom-client's global
 * default one: two components in one process — the tests run an aggregator and an agent side
 * by side — must not share or clash). As in Tetragon, every stage keeps its counters next to
 * itself (`counters` objects in ingest.ts, link.ts, the collectors…); the metrics here only
 * read them, at scrape time, so the hot paths pay nothing for being observed.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Labels = Record<string, string>;
/** one series of a labelled metric: its labels and value */
export type Sample = readonly [Labels, number];

export const METRIC_PREFIX = 'distappguard_';

export interface RegistryOptions {
  /** Node.js process metrics (process_cpu_seconds_total, nodejs_heap_size_used_bytes…), default true */
  processMetrics?: boolean;
  /** labels put on every series of this registry (e.g. {component: 'agent'}) */
  labels?: Labels;
}

export function createRegistry(o: RegistryOptions = {}): Registry {
  const r = new Registry();
  if (o.labels) r.setDefaultLabels(o.labels);
  if (o.processMetrics !== false) collectDefaultMetrics({ register: r });
  return r;
}

function checkName(name: string, kind: 'counter' | 'gauge' | 'histogram'): void {
  if (!name.startsWith(METRIC_PREFIX)) throw new Error(`metric ${name}: names start with ${METRIC_PREFIX}`);
  if (kind === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name}: counter names end with _total`);
  if (kind !== 'counter' && name.endsWith('_total')) throw new Error(`${kind} ${name}: only counters end with _total`);
}

function finite(v: number): number {
  return Number.isFinite(v) ? v : 0;
}

/** A counter whose value is read from a stage's own counter at scrape time. */
export function counterOf(reg: Registry, name: string, help: string, read: () => number): Counter {
  return countersOf(reg, name, help, [], () => [[{}, read()]]);
}

/** A labelled counter whose series are read at scrape time (e.g. alerts by severity). */
export function countersOf(reg: Registry, name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>): Counter {
  checkName(name, 'counter');
  return new Counter({
    name,
    help,
    labelNames,
    registers: [reg],
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.inc(labels, Math.max(0, finite(v)));
    },
  });
}

/** A gauge read at scrape time. */
export function gaugeOf(reg: Registry, name: string, help: string, read: () => number): Gauge {
  return gaugesOf(reg, name, help, [], () => [[{}, read()]]);
}

/** A labelled gauge whose series are read at scrape time (series not returned disappear). */
export function gaugesOf(reg: Registry, name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>): Gauge {
  checkName(name, 'gauge');
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [reg],
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.set(labels, finite(v));
    },
  });
}

/** A histogram fed as things happen (durations: observe seconds). */
export function histogram(reg: Registry, name: string, help: string, buckets: number[]): Histogram {
  checkName(name, 'histogram');
  return new Histogram({ name, help, buckets, registers: [reg] });
}
