/**
 * shared/wire.ts: plain ↔ proto windows, and refusal of every kind of bad message a hostile
 * or broken agent could send (each error names the field), including truncated bytes.
 */
import { describe, expect, it } from 'vitest';
import { clone, create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Tracker } from '../../agent/tracker.js';
import { noAttribution } from '../../agent/state/attribution.js';
import type { SyscallEvent } from '../../shared/event.js';
import type { PartialWindow } from '../../shared/graph.js';
import * as pb from '../../shared/gen/distappguard/v1/agent_pb.js';
import {
  DEFAULT_WIRE_LIMITS,
  fromWireWindow,
  roleIdFromBigInt,
  roleIdToBigInt,
  roleKindFromLabel,
  roleKindResolver,
  toWireHello,
  toWireWindow,
  validateHello,
  type HelloInfo,
  type RoleKindOf,
  type WireLimits,
  type WireResult,
} from '../../shared/wire.js';

const T0 = 1_700_000_000_000;
const HELLO: HelloInfo = { agentId: 'agent-a', host: 'host-a', app: 'shop', agentVersion: '0.1.0', protocolVersion: 1, windowMs: 1000, collector: 'strace' };
const U64_MAX = 2n ** 64n - 1n;

/** A window the way the agent makes it: threads, a TCP client, a UDP server, file, stdout, memory. */
function trackerWindow(): { window: PartialWindow; kindOf: RoleKindOf } {
  const out: PartialWindow[] = [];
  const tr = new Tracker({ app: 'shop', host: 'host-a', windowMs: 1000, attribution: noAttribution }, (w) => out.push(w));
  const tcp = { kind: 'tcp' as const, local: { ip: '10.0.0.1', port: 45000 }, remote: { ip: '10.0.0.2', port: 5432 } };
  const events: Partial<SyscallEvent>[] = [
    { call: 'execve', path: '/opt/api', argv: ['api'] },
    { call: 'clone3', flags: 'CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM', ret: 101 },
    { tid: 101, call: 'prctl', name: 'db-pool' },
    { tid: 101, call: 'write', fd: 3, ret: 64, bytes: 64, target: tcp },
    { tid: 101, call: 'read', fd: 3, ret: 900, bytes: 900, target: tcp },
    { call: 'write', fd: 4, ret: 8, bytes: 8, target: { kind: 'file', path: '/var/log/api.log' } },
    { call: 'recvfrom', fd: 5, ret: 100, bytes: 100, target: { kind: 'udp', local: { ip: '10.0.0.1', port: 8125 } }, addr: { ip: 'fd00::3', port: 40001 } },
    { call: 'write', fd: 1, ret: 3, bytes: 3 },
    { call: 'brk', ret: 0x1000000 },
    { call: 'brk', ret: 0x1021000 },
  ];
  tr.push(events.map((e) => ({ ts: T0 + 10, pid: 100, tid: 100, ret: 0, bytes: 0, call: 'read', ...e }) as SyscallEvent));
  tr.end();
  expect(out).toHaveLength(1);
  return { window: out[0], kindOf: roleKindResolver(tr.roles.all) };
}

/** A valid proto window for the validation tests to break one field at a time. */
function good(): pb.PartialWindow {
  const { window, kindOf } = trackerWindow();
  return toWireWindow(window, 5, kindOf);
}

function errorOf<T>(r: WireResult<T>): string {
  if (r.ok) throw new Error('expected a validation error');
  return r.error.message;
}

function check(mutate: (m: pb.PartialWindow) => void, limits?: WireLimits): WireResult<unknown> {
  const m = clone(pb.PartialWindowSchema, good());
  mutate(m);
  return fromWireWindow(m, HELLO, limits);
}

