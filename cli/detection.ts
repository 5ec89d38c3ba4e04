/**
 * Detection commands over the aggregator's SQLite file: train, alerts, label, models. They
 * work beside a running aggregator (WAL: one writer at a time, readers never blocked); the
 * aggregator notices a newly active model at its next window and pushes it to the agents.
 */
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { trainFromStore } from '../aggregator/model/trainer.js';
import { DetectionStore, type AlertRow, type ModelRow } from '../aggregator/store/detection.js';
import { startProgress, type Progress } from '../shared/progress.js';
import { CliError, openStore, parseTime } from './distributed.js';

/**
 * Training progress, one line per model (the application's, then each host's): epoch of the
 * most epochs (early stopping usually ends sooner), loss and held-out loss.
 */
function trainingProgress(log: Logger) {
  let current: { model: string; progress: Progress; epoch: number; epochs: number; losses: string } | undefined;
  const finish = (failed?: string) => {
    if (!current) return;
    const c = current;
    current = undefined;
    const stopped = c.epoch < c.epochs ? `stopped early at epoch ${c.epoch}, ` : '';
    c.progress.end(failed ? `${failed}; ${c.losses}` : `${stopped}${c.losses}`);
  };
  return {
    onProgress: (p: { model: string; epoch: number; epochs: number; loss: number; valLoss: number }) => {
      if (current?.model !== p.model) {
        finish();
        current = { model: p.model, progress: startProgress({ label: `training ${p.model}`, total: p.epochs, unit: 'epochs', log }), epoch: 0, epochs: p.epochs, losses: '' };
      }
      current.epoch = p.epoch + 1;
      current.losses = `loss ${p.loss.toFixed(4)} held-out ${p.valLoss.toFixed(4)}`;
      current.progress.update(p.epoch + 1, current.losses);
    },
    end: finish,
  };
}

/** A store that must already exist: these commands work on an aggregator's file, never create one. */
function openExisting(db: string) {
  if (!existsSync(db)) throw new CliError(`${db}: no such file (give the aggregator's --db file)`);
  return openStore(db);
}

function num(text: string, what: string, check: (n: number) => boolean, expect: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || !check(n)) throw new CliError(`${what}: '${text}' is not ${expect}`);
  return n;
}

function modelLine(m: ModelRow): string {
  const t = m.metrics.training as { epochs?: number; seconds?: number } | undefined;
  const c = m.metrics.calibration as { targetFpr?: number; method?: string; windows?: number } | undefined;
  return [
    String(m.id).padStart(4), m.active ? '*' : ' ', m.app.padEnd(14), (m.scope || '(app)').padEnd(12), m.kind.padEnd(6),
    new Date(m.trainFrom).toISOString().slice(0, 19), '→', new Date(m.trainTo).toISOString().slice(0, 19),
    String(m.windows).padStart(6), String(m.features).padStart(6), m.threshold.toFixed(3).padStart(8),
    `fpr≤${c?.targetFpr}(${c?.method}, ${c?.windows} held-out)`, `${t?.epochs} epochs ${t?.seconds?.toFixed(1)} s`, m.sha256.slice(0, 12),
  ].join(' ');
}

function alertLine(a: AlertRow): string {
  const g = a.explanation.groups[0];
  const e = a.explanation.edges[0];
  const what = a.explanation.newEdges.length > 0
    ? `new: ${a.explanation.newEdges.map((x) => `${x.src} → ${x.dst}`).join(', ')}`
    : e ? `${g?.name} ×${g?.ratio.toFixed(1)}; ${e.src} → ${e.dst} ${e.observedBytes} B (expected ${e.expectedBytes})` : '';
  return `${String(a.id).padStart(5)} ${String(a.incidentId).padStart(5)} ${new Date(a.windowStart).toISOString()} ${a.app.padEnd(12)} ${a.source.padEnd(14)} ${a.severity.padEnd(6)} ${a.score.toFixed(2).padStart(7)} ${a.threshold.toFixed(2).padStart(6)} ${(a.label ?? '').padEnd(9)} ${what}`;
}

