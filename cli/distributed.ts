/**
 * The distributed commands: aggregator, agent, and the queries over the aggregator's
 * SQLite file (windows, graph).
 */
import { Command, Option } from 'commander';
import { hostname } from 'node:os';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { AggregatorServer } from '../aggregator/server.js';
import { DetectionService } from '../aggregator/detect.js';
import { ModelPusher } from '../aggregator/model-push.js';
import { attachVerdict, startLocalModel, type LocalModel } from '../agent/local-model.js';
import { loadOrCreateSigningKey, type SigningKey } from '../shared/model/signing.js';
import { Store } from '../aggregator/store/index.js';
import { AgentLink } from '../agent/link.js';
import { Spool } from '../agent/spool.js';
import { runCollector } from '../agent/run.js';
import { openCollector, type CollectorChoice, type TraceTarget } from '../agent/collectors/open.js';
import { LocalFilesAttribution, ProcAttribution, noAttribution } from '../agent/state/attribution.js';
import { parseDuration, formatDuration } from '../shared/duration.js';
import { onStopSignal } from '../shared/signals.js';
import { PROTOCOL_VERSION } from '../shared/wire.js';
import type { TlsFiles } from '../shared/tls.js';
import { graphDot, type DotHighlight } from '../shared/graph-dot.js';
import { dotToSvg } from '../shared/graph-svg.js';
import type { MergedWindow } from '../shared/graph.js';
import { DetectionStore } from '../aggregator/store/detection.js';

export class CliError extends Error {}

function tlsOf(o: { tlsCert?: string; tlsKey?: string; tlsCa?: string }): TlsFiles | undefined {
  const given = [o.tlsCert, o.tlsKey, o.tlsCa].filter((x) => x !== undefined).length;
  if (given === 0) return undefined;
  if (given !== 3) throw new CliError('TLS needs all three of --tls-cert, --tls-key and --tls-ca');
  return { cert: o.tlsCert!, key: o.tlsKey!, ca: o.tlsCa! };
}

function addTls(c: Command): Command {
  return c
    .option('--tls-cert <file>', "this side's certificate (PEM)")
    .option('--tls-key <file>', "this side's private key (PEM)")
    .option('--tls-ca <file>', "the CA that signs the other side's certificates (PEM)");
}

