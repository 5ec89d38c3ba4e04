/**
 * The main demo (`npm run demo`): the LTE core testbed (eval/epc) on three network-namespace
 * hosts — h1: eNB with its UEs, h2: MME + HSS, h3: SGW + PGW — every component traced by its
 * own DistAppGuard agent, and the aggregator in this process. It learns normal behaviour for a
 * minute or so, trains the microservice-aware autoencoder, pushes the host models to the
 * agents, then runs the paper's three attacks one after another and prints the alerts with
 * their explanations as they are raised, and at the end which attacks were detected.
 *
 * Each component gets its own agent (`--host-id h2-mme`): the testbed starts the components one
 * by one, each under its own command, and an agent's host model must describe what that agent
 * sees. The attacker's rogue gateway (SGW IP modification) is not traced: it stands for a
 * machine outside the operator's network.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorServer } from '../aggregator/server.js';
import { DetectionService } from '../aggregator/detect.js';
import { ModelPusher } from '../aggregator/model-push.js';
import { Store } from '../aggregator/store/index.js';
import type { AlertIn, AlertRow, ModelRow } from '../aggregator/store/detection.js';
import { loadOrCreateSigningKey } from '../shared/model/signing.js';
import type { MergedWindow } from '../shared/graph.js';
import { formatDuration } from '../shared/duration.js';
import { makeHosts, netnsUnavailable, type NsHost, type NsNet } from './netns.js';
import { buildEpc } from '../eval/epc/build.js';
import { ATTACKS, killAllEpc, startEpc, type AttackKind, type AttackSpec, type EpcComponent, type EpcTestbed, type TrafficOptions } from '../eval/epc/testbed.js';

export interface EpcDemoOptions {
  db: string;
  collector: 'strace' | 'ebpf' | 'auto';
  /** normal traffic before training (ms) */
  learnMs: number;
  /** each attack's length (ms) */
  attackMs: number;
  /** quiet time between attacks (ms) */
  gapMs: number;
  keep: boolean;
  seed: number;
  log: Logger;
}

const APP = 'epc';
const WINDOW_MS = 1000;
/** the attacks in the order they are run */
const ORDER: AttackKind[] = ['sgw-ip-modification', 'false-ddn', 'purge-context'];
/** a busy but small cell: steady after a few seconds, so a minute of it is a fair picture of normal */
const TRAFFIC: Partial<TrafficOptions> = {
  ues: 64, arrivalRate: 2, rateAmplitude: 0.3, ratePeriodMs: 20_000, burstRate: 0.02, burstFactor: 2, burstMs: 3000, sessionMedianMs: 8000,
  volumeXm: 5000, volumeCap: 150_000, thinkMs: 300, idleTimeoutMs: 1500, idleMedianMs: 2000, pushRate: 1, dlRateKbps: 4000,
};
const WHERE: Record<Exclude<EpcComponent, 'rogueGw'>, 0 | 1 | 2> = { enb: 0, mme: 1, hss: 1, sgw: 2, pgw: 2 };

const nf = new Intl.NumberFormat('en-US');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const hhmmss = (t: number) => new Date(t).toISOString().slice(11, 19);
const pad = (s: string, n: number) => (s.length >= n ? s.slice(0, n) : s + ' '.repeat(n - s.length));
const padL = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

class Interrupted extends Error {}

/** The plan, as offsets from the testbed's t0. */
export interface DemoPlan {
  learnFrom: number;
  learnTo: number;
  attacks: AttackSpec[];
  stopAt: number;
}

export function demoPlan(o: Pick<EpcDemoOptions, 'learnMs' | 'attackMs' | 'gapMs' | 'collector'>): DemoPlan {
  // agents start one after another, each before its component: a few seconds with strace,
  // bpftrace compiles its probes for 10–20 s each
  // (slower on a busy machine: learning starts when they are all up, and is longer when that is sooner)
  const startup = o.collector === 'strace' ? 25_000 : 5 * 22_000;
  const learnFrom = startup + 3000; // past the first attach storm
  const learnTo = learnFrom + o.learnMs;
  // training, pushing the models, and a quiet stretch scored as normal before the first attack
  const first = learnTo + 30_000;
  const attacks = ORDER.map((kind, i) => {
    const startMs = first + i * (o.attackMs + o.gapMs);
    return { kind, startMs, endMs: startMs + o.attackMs };
  });
  return { learnFrom, learnTo, attacks, stopAt: attacks[attacks.length - 1].endMs + Math.min(o.gapMs, 10_000) };
}

