/**
 * npm run bench:aggregator — the aggregator end to end over loopback: many concurrent agent
 * streams → validation → batched commits → acks → window assembly → correlation → merged
 * windows in SQLite. Prints its figures; asserts nothing (the README/docs record them).
 *
 * The aggregator runs in a CHILD process, started exactly as a user starts it:
 *
 *     node dist/cli/main.js aggregator --listen 127.0.0.1:0 --db TMP/agg.db --grace 1s
 *
 * so its CPU time and peak memory (/proc/PID/status VmHWM) are its own, not this process's,
 * which plays the agents (1,000 gRPC streams, each on its own HTTP/2 connection, as separate
 * hosts would). On a 2-core machine the agents get the other core. The child's JSON log
 * (NO_PRETTY=1) is read for its 'window merged' lines and its final ingest counters.
 *
 * Two scenarios, each on a fresh aggregator and database:
 *   A  BENCH_AGENTS agents (1,000) × BENCH_EDGES edges (200) per partial — the target load
 *   B  BENCH_AGENTS_LARGE (100) × BENCH_EDGES_LARGE (2,000)
 * and two phases in each:
 *   paced  every agent sends one partial per real 1 s window, at the window's end, for
 *          BENCH_WARMUP (2) + BENCH_WINDOWS (8) windows; latency is measured on the last
 *          BENCH_WINDOWS: window end → merged window committed (merged_at in the file), and
 *          last partial sent → merged commit (the window closes when its last partial is
 *          committed, so this is "window close → commit").
 *   burst  every agent sends BENCH_BURST (10) windows back to back, as fast as the streams
 *          take them: partials committed per second and windows merged per second at
 *          saturation. The windows lie in the future so that only completeness closes them
 *          (the grace would otherwise close past windows before the burst is in).
 * Then, paced only, BENCH_SWEEP agent counts (500,750) × BENCH_EDGES: what load is sustained.
 *
 * The partials are realistic in shape: replicas of services (agents i ≡ s mod S run service
 * s) share thread, file and memory roles, so the merge sums many partials into few edges;
 * agent 2k is a client of agent 2k+1 over 8 TCP connections whose flows both report, so
 * correlation matches 8 flow pairs per agent pair into thread→thread edges.
 *
 * BENCH_PROFILE=1 runs the aggregator with --cpu-prof and says where the profiles are;
 * BENCH_AGG_NODE_ARGS adds node flags to the aggregator's command line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import Database from 'better-sqlite3';
import * as pb from '../shared/gen/distappguard/v1/agent_pb.js';
import { fromWireWindow, toWireHello, toWireWindow, type HelloInfo } from '../shared/wire.js';
import { roleId } from '../shared/role-id.js';
import type { Edge, Flow, PartialWindow } from '../shared/graph.js';

const env = (name: string, dflt: number): number => {
  const v = process.env[name];
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${v}: expected a non-negative integer`);
  return n;
};
const AGENTS = env('BENCH_AGENTS', 1000);
const EDGES = env('BENCH_EDGES', 200);
const AGENTS_LARGE = env('BENCH_AGENTS_LARGE', 100);
const EDGES_LARGE = env('BENCH_EDGES_LARGE', 2000);
const WARMUP = env('BENCH_WARMUP', 2);
const WINDOWS = env('BENCH_WINDOWS', 8);
const BURST = env('BENCH_BURST', 10);
/** more agent counts at 200 edges, paced only, to find what is sustained ("" for none) */
const SWEEP = (process.env.BENCH_SWEEP ?? '500,750')
  .split(',')
  .filter((x) => x.trim() !== '')
  .map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 2) throw new Error(`BENCH_SWEEP: ${x} is not an agent count`);
    return n;
  });
const PROFILE = process.env.BENCH_PROFILE === '1';
/** extra node flags for the aggregator process, e.g. "--max-semi-space-size=32" */
const AGG_NODE_ARGS = (process.env.BENCH_AGG_NODE_ARGS ?? '').split(' ').filter((x) => x !== '');

