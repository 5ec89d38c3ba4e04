/**
 * The distributed commands: aggregator, agent, and the queries over the aggregator's
 * SQLite file (windows, graph).
 */
import { Command, Option } from 'commander';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { AggregatorServer } from '../aggregator/server.js';
import { DetectionService } from '../aggregator/detect.js';
import { ModelPusher } from '../aggregator/model-push.js';
import { attachVerdict, startLocalModel, type LocalModel } from '../agent/local-model.js';
import { loadOrCreateSigningKey } from '../shared/model/signing.js';
import { Store } from '../aggregator/store/index.js';
import { AgentLink } from '../agent/link.js';
import { Spool } from '../agent/spool.js';
import { runCollector } from '../agent/run.js';
import { openCollector, type CollectorChoice, type TraceTarget } from '../agent/collectors/open.js';
import { LocalFilesAttribution, ProcAttribution, noAttribution } from '../agent/state/attribution.js';
import { parseDuration, formatDuration } from '../shared/duration.js';
import { onStopSignal } from '../shared/signals.js';
import { PROTOCOL_VERSION } from '../shared/wire.js';
import { ConfigError, defaultConfigPath, defaultValues, envLayer, findConfigFile, flagLayer, resolveConfig, type ConfigOf, type Kind, type Layer, type ResolveOptions } from '../shared/config/index.js';
import { graphDot, type DotHighlight } from '../shared/graph-dot.js';
import { dotToSvg } from '../shared/graph-svg.js';
import type { MergedWindow } from '../shared/graph.js';
import { DetectionStore } from '../aggregator/store/detection.js';
import { alertOutputsFromConfig } from '../aggregator/alerts/index.js';
import { startAggregatorHttp } from '../aggregator/metrics.js';
import { consoleHandler } from '../aggregator/console/index.js';
import { startAgentHttp, type AgentObserved } from '../agent/metrics.js';
import type { ObservabilityHttp } from '../shared/metrics/http.js';

export class CliError extends Error {}

function addTls(c: Command): Command {
  return c
    .option('--tls-cert <file>', "this side's certificate (PEM)")
    .option('--tls-key <file>', "this side's private key (PEM)")
    .option('--tls-ca <file>', "the CA that signs the other side's certificates (PEM)");
}

/** a key's built-in default as the help shows it */
function def(kind: Kind, path: string): string {
  let v: unknown = defaultValues(kind);
  for (const k of path.split('.')) v = (v as Record<string, unknown>)[k];
  return String(v);
}

function addConfig(c: Command, kind: Kind): Command {
  return c
    .option('--config <file>', `YAML configuration file (default: ${defaultConfigPath(kind)} when it exists; or DISTAPPGUARD_CONFIG)`)
    .option('--http-listen <addr>', 'metrics and health (and console) server: HOST:PORT, unix:/path or off', def(kind, 'http.listen'))
    .addHelpText(
      'after',
      `\nSettings: built-in defaults, then the --config file, then DISTAPPGUARD_<FLAG> variables (e.g. DISTAPPGUARD_TLS_CERT for --tls-cert), then flags: a flag given always wins.\nThe file's keys: distappguard config defaults ${kind}`,
    );
}

/**
 * The command's one resolved configuration: defaults < --config file (or the default one)
 * < DISTAPPGUARD_* < flags typed on this command line.
 */
function loadConfig<K extends Kind>(kind: K, cmd: Command, log: Logger, extra?: (flags: Layer) => void, opts?: ResolveOptions): ConfigOf<K> {
  try {
    const given = cmd.getOptionValueSource('config') === 'cli' ? (cmd.opts().config as string) : process.env.DISTAPPGUARD_CONFIG;
    const file = findConfigFile(kind, given);
    const flags = flagLayer(kind, cmd);
    extra?.(flags);
    const r = resolveConfig(kind, { file, env: envLayer(kind), flags }, opts);
    log.debug({ configFile: file?.name ?? null, config: r.effective }, 'configuration');
    if (file) log.info({ configFile: file.name }, 'configuration read');
    return r.config;
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message);
    throw e;
  }
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


/**
 * The HTTP side (metrics, health, console) is secondary to the main job: a port already
 * taken (another agent on this host) is logged and the component runs without it; a
 * refused configuration (beyond loopback without TLS) stops the start like any other.
 */
async function startHttp(what: string, start: () => Promise<ObservabilityHttp>, log: Logger): Promise<ObservabilityHttp | undefined> {
  try {
    return await start();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      log.error({ err: (e as Error).message, code }, `${what}: cannot listen, running without it (set http.listen, --http-listen, or off)`);
      return undefined;
    }
    throw e;
  }
}

