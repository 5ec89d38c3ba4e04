/** Runs the bundled ground-truth workload under a collector and sums the edges it produced. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildWorkload } from '../../cli/workload.js';
import { openCollector, type CollectorChoice } from '../../agent/collectors/open.js';
import { runCollector, type RunSummary } from '../../agent/run.js';
import { ProcAttribution } from '../../agent/state/attribution.js';
import type { PartialWindow } from '../../shared/graph.js';

export interface Truth {
  fileBytes: number;
  tcpBytes: number;
  udpBytes: number;
  udpSize: number;
  memBytes: number;
  rounds: number;
  intervalMs: number;
  replicas: number;
}

export const DEFAULT_TRUTH: Truth = {
  fileBytes: 123_457,
  tcpBytes: 654_321,
  udpBytes: 31_000,
  udpSize: 1000,
  memBytes: 3 * 1024 * 1024,
  rounds: 2,
  intervalMs: 300,
  replicas: 1,
};

export interface WorkloadRun {
  windows: PartialWindow[];
  summary: RunSummary;
  tcpPort: number;
  udpPort: number;
  file: string;
  exitCode: number | undefined;
}

let nextPort = 20000 + (process.pid % 500) * 16;

/** Ports outside the ephemeral range, distinct per call and per test process. */
export function freshPorts(): { tcpPort: number; udpPort: number } {
  nextPort += 2;
  return { tcpPort: nextPort, udpPort: nextPort + 1 };
}

export async function runWorkload(
  choice: CollectorChoice,
  truth: Truth = DEFAULT_TRUTH,
  ports = freshPorts(),
  extra: { rawOut?: string; windowMs?: number } = {},
): Promise<WorkloadRun> {
  const w = buildWorkload();
  const dir = mkdtempSync(join(tmpdir(), 'dag-'));
  const file = join(dir, 'out.dat');
  const client = (i: number) => [
    '--', w.client, '--tcp-port', String(ports.tcpPort), '--udp-port', String(ports.udpPort),
    '--file', `${file}.${i}`,
    '--file-bytes', String(truth.fileBytes), '--tcp-bytes', String(truth.tcpBytes),
    '--udp-bytes', String(truth.udpBytes), '--udp-size', String(truth.udpSize),
    '--mem-bytes', String(truth.memBytes), '--rounds', String(truth.rounds), '--interval-ms', String(truth.intervalMs),
  ];
  const command = [
    w.server, '--tcp-port', String(ports.tcpPort), '--udp-port', String(ports.udpPort),
    '--tcp-conns', String(truth.replicas), '--udp-senders', String(truth.replicas),
    ...Array.from({ length: truth.replicas }, (_, i) => client(i)).flat(),
  ];
  const opened = await openCollector({ choice, target: { command }, rawOut: extra.rawOut, intervalMs: 200 });
  const windows: PartialWindow[] = [];
  const windowMs = extra.windowMs ?? 1000;
  const summary = await runCollector(
    opened.collector,
    { tracker: { app: 'test', host: 'h1', windowMs, latenessMs: 1000, attribution: new ProcAttribution() }, live: true },
    (pw) => windows.push(pw),
  );
  return { windows, summary, ...ports, file: `${file}.0`, exitCode: opened.exitCode?.() };
}

/** bytes and calls per "src -> dst kind" over all windows */
export function edgeTotals(windows: PartialWindow[]): Map<string, { bytes: number; count: number; srcId: string; dstId: string }> {
  const m = new Map<string, { bytes: number; count: number; srcId: string; dstId: string }>();
  for (const w of windows)
    for (const e of w.edges) {
      const k = `${e.src} -> ${e.dst} ${e.kind}`;
      const t = m.get(k) ?? { bytes: 0, count: 0, srcId: e.srcId, dstId: e.dstId };
      t.bytes += e.bytes;
      t.count += e.count;
      m.set(k, t);
    }
  return m;
}
