/** What goes in and out of the store: plain types, already validated at the gRPC boundary. */
import type { Flow } from '../../shared/graph.js';

export interface StoreOptions {
  /**
   * 'full' (default): every commit is on disk before it returns, so an acknowledgement sent
   * after commit survives a power cut or kernel crash of the aggregator's host — the agent
   * deletes its spooled copy on that ack, so anything weaker can lose windows for good.
   * 'normal': survives the aggregator process being killed, but the last commits before a
   * power cut / OS crash may roll back (the file stays consistent). See store.ts.
   */
  durability?: 'full' | 'normal';
  /** for the CLI: no writes, no migration, the file must exist */
  readonly?: boolean;
  /** ms since the epoch; tests pass a fixed clock */
  now?: () => number;
}

/** What an agent's hello says about it. */
export interface AgentInfo {
  agentId: string;
  host: string;
  app: string;
  agentVersion: string;
  windowMs: number;
}

/** An agent as the store knows it: its last hello and when it was last heard from. */
export interface AgentRow extends AgentInfo {
  firstSeen: number;
  /** its last hello or committed partial (ms) */
  lastSeen: number;
  /** highest seq committed; null before the first partial */
  lastSeq: number | null;
}

export interface RoleInfo {
  /** 16 lowercase hex digits */
  id: string;
  label: string;
  kind: string;
}

export interface PartialIn {
  agentId: string;
  seq: number;
  app: string;
  host: string;
  windowStart: number;
  windowMs: number;
  /** the caller knows the window had closed; the store also marks it late when its window is closed in the file */
  late?: boolean;
  /** the protobuf bytes as received */
  body: Uint8Array;
  roles: readonly RoleInfo[];
}

export interface CommitResult {
  committed: number;
  /** (agent_id, seq) already stored: a resend; skipped */
  duplicates: number;
  /** of the committed, those for a window already closed (caller's flag or the file's) */
  late: number;
}

export interface StoredPartial {
  agentId: string;
  seq: number;
  host: string;
  late: boolean;
  body: Uint8Array;
}

export type WindowStatus = 'open' | 'closed';

/** One host's flows of a window, as the correlator saw them; matched[i] belongs to flows[i]. */
export interface HostFlows {
  host: string;
  flows: readonly Flow[];
  matched: readonly boolean[];
}

export interface WindowRow {
  app: string;
  windowStart: number;
  windowMs: number;
  status: WindowStatus;
  closedAt: number | null;
  mergedAt: number | null;
  hosts: string[];
  latePartials: number;
  matchedFlows: number;
  unmatchedFlows: number;
  /** merged edges and their total bytes */
  edges: number;
  bytes: number;
}

export interface WindowQuery {
  app?: string;
  /** window_start ≥ from (ms) */
  from?: number;
  /** window_start < to (ms) */
  to?: number;
  limit?: number;
}

/** A window some partials were committed for but that was not closed: for the assembler after a restart. */
export interface OpenWindow {
  app: string;
  windowStart: number;
  windowMs: number;
  agents: string[];
}

export interface FlowRow {
  host: string;
  flows: number;
  matched: number;
  unmatched: Flow[];
}
