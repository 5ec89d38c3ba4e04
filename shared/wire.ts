/**
 * Plain partial windows (shared/graph.ts) ↔ their protobuf form (proto/distappguard/v1), and
 * the checks a received message must pass before anything uses it (DESIGN §5: bounded sizes,
 * validated on receipt, clear errors). Pure functions: no I/O, no gRPC.
 *
 * Sending (`toWireWindow`) trusts its input and throws on programming errors (NaN bytes, bad
 * role ids). Receiving (`fromWireWindow`, `validateHello`) trusts nothing and returns a
 * result naming the field and the problem, e.g. `edges[12].src: role index 900 out of range
 * (roles: 40)`, so the aggregator can refuse the stream with it verbatim.
 */
import { create } from '@bufbuild/protobuf';
import { isIP } from 'node:net';
import * as pb from './gen/distappguard/v1/agent_pb.js';
import type { Edge, EdgeKind, Flow, LocalVerdict, PartialWindow, WindowStats } from './graph.js';

/** The protocol version this code speaks (Hello.protocol_version). */
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

export interface WireLimits {
  maxRoles: number;
  maxEdges: number;
  maxFlows: number;
  /** role labels, in UTF-16 code units (JS string length) */
  maxLabelLength: number;
  minWindowMs: number;
  maxWindowMs: number;
  /** agent id, host, app, versions, collector name */
  maxIdLength: number;
  /**
   * Largest message the aggregator accepts, for grpc-js `grpc.max_receive_message_length`
   * (its default, 4 MiB, is below what the other limits allow: 50,000 flows alone can reach it).
   */
  maxMessageBytes: number;
}

export const DEFAULT_WIRE_LIMITS: Readonly<WireLimits> = Object.freeze({
  maxRoles: 20_000,
  maxEdges: 50_000,
  maxFlows: 50_000,
  maxLabelLength: 1_024,
  minWindowMs: 100,
  maxWindowMs: 3_600_000,
  maxIdLength: 256,
  maxMessageBytes: 16 * 1024 * 1024,
});

/** Same values as agent/roles.ts RoleKind; shared code does not import from agent/. */
export type RoleKind = 'proc' | 'thread' | 'file' | 'mem' | 'net' | 'ipc';

/** A role as the wire carries it: the plain window has only ids and labels, not kinds. */
export interface WireRole {
  id: string;
  label: string;
  kind: RoleKind;
}

/** A validated Hello, as plain values. */
export interface HelloInfo {
  agentId: string;
  host: string;
  app: string;
  agentVersion: string;
  protocolVersion: number;
  windowMs: number;
  collector: string;
  /** the detection model the agent runs ("" or absent: none) */
  modelVersion?: string;
}

export interface WireError {
  /** proto field path: `edges[12].src`, `window_ms`, `agent_id` */
  field: string;
  problem: string;
  /** 'limit': over a size limit (RESOURCE_EXHAUSTED); 'invalid': anything else (INVALID_ARGUMENT) */
  kind: 'invalid' | 'limit';
  /** `${field}: ${problem}` */
  message: string;
}

export type WireResult<T> = { ok: true; value: T } | { ok: false; error: WireError };

/** A received window: the plain form for the graph code, plus its seq and role table. */
export interface ReceivedWindow {
  seq: number;
  window: PartialWindow;
  roles: WireRole[];
}

// ------------------------------------------------------------------ enums, both ways

const ROLE_KINDS: Record<RoleKind, pb.RoleKind> = {
  proc: pb.RoleKind.PROC,
  thread: pb.RoleKind.THREAD,
  file: pb.RoleKind.FILE,
  mem: pb.RoleKind.MEM,
  net: pb.RoleKind.NET,
  ipc: pb.RoleKind.IPC,
};
const EDGE_KINDS: Record<EdgeKind, pb.EdgeKind> = { net: pb.EdgeKind.NET, file: pb.EdgeKind.FILE, mem: pb.EdgeKind.MEM, ipc: pb.EdgeKind.IPC };
const PROTOS: Record<Flow['proto'], pb.Flow_Proto> = { tcp: pb.Flow_Proto.TCP, udp: pb.Flow_Proto.UDP };
const SIDES: Record<Flow['side'], pb.Flow_Side> = { client: pb.Flow_Side.CLIENT, server: pb.Flow_Side.SERVER, unknown: pb.Flow_Side.UNKNOWN };

