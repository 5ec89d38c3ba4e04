/**
 * Worker-thread entry for training inside the aggregator: minutes of TensorFlow.js work must
 * not stall the event loop that receives, commits and acknowledges windows. The worker has its
 * own connection to the store's file (WAL: the aggregator keeps writing meanwhile).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DetectionStore } from '../store/detection.js';
import { Store } from '../store/store.js';
import { trainFromStore, type TrainRequest } from './trainer.js';

export interface TrainWorkerData {
  file: string;
  durability: 'full' | 'normal';
  request: Omit<TrainRequest, 'onProgress'>;
}

export type TrainWorkerMessage =
  | { type: 'progress'; model: string; epoch: number; epochs: number; loss: number; valLoss: number }
  | { type: 'done'; appModelId: number }
  | { type: 'error'; message: string; name: string };

const data = workerData as TrainWorkerData;
const post = (m: TrainWorkerMessage) => parentPort!.postMessage(m);
const store = Store.open(data.file, { durability: data.durability });
try {
  const det = new DetectionStore(store.connection);
  const out = await trainFromStore(store, det, { ...data.request, onProgress: (p) => post({ type: 'progress', ...p }) });
  post({ type: 'done', appModelId: out.app.id });
} catch (e) {
  post({ type: 'error', message: (e as Error).message, name: (e as Error).name });
} finally {
  store.close();
}
