/**
 * The aggregator's SQLite store (DESIGN §4): one file a user can copy and query.
 *
 * Synchronous on purpose: better-sqlite3 runs a statement in well under the time an async
 * round trip would take, and a sync commit makes "ack only after commit" obvious in the
 * caller. Every statement is prepared once, here.
 *
 * Durability. The journal is WAL: readers (the CLI) never block the writer, and a commit is
 * one sequential append. With synchronous=FULL, SQLite fsyncs the WAL at every commit, so a
 * commit that returned survives a power cut or kernel crash. With synchronous=NORMAL it
 * fsyncs only at checkpoints: a commit that returned survives the aggregator *process* dying
 * (SIGKILL, OOM — the bytes are in the OS page cache), but a power cut or OS crash may roll
 * back the last commits (the file stays consistent either way). Agents delete a spooled
 * window once it is acknowledged, so an ack after a NORMAL commit is a promise a power cut
 * can break. FULL is the default: it costs one fsync per *batch* (commitPartials takes many
 * partials in one transaction), and bench/store.ts measured no difference that stands out of
 * the noise — ~100 ms per batch of 1,000 × 8 KiB partials either way, because at 8 MiB a
 * batch the WAL passes the 1,000-page autocheckpoint at every commit, and a checkpoint syncs
 * in both modes. 'normal' stays available for throwaway/demo databases.
 */
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import type { Edge, EdgeKind, Flow, MergedWindow } from '../../shared/graph.js';
import { StoreError, openError } from './errors.js';
import { hexOf, idToSql } from './ids.js';
import { checkHeader, migrate, readHeader } from './migrate.js';
import { SCHEMA_VERSION } from './schema.js';
import type {
  AgentInfo,
  AgentRow,
  CommitResult,
  FlowRow,
  HostFlows,
  OpenWindow,
  PartialIn,
  StoreOptions,
  StoredPartial,
  WindowQuery,
  WindowRow,
  WindowStatus,
} from './types.js';

type Stmt = Database.Statement;

/** Page cache per connection. The default 2 MiB makes the edges b-tree of a 200k-edge window miss; 64 MiB is bounded and enough. */
const CACHE_KIB = 64 * 1024;
/** WAL file truncated back to this after a checkpoint, so one burst does not leave a huge file behind. */
const WAL_LIMIT_BYTES = 64 * 1024 * 1024;
/** Known role ids kept in memory, so a batch skips the insert-or-ignore for roles already stored. */
const ROLE_CACHE_MAX = 1 << 20;

/**
 * Kind of a role first seen on a merged edge (the aggregator's external roles): from its
 * label's prefix. Roles from partials come with their kind and are committed first.
 */
function kindOfLabel(label: string): string {
  const m = /^(ext|net|file|mem|ipc):/.exec(label);
  return m ? m[1] : 'thread';
}

interface WindowSql {
  app: string;
  window_start: number;
  window_ms: number;
  status: WindowStatus;
  closed_at: number | null;
  merged_at: number | null;
  hosts: string;
  late_partials: number;
  matched_flows: number;
  unmatched_flows: number;
  edge_count: number;
  bytes: number;
}

function windowRow(r: WindowSql): WindowRow {
  return {
    app: r.app,
    windowStart: r.window_start,
    windowMs: r.window_ms,
    status: r.status,
    closedAt: r.closed_at,
    mergedAt: r.merged_at,
    hosts: JSON.parse(r.hosts) as string[],
    latePartials: r.late_partials,
    matchedFlows: r.matched_flows,
    unmatchedFlows: r.unmatched_flows,
    edges: r.edge_count,
    bytes: r.bytes,
  };
}

const WINDOW_COLS =
  'app, window_start, window_ms, status, closed_at, merged_at, hosts, late_partials, matched_flows, unmatched_flows, edge_count, bytes';

export class Store {
  private readonly now: () => number;
  /** role ids (hex) known to be in `roles`; only filled after the inserting transaction committed */
  private readonly knownRoles = new Set<string>();
  private readonly s: Record<string, Stmt> = {};
  private readonly commitTx: Database.Transaction<Store['commitBody']>;
  private readonly mergeTx: Database.Transaction<Store['mergeBody']>;

