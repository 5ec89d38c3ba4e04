/**
 * The partial microservice data exchange graph (MSDEG) of one host and one window, as plain
 * TypeScript types. The wire form lives in proto/; this is what agent and aggregator code use.
 */
import type { SockAddr } from './event.js';

export type EdgeKind = 'net' | 'file' | 'mem' | 'ipc';

/** One directed edge, in the direction the data flows. */
export interface Edge {
  srcId: string;
  dstId: string;
  src: string;
  dst: string;
  kind: EdgeKind;
  bytes: number;
  count: number;
}

/** A socket seen from one host, for the aggregator to join with the other end. */
export interface Flow {
  proto: 'tcp' | 'udp';
  local: SockAddr;
  remote: SockAddr;
  side: 'client' | 'server' | 'unknown';
  /** the thread role that moved the data */
  roleId: string;
  role: string;
  /** the endpoint role (`net:tcp/private:5432`) this flow's bytes are on in the partial's edges */
  endpointId: string;
  endpoint: string;
  bytesOut: number;
  bytesIn: number;
  countOut: number;
  countIn: number;
}

/** What the agent saw but could not put on an edge, so nothing is lost silently. */
export interface WindowStats {
  events: number;
  /** data calls on fds whose origin is unknown (opened before tracing, LTTng): calls and bytes */
  unknownFdCalls: number;
  unknownFdBytes: number;
  /** events that arrived after their window had closed, folded into the oldest open window */
  lateEvents: number;
}

export interface PartialWindow {
  app: string;
  host: string;
  /** ms since the epoch, a multiple of windowMs */
  windowStart: number;
  windowMs: number;
  edges: Edge[];
  flows: Flow[];
  stats: WindowStats;
  /** the agent's own score of this window, when it has a model */
  verdict?: LocalVerdict;
}

/** The application-wide graph of one window, after the aggregator joined every host's partial. */
export interface MergedWindow {
  app: string;
  windowStart: number;
  windowMs: number;
  /** hosts whose partials went into this window */
  hosts: string[];
  edges: Edge[];
  /** flows matched across (or within) hosts, and those left to external roles */
  matchedFlows: number;
  unmatchedFlows: number;
}

/** An agent's verdict on one of its host's windows with the model pushed to it (DESIGN §3.5). */
export interface LocalVerdict {
  modelVersion: string;
  score: number;
  threshold: number;
  anomalous: boolean;
  /** edges the host model never saw */
  newEdges: Edge[];
  /** microservices, the worst first */
  groups: { name: string; error: number; ratio: number }[];
  /** edges that explain the score, the worst first */
  edges: { srcId: string; dstId: string; src: string; dst: string; kind: EdgeKind; observedBytes: number; expectedBytes: number; error: number }[];
}
