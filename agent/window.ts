/**
 * Folds attributed data movements into windows aligned to multiples of the window length
 * since the epoch. This is the hot path: numbers in, accumulators keyed by small integers,
 * no strings or per-event objects; edges become objects only when a window closes.
 */
import type { Role } from './role-table.js';
import type { EdgeKind } from '../shared/graph.js';

export const EDGE_KINDS: readonly EdgeKind[] = ['net', 'file', 'mem', 'ipc'];
export const KIND_NET = 0;
export const KIND_FILE = 1;
export const KIND_MEM = 2;
export const KIND_IPC = 3;

/** Roles per agent stay far below this; it keeps (src, dst, kind) in one exact double. */
const ROLE_SPACE = 1 << 22;

export interface EdgeAcc {
  src: Role;
  dst: Role;
  kind: number;
  bytes: number;
  count: number;
}

export interface FlowAcc {
  /** index of the flow identity (interned by the tracker) */
  flow: number;
  bytesOut: number;
  bytesIn: number;
  countOut: number;
  countIn: number;
}

/** An IPC movement whose peer is decided when the window closes. */
export interface IpcAcc {
  channel: number;
  role: Role;
  out: boolean;
  bytes: number;
  count: number;
}

export class WindowAcc {
  readonly edges = new Map<number, EdgeAcc>();
  readonly flows = new Map<number, FlowAcc>();
  readonly ipc = new Map<number, IpcAcc>();
  events = 0;
  unknownFdCalls = 0;
  unknownFdBytes = 0;
  lateEvents = 0;
  constructor(readonly start: number) {}
}

export interface FolderOptions {
  windowMs: number;
  /** how long after a window's end events may still arrive before it closes */
  latenessMs: number;
  /** emit windows in which nothing happened (a quiet window is information too) */
  emitEmpty: boolean;
}

export class WindowFolder {
  private readonly open = new Map<number, WindowAcc>();
  /** windows starting before this are closed */
  private closedBefore = -Infinity;
  /** a window has been closed (emitted, or passed over as empty): the bound is final */
  private closedAny = false;
  /** the last window handed out, so consecutive events skip the map lookup */
  private cur: WindowAcc | undefined;
  private curStart = NaN;

  constructor(
    readonly opts: FolderOptions,
    private readonly onClose: (w: WindowAcc) => void,
  ) {
    if (!(opts.windowMs > 0)) throw new Error(`window length must be positive, got ${opts.windowMs} ms`);
  }

  /** The window an event at `ts` belongs to; a late event goes to the oldest open window. */
  at(ts: number): WindowAcc {
    const start = Math.floor(ts / this.opts.windowMs) * this.opts.windowMs;
    if (start === this.curStart) return this.cur!;
    let w: WindowAcc | undefined;
    // before anything closed, begin()'s bound is provisional: an event traced just before it
    // (the traced program starts while the collector is still being set up) opens its own
    // window rather than being folded late into the next one
    if (start < this.closedBefore && !this.closedAny) this.closedBefore = start;
    if (start < this.closedBefore) {
      w = this.open.get(this.closedBefore) ?? this.create(this.closedBefore);
      w.lateEvents++;
      return w; // not cached: later events of the right time must find their own window
    }
    w = this.open.get(start) ?? this.create(start);
    this.cur = w;
    this.curStart = start;
    return w;
  }

  private create(start: number): WindowAcc {
    const w = new WindowAcc(start);
    this.open.set(start, w);
    return w;
  }

  addEdge(w: WindowAcc, src: Role, dst: Role, kind: number, bytes: number, count: number): void {
    const key = (src.idx * ROLE_SPACE + dst.idx) * 4 + kind;
    const e = w.edges.get(key);
    if (e !== undefined) {
      e.bytes += bytes;
      e.count += count;
    } else w.edges.set(key, { src, dst, kind, bytes, count });
  }

  addFlow(w: WindowAcc, flow: number, out: boolean, bytes: number, count: number): void {
    let f = w.flows.get(flow);
    if (f === undefined) {
      f = { flow, bytesOut: 0, bytesIn: 0, countOut: 0, countIn: 0 };
      w.flows.set(flow, f);
    }
    if (out) {
      f.bytesOut += bytes;
      f.countOut += count;
    } else {
      f.bytesIn += bytes;
      f.countIn += count;
    }
  }

  addIpc(w: WindowAcc, channel: number, role: Role, out: boolean, bytes: number, count: number): void {
    const key = (channel * ROLE_SPACE + role.idx) * 2 + (out ? 1 : 0);
    const a = w.ipc.get(key);
    if (a !== undefined) {
      a.bytes += bytes;
      a.count += count;
    } else w.ipc.set(key, { channel, role, out, bytes, count });
  }

  /**
   * Close every window that ended at least `latenessMs` before `now` (event time for
   * replay, wall clock for live capture). With emitEmpty, the quiet windows in between
   * are emitted too, so consumers see one window per period.
   */
  advance(now: number): void {
    const { windowMs, latenessMs, emitEmpty } = this.opts;
    const limit = Math.floor((now - latenessMs) / windowMs) * windowMs; // windows starting before limit end ≤ now-lateness
    if (limit <= this.closedBefore) return;
    const starts = [...this.open.keys()].filter((s) => s < limit).sort((a, b) => a - b);
    let from = this.closedBefore === -Infinity ? (starts[0] ?? limit) : this.closedBefore;
    for (const s of starts) {
      if (emitEmpty) for (let e = from; e < s; e += windowMs) this.onClose(new WindowAcc(e));
      this.onClose(this.open.get(s)!);
      this.open.delete(s);
      from = s + windowMs;
    }
    const started = this.closedBefore !== -Infinity || starts.length > 0;
    if (emitEmpty && started) for (let e = from; e < limit; e += windowMs) this.onClose(new WindowAcc(e));
    if (started) {
      this.closedBefore = limit;
      this.closedAny = true;
    }
    if (this.curStart < limit) {
      this.cur = undefined;
      this.curStart = NaN;
    }
  }

  /** Live capture: windows start with the one holding `ts`, even before any event arrives. */
  begin(ts: number): void {
    if (this.closedBefore === -Infinity) this.closedBefore = Math.floor(ts / this.opts.windowMs) * this.opts.windowMs;
  }

  /** Close everything still open (end of trace, shutdown). */
  flush(): void {
    if (this.open.size === 0) return;
    const last = Math.max(...this.open.keys());
    this.advance(last + this.opts.windowMs + this.opts.latenessMs);
  }

  get openWindows(): number {
    return this.open.size;
  }
}
