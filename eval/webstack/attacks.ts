/**
 * Attacks on the web stack, each active in a window given as offsets from t0:
 *   exfiltration   compromised application code (the app's --attack flag, so nothing outside
 *                  the application starts it): every Nth product request also reads customer
 *                  rows from postgresql and returns them hidden in the response through nginx.
 *                  Same processes, threads and connections: only byte ratios change.
 *   cache-abuse    the client side sends product requests with uniformly random ids over four
 *                  times the catalogue, so almost all miss redis (missing products are never
 *                  cached) and go to postgresql. Same program (wrk), same script and host as the
 *                  normal load: only the postgresql/redis ratio and the 404 share change.
 *   rogue-replica  an attacker's redis-server on another host attaches to the cache as a
 *                  replica (REPLICAOF): full sync of every cached record, then the live stream
 *                  of writes. New process and connection: this one adds edges.
 * The runner-driven ones (cache-abuse, rogue-replica) are started and stopped here by timers;
 * their label times are when the attacker process was started and when it had exited.
 */
import { join } from 'node:path';
import type { NsHost } from '../../cli/netns.js';
import { startWrk, wrkArgs, type Catalogue, type LoadPhase, type WrkResult } from './load.js';
import { startRedis, type Redis } from './redis.js';
import { sleep } from './proc.js';

export type AttackKind = 'exfiltration' | 'cache-abuse' | 'rogue-replica';

export const ATTACKS: Record<AttackKind, { actor: 'app' | 'client' | 'attacker'; addsEdge: boolean; what: string }> = {
  exfiltration: { actor: 'app', addsEdge: false, what: 'compromised app endpoint reads customer rows from postgresql and leaks them in product responses' },
  'cache-abuse': { actor: 'client', addsEdge: false, what: 'requests for random product ids that all miss redis and hit postgresql' },
  'rogue-replica': { actor: 'attacker', addsEdge: true, what: "attacker's redis-server replicates the cache (REPLICAOF) from another host" },
};

export interface AttackSpec {
  kind: AttackKind;
  /** ms after t0 */
  startMs: number;
  endMs: number;
}

export interface AttackLabel {
  kind: AttackKind;
  /** ms since the epoch when the attack began and ended */
  startMs: number;
  endMs: number;
  plannedStartMs: number;
  plannedEndMs: number;
  addsEdge: boolean;
  actor: 'app' | 'client' | 'attacker';
  host: string;
  seed: number;
  runId: string;
}

export interface AttackEvidence {
  kind: AttackKind;
  startMs: number;
  endMs: number;
  /** cache-abuse: the attacking wrk's summary */
  wrk?: WrkResult;
  /** rogue-replica: what the attacker's replica held when it was stopped */
  replica?: { linkUp: boolean; linkUpAfterMs?: number; keys: number; replOffset: number };
  /** exfiltration: the app's counters for the window */
  exfil?: { requests: number; rows: number; bytes: number; firstMs: number; lastMs: number };
}

export interface AttackContext {
  client: NsHost;
  attacker: NsHost;
  url: string;
  luaScript: string;
  catalogue: Catalogue;
  cache: { ip: string; port: number };
  dir: string;
  seed: number;
  abuse: { connections: number; rate: number };
  wrap?: (what: string, argv: string[]) => string[];
}

export interface ScheduledAttack {
  spec: AttackSpec;
  /** resolves when the attack has ended (undefined if it never began) */
  outcome: Promise<AttackEvidence | undefined>;
  /** pids of the attacker's processes while it runs */
  pids(): number[];
  /** end it now (or drop it if it has not begun) */
  cancel(): Promise<void>;
}

/** The cache-abuse phase: product requests only, uniform over 4× the catalogue. */
export function abusePhase(ctx: AttackContext, durationMs: number): LoadPhase {
  return {
    startMs: 0,
    durationMs,
    connections: ctx.abuse.connections,
    rate: ctx.abuse.rate,
    zipfS: 0,
    productRange: ctx.catalogue.products * 4,
    mix: { product: 1, category: 0, user: 0, order: 0, top: 0 },
  };
}

