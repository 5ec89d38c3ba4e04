/**
 * Every LID-DS recording (real LTTng traces of a containerised nginx) through the whole
 * import pipeline: nginx roles, file and network edges, and byte totals that add up to
 * what babeltrace2 itself prints — bytes on edges plus bytes on fds of unknown origin
 * (opened before the recording began) equal the data calls' return values.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCollector } from '../../agent/collectors/open.js';
import { runCollector } from '../../agent/run.js';
import { noAttribution } from '../../agent/state/attribution.js';
import type { PartialWindow } from '../../shared/graph.js';

const DATA = resolve(import.meta.dirname, '../../../shared/data/lid-ds-ctf-nginx');
const recordings = existsSync(DATA)
  ? ['training', 'validation', 'test/normal', 'test/normal_and_attack'].flatMap((d) =>
      readdirSync(join(DATA, d), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name)),
    )
  : [];
if (recordings.length === 0) console.warn(`LID-DS sample not found at ${DATA}: LTTng pipeline tests skipped`);

/** Σ ret of data-call exits, straight from babeltrace2's text: the independent ground truth. */
function babeltraceBytes(dir: string): { oneSided: number; transfer: number } {
  const text = execFileSync('babeltrace2', [join(dir, 'kernel')], { maxBuffer: 1 << 28 }).toString();
  let oneSided = 0;
  let transfer = 0;
  const re = /syscall_exit_(\w+):.*?\{ ret = (-?\d+)/g;
  for (const m of text.matchAll(re)) {
    const ret = Number(m[2]);
    if (ret <= 0) continue;
    if (/^(read|pread64|readv|recvfrom|recvmsg|write|pwrite64|writev|sendto|sendmsg)$/.test(m[1])) oneSided += ret;
    else if (/^(sendfile64|sendfile|splice)$/.test(m[1])) transfer += ret;
  }
  return { oneSided, transfer };
}

describe.skipIf(recordings.length === 0)('LTTng import of the LID-DS nginx recordings', () => {
  it.each(recordings)('%s', async (rec) => {
    const dir = join(DATA, rec);
    const opened = await openCollector({ choice: 'lttng', path: dir });
    const windows: PartialWindow[] = [];
    const summary = await runCollector(
      opened.collector,
      { tracker: { app: 'lid-ds', host: 'victim', windowMs: 5000, attribution: noAttribution }, live: false },
      (w) => windows.push(w),
    );
    expect(windows.length).toBeGreaterThan(0);
    const edges = windows.flatMap((w) => w.edges);
    // nginx is the only program in the trace: every thread role is nginx's
    const threadSides = new Set(edges.map((e) => (e.kind === 'file' || e.src.startsWith('net:') || e.src.startsWith('ipc:') ? e.dst : e.src)));
    expect([...threadSides]).toEqual(['nginx']);
    // it serves files from its html root over TCP to the client containers' private addresses
    expect(edges.some((e) => e.kind === 'file' && e.src.startsWith('file:/etc/nginx/html/') && e.dst === 'nginx')).toBe(true);
    expect(edges.some((e) => e.kind === 'net' && e.src === 'nginx' && e.dst.startsWith('net:tcp/private:'))).toBe(true);
    expect(edges.some((e) => e.kind === 'net' && e.dst === 'nginx' && e.src.startsWith('net:tcp/private:'))).toBe(true);
    // no ephemeral client port in any role
    for (const e of edges) expect(`${e.src} ${e.dst}`).not.toMatch(/:(3[2-9]\d{3}|[4-5]\d{4}|60\d{3})\b/);

    const truth = babeltraceBytes(dir);
    const onEdges = edges.reduce((a, e) => a + e.bytes, 0);
    const unknown = windows.reduce((a, w) => a + w.stats.unknownFdBytes, 0);
    // a transfer (sendfile) is two movements: file → nginx and nginx → socket
    expect(onEdges + unknown).toBe(truth.oneSided + 2 * truth.transfer);
    expect(summary.tracker.dataCalls).toBeGreaterThan(0);
  });
});
