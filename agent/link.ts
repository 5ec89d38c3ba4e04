/**
 * Delivery of closed windows to the aggregator: every window goes to the durable spool
 * first, then down the stream; it leaves the spool only when the aggregator acknowledges it
 * as committed. On any failure the stream is re-opened after an exponential backoff with
 * jitter, and everything not acknowledged is sent again (the aggregator ignores resends).
 */
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import { AgentMessageSchema, AgentService, PartialWindowSchema, type AgentMessage, type AggregatorMessage, type ModelUpdate } from '../shared/gen/distappguard/v1/agent_pb.js';
import { clientConstructor, messages } from '../shared/grpc-service.js';
import { toWireHello, toWireWindow, type HelloInfo } from '../shared/wire.js';
import type { PartialWindow } from '../shared/graph.js';
import { TlsFileWatcher, clientCredentials, type TlsFiles } from '../shared/tls.js';
import type { DropInfo, Spool } from './spool.js';

const Client = clientConstructor(AgentService);

export interface LinkOptions {
  /** host:port or unix:/path */
  aggregator: string;
  hello: HelloInfo;
  spool: Spool;
  log: Logger;
  tls?: TlsFiles;
  /** how often the TLS files are looked at for a reload (default 5 s) */
  tlsReloadMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** windows in flight (sent, not acknowledged) before sending waits */
  maxInFlight?: number;
  /**
   * A model pushed by the aggregator: verify, store, load; the answer goes back as ModelAck.
   * Accepted: later hellos name its version, so it is not pushed again.
   */
  onModel?: (u: ModelUpdate) => Promise<{ accepted: boolean; reason: string }>;
}

export interface LinkCounters {
  sent: number;
  resent: number;
  acked: number;
  connects: number;
  reconnects: number;
  droppedEntries: number;
  droppedBytes: number;
  /** windows the aggregator refused as invalid: set aside, not resent */
  refused: number;
  /** failed spool writes (disk full, I/O error): the window waits in memory and is retried */
  spoolWriteErrors: number;
  /** windows given up because the spool refused writes for longer than memory could hold */
  droppedInMemory: number;
  lastError: string;
}

/** Windows kept in memory while the spool cannot be written (a full disk): about 20 min of 1 s windows. */
export const MAX_HELD_IN_MEMORY = 1200;

