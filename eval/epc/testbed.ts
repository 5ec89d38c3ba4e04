/**
 * Runs the LTE core testbed (workload/epc) across network-namespace hosts: HSS, PGW, SGW,
 * MME and eNB (with its simulated UEs), plus the attacker's rogue gateway when an attack
 * needs it. Each component is spawned in its host with spawnIn, in its own process group;
 * it prints a "ready" line, optional periodic "snapshot" lines and a final "stats" line
 * (JSON on stdout) with message/byte counters per interface and per event.
 *
 * Attacks are scheduled at start (offsets from t0, the moment startEpc was called) and
 * passed to the attacking program as `--attack kind:startEpochMs:endEpochMs`, so nothing
 * outside the application (no control socket, no signal) is involved when one begins: the
 * traces show the attack and only the attack. The label file gets one JSON line per attack
 * on stop(), with the start/end times the attacker itself recorded.
 */
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { spawnIn, type NsHost } from '../../cli/netns.js';
import { buildEpc, type EpcBinaries } from './build.js';

export type EpcComponent = 'hss' | 'pgw' | 'sgw' | 'mme' | 'rogueGw' | 'enb';
export type AttackKind = 'sgw-ip-modification' | 'false-ddn' | 'purge-context';

/** Who carries out each attack of the paper's section 6.2. */
export const ATTACKS: Record<AttackKind, { attacker: 'enb' | 'sgw'; what: string }> = {
  'sgw-ip-modification': { attacker: 'enb', what: 'rogue eNB: UEs authenticate via the real MME, user data goes to a malicious gateway instead of the SGW' },
  'false-ddn': { attacker: 'sgw', what: 'malicious SGW: Downlink Data Notifications for every idle UE, every second, with no downlink from the PGW' },
  'purge-context': { attacker: 'sgw', what: 'malicious SGW: fake "PGW restart notification" every 5 s; the MME pages every UE to re-attach' },
};

/** The named task threads each program runs (OAI's ITTI task names): the thread roles. */
export const EPC_THREADS: Record<EpcComponent, string[]> = {
  enb: ['TASK_SCTP', 'TASK_S1AP', 'TASK_RRC', 'TASK_GTPV1_U', 'TASK_UE_SIM'],
  mme: ['TASK_SCTP', 'TASK_S1AP', 'TASK_MME_APP', 'TASK_S6A', 'TASK_S11'],
  hss: ['TASK_S6A', 'TASK_HSS_DB'],
  sgw: ['TASK_S11', 'TASK_S5', 'TASK_SGW_APP', 'TASK_GTPV1_U'],
  pgw: ['TASK_S5', 'TASK_PGW_APP', 'TASK_GTPV1_U', 'TASK_SGI'],
  rogueGw: ['gw-relay'],
};

export interface AttackSpec {
  kind: AttackKind;
  /** ms after t0 (when startEpc was called) */
  startMs: number;
  endMs: number;
}

export interface AttackLabel {
  kind: AttackKind;
  /** ms since the epoch, as the attacker recorded them (planned times if it could not) */
  startMs: number;
  endMs: number;
  plannedStartMs: number;
  plannedEndMs: number;
  attacker: 'enb' | 'sgw';
  host: string;
  seed: number;
  runId: string;
}

/** The traffic model (eNB's UE simulator and the PGW's Internet side). */
export interface TrafficOptions {
  ues: number;
  /** mean UE arrivals per second, before the sinusoid and bursts */
  arrivalRate: number;
  /** 0..1: the rate swings between (1 - a) and (1 + a) times arrivalRate */
  rateAmplitude: number;
  ratePeriodMs: number;
  /** bursts started per second, their rate multiplier and mean length */
  burstRate: number;
  burstFactor: number;
  burstMs: number;
  /** lognormal session length (median) */
  sessionMedianMs: number;
  /** Pareto data volume per activity period */
  volumeXm: number;
  volumeAlpha: number;
  volumeCap: number;
  /** mean gap between a UE's requests while active */
  thinkMs: number;
  /** eNB releases a UE to idle after this long without user data */
  idleTimeoutMs: number;
  /** lognormal idle period (median) before the UE wants data again */
  idleMedianMs: number;
  /** unsolicited downlink pushes per second from the PGW's Internet side (pages idle UEs) */
  pushRate: number;
  dlRateKbps: number;
}