export async function epcDemo(o: EpcDemoOptions): Promise<number> {
  const why = netnsUnavailable();
  if (why) throw new Error(`the demo makes three hosts with network namespaces and ${why}; run it as root (or try 'distappguard demo --local')`);
  const out = (s: string) => process.stdout.write(s + '\n');
  const began = Date.now();
  const clock = () => {
    const s = Math.round((Date.now() - began) / 1000);
    return `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}]`;
  };
  const say = (s: string) => out(`${clock()} ${s}`);
  const plan = demoPlan(o);

  out('DistAppGuard demo: an LTE core (eNB + UEs, MME, HSS, SGW, PGW) on three hosts, each component traced by an agent,');
  out('an aggregator that learns its normal behaviour, then three attacks from the paper (section 6.2).');
  say('building the EPC programs …');
  const bins = buildEpc();

  let stopRequested: (() => void) | undefined;
  const interrupted = new Promise<never>((_, rej) => (stopRequested = () => rej(new Interrupted('interrupted'))));
  interrupted.catch(() => undefined);
  let signals = 0;
  const onSignal = (sig: string) => {
    if (signals++ === 0) {
      process.stderr.write(`\n${sig}: stopping the demo and cleaning up (namespaces, processes, temp files) …\n`);
      stopRequested?.();
    } else process.stderr.write(`${sig}: still cleaning up, one moment …\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // a failure in a callback (not in the awaited steps below) stops the demo cleanly too
  let fatal: Error | undefined;
  const onFatal = (e: Error) => {
    process.stderr.write(`demo: ${e.stack ?? e.message}\n`);
    fatal ??= e;
    stopRequested?.();
  };
  process.on('uncaughtException', onFatal);
  /** waits until an epoch time, or throws on Ctrl-C */
  const until = (t: number) => Promise.race([sleep(t - Date.now()), interrupted]);
  const orStop = <T>(p: Promise<T>) => Promise.race([p, interrupted]);

  for (const f of [o.db, `${o.db}-wal`, `${o.db}-shm`]) rmSync(f, { force: true });
  const dir = mkdtempSync(join(tmpdir(), 'distappguard-demo-'));
  const sock = join(dir, 'aggregator.sock');
  const main = resolve(fileURLToPath(import.meta.url), '..', 'main.js');
  const quiet = o.log.child({ c: 'demo-aggregator' }, { level: process.env.DISTAPPGUARD_LOG_LEVEL ?? 'error' });
  let net: NsNet | undefined;
  let store: Store | undefined;
  let server: AggregatorServer | undefined;
  let detection: DemoDetection | undefined;
  let tb: EpcTestbed | undefined;
  let starting: Promise<EpcTestbed> | undefined;
  let stopAt: number | undefined;
  let code = 0;

  // what happens, in time order
  let merged = 0;
  let shownGraph = false;
  let phase: 'learning' | 'training' | 'detecting' = 'learning';
  /** the attack a window overlaps (or follows by up to two windows) */
  const attackNow = (ws: number): AttackSpec | undefined =>
    tb ? plan.attacks.find((a) => ws + WINDOW_MS > tb!.t0 + a.startMs && ws < tb!.t0 + a.endMs + 2 * WINDOW_MS) : undefined;
  const acks: string[] = [];
  /** incident → what was last explained for it (worst microservice, never-seen edges) */
  const shownIncidents = new Map<number, string>();

  try {
    net = makeHosts(['h1', 'h2', 'h3']);
    const hosts = net.hosts;
    store = Store.open(o.db);
    const key = loadOrCreateSigningKey(join(dir, 'model-key.pem'));
    detection = new DemoDetection(
      {
        store,
        log: quiet,
        train: { kind: 'msae', targetFpr: 0.0001 },
        onModel: (app) => server?.pushModels(app),
      },
      (a) => printAlert(a),
    );
    const det = detection;
    const pusher = new DemoPusher(det.det, key, (agent, version, accepted) => {
      acks.push(agent);
      say(`  agent ${agent} ${accepted ? 'loaded' : 'REFUSED'} its host model (version ${version})`);
    });
    server = new AggregatorServer({
      listen: `unix:${sock}`,
      store,
      log: quiet,
      graceMs: 2000,
      onWindow: (w) => {
        det.onWindow(w);
        onMerged(w);
      },
      models: pusher,
      // the server logs (and survives) an alert it could not store
      onLocalVerdict: (agent, w, v) => det.raiseLocal(agent, w, v),
    });
    await server.start();

    const hostId = (c: EpcComponent, h: NsHost) => `${h.name}-${c}`;
    const wrap = (c: EpcComponent, h: NsHost, argv: string[]): string[] =>
      c === 'rogueGw'
        ? argv // the attacker's machine runs no agent
        : [process.execPath, main, 'agent', '--aggregator', `unix:${sock}`, '--host-id', hostId(c, h), '--app', APP, '--window', `${WINDOW_MS}ms`,
          '--collector', o.collector, '--spool', join(dir, `${c}.spool`), '--model-dir', join(dir, `${c}.model`), '--drain-timeout', '5s', '--http-listen', 'off', '--', ...argv];
    say(`hosts: ${hosts.map((h) => `${h.name}=${h.ip}`).join(', ')} (network namespaces); aggregator on unix:${sock}; db ${o.db}`);
    say(`starting the EPC, each component under an agent (collector: ${o.collector}${o.collector === 'strace' ? '' : '; bpftrace needs 10–20 s per agent to start'}) …`);
    starting = startEpc({
        hosts: { enb: hosts[WHERE.enb], mme: hosts[WHERE.mme], hss: hosts[WHERE.hss], sgw: hosts[WHERE.sgw], pgw: hosts[WHERE.pgw] },
        binaries: bins,
        seed: o.seed,
        traffic: TRAFFIC,
        echoIntervalMs: 1000,
        echoMisses: 3,
        attacks: plan.attacks,
        wrap,
        readyTimeoutMs: o.collector === 'strace' ? 15_000 : 60_000,
      });
    tb = await orStop(starting);
    const t0 = tb.t0;
    for (const c of ['enb', 'mme', 'hss', 'sgw', 'pgw'] as const) say(`  ${pad(c.toUpperCase(), 4)} on ${tb.hostOf(c)!.name}, agent ${hostId(c, tb.hostOf(c)!)}`);
    say(`  rogue gateway (attacker, not traced) on ${tb.hostOf('rogueGw')?.name}`);
    // the windows to learn from: once every agent is up and the first attaches are done
    // (no more than --learn and 10 s: training time stays within the plan)
    const learnFrom = Math.max(Math.ceil((Date.now() + 3000) / WINDOW_MS) * WINDOW_MS, t0 + plan.learnTo - o.learnMs - 10_000);
    say(`schedule (UTC): learn ${hhmmss(learnFrom)}–${hhmmss(t0 + plan.learnTo)}, then train; attacks ${plan.attacks.map((a) => `${a.kind} ${hhmmss(t0 + a.startMs)}–${hhmmss(t0 + a.endMs)}`).join(', ')}`);
    say(`every agent is up. LEARNING: ${((t0 + plan.learnTo - learnFrom) / 1000).toFixed(0)} s of normal traffic (windows ${hhmmss(learnFrom)}–${hhmmss(t0 + plan.learnTo)}) in ${formatDuration(WINDOW_MS)} windows`);
    if (t0 + plan.learnTo - learnFrom < 20_000) say('  (the agents took long to start: little time is left to learn, expect a weak model)');

    // attack announcements
    const timers: NodeJS.Timeout[] = [];
    for (const a of plan.attacks) {
      timers.push(setTimeout(() => say(`>>> ATTACK START ${a.kind}: ${ATTACKS[a.kind].what}`), t0 + a.startMs - Date.now()));
      timers.push(setTimeout(() => say(`<<< ATTACK END   ${a.kind}`), t0 + a.endMs - Date.now()));
    }
    try {
      await until(t0 + plan.learnTo + 2500); // the last learning window closes after its grace
      phase = 'training';
      const from = learnFrom;
      const to = t0 + plan.learnTo;
      const windows = store.listWindows({ app: APP, from, to }).filter((w) => w.status === 'closed').length;
      say(`TRAINING the microservice-aware autoencoder on ${windows} windows (${hhmmss(from)}–${hhmmss(to)}) and one model per agent …`);
      let last = 0;
      let lastModel = '';
      const t = Date.now();
      const modelId = await orStop(
        det.train(APP, {
          from,
          to,
          seed: o.seed,
          minWindows: 15,
          onProgress: (p) => {
            if (p.model !== lastModel || Date.now() - last > 2000 || p.epoch + 1 === p.epochs) {
              if (p.model !== lastModel) lastModel = p.model;
              last = Date.now();
              say(`  ${pad(p.model, 12)} epoch ${padL(String(p.epoch + 1), 3)}/${p.epochs}  loss ${p.loss.toFixed(4)}  held-out ${p.valLoss.toFixed(4)}`);
            }
          },
        }),
      );
      const m = det.det.model(modelId)!;
      say(`MODEL ${m.id} trained in ${((Date.now() - t) / 1000).toFixed(1)} s: ${modelLine(m)}`);
      for (const h of det.det.hostModels(modelId)) say(`  host model ${h.id} for ${pad(h.scope, 9)} ${modelLine(h)}`);
      say('pushing the host models to the agents (each checks the signature and scores its own windows from now on) …');
      phase = 'detecting';
      // windows merged while the model was training are scored now (in order, before new ones)
      for (const w of store.listWindows({ app: APP, from: to }).reverse()) {
        const g = store.windowGraph(APP, w.windowStart);
        if (g && w.status === 'closed') det.onWindow(g);
      }
      const firstAttack = t0 + plan.attacks[0].startMs;
      if (Date.now() < firstAttack) say(`DETECTING: normal traffic until the first attack at ${hhmmss(firstAttack)} (alerts before it are false alarms)`);
      else say(`DETECTING (training took longer than planned: the windows since ${hhmmss(to)} are scored now)`);
      await until(t0 + plan.stopAt);
    } finally {
      for (const x of timers) clearTimeout(x);
    }
    stopAt = Date.now();
    say('stopping the EPC and the agents (each sends its last windows) …');
    await tb.stop();
    await sleep(2500); // the last windows' grace
    await det.idle();

    // ------------------------------------------------------------------ summary
    const labels = tb.labels();
    const intervals = plan.attacks.map((a) => {
      const l = labels.find((x) => x.kind === a.kind);
      return { kind: a.kind, start: l?.startMs ?? t0 + a.startMs, end: l?.endMs ?? t0 + a.endMs };
    });
    const incidents = det.det.listIncidents(APP).reverse();
    const model = det.det.activeModel(APP);
    const scored = model ? det.det.scores(APP, model.id).length : 0;
    const overlaps = (i: { start: number; end: number }, a: { start: number; end: number }, tail = 0) => i.start < a.end + tail && i.end > a.start;
    out('');
    out('════ SUMMARY ════');
    out(`windows stored: ${store.listWindows({ app: APP }).length}; scored by the application model: ${scored}; alerts: ${det.det.listAlerts({ app: APP }).length} (aggregator ${det.det.listAlerts({ app: APP }).filter((a) => a.source === 'aggregator').length}, agents ${det.det.listAlerts({ app: APP }).filter((a) => a.source !== 'aggregator').length})`);
    out(`agents that loaded their host model: ${[...new Set(acks)].sort().join(', ') || 'none'}`);
    const stopping = stopAt ?? Infinity;
    /** where a span of time sits: in an attack (or its next two windows), just after one, during the shutdown, or in normal traffic */
    const place = (start: number, end: number): string => {
      const a = intervals.find((x) => overlaps({ start, end }, x, 2 * WINDOW_MS));
      if (a) return `during ${a.kind}`;
      const after = intervals.find((x) => start >= x.end && start < x.end + 12_000);
      if (after) return `after-effect of ${after.kind} (${((start - after.end) / 1000).toFixed(0)} s after it ended)`;
      if (start >= stopping - WINDOW_MS) return 'testbed shutting down (not counted)';
      return 'FALSE ALARM (no attack)';
    };
    out("the application model's incidents (consecutive alerting windows):");
    if (!incidents.some((i) => i.source === 'aggregator')) out('  none');
    for (const i of incidents.filter((x) => x.source === 'aggregator')) {
      out(`  #${padL(String(i.id), 3)} ${pad(i.source, 14)} ${hhmmss(i.start)}–${hhmmss(i.end)}  ${padL(String(i.alerts), 3)} alert(s)  max score ${padL(i.maxScore.toFixed(2), 7)}  ${i.newEdges} new edge(s)  → ${place(i.start, i.end)}`);
    }
    const agentInc = incidents.filter((x) => x.source !== 'aggregator');
    if (agentInc.length) out(`agents' incidents: ${agentInc.length} (${[...new Set(agentInc.map((i) => i.source.slice(6)))].join(', ')}); distappguard alerts --incidents lists them with --keep`);
    out('attacks (detected: a window scored over the threshold during the attack or the two windows after it):');
    let detected = 0;
    let detectedAny = 0;
    const alerts = det.det.listAlerts({ app: APP }).reverse();
    const scores = model ? det.det.scores(APP, model.id) : [];
    const inWin = (ws: number, a: { start: number; end: number }) => overlaps({ start: ws, end: ws + WINDOW_MS }, a, 2 * WINDOW_MS);
    const normal = (start: number) => place(start, start + WINDOW_MS).startsWith('FALSE');
    const normalScored = scores.filter((x) => normal(x.windowStart)).length;
    const falseApp = new Set(alerts.filter((x) => x.source === 'aggregator' && x.anomalous && normal(x.windowStart)).map((x) => x.windowStart)).size;
    const normalRate = normalScored ? falseApp / normalScored : 0;
    for (const a of intervals) {
      const inside = alerts.filter((x) => inWin(x.windowStart, a));
      const app = inside.filter((x) => x.source === 'aggregator' && x.anomalous);
      const agents = inside.filter((x) => x.source !== 'aggregator' && x.anomalous);
      const newEdges = [...new Set(inside.filter((x) => x.source === 'aggregator').flatMap((x) => x.explanation.newEdges.map((e) => `${e.src} → ${e.dst}`)))];
      const max = Math.max(0, ...scores.filter((x) => inWin(x.windowStart, a)).map((x) => x.score));
      const windows = scores.filter((x) => inWin(x.windowStart, a)).length;
      let verdict: string;
      const rate = windows ? app.length / windows : 0;
      if (app.length && rate <= 2 * normalRate) {
        verdict = `application model: NOT DETECTED, ${app.length} of ${windows} windows over the threshold ${model!.threshold.toFixed(2)} (max score ${max.toFixed(2)}), no more often than in normal traffic (${falseApp} of ${normalScored})`;
      } else if (app.length) {
        detected++;
        verdict = `application model: DETECTED, ${app.length} of ${windows} windows over the threshold ${model!.threshold.toFixed(2)} (max score ${max.toFixed(2)}), the first ${((Math.max(app[0].windowStart, a.start) - a.start) / 1000).toFixed(0)} s after the start`;
      } else verdict = `application model: NOT DETECTED, max score ${max.toFixed(2)} ≤ threshold ${model ? model.threshold.toFixed(2) : '—'}${newEdges.length ? `; never-seen edges only: ${newEdges.slice(0, 2).join(', ')}` : ''}`;
      if ((app.length && rate > 2 * normalRate) || agents.length) detectedAny++;
      out(`  ${pad(a.kind, 20)} ${hhmmss(a.start)}–${hhmmss(a.end)}  ${verdict}`);
      out(`  ${' '.repeat(20)} ${' '.repeat(17)}  agents' host models: ${agents.length ? `${new Set(agents.map((x) => x.windowStart)).size} window(s) over their thresholds (${[...new Set(agents.map((x) => x.source.slice(6)))].join(', ')})` : 'no window over their thresholds'}`);
    }
    const falseAppNew = new Set(alerts.filter((x) => x.source === 'aggregator' && !x.anomalous && normal(x.windowStart)).map((x) => x.windowStart)).size;
    const falseAgents = new Set(alerts.filter((x) => x.source !== 'aggregator' && x.anomalous && normal(x.windowStart)).map((x) => x.windowStart)).size;
    out(`false alarms in ${normalScored} normal windows scored (outside the attacks, 12 s after each, and the shutdown): application model ${falseApp} window(s) over the threshold${falseAppNew ? ` (+${falseAppNew} with never-seen edges only)` : ''}; agents' host models ${falseAgents} window(s)`);
    out(`attacks detected by the application model: ${detected} of ${intervals.length}; by it or an agent's host model: ${detectedAny} of ${intervals.length} (an agent's alert is worth as much as its false-alarm count above)`);
    out(`${o.keep ? `Kept ${o.db}: try distappguard alerts --db ${o.db} --incidents` : `(${o.db} is removed; --keep keeps it)`}`);
  } catch (e) {
    if (!(e instanceof Interrupted)) throw e;
    if (fatal) throw fatal;
    code = 130;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('uncaughtException', onFatal);
    if (!tb && starting) {
      // interrupted while the components were starting: end the one starting, then the rest
      killAllEpc();
      tb = await starting.catch(() => undefined);
    }
    if (tb) await tb.stop().catch(() => undefined);
    killAllEpc();
    await server?.stop().catch(() => undefined);
    await detection?.close().catch(() => undefined);
    store?.close();
    net?.cleanup();
    rmSync(dir, { recursive: true, force: true });
    if (!o.keep || code !== 0) for (const f of [o.db, `${o.db}-wal`, `${o.db}-shm`]) if (existsSync(f)) rmSync(f, { force: true });
    say(code === 130 ? 'interrupted: everything stopped and removed' : 'done: namespaces, processes and temp files removed');
  }
  return code;

  // ------------------------------------------------------------------ printing
  function onMerged(w: MergedWindow): void {
    merged++;
    if (phase === 'learning' && !shownGraph && w.hosts.length >= 5 && merged >= 8) {
      shownGraph = true;
      out(graphTable(w));
    }
    if (phase !== 'detecting' && merged % 10 === 0) {
      const bytes = w.edges.reduce((s, e) => s + e.bytes, 0);
      say(`  ${merged} windows merged (last: ${hhmmss(w.windowStart)}, ${w.hosts.length} agents, ${w.edges.length} edges, ${nf.format(bytes)} bytes)`);
    } else if (phase === 'detecting' && merged % 10 === 0 && !attackNow(w.windowStart)) {
      say(`  ${merged} windows merged and scored`);
    }
  }

  function printAlert(a: AlertRow): void {
    const atk = attackNow(a.windowStart);
    const tag = atk ? `during ${atk.kind}` : stopAt !== undefined && a.windowStart >= stopAt - WINDOW_MS ? 'testbed shutting down' : 'no attack running';
    const top = a.explanation.groups.slice(0, 3).map((g) => `${g.name} ×${g.ratio.toFixed(1)}`).join(', ');
    const seen = shownIncidents.get(a.incidentId);
    const newKeys = a.explanation.newEdges.map((e) => `${e.srcId}>${e.dstId}`).sort().join(' ');
    shownIncidents.set(a.incidentId, `${a.explanation.groups[0]?.name}|${newKeys}`);
    if (a.source !== 'aggregator') {
      // an agent's own verdict on its part of the window: one line, the first of each of its incidents
      if (seen !== undefined) return;
      const e = a.explanation.edges[0];
      const n = a.explanation.newEdges[0];
      say(`  agent ${a.source.slice(6)} alerts (its own model): window ${hhmmss(a.windowStart)} score ${a.score.toFixed(2)}${a.anomalous ? ' > ' : ' ≤ '}${a.threshold.toFixed(2)}  ${n ? `new edge ${n.src} → ${n.dst}` : e ? `${e.src} → ${e.dst} ${nf.format(e.observedBytes)} B (expected ${nf.format(Math.round(e.expectedBytes))})` : ''}  [${tag}]`);
      return;
    }
    say(`ALERT #${a.id} (incident ${a.incidentId}) window ${hhmmss(a.windowStart)}  ${a.severity.toUpperCase()}  score ${a.score.toFixed(2)} ${a.anomalous ? '>' : '≤'} threshold ${a.threshold.toFixed(2)}  [${tag}]`);
    // the incident goes on with the same worst microservice and never-seen edges: the line above says enough
    if (seen === `${a.explanation.groups[0]?.name}|${newKeys}`) return;
    if (top) out(`           microservices (error ÷ usual): ${top}`);
    const g0 = a.explanation.groups[0]?.name;
    const mine = a.explanation.edges.filter((e) => e.group === g0);
    for (const e of (mine.length ? mine : a.explanation.edges).slice(0, 3)) {
      out(`           ${e.src} → ${e.dst} (${e.kind}): observed ${nf.format(e.observedBytes)} B, expected ${nf.format(Math.round(e.expectedBytes))} B`);
    }
    for (const e of a.explanation.newEdges.slice(0, 3)) out(`           never seen: ${e.src} → ${e.dst} (${e.kind}), ${nf.format(e.bytes)} B in ${e.count} call(s)`);
    if (a.explanation.newEdges.length > 3) out(`           … and ${a.explanation.newEdges.length - 3} more never-seen edges`);
  }
}

