/**
 * The real AggregatorServer (aggregator/server.ts) over loopback, with a real Store on a temp
 * SQLite file and its pino log captured, against hostile and broken agents: each bad stream
 * must end alone, with a gRPC status naming the problem and a log line saying the same, while
 * a well-behaved agent on another stream keeps getting its windows committed and acked.
 * Also: resends are acked but stored once, acks are cumulative and sent only after the commit,
 * and windows close (complete, or by grace) into store.listWindows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { pino } from 'pino';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pb from '../../shared/gen/distappguard/v1/agent_pb.js';
import { clientConstructor } from '../../shared/grpc-service.js';
import { DEFAULT_WIRE_LIMITS, toWireHello, toWireWindow, type HelloInfo, type WireLimits } from '../../shared/wire.js';
import { roleId } from '../../shared/role-id.js';
import type { Edge, Flow, PartialWindow } from '../../shared/graph.js';
import { AggregatorServer } from '../../aggregator/server.js';
import { Store } from '../../aggregator/store/index.js';

const CONNECT = '/distappguard.v1.AgentService/Connect';
const AgentClient = clientConstructor(pb.AgentService);
const insecure = grpc.credentials.createInsecure();
const identity = (b: Buffer): Buffer => b;

// small limits keep the over-limit cases cheap
const LIMITS: WireLimits = { ...DEFAULT_WIRE_LIMITS, maxEdges: 50, maxMessageBytes: 64 * 1024 };
const GRACE_MS = 400;
const BATCH_MS = 150;
const HELLO_TIMEOUT_MS = 300;
const W = 1000;

type Log = { level: number; msg: string; [k: string]: unknown };
const logLines: Log[] = [];
const log = pino({ level: 'debug', base: null }, { write: (s: string) => void logLines.push(JSON.parse(s) as Log) });

let dir = '';
let dbFile = '';
let store: Store;
/** a second connection: sees only what was committed */
let reader: Store;
let server: AggregatorServer;
let addr = '';

// ------------------------------------------------------------------ windows

function role(label: string): { id: string; label: string } {
  return { id: roleId(label), label };
}

function edge(src: string, dst: string, kind: Edge['kind'], bytes: number, count = 1): Edge {
  const s = role(src);
  const d = role(dst);
  return { srcId: s.id, dstId: d.id, src: s.label, dst: d.label, kind, bytes, count };
}

function partial(host: string, app: string, windowStart: number, edges: Edge[] = [edge(`${host}/main`, 'file:/var/log/app.log', 'file', 100)], flows: Flow[] = []): PartialWindow {
  return { app, host, windowStart, windowMs: W, edges, flows, stats: { events: edges.length, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 } };
}

function windowMsg(w: PartialWindow, seq: number): pb.AgentMessage {
  return create(pb.AgentMessageSchema, { body: { case: 'window', value: toWireWindow(w, seq) } });
}

function bytesOf(m: pb.AgentMessage): Buffer {
  return Buffer.from(toBinary(pb.AgentMessageSchema, m));
}

function hello(agentId: string, app: string, over: Partial<HelloInfo> = {}): HelloInfo {
  return { agentId, host: `host-${agentId}`, app, agentVersion: 'test', protocolVersion: 1, windowMs: W, collector: 'replay', ...over };
}

function helloMsg(h: HelloInfo): pb.AgentMessage {
  return create(pb.AgentMessageSchema, { body: { case: 'hello', value: toWireHello(h) } });
}

// ------------------------------------------------------------------ clients

