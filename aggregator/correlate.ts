/**
 * Joins the partial graphs of one window into the application-wide MSDEG (DESIGN §4).
 *
 * An agent only knows its side of a socket: its thread sent bytes to an endpoint role
 * (`net:tcp/private:5432`) and it reports the socket as a flow with exact addresses. A flow
 * seen as A:a→B:b on one host and as B:b→A:a on another (or on the same host: containers,
 * loopback) is one connection: its bytes move from the endpoint edges onto an edge between
 * the two thread roles. What no other agent reported stays on an external role named by
 * address class and service port (`ext:tcp/private:5432`), never by an ephemeral port.
 *
 * Pure: partial windows in, merged window out.
 */
import type { Edge, EdgeKind, Flow, MergedWindow, PartialWindow } from '../shared/graph.js';
import { roleId } from '../shared/role-id.js';

interface HostFlow {
  host: string;
  f: Flow;
  matched: boolean;
}

const ANY = new Set(['', '0.0.0.0', '::']);

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

const KIND_NO: Record<EdgeKind, number> = { net: 0, file: 1, mem: 2, ipc: 3 };
/** Roles a window may have for numeric edge keys to stay exact: (src · 2^24 + dst) · 4 + kind < 2^50. */
const ROLE_SPAN = 2 ** 24;

/**
 * Small integers for the role ids of one window, so edges are keyed by one number instead of
 * a 38-character string built per edge (the merge sums hundreds of thousands of edges).
 */
class RoleNumbers {
  private readonly m = new Map<string, number>();
  of(id: string): number {
    let n = this.m.get(id);
    if (n === undefined) {
      n = this.m.size;
      if (n >= ROLE_SPAN) throw new RangeError(`a window with more than ${ROLE_SPAN} roles cannot be merged`);
      this.m.set(id, n);
    }
    return n;
  }
  key(srcId: string, dstId: string, kind: EdgeKind): number {
    return (this.of(srcId) * ROLE_SPAN + this.of(dstId)) * 4 + KIND_NO[kind];
  }
}

/** Accumulates edges by (src, dst, kind), keeping labels. */
class EdgeSum {
  readonly m = new Map<number, Edge>();
  constructor(private readonly roles: RoleNumbers) {}
  add(srcId: string, src: string, dstId: string, dst: string, kind: EdgeKind, bytes: number, count: number): void {
    if (bytes === 0 && count === 0) return;
    const k = this.roles.key(srcId, dstId, kind);
    const e = this.m.get(k);
    if (e) {
      e.bytes += bytes;
      e.count += count;
    } else this.m.set(k, { srcId, dstId, src, dst, kind, bytes, count });
  }
}

/** `net:tcp/private:5432` → `ext:tcp/private:5432`: an endpoint outside the profiled application. */
export function externalRole(label: string): { id: string; label: string } {
  const ext = label.startsWith('net:') ? `ext:${label.slice(4)}` : label;
  return { id: roleId(ext), label: ext };
}

/**
 * A datagram socket's first send happens before the kernel binds it to a port, so tracers
 * report that send with local port 0. Fold such flows into the flow of the same socket after
 * binding (same thread role, protocol and peer) so the connection can be matched.
 */
function foldUnbound(flows: readonly Flow[]): Flow[] {
  if (!flows.some((f) => f.local.port === 0)) return flows as Flow[];
  const out: Flow[] = flows.filter((f) => f.local.port !== 0).map((f) => ({ ...f }));
  for (const f of flows) {
    if (f.local.port !== 0) continue;
    const same = out.filter((g) => g.proto === f.proto && g.roleId === f.roleId && g.remote.port === f.remote.port && g.remote.ip === f.remote.ip);
    if (same.length !== 1) {
      out.push(f);
      continue;
    }
    const g = same[0];
    g.bytesOut += f.bytesOut;
    g.bytesIn += f.bytesIn;
    g.countOut += f.countOut;
    g.countIn += f.countIn;
  }
  return out;
}

/**
 * Sockets seen in earlier windows, so a connection whose other end was quiet in this window
 * (it read or wrote nothing, but its agent reported the socket before) is still joined.
 * Bounded: the oldest entries go first.
 */
export class FlowRegistry {
  private readonly m = new Map<string, { roleId: string; role: string }>();
  constructor(private readonly max = 200_000) {}

  static key(host: string, f: { proto: string; local: { ip: string; port: number }; remote: { ip: string; port: number } }): string {
    // loopback addresses mean something only on their own host
    const scope = isLoopback(f.local.ip) || isLoopback(f.remote.ip) ? host : '';
    return `${scope}|${f.proto}|${f.local.ip}|${f.local.port}|${f.remote.ip}|${f.remote.port}`;
  }

  remember(host: string, f: Flow): void {
    const k = FlowRegistry.key(host, f);
    this.m.delete(k);
    this.m.set(k, { roleId: f.roleId, role: f.role });
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value!);
  }

  /** The thread role at the other end of `f`, if that end was ever reported. */
  peerOf(host: string, f: Flow): { roleId: string; role: string } | undefined {
    if (ANY.has(f.local.ip) || ANY.has(f.remote.ip)) return undefined;
    return this.m.get(FlowRegistry.key(host, { proto: f.proto, local: f.remote, remote: f.local }));
  }

  get size(): number {
    return this.m.size;
  }
}

