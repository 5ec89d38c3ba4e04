/**
 * A recorded live run, as written by eval/epc/record.ts and eval/webstack/record.ts: one raw
 * strace trace per traced component (DistAppGuard's capture, strace collector), the attack
 * labels, and the run's stretches — evaluated any number of times by replay.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Dataset } from './evaluate.js';
import { replayTraces } from './replay.js';

export interface Recording {
  dir: string;
  /** 'epc' | 'webstack' */
  testbed: string;
  t0: number;
  /** windows starting before this are the training stretch */
  testStart: number;
  end: number;
  seed: number;
  traces: { component: string; host: string; file: string }[];
  labels: { kind: string; startMs: number; endMs: number }[];
}

export function readRecording(dir: string): Recording {
  const f = join(dir, 'run.json');
  if (!existsSync(f)) throw new Error(`${dir}: no recording here (run.json missing)`);
  return JSON.parse(readFileSync(f, 'utf8')) as Recording;
}

/** Left out at the start of every recording. */
export const WARM_UP_MS = 60_000;

/** A recording at one window length: whole windows only, training before testStart, the rest test. */
export async function recordingDataset(rec: Recording, name: string, windowMs: number, log?: Logger): Promise<Dataset> {
  const app = rec.testbed ?? 'epc'; // recordings made before the field existed are EPC runs
  // an attacker's own process is outside the application (recordings made before this rule traced the EPC's rogue gateway)
  const traced = rec.traces.filter((t) => t.component !== 'rogueGw');
  const windows = await replayTraces(traced.map((t) => ({ host: t.component, format: 'strace' as const, path: t.file })), app, windowMs, log);
  // steady state only: the first minute is the programs starting (libraries mapped, pools
  // allocated, caches filled), not the behaviour a deployed model learns or watches
  const from = rec.t0 + WARM_UP_MS;
  const inside = windows.filter((w) => w.windowStart >= from && w.windowStart + windowMs <= rec.end);
  return {
    name,
    app,
    windowMs,
    train: inside.filter((w) => w.windowStart + windowMs <= rec.testStart),
    test: inside.filter((w) => w.windowStart >= rec.testStart),
    runs: rec.labels.map((l, i) => ({ id: `${l.kind}#${i + 1}`, kind: l.kind, start: l.startMs, end: l.endMs })),
  };
}

/** The attack schedule: after the training stretch, each attack in turn with normal gaps between. */
export function schedule<K extends string>(o: { trainMs: number; attackMs: number; gapMs: number; attacks: readonly K[]; rounds?: number }): { attacks: { kind: K; startMs: number; endMs: number }[]; durationMs: number } {
  const attacks: { kind: K; startMs: number; endMs: number }[] = [];
  let t = o.trainMs + o.gapMs;
  for (let r = 0; r < (o.rounds ?? 1); r++) {
    for (const kind of o.attacks) {
      attacks.push({ kind, startMs: t, endMs: t + o.attackMs });
      t += o.attackMs + o.gapMs;
    }
  }
  return { attacks, durationMs: t };
}

/** The capture command that records one component while it runs: its raw strace text and its windows. */
export function captureWrap(main: string, dir: string, app: string, component: string, argv: string[]): string[] {
  return [process.execPath, main, 'capture', '--collector', 'strace', '--raw-out', join(dir, `${component}.strace`), '--out', join(dir, `${component}.windows.jsonl`),
    '--window', '1s', '--app', app, '--host', component, '--', ...argv];
}
