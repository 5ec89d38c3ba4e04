/**
 * The LTE core testbed (eval/epc, workload/epc) on three network-namespace hosts — h1: eNB
 * with its UEs; h2: MME + HSS; h3: SGW + PGW — real processes talking TCP and UDP across
 * the bridge. A normal run must show attach with authentication, GTP-U both ways, SGW–PGW
 * heartbeats, an idle → paging → service request cycle and a real PGW restart with its
 * re-attach storm; then one short run per attack of the paper's section 6.2 must show what
 * makes it an attack, and be labelled with its start and end.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHosts, netnsUnavailable, type NsNet } from '../../cli/netns.js';
import { buildEpc, type EpcBinaries } from '../../eval/epc/build.js';
import {
  EPC_THREADS, killAllEpc, startEpc, type AttackKind, type AttackLabel, type EpcComponent, type EpcOptions, type EpcStats, type EpcTestbed,
} from '../../eval/epc/testbed.js';

const why = netnsUnavailable();
if (why) console.warn(`EPC testbed test skipped: ${why}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const noStrace = (() => {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
})();

/** busy enough that a few seconds hold attaches, idle UEs and pages */
const TRAFFIC = {
  ues: 128, arrivalRate: 3, ratePeriodMs: 20_000, burstRate: 0.05, sessionMedianMs: 7000, volumeXm: 8000, volumeCap: 300_000,
  thinkMs: 250, idleTimeoutMs: 1200, idleMedianMs: 1500, pushRate: 3,
};

