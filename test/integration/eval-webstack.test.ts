/**
 * The web-stack scenario, short: `distappguard eval webstack` records nginx → app → redis,
 * postgresql on namespace hosts, every tier under DistAppGuard's capture, with the three
 * attacks; then replays the recording, trains and scores, and writes the report. The attack
 * that adds an edge (rogue replica) must be detected; the ratio-only ones are scored and
 * reported (the long recordings in docs/evaluation-results.md measure how well).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { webstackUnavailable } from '../../eval/webstack/requirements.js';

const why = webstackUnavailable();
if (why) console.warn(`web-stack evaluation test skipped: ${why}`);
const main = resolve(import.meta.dirname, '../../dist/cli/main.js');
const out = mkdtempSync(join(tmpdir(), 'dag-eval-ws-'));
chmodSync(out, 0o755); // postgresql runs as its own user and must reach its data folder
afterAll(() => rmSync(out, { recursive: true, force: true }));

interface Run { id: string; kind: string; detected: boolean }
interface MethodOut { method: string; error?: string; threshold: number; metrics: { runs: Run[]; rocAuc: number; fpr: number; windows: number }; scores: { score: number; attack: boolean }[] }

describe.skipIf(why !== undefined)('web-stack evaluation, short', () => {
  it('records the stack with its attacks, evaluates, detects the rogue replica and writes the report', () => {
    const r = spawnSync(
      process.execPath,
      [main, 'eval', 'webstack', '--out', out, '--train', '100s', '--attack-duration', '20s', '--gap', '10s', '--rounds', '1', '--window', '1s', '--methods', 'malchain,distappguard'],
      { encoding: 'utf8', env: { ...process.env, NO_PRETTY: '1', DISTAPPGUARD_TF_BACKEND: 'wasm' }, timeout: 420_000 },
    );
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { results: { windowMs: number; trainWindows: number; runs: { kind: string }[]; methods: MethodOut[] }[] };
    const d = results.results[0];
    expect(d.runs.map((x) => x.kind)).toEqual(['exfiltration', 'cache-abuse', 'rogue-replica']);
    expect(d.trainWindows).toBeGreaterThan(60);
    const dag = d.methods.find((m) => m.method === 'distappguard')!;
    expect(dag.error).toBeUndefined();
    const msg = JSON.stringify(dag.metrics, null, 1);
    expect(dag.metrics.runs.find((x) => x.kind === 'rogue-replica')!.detected, msg).toBe(true);
    // every test window scored; the attack windows rank above the normal ones overall
    expect(dag.scores.length).toBe(dag.metrics.windows);
    expect(dag.metrics.rocAuc, msg).toBeGreaterThan(0.6);
    for (const f of ['report.html', 'results.md', 'roc-web-stack-nginx-app-redis-postgresql--1s.svg', 'timeline-web-stack-nginx-app-redis-postgresql--1s-distappguard.svg'])
      expect(existsSync(join(out, f)), f).toBe(true);
    expect(r.stdout).toMatch(/\| distappguard \| msae \| [1-3]\/3 \|/);
  }, 480_000);
});
