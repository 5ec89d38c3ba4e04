/**
 * A recorded live run, as written by eval/epc/record.ts and eval/webstack/record.ts: one raw
 * strace trace per traced component (DistAppGuard's capture, strace collector), the attack
 * labels, and the run's stretches — evaluated any number of times by replay.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { startProgress } from '../shared/progress.js';
import type { Dataset } from './evaluate.js';
import { replayTraces, type ReplayProgress } from './replay.js';

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

/** What a recorder is asked for (eval/epc/record.ts, eval/webstack/record.ts). */
export interface RecordOptions<K extends string = string> {
  dir: string;
  /** normal traffic before the first attack (training) */
  trainMs: number;
  /** each attack's length, and the normal traffic between and after attacks */
  attackMs: number;
  gapMs: number;
  attacks?: K[];
  /** each attack this many times */
  rounds?: number;
  seed?: number;
  log?: Logger;
}

/** Left out at the start of every recording. */
export const WARM_UP_MS = 60_000;

/** A recording at one window length: whole windows only, training before testStart, the rest test. */
export async function recordingDataset(rec: Recording, name: string, windowMs: number, log?: Logger, onProgress?: (p: ReplayProgress) => void): Promise<Dataset> {
  const app = rec.testbed ?? 'epc'; // recordings made before the field existed are EPC runs
  // an attacker's own process is outside the application (recordings made before this rule traced the EPC's rogue gateway)
  const traced = rec.traces.filter((t) => t.component !== 'rogueGw');
  const windows = await replayTraces(traced.map((t) => ({ host: t.component, format: 'strace' as const, path: t.file })), app, windowMs, log, onProgress);
  // steady state only: the first minute (a quarter of a short training stretch) is the
  // programs starting — libraries mapped, pools allocated, caches filled — not the behaviour
  // a deployed model learns or watches
  const from = rec.t0 + Math.min(WARM_UP_MS, (rec.testStart - rec.t0) / 4);
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

/**
 * Waits for a live recording to finish, showing how far it is (elapsed of the planned
 * duration) and what the testbed is doing: a line at a terminal, a log line every 30 s
 * otherwise.
 */
export async function recordingProgress(
  label: string,
  t0: number,
  durationMs: number,
  trainMs: number,
  attacks: readonly { kind: string; startMs: number; endMs: number }[],
  finished: Promise<unknown>,
  log?: Logger,
): Promise<void> {
  const progress = startProgress({ label, total: Math.round(durationMs / 1000), unit: 's', rate: false, log, everyMs: 30_000 });
  const phase = (ms: number) => {
    if (ms >= durationMs) return 'stopping the testbed';
    const a = attacks.find((x) => ms >= x.startMs && ms < x.endMs);
    if (a) return `attack ${a.kind} (${attacks.indexOf(a) + 1}/${attacks.length})`;
    return ms < trainMs ? 'normal traffic (training stretch)' : 'normal traffic';
  };
  const show = () => {
    const ms = Math.max(0, Date.now() - t0);
    progress.update(Math.min(ms, durationMs) / 1000, phase(ms));
  };
  show();
  const timer = setInterval(show, 1000);
  try {
    await finished;
    progress.end('done');
  } catch (e) {
    progress.end('failed');
    throw e;
  } finally {
    clearInterval(timer);
  }
}

/** The capture command that records one component while it runs: its raw strace text and its windows. */
export function captureWrap(main: string, dir: string, app: string, component: string, argv: string[]): string[] {
  return [process.execPath, main, 'capture', '--collector', 'strace', '--raw-out', join(dir, `${component}.strace`), '--out', join(dir, `${component}.windows.jsonl`),
    '--window', '1s', '--app', app, '--host', component, '--', ...argv];
}
