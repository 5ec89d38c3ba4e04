/**
 * The evaluation harness end to end on real recordings (the LID-DS LTTng sample): replay into
 * windows with graphs and syscall bags, every method trained and scored the same way, metrics
 * against the exploit's time, and the report with its pictures.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateMethod } from '../../eval/evaluate.js';
import { lidDsDataset } from '../../eval/lidds.js';
import { allMethods } from '../../eval/methods.js';
import { writeReport } from '../../eval/report.js';

const DATA = resolve(import.meta.dirname, '../../../shared/data/lid-ds-ctf-nginx');
const out = mkdtempSync(join(tmpdir(), 'dag-eval-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe.skipIf(!existsSync(DATA))('evaluation harness on the LID-DS recordings', () => {
  it('replays, trains and scores every method on the same windows, and writes the report', async () => {
    const ds = await lidDsDataset(DATA, 1000);
    expect(ds.train.length).toBeGreaterThan(40);
    expect(ds.test.length).toBeGreaterThan(40);
    expect(ds.runs).toEqual([expect.objectContaining({ id: 'defeated_chandrasekhar_3584', start: 1666346786690 })]);
    // the same windows carry the graph and the syscall bags
    const w = ds.train.find((x) => x.merged.edges.length > 0)!;
    expect([...w.bags.get('victim')!.calls.keys()]).toEqual(expect.arrayContaining(['recvfrom']));
    const results = [];
    for (const m of allMethods()) {
      const r = await evaluateMethod(m, ds, { seed: 1, targetFpr: 0.01 });
      expect(r.error).toBeUndefined();
      expect(r.metrics!.windows).toBe(ds.test.length);
      expect(r.metrics!.tp + r.metrics!.fn).toBe(r.metrics!.attackWindows);
      expect(r.msPerWindow!.p50).toBeGreaterThan(0);
      results.push(r);
    }
    expect(results.map((r) => r.method)).toEqual(['bag-of-syscalls', 'ngrams', 'malchain', 'dense-ae', 'distappguard']);
    // 5 s windows: too few to train, said so rather than hidden
    const short = await evaluateMethod(allMethods()[4], await lidDsDataset(DATA, 5000), {});
    expect(short.error).toMatch(/at least 20 are needed/);

    const { files } = await writeReport(out, 'LID-DS', [{ dataset: ds.name, windowMs: 1000, trainWindows: ds.train.length, testWindows: ds.test.length, runs: ds.runs, methods: results }], (_n, _w, s) => ds.test.find((x) => x.windowStart === s)?.merged);
    expect(files.map((f) => f.split('/').pop())).toEqual(expect.arrayContaining(['report.html', 'results.md', 'results.json', 'roc-lid-ds-nginx-lttng--1s.svg', 'graph-lid-ds-nginx-lttng--1s-top-alert.svg']));
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html.match(/<svg/g)!.length).toBeGreaterThanOrEqual(7);
    expect(readFileSync(join(out, 'results.md'), 'utf8')).toMatch(/\| distappguard \| msae \| \d\/1 \|/);
  }, 120_000);
});