async function waitFor<T>(what: string, f: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Log lines at warn or above from `from` on, whose text or fields mention `needle`. */
function warnings(from: number, needle: string): Log[] {
  return logLines.slice(from).filter((l) => l.level >= 40 && JSON.stringify(l).includes(needle));
}

interface AckSeen {
  seq: number;
  /** what the committed view of the store held for that agent when the ack arrived */
  committedSeqs: number[];
  at: number;
}

/** A typed agent stream that records everything the aggregator sends it. */
class Agent {
  readonly client: InstanceType<typeof AgentClient>;
  readonly call: grpc.ClientDuplexStream<pb.AgentMessage, pb.AggregatorMessage>;
  readonly got: pb.AggregatorMessage[] = [];
  readonly acks: AckSeen[] = [];
  readonly status: Promise<grpc.StatusObject>;
  ended: grpc.StatusObject | undefined;

  constructor(
    readonly h: HelloInfo,
    opts: { sendHello?: boolean } = {},
  ) {
    this.client = new AgentClient(addr, insecure);
    this.call = this.client.connect();
    this.call.on('data', (m: pb.AggregatorMessage) => {
      this.got.push(m);
      if (m.body.case === 'ack') {
        const seq = Number(m.body.value.seq);
        this.acks.push({ seq, committedSeqs: committedSeqsOf(this.h.agentId), at: Date.now() });
      }
    });
    this.call.on('error', () => {}); // the status event carries the same code and details
    this.status = new Promise((resolve) =>
      this.call.on('status', (s) => {
        this.ended = s;
        resolve(s);
      }),
    );
    if (opts.sendHello !== false) this.call.write(helloMsg(h));
  }

  async welcome(): Promise<pb.Welcome> {
    const m = await waitFor(`welcome for ${this.h.agentId}`, () => this.got.find((x) => x.body.case === 'welcome') ?? (this.ended ? new Error(`stream ended: ${this.ended.details}`) : undefined));
    if (m instanceof Error) throw m;
    return m.body.value as pb.Welcome;
  }

  send(seq: number, w: PartialWindow): void {
    this.call.write(windowMsg(w, seq));
  }

  /** Resolves with the first ack covering `seq`. */
  async acked(seq: number, timeoutMs = 5000): Promise<AckSeen> {
    const a = await waitFor(`ack ${seq} for ${this.h.agentId}`, () => this.acks.find((x) => x.seq >= seq) ?? (this.ended ? new Error(`stream ended: ${this.ended.code} ${this.ended.details}`) : undefined), timeoutMs);
    if (a instanceof Error) throw a;
    return a;
  }

  async close(): Promise<grpc.StatusObject> {
    this.call.end();
    const s = await this.status;
    this.client.close();
    return s;
  }
}

function committedSeqsOf(agentId: string): number[] {
  return (dbRows(agentId) as { seq: number }[]).map((r) => r.seq);
}

/** Rows of `partials` for an agent, through a read-only connection: only what was committed. */
let dbRows: (agentId: string) => unknown[] = () => [];
let agentRow: (agentId: string) => unknown = () => undefined;
let rawDb: Database.Database | undefined;

/** A client writing raw bytes on the method path, as a broken or hostile peer would. */
function rawStream() {
  const client = new grpc.Client(addr, insecure);
  const call = client.makeBidiStreamRequest(CONNECT, identity, identity);
  const got: Buffer[] = [];
  call.on('data', (b: Buffer) => got.push(b)); // read: grpc-js reports only what is read
  call.on('error', () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return { client, call, got, status };
}

/** The steady agent: app `steady` alone, so each of its windows closes as soon as it is committed. */
let steady: Agent;
let steadySeq = 0;
const STEADY_BASE = 1_600_000_000_000;

/** One more window from the steady agent: acked, and committed when the ack arrived. */
async function steadyRoundTrip(): Promise<void> {
  const seq = ++steadySeq;
  steady.send(seq, partial('host-steady', 'steady', STEADY_BASE + seq * W));
  const a = await steady.acked(seq);
  expect(a.seq).toBe(seq);
  expect(a.committedSeqs).toContain(seq);
}

// ------------------------------------------------------------------ lifecycle

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dag-hostile-'));
  dbFile = join(dir, 'agg.db');
  store = Store.open(dbFile);
  reader = Store.open(dbFile, { readonly: true });
  // the store has no per-agent query; the test reads the file with SQL through better-sqlite3
  const raw = new Database(dbFile, { readonly: true });
  rawDb = raw;
  const q = raw.prepare('SELECT seq, window_start, late FROM partials WHERE agent_id = ? ORDER BY seq');
  dbRows = (agentId) => q.all(agentId);
  const qa = raw.prepare('SELECT agent_id, host, app, last_seq FROM agents WHERE agent_id = ?');
  agentRow = (agentId) => qa.get(agentId);
  server = new AggregatorServer({ listen: '127.0.0.1:0', store, log, graceMs: GRACE_MS, batchMs: BATCH_MS, limits: LIMITS, helloTimeoutMs: HELLO_TIMEOUT_MS });
  addr = await server.start();
  // windows are merged on the merge worker (the compiled one in dist/), as in production
  expect(server.ingest.merges.kind).toBe('worker');
  steady = new Agent(hello('steady', 'steady', { host: 'host-steady' }));
  await steady.welcome();
  await steadyRoundTrip();
});

