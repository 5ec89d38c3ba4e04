/**
 * The detection commands as a user runs them on an aggregator's file: train (with its model
 * line), models list/activate, alerts (table, JSON, incidents), label; bad input answered by
 * one clear line and exit code 2.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DetectionService } from '../../aggregator/detect.js';
import { Store } from '../../aggregator/store/index.js';
import type { Edge } from '../../shared/graph.js';
import { roleId } from '../../shared/role-id.js';
import { generate } from '../../bench/load-windows.js';

const MAIN = resolve(import.meta.dirname, '../../dist/cli/main.js');
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'dag-cli-detect-'));
const db = join(dir, 'agg.db');
const W = 1000;
const T0 = 1_800_000_000_000;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN, ...args], { env: { ...process.env, NO_PRETTY: '1' }, maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const e = (src: string, dst: string, bytes: number): Edge => ({ srcId: roleId(src), dstId: roleId(dst), src, dst, kind: 'net', bytes, count: 1 });
const template = { edges: [e('web/http', 'app/worker', 5000), e('app/worker', 'web/http', 20000), e('app/worker', 'db/postgres', 800), e('db/postgres', 'app/worker', 12000)] };
const merged = (w: { windowStart: number; edges: Edge[] }) => ({ app: 'shop', windowStart: w.windowStart, windowMs: W, hosts: ['a'], edges: w.edges, matchedFlows: 0, unmatchedFlows: 0, latePartials: 0 });

beforeAll(() => {
  const store = Store.open(db);
  for (const w of generate(template, 80, T0, W, { seed: 1 })) store.saveMergedWindow(merged(w), 'closed');
  store.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!existsSync(MAIN))('detection commands', () => {
  it('train → models → (aggregator raises alerts) → alerts → label → activate', async () => {
    const t = await cli(['train', '--db', db, '--app', 'shop', '--no-host-models', '--target-fpr', '0.01', '--seed', '3']);
    expect(t.stderr).not.toMatch(/\n\s+at /);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^\s+1 \* shop\s+\(app\)\s+msae .* 80\s+4 /);
    const t2 = await cli(['train', '--db', db, '--app', 'shop', '--no-host-models', '--model', 'dense', '--epochs', '5']);
    expect(t2.code).toBe(0);
    const list = await cli(['models', '--db', db]);
    expect(list.stdout.split('\n').filter((l) => /^\s+\d+ /.test(l)).map((l) => l.slice(0, 6).trim())).toEqual(['1', '2 *']);
    expect((await cli(['models', 'activate', '1', '--db', db])).stdout).toMatch(/model 1 \(shop\) is active/);

    // what the aggregator does with each merged window, here in-process on the same file
    const store = Store.open(db);
    const svc = new DetectionService({ store, log: pino({ level: 'silent' }) });
    const attack = generate(template, 2, T0 + 100 * W, W, { seed: 9 }, () => 1).map((w) => ({
      ...w,
      edges: [...w.edges.map((x) => (x.dst === 'db/postgres' ? { ...x, bytes: x.bytes * 20 } : x)), e('db/postgres', 'ext:tcp/public:443', 99999)],
    }));
    for (const w of attack) {
      store.saveMergedWindow(merged(w), 'closed');
      svc.onWindow(merged(w));
    }
    await svc.close();
    store.close();

    const alerts = await cli(['alerts', '--db', db]);
    expect(alerts.code).toBe(0);
    expect(alerts.stdout).toMatch(/high .*new: db\/postgres → ext:tcp\/public:443/);
    const json = (await cli(['alerts', '--db', db, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(json).toHaveLength(2);
    expect(json[0].explanation.groups[0].name).toBeDefined();
    const inc = await cli(['alerts', '--db', db, '--incidents', '--json']);
    expect(inc.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ alerts: 2, start: T0 + 100 * W, end: T0 + 102 * W })]);
    // the alert's window drawn with what explains it: the new edge dashed, explaining edges with expected bytes
    const dot = await cli(['graph', '--db', db, '--alert', String(json[0].id), '--format', 'dot']);
    expect(dot.stdout).toMatch(/NEW ipc|NEW net/);
    expect(dot.stdout).toMatch(/expected \d+\)/);
    const svg = await cli(['graph', '--db', db, '--alert', String(json[0].id), '--format', 'svg']);
    expect(svg.stdout).toMatch(/<svg[\s\S]*ext:tcp\/public:443[\s\S]*<\/svg>/);
    const lab = await cli(['label', String(json[0].id), '--benign', '--db', db]);
    expect(lab.stdout).toMatch(/labelled benign; 1 edge\(s\) accepted/);
  }, 120_000);

  it.each([
    [['train', '--db', 'DB', '--app', 'nothing'], /nothing: 0 window\(s\) to train on/],
    [['train', '--db', 'DB', '--app', 'shop', '--target-fpr', '2'], /--target-fpr: '2' is not a rate/],
    [['train', '--db', join(dir, 'missing', 'x.db'), '--app', 'shop', '--min-windows', '0'], /--min-windows/],
    [['label', '999', '--benign', '--db', 'DB'], /no alert 999/],
    [['label', '1', '--db', 'DB'], /exactly one of --benign, --malicious/],
    [['models', 'activate', '42', '--db', 'DB'], /no model 42/],
    [['alerts', '--db', join(dir, 'nope.db')], /no such file/],
    [['graph', '--db', 'DB', '--alert', '777'], /no alert 777/],
    [['graph', '--db', 'DB'], /give --app and --window, or --alert/],
    [['train', '--db', join(dir, 'nope.db'), '--app', 'shop'], /nope.db: no such file/],
  ])('refuses %j with one clear line', async (args, message) => {
    const r = await cli(args.map((a) => (a === 'DB' ? db : a)));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir, 'missing'))).toBe(false);
    expect(existsSync(join(dir, 'nope.db'))).toBe(false);
  });
});
