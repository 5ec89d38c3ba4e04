/**
 * The web-stack testbed for real: nginx, the C application, redis and postgresql from Debian's
 * packages, each on its own network-namespace host, driven by wrk with a varying schedule;
 * then three attacks in turn. Checks that requests flowed through every tier (wrk's summary,
 * nginx's access log, redis INFO, pg_stat_statements, the app's counters), that the app's
 * threads carry their names, and that each attack shows what makes it one.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHosts, type NsNet } from './netns.js';
import { killAllWebstack } from '../../eval/webstack/proc.js';
import { webstackUnavailable } from '../../eval/webstack/requirements.js';
import { startWebstack, type AttackLabel, type Webstack, type WebstackStats } from '../../eval/webstack/testbed.js';

const why = webstackUnavailable();
if (why) console.warn(`web-stack testbed test skipped: ${why}`);

// the run, in ms after t0: a baseline, then each attack alone with the normal load going on
const BASELINE = { startMs: 6_000, endMs: 15_000 }; // after the cache has warmed a little
const ABUSE = { startMs: 16_000, endMs: 21_000 };
const EXFIL = { startMs: 22_000, endMs: 27_000 };
const ROGUE = { startMs: 28_000, endMs: 32_000 };
const DURATION = 33_000;

describe.skipIf(why !== undefined)('web-stack testbed on four namespace hosts', () => {
  let net: NsNet | undefined;
  let stack: Webstack | undefined;
  let stats: WebstackStats;
  let dir: string;
  let labelsFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dag-webstack-test-'));
    chmodSync(dir, 0o711); // postgresql runs as its own user and must reach its data folder
    labelsFile = join(dir, 'labels.jsonl');
    net = makeHosts(['web', 'app', 'cache', 'db']);
    const [web, app, cache, db] = net.hosts;
    stack = await startWebstack({
      hosts: { web, app, cache, db },
      seed: 7,
      durationMs: DURATION,
      attacks: [
        { kind: 'cache-abuse', ...ABUSE },
        { kind: 'exfiltration', ...EXFIL },
        { kind: 'rogue-replica', ...ROGUE },
      ],
      labelsFile,
      workDir: dir,
    });
  }, 60_000);

  afterAll(async () => {
    await stack?.stop().catch(() => undefined);
    killAllWebstack();
    net?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** an app counter's growth over a window of the run */
  const delta = (name: string, w: { startMs: number; endMs: number }) =>
    stack!.app.counterAt(name, stack!.t0 + w.endMs) - stack!.app.counterAt(name, stack!.t0 + w.startMs);

  it('runs every tier in its own namespace host, with the app threads named', () => {
    const s = stack!;
    const netnsOf = (pid: number) => statSync(`/proc/${pid}/ns/net`).ino;
    expect(netnsOf(s.pids.nginx)).toBe(statSync(`/run/netns/${s.hosts.web.ns}`).ino);
    expect(netnsOf(s.pids.app)).toBe(statSync(`/run/netns/${s.hosts.app.ns}`).ino);
    expect(netnsOf(s.pids.redis)).toBe(statSync(`/run/netns/${s.hosts.cache.ns}`).ino);
    expect(netnsOf(s.pids.postgres)).toBe(statSync(`/run/netns/${s.hosts.db.ns}`).ino);

    const appThreads = s.threadNames('app');
    expect(appThreads.filter((n) => n === 'http-worker')).toHaveLength(8);
    for (const n of ['webstack-app', 'http-poll', 'top-refresh', 'app-stats']) expect(appThreads).toContain(n);
    const p = s.processes();
    expect(p.nginx.length).toBeGreaterThanOrEqual(3); // master and two workers
    expect(p.postgres.length).toBeGreaterThanOrEqual(1 + 9); // postmaster, its helpers, 9 app sessions
    expect(s.threadNames('nginx').filter((n) => n === 'nginx')).toHaveLength(p.nginx.length);
  });

  it('moves requests through nginx, the app, redis and postgresql under a varying load', async () => {
    stats = await stack!.finished;
    const load = stats.wrk.filter((w) => w.label.startsWith('load-'));
    const sent = load.reduce((a, w) => a + w.requests, 0);
    const errors = load.reduce((a, w) => a + w.errors.connect + w.errors.timeout + w.non2xx, 0);
    console.log(`webstack: ${load.length} wrk runs, ${sent} requests, nginx logged ${stats.nginx.requests}; app ${JSON.stringify(stats.app?.counters)}`);
    console.log(`webstack: redis ${JSON.stringify(stats.redis)}; postgres top statements ${JSON.stringify(stats.postgres.statements.slice(0, 6))}`);
    expect(load.length).toBeGreaterThanOrEqual(5);
    expect(sent).toBeGreaterThan(3000);
    expect(errors).toBeLessThan(sent * 0.01);

    // nginx saw the load's requests and the abuse's; every endpoint was used
    const abuse = stats.attacks.reduce((a, ev) => a + (ev.wrk?.requests ?? 0), 0);
    expect(stats.nginx.requests).toBeGreaterThanOrEqual(sent + abuse);
    expect(stats.nginx.requests).toBeLessThan((sent + abuse) * 1.02 + 50);
    for (const ep of ['GET /product', 'GET /category', 'GET /user', 'POST /order', 'GET /top']) expect(stats.nginx.byEndpoint[ep]).toBeGreaterThan(0);

    // the app answered them all from redis or postgresql
    const c = stats.app!.counters;
    expect(c.http_requests).toBe(stats.nginx.requests);
    expect(c.redis_hits).toBeGreaterThan(0);
    expect(c.redis_misses).toBeGreaterThan(0);
    expect(c.status_5xx).toBe(0);
    expect(stats.redis.keyspaceHits).toBeGreaterThanOrEqual(c.redis_hits);
    expect(stats.redis.keyspaceMisses).toBeGreaterThanOrEqual(c.redis_misses);
    const calls = (re: RegExp) => stats.postgres.statements.filter((s) => re.test(s.query)).reduce((a, s) => a + s.calls, 0);
    expect(calls(/FROM products WHERE id/)).toBeGreaterThan(100);
    expect(calls(/INSERT INTO orders/)).toBe(c.req_order);
    expect(calls(/u\.email/)).toBeGreaterThan(0); // the user profile

    // the load varied: requests per second over the baseline swing by more than a factor 1.5
    const perSec = new Map<number, number>();
    for (const e of stack!.nginxEntries()) {
      const s = Math.floor((e.t - stack!.t0) / 1000);
      if (s >= 1 && s < ABUSE.startMs / 1000 - 1) perSec.set(s, (perSec.get(s) ?? 0) + 1);
    }
    const rates = [...perSec.values()];
    expect(Math.max(...rates) / Math.min(...rates)).toBeGreaterThan(1.5);
  });

  it('cache abuse: postgresql queries per redis hit jump, from the same client program', () => {
    const ratio = (w: typeof BASELINE) => delta('pg_queries', w) / Math.max(1, delta('redis_hits', w));
    const base = ratio(BASELINE);
    const attack = ratio({ startMs: ABUSE.startMs + 1000, endMs: ABUSE.endMs });
    console.log(`cache abuse: pg queries per redis hit ${base.toFixed(3)} → ${attack.toFixed(3)}`);
    expect(attack).toBeGreaterThan(base * 2);
    const ev = stats.attacks.find((a) => a.kind === 'cache-abuse')!;
    expect(ev.wrk!.requests).toBeGreaterThan(200);
  });

  it('exfiltration: bytes from postgresql per request and bytes per product response grow', () => {
    const perReq = (w: typeof BASELINE) => delta('pg_bytes_in', w) / Math.max(1, delta('http_requests', w));
    const base = perReq(BASELINE);
    const attack = perReq(EXFIL);
    const entries = stack!.nginxEntries().filter((e) => e.uri.startsWith('/product/') && e.status === 200);
    const bodyPer = (w: typeof BASELINE) => {
      const es = entries.filter((e) => e.t >= stack!.t0 + w.startMs && e.t < stack!.t0 + w.endMs);
      return es.reduce((a, e) => a + e.bodyBytes, 0) / Math.max(1, es.length);
    };
    console.log(`exfiltration: pg bytes per request ${base.toFixed(0)} → ${attack.toFixed(0)}; product body ${bodyPer(BASELINE).toFixed(0)} → ${bodyPer(EXFIL).toFixed(0)} B`);
    expect(attack).toBeGreaterThan(base * 1.5);
    expect(bodyPer(EXFIL)).toBeGreaterThan(bodyPer(BASELINE) * 1.5);
    const ev = stats.attacks.find((a) => a.kind === 'exfiltration')!.exfil!;
    expect(ev.requests).toBeGreaterThan(20);
    expect(ev.firstMs).toBeGreaterThanOrEqual(stack!.t0 + EXFIL.startMs);
    expect(ev.lastMs).toBeLessThan(stack!.t0 + EXFIL.endMs);
    // only inside its window
    expect(delta('exfil_requests', BASELINE)).toBe(0);
  });

  it('rogue replica: a redis-server on another host syncs the whole cache', () => {
    const ev = stats.attacks.find((a) => a.kind === 'rogue-replica')!.replica!;
    console.log(`rogue replica: ${JSON.stringify(ev)}`);
    expect(ev.linkUp).toBe(true);
    expect(ev.keys).toBeGreaterThan(100);
    expect(stats.redis.syncFull).toBeGreaterThanOrEqual(1);
  });

  it('labels each attack with its start and end in the JSON Lines file', () => {
    const labels = readFileSync(labelsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AttackLabel);
    expect(labels.map((l) => l.kind)).toEqual(['cache-abuse', 'exfiltration', 'rogue-replica']);
    expect(labels.map((l) => l.addsEdge)).toEqual([false, false, true]);
    const t0 = stack!.t0;
    for (const [l, w] of [[labels[0], ABUSE], [labels[1], EXFIL], [labels[2], ROGUE]] as const) {
      // the labels are what the attackers recorded; on a busy machine a process notices its end late
      expect(Math.abs(l.startMs - (t0 + w.startMs))).toBeLessThan(1500);
      expect(Math.abs(l.endMs - (t0 + w.endMs))).toBeLessThan(4000);
      expect(l.plannedStartMs).toBe(t0 + w.startMs);
    }
  });
});
