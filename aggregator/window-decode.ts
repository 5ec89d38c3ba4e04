/**
 * A direct decoder for PartialWindow bytes: one pass over the varints straight to what the
 * aggregator needs, instead of protobuf-es's `fromBinary` (an object per role, edge and flow,
 * a bigint per uint64) followed by `fromWireWindow` — those two plus re-encoding the body were
 * two thirds of the aggregator's CPU per partial (docs/aggregator.md).
 *
 *   scanWindow  on receipt: checks everything fromWireWindow checks, but returns only seq,
 *               window and roles (the store needs those; edges wait for the merge)
 *   readWindow  at the merge: the plain PartialWindow
 *
 * Only the canonical encoding is taken: fields in number order, each scalar field once, valid
 * UTF-8 without U+FFFD, no unknown fields, no duplicate role ids. Anything else — and anything invalid —
 * gives `undefined`, and the caller takes the reference path (fromBinary + fromWireWindow),
 * which decides and words the error. So this path accepts only what the reference path
 * accepts, with the same values (test/unit/window-decode.test.ts compares them).
 */
import { isIP } from 'node:net';
import { fromBinary } from '@bufbuild/protobuf';
import { PartialWindowSchema } from '../shared/gen/distappguard/v1/agent_pb.js';
import {
  EDGE_KIND_OF,
  PROTOCOL_VERSION,
  PROTO_OF,
  ROLE_KIND_OF,
  SIDE_OF,
  fromWireWindow,
  type HelloInfo,
  type WireLimits,
  type WireRole,
} from '../shared/wire.js';
import type { Edge, Flow, LocalVerdict, PartialWindow, WindowStats } from '../shared/graph.js';

/** What ingest needs of a received window. */
export interface ScannedWindow {
  seq: number;
  windowStart: number;
  windowMs: number;
  roles: WireRole[];
  /** only from the reference path (checkWindow): this decoder leaves windows with a verdict to it */
  verdict?: LocalVerdict;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Node's UTF-8 decoder replaces each invalid sequence with this; protobuf-es refuses them */
const REPLACEMENT = '\ufffd';

/** Leaves the fast path; caught in this module only. Preallocated: bailing must stay cheap. */
class Bail {}
const BAIL = new Bail();

function bail(): never {
  throw BAIL;
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/**
 * Role ids by their low 32 bits, checked against the high ones: the same few thousand ids
 * come in every window, and making their hex strings again was a tenth of the decoding.
 * Returning the same string object also lets Map lookups reuse its hash (correlate).
 */
const idCache = new Map<number, { hi: number; id: string }>();
const ID_CACHE_MAX = 1 << 18;

function roleIdOf(hi: number, lo: number): string {
  const c = idCache.get(lo);
  if (c !== undefined && c.hi === hi) return c.id;
  const id = hex8(hi) + hex8(lo);
  if (idCache.size >= ID_CACHE_MAX) idCache.clear();
  idCache.set(lo, { hi, id });
  return id;
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    public end: number,
  ) {
    this.pos = 0;
  }

  /** A varint of at most 8 bytes whose value is a safe integer; anything else bails. */
  varint(): number {
    const b = this.buf;
    let p = this.pos;
    if (p >= this.end) bail();
    let c = b[p++];
    if (c < 0x80) {
      this.pos = p;
      return c;
    }
    let x = c & 0x7f;
    let mul = 128;
    for (let i = 1; i < 8; i++) {
      if (p >= this.end) bail();
      c = b[p++];
      x += (c & 0x7f) * mul;
      if (c < 0x80) {
        if (x > MAX_SAFE) bail();
        this.pos = p;
        return x;
      }
      mul *= 128;
    }
    return bail();
  }

  /** uint32 / enum fields: protobuf-es truncates longer varints, this path does not take them. */
  u32(): number {
    const v = this.varint();
    if (v > 0xffff_ffff) bail();
    return v;
  }

  /** A length-delimited field's end. */
  sub(): number {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.end) bail();
    return end;
  }

  fixed64hex(): string {
    const p = this.pos;
    if (p + 8 > this.end) bail();
    this.pos = p + 8;
    return roleIdOf(this.buf.readUInt32LE(p + 4), this.buf.readUInt32LE(p));
  }

  string(): string {
    const end = this.sub();
    const s = this.buf.toString('utf8', this.pos, end);
    if (s.includes(REPLACEMENT)) bail(); // invalid UTF-8 (or a real U+FFFD): the reference path decides
    this.pos = end;
    return s;
  }