export const DEFAULT_TRAFFIC: TrafficOptions = {
  ues: 256,
  arrivalRate: 1,
  rateAmplitude: 0.6,
  ratePeriodMs: 600_000,
  burstRate: 0.01,
  burstFactor: 4,
  burstMs: 5000,
  sessionMedianMs: 60_000,
  volumeXm: 20_000,
  volumeAlpha: 1.3,
  volumeCap: 2_000_000,
  thinkMs: 400,
  idleTimeoutMs: 10_000,
  idleMedianMs: 8000,
  pushRate: 0.5,
  dlRateKbps: 20_000,
};

export interface EpcOptions {
  /** where each component runs; rogueGw defaults to the MME's host */
  hosts: Record<Exclude<EpcComponent, 'rogueGw'>, NsHost> & { rogueGw?: NsHost };
  seed?: number;
  /** stop by itself this long after t0 (else call stop()) */
  durationMs?: number;
  attacks?: AttackSpec[];
  /** JSON Lines, appended to on stop() */
  labelsFile?: string;
  /** HSS subscriber DB and PGW state files (default: a temp folder, removed on stop) */
  stateDir?: string;
  traffic?: Partial<TrafficOptions>;
  /** SGW–PGW echo period (default 5000) and lost echoes before the PGW counts as restarted (3) */
  echoIntervalMs?: number;
  echoMisses?: number;
  falseDdnIntervalMs?: number;
  /** purge-context: the fake PGW restart notification is repeated this often while the attack lasts */
  purgeIntervalMs?: number;
  pgw?: { memMb?: number; restartEveryMs?: number; restartDowntimeMs?: number };
  /** periodic "snapshot" lines (0: none, the default: they are extra writes in a trace) */
  statsEveryMs?: number;
  binaries?: EpcBinaries;
  /** rewrite a component's command line, e.g. to run it under a tracing agent */
  wrap?: (component: EpcComponent, host: NsHost, argv: string[]) => string[];
  /** how long each component may take to print its ready line (default 15000; a wrapper that traces with eBPF needs longer) */
  readyTimeoutMs?: number;
  runId?: string;
}

export interface ComponentStats {
  type: 'snapshot' | 'stats';
  component: string;
  pid: number;
  t: number;
  counters: Record<string, number>;
}

export type EpcStats = Partial<Record<EpcComponent, ComponentStats>>;

export interface EpcTestbed {
  /** epoch ms the attack offsets count from */
  t0: number;
  stateDir: string;
  runId: string;
  seed: number;
  /** the process started for each component (its group leader) */
  pids(): Partial<Record<EpcComponent, number>>;
  hostOf(c: EpcComponent): NsHost | undefined;
  /** argv each component was started with (after wrap) */
  commands(): Partial<Record<EpcComponent, string[]>>;
  snapshots(c: EpcComponent): ComponentStats[];
  /** a counter's value at the last snapshot taken at or before `t` (epoch ms; 0 if none) */
  counterAt(c: EpcComponent, name: string, t: number): number;
  /** names of every thread of the component's processes (the PGW's worker included) */
  threadNames(c: EpcComponent): string[];
  stderr(c: EpcComponent): string;
  /** restart the PGW now (the supervisor's restart command, SIGUSR1) */
  restartPgw(): void;
  stop(): Promise<EpcStats>;
  /** resolves with the final stats once stopped (by stop() or durationMs) */
  finished: Promise<EpcStats>;
  /** labels written so far (after stop: every attack) */
  labels(): AttackLabel[];
  exitCodes(): Partial<Record<EpcComponent, number | null>>;
}

interface Proc {
  c: EpcComponent;
  host: NsHost;
  argv: string[];
  child: ChildProcess;
  snaps: ComponentStats[];
  final?: ComponentStats;
  err: string;
  ready: Promise<void>;
  exited: Promise<number | null>;
  code?: number | null;
}

/** every process group started here and still alive, for killAllEpc() */
const live = new Set<number>();

