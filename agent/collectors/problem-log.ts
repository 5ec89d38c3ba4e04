/**
 * Collector problems to the log: the first few of each kind with their line numbers, then
 * only the counters (the collector keeps them), so a broken trace cannot flood the journal.
 */
import type { Logger } from 'pino';
import type { CollectorProblem, ProblemSink } from './collector.js';

export function problemLogger(log: Logger | undefined, source: string, perKind = 10): ProblemSink {
  const seen = new Map<string, number>();
  return (p: CollectorProblem) => {
    const n = (seen.get(p.kind) ?? 0) + 1;
    seen.set(p.kind, n);
    if (!log || n > perKind) return;
    const fields = { source, kind: p.kind, line: p.line, text: p.text };
    log.warn(fields, n === perKind ? `${p.message} (further '${p.kind}' problems are only counted)` : p.message);
  };
}