export function correlate(
  app: string,
  windowStart: number,
  windowMs: number,
  partials: readonly PartialWindow[],
  registry?: FlowRegistry,
): MergedWindow {
  // Addresses each host is known to own (from sockets bound to a specific address), to pair
  // flows of sockets bound to the wildcard address (unconnected UDP servers).
  const hostAddrs = new Map<string, Set<string>>();
  const byPorts = new Map<string, HostFlow[]>();
  const flows: HostFlow[] = [];
  for (const p of partials) {
    let addrs = hostAddrs.get(p.host);
    if (!addrs) hostAddrs.set(p.host, (addrs = new Set()));
    for (const f of foldUnbound(p.flows)) {
      if (!ANY.has(f.local.ip) && !isLoopback(f.local.ip)) addrs.add(f.local.ip);
      const hf = { host: p.host, f, matched: false };
      flows.push(hf);
      const k = `${f.proto}|${f.local.port}|${f.remote.port}`;
      const list = byPorts.get(k);
      if (list) list.push(hf);
      else byPorts.set(k, [hf]);
    }
  }

  /** could `ip`, as the other side saw it, be the local address of this flow's socket? */
  const owns = (hf: HostFlow, ip: string): boolean => {
    if (hf.f.local.ip === ip) return true;
    if (!ANY.has(hf.f.local.ip)) return false;
    const addrs = hostAddrs.get(hf.host)!;
    return addrs.size === 0 || addrs.has(ip) || isLoopback(ip);
  };

  // Bytes to take off each host's endpoint edges, keyed like EdgeSum keys.
  const roles = new RoleNumbers();
  const moved = new Map<number, { bytes: number; count: number }>();
  const take = (srcId: string, dstId: string, bytes: number, count: number): void => {
    const k = roles.key(srcId, dstId, 'net');
    const t = moved.get(k) ?? { bytes: 0, count: 0 };
    t.bytes += bytes;
    t.count += count;
    moved.set(k, t);
  };

  const out = new EdgeSum(roles);
  let matched = 0;
  for (const a of flows) {
    if (a.matched) continue;
    const fa = a.f;
    const candidates = byPorts.get(`${fa.proto}|${fa.remote.port}|${fa.local.port}`);
    if (!candidates || fa.remote.port === 0) continue;
    const b = candidates.find(
      (c) =>
        c !== a &&
        !c.matched &&
        owns(c, fa.remote.ip) &&
        owns(a, c.f.remote.ip) &&
        // loopback traffic never leaves its host
        (!(isLoopback(fa.remote.ip) || isLoopback(c.f.remote.ip)) || c.host === a.host),
    );
    if (!b) continue;
    a.matched = b.matched = true;
    matched += 2;
    const fb = b.f;
    // sender-side counts: what each thread wrote is what went onto the wire towards the other
    out.add(fa.roleId, fa.role, fb.roleId, fb.role, 'net', fa.bytesOut, fa.countOut);
    out.add(fb.roleId, fb.role, fa.roleId, fa.role, 'net', fb.bytesOut, fb.countOut);
    take(fa.roleId, fa.endpointId, fa.bytesOut, fa.countOut);
    take(fa.endpointId, fa.roleId, fa.bytesIn, fa.countIn);
    take(fb.roleId, fb.endpointId, fb.bytesOut, fb.countOut);
    take(fb.endpointId, fb.roleId, fb.bytesIn, fb.countIn);
  }

  // Sockets whose other end was reported in an earlier window but not in this one
  if (registry) {
    for (const a of flows) {
      if (a.matched) continue;
      const peer = registry.peerOf(a.host, a.f);
      if (!peer) continue;
      a.matched = true;
      matched++;
      const fa = a.f;
      // only what this end sent: what it received was counted where it was sent
      out.add(fa.roleId, fa.role, peer.roleId, peer.role, 'net', fa.bytesOut, fa.countOut);
      take(fa.roleId, fa.endpointId, fa.bytesOut, fa.countOut);
      take(fa.endpointId, fa.roleId, fa.bytesIn, fa.countIn);
    }
    for (const a of flows) registry.remember(a.host, a.f);
  }

  // Every other edge passes through, summed across hosts (replicas share roles); what is
  // left on network endpoints after matching belongs to peers outside the application.
  const sum = new Map<number, Edge>();
  for (const p of partials) {
    for (const e of p.edges) {
      const k = roles.key(e.srcId, e.dstId, e.kind);
      const s = sum.get(k);
      if (s) {
        s.bytes += e.bytes;
        s.count += e.count;
      } else sum.set(k, { ...e });
    }
  }
  for (const [k, e] of sum) {
    let { bytes, count } = e;
    const t = moved.get(k);
    if (t) {
      bytes = Math.max(0, bytes - t.bytes);
      count = Math.max(0, count - t.count);
    }
    if (bytes === 0 && count === 0) continue;
    if (e.kind !== 'net') out.add(e.srcId, e.src, e.dstId, e.dst, e.kind, bytes, count);
    else if (e.src.startsWith('net:')) {
      const x = externalRole(e.src);
      out.add(x.id, x.label, e.dstId, e.dst, 'net', bytes, count);
    } else if (e.dst.startsWith('net:')) {
      const x = externalRole(e.dst);
      out.add(e.srcId, e.src, x.id, x.label, 'net', bytes, count);
    } else out.add(e.srcId, e.src, e.dstId, e.dst, e.kind, bytes, count);
  }

  const edges = [...out.m.values()].sort((x, y) => (x.src < y.src ? -1 : x.src > y.src ? 1 : x.dst < y.dst ? -1 : x.dst > y.dst ? 1 : x.kind < y.kind ? -1 : 1));
  return {
    app,
    windowStart,
    windowMs,
    hosts: [...new Set(partials.map((p) => p.host))].sort(),
    edges,
    matchedFlows: matched,
    unmatchedFlows: flows.length - matched,
  };
}
