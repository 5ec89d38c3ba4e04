/**
 * Agent link ↔ aggregator over real gRPC on loopback, with a real spool and a real SQLite
 * store: windows are acknowledged only once committed, and a window the aggregator refuses
 * is set aside instead of blocking every window after it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AggregatorServer } from '../../aggregator/server.js';
import { Store } from '../../aggregator/store/index.js';
import { AgentLink } from '../../agent/link.js';
import { Spool } from '../../agent/spool.js';
import { DEFAULT_WIRE_LIMITS, PROTOCOL_VERSION } from '../../shared/wire.js';
import type { PartialWindow } from '../../shared/graph.js';
import { roleId } from '../../shared/role-id.js';

const log = pino({ level: 'silent' });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function window(start: number, edges: number): PartialWindow {
  const e = Array.from({ length: edges }, (_, i) => ({
    srcId: roleId('svc/w'), dstId: roleId(`file:/data/${i}`), src: 'svc/w', dst: `file:/data/${i}`, kind: 'file' as const, bytes: 100 + i, count: 1,
  }));
  return { app: 'a', host: 'h1', windowStart: start, windowMs: 1000, edges: e, flows: [], stats: { events: edges, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 } };
}

async function setup(maxEdges = DEFAULT_WIRE_LIMITS.maxEdges) {
  const dir = mkdtempSync(join(tmpdir(), 'dag-link-'));
  const store = Store.open(join(dir, 'agg.db'));
  const server = new AggregatorServer({ listen: '127.0.0.1:0', store, log, graceMs: 500, limits: { ...DEFAULT_WIRE_LIMITS, maxEdges } });
  const addr = await server.start();
  const spool = Spool.open(join(dir, 'spool.db'), { maxBytes: 1 << 24, maxAgeMs: 3_600_000 });
  const link = new AgentLink({
    aggregator: addr, spool, log, initialBackoffMs: 50, maxBackoffMs: 200,
    hello: { agentId: 'h1', host: 'h1', app: 'a', agentVersion: 't', protocolVersion: PROTOCOL_VERSION, windowMs: 1000, collector: 'test' },
  });
  cleanups.push(async () => {
    await link.stop();
    spool.close();
    await server.stop();
    store.close();
  });
  link.start();
  return { store, server, spool, link };
}

describe('agent link and aggregator', () => {
  it('delivers spooled windows and empties the spool only on acknowledgement after commit', async () => {
    const { store, spool, link } = await setup();
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 10_000;
    for (let i = 0; i < 5; i++) link.enqueue(window(t0 + i * 1000, 3));
    expect(await link.waitDrained(5000)).toBe(true);
    expect(spool.stats()).toMatchObject({ lastSeq: 5, entriesHeld: 0, acked: 5 });
    expect(store.agentLastSeq('h1')).toBe(5);
    expect(link.counters).toMatchObject({ sent: 5, resent: 0, refused: 0 });
  });

  it('sets a refused window aside and delivers the ones after it', async () => {
    const { store, spool, link } = await setup(10);
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 10_000;
    link.enqueue(window(t0, 3));
    link.enqueue(window(t0 + 1000, 50)); // over the aggregator's edge limit
    link.enqueue(window(t0 + 2000, 3));
    expect(await link.waitDrained(10_000)).toBe(true);
    expect(link.counters.refused).toBe(1);
    expect(spool.stats().entriesHeld).toBe(0);
    expect(store.agentLastSeq('h1')).toBe(3);
    const stored = store.partialsOf('a', t0 + 2000).map((p) => p.seq);
    expect(stored).toEqual([3]);
    expect(store.partialsOf('a', t0 + 1000)).toEqual([]);
  });
});
