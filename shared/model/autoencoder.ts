/**
 * The autoencoders on TensorFlow.js: forward pass, seeded initialisation, training with early
 * stopping on held-out normal windows, and reconstruction. Weights live in tf variables while
 * a model is in use and travel as plain Float32Arrays (see artifact.ts).
 */
import type * as TF from '@tensorflow/tfjs';
import type { Architecture } from './architecture.js';
import { weightShapes } from './architecture.js';
import { seeded, shuffle, type Random } from './random.js';
import type { Tf } from './backend.js';

export type Weights = Record<string, Float32Array>;

/** Glorot-uniform kernels and zero biases from a seeded PRNG: the same seed gives the same model on any backend. */
export function initialWeights(a: Architecture, seed: number): Weights {
  const rnd = seeded(seed);
  const out: Weights = {};
  for (const [name, shape] of Object.entries(weightShapes(a))) {
    const size = shape.reduce((p, d) => p * d, 1);
    const w = new Float32Array(size);
    const isBias = /B$|^b\d$/.test(name);
    if (!isBias) {
      const fanIn = shape[shape.length - 2];
      const fanOut = shape[shape.length - 1];
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < size; i++) w[i] = (rnd() * 2 - 1) * limit;
    }
    out[name] = w;
  }
  return out;
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** epochs without improvement of the held-out loss before stopping */
  patience: number;
  /** an improvement smaller than this fraction of the best held-out loss does not count (default 0.002) */
  minDelta?: number;
  seed: number;
  onEpoch?: (e: EpochReport) => void;
}

export interface EpochReport {
  epoch: number;
  loss: number;
  valLoss: number;
  best: boolean;
}

export interface FitResult {
  epochs: number;
  bestEpoch: number;
  loss: number;
  valLoss: number;
  history: { loss: number; valLoss: number }[];
}

/**
 * The msae works in a padded layout: block c's features at c·n … c·n+len−1, zeros after, so
 * blocks are a reshape away (no gather, whose gradient the wasm backend lacks). Padding is
 * masked out of the loss and never reported.
 */
export function layoutOf(a: Architecture): { width: number; position: Int32Array } {
  const position = new Int32Array(a.inputDim);
  if (a.kind === 'dense') {
    position.forEach((_, i) => (position[i] = i));
    return { width: a.inputDim, position };
  }
  a.blocks.forEach((b, c) => b.forEach((f, j) => (position[f] = c * a.width + j)));
  return { width: a.blocks.length * a.width, position };
}

export class Autoencoder {
  private readonly vars: Record<string, TF.Variable>;
  private readonly mask?: TF.Tensor2D;
  private readonly layout: { width: number; position: Int32Array };

  constructor(
    private readonly tf: Tf,
    readonly arch: Architecture,
    weights: Weights,
  ) {
    this.vars = {};
    for (const [name, shape] of Object.entries(weightShapes(arch))) {
      const w = weights[name];
      if (!w || w.length !== shape.reduce((p, d) => p * d, 1)) throw new Error(`model: weight ${name} is missing or has the wrong size`);
      this.vars[name] = tf.variable(tf.tensor(w, shape, 'float32'), true, undefined);
    }
    this.layout = layoutOf(arch);
    if (arch.kind === 'msae') {
      const m = new Float32Array(this.layout.width);
      for (const p of this.layout.position) m[p] = 1;
      this.mask = tf.tensor2d(m, [1, m.length]);
    }
  }

  /** rows in feature order → rows in the model's layout */
  private pack(rows: Float32Array, count: number): Float32Array {
    const D = this.arch.inputDim;
    if (this.layout.width === D) return rows;
    const W = this.layout.width;
    const out = new Float32Array(count * W);
    const pos = this.layout.position;
    for (let r = 0; r < count; r++) for (let i = 0; i < D; i++) out[r * W + pos[i]] = rows[r * D + i];
    return out;
  }

  /** x: [batch, layout width] → reconstruction, same layout. Call inside tf.tidy. */
  forward(x: TF.Tensor2D): TF.Tensor2D {
    const { tf, vars: v, arch: a } = this;
    const b = x.shape[0];
    if (a.kind === 'dense') {
      const h1 = tf.relu(tf.add(tf.matMul(x, v.w1), v.b1));
      const z = tf.add(tf.matMul(h1, v.w2), v.b2);
      const h3 = tf.relu(tf.add(tf.matMul(z, v.w3), v.b3));
      return tf.add(tf.matMul(h3, v.w4), v.b4) as TF.Tensor2D;
    }
    const C = a.blocks.length;
    const n = a.width;
    const h = a.blockHidden;
    const xb = tf.transpose(tf.reshape(x, [b, C, n]), [1, 0, 2]) as TF.Tensor3D; // [C, b, n]
    const enc = tf.relu(tf.add(tf.matMul(xb, v.encW as TF.Tensor3D), v.encB)); // [C, b, h]
    const joined = tf.reshape(tf.transpose(enc, [1, 0, 2]), [b, C * h]);
    const z = tf.add(tf.matMul(joined, v.botW as TF.Tensor2D), v.botB); // shared bottleneck
    const up = tf.relu(tf.add(tf.matMul(z as TF.Tensor2D, v.upW as TF.Tensor2D), v.upB));
    const ub = tf.transpose(tf.reshape(up, [b, C, h]), [1, 0, 2]) as TF.Tensor3D;
    const dec = tf.add(tf.matMul(ub, v.decW as TF.Tensor3D), v.decB); // [C, b, n]
    return tf.reshape(tf.transpose(dec, [1, 0, 2]), [b, C * n]) as TF.Tensor2D;
  }

