/**
 * `distappguard eval DATASET`: replay recorded traces at every window length, train and score
 * every method on the same windows, and write the results table, plots and an HTML report.
 */
import { Command } from 'commander';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
// the evaluation modules (TensorFlow.js, Vega, Graphviz) load only when the command runs
import type { Dataset } from '../eval/evaluate.js';
import type { Recording } from '../eval/recording.js';
import type { ReplayProgress } from '../eval/replay.js';
import { existsSync } from 'node:fs';
import type { DatasetResult } from '../eval/report.js';
import { formatBytes, startProgress } from '../shared/progress.js';
import { projectRoot } from '../shared/project-root.js';
import { CliError, dur } from './distributed.js';

export function addEvalCommand(program: Command, log: Logger): void {
  program
    .command('eval')
    .description('evaluate DistAppGuard against the baselines on a dataset: results table, plots, HTML report')
    .argument('<dataset>', 'epc, webstack or lid-ds')
    .option('--data <dir>', 'lid-ds: the LID-DS sample folder', resolve(projectRoot(), '..', 'shared', 'data', 'lid-ds-ctf-nginx'))
    .option('--window <list>', 'window lengths', '1s,5s,30s')
    .option('--methods <list>', 'methods to run (default: all)')
    .option('--target-fpr <rate>', 'false alarms per window each method is calibrated for', '0.0001')
    .option('--seed <n>', 'random seed', '1')
    .option('--out <dir>', 'where the report goes', 'distappguard-eval')
    .option('--record <dir>', 'epc, webstack: the recording to evaluate; recorded first when it does not exist (default: OUT/DATASET-recording)')
    .option('--train <duration>', 'recording: normal traffic before the first attack', '10m')
    .option('--attack-duration <duration>', 'recording: length of each attack', '60s')
    .option('--gap <duration>', 'recording: normal traffic between attacks', '60s')
    .option('--rounds <n>', 'recording: each attack this many times', '2')
    .action(async (dataset: string, o) => {
      // the harness (TensorFlow.js, Vega, testbeds) loads only for this command
      const { evaluateMethod } = await import('../eval/evaluate.js');
      const { lidDsDataset } = await import('../eval/lidds.js');
      const { allMethods } = await import('../eval/methods.js');
      const { tableMarkdown, writeReport } = await import('../eval/report.js');
      const { recordEpc } = await import('../eval/epc/record.js');
      const { recordWebstack } = await import('../eval/webstack/record.js');
      const { readRecording, recordingDataset } = await import('../eval/recording.js');
      if (!['lid-ds', 'epc', 'webstack'].includes(dataset)) throw new CliError(`eval: unknown dataset '${dataset}' (known: epc, webstack, lid-ds)`);
      let recording: Recording | undefined;
      if (dataset !== 'lid-ds') {
        const dir = o.record ?? join(o.out, `${dataset}-recording`);
        if (existsSync(join(dir, 'run.json'))) recording = readRecording(dir);
        else {
          const rounds = Number(o.rounds);
          if (!Number.isInteger(rounds) || rounds < 1) throw new CliError(`--rounds '${o.rounds}': a whole number ≥ 1`);
          const r = { dir, trainMs: dur(o.train, '--train'), attackMs: dur(o.attackDuration, '--attack-duration'), gapMs: dur(o.gap, '--gap'), rounds, seed: Number(o.seed), log };
          recording = await (dataset === 'epc' ? recordEpc(r) : recordWebstack(r)).catch((e: Error) => {
            throw new CliError(e.message);
          });
        }
        log.info({ dir, minutes: +((recording.end - recording.t0) / 60_000).toFixed(1), attacks: recording.labels.length }, 'evaluating the recording');
      }
      const windows = String(o.window).split(',').map((w) => dur(w.trim(), '--window'));
      const methods = allMethods().filter((m) => !o.methods || String(o.methods).split(',').includes(m.name));
      if (methods.length === 0) throw new CliError(`--methods: none of '${o.methods}' is a method (${allMethods().map((m) => m.name).join(', ')})`);
      const results: DatasetResult[] = [];
      const windowsOf = new Map<string, Dataset>();
      // one step per window length for its replay, one per method for its training and scoring
      const progress = startProgress({ label: `eval ${dataset}`, total: windows.length * (methods.length + 1), unit: 'steps', log });
      let step = 0;
      try {
        for (const windowMs of windows) {
          const w = `${windowMs / 1000}s`;
          // at a terminal the line says it; in logs these few lines stay (the progress lines are thinned out)
          if (!progress.tty) log.info({ dataset, window: w }, 'replaying the recordings');
          progress.update(step, `${w}: replaying`);
          const replayed = (p: ReplayProgress) => {
            const within = p.bytesTotal ? Math.min(1, p.bytesRead / p.bytesTotal) : 0;
            const read = p.bytesTotal ? `${formatBytes(p.bytesRead)} of ${formatBytes(p.bytesTotal)}` : `${p.events} events`;
            progress.update(step + within, `${w}: replaying ${read} (${p.tracesDone}/${p.traces} traces done)`);
          };
          let ds: Dataset;
          try {
            ds = recording
              ? await recordingDataset(recording, dataset === 'epc' ? 'LTE core (EPC testbed)' : 'web stack (nginx, app, redis, postgresql)', windowMs, log, replayed)
              : await lidDsDataset(o.data, windowMs, log);
          } catch (e) {
            throw new CliError((e as Error).message);
          }
          step++;
          windowsOf.set(`${ds.name}/${windowMs}`, ds);
          const r: DatasetResult = { dataset: ds.name, windowMs, trainWindows: ds.train.length, testWindows: ds.test.length, runs: ds.runs, methods: [] };
          for (const m of methods) {
            if (!progress.tty) log.info({ method: m.name, window: w }, 'training and scoring');
            progress.update(step, `${w} ${m.name}`);
            const res = await evaluateMethod(m, ds, { seed: Number(o.seed), targetFpr: Number(o.targetFpr), onProgress: (what) => progress.update(step, `${w} ${m.name}: ${what}`) });
            r.methods.push(res);
            step++;
            progress.update(step, `${w} ${m.name}: ${res.error ? `not trained (${res.error})` : 'done'}`);
          }
          progress.clear(); // the table goes to stdout, often the same terminal
          process.stdout.write(tableMarkdown(r) + '\n');
          results.push(r);
        }
        progress.update(step, 'writing the report');
        const { files } = await writeReport(o.out, `DistAppGuard evaluation: ${dataset}`, results, (name, windowMs, start) =>
          windowsOf.get(`${name}/${windowMs}`)?.test.find((w) => w.windowStart === start)?.merged,
        );
        progress.end(`report written to ${o.out}`);
        log.info({ out: o.out, files: files.length }, 'report written (report.html, results.md, results.json, SVG plots)');
      } catch (e) {
        progress.end('failed');
        throw e;
      }
    });
}
