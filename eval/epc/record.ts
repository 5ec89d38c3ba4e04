/**
 * Record once: one live run of the LTE core testbed across namespace hosts, every component
 * traced by DistAppGuard's own capture (strace collector) keeping its raw trace — a normal
 * stretch for training, then a test stretch where the paper's attacks alternate with normal
 * traffic. The recording (raw traces, labels, run.json) is then evaluated any number of times,
 * for every method and window length, by replay (eval/epc/dataset.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeHosts, netnsUnavailable } from '../../cli/netns.js';
import { projectRoot } from '../../shared/project-root.js';
import { captureWrap, recordingProgress, schedule, type Recording, type RecordOptions as BaseRecordOptions } from '../recording.js';
import { killAllEpc, startEpc, type AttackKind } from './testbed.js';

export type RecordOptions = BaseRecordOptions<AttackKind>;

/** The attack schedule of an EPC recording. */
export function epcSchedule(o: Pick<RecordOptions, 'trainMs' | 'attackMs' | 'gapMs' | 'attacks' | 'rounds'>) {
  return schedule({ ...o, attacks: o.attacks ?? (['sgw-ip-modification', 'false-ddn', 'purge-context'] as AttackKind[]) });
}

export async function recordEpc(o: RecordOptions): Promise<Recording> {
  const why = netnsUnavailable();
  if (why) throw new Error(`recording the EPC testbed ${why}`);
  mkdirSync(o.dir, { recursive: true });
  const { attacks, durationMs } = epcSchedule(o);
  const main = join(projectRoot(), 'dist', 'cli', 'main.js');
  const net = makeHosts(['h1', 'h2', 'h3']);
  const [h1, h2, h3] = net.hosts;
  const traces: Recording['traces'] = [];
  try {
    o.log?.info({ minutes: +(durationMs / 60_000).toFixed(1), attacks: attacks.length }, 'recording the EPC testbed: every component traced live with strace');
    const tb = await startEpc({
      hosts: { enb: h1, mme: h2, hss: h2, sgw: h3, pgw: h3 },
      seed: o.seed ?? 1,
      durationMs,
      attacks,
      labelsFile: join(o.dir, 'labels.jsonl'),
      stateDir: join(o.dir, 'state'),
      // a normal PGW relocation now and then: the purge-context attack imitates its signalling
      pgw: { restartEveryMs: 90_000 },
      wrap: (c, host, argv) => {
        // the rogue gateway is the attacker's machine, outside the application: not traced
        if (c === 'rogueGw') return argv;
        traces.push({ component: c, host: host.name, file: join(o.dir, `${c}.strace`) });
        return captureWrap(main, o.dir, 'epc', c, argv);
      },
    });
    await recordingProgress('recording the EPC testbed', tb.t0, durationMs, o.trainMs, attacks, tb.finished, o.log);
    const rec: Recording = { dir: o.dir, testbed: 'epc', t0: tb.t0, testStart: tb.t0 + o.trainMs, end: tb.t0 + durationMs, seed: tb.seed, traces, labels: tb.labels() };
    writeFileSync(join(o.dir, 'run.json'), JSON.stringify(rec, null, 1));
    return rec;
  } finally {
    killAllEpc();
    net.cleanup();
  }
}
