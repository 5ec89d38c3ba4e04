/** A recording of the EPC testbed as an evaluation dataset at one window length. */
import type { Logger } from 'pino';
import type { Dataset } from '../evaluate.js';
import { replayTraces } from '../replay.js';
import type { Recording } from './record.js';

export async function epcDataset(rec: Recording, windowMs: number, log?: Logger): Promise<Dataset> {
  const windows = await replayTraces(rec.traces.map((t) => ({ host: t.component, format: 'strace' as const, path: t.file })), 'epc', windowMs, log);
  // whole windows only: the first and last may be cut by the start and end of tracing
  const inside = windows.filter((w) => w.windowStart >= rec.t0 && w.windowStart + windowMs <= rec.end);
  return {
    name: 'LTE core (EPC testbed)',
    app: 'epc',
    windowMs,
    train: inside.filter((w) => w.windowStart + windowMs <= rec.testStart),
    test: inside.filter((w) => w.windowStart >= rec.testStart),
    runs: rec.labels.map((l, i) => ({ id: `${l.kind}#${i + 1}`, kind: l.kind, start: l.startMs, end: l.endMs })),
  };
}
