/**
 * The shape of the two autoencoders, decided from the feature index alone (pure), so a
 * stored model can be rebuilt exactly from its artifact.
 *
 * Microservice-aware (`msae`): each microservice's edges go through their own small
 * encoder block; the blocks meet at one shared bottleneck and each group is decoded by its
 * own block. A microservice with more than `blockWidth` edges is split into several blocks
 * (its errors are still reported per microservice); blocks are padded to the same width so
 * the whole model is a handful of batched matrix products whatever the number of groups.
 * Dense (`dense`): D → h1 → b → h1 → D, the plain autoencoder the paper compares against.
 */
import type { FeatureIndex } from './features.js';

export type ModelKind = 'msae' | 'dense';

export interface MsaeArchitecture {
  kind: 'msae';
  inputDim: number;
  /** feature positions per block; every block lies inside one group */
  blocks: number[][];
  /** group index of each block */
  blockGroup: number[];
  /** padded block width n */
  width: number;
  /** hidden units per block */
  blockHidden: number;
  bottleneck: number;
}

export interface DenseArchitecture {
  kind: 'dense';
  inputDim: number;
  hidden: number;
  bottleneck: number;
}

export type Architecture = MsaeArchitecture | DenseArchitecture;

export interface ArchitectureOptions {
  /** most edges per msae block (default 32) */
  blockWidth?: number;
  /** hidden units per msae block (default 8) */
  blockHidden?: number;
  /** bottleneck width (default: msae ⌈blocks·blockHidden/8⌉, dense ⌈D/16⌉; within [4, 64]) */
  bottleneck?: number;
  /** dense hidden width (default ⌈D/4⌉, within [8, 512]) */
  hidden?: number;
}

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

export function planArchitecture(kind: ModelKind, index: FeatureIndex, o: ArchitectureOptions = {}): Architecture {
  const D = index.features.length;
  if (D === 0) throw new Error('model: the feature index is empty (no edges in the training windows)');
  if (kind === 'dense') {
    const hidden = o.hidden ?? clamp(Math.ceil(D / 4), 8, 512);
    const bottleneck = o.bottleneck ?? clamp(Math.ceil(D / 16), 4, 64);
    return { kind, inputDim: D, hidden, bottleneck };
  }
  const maxWidth = o.blockWidth ?? 32;
  const blocks: number[][] = [];
  const blockGroup: number[] = [];
  index.groups.forEach((g, gi) => {
    // split evenly rather than leaving a runt block
    const parts = Math.ceil(g.features.length / maxWidth);
    const size = Math.ceil(g.features.length / parts);
    for (let p = 0; p < parts; p++) {
      blocks.push(g.features.slice(p * size, (p + 1) * size));
      blockGroup.push(gi);
    }
  });
  const width = Math.max(...blocks.map((b) => b.length));
  const blockHidden = o.blockHidden ?? 8;
  const bottleneck = o.bottleneck ?? clamp(Math.ceil((blocks.length * blockHidden) / 8), 4, 64);
  return { kind, inputDim: D, blocks, blockGroup, width, blockHidden, bottleneck };
}

/** name → shape of every weight tensor. */
export function weightShapes(a: Architecture): Record<string, number[]> {
  if (a.kind === 'dense') {
    return {
      w1: [a.inputDim, a.hidden], b1: [a.hidden],
      w2: [a.hidden, a.bottleneck], b2: [a.bottleneck],
      w3: [a.bottleneck, a.hidden], b3: [a.hidden],
      w4: [a.hidden, a.inputDim], b4: [a.inputDim],
    };
  }
  const C = a.blocks.length;
  const H = C * a.blockHidden;
  return {
    encW: [C, a.width, a.blockHidden], encB: [C, 1, a.blockHidden],
    botW: [H, a.bottleneck], botB: [a.bottleneck],
    upW: [a.bottleneck, H], upB: [H],
    decW: [C, a.blockHidden, a.width], decB: [C, 1, a.width],
  };
}

/** Trainable parameters (msae: padding excluded), for the model's description. */
export function parameterCount(a: Architecture): number {
  if (a.kind === 'dense') return 2 * a.inputDim * a.hidden + a.inputDim + 2 * a.hidden * a.bottleneck + 2 * a.hidden + a.bottleneck;
  const H = a.blocks.length * a.blockHidden;
  const real = a.blocks.reduce((s, b) => s + b.length, 0);
  return 2 * real * a.blockHidden + 2 * H + 2 * H * a.bottleneck + a.bottleneck + H + real;
}
