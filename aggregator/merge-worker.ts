/**
 * The merge worker (worker_threads): merges windows with its own connection to the store's
 * file, so correlation and the merged window's write never hold up the main thread, which
 * only receives, commits and acknowledges. SQLite in WAL mode lets the two connections share
 * the file; their write transactions take turns (busy_timeout).
 *
 * Messages in: { job: MergeJob, withWindow } one at a time, then { close: true }.
 * Messages out: MergeResult per job; { closed: true } once the store is closed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Store } from './store/index.js';
import { WindowMerger, type MergeJob, type MergeResult } from './merge.js';
import { decodeStoredWindow } from './window-decode.js';

export interface MergeWorkerData {
  file: string;
  durability: 'full' | 'normal';
}

type In = { job: MergeJob; withWindow: boolean } | { close: true };

const port = parentPort;
if (!port) throw new Error('merge-worker.ts runs as a worker thread');
const { file, durability } = workerData as MergeWorkerData;
const store = Store.open(file, { durability });
const merger = new WindowMerger(store, decodeStoredWindow);

port.on('message', (m: In) => {
  if ('close' in m) {
    store.close();
    port.postMessage({ closed: true });
    port.close();
    return;
  }
  let r: MergeResult;
  try {
    r = merger.merge(m.job, m.withWindow);
  } catch (e) {
    r = { job: m.job, error: (e as Error).message };
  }
  port.postMessage(r);
});
