/**
 * Roles must not depend on pids, tids, fds or ephemeral ports: a restart of the same
 * programs, or two replicas side by side, give the same role ids; and a recorded trace
 * replays to the same graph as the live capture it was recorded from.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCollector } from '../../agent/collectors/open.js';
import { runCollector } from '../../agent/run.js';
import { LocalFilesAttribution } from '../../agent/state/attribution.js';
import type { PartialWindow } from '../../shared/graph.js';
import { DEFAULT_TRUTH, edgeTotals, freshPorts, runWorkload } from './workload-run.js';

function roleSet(ws: PartialWindow[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const w of ws)
    for (const e of w.edges) {
      m.set(e.srcId, e.src);
      m.set(e.dstId, e.dst);
    }
  return m;
}

/** only the roles the workload's own threads touch (the dynamic loader's reads differ by nothing, but stay focused) */
function workloadRoles(ws: PartialWindow[]): Map<string, string> {
  return new Map([...roleSet(ws)].filter(([, l]) => /dag-|net:|mem:/.test(l)));
}

describe('role stability on real processes (strace)', () => {
  it('a restart with new pids and new ephemeral ports gives the same roles', async () => {
    const ports = freshPorts();
    const a = await runWorkload('strace', DEFAULT_TRUTH, ports);
    const b = await runWorkload('strace', DEFAULT_TRUTH, ports);
    const ra = workloadRoles(a.windows);
    expect(ra.size).toBeGreaterThanOrEqual(10);
    expect([...ra.entries()].sort()).toEqual([...workloadRoles(b.windows).entries()].sort());
    // the runs really used different pids and client ports
    const clientPort = (r: typeof a) => r.windows.flatMap((w) => w.flows).find((f) => f.role === 'dag-client/tcp-send')!.local.port;
    expect(clientPort(a)).not.toBe(clientPort(b));
    // the only long numbers a label may hold are the service ports: no pid, tid or ephemeral port
    for (const label of roleSet(a.windows).values()) {
      for (const n of label.match(/\d{3,}/g) ?? []) expect([String(ports.tcpPort), String(ports.udpPort)], label).toContain(n);
    }
  });

  it('two replicas side by side map to the same roles as one, with twice the bytes', async () => {
    const ports = freshPorts();
    const one = await runWorkload('strace', DEFAULT_TRUTH, ports);
    const two = await runWorkload('strace', { ...DEFAULT_TRUTH, replicas: 2 }, ports);
    const r1 = workloadRoles(one.windows);
    const r2 = workloadRoles(two.windows);
    expect([...r2.keys()].sort()).toEqual([...r1.keys()].sort());
    const t2 = edgeTotals(two.windows);
    expect(t2.get(`dag-client/tcp-send -> net:tcp/loopback:${ports.tcpPort} net`)?.bytes).toBe(2 * DEFAULT_TRUTH.tcpBytes);
    expect(t2.get(`net:tcp/loopback:*→:${ports.tcpPort} -> dag-server/tcp-recv net`)?.bytes).toBe(2 * DEFAULT_TRUTH.tcpBytes);
    expect(t2.get('dag-client/mem-release -> mem:dag-client mem')?.bytes).toBe(2 * DEFAULT_TRUTH.memBytes);
  });

  it('the raw strace log replays to the same windows as the live capture', async () => {
    const raw = join(mkdtempSync(join(tmpdir(), 'dag-raw-')), 'trace.strace');
    const live = await runWorkload('strace', DEFAULT_TRUTH, freshPorts(), { rawOut: raw });
    const opened = await openCollector({ choice: 'strace-file', path: raw });
    const replayed: PartialWindow[] = [];
    await runCollector(
      opened.collector,
      { tracker: { app: 'test', host: 'h1', windowMs: 1000, latenessMs: 1000, attribution: new LocalFilesAttribution() }, live: false },
      (w) => replayed.push(w),
    );
    const nonEmpty = (ws: PartialWindow[]) => ws.filter((w) => w.edges.length > 0).map((w) => ({ start: w.windowStart, edges: w.edges }));
    expect(nonEmpty(replayed)).toEqual(nonEmpty(live.windows));
    expect(nonEmpty(live.windows).length).toBeGreaterThan(0);
  });
});
