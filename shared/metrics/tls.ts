/** Metrics of a watched TLS certificate (shared/tls.ts TlsFileWatcher), for the aggregator and the agent. */
import type { Registry } from 'prom-client';
import type { TlsFileWatcher } from '../tls.js';
import { countersOf, gaugesOf, type Sample } from './registry.js';

/** `prefix`: 'distappguard_' or 'distappguard_agent_'; `watcher` is read at scrape time (undefined: no TLS, no series). */
export function registerTlsMetrics(reg: Registry, prefix: string, watcher: () => TlsFileWatcher | undefined): void {
  gaugesOf(reg, `${prefix}tls_certificate_expiry_timestamp_seconds`, 'When the TLS certificate in use expires (Unix time); alert well before', ['serial'], () => {
    const w = watcher();
    if (!w) return [];
    const c = w.current;
    return [[{ serial: c.serial }, c.notAfter / 1000] as Sample];
  });
  countersOf(reg, `${prefix}tls_reloads_total`, 'Changed TLS files: loaded (ok), or refused and the previous ones kept (failed)', ['result'], () => {
    const w = watcher();
    if (!w) return [];
    return [
      [{ result: 'ok' }, w.counters.reloads],
      [{ result: 'failed' }, w.counters.reloadFailures],
    ];
  });
}
