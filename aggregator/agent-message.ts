/**
 * The aggregator's request decoder for AgentService.Connect (given to addService in place of
 * protobuf-es's fromBinary) and the check of a received window.
 *
 * An AgentMessage holding a window is, canonically, one length-delimited field 2 spanning the
 * whole message. Then the window is NOT parsed here: its bytes are kept (`body`, a view, no
 * copy), checked by the direct decoder (window-decode.ts) and stored as received, so the
 * aggregator never re-encodes what was on the wire. Anything else — a hello, unusual
 * encodings, garbage — is parsed by protobuf-es as before (garbage throws: malformed).
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { AgentMessageSchema, PartialWindowSchema, type Hello, type ModelAck, type PartialWindow as PbWindow } from '../shared/gen/distappguard/v1/agent_pb.js';
import { fromWireWindow, type HelloInfo, type WireError, type WireLimits } from '../shared/wire.js';
import { scanWindow, type ScannedWindow } from './window-decode.js';

export type Incoming =
  | { case: 'hello'; value: Hello }
  /** `bytes`: the whole AgentMessage; `body`: the window's bytes within it; `parsed`: set when protobuf-es read it already */
  | { case: 'window'; bytes: Buffer; body: Uint8Array; parsed?: PbWindow }
  | { case: 'modelAck'; value: ModelAck }
  | { case: undefined };

/** The window's bytes when `bytes` is exactly `0x12 <varint length> <window>`, else undefined. */
export function windowSlice(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length < 2 || bytes[0] !== 0x12) return undefined;
  let len = 0;
  let mul = 1;
  let p = 1;
  for (; p < bytes.length && p <= 5; p++) {
    const c = bytes[p];
    len += (c & 0x7f) * mul;
    mul *= 128;
    if (c < 0x80) return len === bytes.length - p - 1 ? bytes.subarray(p + 1) : undefined;
  }
  return undefined;
}

/** Request decoder: throws on bytes protobuf-es cannot parse (the adapter then refuses them as malformed). */
export function readAgentMessage(bytes: Buffer): Incoming {
  const body = windowSlice(bytes);
  if (body) return { case: 'window', bytes, body };
  // unknown fields are dropped: nothing reads them, and they would only hold memory
  const m = fromBinary(AgentMessageSchema, bytes, { readUnknownFields: false });
  switch (m.body.case) {
    case 'hello':
      return { case: 'hello', value: m.body.value };
    case 'window':
      return { case: 'window', bytes, body: toBinary(PartialWindowSchema, m.body.value), parsed: m.body.value };
    case 'modelAck':
      return { case: 'modelAck', value: m.body.value };
    default:
      return { case: undefined };
  }
}

export type WindowCheck =
  | { kind: 'ok'; value: ScannedWindow }
  /** fromWireWindow's refusal; `seq` as the message said */
  | { kind: 'invalid'; error: WireError; seq: bigint }
  /** the window's bytes do not parse: the reason protobuf-es gives for the whole message */
  | { kind: 'malformed'; reason: string };

/**
 * Checks a received window: the direct decoder when it takes the bytes, else the reference
 * path (protobuf-es + fromWireWindow), which words every refusal exactly as before.
 */
export function checkWindow(m: Extract<Incoming, { case: 'window' }>, hello: HelloInfo, limits: WireLimits): WindowCheck {
  const fast = scanWindow(m.body, hello, limits);
  if (fast) return { kind: 'ok', value: fast };
  let msg = m.parsed;
  if (!msg) {
    try {
      const whole = fromBinary(AgentMessageSchema, m.bytes, { readUnknownFields: false });
      if (whole.body.case !== 'window') throw new Error('not a window'); // cannot happen: field 2 was found
      msg = whole.body.value;
    } catch (err) {
      return { kind: 'malformed', reason: err instanceof Error ? err.message : String(err) };
    }
  }
  const r = fromWireWindow(msg, hello, limits);
  if (!r.ok) return { kind: 'invalid', error: r.error, seq: msg.seq };
  const { seq, window: w, roles } = r.value;
  // a window with the agent's verdict (sent only with local alerts) comes this way: the
  // direct decoder leaves fields it does not know to protobuf-es
  return { kind: 'ok', value: { seq, windowStart: w.windowStart, windowMs: w.windowMs, roles, verdict: w.verdict } };
}