interface Running {
  pids(): number[];
  end(): Promise<Partial<AttackEvidence>>;
}

async function beginCacheAbuse(ctx: AttackContext, durationMs: number, n: number): Promise<Running> {
  const phase = abusePhase(ctx, durationMs + 60_000); // ended by end(), not by its own timer
  const args = wrkArgs(ctx.url, ctx.luaScript, phase, ctx.seed * 1000 + 900 + n, ctx.catalogue);
  const run = startWrk(ctx.client, `cache-abuse-${n}`, args, phase, ctx.wrap && ((a) => ctx.wrap!('cache-abuse', a)));
  return {
    pids: () => (run.proc.code === undefined ? [run.proc.pid] : []),
    end: async () => {
      run.stop();
      return { wrk: await run.result };
    },
  };
}

async function beginRogueReplica(ctx: AttackContext, n: number, startedAt: number): Promise<Running> {
  const replica: Redis = await startRedis({
    host: ctx.attacker,
    dir: join(ctx.dir, `rogue-replica-${n}`),
    port: 16379 + n,
    public: false,
    replicaOf: `${ctx.cache.ip}:${ctx.cache.port}`,
    wrap: ctx.wrap && ((a) => ctx.wrap!('rogue-replica', a)),
  });
  let linkUpAfterMs: number | undefined;
  let watching = true;
  const watch = (async () => {
    while (watching && linkUpAfterMs === undefined) {
      try {
        if (replica.info('replication').master_link_status === 'up') linkUpAfterMs = Date.now() - startedAt;
      } catch {
        /* not answering yet */
      }
      await sleep(200);
    }
  })();
  return {
    pids: () => (replica.proc.code === undefined ? [replica.pid] : []),
    end: async () => {
      watching = false;
      await watch;
      let ev: AttackEvidence['replica'] = { linkUp: false, keys: 0, replOffset: 0 };
      try {
        const info = replica.info('replication');
        const keys = Number(replica.cli(['DBSIZE']).trim()) || 0;
        ev = { linkUp: info.master_link_status === 'up', linkUpAfterMs, keys, replOffset: Number(info.slave_repl_offset ?? 0) };
      } catch {
        /* the replica died: report what we have */
      }
      await replica.stop();
      return { replica: ev };
    },
  };
}

let serial = 0;

/** Start the attack at t0 + startMs and end it at t0 + endMs (runner-driven kinds only). */
export function scheduleAttack(spec: AttackSpec, t0: number, ctx: AttackContext): ScheduledAttack {
  const n = serial++;
  let running: Running | undefined;
  let begun: Promise<void> | undefined;
  let startedAt = 0;
  let finish!: (e: AttackEvidence | undefined) => void;
  const outcome = new Promise<AttackEvidence | undefined>((r) => (finish = r));
  let endTimer: NodeJS.Timeout | undefined;
  let ending: Promise<void> | undefined;

  const end = () =>
    (ending ??= (async () => {
      if (endTimer) clearTimeout(endTimer);
      await begun?.catch(() => undefined);
      if (!running) return finish(undefined);
      const ev = await running.end();
      finish({ kind: spec.kind, startMs: startedAt, endMs: Date.now(), ...ev });
    })());

  const startTimer = setTimeout(() => {
    startedAt = Date.now();
    const durationMs = t0 + spec.endMs - startedAt;
    begun = (async () => {
      running = spec.kind === 'cache-abuse' ? await beginCacheAbuse(ctx, durationMs, n) : await beginRogueReplica(ctx, n, startedAt);
    })();
    begun.catch((e) => {
      process.emitWarning(`webstack attack ${spec.kind} did not start: ${(e as Error).message}`);
      void end();
    });
    endTimer = setTimeout(() => void end(), Math.max(0, durationMs));
  }, Math.max(0, t0 + spec.startMs - Date.now()));

  return {
    spec,
    outcome,
    pids: () => running?.pids() ?? [],
    cancel: async () => {
      clearTimeout(startTimer);
      await end();
    },
  };
}
