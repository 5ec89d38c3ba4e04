/**
 * Alerts as JSON Lines, one object per alert, appended as they are raised: what a SIEM
 * forwarder tails. A failed write is logged and counted; detection carries on.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AlertRow } from '../store/detection.js';

export function alertJson(a: AlertRow, incident: { id: number; isNew: boolean }): Record<string, unknown> {
  return {
    type: 'distappguard.alert',
    id: a.id,
    app: a.app,
    source: a.source,
    window: new Date(a.windowStart).toISOString(),
    windowStart: a.windowStart,
    windowMs: a.windowMs,
    severity: a.severity,
    score: a.score,
    threshold: a.threshold,
    anomalous: a.anomalous,
    model: a.modelId,
    incident: incident.id,
    newIncident: incident.isNew,
    microservices: a.explanation.groups,
    edges: a.explanation.edges,
    newEdges: a.explanation.newEdges,
  };
}

export class JsonlAlertOutput {
  failures = 0;
  written = 0;

  constructor(readonly file: string) {
    mkdirSync(dirname(file), { recursive: true });
  }

  /** Returns the error instead of throwing: an output must never stop detection. */
  write(record: Record<string, unknown>): Error | undefined {
    try {
      appendFileSync(this.file, JSON.stringify(record) + '\n');
      this.written++;
      return undefined;
    } catch (e) {
      this.failures++;
      return e as Error;
    }
  }
}
