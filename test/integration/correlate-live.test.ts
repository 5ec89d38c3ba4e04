/**
 * Correlation on real captured windows: the bundled workload's client and server talk over
 * loopback on one host, so both ends of every socket are in the same agent's partials.
 */
import { describe, expect, it } from 'vitest';
import { FlowRegistry, correlate } from '../../aggregator/correlate.js';
import { DEFAULT_TRUTH, edgeTotals, runWorkload } from './workload-run.js';

describe('correlation of a live capture', () => {
  it('joins TCP and UDP ends into thread-to-thread edges with the bytes the programs sent', async () => {
    const run = await runWorkload('strace');
    // one registry over the windows, as the aggregator keeps: on a busy machine a send and its
    // receive can fall in consecutive windows, and the flow seen earlier names the other end
    const registry = new FlowRegistry();
    const merged = run.windows.map((w) => ({ ...correlate(w.app, w.windowStart, w.windowMs, [w], registry), flows: [], stats: w.stats, host: 'h1' }));
    const t = edgeTotals(merged);
    const msg = [...t].map(([k, v]) => `${k} = ${v.bytes}`).join('\n');
    expect(t.get('dag-client/tcp-send -> dag-server/tcp-recv net')?.bytes, msg).toBe(DEFAULT_TRUTH.tcpBytes);
    expect(t.get('dag-client/udp-send -> dag-server/udp-recv net')?.bytes, msg).toBe(DEFAULT_TRUTH.udpBytes);
    // nothing of that traffic is left on endpoint or external roles
    expect([...t.keys()].filter((k) => k.includes(`:${run.tcpPort}`) || k.includes(`:${run.udpPort}`)), msg).toEqual([]);
    // the other edges pass through untouched
    expect(t.get('dag-client/mem-release -> mem:dag-client mem')?.bytes).toBe(DEFAULT_TRUTH.memBytes);
  });
});