function modelLine(m: ModelRow): string {
  const c = m.metrics.calibration as { targetFpr?: number; method?: string; windows?: number } | undefined;
  const t = m.metrics.training as { epochs?: number; seconds?: number } | undefined;
  return `${m.kind}, ${m.windows} windows, ${m.features} features, threshold ${m.threshold.toFixed(3)} (target ${c?.targetFpr} false alarms/window, ${c?.method} on ${c?.windows} held-out windows), ${t?.epochs ?? '?'} epochs`;
}

/** The merged graph, shortly: the heaviest edges. */
function graphTable(w: MergedWindow, n = 14): string {
  const edges = [...w.edges].sort((a, b) => b.bytes - a.bytes).slice(0, n);
  const sw = Math.min(34, Math.max(...edges.map((e) => e.src.length)));
  const dw = Math.min(34, Math.max(...edges.map((e) => e.dst.length)));
  const lines = [
    `   one merged window (${hhmmss(w.windowStart)}, agents ${w.hosts.join(' ')}): ${w.edges.length} edges, ${w.matchedFlows} flow ends joined across agents; the ${edges.length} heaviest:`,
    `   ${pad('SOURCE', sw)}  →  ${pad('DESTINATION', dw)}  KIND  ${padL('BYTES', 11)}  ${padL('CALLS', 6)}`,
  ];
  for (const e of edges) lines.push(`   ${pad(e.src, sw)}  →  ${pad(e.dst, dw)}  ${pad(e.kind, 4)}  ${padL(nf.format(e.bytes), 11)}  ${padL(nf.format(e.count), 6)}`);
  return lines.join('\n');
}

