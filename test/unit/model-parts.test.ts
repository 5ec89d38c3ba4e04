/** The pure parts of the model: ownership, feature index, scaling, top-k, calibration, split. */
import { describe, expect, it } from 'vitest';
import { splitWindows } from '../../aggregator/model/train.js';
import { planArchitecture, parameterCount } from '../../shared/model/architecture.js';
import { seeded } from '../../shared/model/random.js';
import { chooseThreshold, fitEdgeScale, fitGpd, fitGroupScale, quantile, SPORADIC_BELOW } from '../../shared/model/calibrate.js';
import { buildFeatureIndex, edgeGroup, keyIndex, microserviceOf, vectorise } from '../../shared/model/features.js';
import { fitScaling, scale, unscale } from '../../shared/model/scaling.js';
import { topK, windowErrors } from '../../shared/model/score.js';
import type { Edge } from '../../shared/graph.js';

const edge = (src: string, dst: string, kind: Edge['kind'], bytes = 10, n = 0): Edge => ({ srcId: (n * 2 + 1).toString(16).padStart(16, '0'), dstId: (n * 2 + 2).toString(16).padStart(16, '0'), src, dst, kind, bytes, count: 1 });

describe('ownership', () => {
  it('names the microservice of thread, process and memory roles; none for endpoints', () => {
    expect(microserviceOf('mme/ITTI 3')).toBe('mme');
    expect(microserviceOf('nginx')).toBe('nginx');
    expect(microserviceOf('web:python3[app.py]/worker')).toBe('web:python3[app.py]');
    expect(microserviceOf('svc:java[jar:/opt/app/x.jar]/main')).toBe('svc:java[jar:/opt/app/x.jar]');
    expect(microserviceOf('mem:pgw')).toBe('pgw');
    for (const l of ['file:/var/lib/x', 'net:tcp/private:443', 'ext:udp/public:53', 'ipc:pipe']) expect(microserviceOf(l)).toBeUndefined();
  });
  it('gives an edge to its sender thread, else its receiver', () => {
    expect(edgeGroup({ src: 'enb/s1ap', dst: 'mme/ITTI 3' })).toBe('enb');
    expect(edgeGroup({ src: 'file:/etc/x', dst: 'nginx/worker' })).toBe('nginx');
    expect(edgeGroup({ src: 'net:tcp/private:5432', dst: 'ext:x' })).toBe('other');
  });
});

describe('window score', () => {
  // one microservice 'a' with ten edges, of which the last is sporadic
  const idx = buildFeatureIndex([Array.from({ length: 10 }, (_, i) => edge('a/t', `file:/f${i}`, 'file', 1, i + 1))]);
  const x = new Float32Array(10);
  const y = new Float32Array(10);
  it('catches one edge far off its usual error that the group mean dilutes', () => {
    x[3] = 3; // 3 deviations off on one edge of ten: squared error 9, mean 0.9
    const plain = windowErrors(idx, [1], x, y);
    expect(plain.score).toBeCloseTo(0.9);
    const edgeScale = [...Array(9).fill(1), 0];
    const e = windowErrors(idx, [1], x, y, 0, edgeScale);
    expect(e.score).toBeCloseTo(9);
    expect(e.group[0]).toBeCloseTo(1); // the mean over the nine regular edges
    x[3] = 0;
  });
  it('leaves sporadic edges out of the volume score', () => {
    x[9] = 40;
    const e = windowErrors(idx, [1], x, y, 0, [...Array(9).fill(1), 0]);
    expect(e.score).toBe(0);
    expect(windowErrors(idx, [1], x, y).score).toBeCloseTo(160);
    x[9] = 0;
  });
});

describe('feature index', () => {
  it('is ordered by group then key whatever the order of windows, groups contiguous', () => {
    const a = [edge('b/t', 'file:/x', 'file', 1, 1), edge('a/t', 'b/t', 'net', 1, 2)];
    const b = [edge('a/t', 'b/t', 'net', 1, 2), edge('a/t', 'file:/y', 'file', 1, 3)];
    const i1 = buildFeatureIndex([a, b]);
    const i2 = buildFeatureIndex([b, a]);
    expect(i1).toEqual(i2);
    expect(i1.groups.map((g) => [g.name, g.features])).toEqual([['a', [0, 1]], ['b', [2]]]);
  });
  it('sums duplicate edges and returns the never-seen ones', () => {
    const idx = buildFeatureIndex([[edge('a/t', 'b/t', 'net', 1, 1)]]);
    const v = vectorise(idx, keyIndex(idx), [edge('a/t', 'b/t', 'net', 5, 1), edge('a/t', 'b/t', 'net', 7, 1), edge('a/t', 'b/t', 'file', 3, 1)]);
    expect([...v.bytes]).toEqual([12]);
    expect(v.unseen.map((e) => e.kind)).toEqual(['file']);
  });
});

describe('scaling', () => {
  it('standardises log1p bytes with a floor on the deviation, and inverts', () => {
    const s = fitScaling([new Float64Array([0, 100]), new Float64Array([0, 10000])], 2, 0.1);
    expect(s.std[0]).toBe(0.1);
    const x = scale(s, new Float64Array([0, 1000]));
    expect(x[0]).toBeCloseTo(0);
    expect(unscale(s, 1, x[1])).toBeCloseTo(1000, 0);
  });
});