/** Reverse lookup; an UNSPECIFIED (0) or unknown number (proto3 enums are open) gives undefined. */
function invert<K extends string>(m: Record<K, number>): Map<number, K> {
  return new Map(Object.entries(m).map(([k, v]) => [v as number, k as K]));
}
// exported for the aggregator's direct decoder (aggregator/window-decode.ts), which must map alike
export const ROLE_KIND_OF: ReadonlyMap<number, RoleKind> = invert(ROLE_KINDS);
export const EDGE_KIND_OF: ReadonlyMap<number, EdgeKind> = invert(EDGE_KINDS);
export const PROTO_OF: ReadonlyMap<number, Flow['proto']> = invert(PROTOS);
export const SIDE_OF: ReadonlyMap<number, Flow['side']> = invert(SIDES);

// ------------------------------------------------------------------ role ids and kinds

const ROLE_ID = /^[0-9a-f]{16}$/;

/** Role ids are 16 lower-case hex digits in plain form (agent/roles.ts roleId), fixed64 on the wire. */
export function roleIdToBigInt(id: string): bigint {
  if (!ROLE_ID.test(id)) throw new RangeError(`role id ${JSON.stringify(id)} is not 16 lower-case hex digits`);
  return BigInt(`0x${id}`);
}

export function roleIdFromBigInt(id: bigint): string {
  return id.toString(16).padStart(16, '0');
}

/**
 * Kind from the label prefix (`file:`, `mem:`, `net:`, `ext:`, `ipc:`), else a thread. Only a
 * fallback: a process of service `net` has thread labels `net:…`, so the agent passes the
 * kinds it interned (`roleKindResolver`).
 */
export function roleKindFromLabel(label: string): RoleKind {
  switch (label.slice(0, label.indexOf(':'))) {
    case 'file':
      return 'file';
    case 'mem':
      return 'mem';
    case 'net':
    case 'ext':
      return 'net';
    case 'ipc':
      return 'ipc';
    default:
      return 'thread';
  }
}

export type RoleKindOf = (id: string, label: string) => RoleKind;

/** Kinds from the roles the agent interned (agent/role-table.ts `all`), label prefix otherwise. */
export function roleKindResolver(roles: Iterable<{ id: string; kind: RoleKind }>): RoleKindOf {
  const byId = new Map<string, RoleKind>();
  for (const r of roles) byId.set(r.id, r.kind);
  return (id, label) => byId.get(id) ?? roleKindFromLabel(label);
}

// ------------------------------------------------------------------ sending

function u64(v: number, what: string): bigint {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what}: ${v} is not a non-negative safe integer`);
  return BigInt(v);
}

function u32(v: number, what: string, max = 0xffff_ffff): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${what}: ${v} is not an integer in 0..${max}`);
  return v;
}

/**
 * The proto form of a plain window with its per-agent seq. Roles are collected from the edges
 * and flows into an indexed table (first seen first); app and host are not carried here,
 * they are the Hello's. Throws on values that cannot be sent (NaN, negative, unsafe).
 */