describe.skipIf(why !== undefined)('LTE core testbed across three namespace hosts', () => {
  let net: NsNet;
  let bins: EpcBinaries;
  let dir: string;
  const started: EpcTestbed[] = [];
  /** final counters of each run, printed at the end for the report */
  const figures: Record<string, EpcStats> = {};

  beforeAll(() => {
    bins = buildEpc();
    net = makeHosts(['h1', 'h2', 'h3']);
    dir = mkdtempSync(join(tmpdir(), 'dag-epc-'));
  });

  afterAll(async () => {
    await Promise.all(started.map((t) => t.stop().catch(() => undefined)));
    killAllEpc();
    net?.cleanup();
    if (process.env.EPC_FIGURES) console.log(`EPC testbed figures:\n${JSON.stringify(figures)}`);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const options = (name: string, extra: Partial<EpcOptions> = {}): EpcOptions => {
    const [h1, h2, h3] = net.hosts;
    return {
      hosts: { enb: h1, mme: h2, hss: h2, sgw: h3, pgw: h3 },
      binaries: bins,
      seed: 11,
      traffic: TRAFFIC,
      echoIntervalMs: 1000,
      echoMisses: 2,
      pgw: { memMb: 32, restartDowntimeMs: 2500 },
      statsEveryMs: 250,
      stateDir: join(dir, name),
      labelsFile: join(dir, 'labels.jsonl'),
      runId: name,
      ...extra,
    };
  };

  const start = async (o: EpcOptions) => {
    const tb = await startEpc(o);
    started.push(tb);
    return tb;
  };

  /** every program ended on SIGTERM with exit 0, printed its stats and left no process behind */
  const stopClean = async (tb: EpcTestbed): Promise<EpcStats> => {
    const pids = Object.values(tb.pids()) as number[];
    const s = await tb.stop();
    figures[tb.runId] = s;
    const components = Object.keys(tb.pids()) as EpcComponent[];
    expect(tb.exitCodes(), components.map((c) => `${c}: ${tb.stderr(c).slice(-500)}`).join('\n')).toEqual(Object.fromEntries(components.map((c) => [c, 0])));
    for (const c of components) expect(s[c], `${c} printed no stats`).toBeDefined();
    for (const pid of pids) expect(() => process.kill(-pid, 0), `process group ${pid} still alive`).toThrow();
    return s;
  };

  const n = (s: EpcStats, c: EpcComponent, k: string) => s[c]?.counters[k] ?? 0;
  /** a counter's growth over [from, to] (epoch ms), from the periodic snapshots */
  const delta = (tb: EpcTestbed, c: EpcComponent, k: string, from: number, to: number) => tb.counterAt(c, k, to) - tb.counterAt(c, k, from);
  const labelOf = (runId: string, kind: AttackKind): AttackLabel => {
    const all = readFileSync(join(dir, 'labels.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AttackLabel);
    const mine = all.filter((l) => l.runId === runId && l.kind === kind);
    expect(mine).toHaveLength(1);
    return mine[0];
  };
  /** the label is the attacker's own record, within a tick of the schedule */
  const checkLabel = (tb: EpcTestbed, l: AttackLabel, startMs: number, endMs: number) => {
    expect(l.plannedStartMs).toBe(tb.t0 + startMs);
    expect(l.plannedEndMs).toBe(tb.t0 + endMs);
    expect(l.startMs - l.plannedStartMs).toBeGreaterThanOrEqual(0);
    expect(l.startMs - l.plannedStartMs).toBeLessThan(150);
    expect(l.endMs - l.plannedEndMs).toBeGreaterThanOrEqual(0);
    expect(l.endMs - l.plannedEndMs).toBeLessThan(150);
  };

  it('normal run: attach with authentication, GTP-U, heartbeats, idle → paging, a PGW restart', async () => {
    const tb = await start(options('normal'));
    await sleep(3000);
    for (const c of ['enb', 'mme', 'hss', 'sgw', 'pgw'] as const) {
      const names = tb.threadNames(c);
      for (const t of EPC_THREADS[c]) expect(names, `${c} threads`).toContain(t);
    }
    await sleep(tb.t0 + 8000 - Date.now());
    const restartAt = Date.now();
    tb.restartPgw(); // a relocation by the cloud's resource manager: normal behaviour
    await sleep(tb.t0 + 18_000 - Date.now());
    const s = await stopClean(tb);
    const msg = JSON.stringify(s, null, 1);

    // attach: S1AP initial UE message, S6a authentication and location update, sessions
    expect(n(s, 'mme', 'attach_req'), msg).toBeGreaterThan(15);
    expect(n(s, 'mme', 'auth_ok'), msg).toBeGreaterThan(10);
    expect(n(s, 'hss', 'air'), msg).toBe(n(s, 'mme', 'attach_req'));
    expect(n(s, 'hss', 'air'), msg).toBeGreaterThanOrEqual(n(s, 'mme', 'auth_vectors'));
    expect(n(s, 'hss', 'ulr'), msg).toBeGreaterThan(10);
    expect(n(s, 'hss', 'db.reads'), msg).toBeGreaterThan(20);
    expect(n(s, 'hss', 'db.writes'), msg).toBeGreaterThan(20);
    expect(n(s, 'mme', 'session_up'), msg).toBeGreaterThan(10);
    expect(n(s, 'enb', 'ue.attached'), msg).toBeGreaterThan(10);
    expect(n(s, 'pgw', 'sessions_created'), msg).toBeGreaterThan(10);
    expect(n(s, 'mme', 's6a.tx_bytes'), msg).toBe(n(s, 'hss', 's6a.rx_bytes'));
    expect(n(s, 'enb', 's1_mme.tx_bytes'), msg).toBe(n(s, 'mme', 's1_mme.rx_bytes'));
    // GTP-U both ways, eNB <-> SGW <-> PGW, nothing lost on the bridge
    expect(n(s, 'enb', 's1u.tx_msgs'), msg).toBeGreaterThan(100);
    expect(n(s, 'sgw', 's1u.rx_msgs'), msg).toBe(n(s, 'enb', 's1u.tx_msgs'));
    expect(n(s, 'pgw', 's5u.rx_msgs'), msg).toBeGreaterThan(0.5 * n(s, 'sgw', 's5u.tx_msgs')); // less what went to the restarting PGW
    expect(n(s, 'enb', 's1u.rx_bytes'), msg).toBeGreaterThan(100_000);
    // downlink goes on for a moment after the eNB stops first
    expect(n(s, 'enb', 's1u.rx_msgs'), msg).toBeLessThanOrEqual(n(s, 'sgw', 's1u.tx_msgs'));
    expect(n(s, 'enb', 's1u.rx_msgs'), msg).toBeGreaterThan(0.8 * n(s, 'sgw', 's1u.tx_msgs'));
    expect(n(s, 'enb', 's1u_rogue.tx_msgs'), msg).toBe(0);
    // heartbeats every second
    expect(n(s, 'sgw', 'echo_req'), msg).toBeGreaterThanOrEqual(15);
    expect(n(s, 'sgw', 'echo_rsp'), msg).toBeGreaterThanOrEqual(10);
    // idle, then downlink for the idle UE: DDN, paging, service request, buffered data delivered
    expect(n(s, 'mme', 'idle'), msg).toBeGreaterThan(5);
    expect(n(s, 'sgw', 'dl_buffered'), msg).toBeGreaterThan(0);
    expect(n(s, 'sgw', 'ddn_on_data'), msg).toBeGreaterThan(0);
    expect(n(s, 'sgw', 'ddn_tx'), msg).toBe(n(s, 'sgw', 'ddn_on_data'));
    expect(n(s, 'mme', 'paging'), msg).toBeGreaterThan(0);
    expect(n(s, 'mme', 'service_req_paged'), msg).toBeGreaterThan(0);
    expect(n(s, 'sgw', 'dl_flushed'), msg).toBeGreaterThan(0);
    expect(n(s, 'mme', 'service_req'), msg).toBeGreaterThan(0); // UE-initiated too
    expect(n(s, 'mme', 'detach'), msg).toBeGreaterThan(0);
    // the PGW restart: state files written, memory released, heartbeat lost, MME re-attaches
    expect(n(s, 'pgw', 'restarts'), msg).toBe(1);
    expect(n(s, 'pgw', 'recovery'), msg).toBe(2);
    expect(n(s, 'pgw', 'state_file.writes'), msg).toBeGreaterThanOrEqual(2);
    expect(n(s, 'pgw', 'mem.released_bytes'), msg).toBe(32 << 20);
    expect(n(s, 'sgw', 'pgw_restart_notify'), msg).toBeGreaterThanOrEqual(1);
    expect(n(s, 'sgw', 'pgw_restart_fake'), msg).toBe(0);
    expect(n(s, 'sgw', 'ddn_false'), msg).toBe(0);
    expect(n(s, 'mme', 'pgw_restart_rx'), msg).toBeGreaterThanOrEqual(1);
    expect(n(s, 'mme', 'paging_reattach'), msg).toBeGreaterThan(0);
    expect(n(s, 'enb', 'ue.paged_reattach'), msg).toBeGreaterThan(0);
    expect(delta(tb, 'mme', 'session_up', restartAt + 2500, tb.t0 + 18_000), 'sessions come back after the restart').toBeGreaterThan(0);
    expect(tb.labels()).toEqual([]);
  }, 40_000);

  it('SGW IP modification: UEs still attach via the MME, but the SGW gets no uplink GTP-U from the eNB', async () => {
    const [S, E] = [3000, 6500];
    const tb = await start(options('sgw-ip', { attacks: [{ kind: 'sgw-ip-modification', startMs: S, endMs: E }] }));
    await sleep(tb.t0 + 8500 - Date.now());
    const s = await stopClean(tb);
    const l = labelOf('sgw-ip', 'sgw-ip-modification');
    checkLabel(tb, l, S, E);
    const [a, b] = [l.startMs + 300, l.endMs];
    const msg = JSON.stringify(s, null, 1);
    expect(tb.counterAt('sgw', 's1u.rx_msgs', a), 'uplink before the attack').toBeGreaterThan(0);
    expect(delta(tb, 'sgw', 's1u.rx_msgs', a, b), 'uplink at the SGW during the attack').toBe(0);
    expect(delta(tb, 'enb', 's1u.tx_msgs', a, b)).toBe(0);
    expect(delta(tb, 'enb', 's1u_rogue.tx_msgs', a, b), 'uplink to the rogue gateway').toBeGreaterThan(10);
    expect(n(s, 'rogueGw', 'gtpu.rx_msgs'), msg).toBe(n(s, 'enb', 's1u_rogue.tx_msgs'));
    // the control plane goes on as usual: S1AP with the MME, authentication, sessions
    expect(delta(tb, 'mme', 's1_mme.rx_msgs', a, b)).toBeGreaterThan(10);
    expect(delta(tb, 'mme', 'auth_ok', a, b)).toBeGreaterThan(0);
    expect(delta(tb, 'mme', 'session_up', a, b)).toBeGreaterThan(0);
    expect(delta(tb, 'sgw', 'sessions_created', a, b)).toBeGreaterThan(0);
    // and the SGW hears from the eNB again once it is over
    expect(n(s, 'sgw', 's1u.rx_msgs') - tb.counterAt('sgw', 's1u.rx_msgs', b + 300), msg).toBeGreaterThan(0);
    // the attack does not announce itself (a log line would be a new edge in the trace)
    expect(tb.stderr('enb')).not.toMatch(/attack/);
  }, 30_000);

  it('false Downlink Data Notification: DDNs from the SGW with no downlink from the PGW behind them', async () => {
    const [S, E] = [3000, 6500];
    const tb = await start(options('false-ddn', { attacks: [{ kind: 'false-ddn', startMs: S, endMs: E }], falseDdnIntervalMs: 300 }));
    await sleep(tb.t0 + 7500 - Date.now());
    const s = await stopClean(tb);
    const l = labelOf('false-ddn', 'false-ddn');
    checkLabel(tb, l, S, E);
    const [a, b] = [l.startMs, l.endMs + 100];
    const msg = JSON.stringify(s, null, 1);
    const ddn = delta(tb, 'sgw', 'ddn_tx', a, b);
    const onData = delta(tb, 'sgw', 'ddn_on_data', a, b);
    expect(delta(tb, 'sgw', 'ddn_false', a, b), msg).toBeGreaterThanOrEqual(8);
    expect(ddn - onData, 'DDNs with no downlink from the PGW').toBeGreaterThanOrEqual(8);
    expect(onData).toBeLessThanOrEqual(delta(tb, 'sgw', 'dl_buffered', a, b));
    expect(n(s, 'sgw', 'ddn_false'), msg).toBe(n(s, 'sgw', 'ddn_tx') - n(s, 'sgw', 'ddn_on_data'));
    expect(n(s, 'mme', 'ddn_rx'), msg).toBe(n(s, 'sgw', 'ddn_tx'));
    // the MME believes them: it pages the idle UEs, which come back for nothing
    expect(delta(tb, 'mme', 'paging', a, b)).toBeGreaterThan(onData);
    expect(delta(tb, 'enb', 'ue.paged', a, b + 500)).toBeGreaterThan(0);
    expect(n(s, 'sgw', 'ddn_false') + n(s, 'sgw', 'ddn_on_data'), msg).toBe(n(s, 'sgw', 'ddn_tx'));
  }, 30_000);

  it('purging subscribers\' context: a PGW restart notification with no PGW restart behind it', async () => {
    const [S, E] = [3000, 6000];
    const tb = await start(options('purge', { attacks: [{ kind: 'purge-context', startMs: S, endMs: E }] }));
    await sleep(tb.t0 + 7500 - Date.now());
    const s = await stopClean(tb);
    const l = labelOf('purge', 'purge-context');
    checkLabel(tb, l, S, E);
    const msg = JSON.stringify(s, null, 1);
    expect(n(s, 'sgw', 'pgw_restart_fake'), msg).toBe(1);
    expect(n(s, 'sgw', 'pgw_restart_notify'), msg).toBe(1);
    expect(n(s, 'mme', 'pgw_restart_rx'), msg).toBe(1);
    // the PGW never restarted: no state file written, no memory released, heartbeats fine
    expect(n(s, 'pgw', 'restarts'), msg).toBe(0);
    expect(n(s, 'pgw', 'recovery'), msg).toBe(1);
    expect(n(s, 'pgw', 'state_file.writes'), msg).toBe(0);
    expect(n(s, 'pgw', 'mem.released_bytes'), msg).toBe(0);
    expect(n(s, 'sgw', 'echo_missed'), msg).toBe(0);
    // yet the MME pages every UE it served, and they all attach again
    const paged = n(s, 'mme', 'paging_reattach');
    expect(paged, msg).toBeGreaterThan(5);
    expect(n(s, 'enb', 'paging_reattach_rx'), msg).toBe(paged);
    expect(n(s, 'enb', 'ue.paged_reattach'), msg).toBeGreaterThan(0.8 * paged);
    expect(delta(tb, 'mme', 'attach_req', l.startMs, l.endMs), msg).toBeGreaterThanOrEqual(0.8 * paged);
    expect(n(s, 'pgw', 'sessions_replaced'), msg).toBeGreaterThan(0);
    expect(tb.stderr('sgw')).not.toMatch(/attack/);
  }, 30_000);

  // A recorded run (every component under strace) froze after 5 minutes: TASK_RRC and
  // TASK_UE_SIM both slept in send() on the full "air" socketpair, each waiting for the other
  // to read. Here the eNB runs under strace with a PGW restart (and its re-attach storm) every
  // few seconds and heavy user data: traffic must still flow in the last quarter of the run.
  it.skipIf(noStrace)('keeps running under strace through frequent PGW restarts and re-attach storms', async () => {
    const D = 40_000;
    const traceFile = join(dir, 'enb-soak.strace');
    const tb = await start(options('soak', {
      traffic: { ...TRAFFIC, ues: 256, arrivalRate: 6, volumeXm: 40_000, volumeCap: 2_000_000, thinkMs: 150, pushRate: 6 },
      pgw: { memMb: 16, restartEveryMs: 5000, restartDowntimeMs: 1200 },
      echoIntervalMs: 500,
      statsEveryMs: 1000,
      readyTimeoutMs: 30_000,
      wrap: (c, _h, argv) => (c === 'enb' ? ['strace', '-f', '-qq', '-s', '16', '-o', traceFile, '--', ...argv] : argv),
    }));
    const q = [0.25, 0.5, 0.75].map((f) => tb.t0 + f * D);
    const sizes: number[] = [];
    for (const t of q) {
      await sleep(t - Date.now());
      sizes.push(statSync(traceFile).size);
    }
    await sleep(tb.t0 + D - Date.now());
    const end = Date.now() - 100;
    sizes.push(statSync(traceFile).size);
    const s = await stopClean(tb);
    const msg = JSON.stringify(s.enb, null, 1);
    expect(n(s, 'pgw', 'restarts'), msg).toBeGreaterThanOrEqual(4);
    expect(n(s, 'enb', 'paging_reattach_rx'), msg).toBeGreaterThan(0);
    // the eNB's user and control planes, in the last quarter
    for (const k of ['s1u.tx_msgs', 's1u.rx_msgs', 's1_mme.tx_msgs', 's1_mme.rx_msgs', 'uu.tx_msgs', 'uu.rx_msgs', 'ue.attached'])
      expect(delta(tb, 'enb', k, q[2], end), `${k} in the last quarter\n${msg}`).toBeGreaterThan(0);
    expect(delta(tb, 'mme', 'session_up', q[2], end), 'sessions in the last quarter').toBeGreaterThan(0);
    for (let i = 1; i < sizes.length; i++) expect(sizes[i], 'the trace keeps growing').toBeGreaterThan(sizes[i - 1]);
  }, 90_000);

  it('same seed, same schedule: every run above drew the same first UE arrivals and sessions', () => {
    // (the strace run above draws from a heavier traffic model: another schedule)
    const digests = Object.entries(figures).filter(([run]) => run !== 'soak').map(([, f]) => f.enb?.counters['ue.schedule_digest']);
    if (digests.length < 2) return; // run alone: nothing to compare
    expect(digests[0]).toBeGreaterThan(0);
    expect(new Set(digests).size, JSON.stringify(digests)).toBe(1);
  });
});