afterAll(async () => {
  if (steady) await steady.close();
  await server?.stop();
  rawDb?.close();
  reader?.close();
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs a hostile case while the steady agent has a window in flight, then checks that the
 * steady agent's window was committed and acked and that it can go on.
 */
async function whileSteadyWorks<T>(f: () => Promise<T>): Promise<T> {
  const seq = ++steadySeq;
  steady.send(seq, partial('host-steady', 'steady', STEADY_BASE + seq * W));
  const r = await f();
  const a = await steady.acked(seq);
  expect(a.committedSeqs).toContain(seq);
  await steadyRoundTrip();
  expect(steady.ended).toBeUndefined();
  return r;
}

// ------------------------------------------------------------------ hostile input

describe('aggregator against hostile agents', () => {
  it('an oversized message ends its stream with RESOURCE_EXHAUSTED and a log line', async () => {
    const from = logLines.length;
    const st = await whileSteadyWorks(async () => {
      const a = new Agent(hello('big', 'hostile'));
      await a.welcome();
      // 3,000 edges with long labels: well over the 64 KiB message limit (and over maxEdges,
      // but the transport refuses the size before anything parses it)
      const edges = Array.from({ length: 3000 }, (_, i) => edge(`big/thread-${i}-${'x'.repeat(40)}`, `file:/data/${i}`, 'file', i + 1));
      a.send(1, partial('host-big', 'hostile', 1_700_000_000_000, edges));
      const s = await a.status;
      a.client.close();
      return s;
    });
    expect(st.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(st.details).toMatch(/^Received message larger than max \(\d+ vs 65536\)$/);
    const lines = await waitFor('log line', () => {
      const l = warnings(from, 'larger than max');
      return l.length > 0 ? l : undefined;
    });
    expect(lines[0]).toMatchObject({ code: 'RESOURCE_EXHAUSTED', details: st.details });
    expect(dbRows('big')).toEqual([]);
  });

  it('truncated protobuf bytes end the stream with INVALID_ARGUMENT naming the parse error', async () => {
    const from = logLines.length;
    const st = await whileSteadyWorks(async () => {
      const r = rawStream();
      r.call.write(bytesOf(helloMsg(hello('trunc', 'hostile'))));
      const full = bytesOf(windowMsg(partial('host-trunc', 'hostile', 1_700_000_000_000), 1));
      r.call.write(full.subarray(0, full.length - 7)); // the tail of the window is missing
      const s = await r.status;
      expect(r.got.length).toBe(1); // the welcome
      r.client.close();
      return s;
    });
    expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(st.details).toMatch(/^distappguard\.v1\.AgentMessage: malformed message \(\d+ bytes\): .+/);
    const l = await waitFor('log line', () => warnings(from, 'malformed message')[0]);
    expect(l).toMatchObject({ agent: 'trunc', code: grpc.status.INVALID_ARGUMENT });
    expect(dbRows('trunc')).toEqual([]);
  });

  it('a well-framed window whose own bytes do not parse is refused the same way (the window is parsed after the adapter)', async () => {
    const from = logLines.length;
    const st = await whileSteadyWorks(async () => {
      const r = rawStream();
      r.call.write(bytesOf(helloMsg(hello('inner', 'hostile'))));
      // field 2 with the right length around bytes that are no PartialWindow: the server keeps
      // such a window unparsed at first (aggregator/agent-message.ts) and finds it malformed later
      r.call.write(Buffer.from([0x12, 0x03, 0x0a, 0xff, 0xff]));
      const s = await r.status;
      expect(r.got.length).toBe(1); // the welcome
      r.client.close();
      return s;
    });
    expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(st.details).toMatch(/^distappguard\.v1\.AgentMessage: malformed message \(5 bytes\): .+/);
    expect(await waitFor('log line', () => warnings(from, 'malformed message')[0])).toMatchObject({ agent: 'inner', code: grpc.status.INVALID_ARGUMENT });
    expect(dbRows('inner')).toEqual([]);
  });

  it('a window cut short at a field boundary (no stats) is refused, not read as a smaller graph', async () => {
    const from = logLines.length;
    const st = await whileSteadyWorks(async () => {
      const a = new Agent(hello('cut', 'hostile'));
      await a.welcome();
      const m = windowMsg(partial('host-cut', 'hostile', 1_700_000_000_000), 1);
      if (m.body.case === 'window') m.body.value.stats = undefined;
      a.call.write(m);
      const s = await a.status;
      a.client.close();
      return s;
    });
    expect(st).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'window 1: stats: missing (the message may have been cut short)' });
    expect(await waitFor('log line', () => warnings(from, 'stats: missing')[0])).toMatchObject({ agent: 'cut', code: 'INVALID_ARGUMENT' });
  });

  it('garbage bytes end the stream with INVALID_ARGUMENT before any hello', async () => {
    const from = logLines.length;
    const st = await whileSteadyWorks(async () => {
      const r = rawStream();
      r.call.write(Buffer.from('GET / HTTP/1.1\r\nHost: aggregator\r\n\r\n'));
      const s = await r.status;
      expect(r.got).toEqual([]);
      r.client.close();
      return s;
    });
    expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(st.details).toMatch(/^distappguard\.v1\.AgentMessage: malformed message \(36 bytes\): .+/);
    expect(await waitFor('log line', () => warnings(from, 'malformed message')[0])).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });

  it('a window before the hello: FAILED_PRECONDITION', async () => {
    const from = logLines.length;
    const st = await whileSteadyWorks(async () => {
      const a = new Agent(hello('eager', 'hostile'), { sendHello: false });
      a.send(1, partial('host-eager', 'hostile', 1_700_000_000_000));
      const s = await a.status;
      a.client.close();
      return s;
    });
    expect(st).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'the first message of a stream must be a hello' });
    expect(warnings(from, 'the first message of a stream must be a hello')[0]).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(dbRows('eager')).toEqual([]);
  });

  it('a hello with an unsupported protocol version: INVALID_ARGUMENT naming the versions', async () => {
    const from = logLines.length;
    const st = await whileSteadyWorks(async () => {
      const a = new Agent(hello('future', 'hostile', { protocolVersion: 2 }));
      const s = await a.status;
      expect(a.got).toEqual([]); // no welcome
      a.client.close();
      return s;
    });
    expect(st).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'hello: protocol_version: 2 is not supported (supported: 1)' });
    expect(warnings(from, 'protocol_version: 2 is not supported')[0]).toMatchObject({ code: 'INVALID_ARGUMENT' });
    // an agent that was never welcomed leaves no trace in the agents table
    expect(agentRow('future')).toBeUndefined();
  });

  const START = 1_700_000_000_000;
  const inconsistent: { name: string; code: grpc.status; details: string; make: () => pb.AgentMessage }[] = [
    {
      name: 'an edge index out of range',
      code: grpc.status.INVALID_ARGUMENT,
      details: 'window 2: edges[0].dst: role index 40 out of range (roles: 2)',
      make: () => {
        const m = windowMsg(partial('h', 'hostile', START), 1);
        if (m.body.case === 'window') m.body.value.edges[0].dst = 40;
        return m;
      },
    },
    {
      name: "window_ms different from the hello's",
      code: grpc.status.INVALID_ARGUMENT,
      details: "window 2: window_ms: 2000 differs from the hello's window_ms 1000",
      make: () => windowMsg({ ...partial('h', 'hostile', START), windowMs: 2000 }, 1),
    },
    {
      name: 'window_start not aligned',
      code: grpc.status.INVALID_ARGUMENT,
      details: `window 2: window_start_ms: ${START + 500} is not a multiple of window_ms 1000`,
      make: () => windowMsg(partial('h', 'hostile', START + 500), 1),
    },
    {
      name: 'more edges than limits.maxEdges',
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: 'window 2: edges: 51 edges exceed the limit of 50',
      make: () => windowMsg(partial('h', 'hostile', START, Array.from({ length: 51 }, (_, i) => edge('h/main', `file:/f${i}`, 'file', 1))), 1),
    },
  ];
  for (const c of inconsistent) {
    it(`an inconsistent window (${c.name}) is refused with the field named`, async () => {
      const from = logLines.length;
      const id = `bad-${inconsistent.indexOf(c)}`;
      const st = await whileSteadyWorks(async () => {
        const a = new Agent(hello(id, 'hostile'));
        await a.welcome();
        // a good window first: it is committed and acked; the bad one ends the stream
        a.send(1, partial(`host-${id}`, 'hostile', START));
        await a.acked(1);
        const m = c.make();
        if (m.body.case === 'window') m.body.value.seq = 2n;
        a.call.write(m);
        const s = await a.status;
        a.client.close();
        // before the status, a Refusal naming the window, so the agent sets it aside
        const refusal = a.got.find((m) => m.body.case === 'refusal');
        expect(refusal?.body.value).toMatchObject({ seq: 2n, reason: c.details, code: c.code === grpc.status.RESOURCE_EXHAUSTED ? pb.Refusal_Code.LIMIT_EXCEEDED : pb.Refusal_Code.INVALID_WINDOW });
        return s;
      });
      expect(st).toMatchObject({ code: c.code, details: c.details });
      expect(warnings(from, c.details)[0]).toMatchObject({ agent: id, code: grpc.status[c.code] });
      expect(server.counters.invalidMessages).toBeGreaterThan(0);
      expect((dbRows(id) as { seq: number }[]).map((r) => r.seq)).toEqual([1]);
    });
  }

  it('a second stream with a connected agent id: ALREADY_EXISTS, and the first stream keeps working', async () => {
    const from = logLines.length;
    const first = new Agent(hello('twin', 'twins'));
    await first.welcome();
    first.send(1, partial('host-twin', 'twins', START));
    await first.acked(1);
    const st = await whileSteadyWorks(async () => {
      const second = new Agent(hello('twin', 'twins', { host: 'host-impostor' }));
      const s = await second.status;
      expect(second.got).toEqual([]);
      second.client.close();
      return s;
    });
    expect(st).toMatchObject({ code: grpc.status.ALREADY_EXISTS, details: 'agent twin is already connected on another stream' });
    expect(warnings(from, 'already connected')[0]).toMatchObject({ code: 'ALREADY_EXISTS' });
    // the refused hello changed nothing the first one recorded
    expect(agentRow('twin')).toMatchObject({ host: 'host-twin', last_seq: 1 });
    // the first stream is untouched
    first.send(2, partial('host-twin', 'twins', START + W));
    expect((await first.acked(2)).committedSeqs).toEqual([1, 2]);
    expect(first.ended).toBeUndefined();
    expect((await first.close()).code).toBe(grpc.status.OK);
    // once it has gone, the id may connect again, and is told what was committed
    const again = new Agent(hello('twin', 'twins'));
    expect((await again.welcome()).lastCommittedSeq).toBe(2n);
    await again.close();
  });

  it('a stream that never says hello: DEADLINE_EXCEEDED after helloTimeoutMs', async () => {
    const from = logLines.length;
    const t0 = Date.now();
    const st = await whileSteadyWorks(async () => {
      const r = rawStream();
      const s = await r.status;
      r.client.close();
      return s;
    });
    const took = Date.now() - t0;
    expect(st).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED, details: 'no hello within the time allowed' });
    expect(took).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 20);
    expect(warnings(from, 'no hello within the time allowed')[0]).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
  });

  it('many bad streams at once do not disturb a good one', async () => {
    await whileSteadyWorks(async () => {
      const raws = Array.from({ length: 20 }, (_, i) => {
        const r = rawStream();
        r.call.write(Buffer.from([0x12, 0x05 + i, 0x08]));
        return r;
      });
      const sts = await Promise.all(raws.map((r) => r.status));
      for (const r of raws) r.client.close();
      expect(new Set(sts.map((s) => s.code))).toEqual(new Set([grpc.status.INVALID_ARGUMENT]));
    });
  });
});

