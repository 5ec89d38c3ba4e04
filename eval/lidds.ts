/**
 * The LID-DS LTTng sample as an evaluation dataset: train on the training and validation
 * recordings, test on the normal and the attack recording; the attack run lasts from the
 * exploit's time (the recording's JSON) to the end of the recording.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Dataset } from './evaluate.js';
import type { AttackRun } from './metrics.js';
import { replayTraces, type EvalWindow } from './replay.js';

function recordings(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name)).sort();
}

export async function lidDsDataset(data: string, windowMs: number, log?: Logger): Promise<Dataset> {
  if (!existsSync(join(data, 'training'))) throw new Error(`${data}: not the LID-DS sample (no training/ folder)`);
  const replay = async (rec: string): Promise<EvalWindow[]> => replayTraces([{ host: 'victim', format: 'lttng', path: rec }], 'lid-ds', windowMs, log);
  const train: EvalWindow[] = [];
  for (const rec of [...recordings(join(data, 'training')), ...recordings(join(data, 'validation'))]) train.push(...(await replay(rec)));
  const test: EvalWindow[] = [];
  const runs: AttackRun[] = [];
  for (const rec of [...recordings(join(data, 'test', 'normal')), ...recordings(join(data, 'test', 'normal_and_attack'))]) {
    const ws = await replay(rec);
    test.push(...ws);
    const meta = JSON.parse(readFileSync(`${rec}.json`, 'utf8')) as { exploit?: boolean; exploit_name?: string; time?: { exploit?: { absolute: number }[] } };
    const at = meta.time?.exploit?.[0]?.absolute;
    if (meta.exploit && at !== undefined && ws.length) {
      runs.push({ id: rec.split('/').pop()!, kind: meta.exploit_name ?? 'exploit', start: Math.round(at * 1000), end: ws[ws.length - 1].windowStart + windowMs });
    }
  }
  return { name: 'LID-DS nginx (LTTng)', app: 'lid-ds', windowMs, train, test, runs };
}