  private constructor(
    private readonly db: Database.Database,
    readonly file: string,
    readonly readonly: boolean,
    now: () => number,
    /** as opened; a second connection to the file (the merge worker) opens it alike */
    readonly durability: 'full' | 'normal',
  ) {
    this.now = now;
    this.prepareAll();
    this.commitTx = db.transaction(this.commitBody.bind(this));
    this.mergeTx = db.transaction(this.mergeBody.bind(this));
  }

  /**
   * Opens (creating when allowed) and migrates the store at `file`. Throws StoreError, naming
   * the file, for a file that is not SQLite, is damaged, belongs to another program, or was
   * written by a newer version.
   */
  static open(file: string, opts: StoreOptions = {}): Store {
    const ro = opts.readonly === true;
    // SQLite says only "unable to open database file"; say which of the usual reasons it is
    const st = statSync(file, { throwIfNoEntry: false });
    if (st?.isDirectory()) throw new StoreError(file, 'is a directory; --db takes a file');
    if (ro && st === undefined) throw new StoreError(file, 'no such file');
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: ro, fileMustExist: ro });
    } catch (e) {
      throw openError(file, e);
    }
    try {
      // a reader (CLI) may meet the writer mid-checkpoint: wait instead of failing at once
      db.pragma('busy_timeout = 5000');
      const h = readHeader(db, file);
      checkHeader(h, file);
      if (ro) {
        if (h.version < SCHEMA_VERSION) {
          throw new StoreError(file, `store schema version ${h.version} is older than ${SCHEMA_VERSION}; run the aggregator on it once to upgrade it`);
        }
      } else {
        // journal mode is persistent in the file; set before the first write transaction
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal') throw new StoreError(file, `cannot switch to WAL journal mode (got ${String(mode)}); is it on a network file system?`);
        db.pragma(`synchronous = ${opts.durability === 'normal' ? 'NORMAL' : 'FULL'}`);
        db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
        migrate(db, file);
      }
      db.pragma(`cache_size = -${CACHE_KIB}`);
      return new Store(db, file, ro, opts.now ?? Date.now, opts.durability ?? 'full');
    } catch (e) {
      db.close();
      throw openError(file, e);
    }
  }

  /** The connection, for the detection tables (detection.ts) that live in the same file. */
  get connection(): Database.Database {
    return this.db;
  }

  close(): void {
    if (!this.db.open) return;
    // keeps the query planner's statistics fresh; cheap, and what SQLite advises at close
    try {
      if (!this.readonly) this.db.pragma('optimize');
    } finally {
      this.db.close();
    }
  }

  // ------------------------------------------------------------------ agents and partials

  /** Records an agent's hello. first_seen and last_seq survive; the rest is what it says now. */
  upsertAgent(a: AgentInfo): void {
    const now = this.now();
    this.s.upsertAgent.run(a.agentId, a.host, a.app, a.agentVersion, a.windowMs, now, now);
  }

  /** Every agent that ever said hello, by app and host. */
  listAgents(): AgentRow[] {
    return this.s.agents.all() as AgentRow[];
  }

  /** Highest seq committed from this agent; -1 when none (seqs may start at 0). */
  agentLastSeq(agentId: string): number {
    const r = this.s.lastSeq.get(agentId) as { last_seq: number | null } | undefined;
    return r?.last_seq ?? -1;
  }

  /**
   * Commits a batch of partials in ONE transaction (one fsync for the batch): the partials
   * not stored yet, their agents' last_seq, their windows' 'open' rows and their new roles.
   * A partial whose (agent_id, seq) is already stored is a resend and is skipped. All or
   * nothing: if any item is refused (a wrong type, say), none is stored and this throws.
   * `agents`: hellos received since the last batch (upsertAgent's row), in the same
   * transaction, so 1,000 agents connecting at once do not cost 1,000 fsyncs.
   */
  commitPartials(batch: readonly PartialIn[], agents: readonly AgentInfo[] = []): CommitResult {
    if (batch.length === 0 && agents.length === 0) return { committed: 0, duplicates: 0, late: 0 }; // no empty commit (an fsync)
    const fresh = new Set<string>();
    const r = this.commitTx.immediate(batch, agents, this.now(), fresh);
    this.learnRoles(fresh);
    return r;
  }

  private commitBody(batch: readonly PartialIn[], agents: readonly AgentInfo[], now: number, fresh: Set<string>): CommitResult {
    const s = this.s;
    // hellos first, so their partials in the same batch find their agent
    for (const a of agents) s.upsertAgent.run(a.agentId, a.host, a.app, a.agentVersion, a.windowMs, now, now);
    let committed = 0;
    let duplicates = 0;
    let late = 0;
    for (const p of batch) {
      const w = s.windowStatus.get(p.app, p.windowStart) as { status: WindowStatus } | undefined;
      const isLate = p.late === true || w?.status === 'closed';
      if (s.insPartial.run(p.agentId, p.seq, p.app, p.host, p.windowStart, p.windowMs, now, isLate ? 1 : 0, p.body).changes === 0) {
        duplicates++;
        continue;
      }
      committed++;
      if (isLate) late++;
      if (w === undefined) s.openWindow.run(p.app, p.windowStart, p.windowMs);
      if (s.agentSeq.run(p.seq, now, p.agentId).changes === 0) {
        // partials before any hello (should not happen; keep the seq rather than lose it)
        s.upsertAgent.run(p.agentId, p.host, p.app, '', p.windowMs, now, now);
        s.agentSeq.run(p.seq, now, p.agentId);
      }
      for (const role of p.roles) this.addRole(role.id, role.label, role.kind, fresh);
    }
    return { committed, duplicates, late };
  }

  /** Inserts a role unless it is known to be stored already; `kind` undefined: from the label. */
  private addRole(id: string, label: string, kind: string | undefined, fresh: Set<string>): void {
    if (this.knownRoles.has(id) || fresh.has(id)) return;
    this.s.insRole.run(idToSql(id), label, kind ?? kindOfLabel(label));
    fresh.add(id);
  }

  private learnRoles(fresh: Set<string>): void {
    // a cap, not an LRU: roles are few (the model needs a fixed shape); past it, start over
    if (this.knownRoles.size + fresh.size > ROLE_CACHE_MAX) this.knownRoles.clear();
    for (const id of fresh) this.knownRoles.add(id);
  }

  /** The stored partials of a window, in (agent, seq) order, to merge again. */
  partialsOf(app: string, windowStart: number): StoredPartial[] {
    const rows = this.s.partialsOf.all(app, windowStart) as { agent_id: string; seq: number; host: string; late: number; body: Buffer }[];
    return rows.map((r) => ({ agentId: r.agent_id, seq: r.seq, host: r.host, late: r.late === 1, body: r.body }));
  }

  /** Windows with partials that were never closed (the aggregator stopped first), with the agents that reported them. */
  openWindows(): OpenWindow[] {
    const rows = this.s.openWindows.all() as { app: string; window_start: number; window_ms: number }[];
    return rows.map((r) => ({
      app: r.app,
      windowStart: r.window_start,
      windowMs: r.window_ms,
      agents: (this.s.agentsOf.all(r.app, r.window_start) as { agent_id: string }[]).map((a) => a.agent_id),
    }));
  }

  // ------------------------------------------------------------------ merged windows

  /**
   * Stores a merged window, replacing its edges (a late partial merges the window again) and,
   * when given, its per-host flow rows — one transaction. `closed_at` keeps the first close.
   * Roles that appear only here (external roles the correlator made) are added from the labels.
   */
  saveMergedWindow(w: MergedWindow & { latePartials: number }, status: WindowStatus, flows?: readonly HostFlows[]): void {
    const fresh = new Set<string>();
    this.mergeTx.immediate(w, status, this.now(), flows, fresh);
    this.learnRoles(fresh);
  }

  private mergeBody(w: MergedWindow & { latePartials: number }, status: WindowStatus, now: number, flows: readonly HostFlows[] | undefined, fresh: Set<string>): void {
    const s = this.s;
    s.delEdges.run(w.app, w.windowStart);
    let bytes = 0;
    for (const e of w.edges) {
      this.addRole(e.srcId, e.src, undefined, fresh);
      this.addRole(e.dstId, e.dst, undefined, fresh);
      s.insEdge.run(w.app, w.windowStart, idToSql(e.srcId), idToSql(e.dstId), e.kind, e.bytes, e.count);
      bytes += e.bytes;
    }
    s.upsertWindow.run(
      w.app, w.windowStart, w.windowMs, status, status === 'closed' ? now : null, now, JSON.stringify(w.hosts),
      w.latePartials, w.matchedFlows, w.unmatchedFlows, w.edges.length, bytes,
    );
    if (flows === undefined) return;
    s.delFlows.run(w.app, w.windowStart);
    for (const h of flows) {
      if (h.matched.length !== h.flows.length) throw new TypeError(`flows of host ${h.host}: ${h.flows.length} flows but ${h.matched.length} matched flags`);
      let matched = 0;
      const unmatched: Flow[] = [];
      for (let i = 0; i < h.flows.length; i++) {
        if (h.matched[i]) matched++;
        else unmatched.push(h.flows[i]);
      }
      s.insFlows.run(w.app, w.windowStart, h.host, h.flows.length, matched, JSON.stringify(unmatched));
    }
  }

  // ------------------------------------------------------------------ queries (CLI)

  /** Windows newest first, with their edge count and total bytes. */
  listWindows(q: WindowQuery = {}): WindowRow[] {
    const from = q.from ?? Number.MIN_SAFE_INTEGER;
    const to = q.to ?? Number.MAX_SAFE_INTEGER;
    const limit = q.limit ?? -1; // SQLite: negative = no limit
    const rows = (q.app === undefined ? this.s.windowsAll.all(from, to, limit) : this.s.windowsOfApp.all(q.app, from, to, limit)) as WindowSql[];
    return rows.map(windowRow);
  }

  window(app: string, windowStart: number): WindowRow | undefined {
    const r = this.s.windowOne.get(app, windowStart) as WindowSql | undefined;
    return r && windowRow(r);
  }

  /** The merged graph of a window with role labels, edges ordered by labels; undefined if no such window. */
  windowGraph(app: string, windowStart: number): MergedWindow | undefined {
    const w = this.window(app, windowStart);
    if (!w) return undefined;
    const edges = this.s.edgesOf.all(app, windowStart) as { srcId: string; dstId: string; src: string; dst: string; kind: EdgeKind; bytes: number; count: number }[];
    return {
      app,
      windowStart,
      windowMs: w.windowMs,
      hosts: w.hosts,
      edges: edges satisfies Edge[],
      matchedFlows: w.matchedFlows,
      unmatchedFlows: w.unmatchedFlows,
    };
  }

  flowsOf(app: string, windowStart: number): FlowRow[] {
    const rows = this.s.flowsOf.all(app, windowStart) as { host: string; flows: number; matched: number; unmatched: string }[];
    return rows.map((r) => ({ host: r.host, flows: r.flows, matched: r.matched, unmatched: JSON.parse(r.unmatched) as Flow[] }));
  }

  /** Applications with stored windows. */
  apps(): string[] {
    return (this.s.apps.all() as { app: string }[]).map((r) => r.app);
  }

  /** PRAGMA quick_check: [] when the file is sound, else SQLite's complaints. O(file size). */
  check(): string[] {
    const rows = this.db.pragma('quick_check') as { quick_check: string }[];
    return rows.length === 1 && rows[0].quick_check === 'ok' ? [] : rows.map((r) => r.quick_check);
  }

  // ------------------------------------------------------------------ statements

  private prepareAll(): void {
    // a read-only connection prepares the writes too; running one fails with SQLITE_READONLY
    const p = (name: string, sql: string): void => {
      this.s[name] = this.db.prepare(sql);
    };
    p('upsertAgent', `INSERT INTO agents (agent_id, host, app, agent_version, window_ms, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (agent_id) DO UPDATE SET host = excluded.host, app = excluded.app, agent_version = excluded.agent_version,
      window_ms = excluded.window_ms, last_seen = excluded.last_seen`);
    p('agentSeq', 'UPDATE agents SET last_seq = max(coalesce(last_seq, -1), ?), last_seen = ? WHERE agent_id = ?');
    p('lastSeq', 'SELECT last_seq FROM agents WHERE agent_id = ?');
    p('agents', `SELECT agent_id AS agentId, host, app, agent_version AS agentVersion, window_ms AS windowMs, first_seen AS firstSeen,
      last_seen AS lastSeen, last_seq AS lastSeq FROM agents ORDER BY app, host, agent_id`);
    p('insPartial', `INSERT INTO partials (agent_id, seq, app, host, window_start, window_ms, received_at, late, body)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, seq) DO NOTHING`);
    p('insRole', 'INSERT INTO roles (id, label, kind) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING');
    p('windowStatus', 'SELECT status FROM windows WHERE app = ? AND window_start = ?');
    p('openWindow', `INSERT INTO windows (app, window_start, window_ms, status) VALUES (?, ?, ?, 'open') ON CONFLICT DO NOTHING`);
    p('partialsOf', 'SELECT agent_id, seq, host, late, body FROM partials WHERE app = ? AND window_start = ? ORDER BY agent_id, seq');
    p('openWindows', `SELECT app, window_start, window_ms FROM windows WHERE status = 'open' ORDER BY app, window_start`);
    p('agentsOf', 'SELECT DISTINCT agent_id FROM partials WHERE app = ? AND window_start = ? ORDER BY agent_id');
    p('delEdges', 'DELETE FROM edges WHERE app = ? AND window_start = ?');
    p('insEdge', 'INSERT INTO edges (app, window_start, src, dst, kind, bytes, count) VALUES (?, ?, ?, ?, ?, ?, ?)');
    p('upsertWindow', `INSERT INTO windows (${WINDOW_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (app, window_start) DO UPDATE SET window_ms = excluded.window_ms, status = excluded.status,
      closed_at = coalesce(windows.closed_at, excluded.closed_at), merged_at = excluded.merged_at, hosts = excluded.hosts,
      late_partials = excluded.late_partials, matched_flows = excluded.matched_flows, unmatched_flows = excluded.unmatched_flows,
      edge_count = excluded.edge_count, bytes = excluded.bytes`);
    p('delFlows', 'DELETE FROM flows WHERE app = ? AND window_start = ?');
    p('insFlows', 'INSERT INTO flows (app, window_start, host, flows, matched, unmatched) VALUES (?, ?, ?, ?, ?, ?)');
    p('flowsOf', 'SELECT host, flows, matched, unmatched FROM flows WHERE app = ? AND window_start = ? ORDER BY host');
    p('windowsAll', `SELECT ${WINDOW_COLS} FROM windows WHERE window_start >= ? AND window_start < ? ORDER BY window_start DESC, app LIMIT ?`);
    p('windowsOfApp', `SELECT ${WINDOW_COLS} FROM windows WHERE app = ? AND window_start >= ? AND window_start < ? ORDER BY window_start DESC LIMIT ?`);
    p('windowOne', `SELECT ${WINDOW_COLS} FROM windows WHERE app = ? AND window_start = ?`);
    p('edgesOf', `SELECT ${hexOf('e.src')} AS srcId, ${hexOf('e.dst')} AS dstId,
      coalesce(s.label, ${hexOf('e.src')}) AS src, coalesce(d.label, ${hexOf('e.dst')}) AS dst, e.kind, e.bytes, e.count
      FROM edges e LEFT JOIN roles s ON s.id = e.src LEFT JOIN roles d ON d.id = e.dst
      WHERE e.app = ? AND e.window_start = ? ORDER BY src, dst, e.kind`);
    p('apps', 'SELECT DISTINCT app FROM windows ORDER BY app');
  }
}
