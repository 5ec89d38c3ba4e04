/**
 * shared/grpc-service.ts against real grpc-js over loopback: a typed bidi stream (hello →
 * welcome, window → ack), and a peer sending bytes that are not an AgentMessage, which ends
 * only its own stream with INVALID_ARGUMENT while other streams and new clients carry on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import * as pb from '../../shared/gen/distappguard/v1/agent_pb.js';
import { addService, clientConstructor, messages, serviceDefinition } from '../../shared/grpc-service.js';
import { fromWireWindow, toWireHello, toWireWindow, validateHello, type HelloInfo } from '../../shared/wire.js';
import type { PartialWindow } from '../../shared/graph.js';

const CONNECT = '/distappguard.v1.AgentService/Connect';
const HELLO: HelloInfo = { agentId: 'agent-a', host: 'host-a', app: 'shop', agentVersion: '0.1.0', protocolVersion: 1, windowMs: 1000, collector: 'replay' };
const WINDOW: PartialWindow = {
  app: 'shop', host: 'host-a', windowStart: 1_700_000_000_000, windowMs: 1000,
  edges: [{ srcId: '00000000000000a1', dstId: '00000000000000b2', src: 'api/db-pool', dst: 'net:tcp/private:5432', kind: 'net', bytes: 64, count: 1 }],
  flows: [],
  stats: { events: 3, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 },
};
// field 2 (window), length-delimited, claims 5 bytes and has 1: not an AgentMessage
const GARBAGE = Buffer.from([0x12, 0x05, 0x08]);

const AgentClient = clientConstructor(pb.AgentService);
const insecure = grpc.credentials.createInsecure();
const raw = (b: Buffer) => b;

async function listen(server: grpc.Server): Promise<string> {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return `127.0.0.1:${port}`;
}

function statusOf(call: { on(event: 'status', f: (s: grpc.StatusObject) => void): unknown; on(event: 'error', f: (e: Error) => void): unknown }): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    call.on('error', () => {}); // the status event carries the same code and details
    call.on('status', resolve);
  });
}

function nextMessage<T>(call: NodeJS.ReadableStream): Promise<T> {
  return new Promise((resolve, reject) => {
    call.once('data', resolve);
    call.once('error', reject);
  });
}

/** What the aggregator will do, in miniature: validate, answer, remember what went wrong. */
const serverErrors: grpc.ServiceError[] = [];
const received: string[] = [];
const server = new grpc.Server();
addService(server, pb.AgentService, {
  async connect(call) {
    let hello: HelloInfo | undefined;
    const refuse = (details: string) => call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details });
    try {
      // one message at a time: the next is read only after this one is answered
      for await (const m of messages(call)) {
        received.push(m.body.case ?? 'empty');
        if (m.body.case === 'hello') {
          const r = validateHello(m.body.value);
          if (!r.ok) return refuse(r.error.message);
          hello = r.value;
          call.write(create(pb.AggregatorMessageSchema, { body: { case: 'welcome', value: { aggregatorVersion: 'test', protocolVersion: 1, lastCommittedSeq: 0n } } }));
        } else if (m.body.case === 'window' && hello) {
          const r = fromWireWindow(m.body.value, hello);
          if (!r.ok) return refuse(r.error.message);
          await new Promise((resolve) => setTimeout(resolve, 1)); // "commit"
          call.write(create(pb.AggregatorMessageSchema, { body: { case: 'ack', value: { seq: BigInt(r.value.seq) } } }));
        }
      }
      call.end();
    } catch (err) {
      serverErrors.push(err as grpc.ServiceError); // the malformed-message status, to log
    }
  },
});
let addr = '';

beforeAll(async () => {
  addr = await listen(server);
});
afterAll(() => {
  server.forceShutdown();
});

/** A typed client stream: hello, wait for welcome. */
async function connectAgent() {
  const client = new AgentClient(addr, insecure);
  const call = client.connect();
  const status = statusOf(call);
  call.write(create(pb.AgentMessageSchema, { body: { case: 'hello', value: toWireHello(HELLO) } }));
  const welcome = await nextMessage<pb.AggregatorMessage>(call);
  expect(welcome.body.case).toBe('welcome');
  return { client, call, status };
}

async function sendWindow(call: grpc.ClientDuplexStream<pb.AgentMessage, pb.AggregatorMessage>, seq: number): Promise<bigint> {
  const ack = nextMessage<pb.AggregatorMessage>(call);
  call.write(create(pb.AgentMessageSchema, { body: { case: 'window', value: toWireWindow(WINDOW, seq) } }));
  const m = await ack;
  if (m.body.case !== 'ack') throw new Error(`expected an ack, got ${m.body.case}`);
  return m.body.value.seq;
}

