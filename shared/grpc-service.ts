/**
 * grpc-js service definitions and clients from protobuf-es v2 service descriptors (there is no
 * official plugin for that pairing, DESIGN §5): messages go over the wire with protobuf-es's
 * own `toBinary`/`fromBinary`, and the handler and client types follow from the generated
 * `GenService`, so server and client code see `AgentMessage`, not `any`.
 *
 * Malformed requests: grpc-js catches a throwing request deserializer and ends the call with
 * INTERNAL "Error deserializing request" (the parser's message only when the environment sets
 * GRPC_NODE_DEBUG_SEND_ERROR_DETAILS), and the handler is never told why its stream went away.
 * A peer's bad bytes are not an internal error, and the aggregator must log which agent sent
 * them, so `addService` decodes tolerantly and ends only that stream with INVALID_ARGUMENT and
 * a message naming the type and the parse error, emitting the same error on the handler's
 * stream. Other calls on the server are untouched.
 */
import * as grpc from '@grpc/grpc-js';
import { fromBinary, toBinary, type DescMessage, type DescMethod, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { Readable } from 'node:stream';

type Shape<D> = D extends DescMessage ? MessageShape<D> : never;
type InOf<M> = M extends { input: infer D } ? Shape<D> : never;
type OutOf<M> = M extends { output: infer D } ? Shape<D> : never;

/**
 * Per method (by localName), a request decoder to use instead of protobuf-es's `fromBinary`,
 * for a server that wants another form than the message object (the aggregator keeps a
 * window's received bytes and decodes them itself). A decoder that throws refuses the request
 * as malformed, like a parse error.
 */
export type RequestDecoders<R extends GenServiceMethods> = { [K in keyof R]?: (bytes: Buffer) => unknown };

/** What a handler receives: its decoder's result, else the message. */
type ReqOf<R extends GenServiceMethods, D, K extends keyof R> = K extends keyof D ? (D[K] extends (bytes: Buffer) => infer T ? T : InOf<R[K]>) : InOf<R[K]>;

/** The server handler grpc-js calls for each method, typed from the descriptor (and the decoders, if any). */
export type ServerHandlers<R extends GenServiceMethods, D = Record<never, never>> = {
  [K in keyof R]: R[K]['methodKind'] extends 'unary'
    ? grpc.handleUnaryCall<ReqOf<R, D, K>, OutOf<R[K]>>
    : R[K]['methodKind'] extends 'server_streaming'
      ? grpc.handleServerStreamingCall<ReqOf<R, D, K>, OutOf<R[K]>>
      : R[K]['methodKind'] extends 'client_streaming'
        ? grpc.handleClientStreamingCall<ReqOf<R, D, K>, OutOf<R[K]>>
        : grpc.handleBidiStreamingCall<ReqOf<R, D, K>, OutOf<R[K]>>;
};

interface UnaryMethod<I, O> {
  (request: I, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (request: I, metadata: grpc.Metadata, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
  (request: I, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<O>): grpc.ClientUnaryCall;
}
interface ClientStreamingMethod<I, O> {
  (callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (metadata: grpc.Metadata, callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
  (metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<O>): grpc.ClientWritableStream<I>;
}
type ServerStreamingMethod<I, O> = (request: I, metadata?: grpc.Metadata, options?: Partial<grpc.CallOptions>) => grpc.ClientReadableStream<O>;
type BidiStreamingMethod<I, O> = (metadata?: grpc.Metadata, options?: Partial<grpc.CallOptions>) => grpc.ClientDuplexStream<I, O>;

/** Client methods, by the descriptor's localName (`connect` for rpc Connect). */
export type ClientMethods<R extends GenServiceMethods> = {
  [K in keyof R]: R[K]['methodKind'] extends 'unary'
    ? UnaryMethod<InOf<R[K]>, OutOf<R[K]>>
    : R[K]['methodKind'] extends 'server_streaming'
      ? ServerStreamingMethod<InOf<R[K]>, OutOf<R[K]>>
      : R[K]['methodKind'] extends 'client_streaming'
        ? ClientStreamingMethod<InOf<R[K]>, OutOf<R[K]>>
        : BidiStreamingMethod<InOf<R[K]>, OutOf<R[K]>>;
};

export type TypedClient<R extends GenServiceMethods> = grpc.Client & ClientMethods<R>;

export interface TypedClientConstructor<R extends GenServiceMethods> {
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>): TypedClient<R>;
  service: grpc.ServiceDefinition;
  serviceName: string;
}

/** What the tolerant request deserializer returns instead of throwing. Never reaches handlers. */
class MalformedMessage {
  constructor(
    readonly typeName: string,
    readonly byteLength: number,
    readonly reason: string,
  ) {}
}

function serializer<D extends DescMessage>(schema: D): grpc.serialize<MessageShape<D>> {
  return (msg) => {
    const bin = toBinary(schema, msg);
    return Buffer.from(bin.buffer, bin.byteOffset, bin.byteLength); // no copy
  };
}

/** Throws a readable error: grpc-js turns it into INTERNAL for the caller (clients, raw use). */
function strictDeserializer<D extends DescMessage>(schema: D): grpc.deserialize<MessageShape<D>> {
  return (bytes) => {
    try {
      // unknown fields are dropped: nothing reads them, and they would only hold memory
      return fromBinary(schema, bytes, { readUnknownFields: false });
    } catch (err) {
      throw new Error(`cannot parse ${schema.typeName} (${bytes.length} bytes): ${errorText(err)}`);
    }
  };
}

function tolerantDeserializer<D extends DescMessage>(schema: D, decode?: (bytes: Buffer) => unknown): grpc.deserialize<unknown> {
  return (bytes) => {
    try {
      return decode ? decode(bytes) : fromBinary(schema, bytes, { readUnknownFields: false });
    } catch (err) {
      return new MalformedMessage(schema.typeName, bytes.length, errorText(err));
    }
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function methodDefinition(m: DescMethod, tolerant: boolean, decode?: (bytes: Buffer) => unknown): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${m.parent.typeName}/${m.name}`,
    requestStream: m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming',
    responseStream: m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming',
    requestSerialize: serializer(m.input) as grpc.serialize<unknown>,
    requestDeserialize: (tolerant ? tolerantDeserializer(m.input, decode) : strictDeserializer(m.input)) as grpc.deserialize<unknown>,
    responseSerialize: serializer(m.output) as grpc.serialize<unknown>,
    responseDeserialize: strictDeserializer(m.output) as grpc.deserialize<unknown>,
    originalName: m.localName,
  };
}

/**
 * The grpc-js `ServiceDefinition` of a protobuf-es service, keyed by method localName. Its
 * deserializers throw on bad bytes, which grpc-js reports as INTERNAL; servers should use
 * `addService` instead, which refuses bad requests with INVALID_ARGUMENT.
 */
export function serviceDefinition<R extends GenServiceMethods>(service: GenService<R>): grpc.ServiceDefinition {
  return definition(service, false);
}

function definition<R extends GenServiceMethods>(service: GenService<R>, tolerant: boolean, decoders: RequestDecoders<R> = {}): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) def[m.localName] = methodDefinition(m, tolerant, (decoders as Record<string, ((b: Buffer) => unknown) | undefined>)[m.localName]);
  return def;
}

/** A client class for the service (`new Client(addr, creds).connect()` for AgentService). */
export function clientConstructor<R extends GenServiceMethods>(service: GenService<R>): TypedClientConstructor<R> {
  return grpc.makeGenericClientConstructor(serviceDefinition(service), service.typeName) as unknown as TypedClientConstructor<R>;
}

/**
 * Registers the handlers on the server. A request that does not parse ends only its own call,
 * with INVALID_ARGUMENT `<type>: malformed message (<n> bytes): <parser error>`; the handler's
 * stream emits that error (code, details) so it can log who sent it. An async handler that
 * rejects ends its call with INTERNAL. Only bidi methods for now (AgentService has one); the
 * others are refused here until something needs them and tests them.
 */
export function addService<R extends GenServiceMethods, D extends RequestDecoders<R> = Record<never, never>>(
  server: grpc.Server,
  service: GenService<R>,
  handlers: ServerHandlers<R, D>,
  decoders?: D,
): void {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const m of service.methods) {
    const handler = (handlers as unknown as Record<string, grpc.handleBidiStreamingCall<unknown, unknown>>)[m.localName];
    if (typeof handler !== 'function') throw new Error(`addService: no handler for ${m.parent.typeName}.${m.name}`);
    if (m.methodKind !== 'bidi_streaming') throw new Error(`addService: ${m.methodKind} methods are not supported (${m.parent.typeName}.${m.name})`);
    impl[m.localName] = (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      refuseMalformed(call);
      // grpc-js turns a synchronous throw into UNKNOWN; a rejected async handler would be an
      // unhandled rejection and take the whole server down, so it ends only its call too
      const done: unknown = handler(call);
      if (done instanceof Promise)
        done.catch((err: unknown) => call.emit('error', { code: grpc.status.INTERNAL, details: `handler failed: ${errorText(err)}` }));
    };
  }
  server.addService(definition(service, true, decoders), impl);
}

/**
 * The status a malformed request ends its call with; exported for handlers whose decoder
 * left part of a request unparsed and find it malformed later (the same words either way).
 */
export function malformedStatus(m: { typeName: string; byteLength: number; reason: string }): grpc.ServiceError {
  const details = `${m.typeName}: malformed message (${m.byteLength} bytes): ${m.reason}`;
  return Object.assign(new Error(details), { code: grpc.status.INVALID_ARGUMENT, details, metadata: new grpc.Metadata() });
}

/**
 * grpc-js hands each parsed request to the stream with `push` (the Readable contract); this
 * intercepts a MalformedMessage there, before any 'data' listener. The 'error' event is how a
 * grpc-js server stream ends with a status: its own listener sends it and ends the call.
 */
function refuseMalformed(call: grpc.ServerDuplexStream<unknown, unknown>): void {
  const readable = call as unknown as Readable;
  const push = readable.push.bind(readable);
  let refused = false;
  readable.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (refused) return false; // nothing after a malformed message reaches the handler
    if (chunk instanceof MalformedMessage) {
      refused = true;
      call.emit('error', malformedStatus(chunk));
      return false;
    }
    return push(chunk, encoding);
  };
}

/**
 * The messages of a stream as a typed async iterable: messages are read as the loop consumes
 * them (at most the stream's highWaterMark, 16, buffered), so a handler that awaits its commit
 * before the next iteration applies backpressure to the peer. The loop ends when the peer
 * half-closes or the call is cancelled (`call.cancelled`), and throws the stream's error — for
 * a malformed message, the INVALID_ARGUMENT error that `addService` ends the call with.
 *
 * Why not `for await (const m of call)`: grpc-js types it as `any`, and Node's stream iterator
 * destroys the stream when the loop ends or throws; a destroyed grpc-js server stream never
 * sends its status, and the peer's call hangs until the server goes away. This iterator never
 * destroys. Do not mix it with 'data' listeners on the same stream.
 */
export function messages<I, O>(stream: grpc.ServerDuplexStream<I, O>): AsyncIterable<I>;
export function messages<I, O>(stream: grpc.ClientDuplexStream<I, O>): AsyncIterable<O>;
export function messages(stream: Readable): AsyncIterable<unknown> {
  // listen from the start: an error may come while the consumer is busy between iterations
  let failed = false;
  let failure: unknown;
  let wake = (): void => {};
  const signal = (): void => wake();
  const onError = (err: unknown): void => {
    if (!failed) [failed, failure] = [true, err];
    wake();
  };
  stream.on('error', onError);
  stream.on('readable', signal);
  stream.on('end', signal);
  stream.on('close', signal);
  return (async function* () {
    try {
      for (;;) {
        if (failed) throw failure;
        const m: unknown = stream.read();
        if (m !== null) {
          yield m;
          continue;
        }
        if (stream.readableEnded || stream.destroyed) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      stream.off('error', onError);
      stream.off('readable', signal);
      stream.off('end', signal);
      stream.off('close', signal);
    }
  })();
}