export function toWireWindow(w: PartialWindow, seq: number, kindOf: RoleKindOf = roleKindFromLabel): pb.PartialWindow {
  const roles: pb.Role[] = [];
  const index = new Map<string, number>();
  const role = (id: string, label: string): number => {
    let i = index.get(id);
    if (i === undefined) {
      i = roles.length;
      index.set(id, i);
      roles.push(create(pb.RoleSchema, { id: roleIdToBigInt(id), label, kind: ROLE_KINDS[kindOf(id, label)] }));
    } else if (roles[i].label !== label) {
      throw new Error(`role ${id} has two labels: ${JSON.stringify(roles[i].label)} and ${JSON.stringify(label)}`);
    }
    return i;
  };
  const edges = w.edges.map((e, i) =>
    create(pb.EdgeSchema, {
      src: role(e.srcId, e.src),
      dst: role(e.dstId, e.dst),
      kind: EDGE_KINDS[e.kind] ?? invalidValue(`edges[${i}].kind`, e.kind),
      bytes: u64(e.bytes, `edges[${i}].bytes`),
      count: u64(e.count, `edges[${i}].count`),
    }),
  );
  const flows = w.flows.map((f, i) =>
    create(pb.FlowSchema, {
      proto: PROTOS[f.proto] ?? invalidValue(`flows[${i}].proto`, f.proto),
      localIp: f.local.ip,
      localPort: u32(f.local.port, `flows[${i}].local.port`, 0xffff),
      remoteIp: f.remote.ip,
      remotePort: u32(f.remote.port, `flows[${i}].remote.port`, 0xffff),
      side: SIDES[f.side] ?? invalidValue(`flows[${i}].side`, f.side),
      role: role(f.roleId, f.role),
      endpoint: role(f.endpointId, f.endpoint),
      bytesOut: u64(f.bytesOut, `flows[${i}].bytesOut`),
      bytesIn: u64(f.bytesIn, `flows[${i}].bytesIn`),
      countOut: u64(f.countOut, `flows[${i}].countOut`),
      countIn: u64(f.countIn, `flows[${i}].countIn`),
    }),
  );
  const v = w.verdict;
  const verdict = v
    ? create(pb.LocalVerdictSchema, {
        modelVersion: v.modelVersion,
        score: v.score,
        threshold: v.threshold,
        anomalous: v.anomalous,
        newEdges: v.newEdges.map((e, i) =>
          create(pb.EdgeSchema, {
            src: role(e.srcId, e.src),
            dst: role(e.dstId, e.dst),
            kind: EDGE_KINDS[e.kind] ?? invalidValue(`verdict.newEdges[${i}].kind`, e.kind),
            bytes: u64(e.bytes, `verdict.newEdges[${i}].bytes`),
            count: u64(e.count, `verdict.newEdges[${i}].count`),
          }),
        ),
        groups: v.groups.map((g) => create(pb.GroupErrorSchema, g)),
        edges: v.edges.map((e, i) =>
          create(pb.EdgeErrorSchema, {
            src: role(e.srcId, e.src),
            dst: role(e.dstId, e.dst),
            kind: EDGE_KINDS[e.kind] ?? invalidValue(`verdict.edges[${i}].kind`, e.kind),
            observedBytes: u64(e.observedBytes, `verdict.edges[${i}].observedBytes`),
            expectedBytes: u64(Math.round(e.expectedBytes), `verdict.edges[${i}].expectedBytes`),
            error: e.error,
          }),
        ),
      })
    : undefined;
  if (!Number.isSafeInteger(w.windowStart)) throw new RangeError(`windowStart: ${w.windowStart} is not a safe integer`);
  return create(pb.PartialWindowSchema, {
    verdict,
    seq: seq >= 1 ? u64(seq, 'seq') : invalidValue('seq', seq),
    windowStartMs: BigInt(w.windowStart),
    windowMs: u32(w.windowMs, 'windowMs'),
    roles,
    edges,
    flows,
    stats: create(pb.WindowStatsSchema, {
      events: u64(w.stats.events, 'stats.events'),
      unknownFdCalls: u64(w.stats.unknownFdCalls, 'stats.unknownFdCalls'),
      unknownFdBytes: u64(w.stats.unknownFdBytes, 'stats.unknownFdBytes'),
      lateEvents: u64(w.stats.lateEvents, 'stats.lateEvents'),
    }),
  });
}