describe('wire: plain ↔ proto', () => {
  it('round-trips a tracker window through binary, with role kinds from the agent', () => {
    const { window, kindOf } = trackerWindow();
    const msg = create(pb.AgentMessageSchema, { body: { case: 'window', value: toWireWindow(window, 42, kindOf) } });
    const back = fromBinary(pb.AgentMessageSchema, toBinary(pb.AgentMessageSchema, msg));
    expect(back.body.case).toBe('window');
    const r = fromWireWindow(back.body.value as pb.PartialWindow, HELLO);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.seq).toBe(42);
    expect(r.value.window).toEqual(window);
    // each role once, however many edges and flows use it
    const ids = new Set([...window.edges.flatMap((e) => [e.srcId, e.dstId]), ...window.flows.flatMap((f) => [f.roleId, f.endpointId])]);
    expect(r.value.roles).toHaveLength(ids.size);
    const kinds = Object.fromEntries(r.value.roles.map((x) => [x.label, x.kind]));
    expect(kinds).toEqual({
      api: 'thread',
      'api/db-pool': 'thread',
      'file:/var/log/api.log': 'file',
      'ipc:stdio:stdout': 'ipc',
      'mem:api': 'mem',
      'net:tcp/private:5432': 'net',
      'net:udp/private:*→:8125': 'net',
    });
  });

  it('round-trips an empty window and extreme but valid values', () => {
    const w: PartialWindow = {
      app: 'shop', host: 'host-a', windowStart: 0, windowMs: 1000, edges: [], flows: [],
      stats: { events: Number.MAX_SAFE_INTEGER, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 3 },
    };
    const wire = fromBinary(pb.PartialWindowSchema, toBinary(pb.PartialWindowSchema, toWireWindow(w, Number.MAX_SAFE_INTEGER)));
    const r = fromWireWindow(wire, HELLO);
    expect(r.ok && r.value).toEqual({ seq: Number.MAX_SAFE_INTEGER, window: w, roles: [] });
  });

  it('converts role ids between hex and fixed64', () => {
    expect(roleIdToBigInt('00000000000000ff')).toBe(255n);
    expect(roleIdFromBigInt(255n)).toBe('00000000000000ff');
    expect(roleIdFromBigInt(U64_MAX)).toBe('ffffffffffffffff');
    expect(() => roleIdToBigInt('FF')).toThrow(/16 lower-case hex/);
  });

  it('infers kinds from labels only as a fallback', () => {
    expect(['file:/x', 'mem:a', 'net:tcp/private:80', 'ext:tcp/443', 'ipc:pipe', 'nginx/worker', 'svc:api'].map(roleKindFromLabel))
      .toEqual(['file', 'mem', 'net', 'net', 'ipc', 'thread', 'thread']);
    // a service named "net" makes thread labels that look like endpoints: the agent's kinds win
    const kindOf = roleKindResolver([{ id: '00000000000000aa', kind: 'thread' }]);
    expect(kindOf('00000000000000aa', 'net:api')).toBe('thread');
    expect(kindOf('00000000000000bb', 'net:api')).toBe('net');
  });

  it('refuses to encode what cannot be sent', () => {
    const { window } = trackerWindow();
    const bad = (f: (w: PartialWindow) => void) => {
      const w = structuredClone(window);
      f(w);
      return () => toWireWindow(w, 1);
    };
    expect(bad((w) => (w.edges[0].bytes = NaN))).toThrow('edges[0].bytes: NaN is not a non-negative safe integer');
    expect(bad((w) => (w.edges[0].count = -1))).toThrow('edges[0].count: -1');
    expect(bad((w) => (w.edges[1].bytes = 2 ** 53))).toThrow('edges[1].bytes: 9007199254740992');
    expect(bad((w) => (w.flows[0].bytesIn = Infinity))).toThrow('flows[0].bytesIn: Infinity');
    expect(bad((w) => (w.flows[0].local.port = 70000))).toThrow('flows[0].local.port: 70000 is not an integer in 0..65535');
    expect(bad((w) => (w.stats.events = 1.5))).toThrow('stats.events: 1.5');
    expect(bad((w) => (w.edges[0].srcId = 'not-hex'))).toThrow(/role id "not-hex"/);
    expect(bad((w) => (w.edges[0].kind = 'disk' as never))).toThrow('edges[0].kind: invalid value "disk"');
    expect(bad((w) => (w.windowStart = NaN))).toThrow('windowStart');
    expect(bad((w) => (w.edges[0].src = 'another label'))).toThrow(/has two labels/);
    expect(() => toWireWindow(window, 0)).toThrow('seq');
    expect(() => toWireWindow(window, NaN)).toThrow('seq');
  });
});

