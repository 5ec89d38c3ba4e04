/**
 * The application tier (workload/webstack/webstack-app.c): started in its host with the
 * addresses of redis and postgresql; it prints a "ready" line, a "snapshot" line of its
 * counters every snapshotMs and a final "stats" line on SIGTERM (JSON on stdout).
 */
import type { NsHost } from '../../cli/netns.js';
import { launch, stopProc, waitFor, type Proc } from './proc.js';

export interface AppOptions {
  host: NsHost;
  bin: string;
  port: number;
  redis: string;
  pgConninfo: string;
  pgPassword: string;
  workers: number;
  snapshotMs: number;
  /** exfiltration windows, ms since the epoch */
  exfiltration: { startMs: number; endMs: number }[];
  exfilEvery: number;
  exfilRows: number;
  wrap?: (argv: string[]) => string[];
}

export interface AppCounters {
  type: 'snapshot' | 'stats';
  pid: number;
  t: number;
  counters: Record<string, number>;
}

export interface App {
  proc: Proc;
  pid: number;
  port: number;
  snapshots: AppCounters[];
  final(): AppCounters | undefined;
  /** a counter at the last snapshot taken at or before `t` (0 before the first) */
  counterAt(name: string, t: number): number;
  stop(): Promise<AppCounters | undefined>;
}

export async function startApp(o: AppOptions): Promise<App> {
  const argv = [
    o.bin,
    '--listen', `${o.host.ip}:${o.port}`,
    '--redis', o.redis,
    '--pg', o.pgConninfo,
    '--workers', String(o.workers),
    '--snapshot-ms', String(o.snapshotMs),
    '--exfil-every', String(o.exfilEvery),
    '--exfil-rows', String(o.exfilRows),
    ...o.exfiltration.flatMap((w) => ['--attack', `exfiltration:${w.startMs}:${w.endMs}`]),
  ];
  const proc = launch('app', o.host, o.wrap ? o.wrap(argv) : argv, { ...process.env, PGPASSWORD: o.pgPassword });
  const snapshots: AppCounters[] = [];
  let final: AppCounters | undefined;
  let readyPid: number | undefined;
  proc.onLine((line) => {
    let j: { type?: string; pid?: number; t?: number; counters?: Record<string, number> };
    try {
      j = JSON.parse(line);
    } catch {
      return; // a wrapper's own output
    }
    if (j.type === 'ready') readyPid = j.pid;
    else if (j.type === 'snapshot') snapshots.push(j as AppCounters);
    else if (j.type === 'stats') final = j as AppCounters;
  });
  const pid = await waitFor('the app to connect to redis and postgresql', () => readyPid, 20_000, proc).catch(async (e) => {
    await stopProc(proc, 'SIGKILL', 2000);
    throw e;
  });
  return {
    proc,
    pid,
    port: o.port,
    snapshots,
    final: () => final,
    counterAt: (name, t) => {
      let v = 0;
      for (const s of snapshots) if (s.t <= t) v = s.counters[name] ?? 0;
      return v;
    },
    stop: async () => {
      await stopProc(proc, 'SIGTERM', 5000);
      return final;
    },
  };
}
