/**
 * TensorFlow.js backend selection. `@tensorflow/tfjs-node` cannot be installed offline (its
 * install downloads libtensorflow), so the project runs on `@tensorflow/tfjs` with the wasm
 * backend (its .wasm files ship in the npm package) and picks up tfjs-node only when someone
 * installed it. `DISTAPPGUARD_TF_BACKEND=tensorflow|wasm|cpu` forces one.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as TfModule from '@tensorflow/tfjs';

export type Tf = typeof TfModule;
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

let ready: Promise<BackendName> | undefined;
// loaded on first use: an agent without a model, or a command that never scores, does not pay
// for TensorFlow.js at start-up
let tf: Tf;

async function tryNode(): Promise<boolean> {
  try {
    // A variable specifier so TypeScript does not need the package's types to build.
    const name = '@tensorflow/tfjs-node';
    await import(name);
    return tf.setBackend('tensorflow');
  } catch {
    return false;
  }
}

async function tryWasm(): Promise<boolean> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    // Point the backend at the .wasm files inside its package: works from a bundle too.
    const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(dir + path.sep);
    return await tf.setBackend('wasm');
  } catch {
    return false;
  }
}

async function choose(): Promise<BackendName> {
  tf = await import('@tensorflow/tfjs');
  // production mode: no debug checks, and no console banner urging tfjs-node on users who cannot install it
  tf.env().set('PROD', true);
  const forced = process.env.DISTAPPGUARD_TF_BACKEND;
  if (forced && !['tensorflow', 'wasm', 'cpu'].includes(forced)) {
    throw new Error(`DISTAPPGUARD_TF_BACKEND: "${forced}" is not one of tensorflow, wasm, cpu`);
  }
  if (forced === 'tensorflow') {
    if (await tryNode()) return 'tensorflow';
    throw new Error('DISTAPPGUARD_TF_BACKEND=tensorflow but @tensorflow/tfjs-node is not installed or failed to load');
  }
  if (forced === 'wasm') {
    if (await tryWasm()) return 'wasm';
    throw new Error('DISTAPPGUARD_TF_BACKEND=wasm but @tensorflow/tfjs-backend-wasm failed to initialise');
  }
  if (forced === 'cpu') {
    await tf.setBackend('cpu');
    return 'cpu';
  }
  if (await tryNode()) return 'tensorflow';
  if (await tryWasm()) return 'wasm';
  await tf.setBackend('cpu');
  return 'cpu';
}

/** The TensorFlow.js module, with the best available backend initialised once per process. */
export async function loadTf(): Promise<{ tf: Tf; backend: BackendName }> {
  ready ??= choose();
  const backend = await ready;
  await tf.ready();
  return { tf, backend };
}