describe('wire: validation of received windows', () => {
  it('accepts the good window', () => {
    expect(check(() => {}).ok).toBe(true);
  });

  // [what is broken, mutation, expected message]
  const cases: [string, (m: pb.PartialWindow) => void, string | RegExp][] = [
    ['seq 0', (m) => (m.seq = 0n), 'seq: must be ≥ 1'],
    ['seq beyond 2^53', (m) => (m.seq = U64_MAX), 'seq: 18446744073709551615 exceeds 9007199254740991 (2^53-1)'],
    ['window too short', (m) => (m.windowMs = 99), 'window_ms: 99 out of range 100..3600000'],
    ['window too long', (m) => (m.windowMs = 3_600_001), 'window_ms: 3600001 out of range 100..3600000'],
    ['window length other than the hello', (m) => ((m.windowMs = 5000), (m.windowStartMs = 0n)), "window_ms: 5000 differs from the hello's window_ms 1000"],
    ['negative window start', (m) => (m.windowStartMs = -1000n), 'window_start_ms: -1000 is negative'],
    ['unaligned window start', (m) => (m.windowStartMs = BigInt(T0 + 500)), `window_start_ms: ${T0 + 500} is not a multiple of window_ms 1000`],
    ['huge window start', (m) => (m.windowStartMs = 2n ** 62n), /^window_start_ms: 4611686018427387904 exceeds/],
    ['stats missing', (m) => (m.stats = undefined), 'stats: missing (the message may have been cut short)'],
    ['empty label', (m) => (m.roles[1].label = ''), 'roles[1].label: empty'],
    ['label too long', (m) => (m.roles[2].label = 'x'.repeat(1025)), 'roles[2].label: length 1025 exceeds the limit of 1024'],
    ['role kind unspecified', (m) => (m.roles[0].kind = pb.RoleKind.UNSPECIFIED), 'roles[0].kind: unspecified'],
    ['role kind unknown', (m) => (m.roles[0].kind = 99 as pb.RoleKind), 'roles[0].kind: unknown value 99'],
    [
      'duplicate role id, other label',
      (m) => m.roles.push(create(pb.RoleSchema, { id: m.roles[0].id, label: 'impostor', kind: m.roles[0].kind })),
      /^roles\[7\]\.id: duplicate role id [0-9a-f]{16} with a different label or kind than roles\[0\] \("impostor" vs "/,
    ],
    ['edge src out of range', (m) => (m.edges[1].src = 900), 'edges[1].src: role index 900 out of range (roles: 7)'],
    ['edge dst out of range', (m) => (m.edges[0].dst = 7), 'edges[0].dst: role index 7 out of range (roles: 7)'],
    ['edge dst at uint32 max', (m) => (m.edges[0].dst = 0xffffffff), 'edges[0].dst: role index 4294967295 out of range (roles: 7)'],
    ['edge kind unspecified', (m) => (m.edges[2].kind = pb.EdgeKind.UNSPECIFIED), 'edges[2].kind: unspecified'],
    ['edge bytes beyond 2^53', (m) => (m.edges[3].bytes = 2n ** 53n), 'edges[3].bytes: 9007199254740992 exceeds 9007199254740991 (2^53-1)'],
    ['edge count at uint64 max', (m) => (m.edges[0].count = U64_MAX), /^edges\[0\]\.count: 18446744073709551615 exceeds/],
    ['flow proto unspecified', (m) => (m.flows[0].proto = pb.Flow_Proto.UNSPECIFIED), 'flows[0].proto: unspecified'],
    ['flow side unknown number', (m) => (m.flows[1].side = 7 as pb.Flow_Side), 'flows[1].side: unknown value 7'],
    ['flow local ip not an address', (m) => (m.flows[0].localIp = 'evil\nhost'), 'flows[0].local_ip: "evil\\nhost" is not an IP address'],
    ['flow remote ip with port', (m) => (m.flows[0].remoteIp = '10.0.0.2:5432'), 'flows[0].remote_ip: "10.0.0.2:5432" is not an IP address'],
    ['flow port out of range', (m) => (m.flows[0].remotePort = 70000), 'flows[0].remote_port: port 70000 out of range 0..65535'],
    ['flow role out of range', (m) => (m.flows[1].role = 40), 'flows[1].role: role index 40 out of range (roles: 7)'],
    ['flow endpoint out of range', (m) => (m.flows[0].endpoint = 7), 'flows[0].endpoint: role index 7 out of range (roles: 7)'],
    ['flow bytes beyond 2^53', (m) => (m.flows[0].bytesIn = U64_MAX), /^flows\[0\]\.bytes_in: 18446744073709551615 exceeds/],
    ['flow count beyond 2^53', (m) => (m.flows[1].countOut = 2n ** 60n), /^flows\[1\]\.count_out: 1152921504606846976 exceeds/],
    ['stats beyond 2^53', (m) => (m.stats!.unknownFdBytes = U64_MAX), /^stats\.unknown_fd_bytes: 18446744073709551615 exceeds/],
  ];
  it.each(cases)('refuses: %s', (_what, mutate, expected) => {
    const msg = errorOf(check(mutate));
    if (typeof expected === 'string') expect(msg).toBe(expected);
    else expect(msg).toMatch(expected);
  });

  it('accepts a duplicate role id that agrees (same label and kind)', () => {
    const r = check((m) => {
      m.roles.push(clone(pb.RoleSchema, m.roles[3]));
      m.edges[0].src = 7;
    });
    expect(r.ok).toBe(true);
  });

  it('marks size-limit errors as such, with the default limits', () => {
    const many = <T>(n: number, f: () => T) => Array.from({ length: n }, f);
    const cases: [(m: pb.PartialWindow) => void, string][] = [
      [(m) => (m.roles = many(20_001, () => create(pb.RoleSchema, { id: 1n, label: 'a', kind: pb.RoleKind.THREAD }))), 'roles: 20001 roles exceed the limit of 20000'],
      [(m) => (m.edges = many(50_001, () => create(pb.EdgeSchema, { kind: pb.EdgeKind.NET }))), 'edges: 50001 edges exceed the limit of 50000'],
      [(m) => (m.flows = many(50_001, () => create(pb.FlowSchema))), 'flows: 50001 flows exceed the limit of 50000'],
      [(m) => (m.roles[0].label = 'y'.repeat(5000)), 'roles[0].label: length 5000 exceeds the limit of 1024'],
    ];
    for (const [mutate, message] of cases) {
      const r = check(mutate);
      expect(r.ok ? undefined : r.error).toMatchObject({ kind: 'limit', message });
    }
    // the 'invalid' kind for everything else
    const r = check((m) => (m.edges[0].src = 99));
    expect(r.ok ? undefined : r.error).toEqual({
      field: 'edges[0].src', problem: 'role index 99 out of range (roles: 7)', kind: 'invalid', message: 'edges[0].src: role index 99 out of range (roles: 7)',
    });
  });

  it('applies custom limits', () => {
    const limits = { ...DEFAULT_WIRE_LIMITS, maxEdges: 3, maxRoles: 2 };
    expect(errorOf(check(() => {}, limits))).toBe('roles: 7 roles exceed the limit of 2');
    expect(errorOf(check(() => {}, { ...limits, maxRoles: 100 }))).toBe('edges: 6 edges exceed the limit of 3');
  });
});

describe('wire: truncated and garbled bytes', () => {
  it('every truncation of a window fails in fromBinary or in validation, never passes', () => {
    const bin = toBinary(pb.PartialWindowSchema, good());
    let parsed = 0;
    for (let n = 0; n < bin.length; n++) {
      let m: pb.PartialWindow;
      try {
        m = fromBinary(pb.PartialWindowSchema, bin.subarray(0, n));
      } catch {
        continue; // cut inside a field: the parser says so
      }
      parsed++;
      // cut between fields: the message parses, but stats (written last) is missing
      const r = fromWireWindow(m, HELLO);
      expect(r.ok, `prefix of ${n}/${bin.length} bytes`).toBe(false);
    }
    expect(parsed).toBeGreaterThan(10); // both paths were exercised
    expect(fromWireWindow(fromBinary(pb.PartialWindowSchema, bin), HELLO).ok).toBe(true);
  });

  it('every truncation of the envelope fails to parse or carries no window', () => {
    const msg = create(pb.AgentMessageSchema, { body: { case: 'window', value: good() } });
    const bin = toBinary(pb.AgentMessageSchema, msg);
    for (let n = 0; n < bin.length; n++) {
      let m: pb.AgentMessage | undefined;
      try {
        m = fromBinary(pb.AgentMessageSchema, bin.subarray(0, n));
      } catch {
        continue;
      }
      // only the empty prefix parses: an AgentMessage without a body, refused as such
      expect(n).toBe(0);
      expect(m.body.case).toBeUndefined();
    }
  });

  it('garbled bytes never crash validation and never yield unsafe numbers', () => {
    const bin = toBinary(pb.PartialWindowSchema, good());
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from(bin);
      for (let k = 1 + rnd(4); k > 0; k--) b[rnd(b.length)] = rnd(256);
      let m: pb.PartialWindow;
      try {
        m = fromBinary(pb.PartialWindowSchema, b);
      } catch {
        continue;
      }
      const r = fromWireWindow(m, HELLO); // must not throw
      if (!r.ok) continue;
      accepted++; // a byte flip that yields another valid window (e.g. other byte counts)
      const nums = [r.value.seq, r.value.window.windowStart, ...r.value.window.edges.flatMap((e) => [e.bytes, e.count])];
      for (const x of nums) expect(Number.isSafeInteger(x) && x >= 0).toBe(true);
      for (const e of r.value.window.edges) expect(r.value.roles.some((x) => x.id === e.srcId)).toBe(true);
    }
    expect(accepted).toBeLessThan(3000);
  });
});