  /** Next field of the message ending at `end`, in canonical order: (field << 3 | wire type), or 0 at the end. */
  tag(end: number, last: number, repeated = 0): number {
    if (this.pos >= end) {
      if (this.pos > end) bail();
      return 0;
    }
    const t = this.varint();
    const no = t >>> 3;
    if (no < last || (no === last && no !== repeated) || no === 0) bail();
    return t;
  }
}

function wire(t: number, type: number): void {
  if ((t & 7) !== type) bail();
}

function readRole(r: Reader, end: number, maxLabel: number): WireRole {
  let id = '0000000000000000';
  let label = '';
  let kind = 0;
  let last = 0;
  for (let t; (t = r.tag(end, last)) !== 0; last = t >>> 3) {
    switch (t >>> 3) {
      case 1:
        wire(t, 1);
        id = r.fixed64hex();
        break;
      case 2:
        wire(t, 2);
        label = r.string();
        break;
      case 3:
        wire(t, 0);
        kind = r.u32();
        break;
      default:
        bail();
    }
  }
  if (label.length === 0 || label.length > maxLabel) bail();
  return { id, label, kind: ROLE_KIND_OF.get(kind) ?? bail() };
}

function index(v: number, n: number): number {
  if (v >= n) bail();
  return v;
}

function readEdge(r: Reader, end: number, roles: readonly WireRole[], out: Edge[] | undefined): void {
  let src = 0;
  let dst = 0;
  let kind = 0;
  let bytes = 0;
  let count = 0;
  let last = 0;
  for (let t; (t = r.tag(end, last)) !== 0; last = t >>> 3) {
    wire(t, 0);
    switch (t >>> 3) {
      case 1:
        src = r.u32();
        break;
      case 2:
        dst = r.u32();
        break;
      case 3:
        kind = r.u32();
        break;
      case 4:
        bytes = r.varint();
        break;
      case 5:
        count = r.varint();
        break;
      default:
        bail();
    }
  }
  const s = roles[index(src, roles.length)];
  const d = roles[index(dst, roles.length)];
  const k = EDGE_KIND_OF.get(kind) ?? bail();
  out?.push({ srcId: s.id, dstId: d.id, src: s.label, dst: d.label, kind: k, bytes, count });
}

function ip(v: string): string {
  if (v !== '' && isIP(v) === 0) bail();
  return v;
}

function port(v: number): number {
  if (v > 0xffff) bail();
  return v;
}

function readFlow(r: Reader, end: number, roles: readonly WireRole[], out: Flow[] | undefined): void {
  let proto = 0;
  let localIp = '';
  let localPort = 0;
  let remoteIp = '';
  let remotePort = 0;
  let side = 0;
  let role = 0;
  let endpoint = 0;
  let bytesOut = 0;
  let bytesIn = 0;
  let countOut = 0;
  let countIn = 0;
  let last = 0;
  for (let t; (t = r.tag(end, last)) !== 0; last = t >>> 3) {
    const no = t >>> 3;
    wire(t, no === 2 || no === 4 ? 2 : 0);
    switch (no) {
      case 1: proto = r.u32(); break;
      case 2: localIp = r.string(); break;
      case 3: localPort = r.u32(); break;
      case 4: remoteIp = r.string(); break;
      case 5: remotePort = r.u32(); break;
      case 6: side = r.u32(); break;
      case 7: role = r.u32(); break;
      case 8: endpoint = r.u32(); break;
      case 9: bytesOut = r.varint(); break;
      case 10: bytesIn = r.varint(); break;
      case 11: countOut = r.varint(); break;
      case 12: countIn = r.varint(); break;
      default: bail();
    }
  }
  const ro = roles[index(role, roles.length)];
  const ep = roles[index(endpoint, roles.length)];
  const f: Flow = {
    proto: PROTO_OF.get(proto) ?? bail(),
    local: { ip: ip(localIp), port: port(localPort) },
    remote: { ip: ip(remoteIp), port: port(remotePort) },
    side: SIDE_OF.get(side) ?? bail(),
    roleId: ro.id,
    role: ro.label,
    endpointId: ep.id,
    endpoint: ep.label,
    bytesOut,
    bytesIn,
    countOut,
    countIn,
  };
  out?.push(f);
}

function readStats(r: Reader, end: number): WindowStats {
  const s: WindowStats = { events: 0, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 };
  let last = 0;
  for (let t; (t = r.tag(end, last)) !== 0; last = t >>> 3) {
    wire(t, 0);
    switch (t >>> 3) {
      case 1: s.events = r.varint(); break;
      case 2: s.unknownFdCalls = r.varint(); break;
      case 3: s.unknownFdBytes = r.varint(); break;
      case 4: s.lateEvents = r.varint(); break;
      default: bail();
    }
  }
  return s;
}