// ------------------------------------------------------------------ delivery and assembly

describe('aggregator delivery and window assembly', () => {
  it('acks only after the commit, cumulatively; the acked partials are in the file when the ack arrives', async () => {
    const a = new Agent(hello('acker', 'acks'));
    await a.welcome();
    const base = 1_650_000_000_000;
    const t0 = Date.now();
    a.send(1, partial('host-acker', 'acks', base));
    // within the batch delay: neither committed nor acked yet
    await new Promise((r) => setTimeout(r, BATCH_MS / 3));
    expect(a.acks).toEqual([]);
    expect(dbRows('acker')).toEqual([]);
    const first = await a.acked(1);
    expect(first.at - t0).toBeGreaterThanOrEqual(BATCH_MS - 20);
    expect(first.committedSeqs).toEqual([1]);
    // pipelined: several windows share a commit; every ack covers all seqs up to it
    for (let s = 2; s <= 6; s++) a.send(s, partial('host-acker', 'acks', base + (s - 1) * W));
    await a.acked(6);
    const seqs = a.acks.map((x) => x.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    for (const ack of a.acks) for (let s = 1; s <= ack.seq; s++) expect(ack.committedSeqs).toContain(s);
    // an old seq resent after a newer one was acked is answered with the cumulative ack
    a.send(3, partial('host-acker', 'acks', base + 2 * W));
    await waitFor('ack of the resend', () => a.acks.length > seqs.length);
    expect(a.acks.at(-1)!.seq).toBe(6);
    expect((dbRows('acker') as { seq: number }[]).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    await a.close();
  });

  it('a resent window (same seq) is acked but stored once, and is not counted late', async () => {
    const a = new Agent(hello('resender', 'resend'));
    await a.welcome();
    const ws = 1_660_000_000_000;
    a.send(1, partial('host-resender', 'resend', ws));
    await a.acked(1);
    await waitFor('window closed', () => reader.window('resend', ws)?.status === 'closed');
    const before = { ...server.ingest.counters };
    // the same window again on the same stream, then twice more in one batch
    a.send(1, partial('host-resender', 'resend', ws));
    await waitFor('second ack', () => a.acks.length >= 2);
    a.send(2, partial('host-resender', 'resend', ws + W));
    a.send(2, partial('host-resender', 'resend', ws + W));
    await waitFor('acks of seq 2', () => a.acks.filter((x) => x.seq === 2).length >= 1 && a.acks.length >= 4);
    expect(a.acks.map((x) => x.seq)).toEqual([1, 1, 2, 2]);
    await a.close();
    // after a reconnect the welcome says what is committed; a resend anyway is still stored once
    const b = new Agent(hello('resender', 'resend'));
    expect((await b.welcome()).lastCommittedSeq).toBe(2n);
    b.send(1, partial('host-resender', 'resend', ws));
    await b.acked(1);
    expect(b.acks[0].seq).toBe(2);
    await b.close();

    expect(dbRows('resender')).toEqual([
      { seq: 1, window_start: ws, late: 0 },
      { seq: 2, window_start: ws + W, late: 0 },
    ]);
    const c = server.ingest.counters;
    expect(c.duplicates - before.duplicates).toBe(3);
    expect(c.latePartials - before.latePartials).toBe(0);
    expect(c.windowsRemerged - before.windowsRemerged).toBe(0);
    const w = reader.window('resend', ws)!;
    expect(w).toMatchObject({ status: 'closed', latePartials: 0, hosts: ['host-resender'], edges: 1, bytes: 100 });
  });

  it('a window closes when every expected agent reported it, with flows matched across hosts', async () => {
    const from = logLines.length;
    const web = new Agent(hello('web', 'pair', { host: 'host-web' }));
    const db = new Agent(hello('db', 'pair', { host: 'host-db' }));
    await Promise.all([web.welcome(), db.welcome()]);
    // a window far enough ahead that its grace cannot close it during the test
    const ws = Math.ceil(Date.now() / W) * W + 60 * W;
    const webSide: Flow = {
      proto: 'tcp', local: { ip: '10.0.0.1', port: 41000 }, remote: { ip: '10.0.0.2', port: 5432 }, side: 'client',
      roleId: role('web/worker').id, role: 'web/worker', endpointId: role('net:tcp/private:5432').id, endpoint: 'net:tcp/private:5432',
      bytesOut: 300, bytesIn: 4000, countOut: 3, countIn: 3,
    };
    const dbSide: Flow = {
      proto: 'tcp', local: { ip: '10.0.0.2', port: 5432 }, remote: { ip: '10.0.0.1', port: 41000 }, side: 'server',
      roleId: role('db/conn').id, role: 'db/conn', endpointId: role('net:tcp/private:*→:5432').id, endpoint: 'net:tcp/private:*→:5432',
      bytesOut: 4000, bytesIn: 300, countOut: 3, countIn: 3,
    };
    web.send(1, partial('host-web', 'pair', ws, [edge('web/worker', 'net:tcp/private:5432', 'net', 300, 3), edge('net:tcp/private:5432', 'web/worker', 'net', 4000, 3)], [webSide]));
    await web.acked(1);
    expect(reader.window('pair', ws)).toMatchObject({ status: 'open' });
    db.send(1, partial('host-db', 'pair', ws, [edge('net:tcp/private:*→:5432', 'db/conn', 'net', 300, 3), edge('db/conn', 'net:tcp/private:*→:5432', 'net', 4000, 3), edge('db/conn', 'file:/var/lib/db/data', 'file', 8192, 2)], [dbSide]));
    await db.acked(1);
    const w = await waitFor('closed window', () => {
      const r = reader.window('pair', ws);
      return r?.status === 'closed' ? r : undefined;
    });
    expect(w).toMatchObject({ hosts: ['host-db', 'host-web'], matchedFlows: 2, unmatchedFlows: 0, latePartials: 0, edges: 3 });
    expect(reader.listWindows({ app: 'pair' }).map((r) => [r.windowStart, r.status])).toEqual([[ws, 'closed']]);
    const g = reader.windowGraph('pair', ws)!;
    expect(g.edges.map((e) => `${e.src} -> ${e.dst} ${e.bytes}`).sort()).toEqual(['db/conn -> file:/var/lib/db/data 8192', 'db/conn -> web/worker 4000', 'web/worker -> db/conn 300']);
    expect(await waitFor('the merge logged', () => logLines.slice(from).find((l) => l.msg === 'window merged' && l.app === 'pair'))).toMatchObject({ reason: 'complete', hosts: ['host-db', 'host-web'] });
    // closed before its end: the window was complete, the grace added nothing
    expect(w.closedAt!).toBeLessThan(ws);
    await Promise.all([web.close(), db.close()]);
  });

  it('a window with a missing agent closes after the grace; the late partial is stored, counted and merged in', async () => {
    const from = logLines.length;
    const on = new Agent(hello('on-time', 'grace', { host: 'host-on' }));
    const slow = new Agent(hello('slow', 'grace', { host: 'host-slow' }));
    await Promise.all([on.welcome(), slow.welcome()]);
    // the current window, with enough of it left that it is still open when the ack is back
    if (Date.now() % W > W / 3) await new Promise((r) => setTimeout(r, W - (Date.now() % W) + 5));
    const ws = Math.floor(Date.now() / W) * W;
    on.send(1, partial('host-on', 'grace', ws));
    await on.acked(1);
    expect(reader.window('grace', ws)).toMatchObject({ status: 'open' });
    const w = await waitFor('closed by grace', () => {
      const r = reader.window('grace', ws);
      return r?.status === 'closed' ? r : undefined;
    }, 3 * W + GRACE_MS);
    expect(w.hosts).toEqual(['host-on']);
    expect(w.closedAt! - (ws + W)).toBeGreaterThanOrEqual(GRACE_MS);
    // the merge worker commits before the main thread hears of it and logs: wait for the line
    expect(await waitFor('the merge logged', () => logLines.slice(from).find((l) => l.msg === 'window merged' && l.app === 'grace'))).toMatchObject({ reason: 'grace' });
    const lateBefore = server.ingest.counters.latePartials;
    slow.send(1, partial('host-slow', 'grace', ws));
    const ack = await slow.acked(1);
    expect(ack.committedSeqs).toEqual([1]);
    const re = await waitFor('re-merged', () => {
      const r = reader.window('grace', ws);
      return r && r.latePartials === 1 ? r : undefined;
    });
    expect(re).toMatchObject({ status: 'closed', hosts: ['host-on', 'host-slow'], edges: 2 });
    expect(re.closedAt).toBe(w.closedAt); // closed_at keeps the first close
    expect(server.ingest.counters.latePartials - lateBefore).toBe(1);
    expect(dbRows('slow')).toEqual([{ seq: 1, window_start: ws, late: 1 }]);
    expect(await waitFor('the re-merge logged', () => logLines.slice(from).find((l) => l.msg === 'window merged' && l.app === 'grace' && l.reason === 'late'))).toBeDefined();
    await Promise.all([on.close(), slow.close()]);
  });

  it('the steady agent got every window committed, acked and closed throughout', async () => {
    await steadyRoundTrip();
    const rows = dbRows('steady') as { seq: number }[];
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: steadySeq }, (_, i) => i + 1));
    const windows = reader.listWindows({ app: 'steady' });
    expect(windows).toHaveLength(steadySeq);
    await waitFor('all steady windows closed', () => reader.listWindows({ app: 'steady' }).every((w) => w.status === 'closed'));
    expect(server.ingest.counters.commitErrors).toBe(0);
  });
});
