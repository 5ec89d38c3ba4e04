/**
 * Events → state → roles → windows. For every event: update the host state, and for data
 * and memory calls find the thread role and the target role (both cached on the state
 * entries, so the steady state does map lookups and additions only) and fold the bytes.
 */
import { dataDirection, type DataDirection, type FdTarget, type SockAddr, type SyscallEvent } from '../shared/event.js';
import type { Edge, Flow, PartialWindow } from '../shared/graph.js';
import { RoleTable, type Role } from './role-table.js';
import {
  compileGlob,
  DEFAULT_EPHEMERAL,
  fileRole,
  ipcRole,
  memRole,
  netRole,
  processRole,
  socketSide,
  threadRole,
  type CompiledGlob,
  type PortRange,
  type RoleSpec,
  type SocketSide,
} from './roles.js';
import { HostState, type FdEntry, type ProcessInfo, type ThreadInfo } from './state/host-state.js';
import type { Attribution } from './state/attribution.js';
import { EDGE_KINDS, KIND_FILE, KIND_IPC, KIND_MEM, KIND_NET, WindowFolder, type WindowAcc } from './window.js';

export interface TrackerOptions {
  app: string;
  host: string;
  windowMs: number;
  /** how long after its end a window waits for stragglers (event time) */
  latenessMs?: number;
  /** emit windows in which nothing was seen */
  emitEmpty?: boolean;
  /** path globs that name file roles, e.g. "/var/log/nginx/*.log" */
  pathGlobs?: string[];
  /** container id (or its prefix) → service name */
  services?: Record<string, string>;
  ephemeralPorts?: PortRange;
  attribution: Attribution;
}

interface FlowIdentity {
  proto: 'tcp' | 'udp';
  local: SockAddr;
  remote: SockAddr;
  side: SocketSide;
  role: Role;
  /** the endpoint role the flow's bytes were put on, for the aggregator to re-point */
  endpoint: Role;
}

interface Channel {
  /** the role used while the peer is not resolved */
  role: Role;
  readers: Set<Role>;
  writers: Set<Role>;
}

const NO_ADDR: SockAddr = { ip: '', port: 0 };
const RELEASE_ADVICE = /MADV_(DONTNEED|FREE|REMOVE)/;

export interface TrackerCounters {
  events: number;
  dataCalls: number;
  unknownFdCalls: number;
  unknownFdBytes: number;
  lateEvents: number;
  windows: number;
}

export class Tracker {
  readonly roles = new RoleTable();
  readonly state: HostState;
  readonly folder: WindowFolder;
  readonly counters: TrackerCounters = { events: 0, dataCalls: 0, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0, windows: 0 };
  private readonly globs: CompiledGlob[];
  private readonly flows: FlowIdentity[] = [];
  private readonly flowIdx = new Map<string, number>();
  private readonly channels: Channel[] = [];
  private readonly channelIdx = new Map<string, number>();
  private readonly udpPeers = new WeakMap<FdEntry, Map<string, { role: Role; identity: string }>>();
  private readonly ephemeral: PortRange;
  private maxTs = -Infinity;

  constructor(
    private readonly opts: TrackerOptions,
    private readonly onWindow: (w: PartialWindow) => void,
  ) {
    this.state = new HostState(opts.attribution);
    this.globs = (opts.pathGlobs ?? []).map(compileGlob);
    this.ephemeral = opts.ephemeralPorts ?? DEFAULT_EPHEMERAL;
    this.folder = new WindowFolder(
      { windowMs: opts.windowMs, latenessMs: opts.latenessMs ?? 0, emitEmpty: opts.emitEmpty ?? true },
      (w) => this.close(w),
    );
  }

