/**
 * The aggregator's gRPC service: one bidirectional stream per agent. Hello first, then
 * partial windows; each is validated at this boundary, committed, and only then
 * acknowledged. A bad message ends that agent's stream with a status saying what was wrong;
 * every other agent carries on.
 */
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import { AgentMessageSchema, AgentService, AggregatorMessageSchema, Refusal_Code, type AggregatorMessage } from '../shared/gen/distappguard/v1/agent_pb.js';
import { addService, malformedStatus, messages } from '../shared/grpc-service.js';
import { DEFAULT_WIRE_LIMITS, PROTOCOL_VERSION, validateHello, type HelloInfo, type WireLimits } from '../shared/wire.js';
import type { LocalVerdict, MergedWindow } from '../shared/graph.js';
import type { ModelPusher } from './model-push.js';
import { Ingest } from './ingest.js';
import { checkWindow, readAgentMessage, type Incoming } from './agent-message.js';
import { InlineRunner, MergeQueue, startWorkerRunner, type MergeRunner } from './merge-queue.js';
import { WindowMerger } from './merge.js';
import { decodeStoredWindow } from './window-decode.js';
import type { Store } from './store/index.js';
import { TlsFileWatcher, certificateHostId, serverCredentials, type TlsFiles } from '../shared/tls.js';
import { checkListenAddress } from '../shared/address.js';
import { GrpcHealth } from './health.js';
import { lstatSync, unlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { EventEmitter } from 'node:events';

/**
 * A unix socket left behind by an aggregator that was killed (SIGKILL, crash) would make the
 * restart fail with EADDRINUSE: remove it when nothing answers on it. A live one is kept,
 * so a second aggregator on the same path still fails to start.
 */
async function removeStaleSocket(listen: string): Promise<void> {
  if (!listen.startsWith('unix:')) return;
  let path = listen.slice('unix:'.length);
  if (path.startsWith('//')) path = path.slice(2);
  try {
    if (!lstatSync(path).isSocket()) return;
  } catch {
    return; // no such file
  }
  const live = await new Promise<boolean>((res) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
  if (!live) unlinkSync(path);
}

export const AGGREGATOR_VERSION = '0.1.0';

export interface AggregatorOptions {
  /** host:port, or unix:/path */
  listen: string;
  store: Store;
  log: Logger;
  /** how long after a window's end to wait for missing agents */
  graceMs: number;
  /** how long a partial may wait to share a commit */
  batchMs?: number;
  limits?: WireLimits;
  tls?: TlsFiles;
  /** how often the TLS files are looked at for a reload (default 5 s) */
  tlsReloadMs?: number;
  /** a stream must say hello within this time */
  helloTimeoutMs?: number;
  /** every merged window, as it is stored (copied from the merge worker only when this is given) */
  onWindow?: (w: MergedWindow, reason: string) => void;
  /**
   * Merge windows on a worker thread with its own connection to the store's file (default),
   * so the main thread only receives, commits and acknowledges; false: on the main thread.
   */
  mergeWorker?: boolean;
  /** signed host models for the agents (detection); none: no models are pushed */
  models?: ModelPusher;
  /** a committed window carried the agent's own alert (its local model's verdict) */
  onLocalVerdict?: (agent: { agentId: string; host: string; app: string }, window: { windowStart: number; windowMs: number }, v: LocalVerdict) => void;
}

type Call = grpc.ServerDuplexStream<Incoming, AggregatorMessage>;

/** Why a client's TLS handshake was refused, in a person's words. */
function describeHandshakeError(err: Error & { code?: string }, authorizationError: string | undefined): string {
  switch (authorizationError) {
    case undefined:
      break;
    case 'CERT_HAS_EXPIRED':
      return 'the client certificate has expired';
    case 'CERT_NOT_YET_VALID':
      return 'the client certificate is not valid yet (check the clocks)';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'CERT_SIGNATURE_FAILURE':
      return 'the client certificate is not signed by this CA';
    case 'INVALID_PURPOSE':
      return 'the certificate is not a client certificate (extendedKeyUsage)';
    default:
      return `the client certificate was not accepted (${authorizationError})`;
  }
  if (err.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'the client sent no certificate';
  return err.message.trim();
}

function statusError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/**
 * grpc-js refuses some requests itself, before the handler sees them: above all a message over
 * `grpc.max_receive_message_length` (RESOURCE_EXHAUSTED "Received message larger than max
 * (n vs m)"). The handler is only told that its call was cancelled, so nothing would say why.
 * This interceptor sits next to grpc-js's own call and logs every non-OK status that did not
 * come from the handler (whose refusals are logged where they are made).
 */
function logTransportRefusals(log: Logger, counters: { refused: number }): grpc.ServerInterceptor {
  return (method, call) => {
    let fromHandler = false;
    const send = call.sendStatus.bind(call);
    // grpc-js's base call sends its own statuses through this method of the same object
    call.sendStatus = (status) => {
      if (!fromHandler && status.code !== grpc.status.OK) {
        counters.refused++;
        log.warn({ peer: call.getPeer(), method: method.path, code: grpc.status[status.code], details: status.details }, `stream refused: ${status.details}`);
      }
      send(status);
    };
    return new grpc.ServerInterceptingCall(call, {
      sendStatus: (status, next) => {
        fromHandler = true;
        next(status);
      },
    });
  };
}

export class AggregatorServer {
  readonly ingest: Ingest;
  private readonly server: grpc.Server;
  private readonly active = new Map<string, Call>();
  private readonly hellos = new Map<string, HelloInfo>();
  private readonly limits: WireLimits;
  private ticker: NodeJS.Timeout | undefined;
  readonly counters = { streams: 0, refused: 0, invalidMessages: 0, modelPushes: 0, modelAcks: 0, modelRefusals: 0, identityRefused: 0, handshakeRefused: 0, handshakeAborted: 0 };
  /** the TLS certificate, key and CA in use, reloaded when the files change (with TLS only) */
  tlsFiles: TlsFileWatcher | undefined;
  /** grpc.health.v1 on this server: SERVING while it listens (aggregator/health.ts) */
  readonly health = new GrpcHealth([AgentService.typeName]);

  constructor(private readonly o: AggregatorOptions) {
    this.limits = o.limits ?? DEFAULT_WIRE_LIMITS;
    const inline = (): MergeRunner => new InlineRunner(new WindowMerger(o.store, decodeStoredWindow));
    this.ingest = new Ingest(o.store, {
      graceMs: o.graceMs,
      batchMs: o.batchMs ?? 20,
      maxBatch: 2000,
      merges: (onDone) => {
        const worker = o.mergeWorker === false ? undefined : startWorkerRunner(o.store.file, o.store.durability);
        if (o.mergeWorker !== false && !worker) o.log.warn({ db: o.store.file }, 'windows are merged on the main thread (no merge worker for this store)');
        return new MergeQueue(worker ?? inline(), {
          withWindow: o.onWindow !== undefined,
          onDone,
          fallback: (err) => {
            o.log.error({ err: err.message }, 'merge worker failed; merging on the main thread from now on');
            return inline();
          },
        });
      },
      onError: (err, what) => o.log.error({ err: err.message }, `${what} failed`),
      onWindow: (s, reason, w) => {
        o.log.info({ app: s.app, window: new Date(s.windowStart).toISOString(), hosts: s.hosts, edges: s.edges, matchedFlows: s.matchedFlows, reason }, 'window merged');
        if (w) o.onWindow?.(w, reason);
      },
    });
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': this.limits.maxMessageBytes,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_permit_without_calls': 1,
      interceptors: [logTransportRefusals(o.log, this.counters)],
    });
    // windows are kept as received bytes, checked by the direct decoder (agent-message.ts)
    addService(this.server, AgentService, { connect: (call: Call) => void this.serve(call) }, { connect: readAgentMessage });
    this.health.addTo(this.server);
  }

  async start(): Promise<string> {
    checkListenAddress(this.o.listen, this.o.tls !== undefined);
    if (this.o.tls) this.tlsFiles = new TlsFileWatcher(this.o.tls, { log: this.o.log, intervalMs: this.o.tlsReloadMs, name: 'aggregator' });
    const creds = this.tlsFiles ? serverCredentials(this.tlsFiles) : grpc.ServerCredentials.createInsecure();
    await removeStaleSocket(this.o.listen);
    const port = await new Promise<number>((res, rej) => this.server.bindAsync(this.o.listen, creds, (e, p) => (e ? rej(e) : res(p))));
    if (this.tlsFiles) this.logHandshakeRefusals();
    this.health.set('SERVING');
    // windows that were open when the aggregator last stopped close after their grace
    const now = Date.now();
    for (const w of this.o.store.openWindows()) this.ingest.assembler.restore({ app: w.app, windowStart: w.windowStart, windowMs: w.windowMs }, w.agents, now);
    this.ticker = setInterval(() => this.ingest.tick(), Math.min(250, this.o.graceMs / 4));
    const addr = this.o.listen.startsWith('unix:') ? this.o.listen : this.o.listen.replace(/:\d+$/, `:${port}`);
    this.o.log.info({ listen: addr, tls: this.o.tls !== undefined }, 'aggregator listening');
    return addr;
  }

  /** Stop taking streams, commit what was received, close windows that are due. */
  async stop(): Promise<void> {
    this.health.set('NOT_SERVING');
    if (this.ticker) clearInterval(this.ticker);
    await new Promise<void>((res) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        res();
      }, 5000);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        res();
      });
      // agents' streams never end by themselves: cancel them so shutdown can complete
      for (const c of this.active.values()) c.end();
    });
    this.tlsFiles?.close();
    this.ingest.flush();
    this.ingest.tick();
    // the merges asked for so far are stored before this returns (the caller closes the store)
    await this.ingest.close();
  }

  /** Sends the active host model to one agent, unless it already runs that version. */
  private pushModel(call: Call, hello: HelloInfo): void {
    const u = this.o.models?.updateFor(hello.app, hello.host);
    if (!u || u.version === hello.modelVersion || call.writableEnded || call.destroyed) return;
    call.write(create(AggregatorMessageSchema, { body: { case: 'model', value: u } }));
    this.counters.modelPushes++;
    this.o.log.info({ agent: hello.agentId, host: hello.host, model: u.version, bytes: u.model.length }, 'model pushed');
  }

  /** The agents connected now (their hellos; modelVersion is the model they acknowledged last). */
  connectedAgents(): HelloInfo[] {
    return [...this.hellos.values()];
  }

  /** A new model became active for `app`: every connected agent of it gets its host's part. */
  pushModels(app: string): void {
    for (const [agentId, hello] of this.hellos) {
      const call = this.active.get(agentId);
      if (call && hello.app === app) this.pushModel(call, hello);
    }
  }

  private refuse(call: Call, code: grpc.status, why: string, fields: Record<string, unknown> = {}): void {
    this.counters.refused++;
    this.o.log.warn({ ...fields, code: grpc.status[code] }, why);
    call.emit('error', statusError(code, why));
  }

  /**
   * With TLS, an agent speaks only for the host its certificate names (shared/tls.ts
   * certificateHostId): a hello claiming another host is refused with PERMISSION_DENIED.
   */
  private identityMatches(call: Call, hello: HelloInfo, peer: string): boolean {
    const cert = call.getAuthContext().sslPeerCertificate;
    const id = cert ? certificateHostId(cert) : { ok: false as const, reason: 'no verified client certificate on this connection' };
    if (id.ok && id.host === hello.host) return true;
    this.counters.identityRefused++;
    const fields = { peer, agent: hello.agentId, claimedHost: hello.host, certificateHost: id.ok ? id.host : undefined, serial: cert?.serialNumber };
    this.refuse(
      call,
      grpc.status.PERMISSION_DENIED,
      id.ok
        ? `agent ${hello.agentId} claims host '${hello.host}' but its certificate is for host '${id.host}': refused`
        : `agent ${hello.agentId} claims host '${hello.host}' but ${id.reason}: refused`,
      fields,
    );
    return false;
  }

  /**
   * Handshakes the TLS layer refuses (no client certificate, an expired one, one from another
   * CA) never reach a handler: they are logged and counted here, from the TLS servers grpc-js
   * keeps (its private `http2Servers`; with a grpc-js version that lacks it the refusals are
   * still made, only not logged). The reason is Node's `authorizationError`; the peer, the raw
   * socket's (`_parent`). A burst is reported in a few lines, with the number left out.
   */
  private logHandshakeRefusals(): void {
    const servers = (this.server as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
    if (!(servers instanceof Map)) {
      this.o.log.warn('refused TLS handshakes are not logged with this grpc-js version');
      return;
    }
    let windowStart = 0;
    let logged = 0;
    let suppressed = 0;
    for (const s of servers.keys()) {
      // the TLS layer destroys a refused socket before saying why: its peer is asked for
      // first, so that it is still known (cached) when the refusal is reported
      s.on('connection', (raw: Socket) => void raw.remoteAddress);
      s.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket & { _parent?: Socket }) => {
        // Node sets it to OpenSSL's verify code (typed as an Error)
        const authz = (socket.authorizationError as unknown as string | undefined) || undefined;
        const raw = socket._parent;
        const peer = raw?.remoteAddress ? `${raw.remoteAddress}:${raw.remotePort}` : undefined;
        if (!authz && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
          // the client went away mid-handshake (a port probe, a client giving up): not a refusal
          this.counters.handshakeAborted++;
          this.o.log.debug({ peer, code: err.code }, 'TLS handshake abandoned by the client');
          return;
        }
        this.counters.handshakeRefused++;
        const now = Date.now();
        if (now - windowStart > 10_000) {
          windowStart = now;
          logged = 0;
        }
        if (logged >= 10) {
          suppressed++;
          return;
        }
        logged++;
        const why = describeHandshakeError(err, authz);
        this.o.log.warn(
          { peer, code: authz ?? err.code, err: err.message.trim(), suppressedBefore: suppressed || undefined, handshakeRefused: this.counters.handshakeRefused },
          `TLS handshake refused: ${why}`,
        );
        suppressed = 0;
      });
    }
  }

  private async serve(call: Call): Promise<void> {
    this.counters.streams++;
    const peer = call.getPeer();
    let hello: HelloInfo | undefined;
    const helloTimer = setTimeout(() => {
      if (!hello) this.refuse(call, grpc.status.DEADLINE_EXCEEDED, 'no hello within the time allowed', { peer });
    }, this.o.helloTimeoutMs ?? 10_000);
    let acked = 0;
    try {
      for await (const m of messages(call)) {
        if (!hello) {
          if (m.case !== 'hello') return this.refuse(call, grpc.status.FAILED_PRECONDITION, 'the first message of a stream must be a hello', { peer });
          const h = validateHello(m.value, this.limits);
          if (!h.ok) return this.refuse(call, h.error.kind === 'limit' ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT, `hello: ${h.error.message}`, { peer });
          if (this.tlsFiles && !this.identityMatches(call, h.value, peer)) return;
          if (this.active.has(h.value.agentId)) {
            return this.refuse(call, grpc.status.ALREADY_EXISTS, `agent ${h.value.agentId} is already connected on another stream`, { peer });
          }
          hello = h.value;
          clearTimeout(helloTimer);
          this.active.set(hello.agentId, call);
          // the agent's row goes in with the next commit: one fsync for many hellos
          this.ingest.hello({ agentId: hello.agentId, host: hello.host, app: hello.app, agentVersion: hello.agentVersion, windowMs: hello.windowMs });
          this.ingest.assembler.expect(hello.app, hello.agentId);
          const last = Math.max(0, this.o.store.agentLastSeq(hello.agentId)); // -1: never seen
          acked = last;
          this.ingest.committedUpTo(hello.agentId, last);
          call.write(create(AggregatorMessageSchema, { body: { case: 'welcome', value: { aggregatorVersion: AGGREGATOR_VERSION, protocolVersion: PROTOCOL_VERSION, lastCommittedSeq: BigInt(last) } } }));
          this.o.log.info({ agent: hello.agentId, host: hello.host, app: hello.app, peer, lastCommittedSeq: last, model: hello.modelVersion || undefined }, 'agent connected');
          this.hellos.set(hello.agentId, hello);
          this.pushModel(call, hello);
          continue;
        }
        if (m.case === 'modelAck') {
          const a = m.value;
          if (a.accepted) this.counters.modelAcks++;
          else this.counters.modelRefusals++;
          if (a.accepted) this.o.log.info({ agent: hello.agentId, model: a.version }, 'agent loaded the model');
          else this.o.log.error({ agent: hello.agentId, model: a.version, reason: a.reason }, 'agent refused the model');
          this.o.models?.recordAck(hello.agentId, a.version, a.accepted, Date.now());
          if (a.accepted) hello.modelVersion = a.version;
          continue;
        }
        if (m.case !== 'window') {
          return this.refuse(call, grpc.status.INVALID_ARGUMENT, `unexpected ${m.case ?? 'empty'} message after hello`, { agent: hello.agentId });
        }
        const r = checkWindow(m, hello, this.limits);
        if (r.kind === 'malformed') {
          // as the adapter refuses what does not parse at all; the loop then throws it and logs
          call.emit('error', malformedStatus({ typeName: AgentMessageSchema.typeName, byteLength: m.bytes.length, reason: r.reason }));
          continue;
        }
        if (r.kind === 'invalid') {
          this.counters.invalidMessages++;
          const limit = r.error.kind === 'limit';
          const reason = `window ${r.seq}: ${r.error.message}`;
          // name the window so the agent sets it aside instead of resending it forever
          call.write(create(AggregatorMessageSchema, {
            body: { case: 'refusal', value: { code: limit ? Refusal_Code.LIMIT_EXCEEDED : Refusal_Code.INVALID_WINDOW, reason, seq: r.seq } },
          }));
          return this.refuse(call, limit ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT, reason, { agent: hello.agentId });
        }
        const { seq, windowStart, windowMs, roles, verdict } = r.value;
        const h = hello;
        this.ingest.submit(
          // the body as received: stored without re-encoding
          { agentId: h.agentId, seq, app: h.app, host: h.host, windowStart, windowMs, late: false, body: m.body, roles },
          (err) => {
            if (err) return this.refuse(call, grpc.status.UNAVAILABLE, `could not commit window ${seq}: ${err.message}`, { agent: h.agentId });
            // commits are in order per agent: an ack covers every seq up to it
            if (seq > acked) acked = seq;
            if (verdict) {
              try {
                this.o.onLocalVerdict?.(h, { windowStart, windowMs }, verdict);
              } catch (e) {
                // the window is committed and acked whatever happens to its alert
                this.o.log.error({ agent: h.agentId, window: new Date(windowStart).toISOString(), err: (e as Error).message }, 'could not record the agent\'s alert');
              }
            }
            if (!call.writableEnded && !call.destroyed) call.write(create(AggregatorMessageSchema, { body: { case: 'ack', value: { seq: BigInt(acked) } } }));
          },
        );
      }
    } catch (e) {
      const err = e as grpc.ServiceError;
      this.o.log.warn({ agent: hello?.agentId, peer, code: err.code, err: err.message }, 'agent stream failed');
    } finally {
      clearTimeout(helloTimer);
      if (hello && this.active.get(hello.agentId) === call) {
        this.active.delete(hello.agentId);
        this.hellos.delete(hello.agentId);
        this.ingest.assembler.forget(hello.app, hello.agentId);
        this.o.log.info({ agent: hello.agentId, peer }, 'agent disconnected');
      }
      if (!call.writableEnded && !call.destroyed) call.end();
    }
  }
}
