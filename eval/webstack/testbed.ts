/**
 * The web-stack testbed: a shop behind nginx across network-namespace hosts
 *
 *   client ──wrk──▶ web: nginx :8080 ──▶ app: webstack-app :9000 ─┬─▶ cache: redis :6379
 *                                                                 └─▶ db: postgresql :5432
 *
 * with a time-varying load schedule and attacks in given windows (see attacks.ts). Every
 * daemon runs in the foreground in its own process group with its config, pid file, logs and
 * data in one temp folder of the run, removed by stop(). Offsets (load phases, attacks) count
 * from t0, the moment the stack is up and the load begins; labels are ms since the epoch.
 */
import { appendFileSync, chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NsHost } from '../../cli/netns.js';
import { startApp, type App, type AppCounters } from './app.js';
import { ATTACKS, scheduleAttack, type AttackContext, type AttackEvidence, type AttackLabel, type AttackSpec, type ScheduledAttack } from './attacks.js';
import { buildWebstack, type WebstackFiles } from './build.js';
import { defaultLoadSchedule, startWrk, wrkArgs, type Catalogue, type LoadPhase, type WrkResult, type WrkRun } from './load.js';
import { startNginx, type AccessEntry, type Nginx } from './nginx.js';
import { DEFAULT_SEED_SIZES, startPostgres, type Postgres, type SeedSizes } from './postgres.js';
import { descendants, signalGroup, sleep, threadNames } from './proc.js';
import { startRedis, type Redis } from './redis.js';

export type Tier = 'nginx' | 'app' | 'redis' | 'postgres';
export type { AttackKind, AttackLabel, AttackSpec } from './attacks.js';
export type { LoadPhase } from './load.js';

export interface WebstackHosts {
  web: NsHost;
  app: NsHost;
  cache: NsHost;
  db: NsHost;
  /** where wrk runs (default: web) */
  client?: NsHost;
  /** where the rogue replica runs (default: web, a compromised front end) */
  attacker?: NsHost;
}

export interface WebstackOptions {
  hosts: WebstackHosts;
  seed?: number;
  /** the stack stops by itself this long after t0 (default 60 s) */
  durationMs?: number;
  /** default: defaultLoadSchedule(durationMs, seed) */
  loadSchedule?: LoadPhase[];
  attacks?: AttackSpec[];
  /** JSON Lines, one label per attack appended on stop() */
  labelsFile?: string;
  /** parent of the run's temp folder (default: the OS temp folder) */
  workDir?: string;
  /** leave the run's folder (configs, logs, data) for inspection */
  keepWorkDir?: boolean;
  sizes?: Partial<SeedSizes>;
  appWorkers?: number;
  /** period of the app's counter lines (default 1000; 0: none) */
  snapshotMs?: number;
  /** exfiltration: one product request in `every` leaks `rows` customer rows (default 8, 30) */
  exfil?: { every?: number; rows?: number };
  /** cache-abuse: connections and requests per second of the attacker (default 4, 250) */
  abuse?: { connections?: number; rate?: number };
  /** time between starting the app and t0, so attack flags are armed before the load (default 1500) */
  startMarginMs?: number;
  /** read redis INFO and postgresql's statistics in stop() (default true). They are asked with
   *  redis-cli and psql after the load and attacks have ended, i.e. after `stoppedAt`: a tracer
   *  still running then sees those two extra clients. */
  serverStats?: boolean;
  /** rewrite a process's command line, e.g. to run it under a tracer */
  wrap?: (what: Tier | 'load' | 'cache-abuse' | 'rogue-replica', host: NsHost, argv: string[]) => string[];
  runId?: string;
}

export const PORTS = { nginx: 8080, app: 9000, redis: 6379, postgres: 5432 } as const;
export const CATEGORIES = 50; // fixed by seed.sql

export interface WebstackStats {
  t0: number;
  stoppedAt: number;
  wrk: WrkResult[];
  app?: AppCounters;
  nginx: { requests: number; bytesSent: number; byStatus: Record<string, number>; byEndpoint: Record<string, number> };
  redis: { keyspaceHits: number; keyspaceMisses: number; totalCommands: number; syncFull: number; expiredKeys: number; evictedKeys: number; keys: number };
  postgres: {
    xactCommit: number;
    tupReturned: number;
    tupFetched: number;
    tupInserted: number;
    tupUpdated: number;
    /** pg_stat_statements of database shop, most called first */
    statements: { query: string; calls: number; rows: number }[];
  };
  attacks: AttackEvidence[];
  labels: AttackLabel[];
}