describe('top-k', () => {
  it('matches a full sort', () => {
    const xs = Float32Array.from({ length: 200 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
    const want = [...xs.keys()].sort((a, b) => xs[b] - xs[a]).slice(0, 7);
    expect(topK(xs, 7)).toEqual(want);
    expect(topK(xs, 0)).toEqual([]);
    expect(topK(Float32Array.from([3, 1]), 5)).toEqual([0, 1]);
  });
});

describe('calibration', () => {
  it('takes the quantile when the windows resolve the target rate, else fits the tail, else the maximum with a margin', () => {
    const scores = Array.from({ length: 1000 }, (_, i) => i / 1000);
    const q = chooseThreshold(scores, 0.01);
    expect(q.method).toBe('quantile');
    expect(q.threshold).toBeCloseTo(quantile(scores, 0.99));
    expect(q.falseAlarms).toBe(10);
    const m = chooseThreshold(scores.slice(0, 15), 1e-4, 1.5);
    expect(m.method).toBe('max-margin');
    expect(m.threshold).toBeCloseTo(0.014 * 1.5);
    expect(m.falseAlarms).toBe(0);
    expect(() => chooseThreshold(scores, 0)).toThrow(/between 0 and 1/);
  });
  it('extrapolates a known tail: exponential and Pareto scores, 10⁻⁴ from 1,000 windows', () => {
    const rnd = seeded(7);
    // exponential, rate 1: the 1 − 10⁻⁴ quantile is ln 10⁴ = 9.21
    const exp = Array.from({ length: 1000 }, () => -Math.log(1 - rnd()));
    const e = chooseThreshold(exp, 1e-4);
    expect(e.method).toBe('tail-fit');
    expect(e.tail!.exceedances).toBe(100);
    expect(e.threshold).toBeGreaterThan(9.21 * 0.75);
    expect(e.threshold).toBeLessThan(9.21 * 1.35);
    expect(e.threshold).toBeGreaterThanOrEqual(Math.max(...exp));
    // Pareto with shape 1/ξ = 1/0.3: the quantile is (10⁴)^0.3 = 15.8
    const par = Array.from({ length: 1000 }, () => Math.pow(1 - rnd(), -0.3));
    const p = chooseThreshold(par, 1e-4);
    expect(p.tail!.xi).toBeGreaterThan(0.1);
    expect(p.threshold).toBeGreaterThan(15.8 * 0.6);
    expect(p.threshold).toBeLessThan(15.8 * 1.6);
    // the GPD fit itself, on exact exponential excesses: ξ ≈ 0, σ ≈ mean
    const f = fitGpd(Array.from({ length: 2000 }, (_, i) => -Math.log(1 - (i + 0.5) / 2000)));
    expect(Math.abs(f.xi)).toBeLessThan(0.05);
    expect(f.sigma).toBeCloseTo(1, 1);
  });
  it('gives each regular edge its usual error, floored at one deviation, and sporadic edges none', () => {
    const errs = [Float32Array.from([0.1, 5, 0]), Float32Array.from([0.2, 3, 0]), Float32Array.from([0.1, 4, 9])];
    const s = fitEdgeScale(errs, [1, 0.5, SPORADIC_BELOW / 2]);
    expect(s[0]).toBe(1);
    expect(s[1]).toBeCloseTo(quantile([3, 4, 5], 0.99));
    expect(s[2]).toBe(0);
  });
  it('scales each group by its 99th percentile, floored', () => {
    expect(fitGroupScale([[0, 1], [0, 3]], 2)).toEqual([1e-3, expect.closeTo(2.98, 5)]);
  });
  it('splits windows reproducibly into three disjoint sets', () => {
    const s = splitWindows(100, 5);
    expect(splitWindows(100, 5)).toEqual(s);
    expect([...s.train, ...s.validation, ...s.calibration].sort((a, b) => a - b)).toEqual([...Array(100).keys()]);
    expect([s.train.length, s.validation.length, s.calibration.length]).toEqual([70, 15, 15]);
  });
});

describe('architecture', () => {
  it('splits a large microservice into blocks of at most blockWidth, and has far fewer parameters than dense', () => {
    const edges = Array.from({ length: 100 }, (_, i) => edge(i < 70 ? 'big/t' : 'small/t', `file:/f${i}`, 'file', 1, i));
    const idx = buildFeatureIndex([edges]);
    const a = planArchitecture('msae', idx, { blockWidth: 32 });
    if (a.kind !== 'msae') throw new Error('msae expected');
    expect(a.blocks.map((b) => b.length)).toEqual([24, 24, 22, 30]);
    expect(a.blockGroup).toEqual([0, 0, 0, 1]);
    expect(parameterCount(a)).toBeLessThan(parameterCount(planArchitecture('dense', idx)));
    expect(() => planArchitecture('msae', { features: [], groups: [] })).toThrow(/empty/);
  });
});
