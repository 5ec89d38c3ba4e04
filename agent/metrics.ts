/**
 * The agent's Prometheus metrics and health endpoints. Each stage counts where it works — the
 * collector (collector.counters()), the tracker (events, windows), the spool (persisted
 * totals), the link (sent, acked, reconnects), local detection — and the metrics read those
 * counters at scrape time. Names start with distappguard_agent_.
 *
 * The pieces come up one after another (spool and link first, the collector once opened, the
 * tracker once the run starts), so the caller hands in an `AgentObserved` object and fills it
 * in as they appear; a metric of a piece not there yet reads 0.
 */
import type { Registry } from 'prom-client';
import { writableFileCheck } from '../shared/metrics/checks.js';
import { startObservabilityHttp, type Check, type ObservabilityHttp, type ObservabilityHttpOptions, type Readiness } from '../shared/metrics/http.js';
import { registerTlsMetrics } from '../shared/metrics/tls.js';
import { counterOf, countersOf, gaugeOf, type Sample } from '../shared/metrics/registry.js';
import type { Collector } from './collectors/collector.js';
import type { AgentLink } from './link.js';
import type { LocalDetection } from './local-detect.js';
import type { Spool, SpoolStats } from './spool.js';
import type { Tracker } from './tracker.js';

/** Where the agent is in its life: readiness needs 'collecting'. */
export type AgentPhase = 'starting' | 'collecting' | 'draining' | 'stopped';

export interface AgentObserved {
  link: AgentLink;
  spool: Spool;
  /** set once opened */
  collector?: Collector;
  /** set by runCollector's onTracker */
  tracker?: Tracker;
  /** local detection, when the agent scores windows itself */
  local?: LocalDetection;
  /** 'collecting' from the collector's start until its end (default 'starting') */
  phase?: AgentPhase;
}

/**
 * Collector counters that count events lost before they reached the tracker (kernel or tracer
 * buffers full, lines that could not be read, calls whose other half never came). Each
 * collector has only some of them; all of a collector's counters are also exported as
 * distappguard_agent_collector_counter_total.
 */
export const DROP_COUNTERS = [
  'lostEvents', // bpftrace: perf buffer full
  'tracerDiscardedEvents', // LTTng: ring buffer full
  'malformed', // lines that could not be parsed
  'unknownLine',
  'unfinishedLost', // strace: a call's result never came
  'orphanResumed', // strace: a resumed call whose start was not seen
  'exitWithoutEntry', // LTTng: unpaired exits and entries
  'mismatchedExit',
  'noReturn',
  'unfinishedAtEnd', // calls still open when the trace ended
] as const;