export interface Webstack {
  t0: number;
  runId: string;
  seed: number;
  runDir: string;
  /** nginx as the clients see it */
  url: string;
  hosts: Required<WebstackHosts>;
  /** the main process of each tier (nginx master, app, redis-server, postmaster) */
  pids: Record<Tier, number>;
  /** every live process of each tier (nginx workers, postgres backends…), the load's wrk and the attackers' */
  processes(): Record<Tier | 'load' | 'attack', number[]>;
  threadNames(tier: Tier): string[];
  app: App;
  /** nginx's access log so far (after stop: all of it) */
  nginxEntries(): AccessEntry[];
  redisInfo(section: string): Record<string, string>;
  /** SQL as the superuser in database shop (psql -At output) */
  pgQuery(sql: string): Promise<string>;
  schedule: LoadPhase[];
  stop(): Promise<WebstackStats>;
  /** resolves with the stats once stopped (by stop() or durationMs) */
  finished: Promise<WebstackStats>;
}

function num(v: string | undefined): number {
  return Number(v ?? 0) || 0;
}

function nginxSummary(entries: AccessEntry[]): WebstackStats['nginx'] {
  const byStatus: Record<string, number> = {};
  const byEndpoint: Record<string, number> = {};
  let bytesSent = 0;
  for (const e of entries) {
    byStatus[e.status] = (byStatus[e.status] ?? 0) + 1;
    const ep = `${e.method} /${e.uri.split('/')[1] ?? ''}`;
    byEndpoint[ep] = (byEndpoint[ep] ?? 0) + 1;
    bytesSent += e.bytesSent;
  }
  return { requests: entries.length, bytesSent, byStatus, byEndpoint };
}

function redisSummary(r: Redis): WebstackStats['redis'] {
  const s = r.info('stats');
  const ks = r.info('keyspace');
  const keys = /keys=(\d+)/.exec(ks.db0 ?? '');
  return {
    keyspaceHits: num(s.keyspace_hits),
    keyspaceMisses: num(s.keyspace_misses),
    totalCommands: num(s.total_commands_processed),
    syncFull: num(s.sync_full),
    expiredKeys: num(s.expired_keys),
    evictedKeys: num(s.evicted_keys),
    keys: keys ? Number(keys[1]) : 0,
  };
}

async function pgSummary(pg: Postgres): Promise<WebstackStats['postgres']> {
  const db = JSON.parse(
    await pg.query(
      `SELECT json_build_object('xactCommit', xact_commit, 'tupReturned', tup_returned, 'tupFetched', tup_fetched, 'tupInserted', tup_inserted, 'tupUpdated', tup_updated) FROM pg_stat_database WHERE datname = 'shop'`,
    ),
  );
  const statements = JSON.parse(
    await pg.query(
      `SELECT coalesce(json_agg(s), '[]') FROM (SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 120) AS query, calls, rows FROM pg_stat_statements ` +
        `WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'shop') ORDER BY calls DESC LIMIT 30) s`,
    ),
  );
  return { ...db, statements };
}

