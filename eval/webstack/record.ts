/**
 * Record once: one live run of the web stack across namespace hosts, each tier (nginx, the
 * app, redis, postgresql) traced by DistAppGuard's own capture keeping its raw strace text.
 * The load generator and the attacker's own machine are outside the application and not
 * traced — as in a real deployment; what they do shows up in the tiers' traces.
 */
import { mkdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeHosts, netnsUnavailable } from '../../cli/netns.js';
import { projectRoot } from '../../shared/project-root.js';
import { captureWrap, recordingProgress, schedule, type Recording, type RecordOptions } from '../recording.js';
import type { AttackKind } from './attacks.js';
import { startWebstack } from './testbed.js';

export type WebstackRecordOptions = RecordOptions<AttackKind>;

export async function recordWebstack(o: WebstackRecordOptions): Promise<Recording> {
  const why = netnsUnavailable();
  if (why) throw new Error(`recording the web stack ${why}`);
  mkdirSync(o.dir, { recursive: true });
  const { attacks, durationMs } = schedule({ ...o, attacks: o.attacks ?? (['exfiltration', 'cache-abuse', 'rogue-replica'] as AttackKind[]) });
  const main = join(projectRoot(), 'dist', 'cli', 'main.js');
  const net = makeHosts(['web', 'app', 'cache', 'db', 'client']);
  const [web, app, cache, db, client] = net.hosts;
  const traces: Recording['traces'] = [];
  const labelsFile = join(o.dir, 'labels.jsonl');
  try {
    o.log?.info({ minutes: +(durationMs / 60_000).toFixed(1), attacks: attacks.length }, 'recording the web stack: every tier traced live with strace');
    const stack = await startWebstack({
      hosts: { web, app, cache, db, client, attacker: client },
      seed: o.seed ?? 1,
      durationMs,
      attacks,
      labelsFile,
      workDir: o.dir,
      serverStats: false,
      // the app's counter snapshots are the testbed's instrumentation, not the application: a
      // write every second would be an edge of the recording that no deployment has
      snapshotMs: 0,
      wrap: (what, host, argv) => {
        if (what === 'load' || what === 'cache-abuse' || what === 'rogue-replica') return argv;
        traces.push({ component: what, host: host.name, file: join(o.dir, `${what}.strace`) });
        return captureWrap(main, o.dir, 'webstack', what, argv);
      },
    });
    await recordingProgress('recording the web stack', stack.t0, durationMs, o.trainMs, attacks, stack.finished, o.log);
    const labels = existsSync(labelsFile) ? readFileSync(labelsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Recording['labels'][number]) : [];
    const rec: Recording = { dir: o.dir, testbed: 'webstack', t0: stack.t0, testStart: stack.t0 + o.trainMs, end: stack.t0 + durationMs, seed: stack.seed, traces, labels };
    writeFileSync(join(o.dir, 'run.json'), JSON.stringify(rec, null, 1));
    return rec;
  } finally {
    net.cleanup();
  }
}
