/**
 * aggregator/merge.ts, merge-queue.ts and merge-worker.ts on a real store in a temp file:
 * windows merged from the partials the store holds, late re-merges folded while one waits,
 * the merge worker (the compiled one in dist/: `npm test` builds first) writing through its
 * own connection, and the fallback to the main thread when a runner fails.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toBinary } from '@bufbuild/protobuf';
import * as pb from '../../shared/gen/distappguard/v1/agent_pb.js';
import { toWireWindow } from '../../shared/wire.js';
import { roleId } from '../../shared/role-id.js';
import type { Edge, PartialWindow } from '../../shared/graph.js';
import { Store } from '../../aggregator/store/index.js';
import { WindowMerger, type MergeJob, type MergeResult } from '../../aggregator/merge.js';
import { InlineRunner, MergeQueue, startWorkerRunner, type MergeRunner } from '../../aggregator/merge-queue.js';
import { decodeStoredWindow } from '../../aggregator/window-decode.js';

const dir = mkdtempSync(join(tmpdir(), 'dag-merge-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const W = 1000;

function partial(host: string, windowStart: number, bytes: number): PartialWindow {
  const e = (src: string, dst: string): Edge => ({ srcId: roleId(src), dstId: roleId(dst), src, dst, kind: 'file', bytes, count: 1 });
  return { app: 'shop', host, windowStart, windowMs: W, edges: [e('api/worker', 'file:/data'), e('file:/data', 'api/worker')], flows: [], stats: { events: 1, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 } };
}

/** A store with `agents` partials in each of `windows` windows (agent i sends bytes i + 1). */
function storeWith(agents: number, windows: number[]): Store {
  const s = Store.open(join(dir, `m${n++}.db`));
  let seq = 0;
  for (const ws of windows) {
    seq++;
    s.commitPartials(
      Array.from({ length: agents }, (_, i) => {
        const p = partial(`h${i}`, ws, i + 1);
        return { agentId: `a${i}`, seq, app: 'shop', host: p.host, windowStart: ws, windowMs: W, body: toBinary(pb.PartialWindowSchema, toWireWindow(p, seq)), roles: [] };
      }),
    );
  }
  return s;
}

const job = (windowStart: number, reason: MergeJob['reason'], latePartials = 0): MergeJob => ({ app: 'shop', windowStart, windowMs: W, reason, latePartials });

function queue(runner: MergeRunner, fallback: () => MergeRunner = () => runner): { q: MergeQueue; done: MergeResult[] } {
  const done: MergeResult[] = [];
  return { q: new MergeQueue(runner, { withWindow: true, onDone: (r) => done.push(r), fallback }), done };
}

describe('merge queue', () => {
  it('merges windows in order from what the store holds; a re-merge asked for while waiting runs once', async () => {
    const s = storeWith(3, [0, W]);
    const { q, done } = queue(new InlineRunner(new WindowMerger(s, decodeStoredWindow)));
    q.request(job(0, 'complete'));
    q.request(job(W, 'grace'));
    q.request(job(W, 'late', 1)); // W is still waiting: folded into it, staying a first close
    q.request(job(W, 'late', 2));
    expect(q.waiting).toBe(1); // window 0 is running, W waits once
    await q.drain();
    expect(done.map((r) => [r.job.windowStart, r.job.reason, r.job.latePartials])).toEqual([[0, 'complete', 0], [W, 'grace', 2]]);
    expect(done[0].summary).toEqual({ hosts: ['h0', 'h1', 'h2'], edges: 2, matchedFlows: 0, unmatchedFlows: 0 });
    expect(done[0].window?.edges.map((e) => e.bytes)).toEqual([6, 6]); // 1 + 2 + 3 each way
    expect(s.window('shop', W)).toMatchObject({ status: 'closed', latePartials: 2, edges: 2, bytes: 12 });
    await q.close();
    s.close();
  });

  it('a runner that fails hands its job and the rest to the fallback', async () => {
    const s = storeWith(2, [0, W]);
    const broken: MergeRunner = { kind: 'worker', run: () => Promise.reject(new Error('gone')), close: async () => {} };
    const failures: Error[] = [];
    const inline = new InlineRunner(new WindowMerger(s, decodeStoredWindow));
    const { q, done } = queue(broken, () => {
      failures.push(new Error('fallback'));
      return inline;
    });
    q.request(job(0, 'complete'));
    q.request(job(W, 'complete'));
    await q.drain();
    expect(failures).toHaveLength(1);
    expect(q.kind).toBe('inline');
    expect(done.map((r) => [r.job.windowStart, r.error])).toEqual([[0, undefined], [W, undefined]]);
    expect(s.listWindows({ app: 'shop' }).map((w) => w.status)).toEqual(['closed', 'closed']);
    await q.close();
    s.close();
  });

  it('the merge worker merges through its own connection while this one keeps committing', async () => {
    const s = storeWith(4, [0]);
    const worker = startWorkerRunner(s.file, s.durability);
    expect(worker?.kind).toBe('worker');
    const { q, done } = queue(worker!);
    q.request(job(0, 'complete'));
    // this connection writes meanwhile: WAL and busy_timeout let both take turns
    s.commitPartials([{ agentId: 'late', seq: 1, app: 'shop', host: 'h9', windowStart: 0, windowMs: W, late: true, body: toBinary(pb.PartialWindowSchema, toWireWindow(partial('h9', 0, 100), 1)), roles: [] }]);
    q.request(job(0, 'late', 1));
    await q.drain();
    expect(done.every((r) => r.error === undefined)).toBe(true);
    expect(done.at(-1)?.summary?.hosts).toEqual(['h0', 'h1', 'h2', 'h3', 'h9']);
    expect(s.window('shop', 0)).toMatchObject({ status: 'closed', latePartials: 1, bytes: 2 * (1 + 2 + 3 + 4 + 100) });
    await q.close(); // the worker closed its store and ended
    s.close();
  });

  it('no worker for a store that cannot be shared', () => {
    expect(startWorkerRunner(':memory:', 'full')).toBeUndefined();
  });
});