export function dur(text: string, what: string): number {
  try {
    return parseDuration(text, what);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

export function openStore(path: string, readonly = false): Store {
  try {
    if (!readonly) mkdirSync(dirname(path), { recursive: true });
    return Store.open(path, { readonly });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** `2026-11-26T12:00:05Z`, or ms since the epoch */
export function parseTime(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(n)) throw new CliError(`'${text}' is not a time: give ISO 8601 (2026-11-26T12:00:05Z) or ms since the epoch`);
  return n;
}


export function addDistributedCommands(program: Command, log: Logger, version: string): void {
  addTls(
    program
      .command('aggregator')
      .description('receive partial graphs from agents, join hosts into one MSDEG per window, keep them in SQLite, detect anomalies')
      .option('--listen <addr>', 'HOST:PORT or unix:/path (beyond loopback only with TLS)', '127.0.0.1:7443')
      .option('--db <file>', 'SQLite file', 'distappguard.db')
      .option('--grace <duration>', 'how long after a window ends to wait for missing agents', '5s')
      .option('--alerts <file>', 'also write alerts as JSON Lines to this file')
      .option('--learn-after <n>', 'train automatically once an application without a model has this many windows (0: only `distappguard train`)', '0')
      .option('--retrain-every <duration>', 'retrain a model older than this (0: never)', '0')
      .option('--history <duration>', 'automatic and scheduled trainings use windows of this last stretch (0: all)', '0')
      .addOption(new Option('--model <kind>', 'model trained automatically').choices(['msae', 'dense']).default('msae'))
      .option('--target-fpr <rate>', 'false alarms per window to calibrate for', '0.0001')
      .option('--model-key <file>', "Ed25519 key that signs models for the agents (created 0600 when missing; default: beside --db)"),
  ).action(async (o) => {
    const store = openStore(o.db);
    let key: SigningKey;
    try {
      key = loadOrCreateSigningKey(o.modelKey ?? `${o.db}.model-key.pem`);
    } catch (e) {
      store.close();
      throw new CliError((e as Error).message);
    }
    const learnAfter = Number(o.learnAfter);
    if (!Number.isInteger(learnAfter) || learnAfter < 0) throw new CliError(`--learn-after: '${o.learnAfter}' is not a whole number`);
    const targetFpr = Number(o.targetFpr);
    if (!(targetFpr > 0 && targetFpr < 1)) throw new CliError(`--target-fpr: '${o.targetFpr}' is not a rate between 0 and 1`);
    let server: AggregatorServer | undefined;
    const detection = new DetectionService({
      store,
      log,
      alertsFile: o.alerts,
      learnAfter,
      retrainEveryMs: o.retrainEvery === '0' ? 0 : dur(o.retrainEvery, '--retrain-every'),
      historyMs: o.history === '0' ? 0 : dur(o.history, '--history'),
      train: { kind: o.model, targetFpr },
      onModel: (app) => server?.pushModels(app),
    });
    server = new AggregatorServer({
      listen: o.listen,
      store,
      log,
      graceMs: dur(o.grace, '--grace'),
      tls: tlsOf(o),
      onWindow: (w) => detection.onWindow(w),
      models: new ModelPusher(detection.det, key),
      onLocalVerdict: (agent, w, v) => detection.raiseLocal(agent, w, v),
    });
    try {
      await server.start();
    } catch (e) {
      store.close();
      throw new CliError((e as Error).message);
    }
    await new Promise<void>((res) => onStopSignal(log, 'shutting down', () => res()));
    await server.stop();
    await detection.close();
    store.close();
    log.info({ ingest: server.ingest.counters, server: server.counters, detection: detection.counters }, 'aggregator stopped');
  });

  addTls(
    program
      .command('agent')
      .description('trace this host (or replay a trace) and stream each window to the aggregator')
      .requiredOption('--aggregator <addr>', 'aggregator HOST:PORT or unix:/path')
      .option('--host-id <id>', 'this host\'s id', hostname())
      .option('--app <name>', 'application name', 'default')
      .option('--agent-id <id>', 'agent id (default: the host id)')
      .option('--spool <file>', 'durable spool of windows not yet acknowledged', '/var/lib/distappguard/spool.db')
      .option('--spool-max <bytes>', 'spool size bound in bytes', String(256 << 20))
      .option('--spool-max-age <duration>', 'spool age bound', '24h')
      .option('--window <duration>', 'window length', '5s')
      .option('--lateness <duration>', 'how long a window waits for late events', '1s')
      .option('--drain-timeout <duration>', 'at the end, how long to wait for the aggregator to acknowledge everything', '30s')
      .addOption(new Option('--collector <name>', 'ebpf, strace, or auto').choices(['auto', 'ebpf', 'strace']).default('auto'))
      .option('--pid <pid...>', 'attach to running processes')
      .option('--container <id>', 'attach to a container (id or cgroup path)')
      .option('--replay <format:path>', 'replay a recorded trace instead of tracing: strace:FILE or lttng:DIR')
      .option('--model-dir <dir>', 'where the model pushed by the aggregator is kept (default: model/ beside --spool)')
      .option('--model-key <file>', "the aggregator's model public key (PEM) to trust; default: the first key seen is pinned")
      .option('--no-local-detection', 'do not score windows on this host')
      .argument('[command...]', 'command to run and trace (after --)'),
  ).action(async (command: string[], o) => {
    const hostId: string = o.hostId;
    const windowMs = dur(o.window, '--window');
    let target: TraceTarget | undefined;
    let replay: { format: 'strace' | 'lttng'; path: string } | undefined;
    const chosen = [command.length > 0, o.pid !== undefined, o.container !== undefined, o.replay !== undefined].filter(Boolean).length;
    if (chosen !== 1) throw new CliError('agent: give exactly one of -- COMMAND…, --pid PID…, --container ID, --replay FORMAT:PATH');
    if (o.replay) {
      const m = /^(strace|lttng):(.+)$/.exec(o.replay);
      if (!m) throw new CliError(`--replay '${o.replay}': expected strace:FILE or lttng:DIR`);
      replay = { format: m[1] as 'strace' | 'lttng', path: m[2] };
    } else if (command.length > 0) target = { command };
    else if (o.container) target = { container: o.container };
    else target = { pids: (o.pid as string[]).map(Number) };

    let spool: Spool;
    try {
      mkdirSync(dirname(o.spool), { recursive: true });
      spool = Spool.open(o.spool, { maxBytes: Number(o.spoolMax), maxAgeMs: dur(o.spoolMaxAge, '--spool-max-age') });
    } catch (e) {
      throw new CliError(`spool ${o.spool}: ${(e as Error).message}`);
    }
    if (spool.recovered) log.error(spool.recovered, 'the spool file was damaged: moved aside, started a fresh one');
    const collector = replay ? (replay.format === 'strace' ? 'strace-file' : 'lttng') : (o.collector as CollectorChoice);
    let local: LocalModel | undefined;
    if (o.localDetection) {
      let trustedKeyPem: string | undefined;
      try {
        trustedKeyPem = o.modelKey === undefined ? undefined : readFileSync(o.modelKey, 'utf8');
      } catch (e) {
        throw new CliError(`--model-key ${o.modelKey}: ${(e as Error).message}`);
      }
      local = await startLocalModel({ dir: o.modelDir ?? join(dirname(o.spool), 'model'), host: hostId, app: o.app, trustedKeyPem, log });
    }
    const link = new AgentLink({
      onModel: local?.onModel,
      aggregator: o.aggregator,
      spool,
      log,
      tls: tlsOf(o),
      hello: { agentId: o.agentId ?? hostId, host: hostId, app: o.app, agentVersion: version, protocolVersion: PROTOCOL_VERSION, windowMs, collector, modelVersion: local?.version ?? '' },
    });
    link.start();
    const opened = await openCollector({ choice: collector, target, path: replay?.path, intervalMs: Math.min(1000, windowMs), log });
    let stoppedBySignal = false;
    const dispose = onStopSignal(log, 'shutting down: flushing the last window', () => {
      stoppedBySignal = true;
      void opened.collector.stop();
    });
    const attribution = replay ? (replay.format === 'strace' ? new LocalFilesAttribution() : noAttribution) : new ProcAttribution();
    const summary = await runCollector(
      opened.collector,
      { tracker: { app: o.app, host: hostId, windowMs, latenessMs: dur(o.lateness, '--lateness'), attribution }, live: !replay, log },
      (w) => link.enqueue(attachVerdict(local, w)),
    );
    dispose();
    const drained = await link.waitDrained(dur(o.drainTimeout, '--drain-timeout'));
    local?.detection.dispose();
    log.info({ windows: summary.tracker.windows, link: link.counters, spool: spool.stats(), drained, localDetection: local?.detection.counters }, drained ? 'agent done: every window acknowledged' : 'agent done: windows left in the spool for the next run');
    await link.stop();
    spool.close();
    // asked to stop (systemd, Ctrl-C): a clean stop, whatever the traced command's code
    process.exit(stoppedBySignal ? 0 : (opened.exitCode?.() ?? 0));
  });

  program
    .command('windows')
    .description('list the windows stored by the aggregator')
    .requiredOption('--db <file>', 'SQLite file')
    .option('--app <name>', 'only this application')
    .option('--limit <n>', 'at most this many, newest last', '1000')
    .option('--json', 'JSON Lines')
    .action((o) => {
      const store = openStore(o.db, true);
      const rows = store.listWindows({ app: o.app, limit: Number(o.limit) });
      store.close();
      if (o.json) for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        process.stdout.write('APP                  WINDOW                    LEN   STATUS  HOSTS  EDGES        BYTES  LATE\n');
        for (const r of rows) {
          process.stdout.write(
            `${r.app.padEnd(20)} ${new Date(r.windowStart).toISOString().padEnd(25)} ${formatDuration(r.windowMs).padEnd(5)} ${r.status.padEnd(7)} ${String(r.hosts.length).padStart(5)} ${String(r.edges).padStart(6)} ${String(r.bytes).padStart(12)} ${String(r.latePartials).padStart(5)}\n`,
          );
        }
      }
    });

  program
    .command('graph')
    .description("one window's application-wide MSDEG; with --alert, the alert's window with the edges that explain it highlighted")
    .requiredOption('--db <file>', 'SQLite file')
    .option('--app <name>', 'application')
    .option('--window <time>', 'window start: ISO 8601 or ms since the epoch (any time inside the window)')
    .option('--alert <id>', "the window of this alert, its explanation drawn over it")
    .addOption(new Option('--format <f>', 'json, dot (Graphviz) or svg').choices(['json', 'dot', 'svg']).default('json'))
    .action(async (o) => {
      if ((o.alert === undefined) === (o.app === undefined || o.window === undefined)) throw new CliError('graph: give --app and --window, or --alert');
      const store = openStore(o.db, true);
      let w: MergedWindow | undefined;
      let highlight: DotHighlight = {};
      try {
        if (o.alert !== undefined) {
          const a = new DetectionStore(store.connection).alert(Number(o.alert));
          if (!a) throw new CliError(`no alert ${o.alert}`);
          w = store.windowGraph(a.app, a.windowStart);
          if (!w) throw new CliError(`alert ${a.id}: its window (${new Date(a.windowStart).toISOString()}) is not in the store`);
          highlight = { explained: a.explanation.edges.slice(0, 5), newEdges: a.explanation.newEdges, groups: a.explanation.groups.slice(0, 1).map((g) => g.name) };
        } else {
          const t = parseTime(o.window);
          const rows = store.listWindows({ app: o.app, from: t - 3_600_000, to: t + 1 });
          const row = rows.filter((r) => r.windowStart <= t && t < r.windowStart + r.windowMs).pop();
          w = row ? store.windowGraph(o.app, row.windowStart) : undefined;
          if (!w) throw new CliError(`no window of app '${o.app}' holds ${new Date(t).toISOString()}`);
        }
      } finally {
        store.close();
      }
      if (o.format === 'json') process.stdout.write(JSON.stringify(w) + '\n');
      else if (o.format === 'dot') process.stdout.write(graphDot(w, highlight));
      else process.stdout.write(await dotToSvg(graphDot(w, highlight)));
    });}