function invalidValue(what: string, v: unknown): never {
  throw new RangeError(`${what}: invalid value ${JSON.stringify(v)}`);
}

export function toWireHello(h: HelloInfo): pb.Hello {
  return create(pb.HelloSchema, { ...h });
}

// ------------------------------------------------------------------ receiving

/** Thrown inside the validators only; turned into a WireResult at their boundary. */
class Invalid extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
    readonly kind: 'invalid' | 'limit' = 'invalid',
  ) {
    super(`${field}: ${problem}`);
  }
}

function result<T>(f: () => T): WireResult<T> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    return { ok: false, error: { field: e.field, problem: e.problem, kind: e.kind, message: e.message } };
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** uint64/int64 → number, refusing what a JS number cannot hold exactly. */
function safe(v: bigint, field: string): number {
  if (v < 0n) throw new Invalid(field, `${v} is negative`);
  if (v > MAX_SAFE) throw new Invalid(field, `${v} exceeds ${Number.MAX_SAFE_INTEGER} (2^53-1)`);
  return Number(v);
}

function index(v: number, n: number, field: string): number {
  if (v >= n) throw new Invalid(field, `role index ${v} out of range (roles: ${n})`);
  return v;
}

function count(n: number, max: number, field: string, what: string): void {
  if (n > max) throw new Invalid(field, `${n} ${what} exceed the limit of ${max}`, 'limit');
}

function enumValue<K>(map: ReadonlyMap<number, K>, v: number, field: string): K {
  const k = map.get(v);
  if (k === undefined) throw new Invalid(field, v === 0 ? 'unspecified' : `unknown value ${v}`);
  return k;
}

/** Quoted and cut short, for error messages that end up in logs. */
function quote(s: string, max = 60): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

function ip(v: string, field: string): string {
  if (v !== '' && isIP(v) === 0) throw new Invalid(field, `${quote(v)} is not an IP address`);
  return v;
}

function port(v: number, field: string): number {
  if (v > 0xffff) throw new Invalid(field, `port ${v} out of range 0..65535`);
  return v;
}

/**
 * Checks a received window against the stream's hello and the limits, and turns it into the
 * plain form (app and host from the hello). Duplicate role ids are accepted when they agree
 * (same label and kind); edges and flows then resolve to the same role.
 */