describe('wire: hello', () => {
  const wire = (h: Partial<HelloInfo>) => toWireHello({ ...HELLO, ...h });

  it('accepts a normal hello and returns it as plain values', () => {
    const bin = toBinary(pb.HelloSchema, wire({}));
    expect(validateHello(fromBinary(pb.HelloSchema, bin))).toEqual({ ok: true, value: { ...HELLO, modelVersion: '' } });
    expect(validateHello(wire({ host: 'hôte-été 1', agentVersion: '', collector: '' })).ok).toBe(true);
  });

  const cases: [string, Partial<HelloInfo>, string][] = [
    ['empty agent id', { agentId: '' }, 'agent_id: empty'],
    ['empty host', { host: '' }, 'host: empty'],
    ['empty app', { app: '' }, 'app: empty'],
    ['agent id too long', { agentId: 'a'.repeat(257) }, 'agent_id: length 257 exceeds the limit of 256'],
    ['newline in host', { host: 'host-a\nlevel=error forged' }, 'host: "host-a\\nlevel=error forged" has control characters or leading/trailing spaces'],
    ['NUL in app', { app: 'shop\u0000' }, 'app: "shop\\u0000" has control characters or leading/trailing spaces'],
    ['leading space', { agentId: ' agent' }, 'agent_id: " agent" has control characters or leading/trailing spaces'],
    ['escape in version', { agentVersion: '1.0\u001b[31m' }, 'agent_version: "1.0\\u001b[31m" has control characters or leading/trailing spaces'],
    ['collector too long', { collector: 'c'.repeat(300) }, 'collector: length 300 exceeds the limit of 256'],
    ['protocol version 0', { protocolVersion: 0 }, 'protocol_version: 0 is not supported (supported: 1)'],
    ['protocol version 2', { protocolVersion: 2 }, 'protocol_version: 2 is not supported (supported: 1)'],
    ['window too short', { windowMs: 50 }, 'window_ms: 50 out of range 100..3600000'],
    ['window too long', { windowMs: 7_200_000 }, 'window_ms: 7200000 out of range 100..3600000'],
  ];
  it.each(cases)('refuses: %s', (_what, h, message) => {
    expect(errorOf(validateHello(wire(h)))).toBe(message);
  });
});