/** Prints every alert once, as it is stored (aggregator's and agents'). */
class DemoDetection extends DetectionService {
  private readonly printed = new Set<number>();
  constructor(
    o: ConstructorParameters<typeof DetectionService>[0],
    private readonly show: (a: AlertRow) => void,
  ) {
    super(o);
  }
  override raise(a: AlertIn): AlertRow {
    let row: AlertRow | undefined;
    // the alert's transaction can meet SQLITE_BUSY when the merge worker committed since it
    // began reading (WAL snapshot): a fresh transaction succeeds
    for (let i = 0; !row; i++) {
      try {
        row = super.raise(a);
      } catch (e) {
        if ((e as { code?: string }).code !== 'SQLITE_BUSY' || i >= 20) throw e;
      }
    }
    if (!this.printed.has(row.id)) {
      this.printed.add(row.id);
      this.show(row);
    }
    return row;
  }
}

/** Tells when an agent acknowledges its model. */
class DemoPusher extends ModelPusher {
  constructor(
    det: ConstructorParameters<typeof ModelPusher>[0],
    key: ConstructorParameters<typeof ModelPusher>[1],
    private readonly onAck: (agent: string, version: string, accepted: boolean) => void,
  ) {
    super(det, key);
  }
  override recordAck(agentId: string, version: string, accepted: boolean, now: number): void {
    super.recordAck(agentId, version, accepted, now);
    this.onAck(agentId, version, accepted);
  }
}