interface Read extends ScannedWindow {
  edges: Edge[];
  flows: Flow[];
  stats: WindowStats;
}

/** One pass; `build`: also the edges and flows as plain objects. `windowMs` undefined: not checked against a hello. */
function read(body: Uint8Array, limits: WireLimits, windowMsOfHello: number | undefined, build: boolean): Read | undefined {
  const r = new Reader(asBuffer(body), body.byteLength);
  let seq = 0;
  let windowStart = 0;
  let windowMs = 0;
  const roles: WireRole[] = [];
  const ids = new Set<string>();
  const edges: Edge[] = [];
  const flows: Flow[] = [];
  let nEdges = 0;
  let nFlows = 0;
  let stats: WindowStats | undefined;
  try {
    let last = 0;
    for (let t; (t = r.tag(r.end, last, last >= 4 && last <= 6 ? last : 0)) !== 0; last = t >>> 3) {
      switch (t >>> 3) {
        case 1:
          wire(t, 0);
          seq = r.varint();
          break;
        case 2:
          wire(t, 0);
          windowStart = r.varint(); // int64: a negative one is 10 bytes and bails
          break;
        case 3:
          wire(t, 0);
          windowMs = r.u32();
          break;
        case 4: {
          wire(t, 2);
          const end = r.sub();
          const role = readRole(r, end, limits.maxLabelLength);
          if (ids.has(role.id) || roles.length >= limits.maxRoles) bail();
          ids.add(role.id);
          roles.push(role);
          break;
        }
        case 5:
          wire(t, 2);
          if (++nEdges > limits.maxEdges) bail();
          readEdge(r, r.sub(), roles, build ? edges : undefined);
          break;
        case 6:
          wire(t, 2);
          if (++nFlows > limits.maxFlows) bail();
          readFlow(r, r.sub(), roles, build ? flows : undefined);
          break;
        case 15:
          wire(t, 2);
          stats = readStats(r, r.sub());
          break;
        default:
          bail();
      }
    }
    if (seq < 1 || stats === undefined) bail();
    if (windowMs < limits.minWindowMs || windowMs > limits.maxWindowMs) bail();
    if (windowMsOfHello !== undefined && windowMs !== windowMsOfHello) bail();
    if (windowStart % windowMs !== 0) bail();
    return { seq, windowStart, windowMs, roles, edges, flows, stats };
  } catch (e) {
    if (e === BAIL) return undefined;
    throw e;
  }
}

/**
 * A received window checked against its stream's hello and the limits, by the fast path;
 * `undefined` when that path does not take it (non-canonical or invalid): use fromWireWindow.
 */
export function scanWindow(body: Uint8Array, hello: HelloInfo, limits: WireLimits): ScannedWindow | undefined {
  const r = read(body, limits, hello.windowMs, false);
  return r && { seq: r.seq, windowStart: r.windowStart, windowMs: r.windowMs, roles: r.roles };
}

const NO_LIMITS: WireLimits = {
  maxRoles: Infinity, maxEdges: Infinity, maxFlows: Infinity, maxLabelLength: Infinity,
  minWindowMs: 0, maxWindowMs: Infinity, maxIdLength: Infinity, maxMessageBytes: Infinity,
};

/** The plain form by the fast path, `undefined` when it does not take the bytes. app and host are left ''. */
export function readWindow(body: Uint8Array): PartialWindow | undefined {
  const r = read(body, NO_LIMITS, undefined, true);
  return r && { app: '', host: '', windowStart: r.windowStart, windowMs: r.windowMs, edges: r.edges, flows: r.flows, stats: r.stats };
}

/**
 * A stored body (validated when it was received, so no limits) in plain form: the fast path,
 * else protobuf-es. Throws if the bytes are not a window at all.
 */
export function decodeStoredWindow(body: Uint8Array): PartialWindow {
  const fast = readWindow(body);
  if (fast) return fast;
  const msg = fromBinary(PartialWindowSchema, body, { readUnknownFields: false });
  const hello: HelloInfo = { agentId: '', host: '', app: '', agentVersion: '', protocolVersion: PROTOCOL_VERSION, windowMs: msg.windowMs, collector: '' };
  const r = fromWireWindow(msg, hello, NO_LIMITS);
  if (!r.ok) throw new Error(`stored partial does not decode: ${r.error.message}`);
  return { ...r.value.window, app: '', host: '' };
}
