/**
 * Alerts as JSON Lines, one object per alert, appended as they are raised: what a SIEM
 * forwarder tails. An output of the fan-out (outputs.ts): a failed write (a full disk, a
 * missing directory) is retried and the alerts wait in the store; detection carries on.
 */
import { mkdirSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { AlertRow } from '../store/detection.js';
import { DeliveryError, type AlertEvent, type AlertOutput } from './outputs.js';

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

export class JsonlAlertOutput implements AlertOutput {
  readonly name: string;
  readonly file: string;

  constructor(file: string) {
    this.file = resolve(file);
    this.name = `jsonl:${this.file}`;
    mkdirSync(dirname(this.file), { recursive: true });
  }

  /**
   * Appends one line. The file is opened per alert (a rotated file is followed at once); a
   * write that fails half-way is cut back, so a retry never leaves a broken line behind.
   */
  async deliver(e: AlertEvent): Promise<void> {
    const line = Buffer.from(JSON.stringify(alertJson(e.alert, e.incident)) + '\n');
    const fail = (err: unknown) => new DeliveryError(`${this.file}: ${(err as Error).message}`, { cause: err });
    let fh;
    try {
      fh = await open(this.file, 'a', 0o640);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fail(err);
      // the directory was removed since the start: make it again
      try {
        await mkdir(dirname(this.file), { recursive: true });
        fh = await open(this.file, 'a', 0o640);
      } catch (err2) {
        throw fail(err2);
      }
    }
    try {
      const { size } = await fh.stat();
      try {
        const { bytesWritten } = await fh.write(line);
        if (bytesWritten !== line.length) throw new Error(`short write (${bytesWritten} of ${line.length} bytes): is the disk full?`);
      } catch (err) {
        await fh.truncate(size).catch(() => {});
        throw fail(err);
      }
    } finally {
      await fh.close().catch(() => {});
    }
  }

  close(): void {}
}
