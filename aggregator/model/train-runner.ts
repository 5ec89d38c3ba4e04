/**
 * Runs a training for the aggregator on a worker thread (train-worker.ts) when the compiled
 * worker is there, else in this thread (tests from source, in-memory stores).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { projectRoot } from '../../shared/project-root.js';
import { DetectionStore } from '../store/detection.js';
import type { Store } from '../store/store.js';
import { trainFromStore, type TrainRequest } from './trainer.js';
import { TrainingError } from './train.js';
import type { TrainWorkerData, TrainWorkerMessage } from './train-worker.js';

function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith('.js') ? join(here, '..', 'train-worker.js') : join(projectRoot(), 'dist', 'aggregator', 'model', 'train-worker.js');
}

/** Trains and stores the models; resolves with the new application model's id. */
export function trainInBackground(store: Store, req: TrainRequest): Promise<number> {
  const script = workerFile();
  if (store.file === ':memory:' || !existsSync(script)) {
    return trainFromStore(store, new DetectionStore(store.connection), req).then((o) => o.app.id);
  }
  const { onProgress, ...request } = req;
  const data: TrainWorkerData = { file: store.file, durability: store.durability, request };
  return new Promise((resolve, reject) => {
    const w = new Worker(pathToFileURL(script), { workerData: data });
    let settled = false;
    w.on('message', (m: TrainWorkerMessage) => {
      if (m.type === 'progress') onProgress?.(m);
      else if (m.type === 'done') {
        settled = true;
        resolve(m.appModelId);
      } else {
        settled = true;
        reject(m.name === 'TrainingError' ? new TrainingError(m.message) : new Error(m.message));
      }
    });
    w.on('error', (e) => {
      if (!settled) reject(e);
      settled = true;
    });
    w.on('exit', (code) => {
      if (!settled) reject(new Error(`training worker exited with code ${code}`));
    });
  });
}