export function fromWireWindow(msg: pb.PartialWindow, hello: HelloInfo, limits: WireLimits = DEFAULT_WIRE_LIMITS): WireResult<ReceivedWindow> {
  return result(() => {
    const seq = safe(msg.seq, 'seq');
    if (seq < 1) throw new Invalid('seq', 'must be ≥ 1');
    const windowMs = msg.windowMs;
    if (windowMs < limits.minWindowMs || windowMs > limits.maxWindowMs)
      throw new Invalid('window_ms', `${windowMs} out of range ${limits.minWindowMs}..${limits.maxWindowMs}`);
    if (windowMs !== hello.windowMs) throw new Invalid('window_ms', `${windowMs} differs from the hello's window_ms ${hello.windowMs}`);
    const windowStart = safe(msg.windowStartMs, 'window_start_ms');
    if (windowStart % windowMs !== 0) throw new Invalid('window_start_ms', `${windowStart} is not a multiple of window_ms ${windowMs}`);
    // sizes before any per-element work
    count(msg.roles.length, limits.maxRoles, 'roles', 'roles');
    count(msg.edges.length, limits.maxEdges, 'edges', 'edges');
    count(msg.flows.length, limits.maxFlows, 'flows', 'flows');
    if (msg.stats === undefined) throw new Invalid('stats', 'missing (the message may have been cut short)');

    const roles = msg.roles.map((r, i) => readRole(r, i, limits));
    const firstById = new Map<string, number>();
    roles.forEach((r, i) => {
      const j = firstById.get(r.id);
      if (j === undefined) firstById.set(r.id, i);
      else if (roles[j].label !== r.label || roles[j].kind !== r.kind)
        throw new Invalid(`roles[${i}].id`, `duplicate role id ${r.id} with a different label or kind than roles[${j}] (${quote(r.label)} vs ${quote(roles[j].label)})`);
    });
    const n = roles.length;

    const edges: Edge[] = msg.edges.map((e, i) => {
      const src = roles[index(e.src, n, `edges[${i}].src`)];
      const dst = roles[index(e.dst, n, `edges[${i}].dst`)];
      return {
        srcId: src.id,
        dstId: dst.id,
        src: src.label,
        dst: dst.label,
        kind: enumValue(EDGE_KIND_OF, e.kind, `edges[${i}].kind`),
        bytes: safe(e.bytes, `edges[${i}].bytes`),
        count: safe(e.count, `edges[${i}].count`),
      };
    });

    const flows: Flow[] = msg.flows.map((f, i) => {
      const at = `flows[${i}]`;
      const role = roles[index(f.role, n, `${at}.role`)];
      const endpoint = roles[index(f.endpoint, n, `${at}.endpoint`)];
      return {
        proto: enumValue(PROTO_OF, f.proto, `${at}.proto`),
        local: { ip: ip(f.localIp, `${at}.local_ip`), port: port(f.localPort, `${at}.local_port`) },
        remote: { ip: ip(f.remoteIp, `${at}.remote_ip`), port: port(f.remotePort, `${at}.remote_port`) },
        side: enumValue(SIDE_OF, f.side, `${at}.side`),
        roleId: role.id,
        role: role.label,
        endpointId: endpoint.id,
        endpoint: endpoint.label,
        bytesOut: safe(f.bytesOut, `${at}.bytes_out`),
        bytesIn: safe(f.bytesIn, `${at}.bytes_in`),
        countOut: safe(f.countOut, `${at}.count_out`),
        countIn: safe(f.countIn, `${at}.count_in`),
      };
    });

    const s = msg.stats;
    const stats: WindowStats = {
      events: safe(s.events, 'stats.events'),
      unknownFdCalls: safe(s.unknownFdCalls, 'stats.unknown_fd_calls'),
      unknownFdBytes: safe(s.unknownFdBytes, 'stats.unknown_fd_bytes'),
      lateEvents: safe(s.lateEvents, 'stats.late_events'),
    };
    const window: PartialWindow = { app: hello.app, host: hello.host, windowStart, windowMs, edges, flows, stats };
    if (msg.verdict) window.verdict = readVerdict(msg.verdict, roles, limits);
    return { seq, window, roles };
  });
}

/** Explanations are short lists; anything longer is not an agent of ours. */
const MAX_VERDICT_ITEMS = 64;

function finite(v: number, field: string): number {
  if (!Number.isFinite(v)) throw new Invalid(field, `${v} is not a finite number`);
  return v;
}