/** SIGKILL every component process group this module started and that is still running. */
export function killAllEpc(): void {
  for (const pgid of live) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** UDP ports per host: components sharing a host (SGW and PGW both speak GTP on 2123/2152) get the next free port */
class PortPlan {
  private used = new Map<string, Set<number>>();
  udp(h: NsHost, want: number): number {
    const s = this.used.get(h.ns) ?? new Set<number>();
    this.used.set(h.ns, s);
    let p = want;
    while (s.has(p)) p++;
    s.add(p);
    return p;
  }
}

function launch(c: EpcComponent, host: NsHost, argv: string[]): Proc {
  const child = spawnIn(host, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid) live.add(child.pid);
  const p: Proc = { c, host, argv, child, snaps: [], err: '', ready: Promise.resolve(), exited: Promise.resolve(null) };
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  p.ready = new Promise((res, rej) => ((readyResolve = res), (readyReject = rej)));
  p.ready.catch(() => undefined);
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let j: Omit<Partial<ComponentStats>, 'type'> & { type?: string };
      try {
        j = JSON.parse(line);
      } catch {
        continue; // a wrapper's own output
      }
      if (j.type === 'ready') readyResolve();
      else if (j.type === 'snapshot') p.snaps.push(j as ComponentStats);
      else if (j.type === 'stats') p.final = j as ComponentStats;
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    p.err = (p.err + d.toString()).slice(-20_000);
  });
  p.exited = new Promise((res) =>
    child.once('exit', (code, sig) => {
      if (child.pid) live.delete(child.pid);
      p.code = code ?? (sig ? -1 : null);
      readyReject(new Error(`${c} exited before it was ready (code ${code}, signal ${sig}): ${p.err.slice(-2000)}`));
      res(p.code);
    }),
  );
  return p;
}

function descendants(pid: number): number[] {
  const out = [pid];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (kids) for (const k of kids.split(/\s+/)) out.push(...descendants(Number(k)));
    }
  } catch {
    /* exited meanwhile */
  }
  return out;
}

function threadsOf(pid: number): string[] {
  const names: string[] = [];
  for (const p of descendants(pid)) {
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) names.push(readFileSync(`/proc/${p}/task/${tid}/comm`, 'utf8').trim());
    } catch {
      /* exited meanwhile */
    }
  }
  return names;
}

function trafficFlags(t: TrafficOptions): { enb: string[]; pgw: string[] } {
  const f = (k: string, v: number) => [k, String(v)];
  return {
    enb: [
      ...f('--ues', t.ues), ...f('--arrival-rate', t.arrivalRate), ...f('--rate-amplitude', t.rateAmplitude), ...f('--rate-period-ms', t.ratePeriodMs),
      ...f('--burst-rate', t.burstRate), ...f('--burst-factor', t.burstFactor), ...f('--burst-ms', t.burstMs), ...f('--session-median-ms', t.sessionMedianMs),
      ...f('--volume-xm', t.volumeXm), ...f('--volume-alpha', t.volumeAlpha), ...f('--volume-cap', t.volumeCap), ...f('--think-ms', t.thinkMs),
      ...f('--idle-timeout-ms', t.idleTimeoutMs), ...f('--idle-median-ms', t.idleMedianMs),
    ],
    pgw: [...f('--push-rate', t.pushRate), ...f('--dl-rate-kbps', t.dlRateKbps)],
  };
}