export function addDetectionCommands(program: Command, log: Logger): void {
  program
    .command('train')
    .description("train a detection model on an application's normal windows and make it active")
    .requiredOption('--db <file>', 'SQLite file')
    .requiredOption('--app <name>', 'application')
    .option('--from <time>', 'first window (ISO 8601 or ms since the epoch)')
    .option('--to <time>', 'end of the range (exclusive)')
    .addOption(new Option('--model <kind>', 'msae (microservice-aware) or dense').choices(['msae', 'dense']).default('msae'))
    .option('--target-fpr <rate>', 'false alarms per window to calibrate the threshold for', '0.0001')
    .option('--seed <n>', 'random seed (same data + seed = same model)', '1')
    .option('--epochs <n>', 'most epochs (early stopping usually ends sooner)', '200')
    .option('--min-windows <n>', 'refuse to train on fewer windows', '20')
    .option('--no-host-models', 'do not train the per-host models pushed to agents')
    .action(async (o) => {
      // every option checked before the file is touched
      const progress = trainingProgress(log);
      const request = {
        app: o.app as string,
        from: o.from === undefined ? undefined : parseTime(o.from),
        to: o.to === undefined ? undefined : parseTime(o.to),
        kind: o.model,
        targetFpr: num(o.targetFpr, '--target-fpr', (n) => n > 0 && n < 1, 'a rate between 0 and 1'),
        seed: num(o.seed, '--seed', Number.isInteger, 'an integer'),
        epochs: num(o.epochs, '--epochs', (n) => Number.isInteger(n) && n > 0, 'a positive integer'),
        minWindows: num(o.minWindows, '--min-windows', (n) => Number.isInteger(n) && n > 0, 'a positive integer'),
        hostModels: o.hostModels as boolean,
        onProgress: progress.onProgress,
      };
      const store = openExisting(o.db);
      try {
        const det = new DetectionStore(store.connection);
        const out = await trainFromStore(store, det, request);
        progress.end();
        process.stdout.write(`${modelLine(out.app)}\n${out.hosts.map((h) => modelLine(h) + '\n').join('')}`);
      } catch (e) {
        progress.end('failed');
        throw new CliError((e as Error).message);
      } finally {
        store.close();
      }
    });

  program
    .command('alerts')
    .description('alerts raised by the aggregator and the agents, newest first')
    .requiredOption('--db <file>', 'SQLite file')
    .option('--app <name>', 'only this application')
    .option('--incident <id>', 'only this incident')
    .option('--incidents', 'list incidents (consecutive alerting windows) instead')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'JSON Lines, with the full explanation')
    .action((o) => {
      const store = openStore(o.db, true);
      const det = new DetectionStore(store.connection);
      try {
        if (o.incidents) {
          const rows = det.listIncidents(o.app).slice(0, Number(o.limit));
          if (o.json) for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
          else {
            process.stdout.write('   ID APP          SOURCE         START                    END                      ALERTS  MAX SCORE  NEW EDGES\n');
            for (const r of rows)
              process.stdout.write(`${String(r.id).padStart(5)} ${r.app.padEnd(12)} ${r.source.padEnd(14)} ${new Date(r.start).toISOString()} ${new Date(r.end).toISOString()} ${String(r.alerts).padStart(6)} ${r.maxScore.toFixed(2).padStart(10)} ${String(r.newEdges).padStart(10)}\n`);
          }
          return;
        }
        const rows = det.listAlerts({ app: o.app, incident: o.incident === undefined ? undefined : Number(o.incident), limit: Number(o.limit) });
        if (o.json) for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
        else {
          process.stdout.write('   ID   INC WINDOW                   APP          SOURCE         SEV      SCORE  THRESH LABEL     WHY\n');
          for (const r of rows) process.stdout.write(alertLine(r) + '\n');
        }
      } finally {
        store.close();
      }
    });

  program
    .command('label')
    .description('mark an alert benign (its window joins the training data, its new edges are accepted) or malicious')
    .argument('<alert>', 'alert id')
    .requiredOption('--db <file>', 'SQLite file')
    .option('--benign', 'normal behaviour')
    .option('--malicious', 'a real attack')
    .action((alert: string, o) => {
      if (Boolean(o.benign) === Boolean(o.malicious)) throw new CliError('label: give exactly one of --benign, --malicious');
      const id = num(alert, 'alert', (n) => Number.isInteger(n) && n > 0, 'an alert id');
      const store = openExisting(o.db);
      try {
        const a = new DetectionStore(store.connection).label(id, o.benign ? 'benign' : 'malicious');
        process.stdout.write(`alert ${a.id} labelled ${a.label}${a.label === 'benign' && a.explanation.newEdges.length ? `; ${a.explanation.newEdges.length} edge(s) accepted for the next training` : ''}\n`);
      } catch (e) {
        throw new CliError((e as Error).message);
      } finally {
        store.close();
      }
    });

  const models = program.command('models').description('trained models: list, or activate one (rollback)');
  models
    .command('list', { isDefault: true })
    .description('models, the active ones marked *')
    .requiredOption('--db <file>', 'SQLite file')
    .option('--app <name>', 'only this application')
    .option('--json', 'JSON Lines')
    .action((o) => {
      const store = openStore(o.db, true);
      try {
        const rows = new DetectionStore(store.connection).listModels(o.app);
        if (o.json) for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
        else {
          process.stdout.write('  ID A APP            SCOPE        KIND   TRAINED ON                                WINDOWS FEATS  THRESH\n');
          for (const r of rows) process.stdout.write(modelLine(r) + '\n');
        }
      } finally {
        store.close();
      }
    });
  models
    .command('activate')
    .description('make a model (and the host models trained with it) the active one: rollback or roll forward')
    .argument('<id>', 'model id')
    .requiredOption('--db <file>', 'SQLite file')
    .action((idText: string, o) => {
      const id = num(idText, 'model', (n) => Number.isInteger(n) && n > 0, 'a model id');
      const store = openExisting(o.db);
      try {
        const m = new DetectionStore(store.connection).activate(id);
        process.stdout.write(`model ${m.id} (${m.app}${m.scope ? '@' + m.scope : ''}) is active\n`);
      } catch (e) {
        throw new CliError((e as Error).message);
      } finally {
        store.close();
      }
    });
}