function readVerdict(v: pb.LocalVerdict, roles: WireRole[], limits: WireLimits): LocalVerdict {
  const n = roles.length;
  count(v.newEdges.length, limits.maxEdges, 'verdict.new_edges', 'edges');
  count(v.groups.length, MAX_VERDICT_ITEMS, 'verdict.groups', 'groups');
  count(v.edges.length, MAX_VERDICT_ITEMS, 'verdict.edges', 'edges');
  return {
    modelVersion: text(v.modelVersion, 'verdict.model_version', limits, true),
    score: finite(v.score, 'verdict.score'),
    threshold: finite(v.threshold, 'verdict.threshold'),
    anomalous: v.anomalous,
    newEdges: v.newEdges.map((e, i) => {
      const at = `verdict.new_edges[${i}]`;
      const src = roles[index(e.src, n, `${at}.src`)];
      const dst = roles[index(e.dst, n, `${at}.dst`)];
      return { srcId: src.id, dstId: dst.id, src: src.label, dst: dst.label, kind: enumValue(EDGE_KIND_OF, e.kind, `${at}.kind`), bytes: safe(e.bytes, `${at}.bytes`), count: safe(e.count, `${at}.count`) };
    }),
    groups: v.groups.map((g, i) => {
      if (g.name.length > limits.maxLabelLength) throw new Invalid(`verdict.groups[${i}].name`, `length ${g.name.length} exceeds the limit of ${limits.maxLabelLength}`, 'limit');
      return { name: g.name, error: finite(g.error, `verdict.groups[${i}].error`), ratio: finite(g.ratio, `verdict.groups[${i}].ratio`) };
    }),
    edges: v.edges.map((e, i) => {
      const at = `verdict.edges[${i}]`;
      const src = roles[index(e.src, n, `${at}.src`)];
      const dst = roles[index(e.dst, n, `${at}.dst`)];
      return {
        srcId: src.id, dstId: dst.id, src: src.label, dst: dst.label, kind: enumValue(EDGE_KIND_OF, e.kind, `${at}.kind`),
        observedBytes: safe(e.observedBytes, `${at}.observed_bytes`), expectedBytes: safe(e.expectedBytes, `${at}.expected_bytes`), error: finite(e.error, `${at}.error`),
      };
    }),
  };
}

function readRole(r: pb.Role, i: number, limits: WireLimits): WireRole {
  const field = `roles[${i}]`;
  if (r.label.length === 0) throw new Invalid(`${field}.label`, 'empty');
  if (r.label.length > limits.maxLabelLength)
    throw new Invalid(`${field}.label`, `length ${r.label.length} exceeds the limit of ${limits.maxLabelLength}`, 'limit');
  return { id: roleIdFromBigInt(r.id), label: r.label, kind: enumValue(ROLE_KIND_OF, r.kind, `${field}.kind`) };
}

/** Letters, marks, numbers, punctuation, symbols and inner spaces: nothing that can forge a log line. */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}](?:[\p{L}\p{M}\p{N}\p{P}\p{S} ]*[\p{L}\p{M}\p{N}\p{P}\p{S}])?$/u;

function text(v: string, field: string, limits: WireLimits, required: boolean): string {
  if (v.length === 0) {
    if (required) throw new Invalid(field, 'empty');
    return v;
  }
  if (v.length > limits.maxIdLength) throw new Invalid(field, `length ${v.length} exceeds the limit of ${limits.maxIdLength}`, 'limit');
  if (!PRINTABLE.test(v)) throw new Invalid(field, `${quote(v)} has control characters or leading/trailing spaces`);
  return v;
}

/** Checks the first message of a stream. Versions and collector may be empty; ids may not. */
export function validateHello(msg: pb.Hello, limits: WireLimits = DEFAULT_WIRE_LIMITS): WireResult<HelloInfo> {
  return result(() => {
    const hello: HelloInfo = {
      agentId: text(msg.agentId, 'agent_id', limits, true),
      host: text(msg.host, 'host', limits, true),
      app: text(msg.app, 'app', limits, true),
      agentVersion: text(msg.agentVersion, 'agent_version', limits, false),
      protocolVersion: msg.protocolVersion,
      windowMs: msg.windowMs,
      collector: text(msg.collector, 'collector', limits, false),
      modelVersion: text(msg.modelVersion, 'model_version', limits, false),
    };
    if (!SUPPORTED_PROTOCOL_VERSIONS.includes(hello.protocolVersion))
      throw new Invalid('protocol_version', `${hello.protocolVersion} is not supported (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`);
    if (hello.windowMs < limits.minWindowMs || hello.windowMs > limits.maxWindowMs)
      throw new Invalid('window_ms', `${hello.windowMs} out of range ${limits.minWindowMs}..${limits.maxWindowMs}`);
    return hello;
  });
}