const W = 1000;
const APP = 'bench';
const CONNECT = '/distappguard.v1.AgentService/Connect';
const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const base = mkdtempSync(join(tmpdir(), 'dag-agg-bench-'));

const nf = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const say = (s: string): void => void process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// ------------------------------------------------------------------ the partials

const THREADS = 16;
const CONNS = 8;

function ipOf(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function roleOf(label: string): { id: string; label: string } {
  return { id: roleId(label), label };
}

/** Agent i's partial graph of one window: exactly `e` edges (e ≥ 48), its flows, its stats. */
function partialOf(i: number, n: number, e: number): PartialWindow {
  const services = Math.max(2, Math.ceil(n / 20));
  const svc = (k: number) => `svc${k % services}`;
  const port = (k: number) => 7000 + (k % services);
  const me = svc(i);
  const host = `host-${i}`;
  const edges: Edge[] = [];
  const flows: Flow[] = [];
  const add = (src: string, dst: string, kind: Edge['kind'], bytes: number, count: number) => {
    const s = roleOf(src);
    const d = roleOf(dst);
    edges.push({ srcId: s.id, dstId: d.id, src, dst, kind, bytes, count });
  };
  const thread = (t: number) => `${me}/worker-${t}`;
  // network: 8 connections, client side on even agents, server side on odd ones
  const client = i % 2 === 0;
  const peer = client ? i + 1 : i - 1;
  for (let c = 0; c < CONNS; c++) {
    const t = thread(c);
    const small = 1000 + c;
    const large = 20_000 + 10 * c;
    let f: Flow;
    if (client && peer < n) {
      const ep = `net:tcp/private:${port(peer)}`;
      f = { proto: 'tcp', local: { ip: ipOf(i), port: 40_000 + c }, remote: { ip: ipOf(peer), port: port(peer) }, side: 'client', roleId: roleOf(t).id, role: t, endpointId: roleOf(ep).id, endpoint: ep, bytesOut: small, bytesIn: large, countOut: 10, countIn: 10 };
      add(t, ep, 'net', small, 10);
      add(ep, t, 'net', large, 10);
    } else if (!client) {
      const ep = `net:tcp/private:*→:${port(i)}`;
      f = { proto: 'tcp', local: { ip: ipOf(i), port: port(i) }, remote: { ip: ipOf(peer), port: 40_000 + c }, side: 'server', roleId: roleOf(t).id, role: t, endpointId: roleOf(ep).id, endpoint: ep, bytesOut: large, bytesIn: small, countOut: 10, countIn: 10 };
      add(ep, t, 'net', small, 10);
      add(t, ep, 'net', large, 10);
    } else {
      // the last agent of an odd count: a database outside the application
      const ep = 'net:tcp/public:5432';
      f = { proto: 'tcp', local: { ip: ipOf(i), port: 40_000 + c }, remote: { ip: '192.0.2.10', port: 5432 }, side: 'client', roleId: roleOf(t).id, role: t, endpointId: roleOf(ep).id, endpoint: ep, bytesOut: small, bytesIn: large, countOut: 10, countIn: 10 };
      add(t, ep, 'net', small, 10);
      add(ep, t, 'net', large, 10);
    }
    flows.push(f);
  }
  // memory: every thread allocates and frees
  for (let t = 0; t < THREADS; t++) {
    add(`mem:${me}`, thread(t), 'mem', 65_536 * (t + 1), 4);
    add(thread(t), `mem:${me}`, 'mem', 32_768 * (t + 1), 2);
  }
  // files: the rest, threads reading and writing the service's files (shared by its
  // replicas); one file in ten is this host's own
  for (let k = 0; edges.length < e; k++) {
    const f = Math.floor(k / (2 * THREADS));
    const t = thread(Math.floor(k / 2) % THREADS);
    const file = f % 10 === 9 ? `file:/var/tmp/${host}/spill-${f}` : `file:/var/lib/${me}/segment-${f}`;
    if (k % 2 === 0) add(file, t, 'file', 4096 * (1 + (k % 7)), 1 + (k % 5));
    else add(t, file, 'file', 512 * (1 + (k % 11)), 1 + (k % 3));
  }
  if (edges.length !== e) throw new Error(`partial of ${edges.length} edges, wanted ${e}`);
  return { app: APP, host, windowStart: 0, windowMs: W, edges, flows, stats: { events: 40 * e, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 } };
}

function varint(v: number | bigint): number[] {
  let x = BigInt(v);
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

/**
 * An agent's messages, encoded once: the body of a PartialWindow without its first three
 * fields (roles, edges, flows, stats: fields 4, 5, 6, 15), so each send only writes seq,
 * window_start_ms and window_ms in front (fields 1–3: field order is kept) and the
 * AgentMessage wrapper (field 2, length-delimited). Keeps this process's CPU for the streams.
 */
class Encoded {
  readonly tail: Uint8Array;
  constructor(w: PartialWindow) {
    const m = toWireWindow(w, 1);
    m.seq = 0n;
    m.windowStartMs = 0n;
    m.windowMs = 0;
    this.tail = toBinary(pb.PartialWindowSchema, m); // proto3 zeros are not written
  }

  message(seq: number, windowStart: number): Buffer {
    const head = [0x08, ...varint(seq), 0x10, ...varint(windowStart), 0x18, ...varint(W)];
    const len = head.length + this.tail.length;
    const wrap = [0x12, ...varint(len)];
    const b = Buffer.allocUnsafe(wrap.length + len);
    b.set(wrap, 0);
    b.set(head, wrap.length);
    b.set(this.tail, wrap.length + head.length);
    return b;
  }
}

// ------------------------------------------------------------------ the agents

const identity = (b: Buffer): Buffer => b;

class SimAgent {
  readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  readonly welcomed: Promise<void>;
  readonly sentAt = new Map<number, number>();
  /** send → ack, ms, per seq */
  readonly ackMs = new Map<number, number>();
  acked = 0;
  status: grpc.StatusObject | undefined;
  private onAck: (() => void) | undefined;

  constructor(
    addr: string,
    readonly id: string,
    readonly enc: Encoded,
    hello: HelloInfo,
  ) {
    // its own connection, as an agent on another host has
    this.client = new grpc.Client(addr, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    this.call = this.client.makeBidiStreamRequest(CONNECT, identity, identity);
    let welcome: () => void = () => {};
    let fail: (e: Error) => void = () => {};
    this.welcomed = new Promise<void>((res, rej) => ([welcome, fail] = [res, rej]));
    this.call.on('data', (b: Buffer) => {
      const m = fromBinary(pb.AggregatorMessageSchema, b);
      if (m.body.case === 'welcome') welcome();
      else if (m.body.case === 'ack') {
        const seq = Number(m.body.value.seq);
        const now = Date.now();
        for (let s = this.acked + 1; s <= seq; s++) {
          const t = this.sentAt.get(s);
          if (t !== undefined) this.ackMs.set(s, now - t);
        }
        if (seq > this.acked) this.acked = seq;
        this.onAck?.();
      }
    });
    this.call.on('error', () => {});
    this.call.on('status', (s) => {
      this.status = s;
      if (s.code !== grpc.status.OK) fail(new Error(`${id}: ${grpc.status[s.code]} ${s.details}`));
      this.onAck?.();
    });
    this.call.write(Buffer.from(toBinary(pb.AgentMessageSchema, create(pb.AgentMessageSchema, { body: { case: 'hello', value: toWireHello(hello) } }))));
  }

  send(seq: number, windowStart: number): void {
    this.sentAt.set(seq, Date.now());
    this.call.write(this.enc.message(seq, windowStart));
  }

  /** Resolves when seq is acked (or the stream ended), or after `ms`. */
  async ackedUpTo(seq: number, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (this.acked < seq && this.status === undefined && Date.now() < end) {
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.max(1, end - Date.now()));
        this.onAck = () => {
          clearTimeout(t);
          res();
        };
      });
    }
    this.onAck = undefined;
    return this.acked >= seq;
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

// ------------------------------------------------------------------ the aggregator process

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

class Aggregator {
  readonly proc: ChildProcess;
  readonly merged: { window: string; reason: string; edges: number; at: number }[] = [];
  readonly errors: LogLine[] = [];
  stopped: LogLine | undefined;
  readonly listening: Promise<string>;
  readonly exited: Promise<number | null>;
  readonly db: string;
  readonly profDir: string;

  constructor(readonly name: string) {
    const dir = join(base, name);
    this.db = join(dir, 'agg.db');
    this.profDir = join(dir, 'prof');
    const args = [...AGG_NODE_ARGS, ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${this.profDir}`] : []), MAIN, 'aggregator', '--listen', '127.0.0.1:0', '--db', this.db, '--grace', '1s'];
    this.proc = spawn(process.execPath, args, { env: { ...process.env, NO_PRETTY: '1', DISTAPPGUARD_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    this.exited = new Promise((res) => this.proc.on('exit', (code) => res(code)));
    let listen: (addr: string) => void = () => {};
    let fail: (e: Error) => void = () => {};
    this.listening = new Promise((res, rej) => ([listen, fail] = [res, rej]));
    void this.exited.then((code) => fail(new Error(`aggregator exited (${code}) before listening`)));
    const rl = createInterface({ input: this.proc.stderr! });
    rl.on('line', (text) => {
      let l: LogLine;
      try {
        l = JSON.parse(text) as LogLine;
      } catch {
        say(`  aggregator: ${text}`);
        return;
      }
      if (l.msg === 'window merged') this.merged.push({ window: String(l.window), reason: String(l.reason), edges: Number(l.edges), at: Date.now() });
      else if (l.msg === 'aggregator listening') listen(String(l.listen));
      else if (l.msg === 'aggregator stopped') this.stopped = l;
      if (l.level >= 50) this.errors.push(l);
    });
  }

  /** CPU seconds (user + system) so far. */
  cpuSeconds(): number {
    const f = readFileSync(`/proc/${this.proc.pid}/stat`, 'utf8');
    const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(parts[11]) + Number(parts[12])) / 100; // utime, stime in clock ticks (100 Hz)
  }

  /** Peak resident set (VmHWM), bytes. */
  peakRss(): number {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  }

  async stop(): Promise<void> {
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(t);
  }
}

// ------------------------------------------------------------------ one scenario

interface Result {
  name: string;
  agents: number;
  edges: number;
  bodyBytes: number;
  connectS: number;
  paced: {
    windows: number;
    complete: number;
    endToCommit: number[];
    closeToCommit: number[];
    ackMs: number[];
    cpu: number;
    /** this process (the agents), for comparison */
    benchCpu: number;
    unacked: number;
  };
  burst: { partialsPerS: number; windowsPerS: number; edgesPerS: number; cpu: number; seconds: number; unacked: number };
  mergedEdges: number;
  peakRss: number;
  dbBytes: number;
  counters: Record<string, number>;
  stored: { partials: number; windows: number; closed: number; late: number };
  errors: number;
}

async function scenario(name: string, n: number, e: number, opts: { burst: boolean; warmup: number; windows: number }): Promise<Result> {
  say(`\n${name}: ${nf.format(n)} agents × ${nf.format(e)} edges per partial`);
  const agg = new Aggregator(name.replace(/\W+/g, '-'));
  const addr = await agg.listening;

  // the partials, encoded once per agent; one decoded back to check the splicing
  const enc = Array.from({ length: n }, (_, i) => new Encoded(partialOf(i, n, e)));
  const probe = fromBinary(pb.AgentMessageSchema, enc[0].message(7, 5 * W));
  const hello0: HelloInfo = { agentId: 'agent-0', host: 'host-0', app: APP, agentVersion: 'bench', protocolVersion: 1, windowMs: W, collector: 'replay' };
  if (probe.body.case !== 'window') throw new Error('encoded message is not a window');
  const check = fromWireWindow(probe.body.value, hello0);
  if (!check.ok || check.value.seq !== 7 || check.value.window.windowStart !== 5 * W || check.value.window.edges.length !== e) throw new Error(`encoded window does not decode as sent: ${check.ok ? 'wrong fields' : check.error.message}`);
  const bodyBytes = enc[0].message(1, 0).length;

  // connect everyone
  const t0 = Date.now();
  const agents: SimAgent[] = [];
  for (let i = 0; i < n; i++) {
    agents.push(new SimAgent(addr, `agent-${i}`, enc[i], { ...hello0, agentId: `agent-${i}`, host: `host-${i}` }));
    if (i % 100 === 99) await sleep(0); // let the connections start
  }
  await Promise.all(agents.map((a) => a.welcomed));
  const connectS = (Date.now() - t0) / 1000;
  say(`  ${nf.format(n)} streams welcomed in ${nf1.format(connectS)} s`);

  // paced: one partial per agent per real window, sent at the window's end
  let seq = 0;
  const total = opts.warmup + opts.windows;
  const first = Math.ceil(Date.now() / W) * W + W; // end of the first window sent
  const lastSent = new Map<number, number>(); // windowStart → when its last partial was written
  let cpu0 = 0;
  let wall0 = 0;
  let bench0 = process.cpuUsage();
  for (let k = 0; k < total; k++) {
    const end = first + k * W;
    await sleep(end - Date.now());
    if (k === opts.warmup) [cpu0, wall0, bench0] = [agg.cpuSeconds(), Date.now(), process.cpuUsage()];
    seq++;
    for (const a of agents) a.send(seq, end - W);
    lastSent.set(end - W, Date.now());
    say(`  window ${k + 1}/${total} sent${k < opts.warmup ? ' (warm-up)' : ''}`);
  }
  const pacedStarts = [...lastSent.keys()].slice(opts.warmup);
  const pacedAcked = await Promise.all(agents.map((a) => a.ackedUpTo(seq, 30_000)));
  // the last window closes once its last partial is committed; give it the grace and then some
  const mergedBy = Date.now() + 10_000;
  while (Date.now() < mergedBy && agg.merged.length < total) await sleep(20);
  const pacedWall = (Date.now() - wall0) / 1000;
  const cpuPaced = (agg.cpuSeconds() - cpu0) / pacedWall;
  const benchUse = process.cpuUsage(bench0);
  const cpuBench = (benchUse.user + benchUse.system) / 1e6 / pacedWall;

  // burst: windows in the future (only completeness closes them), back to back
  const burst = opts.burst ? BURST : 0;
  await sleep(500);
  const burstBase = Math.ceil(Date.now() / W) * W + 3_600_000;
  const mergedBefore = agg.merged.length;
  const cpu1 = agg.cpuSeconds();
  const tb = Date.now();
  for (let b = 0; b < burst; b++) {
    seq++;
    for (const a of agents) a.send(seq, burstBase + b * W);
    await sleep(0);
  }
  const burstAcked = burst ? await Promise.all(agents.map((a) => a.ackedUpTo(seq, 120_000))) : [];
  const tAcked = Date.now();
  const burstEnd = Date.now() + 60_000;
  while (burst && Date.now() < burstEnd && agg.merged.length < mergedBefore + burst) await sleep(10);
  const tMerged = burst && agg.merged.length >= mergedBefore + burst ? agg.merged[mergedBefore + burst - 1].at : NaN;
  const cpuBurst = (agg.cpuSeconds() - cpu1) / ((tMerged - tb) / 1000);
  const peakRss = agg.peakRss();

  for (const a of agents) a.close();
  await sleep(200);
  await agg.stop();

  // what the file says
  const db = new Database(agg.db, { readonly: true });
  const rows = db.prepare('SELECT window_start, status, closed_at, merged_at, edge_count, late_partials, json_array_length(hosts) AS hosts FROM windows WHERE app = ? ORDER BY window_start').all(APP) as {
    window_start: number; status: string; closed_at: number | null; merged_at: number | null; edge_count: number; late_partials: number; hosts: number;
  }[];
  const partials = (db.prepare('SELECT count(*) AS n FROM partials').get() as { n: number }).n;
  db.close();
  const byStart = new Map(rows.map((r) => [r.window_start, r]));
  // merged_at is the commit of the merged window (a late partial would move it: none then)
  const endToCommit: number[] = [];
  const closeToCommit: number[] = [];
  for (const ws of pacedStarts) {
    const r = byStart.get(ws);
    if (!r || r.merged_at === null) continue;
    endToCommit.push(r.merged_at - (ws + W));
    closeToCommit.push(r.merged_at - lastSent.get(ws)!);
  }
  // complete: closed because every agent had reported it (not by grace), with all N hosts
  const closedComplete = new Set(agg.merged.filter((m) => m.reason === 'complete').map((m) => Date.parse(m.window)));
  const complete = pacedStarts.filter((ws) => closedComplete.has(ws) && byStart.get(ws)?.hosts === n && byStart.get(ws)?.late_partials === 0).length;
  const ackMs = agents.flatMap((a) => pacedStarts.map((_, j) => a.ackMs.get(opts.warmup + j + 1)).filter((x): x is number => x !== undefined));
  const burstSeconds = (tAcked - tb) / 1000;
  // the last burst window's merged commit, as the file has it
  const burstMergedS = (Math.max(...rows.filter((r) => r.window_start >= burstBase).map((r) => r.merged_at ?? NaN)) - tb) / 1000;
  const counters = (agg.stopped?.ingest ?? {}) as Record<string, number>;
  const burstWindows = rows.filter((r) => r.window_start >= burstBase);
  return {
    name, agents: n, edges: e, bodyBytes, connectS,
    paced: { windows: pacedStarts.length, complete, endToCommit, closeToCommit, ackMs, cpu: cpuPaced, benchCpu: cpuBench, unacked: pacedAcked.filter((x) => !x).length },
    burst: {
      partialsPerS: (n * burst) / burstSeconds,
      windowsPerS: burst / burstMergedS,
      edgesPerS: (n * e * burst) / burstMergedS,
      cpu: cpuBurst,
      seconds: burstMergedS,
      unacked: burstAcked.filter((x) => !x).length,
    },
    mergedEdges: pct((burstWindows.length ? burstWindows : rows).map((r) => r.edge_count), 50),
    peakRss,
    dbBytes: ['', '-wal'].reduce((s, x) => s + (statSync(agg.db + x, { throwIfNoEntry: false })?.size ?? 0), 0),
    counters,
    stored: { partials, windows: rows.length, closed: rows.filter((r) => r.status === 'closed').length, late: rows.reduce((s, r) => s + r.late_partials, 0) },
    errors: agg.errors.length,
  };
}

// ------------------------------------------------------------------ report

/** Every paced window closed complete (no grace, no late partial), all acked, < 1 s from window end and from window close to its merged commit. */
function sustained(r: Result): boolean {
  const p = r.paced;
  return p.complete === p.windows && p.unacked === 0 && p.endToCommit.length === p.windows && Math.max(...p.closeToCommit) < 1000 && Math.max(...p.endToCommit) < 1000;
}

function table(rs: Result[]): void {
  const mib = (b: number) => `${nf.format(b / 2 ** 20)} MiB`;
  const ms = (xs: number[]) => `${nf.format(pct(xs, 50))} / ${nf.format(Math.max(...xs))} ms`;
  const lines: [string, (r: Result) => string][] = [
    ['partial on the wire', (r) => `${nf.format(r.bodyBytes)} B`],
    ['streams connected (hello → welcome, all)', (r) => `${nf1.format(r.connectS)} s`],
    [`paced: windows measured (closed complete)`, (r) => `${r.paced.windows} (${r.paced.complete})`],
    ['paced: window end → merged commit, p50 / max', (r) => ms(r.paced.endToCommit)],
    ['paced: last partial sent → merged commit, p50 / max', (r) => ms(r.paced.closeToCommit)],
    ['paced: partial sent → ack, p50 / p99', (r) => `${nf.format(pct(r.paced.ackMs, 50))} / ${nf.format(pct(r.paced.ackMs, 99))} ms`],
    ['paced: aggregator CPU (one core = 100%)', (r) => `${nf.format(100 * r.paced.cpu)}%`],
    ['paced: agents (this process) CPU', (r) => `${nf.format(100 * r.paced.benchCpu)}%`],
    ['burst: partials committed and acked per s', (r) => (r.burst.seconds > 0 ? nf.format(r.burst.partialsPerS) : '–')],
    ['burst: windows merged per s', (r) => (r.burst.seconds > 0 ? nf1.format(r.burst.windowsPerS) : '–')],
    ['burst: partial edges merged per s', (r) => (r.burst.seconds > 0 ? nf.format(r.burst.edgesPerS) : '–')],
    ['burst: aggregator CPU (one core = 100%)', (r) => (r.burst.seconds > 0 ? `${nf.format(100 * r.burst.cpu)}%` : '–')],
    ['merged window: edges (from partials × edges)', (r) => `${nf.format(r.mergedEdges)} (${nf.format(r.agents * r.edges)})`],
    ['aggregator peak RSS (VmHWM)', (r) => mib(r.peakRss)],
    ['database size (incl. WAL)', (r) => mib(r.dbBytes)],
    ['ingest: commit batches, max close lag', (r) => `${nf.format(r.counters.batches)}, ${nf.format(r.counters.maxCloseLagMs)} ms`],
    ['stored: partials, windows (closed), late', (r) => `${nf.format(r.stored.partials)}, ${r.stored.windows} (${r.stored.closed}), ${r.stored.late}`],
    ['unacked partials, aggregator errors', (r) => `${r.paced.unacked + r.burst.unacked}, ${r.errors}`],
    ['sustained: every window complete, < 1 s to commit', (r) => (sustained(r) ? 'yes' : 'no')],
  ];
  const w0 = Math.max(...lines.map((l) => l[0].length)) + 2;
  const heads = rs.map((r) => `${nf.format(r.agents)} × ${nf.format(r.edges)}`);
  const w1 = Math.max(24, ...heads.map((h) => h.length + 2));
  const out = [`${'agents × edges per partial'.padEnd(w0)}${heads.map((h) => h.padStart(w1)).join('')}`];
  for (const [label, f] of lines) out.push(`${label.padEnd(w0)}${rs.map((r) => f(r).padStart(w1)).join('')}`);
  process.stdout.write(`\n${out.join('\n')}\n`);
}

async function main(): Promise<void> {
  say(`aggregator bench: ${availableParallelism()} CPUs, load average ${loadavg().map((x) => nf1.format(x)).join(' ')}; files in ${base}`);
  const results: Result[] = [];
  const full = { burst: true, warmup: WARMUP, windows: WINDOWS };
  results.push(await scenario('A', AGENTS, EDGES, full));
  if (AGENTS_LARGE > 0) results.push(await scenario('B', AGENTS_LARGE, EDGES_LARGE, full));
  for (const n of SWEEP) results.push(await scenario(`S${n}`, n, EDGES, { burst: false, warmup: 1, windows: Math.min(WINDOWS, 5) }));
  table(results);
  const a = results[0];
  const met = sustained(a) && a.paced.cpu < 1;
  process.stdout.write(
    `\ntarget (${nf.format(a.agents)} agents × ${nf.format(a.edges)} edges per 1 s window, sustained, < 1 s from window close to commit): ${met ? 'MET' : 'NOT MET'}` +
      ` — worst window end → commit ${nf.format(Math.max(...a.paced.endToCommit))} ms, aggregator at ${nf.format(100 * a.paced.cpu)}% of one core\n`,
  );
  if (PROFILE) say(`CPU profiles of the aggregator: ${join(base, '*', 'prof')} (kept)`);
  else rmSync(base, { recursive: true, force: true });
  say(`load average after: ${loadavg().map((x) => nf1.format(x)).join(' ')}`);
}

await main();
