/**
 * aggregator/window-decode.ts and agent-message.ts: the direct decoder must accept only what
 * the reference path (protobuf-es fromBinary + shared/wire.ts fromWireWindow) accepts, with
 * the same values; anything it does not take goes to the reference path, which words errors.
 */
import { describe, expect, it } from 'vitest';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import * as pb from '../../shared/gen/distappguard/v1/agent_pb.js';
import { DEFAULT_WIRE_LIMITS, fromWireWindow, toWireWindow, type HelloInfo, type WireLimits } from '../../shared/wire.js';
import { roleId } from '../../shared/role-id.js';
import type { Edge, Flow, PartialWindow } from '../../shared/graph.js';
import { decodeStoredWindow, readWindow, scanWindow } from '../../aggregator/window-decode.js';
import { checkWindow, readAgentMessage, windowSlice } from '../../aggregator/agent-message.js';

const T0 = 1_700_000_000_000;
const HELLO: HelloInfo = { agentId: 'a', host: 'h', app: 'shop', agentVersion: '', protocolVersion: 1, windowMs: 1000, collector: '' };

function edge(src: string, dst: string, kind: Edge['kind'], bytes: number, count = 1): Edge {
  return { srcId: roleId(src), dstId: roleId(dst), src, dst, kind, bytes, count };
}

/** A window with every field set, non-ASCII labels and an IPv6 flow. */
function sample(): PartialWindow {
  const t = 'api/wörker-1';
  const ep = 'net:tcp/private:*→:5432';
  const flow: Flow = {
    proto: 'tcp', local: { ip: '10.0.0.1', port: 45000 }, remote: { ip: 'fd00::2', port: 5432 }, side: 'client',
    roleId: roleId(t), role: t, endpointId: roleId(ep), endpoint: ep, bytesOut: 2 ** 40, bytesIn: 900, countOut: 3, countIn: 4,
  };
  return {
    app: 'shop', host: 'h', windowStart: T0, windowMs: 1000,
    edges: [edge(t, ep, 'net', 64, 2), edge(ep, t, 'net', 900), edge(t, 'file:/var/log/api.log', 'file', Number.MAX_SAFE_INTEGER), edge('mem:api', t, 'mem', 4096)],
    flows: [flow, { ...flow, proto: 'udp', local: { ip: '', port: 0 }, side: 'unknown', bytesOut: 0 }],
    stats: { events: 10, unknownFdCalls: 1, unknownFdBytes: 2, lateEvents: 3 },
  };
}

function reference(bin: Uint8Array, hello = HELLO, limits: WireLimits = DEFAULT_WIRE_LIMITS) {
  let m: pb.PartialWindow;
  try {
    m = fromBinary(pb.PartialWindowSchema, bin, { readUnknownFields: false });
  } catch {
    return undefined;
  }
  const r = fromWireWindow(m, hello, limits);
  return r.ok ? r.value : undefined;
}

describe('direct window decoder', () => {
  it('reads a canonical window exactly as fromBinary + fromWireWindow do', () => {
    const bin = toBinary(pb.PartialWindowSchema, toWireWindow(sample(), 7));
    const ref = reference(bin)!;
    expect(scanWindow(bin, HELLO, DEFAULT_WIRE_LIMITS)).toEqual({ seq: 7, windowStart: T0, windowMs: 1000, roles: ref.roles });
    expect(readWindow(bin)).toEqual({ ...ref.window, app: '', host: '' });
    expect(decodeStoredWindow(bin)).toEqual({ ...ref.window, app: '', host: '' });
    expect(readWindow(Buffer.from(bin))).toEqual(readWindow(bin)); // a Buffer or a plain view alike
  });

  it('leaves to the reference path what it does not take, and invalid windows', () => {
    const w = toWireWindow(sample(), 7);
    const bin = (m: pb.PartialWindow) => toBinary(pb.PartialWindowSchema, m);
    // invalid: the reference path refuses these, with its own words
    expect(scanWindow(bin({ ...w, stats: undefined }), HELLO, DEFAULT_WIRE_LIMITS)).toBeUndefined();
    expect(scanWindow(bin({ ...w, windowMs: 2000 }), HELLO, DEFAULT_WIRE_LIMITS)).toBeUndefined();
    expect(scanWindow(bin({ ...w, windowStartMs: BigInt(T0 + 1) }), HELLO, DEFAULT_WIRE_LIMITS)).toBeUndefined();
    expect(scanWindow(bin({ ...w, seq: 0n }), HELLO, DEFAULT_WIRE_LIMITS)).toBeUndefined();
    expect(scanWindow(bin(w), HELLO, { ...DEFAULT_WIRE_LIMITS, maxEdges: 3 })).toBeUndefined();
    expect(scanWindow(bin(w), HELLO, { ...DEFAULT_WIRE_LIMITS, maxLabelLength: 5 })).toBeUndefined();
    const badIndex = create(pb.PartialWindowSchema, { ...w, edges: [create(pb.EdgeSchema, { src: 99, dst: 0, kind: pb.EdgeKind.NET })] });
    expect(scanWindow(bin(badIndex), HELLO, DEFAULT_WIRE_LIMITS)).toBeUndefined();
    // valid but not taken: a duplicate role id (agreeing), an unknown field, fields out of order
    const dup = create(pb.PartialWindowSchema, { ...w, roles: [...w.roles, w.roles[0]] });
    expect(reference(bin(dup))).toBeDefined();
    expect(scanWindow(bin(dup), HELLO, DEFAULT_WIRE_LIMITS)).toBeUndefined();
    const unknown = Buffer.concat([bin(w), Buffer.from([0x98, 0x06, 0x01])]); // field 99 varint
    expect(reference(unknown)).toBeDefined();
    expect(scanWindow(unknown, HELLO, DEFAULT_WIRE_LIMITS)).toBeUndefined();
    expect(decodeStoredWindow(unknown)).toEqual(readWindow(bin(w))); // through protobuf-es
    const seqLast = Buffer.concat([bin({ ...w, seq: 0n }), Buffer.from([0x08, 0x07])]);
    expect(reference(seqLast)?.seq).toBe(7);
    expect(scanWindow(seqLast, HELLO, DEFAULT_WIRE_LIMITS)).toBeUndefined();
  });

  it('whatever it accepts of garbled and truncated bytes, the reference path accepts with the same values', () => {
    const bin = toBinary(pb.PartialWindowSchema, toWireWindow(sample(), 7));
    let seed = 4242;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let taken = 0;
    const cases: Uint8Array[] = [];
    for (let n = 0; n < bin.length; n++) cases.push(bin.subarray(0, n));
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from(bin);
      for (let k = 0; k < 1 + rnd(3); k++) b[rnd(b.length)] = rnd(256);
      cases.push(b);
    }
    for (const b of cases) {
      const fast = readWindow(b);
      const scanned = scanWindow(b, HELLO, DEFAULT_WIRE_LIMITS);
      const ref = reference(b, HELLO, { ...DEFAULT_WIRE_LIMITS });
      if (scanned) {
        expect(ref).toBeDefined();
        expect(scanned).toEqual({ seq: ref!.seq, windowStart: ref!.window.windowStart, windowMs: ref!.window.windowMs, roles: ref!.roles });
      }
      if (fast) {
        const any = reference(b, { ...HELLO, windowMs: fast.windowMs }, { ...DEFAULT_WIRE_LIMITS, maxRoles: Infinity, maxEdges: Infinity, maxFlows: Infinity, maxLabelLength: Infinity, minWindowMs: 0, maxWindowMs: Infinity });
        expect(any).toBeDefined();
        expect(fast).toEqual({ ...any!.window, app: '', host: '' });
        taken++;
      }
    }
    expect(taken).toBeGreaterThan(100); // mutations of counts and bytes keep windows valid
  });
});