/** Exponential backoff with full jitter (AWS style): spreads a fleet's reconnects out. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random = Math.random): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

export class AgentLink {
  readonly counters: LinkCounters = { sent: 0, resent: 0, acked: 0, connects: 0, reconnects: 0, droppedEntries: 0, droppedBytes: 0, refused: 0, spoolWriteErrors: 0, droppedInMemory: 0, lastError: '' };
  /** closed windows the spool could not take yet, oldest first (the spool issues their seqs when it does) */
  private held: PartialWindow[] = [];
  private heldTimer: NodeJS.Timeout | undefined;
  private heldLoggedAt = 0;
  private client: InstanceType<typeof Client> | undefined;
  private call: grpc.ClientDuplexStream<AgentMessage, AggregatorMessage> | undefined;
  private ready = false;
  /** highest seq written on the current stream */
  private sentUpTo = 0;
  private ackedUpTo = 0;
  private highestEverSent = 0;
  private attempt = 0;
  private stopped = false;
  private pumping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private ackWaiters: (() => void)[] = [];
  /** the certificate, key and CA, reloaded when the files change: each new connection takes the latest */
  tlsFiles: TlsFileWatcher | undefined;
  private creds: grpc.ChannelCredentials | undefined;

  constructor(private readonly o: LinkOptions) {}

  start(): void {
    this.connect();
  }

  /** A window closed: spool it durably, then send it if the stream is up. */
  enqueue(w: PartialWindow): void {
    this.held.push(w);
    if (this.held.length > MAX_HELD_IN_MEMORY) {
      const lost = this.held.shift()!;
      this.counters.droppedInMemory++;
      this.o.log.error({ window: new Date(lost.windowStart).toISOString(), held: this.held.length }, 'spool unwritable for too long: the oldest window held in memory was dropped');
    }
    this.flushHeld();
    void this.pump();
  }

  /**
   * Windows go to the spool in order. A write that fails (disk full, I/O error) must not stop
   * tracing or lose the window: it waits in memory, is retried every second, and a log line
   * (at most one every 30 s) and counters say so; what the spool took is delivered meanwhile.
   */
  private flushHeld(): void {
    while (this.held.length > 0) {
      const w = this.held[0];
      const seq = this.o.spool.lastSeq() + 1;
      let r;
      try {
        r = this.o.spool.append(w.windowStart, toBinary(PartialWindowSchema, toWireWindow(w, seq)));
      } catch (e) {
        this.counters.spoolWriteErrors++;
        this.counters.lastError = (e as Error).message;
        if (Date.now() - this.heldLoggedAt > 30_000) {
          this.heldLoggedAt = Date.now();
          this.o.log.error({ err: (e as Error).message, held: this.held.length }, 'cannot write the spool: windows wait in memory and are retried every second');
        }
        if (!this.heldTimer && !this.stopped) {
          this.heldTimer = setTimeout(() => {
            this.heldTimer = undefined;
            this.flushHeld();
            void this.pump();
          }, 1000);
        }
        break;
      }
      this.held.shift();
      if (r.seq !== seq) throw new Error(`spool issued seq ${r.seq}, expected ${seq}`);
      this.reportDrops(r.dropped);
      if (this.heldLoggedAt !== 0 && this.held.length === 0) {
        this.heldLoggedAt = 0;
        this.o.log.info('the spool takes writes again: every window held in memory is spooled');
      }
    }
  }

  /** Windows waiting in memory for the spool to take them (a full disk). */
  get heldInMemory(): number {
    return this.held.length;
  }

  /** The stream is up: the aggregator welcomed this agent and windows flow. */
  get connected(): boolean {
    return this.ready && this.call !== undefined;
  }

  /** Everything spooled has been acknowledged. */
  get drained(): boolean {
    return this.held.length === 0 && this.o.spool.stats().entriesHeld === 0;
  }

  /** Wait until the spool is empty or `timeoutMs` passed; true when drained. */
  async waitDrained(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.drained && Date.now() < end) {
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(200, Math.max(1, end - Date.now())));
        this.ackWaiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
    return this.drained;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.flushHeld();
    if (this.held.length > 0) this.o.log.error({ held: this.held.length, first: new Date(this.held[0].windowStart).toISOString() }, 'stopping with windows the spool never took: they are lost');
    this.call?.end();
    this.client?.close();
    this.tlsFiles?.close();
  }

  private reportDrops(dropped: DropInfo[]): void {
    for (const d of dropped) {
      this.counters.droppedEntries++;
      this.counters.droppedBytes += d.bytes;
      this.o.log.warn({ seq: d.seq, window: new Date(d.windowStart).toISOString(), bytes: d.bytes, reason: d.reason }, `spool full (${d.reason}): window dropped before delivery`);
    }
  }

  private connect(): void {
    if (this.stopped) return;
    if (!this.creds) {
      if (this.o.tls) this.tlsFiles = new TlsFileWatcher(this.o.tls, { log: this.o.log, intervalMs: this.o.tlsReloadMs, name: 'agent' });
      this.creds = this.tlsFiles ? clientCredentials(this.tlsFiles) : grpc.credentials.createInsecure();
    }
    const creds = this.creds;
    // a channel of its own (not from grpc-js's process-wide subchannel pool): see read()
    this.client ??= new Client(this.o.aggregator, creds, { 'grpc.keepalive_time_ms': 30_000, 'grpc.max_send_message_length': 64 << 20, 'grpc.use_local_subchannel_pool': 1 });
    const call = this.client.connect();
    this.call = call;
    this.ready = false;
    this.counters.connects++;
    call.write(create(AgentMessageSchema, { body: { case: 'hello', value: toWireHello(this.o.hello) } }));
    void this.read(call);
  }

  private async read(call: grpc.ClientDuplexStream<AgentMessage, AggregatorMessage>): Promise<void> {
    let why = 'stream ended';
    try {
      for await (const m of messages(call)) {
        if (m.body.case === 'welcome') {
          const committed = Number(m.body.value.lastCommittedSeq);
          // the aggregator has more than we ever sent: our spool was lost; never reuse seqs
          if (this.o.spool.advanceTo(committed)) this.o.log.warn({ committed }, 'the aggregator has committed windows this spool does not know: sequence moved past them');
          this.acknowledge(committed);
          this.sentUpTo = committed;
          this.ready = true;
          this.attempt = 0;
          this.o.log.info({ aggregator: this.o.aggregator, committed, pending: this.o.spool.stats().entriesHeld }, 'connected to the aggregator');
          void this.pump();
        } else if (m.body.case === 'ack') {
          this.acknowledge(Number(m.body.value.seq));
          void this.pump();
        } else if (m.body.case === 'model') {
          void this.takeModel(call, m.body.value);
        } else if (m.body.case === 'refusal') {
          const seq = Number(m.body.value.seq);
          why = `refused: ${m.body.value.reason}`;
          if (seq > 0 && this.o.spool.discard(seq) !== undefined) {
            this.counters.refused++;
            this.o.log.error({ seq, reason: m.body.value.reason }, 'the aggregator refused a window: set aside, the others carry on');
          }
        }
      }
    } catch (e) {
      const err = e as grpc.ServiceError;
      why = `${grpc.status[err.code] ?? 'error'}: ${err.details ?? err.message}`;
      // the aggregator refuses an expired certificate at the handshake, which says only that the connection closed
      const t = this.tlsFiles?.current;
      if (t && Date.now() > t.notAfter) why += ` (this agent's TLS certificate ${this.tlsFiles!.files.cert} expired on ${new Date(t.notAfter).toISOString()})`;
    }
    if (this.call !== call) return;
    this.ready = false;
    this.call = undefined;
    if (this.stopped) return;
    this.counters.lastError = why;
    this.counters.reconnects++;
    // The next attempt gets a fresh channel. A grpc-js channel that failed to connect keeps
    // its own reconnect backoff (up to 120 s) and meanwhile fails every call at once with its
    // last error: reused, it would stack that backoff on ours, and an agent would reconnect
    // long after the aggregator is back.
    this.client?.close();
    this.client = undefined;
    const delay = backoffDelay(this.attempt++, this.o.initialBackoffMs ?? 500, this.o.maxBackoffMs ?? 30_000);
    this.o.log.warn({ aggregator: this.o.aggregator, why, retryInMs: delay, pending: this.o.spool.stats().entriesHeld }, 'aggregator stream lost; will reconnect');
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private async takeModel(call: grpc.ClientDuplexStream<AgentMessage, AggregatorMessage>, u: ModelUpdate): Promise<void> {
    let answer: { accepted: boolean; reason: string };
    try {
      answer = this.o.onModel ? await this.o.onModel(u) : { accepted: false, reason: 'this agent does not run local detection' };
    } catch (e) {
      answer = { accepted: false, reason: (e as Error).message };
    }
    if (answer.accepted) this.o.hello.modelVersion = u.version;
    if (this.call === call && !call.writableEnded && !call.destroyed) {
      call.write(create(AgentMessageSchema, { body: { case: 'modelAck', value: { version: u.version, accepted: answer.accepted, reason: answer.reason } } }));
    }
  }

  private acknowledge(seq: number): void {
    if (seq <= this.ackedUpTo) return;
    const r = this.o.spool.ack(seq);
    this.counters.acked += r.removed;
    this.ackedUpTo = seq;
    const w = this.ackWaiters;
    this.ackWaiters = [];
    for (const f of w) f();
  }

  /** Send what the spool holds beyond what this stream already carried, in seq order. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const maxInFlight = this.o.maxInFlight ?? 256;
      while (this.ready && this.call && !this.stopped) {
        const room = maxInFlight - (this.sentUpTo - this.ackedUpTo);
        if (room <= 0) break; // an ack will call pump again
        const batch = this.o.spool.pending(this.sentUpTo, Math.min(room, 64));
        if (batch.length === 0) break;
        for (const e of batch) {
          const call = this.call;
          if (!this.ready || !call) return;
          const msg = create(AgentMessageSchema, { body: { case: 'window', value: fromBinary(PartialWindowSchema, e.body) } });
          this.sentUpTo = e.seq;
          if (e.seq <= this.highestEverSent) this.counters.resent++;
          else {
            this.counters.sent++;
            this.highestEverSent = e.seq;
          }
          // backpressure: when the stream's buffer is full, wait for it to drain
          if (!call.write(msg)) await new Promise<void>((res) => {
            call.once('drain', res);
            call.once('close', res);
          });
        }
      }
    } finally {
      this.pumping = false;
    }
  }
}