  /** Fold a batch of events, then close the windows event time has moved past. */
  push(events: readonly SyscallEvent[]): void {
    let max = this.maxTs;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i];
      this.handle(ev);
      if (ev.ts > max) max = ev.ts;
    }
    this.maxTs = max;
    if (max !== -Infinity) this.folder.advance(max);
  }

  /** Live capture: close windows by the wall clock too, when the traced programs are quiet. */
  tick(nowMs: number): void {
    this.folder.advance(nowMs);
  }

  end(): void {
    this.folder.flush();
  }

  handle(ev: SyscallEvent): void {
    this.counters.events++;
    const t = this.state.thread(ev);
    const w = this.folder.at(ev.ts);
    w.events++;
    const dir = dataDirection(ev.call);
    if (dir === undefined) {
      this.memory(ev, t, w);
      this.state.apply(ev, t);
      return;
    }
    if (ev.bytes <= 0) {
      // a failed or empty call moves nothing, but its annotation still tells what the fd is
      if (ev.fd !== undefined && ev.target !== undefined) this.state.fdEntry(t.proc, ev.fd, ev.target);
      return;
    }
    this.counters.dataCalls++;
    const count = ev.count ?? 1;
    const role = this.threadRoleOf(t);
    if (dir === 'transfer') {
      // data goes from fd2 (input) through the thread to fd (output)
      this.move(w, t, role, ev.fd2, ev.target2, 'in', ev.bytes, count, undefined);
      this.move(w, t, role, ev.fd, ev.target, 'out', ev.bytes, count, undefined);
    } else this.move(w, t, role, ev.fd, ev.target, dir, ev.bytes, count, ev.addr);
  }

  private move(
    w: WindowAcc,
    t: ThreadInfo,
    role: Role,
    fd: number | undefined,
    target: FdTarget | undefined,
    dir: Exclude<DataDirection, 'transfer'>,
    bytes: number,
    count: number,
    addr: SockAddr | undefined,
  ): void {
    const out = dir === 'out';
    const e = fd === undefined ? undefined : this.state.fdEntry(t.proc, fd, target);
    if (e === undefined) {
      if (fd !== undefined && fd >= 0 && fd <= 2) {
        // stdio inherited from outside the trace: a pipe or terminal we never saw opened
        const io = this.roles.intern(ipcRole('stdio', fd === 0 ? 'stdin' : fd === 1 ? 'stdout' : 'stderr'));
        this.folder.addEdge(w, out ? role : io, out ? io : role, KIND_IPC, bytes, count);
        return;
      }
      w.unknownFdCalls += count;
      w.unknownFdBytes += bytes;
      this.counters.unknownFdCalls += count;
      this.counters.unknownFdBytes += bytes;
      return;
    }
    const k = e.target.kind;
    if (k === 'tcp' || k === 'udp') {
      this.net(w, e, role, out, bytes, count, k === 'udp' ? addr : undefined);
      return;
    }
    if (e.sendCh === undefined) this.channelsOf(e);
    const ch = out ? e.sendCh! : e.recvCh!;
    if (ch >= 0) {
      const c = this.channels[ch];
      const seen = out ? c.writers : c.readers;
      if (!seen.has(role)) seen.add(role);
      this.folder.addIpc(w, ch, role, out, bytes, count);
      return;
    }
    const other = e.role ?? (e.role = this.targetRole(e));
    const kind = other.kind === 'file' ? KIND_FILE : KIND_IPC;
    this.folder.addEdge(w, out ? role : other, out ? other : role, kind, bytes, count);
  }

  private net(w: WindowAcc, e: FdEntry, role: Role, out: boolean, bytes: number, count: number, addr: SockAddr | undefined): void {
    let other: Role;
    let flow: number;
    if (addr !== undefined && addr.port !== 0 && !(e.target.remote && e.target.remote.port !== 0)) {
      // unconnected UDP: each datagram names its peer
      ({ role: other, flow } = this.udpPeer(e, role, addr));
    } else {
      other = e.role ?? (e.role = this.targetRole(e));
      if (e.flowRole !== role) {
        e.flowRole = role;
        e.flow = this.flowOf(e, role, e.target.remote ?? NO_ADDR, other);
      }
      flow = e.flow!;
    }
    this.folder.addEdge(w, out ? role : other, out ? other : role, KIND_NET, bytes, count);
    this.folder.addFlow(w, flow, out, bytes, count);
  }

  private udpPeer(e: FdEntry, role: Role, addr: SockAddr): { role: Role; flow: number } {
    let m = this.udpPeers.get(e);
    if (!m) this.udpPeers.set(e, (m = new Map()));
    const k = `${addr.ip}|${addr.port}`;
    let p = m.get(k);
    if (!p) {
      const side = socketSide('unknown', e.target.local, addr, this.ephemeral);
      p = { role: this.roles.intern(netRole('udp', side, e.target.local, addr)), identity: k };
      m.set(k, p);
    }
    return { role: p.role, flow: this.flowOf(e, role, addr, p.role) };
  }

  private flowOf(e: FdEntry, role: Role, remote: SockAddr, endpoint: Role): number {
    const proto = e.target.kind as 'tcp' | 'udp';
    const local = e.target.local ?? NO_ADDR;
    const key = `${proto}|${local.ip}|${local.port}|${remote.ip}|${remote.port}|${role.idx}`;
    let i = this.flowIdx.get(key);
    if (i === undefined) {
      i = this.flows.length;
      this.flows.push({ proto, local, remote, side: this.sideOf(e, remote), role, endpoint });
      this.flowIdx.set(key, i);
    }
    return i;
  }

  private sideOf(e: FdEntry, remote: SockAddr | undefined): SocketSide {
    const origin: SocketSide = e.origin === 'accept' ? 'server' : e.origin === 'connect' && e.target.kind === 'tcp' ? 'client' : 'unknown';
    return socketSide(origin, e.target.local, remote, this.ephemeral);
  }

  /** Role of what an fd refers to, when it is not an IPC channel with a resolvable peer. */
  private targetRole(e: FdEntry): Role {
    const tg = e.target;
    let spec: RoleSpec;
    switch (tg.kind) {
      case 'file':
        spec = fileRole(tg.path ?? '?', this.globs);
        break;
      case 'tcp':
      case 'udp':
        spec = netRole(tg.kind, this.sideOf(e, tg.remote), tg.local, tg.remote);
        break;
      case 'unix':
        spec = ipcRole('unix', tg.path, this.globs);
        break;
      case 'anon':
        spec = ipcRole('anon', tg.path);
        break;
      case 'pipe':
      case 'eventfd':
      case 'netlink':
      case 'socket':
        spec = ipcRole(tg.kind);
        break;
    }
    return this.roles.intern(spec);
  }

  /** Pipes and connected unix sockets are channels whose peer role is decided at window close. */
  private channelsOf(e: FdEntry): void {
    const tg = e.target;
    e.sendCh = e.recvCh = -1;
    if (tg.kind === 'pipe' && tg.inode !== undefined) {
      e.sendCh = e.recvCh = this.channel(`p:${tg.inode}`, tg);
    } else if (tg.kind === 'unix' && tg.inode !== undefined && tg.peerInode !== undefined && tg.peerInode !== 0) {
      e.sendCh = this.channel(`u:${tg.inode}>${tg.peerInode}`, tg);
      e.recvCh = this.channel(`u:${tg.peerInode}>${tg.inode}`, tg);
    }
  }

  private channel(key: string, tg: FdTarget): number {
    let i = this.channelIdx.get(key);
    if (i === undefined) {
      i = this.channels.length;
      const role = this.roles.intern(tg.kind === 'unix' ? ipcRole('unix', tg.path, this.globs) : ipcRole('pipe'));
      this.channels.push({ role, readers: new Set(), writers: new Set() });
      this.channelIdx.set(key, i);
    }
    return i;
  }

  private memory(ev: SyscallEvent, t: ThreadInfo, w: WindowAcc): void {
    let got = 0;
    switch (ev.call) {
      case 'munmap':
        if (ev.ret === 0 && ev.len) got = -ev.len;
        break;
      case 'madvise':
        if (ev.ret === 0 && ev.len && RELEASE_ADVICE.test(ev.flags ?? '')) got = -ev.len;
        break;
      case 'mmap':
        if (ev.ret !== -1 && ev.len && (ev.flags ?? '').includes('MAP_ANON')) got = ev.len;
        break;
      case 'brk': {
        const p = t.proc;
        if (ev.ret > 0) {
          if (p.brk !== undefined) got = ev.ret - p.brk;
          p.brk = ev.ret;
        }
        break;
      }
      default:
        return;
    }
    if (got === 0) return;
    const role = this.threadRoleOf(t);
    const mem = this.memRoleOf(t.proc);
    // released memory flows from the thread back to the system; obtained memory the other way
    if (got < 0) this.folder.addEdge(w, role, mem, KIND_MEM, -got, ev.count ?? 1);
    else this.folder.addEdge(w, mem, role, KIND_MEM, got, ev.count ?? 1);
  }

  private procSpec(p: ProcessInfo): RoleSpec {
    if (p.roleSpec === undefined) {
      const service = this.serviceOf(p.containerId);
      p.roleSpec = processRole({ exeHash: p.exeHash, exePath: p.exePath, comm: p.comm, argv: p.argv, service });
    }
    return p.roleSpec;
  }

  private serviceOf(containerId: string | undefined): string | undefined {
    const s = this.opts.services;
    if (!containerId || !s) return undefined;
    for (const k in s) if (containerId.startsWith(k)) return s[k];
    return undefined;
  }

  threadRoleOf(t: ThreadInfo): Role {
    if (t.role !== undefined && t.roleGeneration === t.proc.generation) return t.role;
    t.role = this.roles.intern(threadRole(this.procSpec(t.proc), t.name, t.proc.comm));
    t.roleGeneration = t.proc.generation;
    return t.role;
  }

  private memRoleOf(p: ProcessInfo): Role {
    if (p.memRole === undefined) p.memRole = this.roles.intern(memRole(this.procSpec(p)));
    return p.memRole;
  }

  private close(w: WindowAcc): void {
    this.counters.windows++;
    this.counters.lateEvents += w.lateEvents;
    this.onWindow(this.toPartial(w));
  }

  /** Turn accumulators into the partial MSDEG, resolving IPC peers with what is known now. */
  toPartial(w: WindowAcc): PartialWindow {
    const edges = new Map<string, Edge>();
    const put = (src: Role, dst: Role, kind: number, bytes: number, count: number): void => {
      const key = `${src.idx}>${dst.idx}>${kind}`;
      const e = edges.get(key);
      if (e) {
        e.bytes += bytes;
        e.count += count;
      } else edges.set(key, { srcId: src.id, dstId: dst.id, src: src.label, dst: dst.label, kind: EDGE_KINDS[kind], bytes, count });
    };
    for (const e of w.edges.values()) put(e.src, e.dst, e.kind, e.bytes, e.count);
    for (const a of w.ipc.values()) {
      const c = this.channels[a.channel];
      // one reader role and a known writer: the bytes are counted once, from writer to reader
      const resolved = c.readers.size === 1 && c.writers.size > 0;
      if (a.out) {
        const dst = resolved ? c.readers.values().next().value! : c.role;
        put(a.role, dst, KIND_IPC, a.bytes, a.count);
      } else if (!resolved) put(c.role, a.role, KIND_IPC, a.bytes, a.count);
    }
    const flows: Flow[] = [];
    for (const f of w.flows.values()) {
      const id = this.flows[f.flow];
      flows.push({
        proto: id.proto,
        local: id.local,
        remote: id.remote,
        side: id.side,
        roleId: id.role.id,
        role: id.role.label,
        endpointId: id.endpoint.id,
        endpoint: id.endpoint.label,
        bytesOut: f.bytesOut,
        bytesIn: f.bytesIn,
        countOut: f.countOut,
        countIn: f.countIn,
      });
    }
    const sorted = [...edges.values()].sort((a, b) => (a.src < b.src ? -1 : a.src > b.src ? 1 : a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : a.kind < b.kind ? -1 : 1));
    return {
      app: this.opts.app,
      host: this.opts.host,
      windowStart: w.start,
      windowMs: this.opts.windowMs,
      edges: sorted,
      flows,
      stats: { events: w.events, unknownFdCalls: w.unknownFdCalls, unknownFdBytes: w.unknownFdBytes, lateEvents: w.lateEvents },
    };
  }
}