  /** mean squared error over real features (padding masked out) */
  private loss(x: TF.Tensor2D): TF.Scalar {
    const { tf } = this;
    const sq = tf.squaredDifference(this.forward(x), x);
    if (!this.mask) return tf.mean(sq) as TF.Scalar;
    return tf.div(tf.sum(tf.mul(sq, this.mask)), x.shape[0] * this.arch.inputDim) as TF.Scalar;
  }

  /** Reconstructions of rows (each `inputDim` long, concatenated, feature order), in batches. */
  reconstruct(rows: Float32Array, count: number, batch = 256): Float32Array {
    const { tf } = this;
    const D = this.arch.inputDim;
    const W = this.layout.width;
    const packed = this.pack(rows, count);
    const out = new Float32Array(count * D);
    const pos = this.layout.position;
    for (let s = 0; s < count; s += batch) {
      const m = Math.min(batch, count - s);
      const y = tf.tidy(() => this.forward(tf.tensor2d(packed.subarray(s * W, (s + m) * W), [m, W])));
      const yv = y.dataSync() as Float32Array;
      y.dispose();
      for (let r = 0; r < m; r++) for (let i = 0; i < D; i++) out[(s + r) * D + i] = yv[r * W + pos[i]];
    }
    return out;
  }

  /**
   * Adam on the mean squared reconstruction error; stops when the held-out loss has not
   * improved for `patience` epochs and keeps the best epoch's weights.
   */
  fit(train: Float32Array, nTrain: number, val: Float32Array, nVal: number, o: FitOptions): FitResult {
    const { tf } = this;
    const W = this.layout.width;
    const rnd: Random = seeded(o.seed ^ 0x5eed);
    const xTrain = tf.tensor2d(this.pack(train, nTrain), [nTrain, W]);
    const xVal = tf.tensor2d(this.pack(val, nVal), [nVal, W]);
    const optimizer = tf.train.adam(o.learningRate);
    const varList = Object.values(this.vars);
    const history: { loss: number; valLoss: number }[] = [];
    let best = { epoch: -1, valLoss: Infinity, weights: this.weights() };
    try {
      const order = Array.from({ length: nTrain }, (_, i) => i);
      for (let epoch = 0; epoch < o.epochs; epoch++) {
        shuffle(order, rnd);
        let sum = 0;
        for (let s = 0; s < nTrain; s += o.batchSize) {
          const idx = order.slice(s, s + o.batchSize);
          const cost = tf.tidy(() => {
            // gather on a constant input: no gradient flows through it
            const xb = tf.gather(xTrain, tf.tensor1d(idx, 'int32')) as TF.Tensor2D;
            return optimizer.minimize(() => this.loss(xb), true, varList) as TF.Scalar;
          });
          sum += cost.dataSync()[0] * idx.length;
          cost.dispose();
        }
        const loss = sum / nTrain;
        const valLoss = this.meanLoss(xVal);
        history.push({ loss, valLoss });
        const improved = valLoss < best.valLoss * (1 - (o.minDelta ?? 0.002)) - 1e-9;
        if (improved) best = { epoch, valLoss, weights: this.weights() };
        o.onEpoch?.({ epoch, loss, valLoss, best: improved });
        if (epoch - best.epoch >= o.patience) break;
      }
    } finally {
      xTrain.dispose();
      xVal.dispose();
      optimizer.dispose();
    }
    this.setWeights(best.weights);
    const last = history[best.epoch] ?? { loss: NaN, valLoss: NaN };
    return { epochs: history.length, bestEpoch: best.epoch, loss: last.loss, valLoss: last.valLoss, history };
  }

  private meanLoss(x: TF.Tensor2D): number {
    const l = this.tf.tidy(() => this.loss(x));
    const v = l.dataSync()[0];
    l.dispose();
    return v;
  }

  weights(): Weights {
    const out: Weights = {};
    for (const [name, v] of Object.entries(this.vars)) out[name] = new Float32Array(v.dataSync() as Float32Array);
    return out;
  }

  private setWeights(w: Weights): void {
    for (const [name, v] of Object.entries(this.vars)) this.tf.tidy(() => v.assign(this.tf.tensor(w[name], v.shape, 'float32')));
  }

  dispose(): void {
    for (const v of Object.values(this.vars)) v.dispose();
    this.mask?.dispose();
  }
}