export function addDistributedCommands(program: Command, log: Logger, version: string): void {
  addConfig(
    addTls(
      program
        .command('aggregator')
        .description('receive partial graphs from agents, join hosts into one MSDEG per window, keep them in SQLite, detect anomalies')
        .option('--listen <addr>', 'HOST:PORT or unix:/path (beyond loopback only with TLS)', def('aggregator', 'listen'))
        .option('--db <file>', 'SQLite file', def('aggregator', 'db'))
        .option('--grace <duration>', 'how long after a window ends to wait for missing agents', def('aggregator', 'grace'))
        .option('--alerts <file>', 'also write alerts as JSON Lines to this file')
        .option('--learn-after <n>', 'train automatically once an application without a model has this many windows (0: only `distappguard train`)', def('aggregator', 'detection.learnAfter'))
        .option('--retrain-every <duration>', 'retrain a model older than this (0: never)', def('aggregator', 'detection.retrainEvery'))
        .option('--history <duration>', 'automatic and scheduled trainings use windows of this last stretch (0: all)', def('aggregator', 'detection.history'))
        .addOption(new Option('--model <kind>', 'model trained automatically').choices(['msae', 'dense']).default(def('aggregator', 'detection.model')))
        .option('--target-fpr <rate>', 'false alarms per window to calibrate for', def('aggregator', 'detection.targetFpr'))
        .option('--model-key <file>', "Ed25519 key that signs models for the agents (created 0600 when missing; default: beside --db)"),
    ),
    'aggregator',
  ).action(async (_o, cmd: Command) => {
    const c = loadConfig('aggregator', cmd, log);
    const store = openStore(c.db);
    // what the start needs from files: a failure closes the store and names the file
    const orClose = <T>(f: () => T, what = ''): T => {
      try {
        return f();
      } catch (e) {
        store.close();
        throw new CliError(what + (e as Error).message);
      }
    };
    const key = orClose(() => loadOrCreateSigningKey(c.detection.modelKey));
    const outputs = orClose(() => alertOutputsFromConfig(c.alerts, { log }));
    const tokenFile = c.http.token;
    const token = tokenFile === undefined ? undefined : orClose(() => readFileSync(tokenFile, 'utf8').trim(), `http.token ${tokenFile}: `);
    let server: AggregatorServer | undefined;
    const detection = new DetectionService({
      store,
      log,
      outputs,
      learnAfter: c.detection.learnAfter,
      retrainEveryMs: c.detection.retrainEvery,
      historyMs: c.detection.history,
      train: { kind: c.detection.model, targetFpr: c.detection.targetFpr },
      onModel: (app) => server?.pushModels(app),
    });
    server = new AggregatorServer({
      listen: c.listen,
      store,
      log,
      graceMs: c.grace,
      tls: c.tls,
      onWindow: (w) => detection.onWindow(w),
      models: new ModelPusher(detection.det, key),
      onLocalVerdict: (agent, w, v) => detection.raiseLocal(agent, w, v),
    });
    let obs: ObservabilityHttp | undefined;
    try {
      if (c.http.listen !== 'off') {
        const srv = server;
        const console_ = consoleHandler({ store, detection, token, log, connectedAgents: () => srv.connectedAgents() });
        obs = await startHttp('console and metrics', () => startAggregatorHttp({ server: srv, detection, store, log, listen: c.http.listen, tls: c.http.tls, metricsToken: token, extraHandlers: [console_] }), log);
      }
      await server.start();
    } catch (e) {
      await obs?.close();
      await detection.close();
      store.close();
      throw new CliError((e as Error).message);
    }
    await new Promise<void>((res) => onStopSignal(log, 'shutting down', () => res()));
    await server.stop();
    await obs?.close();
    await detection.close();
    store.close();
    log.info({ ingest: server.ingest.counters, server: server.counters, detection: detection.counters, outputs: detection.outputs?.counters }, 'aggregator stopped');
  });

  addConfig(
    addTls(
      program
        .command('agent')
        .description('trace this host (or replay a trace) and stream each window to the aggregator')
        .option('--aggregator <addr>', 'aggregator HOST:PORT or unix:/path (required: here, in the --config file or DISTAPPGUARD_AGGREGATOR)')
        .option('--host-id <id>', "this host's id (default: the hostname)")
        .option('--app <name>', 'application name', def('agent', 'app'))
        .option('--agent-id <id>', 'agent id (default: the host id)')
        .option('--spool <file>', 'durable spool of windows not yet acknowledged', def('agent', 'spool.path'))
        .option('--spool-max <bytes>', 'spool size bound (bytes, or e.g. 256MiB)', def('agent', 'spool.maxBytes'))
        .option('--spool-max-age <duration>', 'spool age bound', def('agent', 'spool.maxAge'))
        .option('--window <duration>', 'window length', def('agent', 'window'))
        .option('--lateness <duration>', 'how long a window waits for late events', def('agent', 'lateness'))
        .option('--drain-timeout <duration>', 'at the end, how long to wait for the aggregator to acknowledge everything', def('agent', 'drainTimeout'))
        .addOption(new Option('--collector <name>', 'ebpf, strace, or auto').choices(['auto', 'ebpf', 'strace']).default(def('agent', 'collector')))
        .option('--pid <pid...>', 'attach to running processes')
        .option('--container <id>', 'attach to a container (id or cgroup path)')
        .option('--replay <format:path>', 'replay a recorded trace instead of tracing: strace:FILE or lttng:DIR')
        .option('--model-dir <dir>', 'where the model pushed by the aggregator is kept (default: model/ beside --spool)')
        .option('--model-key <file>', "the aggregator's model public key (PEM) to trust; default: the first key seen is pinned")
        .option('--no-local-detection', 'do not score windows on this host')
        .argument('[command...]', 'command to run and trace (after --)'),
    ),
    'agent',
  ).action(async (command: string[], o, cmd: Command) => {
    // on the command line, one target at most; without one, the file's (or DISTAPPGUARD_PID/CONTAINER)
    const chosen = [command.length > 0, o.pid !== undefined, o.container !== undefined, o.replay !== undefined].filter(Boolean).length;
    if (chosen > 1) throw new CliError('agent: give exactly one of -- COMMAND…, --pid PID…, --container ID, --replay FORMAT:PATH');
    let replay: { format: 'strace' | 'lttng'; path: string } | undefined;
    if (o.replay) {
      const m = /^(strace|lttng):(.+)$/.exec(o.replay);
      if (!m) throw new CliError(`--replay '${o.replay}': expected strace:FILE or lttng:DIR`);
      replay = { format: m[1] as 'strace' | 'lttng', path: m[2] };
    }
    const c = loadConfig('agent', cmd, log, (flags) => command.length > 0 && flags.set('target.command', command, '-- COMMAND'), { requireTarget: !replay });
    const target: TraceTarget | undefined = replay ? undefined : c.target;
    const hostId = c.hostId;
    const windowMs = c.window;

    let spool: Spool;
    try {
      mkdirSync(dirname(c.spool.path), { recursive: true });
      spool = Spool.open(c.spool.path, { maxBytes: c.spool.maxBytes, maxAgeMs: c.spool.maxAge });
    } catch (e) {
      throw new CliError(`spool ${c.spool.path}: ${(e as Error).message}`);
    }
    if (spool.recovered) log.error(spool.recovered, 'the spool file was damaged: moved aside, started a fresh one');
    const collector = replay ? (replay.format === 'strace' ? 'strace-file' : 'lttng') : (c.collector as CollectorChoice);
    let local: LocalModel | undefined;
    if (c.model.localDetection) {
      let trustedKeyPem: string | undefined;
      try {
        trustedKeyPem = c.model.key === undefined ? undefined : readFileSync(c.model.key, 'utf8');
      } catch (e) {
        throw new CliError(`model key ${c.model.key}: ${(e as Error).message}`);
      }
      local = await startLocalModel({ dir: c.model.dir, host: hostId, app: c.app, trustedKeyPem, log });
    }
    const link = new AgentLink({
      onModel: local?.onModel,
      aggregator: c.aggregator,
      spool,
      log,
      tls: c.tls,
      hello: { agentId: c.agentId, host: hostId, app: c.app, agentVersion: version, protocolVersion: PROTOCOL_VERSION, windowMs, collector, modelVersion: local?.version ?? '' },
    });
    const observed: AgentObserved = { link, spool, local: local?.detection, phase: 'starting' };
    const obs = c.http.listen === 'off' ? undefined : await startHttp('metrics', () => startAgentHttp({ observed, listen: c.http.listen, log }), log);
    link.start();
    const opened = await openCollector({ choice: collector, target, path: replay?.path, intervalMs: Math.min(1000, windowMs), log });
    observed.collector = opened.collector;
    observed.phase = 'collecting';
    let stoppedBySignal = false;
    const dispose = onStopSignal(log, 'shutting down: flushing the last window', () => {
      stoppedBySignal = true;
      void opened.collector.stop();
    });
    const attribution = replay ? (replay.format === 'strace' ? new LocalFilesAttribution() : noAttribution) : new ProcAttribution();
    const summary = await runCollector(
      opened.collector,
      { tracker: { app: c.app, host: hostId, windowMs, latenessMs: c.lateness, attribution }, live: !replay, log, onTracker: (t) => (observed.tracker = t) },
      (w) => link.enqueue(attachVerdict(local, w)),
    );
    dispose();
    observed.phase = 'draining';
    const drained = await link.waitDrained(c.drainTimeout);
    observed.phase = 'stopped';
    await obs?.close();
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