describe('wire: the agent verdict inside a window', () => {
  const HELLO1: HelloInfo = { agentId: 'a', host: 'h', app: 'x', agentVersion: '', protocolVersion: 1, windowMs: 1000, collector: '' };
  const id = (n: number) => n.toString(16).padStart(16, '0');
  const edge = { srcId: id(1), dstId: id(2), src: 'mme/ITTI 3', dst: 'net:tcp/private:3868', kind: 'net' as const, bytes: 100, count: 2 };
  const plain = {
    app: 'x', host: 'h', windowStart: 5000, windowMs: 1000, edges: [edge], flows: [], stats: { events: 1, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 },
    verdict: {
      modelVersion: '7', score: 3.5, threshold: 1.2, anomalous: true,
      newEdges: [{ srcId: id(1), dstId: id(9), src: 'mme/ITTI 3', dst: 'net:tcp/public:4444', kind: 'net' as const, bytes: 777, count: 1 }],
      groups: [{ name: 'mme', error: 0.5, ratio: 3.5 }],
      // an edge the model expected but this window lacks: its roles travel too
      edges: [{ srcId: id(3), dstId: id(4), src: 'file:/var/lib/mme/db', dst: 'mme/ITTI 3', kind: 'file' as const, observedBytes: 0, expectedBytes: 4096, error: 2.5 }],
    },
  };

  it('round-trips, with the roles the explanation names added to the table', () => {
    const msg = fromBinary(pb.PartialWindowSchema, toBinary(pb.PartialWindowSchema, toWireWindow(plain, 3)));
    const r = fromWireWindow(msg, HELLO1);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.window.verdict).toEqual(plain.verdict);
    expect(r.value.window.edges).toEqual([edge]);
  });

  it('refuses a verdict with a non-finite score or a bad role index', () => {
    const msg = toWireWindow(plain, 3);
    msg.verdict!.score = Number.NaN;
    const r1 = fromWireWindow(msg, HELLO1);
    expect(!r1.ok && r1.error.message).toMatch(/verdict.score: NaN is not a finite number/);
    const msg2 = toWireWindow(plain, 3);
    msg2.verdict!.edges[0].src = 99;
    const r2 = fromWireWindow(msg2, HELLO1);
    expect(!r2.ok && r2.error.message).toMatch(/verdict.edges\[0\].src: role index 99 out of range/);
  });
});