describe('AgentMessage envelope', () => {
  const w = toWireWindow(sample(), 7);
  const whole = Buffer.from(toBinary(pb.AgentMessageSchema, create(pb.AgentMessageSchema, { body: { case: 'window', value: w } })));

  it('keeps a window as the bytes received, without parsing or re-encoding it', () => {
    const body = windowSlice(whole)!;
    expect(Buffer.from(body)).toEqual(Buffer.from(toBinary(pb.PartialWindowSchema, w)));
    expect(body.buffer).toBe(whole.buffer); // a view, not a copy
    const m = readAgentMessage(whole);
    expect(m).toMatchObject({ case: 'window', bytes: whole, body });
    expect(m.case === 'window' && m.parsed).toBe(undefined);
    expect(checkWindow(m as Extract<typeof m, { case: 'window' }>, HELLO, DEFAULT_WIRE_LIMITS)).toEqual({
      kind: 'ok', value: scanWindow(body, HELLO, DEFAULT_WIRE_LIMITS),
    });
  });

  it('parses anything else with protobuf-es: hellos, unusual envelopes; throws on garbage', () => {
    const hello = Buffer.from(toBinary(pb.AgentMessageSchema, create(pb.AgentMessageSchema, { body: { case: 'hello', value: create(pb.HelloSchema, { agentId: 'a' }) } })));
    expect(readAgentMessage(hello)).toMatchObject({ case: 'hello', value: { agentId: 'a' } });
    expect(readAgentMessage(Buffer.alloc(0))).toEqual({ case: undefined });
    // a window field followed by an unknown field: not canonical, parsed, body re-encoded
    const extra = Buffer.concat([whole, Buffer.from([0x98, 0x06, 0x01])]);
    expect(windowSlice(extra)).toBeUndefined();
    const m = readAgentMessage(extra);
    expect(m.case === 'window' && Buffer.from(m.body)).toEqual(Buffer.from(toBinary(pb.PartialWindowSchema, w)));
    expect(() => readAgentMessage(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toThrow();
    expect(() => readAgentMessage(whole.subarray(0, whole.length - 3))).toThrow();
  });

  it('a canonical envelope around bytes that do not parse is malformed; an invalid window is refused as before', () => {
    const garbage = Buffer.from([0x12, 0x03, 0x0a, 0xff, 0xff]);
    const m = readAgentMessage(garbage);
    expect(m.case).toBe('window');
    const r = checkWindow(m as Extract<typeof m, { case: 'window' }>, HELLO, DEFAULT_WIRE_LIMITS);
    expect(r.kind).toBe('malformed');
    let why = '';
    try {
      fromBinary(pb.AgentMessageSchema, garbage);
    } catch (e) {
      why = (e as Error).message;
    }
    expect(r).toEqual({ kind: 'malformed', reason: why });
    const noStats = Buffer.from(toBinary(pb.AgentMessageSchema, create(pb.AgentMessageSchema, { body: { case: 'window', value: { ...w, stats: undefined } } })));
    const m2 = readAgentMessage(noStats);
    expect(checkWindow(m2 as Extract<typeof m2, { case: 'window' }>, HELLO, DEFAULT_WIRE_LIMITS)).toMatchObject({
      kind: 'invalid', seq: 7n, error: { message: 'stats: missing (the message may have been cut short)' },
    });
  });
});
