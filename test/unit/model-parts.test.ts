/** The pure parts of the model: ownership, feature index, scaling, top-k, calibration, split. */
import { describe, expect, it } from 'vitest';
import { splitWindows } from '../../aggregator/model/train.js';
import { planArchitecture, parameterCount } from '../../shared/model/architecture.js';
import { chooseThreshold, fitGroupScale, quantile } from '../../shared/model/calibrate.js';
import { buildFeatureIndex, edgeGroup, keyIndex, microserviceOf, vectorise } from '../../shared/model/features.js';
import { fitScaling, scale, unscale } from '../../shared/model/scaling.js';
import { topK } from '../../shared/model/score.js';
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
  it('takes the quantile when the windows resolve the target rate, else the maximum with a margin', () => {
    const scores = Array.from({ length: 1000 }, (_, i) => i / 1000);
    const q = chooseThreshold(scores, 0.01);
    expect(q.method).toBe('quantile');
    expect(q.threshold).toBeCloseTo(quantile(scores, 0.99));
    expect(q.falseAlarms).toBe(10);
    const m = chooseThreshold(scores.slice(0, 50), 1e-4, 1.5);
    expect(m.method).toBe('max-margin');
    expect(m.threshold).toBeCloseTo(0.049 * 1.5);
    expect(m.falseAlarms).toBe(0);
    expect(() => chooseThreshold(scores, 0)).toThrow(/between 0 and 1/);
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