export async function startWebstack(o: WebstackOptions): Promise<Webstack> {
  const seed = o.seed ?? 1;
  const durationMs = o.durationMs ?? 60_000;
  const runId = o.runId ?? `webstack-${Date.now()}-${seed}`;
  const hosts: Required<WebstackHosts> = { client: o.hosts.web, attacker: o.hosts.web, ...o.hosts };
  const attacks = [...(o.attacks ?? [])].sort((a, b) => a.startMs - b.startMs);
  for (const a of attacks) {
    if (!(a.kind in ATTACKS)) throw new Error(`unknown attack kind '${a.kind}' (one of ${Object.keys(ATTACKS).join(', ')})`);
    if (!(a.startMs >= 0 && a.endMs > a.startMs)) throw new Error(`attack ${a.kind}: need 0 ≤ startMs < endMs, got ${a.startMs}..${a.endMs}`);
  }
  const sizes = { ...DEFAULT_SEED_SIZES, ...o.sizes };
  const catalogue: Catalogue = { products: sizes.products, categories: CATEGORIES, users: sizes.users };
  const schedule = o.loadSchedule ?? defaultLoadSchedule(durationMs, seed);
  const files: WebstackFiles = buildWebstack();
  const wrap = (what: Parameters<NonNullable<WebstackOptions['wrap']>>[0], host: NsHost) => o.wrap && ((argv: string[]) => o.wrap!(what, host, argv));

  const runDir = mkdtempSync(join(o.workDir ?? tmpdir(), 'webstack-'));
  chmodSync(runDir, 0o711); // postgres (not root) must reach its data folder inside
  const url = `http://${hosts.web.ip}:${PORTS.nginx}`;

  let pg: Postgres | undefined;
  let redis: Redis | undefined;
  let nginx: Nginx | undefined;
  let app: App | undefined;
  const teardown = async () => {
    for (const s of [nginx, app, redis, pg]) await s?.stop().catch(() => undefined);
    if (!o.keepWorkDir) rmSync(runDir, { recursive: true, force: true });
  };

  let t0: number;
  try {
    // both at once (initdb and the seed take seconds); both settled before a failure of
    // either is thrown, so teardown() finds the other one
    const [p, r] = await Promise.allSettled([
      startPostgres({ host: hosts.db, dir: join(runDir, 'pg'), port: PORTS.postgres, password: randomBytes(9).toString('base64url'), seed, sizes, seedSql: files.seedSql, wrap: wrap('postgres', hosts.db) }),
      startRedis({ host: hosts.cache, dir: join(runDir, 'redis'), port: PORTS.redis, public: true, wrap: wrap('redis', hosts.cache) }),
    ]);
    if (p.status === 'fulfilled') pg = p.value;
    if (r.status === 'fulfilled') redis = r.value;
    if (p.status === 'rejected') throw p.reason;
    if (r.status === 'rejected') throw r.reason;
    nginx = await startNginx({ host: hosts.web, dir: join(runDir, 'nginx'), port: PORTS.nginx, upstream: `${hosts.app.ip}:${PORTS.app}`, wrap: wrap('nginx', hosts.web) });
    t0 = Date.now() + (o.startMarginMs ?? 1500);
    app = await startApp({
      host: hosts.app,
      bin: files.app,
      port: PORTS.app,
      redis: `${hosts.cache.ip}:${PORTS.redis}`,
      pgConninfo: pg!.conninfo,
      pgPassword: pg!.password,
      workers: o.appWorkers ?? 8,
      snapshotMs: o.snapshotMs ?? 1000,
      exfiltration: attacks.filter((a) => a.kind === 'exfiltration').map((a) => ({ startMs: t0 + a.startMs, endMs: t0 + a.endMs })),
      exfilEvery: o.exfil?.every ?? 8,
      exfilRows: o.exfil?.rows ?? 30,
      wrap: wrap('app', hosts.app),
    });
  } catch (e) {
    await teardown();
    throw e;
  }
  const [pgS, redisS, nginxS, appS] = [pg!, redis!, nginx!, app];
  if (Date.now() < t0) await sleep(t0 - Date.now());

  // the load: one wrk per phase, started by a timer at its offset
  const runs: WrkRun[] = [];
  const timers: NodeJS.Timeout[] = [];
  schedule.forEach((phase, i) => {
    timers.push(
      setTimeout(() => {
        const args = wrkArgs(url, files.loadLua, phase, seed * 1000 + i, catalogue);
        runs.push(startWrk(hosts.client, `load-${i}`, args, phase, wrap('load', hosts.client)));
      }, Math.max(0, t0 + phase.startMs - Date.now())),
    );
  });

  const ctx: AttackContext = {
    client: hosts.client,
    attacker: hosts.attacker,
    url,
    luaScript: files.loadLua,
    catalogue,
    cache: { ip: hosts.cache.ip, port: PORTS.redis },
    dir: runDir,
    seed,
    abuse: { connections: o.abuse?.connections ?? 4, rate: o.abuse?.rate ?? 250 },
    wrap: o.wrap && ((what, argv) => o.wrap!(what as 'cache-abuse' | 'rogue-replica', what === 'cache-abuse' ? hosts.client : hosts.attacker, argv)),
  };
  const scheduled: ScheduledAttack[] = attacks.filter((a) => a.kind !== 'exfiltration').map((a) => scheduleAttack(a, t0, ctx));

  const processes = (): Record<Tier | 'load' | 'attack', number[]> => ({
    nginx: descendants(nginxS.pid),
    app: [appS.pid],
    redis: descendants(redisS.pid), // its forks (full sync to a replica) included
    postgres: descendants(pgS.pid),
    load: runs.filter((r) => r.proc.code === undefined).map((r) => r.proc.pid),
    attack: scheduled.flatMap((s) => s.pids()),
  });

  const exfilEvidence = (a: AttackSpec, stoppedAt: number): AttackEvidence => {
    const startMs = t0 + a.startMs;
    const endMs = Math.min(t0 + a.endMs, stoppedAt);
    const c = (name: string) => appS.counterAt(name, endMs + 1000) - appS.counterAt(name, startMs);
    const single = attacks.filter((x) => x.kind === 'exfiltration').length === 1; // first/last span every window
    const fin = appS.final()?.counters ?? appS.snapshots.at(-1)?.counters ?? {};
    return {
      kind: 'exfiltration',
      startMs,
      endMs,
      exfil: {
        requests: single ? fin.exfil_requests ?? 0 : c('exfil_requests'),
        rows: single ? fin.exfil_rows ?? 0 : c('exfil_rows'),
        bytes: single ? fin.exfil_bytes ?? 0 : c('exfil_bytes'),
        firstMs: fin.exfil_first_ms ?? 0,
        lastMs: fin.exfil_last_ms ?? 0,
      },
    };
  };

  let stopping: Promise<WebstackStats> | undefined;
  let finalEntries: AccessEntry[] | undefined;
  let resolveFinished!: (s: WebstackStats) => void;
  const finished = new Promise<WebstackStats>((r) => (resolveFinished = r));
  const autoStop = setTimeout(() => void stop(), Math.max(0, t0 + durationMs - Date.now()));

  const stop = (): Promise<WebstackStats> =>
    (stopping ??= (async () => {
      const stoppedAt = Date.now();
      clearTimeout(autoStop);
      for (const t of timers) clearTimeout(t);
      const outcomes = await Promise.all(scheduled.map(async (s) => (await s.cancel(), s.outcome)));
      for (const r of runs) r.stop();
      const wrk = (await Promise.all(runs.map((r) => Promise.race([r.result, sleep(5000).then(() => (signalGroup(r.proc.pid, 'SIGKILL'), r.result))])))).filter(
        (r): r is WrkResult => r !== undefined,
      );
      // counters while the servers still run; a failure here must not leave daemons behind
      let redisStats: WebstackStats['redis'] = { keyspaceHits: 0, keyspaceMisses: 0, totalCommands: 0, syncFull: 0, expiredKeys: 0, evictedKeys: 0, keys: 0 };
      let pgStats: WebstackStats['postgres'] = { xactCommit: 0, tupReturned: 0, tupFetched: 0, tupInserted: 0, tupUpdated: 0, statements: [] };
      try {
        if (o.serverStats !== false) {
          redisStats = redisSummary(redisS);
          pgStats = await pgSummary(pgS);
        }
      } catch (e) {
        process.emitWarning(`webstack: could not read redis/postgresql statistics: ${(e as Error).message}`);
      }
      await nginxS.stop();
      const appFinal = await appS.stop();
      finalEntries = nginxS.entries(); // the log goes with the run's folder
      const nginxStats = nginxSummary(finalEntries);
      await redisS.stop();
      await pgS.stop();
      if (!o.keepWorkDir) rmSync(runDir, { recursive: true, force: true });

      const evidence: AttackEvidence[] = [];
      const labels: AttackLabel[] = [];
      attacks.forEach((a) => {
        const ev = a.kind === 'exfiltration' ? (t0 + a.startMs < stoppedAt ? exfilEvidence(a, stoppedAt) : undefined) : outcomes[scheduled.findIndex((s) => s.spec === a)];
        if (!ev) return;
        evidence.push(ev);
        const meta = ATTACKS[a.kind];
        const host = meta.actor === 'app' ? hosts.app : meta.actor === 'client' ? hosts.client : hosts.attacker;
        labels.push({ kind: a.kind, startMs: ev.startMs, endMs: ev.endMs, plannedStartMs: t0 + a.startMs, plannedEndMs: t0 + a.endMs, addsEdge: meta.addsEdge, actor: meta.actor, host: host.name, seed, runId });
      });
      if (o.labelsFile && labels.length) appendFileSync(o.labelsFile, labels.map((l) => JSON.stringify(l) + '\n').join(''));
      const stats: WebstackStats = { t0, stoppedAt, wrk, app: appFinal, nginx: nginxStats, redis: redisStats, postgres: pgStats, attacks: evidence, labels };
      resolveFinished(stats);
      return stats;
    })().catch(async (e) => {
      // whatever failed, nothing may stay running
      for (const pid of [...runs.map((r) => r.proc.pid), ...scheduled.flatMap((s) => s.pids())]) signalGroup(pid, 'SIGKILL');
      await teardown();
      throw e;
    }));

  return {
    t0,
    runId,
    seed,
    runDir,
    url,
    hosts,
    pids: { nginx: nginxS.pid, app: appS.pid, redis: redisS.pid, postgres: pgS.pid },
    processes,
    threadNames: (tier) => threadNames(processes()[tier]),
    app: appS,
    nginxEntries: () => finalEntries ?? nginxS.entries(),
    redisInfo: (section) => redisS.info(section),
    pgQuery: (sql) => pgS.query(sql),
    schedule,
    stop,
    finished,
  };
}
