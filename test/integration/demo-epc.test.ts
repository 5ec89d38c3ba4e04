/**
 * The main demo as a user runs it (`distappguard demo`, built into dist/), with short phases:
 * the LTE core on three namespace hosts, an agent per component, the in-process aggregator
 * learning, training and pushing host models, then the three attacks. It must end by itself
 * with exit 0, having stored windows, trained a model the agents loaded, printed at least one
 * alert with its explanation inside an attack, and left no process, namespace or temp folder.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Store } from '../../aggregator/store/index.js';
import { DetectionStore } from '../../aggregator/store/detection.js';
import { netnsUnavailable } from '../../cli/netns.js';

const MAIN = resolve(import.meta.dirname, '../../dist/cli/main.js');
const why = netnsUnavailable() ?? (existsSync(MAIN) ? undefined : 'dist/cli/main.js is not built (npm run build)');
if (why) console.warn(`EPC demo test skipped: ${why}`);

/** pids whose command line mentions `text` */
function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(text)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe.skipIf(why !== undefined)('distappguard demo (EPC: learn, train, attack, explain)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dag-demo-epc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('learns, trains, pushes host models, alerts with explanations during the attacks, and cleans up', { timeout: 280_000 }, async () => {
    const db = join(dir, 'demo.db');
    const child = spawn(process.execPath, [MAIN, 'demo', '--learn', '25s', '--attack-duration', '12s', '--gap', '10s', '--db', db, '--keep'], {
      env: { ...process.env, NO_PRETTY: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
    const tag = (child.pid! % 100000).toString(36); // cli/netns.ts names namespaces dag-<tag>-<host>
    const report = `--- stdout\n${stdout.slice(-12_000)}\n--- stderr\n${stderr.slice(-4000)}`;
    expect(code, report).toBe(0);

    // the phases, as printed
    expect(stdout, report).toMatch(/windows merged/);
    expect(stdout, report).toMatch(/MODEL \d+ trained in [\d.]+ s: msae, \d+ windows, \d+ features, threshold [\d.]+/);
    expect(stdout, report).toMatch(/epoch +\d+\/\d+ +loss/);
    const loaded = [...stdout.matchAll(/agent (h\d-\w+) loaded its host model/g)].map((m) => m[1]);
    expect(new Set(loaded).size, report).toBeGreaterThanOrEqual(4);
    for (const kind of ['sgw-ip-modification', 'false-ddn', 'purge-context']) {
      expect(stdout, report).toContain(`ATTACK START ${kind}`);
      expect(stdout, report).toContain(`ATTACK END   ${kind}`);
    }
    // an aggregator alert inside an attack, with its explanation (microservices, then edges or never-seen edges)
    expect(stdout, report).toMatch(/ALERT #\d+ \(incident \d+\) window [\d:]+ +(HIGH|MEDIUM) +score [\d.]+ > threshold [\d.]+ +\[during [a-z-]+\]/);
    expect(stdout, report).toMatch(/ALERT #\d+ .+\[during [a-z-]+\]\n +microservices \(error ÷ usual\): .+\n +(.+ observed [\d,]+ B, expected [\d,]+ B|never seen: .+)/);
    expect(stdout, report).toMatch(/ {2}[a-z-]+ +[\d:]+–[\d:]+ +application model: DETECTED, \d+ of \d+ windows over the threshold/);
    expect(stdout, report).toMatch(/attacks detected by the application model: [123] of 3; by it or an agent's host model: [123] of 3/);
    expect(stdout, report).toMatch(/false alarms in \d+ normal windows scored .*: application model \d+ window\(s\) over the threshold.*; agents' host models \d+ window\(s\)/);

    // the store: windows, models, agents' acks, alerts overlapping an attack
    const store = Store.open(db, { readonly: true });
    try {
      const windows = store.listWindows({ app: 'epc' });
      expect(windows.length).toBeGreaterThan(60);
      const det = new DetectionStore(store.connection);
      const models = det.listModels('epc');
      expect(models.some((m) => m.scope === '' && m.active)).toBe(true);
      expect(models.filter((m) => m.scope !== '').length).toBe(5);
      expect(det.agentModels().filter((a) => a.modelVersion !== null).length).toBeGreaterThanOrEqual(4);
      const attackAlerts = det.listAlerts({ app: 'epc' }).filter((a) => a.source === 'aggregator' && (a.anomalous || a.explanation.newEdges.length > 0));
      expect(attackAlerts.length).toBeGreaterThan(0);
    } finally {
      store.close();
    }

    // nothing left behind: processes, namespaces, the temp folder
    const tmp = /aggregator on unix:(\/\S+)\/aggregator\.sock/.exec(stdout)?.[1];
    expect(tmp, report).toBeDefined();
    expect(existsSync(tmp!)).toBe(false);
    expect(processesWith(tmp!)).toEqual([]);
    expect(execFileSync('ip', ['netns', 'list']).toString()).not.toContain(`dag-${tag}-`);
    expect(stdout).toContain('done: namespaces, processes and temp files removed');
  });
});