/** A client that writes raw bytes on the method path, as a broken or hostile peer would. */
function rawStream(address: string) {
  const client = new grpc.Client(address, insecure);
  const call = client.makeBidiStreamRequest(CONNECT, raw, raw);
  call.on('data', () => {}); // read: grpc-js parses (and reports) only what is read
  return { client, call, status: statusOf(call) };
}

describe('grpc adapter', () => {
  it('carries typed messages both ways on a bidi stream: hello → welcome, window → ack', async () => {
    const { client, call, status } = await connectAgent();
    expect(await sendWindow(call, 1)).toBe(1n);
    expect(await sendWindow(call, 2)).toBe(2n);
    call.end();
    expect((await status).code).toBe(grpc.status.OK);
    client.close();
  });

  it('ends only the stream that sent garbage, with INVALID_ARGUMENT, and keeps serving others', async () => {
    const good = await connectAgent();
    const before = received.length;
    const errorsBefore = serverErrors.length;

    const bad = rawStream(addr);
    bad.call.write(GARBAGE);
    // a valid hello after the garbage must not reach the handler
    bad.call.write(Buffer.from(toBinary(pb.AgentMessageSchema, create(pb.AgentMessageSchema, { body: { case: 'hello', value: toWireHello(HELLO) } }))));
    const st = await bad.status;
    expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(st.details).toMatch(/^distappguard\.v1\.AgentMessage: malformed message \(3 bytes\): .+/);
    bad.client.close();

    // the handler heard why its stream ended (to log it with the agent's identity)
    expect(serverErrors.slice(errorsBefore)).toEqual([expect.objectContaining({ code: grpc.status.INVALID_ARGUMENT, details: st.details })]);
    expect(received.length).toBe(before);

    // the stream that was open goes on, and a new agent can connect
    expect(await sendWindow(good.call, 7)).toBe(7n);
    const other = await connectAgent();
    expect(await sendWindow(other.call, 1)).toBe(1n);
    for (const a of [good, other]) {
      a.call.end();
      expect((await a.status).code).toBe(grpc.status.OK);
      a.client.close();
    }
  });

  it('refuses garbage that arrives while the handler is busy committing, after valid messages', async () => {
    const bytes = (m: pb.AgentMessage) => Buffer.from(toBinary(pb.AgentMessageSchema, m));
    const bad = rawStream(addr);
    const got: Buffer[] = [];
    bad.call.on('data', (b: Buffer) => got.push(b));
    // pipelined: the garbage is parsed while the handler awaits its "commit" of the window
    bad.call.write(bytes(create(pb.AgentMessageSchema, { body: { case: 'hello', value: toWireHello(HELLO) } })));
    bad.call.write(bytes(create(pb.AgentMessageSchema, { body: { case: 'window', value: toWireWindow(WINDOW, 1) } })));
    bad.call.write(GARBAGE);
    const st = await bad.status;
    expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(st.details).toContain('malformed message');
    expect(got.length).toBeGreaterThanOrEqual(1); // the welcome, perhaps the ack
    bad.client.close();
    // and the server still serves
    const a = await connectAgent();
    expect(await sendWindow(a.call, 1)).toBe(1n);
    a.call.end();
    expect((await a.status).code).toBe(grpc.status.OK);
    a.client.close();
  });

  it('refuses a valid message that fails validation through the handler, with the field named', async () => {
    const { client, call, status } = await connectAgent();
    const w = toWireWindow(WINDOW, 3);
    w.edges[0].dst = 40;
    call.write(create(pb.AgentMessageSchema, { body: { case: 'window', value: w } }));
    const st = await status;
    expect(st).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'edges[0].dst: role index 40 out of range (roles: 2)' });
    client.close();
  });

  it("messages() keeps the stream alive for its status, where Node's own iterator does not", async () => {
    // the same loop, iterating the call directly: its end destroys the stream, so call.end()
    // sends no status and the client hangs until the server goes away
    const bare = new grpc.Server();
    addService(bare, pb.AgentService, {
      async connect(call) {
        for await (const _m of call as AsyncIterable<pb.AgentMessage>) void _m;
        call.end();
      },
    });
    const address = await listen(bare);
    const client = new AgentClient(address, insecure);
    const call = client.connect();
    call.on('data', () => {});
    const st = statusOf(call);
    call.write(create(pb.AgentMessageSchema, { body: { case: 'hello', value: toWireHello(HELLO) } }));
    call.end();
    const early = await Promise.race([st, new Promise((resolve) => setTimeout(() => resolve('no status'), 300))]);
    expect(early).toBe('no status');
    bare.forceShutdown();
    expect((await st).code).toBe(grpc.status.CANCELLED);
    client.close();
  });

  it('an async handler that rejects ends only its call, with INTERNAL', async () => {
    const buggy = new grpc.Server();
    addService(buggy, pb.AgentService, {
      async connect(call) {
        for await (const m of messages(call)) throw new Error(`cannot handle ${m.body.case}`);
      },
    });
    const address = await listen(buggy);
    try {
      for (let i = 0; i < 2; i++) {
        const client = new AgentClient(address, insecure);
        const call = client.connect();
        call.on('data', () => {});
        const st = statusOf(call);
        call.write(create(pb.AgentMessageSchema, { body: { case: 'hello', value: toWireHello(HELLO) } }));
        expect(await st).toMatchObject({ code: grpc.status.INTERNAL, details: 'handler failed: cannot handle hello' });
        client.close();
      }
    } finally {
      buggy.forceShutdown();
    }
  });

  it('a method decoder gives the handler its own form; a decoder that throws refuses the message as malformed', async () => {
    const got: unknown[] = [];
    const s = new grpc.Server();
    // keeps the bytes of every request, refuses those starting with 0xff
    const decoders = {
      connect: (b: Buffer): { size: number; first: number } => {
        if (b[0] === 0xff) throw new Error('starts with 0xff');
        return { size: b.length, first: b[0] };
      },
    };
    addService(s, pb.AgentService, {
      async connect(call) {
        try {
          for await (const m of messages(call)) {
            got.push(m); // typed from the decoder: { size, first }
            call.write(create(pb.AggregatorMessageSchema, { body: { case: 'ack', value: { seq: BigInt(m.size) } } }));
          }
        } catch {
          // the refusal: its status is what the client checks
        }
        call.end();
      },
    }, decoders);
    const a = await listen(s);
    try {
      const c = new grpc.Client(a, insecure);
      const call = c.makeBidiStreamRequest(CONNECT, raw, raw);
      const st = statusOf(call);
      const ack = nextMessage<Buffer>(call);
      call.write(Buffer.from([0x0a, 0x00]));
      expect(Buffer.from(await ack)).toEqual(Buffer.from(toBinary(pb.AggregatorMessageSchema, create(pb.AggregatorMessageSchema, { body: { case: 'ack', value: { seq: 2n } } }))));
      call.write(Buffer.from([0xff, 0x01, 0x02]));
      const status = await st;
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status.details).toBe('distappguard.v1.AgentMessage: malformed message (3 bytes): starts with 0xff');
      expect(got).toEqual([{ size: 2, first: 0x0a }]);
      c.close();
    } finally {
      s.forceShutdown();
    }
  });

  it('without the adapter, grpc-js itself answers a throwing deserializer with INTERNAL and no reason', async () => {
    // evidence for why addService decodes tolerantly: the plain definition's deserializer throws
    const plain = new grpc.Server();
    let handlerSawError = false;
    plain.addService(serviceDefinition(pb.AgentService), {
      connect: (call: grpc.ServerDuplexStream<pb.AgentMessage, pb.AggregatorMessage>) => {
        call.on('error', () => (handlerSawError = true));
        call.on('data', () => {}); // messages are deserialized only when read
        call.on('end', () => call.end());
      },
    });
    const address = await listen(plain);
    try {
      const bad = rawStream(address);
      bad.call.write(GARBAGE);
      const st = await bad.status;
      expect(st.code).toBe(grpc.status.INTERNAL);
      // the parser's message is only sent when GRPC_NODE_DEBUG_SEND_ERROR_DETAILS is set
      expect(st.details).toMatch(/^Error deserializing request/);
      expect(handlerSawError).toBe(false);
      bad.client.close();
    } finally {
      plain.forceShutdown();
    }
  });

  it('a client receiving bytes that are not an AggregatorMessage gets INTERNAL naming the type', async () => {
    // a server that answers with raw bytes on the same path
    const liar = new grpc.Server();
    liar.addService(
      { connect: { path: CONNECT, requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
      {
        connect: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.write(GARBAGE);
          call.on('end', () => call.end());
        },
      },
    );
    const address = await listen(liar);
    try {
      const client = new AgentClient(address, insecure);
      const call = client.connect();
      call.on('data', () => {}); // responses are deserialized only when read
      const st = await statusOf(call);
      expect(st.code).toBe(grpc.status.INTERNAL);
      expect(st.details).toMatch(/^Response message parsing error: cannot parse distappguard\.v1\.AggregatorMessage \(3 bytes\): /);
      client.close();
    } finally {
      liar.forceShutdown();
    }
  });
});