export function registerAgentMetrics(reg: Registry, o: AgentObserved): void {
  const spoolStats = (): SpoolStats | undefined => {
    try {
      return o.spool.stats();
    } catch {
      return undefined; // closed (stopping)
    }
  };
  const collectorCounters = (): Record<string, number> => {
    try {
      return o.collector?.counters() ?? {};
    } catch {
      return {};
    }
  };
  const t = () => o.tracker?.counters;
  const link = o.link.counters;

  // the collector and the tracker: events seen and dropped
  gaugeOf(reg, 'distappguard_agent_collector_running', '1 while the collector traces (or replays), else 0', () => (o.phase === 'collecting' ? 1 : 0));
  counterOf(reg, 'distappguard_agent_events_total', 'System call events that reached the tracker', () => t()?.events ?? 0);
  counterOf(reg, 'distappguard_agent_data_calls_total', 'Events that moved data (read, write, send, recv, mmap…)', () => t()?.dataCalls ?? 0);
  counterOf(reg, 'distappguard_agent_events_late_total', 'Events that came after their window had closed (folded into the oldest open window)', () => t()?.lateEvents ?? 0);
  counterOf(reg, 'distappguard_agent_unknown_fd_calls_total', 'Data calls on a file descriptor whose target was never seen (counted on an unknown role)', () => t()?.unknownFdCalls ?? 0);
  counterOf(reg, 'distappguard_agent_unknown_fd_bytes_total', 'Bytes of data calls on unknown file descriptors', () => t()?.unknownFdBytes ?? 0);
  countersOf(reg, 'distappguard_agent_events_dropped_total', 'Events the collector lost or could not use, by the counter that saw it (see DROP_COUNTERS)', ['collector', 'reason'], () => {
    const c = collectorCounters();
    const name = o.collector?.name ?? '';
    return DROP_COUNTERS.filter((k) => typeof c[k] === 'number').map((k): Sample => [{ collector: name, reason: k }, c[k]]);
  });
  countersOf(reg, 'distappguard_agent_collector_counter_total', "Every counter the collector keeps, by name (lines, events, bytesRead, bpftrace's rows…)", ['collector', 'counter'], () => {
    const name = o.collector?.name ?? '';
    return Object.entries(collectorCounters())
      .filter(([, v]) => typeof v === 'number')
      .map(([k, v]): Sample => [{ collector: name, counter: k }, v]);
  });

  // windows: produced, spooled, sent, acknowledged
  counterOf(reg, 'distappguard_agent_windows_produced_total', 'Windows closed by the tracker', () => t()?.windows ?? 0);
  counterOf(reg, 'distappguard_agent_windows_spooled_total', 'Windows appended to the spool (over the life of the spool file)', () => spoolStats()?.appended ?? 0);
  counterOf(reg, 'distappguard_agent_spooled_bytes_total', 'Bytes appended to the spool (over the life of the spool file)', () => spoolStats()?.appendedBytes ?? 0);
  counterOf(reg, 'distappguard_agent_windows_sent_total', 'Windows sent to the aggregator for the first time', () => link.sent);
  counterOf(reg, 'distappguard_agent_windows_resent_total', 'Windows sent again after a reconnect (not yet acknowledged before)', () => link.resent);
  counterOf(reg, 'distappguard_agent_windows_acked_total', 'Windows the aggregator acknowledged as committed (then removed from the spool)', () => link.acked);
  counterOf(reg, 'distappguard_agent_windows_refused_total', 'Windows the aggregator refused as invalid (set aside, not resent)', () => link.refused);
  counterOf(reg, 'distappguard_agent_spool_write_errors_total', 'Spool writes that failed (disk full, I/O error); the window waits in memory and is retried', () => link.spoolWriteErrors);
  gaugeOf(reg, 'distappguard_agent_windows_held_in_memory', 'Windows waiting in memory because the spool cannot be written now', () => o.link.heldInMemory);
  counterOf(reg, 'distappguard_agent_windows_dropped_in_memory_total', 'Windows given up after the spool refused writes for longer than memory could hold', () => link.droppedInMemory);
  gaugeOf(reg, 'distappguard_agent_spool_windows', 'Windows held in the spool, waiting for an acknowledgement', () => spoolStats()?.entriesHeld ?? 0);
  gaugeOf(reg, 'distappguard_agent_spool_bytes', 'Bytes of windows held in the spool', () => spoolStats()?.bytesHeld ?? 0);
  countersOf(reg, 'distappguard_agent_spool_dropped_total', 'Windows dropped from the spool before delivery, by bound: size or age (over the life of the spool file)', ['reason'], () => {
    const s = spoolStats();
    return [
      [{ reason: 'size' }, s?.dropped.size.entries ?? 0],
      [{ reason: 'age' }, s?.dropped.age.entries ?? 0],
    ];
  });
  countersOf(reg, 'distappguard_agent_spool_dropped_bytes_total', 'Bytes of windows dropped from the spool, by bound', ['reason'], () => {
    const s = spoolStats();
    return [
      [{ reason: 'size' }, s?.dropped.size.bytes ?? 0],
      [{ reason: 'age' }, s?.dropped.age.bytes ?? 0],
    ];
  });

  // the stream to the aggregator
  gaugeOf(reg, 'distappguard_agent_stream_up', '1 while the stream to the aggregator is open and welcomed', () => (o.link.connected ? 1 : 0));
  counterOf(reg, 'distappguard_agent_stream_connects_total', 'Stream openings (the first and every reconnect)', () => link.connects);
  counterOf(reg, 'distappguard_agent_stream_reconnects_total', 'Streams lost and scheduled to reconnect', () => link.reconnects);
  registerTlsMetrics(reg, 'distappguard_agent_', () => o.link.tlsFiles);

  // local detection
  gaugeOf(reg, 'distappguard_agent_model_version', 'Version (model id) of the local model in use (0: none)', () => Number(o.local?.version) || 0);
  counterOf(reg, 'distappguard_agent_windows_scored_total', 'Windows scored by the local model', () => o.local?.counters.scored ?? 0);
  counterOf(reg, 'distappguard_agent_local_alerts_total', 'Windows the local model found anomalous or with never-seen edges', () => o.local?.counters.alerts ?? 0);
}

export interface AgentReadinessOptions {
  /** the spool's file system must have this much free space (default 16 MiB) */
  minFreeBytes?: number;
}

/** Ready: the collector runs, the stream to the aggregator is up, and the spool can take windows. */
export function agentReadiness(o: AgentObserved, r: AgentReadinessOptions = {}): Readiness {
  return (): Check[] => {
    const phase = o.phase ?? 'starting';
    const collector: Check =
      phase === 'collecting'
        ? { name: 'collector', ok: true }
        : { name: 'collector', ok: false, reason: phase === 'starting' ? 'the collector has not started yet' : `the collector has stopped (${phase})` };
    let link: Check = { name: 'aggregator', ok: true };
    if (!o.link.connected) {
      let held = '';
      try {
        held = `; ${o.spool.stats().entriesHeld} windows wait in the spool`;
      } catch {
        /* spool closed */
      }
      const last = o.link.counters.lastError;
      link = { name: 'aggregator', ok: false, reason: `no stream to the aggregator${last ? ` (last error: ${last})` : ' yet'}${held}` };
    }
    return [collector, link, writableFileCheck('spool', o.spool.path, r.minFreeBytes ?? 16 << 20)];
  };
}

export interface AgentHttpOptions extends ObservabilityHttpOptions {
  observed: AgentObserved;
  readiness?: AgentReadinessOptions;
}

/** Starts the agent's HTTP(S) server with /metrics, /healthz and /readyz. */
export function startAgentHttp(o: AgentHttpOptions): Promise<ObservabilityHttp> {
  return startObservabilityHttp(o, (reg) => registerAgentMetrics(reg, o.observed), agentReadiness(o.observed, o.readiness));
}
