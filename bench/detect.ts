/**
 * `npm run bench:detect`: scoring time per window (100, 1,000, 10,000 edges) and training time
 * and peak memory (5,000 windows × 1,000 edges), for both models, on every backend available.
 * Each measurement runs in its own child process, so a backend is chosen once per process (as
 * in the product) and peak memory (VmHWM) is that measurement's own.
 *
 * Knobs: BENCH_DETECT_BACKENDS (default: tensorflow if installed, wasm, cpu),
 * BENCH_DETECT_TRAIN_WINDOWS (5000), BENCH_DETECT_TRAIN_EDGES (1000), BENCH_DETECT_SIZES
 * (100,1000,10000), BENCH_DETECT_SCORE_N (300 windows scored one at a time).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { trainModel } from '../aggregator/model/train.js';
import type { ModelKind } from '../shared/model/architecture.js';
import { loadTf } from '../shared/model/backend.js';
import { Detector } from '../shared/model/detector.js';
import { generate, syntheticTemplate } from './load-windows.js';

const W = 1000;
const T0 = 1_800_000_000_000;
const env = (k: string, d: string) => process.env[k] ?? d;

function hwmMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function childScore(kind: ModelKind, edges: number): Promise<Record<string, unknown>> {
  const { backend } = await loadTf();
  const t = syntheticTemplate(edges);
  // a short training: scoring cost depends on the model's shape, not on how well it fits
  const art = await trainModel(generate(t, 120, T0, W, { seed: 1 }), { app: 'bench', windowMs: W, kind, epochs: 2, patience: 1 });
  const det = await Detector.load(art);
  const windows = generate(t, Number(env('BENCH_DETECT_SCORE_N', '300')), T0, W, { seed: 2 }).map((w) => w.edges);
  for (const w of windows.slice(0, 30)) det.scoreOne(w); // warm-up: kernels, caches
  const ms: number[] = [];
  for (const w of windows) {
    const t0 = performance.now();
    det.scoreOne(w);
    ms.push(performance.now() - t0);
  }
  return { task: 'score', backend, kind, edges, params: art.training.parameters, p50: pct(ms, 0.5), p99: pct(ms, 0.99), mean: ms.reduce((a, b) => a + b, 0) / ms.length, rssMiB: hwmMiB() };
}

async function childTrain(kind: ModelKind): Promise<Record<string, unknown>> {
  const { backend } = await loadTf();
  const n = Number(env('BENCH_DETECT_TRAIN_WINDOWS', '5000'));
  const edges = Number(env('BENCH_DETECT_TRAIN_EDGES', '1000'));
  const windows = generate(syntheticTemplate(edges), n, T0, W, { seed: 1 });
  let last = 0;
  const t0 = performance.now();
  const art = await trainModel(windows, {
    app: 'bench', windowMs: W, kind,
    onEpoch: (e) => {
      if (performance.now() - last > 10_000) {
        last = performance.now();
        process.stderr.write(`  ${backend} ${kind}: epoch ${e.epoch + 1}, loss ${e.loss.toFixed(4)}, held-out ${e.valLoss.toFixed(4)}, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
      }
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  return { task: 'train', backend, kind, windows: n, edges, seconds, epochs: art.training.epochs, bestEpoch: art.training.bestEpoch, params: art.training.parameters, valLoss: art.training.valLoss, rssMiB: hwmMiB() };
}

function installed(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

async function parent(): Promise<void> {
  const backends = env('BENCH_DETECT_BACKENDS', [installed('@tensorflow/tfjs-node') ? 'tensorflow' : '', 'wasm', 'cpu'].filter(Boolean).join(',')).split(',');
  const sizes = env('BENCH_DETECT_SIZES', '100,1000,10000').split(',').filter(Boolean).map(Number);
  const self = fileURLToPath(import.meta.url);
  const run = (backend: string, args: string[]) => {
    const out = execFileSync(process.execPath, [self, 'child', ...args], { env: { ...process.env, DISTAPPGUARD_TF_BACKEND: backend }, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
    return JSON.parse(out.toString().trim().split('\n').pop()!) as Record<string, number | string>;
  };
  console.log(`# bench:detect — Node ${process.version}, backends ${backends.join(', ')}`);
  console.log('\n## Scoring one window (ms; model trained briefly, then 300 windows scored one at a time)\n');
  console.log('| backend | model | edges | parameters | p50 ms | p99 ms | mean ms | peak RSS MiB |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const b of backends)
    for (const kind of ['msae', 'dense'])
      for (const edges of sizes) {
        const r = run(b, ['score', kind, String(edges)]);
        console.log(`| ${r.backend} | ${kind} | ${edges} | ${r.params} | ${(r.p50 as number).toFixed(3)} | ${(r.p99 as number).toFixed(3)} | ${(r.mean as number).toFixed(3)} | ${r.rssMiB} |`);
      }
  console.log(`\n## Training (${env('BENCH_DETECT_TRAIN_WINDOWS', '5000')} windows × ${env('BENCH_DETECT_TRAIN_EDGES', '1000')} edges, early stopping (patience 8, min. improvement 0.2 %), batch ≈ train windows / 50)\n`);
  console.log('| backend | model | parameters | epochs (best) | seconds | s/epoch | held-out loss | peak RSS MiB |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const b of backends)
    for (const kind of ['msae', 'dense']) {
      const r = run(b, ['train', kind]);
      const s = r.seconds as number;
      console.log(`| ${r.backend} | ${kind} | ${r.params} | ${r.epochs} (${(r.bestEpoch as number) + 1}) | ${s.toFixed(1)} | ${(s / (r.epochs as number)).toFixed(2)} | ${(r.valLoss as number).toFixed(4)} | ${r.rssMiB} |`);
    }
}

const [, , mode, task, kind, edges] = process.argv;
if (mode === 'child') {
  const r = task === 'score' ? await childScore(kind as ModelKind, Number(edges)) : await childTrain(kind as ModelKind);
  process.stdout.write(JSON.stringify(r) + '\n');
} else {
  await parent();
}