export async function startEpc(o: EpcOptions): Promise<EpcTestbed> {
  const t0 = Date.now();
  const bins = o.binaries ?? buildEpc();
  const seed = o.seed ?? 1;
  const runId = o.runId ?? `epc-${t0}-${seed}`;
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'epc-state-'));
  const ownStateDir = o.stateDir === undefined;
  mkdirSync(stateDir, { recursive: true });
  const attacks = [...(o.attacks ?? [])].sort((a, b) => a.startMs - b.startMs);
  for (const a of attacks) {
    if (!(a.kind in ATTACKS)) throw new Error(`unknown attack kind '${a.kind}' (one of ${Object.keys(ATTACKS).join(', ')})`);
    if (!(a.startMs >= 0 && a.endMs > a.startMs)) throw new Error(`attack ${a.kind}: need 0 ≤ startMs < endMs, got ${a.startMs}..${a.endMs}`);
  }
  const traffic = { ...DEFAULT_TRAFFIC, ...o.traffic };
  const tf = trafficFlags(traffic);
  const h = o.hosts;
  const rogueHost = h.rogueGw ?? h.mme;
  const withRogue = h.rogueGw !== undefined || attacks.some((a) => a.kind === 'sgw-ip-modification');

  const ports = new PortPlan();
  const sgwC = ports.udp(h.sgw, 2123);
  const sgwU = ports.udp(h.sgw, 2152);
  const pgwC = ports.udp(h.pgw, 2123);
  const pgwU = ports.udp(h.pgw, 2152);
  const mmeS11 = ports.udp(h.mme, 2123);
  const enbU = ports.udp(h.enb, 2152);
  const rogueU = withRogue ? ports.udp(rogueHost, 2152) : 0;
  const stats = ['--stats-every-ms', String(o.statsEveryMs ?? 0)];
  const attackFlags = (who: 'enb' | 'sgw') =>
    attacks.filter((a) => ATTACKS[a.kind].attacker === who).flatMap((a) => ['--attack', `${a.kind}:${t0 + a.startMs}:${t0 + a.endMs}`]);

  const argv: Partial<Record<EpcComponent, string[]>> = {
    hss: [bins.hss, '--ip', h.hss.ip, '--port', '3868', '--state-dir', stateDir, '--subscribers', String(traffic.ues), ...stats],
    pgw: [bins.pgw, '--ip', h.pgw.ip, '--c-port', String(pgwC), '--u-port', String(pgwU), '--state-dir', stateDir, '--seed', String(seed),
      '--mem-mb', String(o.pgw?.memMb ?? 64), '--restart-every-ms', String(o.pgw?.restartEveryMs ?? 0),
      '--restart-downtime-ms', String(o.pgw?.restartDowntimeMs ?? Math.round(1.5 * (o.echoIntervalMs ?? 5000))), ...tf.pgw, ...stats],
    sgw: [bins.sgw, '--ip', h.sgw.ip, '--s11-port', String(sgwC), '--gtpu-port', String(sgwU), '--mme', `${h.mme.ip}:${mmeS11}`,
      '--pgw', h.pgw.ip, '--pgw-c-port', String(pgwC), '--pgw-u-port', String(pgwU), '--echo-interval-ms', String(o.echoIntervalMs ?? 5000),
      '--echo-misses', String(o.echoMisses ?? 3), '--false-ddn-interval-ms', String(o.falseDdnIntervalMs ?? 1000), '--purge-interval-ms', String(o.purgeIntervalMs ?? 5000), ...attackFlags('sgw'), ...stats],
    mme: [bins.mme, '--ip', h.mme.ip, '--s1-port', '36412', '--s11-port', String(mmeS11), '--hss', `${h.hss.ip}:3868`, '--sgw', `${h.sgw.ip}:${sgwC}`, ...stats],
    enb: [bins.enb, '--ip', h.enb.ip, '--mme', `${h.mme.ip}:36412`, '--gtpu-port', String(enbU), '--seed', String(seed),
      '--rogue-gw', `${rogueHost.ip}:${rogueU || 2152}`, ...tf.enb, ...attackFlags('enb'), ...stats],
  };
  if (withRogue) argv.rogueGw = [bins.rogueGw, '--ip', rogueHost.ip, '--port', String(rogueU), ...stats];
  const hostOf: Partial<Record<EpcComponent, NsHost>> = { ...h, rogueGw: withRogue ? rogueHost : undefined };

  // servers before their clients, so no first message is lost to a socket not yet bound
  const order: EpcComponent[] = ['hss', 'pgw', 'sgw', 'mme', 'rogueGw', 'enb'];
  const procs: Partial<Record<EpcComponent, Proc>> = {};
  const all = () => Object.values(procs) as Proc[];
  try {
    for (const c of order) {
      const a = argv[c];
      if (!a) continue;
      const host = hostOf[c]!;
      argv[c] = o.wrap ? o.wrap(c, host, a) : a;
      const p = launch(c, host, argv[c]!);
      procs[c] = p;
      const readyMs = o.readyTimeoutMs ?? 15_000;
      await Promise.race([p.ready, sleep(readyMs).then(() => Promise.reject(new Error(`${c} not ready after ${readyMs / 1000} s: ${p.err.slice(-2000)}`)))]);
    }
  } catch (e) {
    for (const p of all()) if (p.child.pid) try { process.kill(-p.child.pid, 'SIGKILL'); } catch { /* gone */ }
    await Promise.all(all().map((p) => p.exited));
    throw e;
  }

  const labels: AttackLabel[] = [];
  const writeLabels = (stopAt: number, final: EpcStats) => {
    for (const a of attacks) {
      const plannedStart = t0 + a.startMs;
      if (plannedStart >= stopAt) continue;
      const attacker = ATTACKS[a.kind].attacker;
      const counters = final[attacker]?.counters ?? {};
      const single = attacks.filter((x) => x.kind === a.kind).length === 1; // the counters hold one window per kind
      const startMs = (single && counters[`attack.${a.kind}.start_ms`]) || plannedStart;
      const endMs = (single && counters[`attack.${a.kind}.end_ms`]) || Math.min(t0 + a.endMs, stopAt);
      const l: AttackLabel = { kind: a.kind, startMs, endMs, plannedStartMs: plannedStart, plannedEndMs: t0 + a.endMs, attacker, host: hostOf[attacker]!.name, seed, runId };
      labels.push(l);
      if (o.labelsFile) appendFileSync(o.labelsFile, JSON.stringify(l) + '\n');
    }
  };

  let stopping: Promise<EpcStats> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let resolveFinished!: (s: EpcStats) => void;
  const finished = new Promise<EpcStats>((r) => (resolveFinished = r));
  const stop = (): Promise<EpcStats> => {
    stopping ??= (async () => {
      if (timer) clearTimeout(timer);
      const stopAt = Date.now();
      // SIGTERM to each group: every program prints its stats and exits (the PGW's supervisor
      // waits for its worker first). Traffic sources go first (the UEs, then the Internet
      // side), each a moment before the next, so what one sent has arrived before its peer
      // counts: the counters on both ends of an interface agree.
      const term = async (ps: Proc[]) => {
        for (const p of ps) if (p.child.pid && p.code === undefined) try { process.kill(-p.child.pid, 'SIGTERM'); } catch { /* gone */ }
        await Promise.all(ps.map((p) => Promise.race([p.exited, sleep(5000)])));
      };
      const phases: EpcComponent[][] = [['enb'], ['pgw'], ['sgw', 'rogueGw'], ['mme', 'hss']];
      for (const [i, phase] of phases.entries()) {
        if (i > 0) await sleep(200);
        await term(all().filter((p) => phase.includes(p.c)));
      }
      for (const p of all()) if (p.child.pid && p.code === undefined) try { process.kill(-p.child.pid, 'SIGKILL'); } catch { /* gone */ }
      await Promise.all(all().map((p) => p.exited));
      const final: EpcStats = {};
      for (const p of all()) if (p.final) final[p.c] = p.final;
      writeLabels(stopAt, final);
      if (ownStateDir) rmSync(stateDir, { recursive: true, force: true }); // pass stateDir to keep the files
      resolveFinished(final);
      return final;
    })();
    return stopping;
  };
  if (o.durationMs !== undefined) timer = setTimeout(() => void stop(), Math.max(0, t0 + o.durationMs - Date.now()));

  return {
    t0,
    stateDir,
    runId,
    seed,
    pids: () => Object.fromEntries(all().map((p) => [p.c, p.child.pid!])),
    hostOf: (c) => hostOf[c],
    commands: () => Object.fromEntries(all().map((p) => [p.c, p.argv])),
    snapshots: (c) => procs[c]?.snaps ?? [],
    counterAt: (c, name, t) => {
      let v = 0;
      for (const s of procs[c]?.snaps ?? []) if (s.t <= t) v = s.counters[name] ?? 0;
      return v;
    },
    threadNames: (c) => (procs[c]?.child.pid ? threadsOf(procs[c]!.child.pid!) : []),
    stderr: (c) => procs[c]?.err ?? '',
    restartPgw: () => {
      if (procs.pgw?.child.pid) process.kill(procs.pgw.child.pid, 'SIGUSR1');
    },
    stop,
    finished,
    labels: () => [...labels],
    exitCodes: () => Object.fromEntries(all().map((p) => [p.c, p.code ?? null])),
  };
}

/** Start, run for durationMs, stop: the final stats and the attack labels. */
export async function runEpc(o: EpcOptions & { durationMs: number }): Promise<{ stats: EpcStats; labels: AttackLabel[]; testbed: EpcTestbed }> {
  const testbed = await startEpc(o);
  const stats = await testbed.finished;
  return { stats, labels: testbed.labels(), testbed };
}
