/**
 * The LTTng replay collector on the real LID-DS nginx recordings, checked against
 * babeltrace2's own text, scanned here independently (plain regexes, its default output
 * with the delta column, no shared code with the parser).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CollectorUnavailable, type CollectorProblem } from '../../agent/collectors/collector.js';
import { LttngCollector, findCtfTraces, findExecutable } from '../../agent/collectors/lttng.js';
import { TRACED_CALLS, type SyscallEvent } from '../../shared/event.js';

const DATA = resolve(import.meta.dirname, '../../../shared/data/lid-ds-ctf-nginx');
const RECORDINGS = [
  'training/aggressive_galois_5453',
  'validation/howling_mayer_9706',
  'test/normal/spoiled_zhukovsky_3071',
  'test/normal_and_attack/defeated_chandrasekhar_3584',
];
const haveData = existsSync(DATA);
const haveBabeltrace = findExecutable('babeltrace2') !== undefined;
const skipReason = !haveData
  ? `LID-DS sample not found at ${DATA} (CI puts shared/ beside the clone)`
  : !haveBabeltrace
    ? 'babeltrace2 not installed (Debian package babeltrace2)'
    : undefined;
if (skipReason !== undefined) console.warn(`LTTng import tests skipped: ${skipReason}`);

/**
 * Σ ret > 0 of the data calls' exits, per call, as printed by babeltrace2 — pinned so that a
 * change of babeltrace2 or of the sample shows; the test also recomputes them from the text.
 */
const PINNED: Record<string, Record<string, number>> = {
  'training/aggressive_galois_5453': { recvfrom: 49883, write: 32673, writev: 36436, sendfile64: 10481479 },
  'validation/howling_mayer_9706': { recvfrom: 40233, write: 26581, writev: 29134, sendfile64: 7450599 },
  'test/normal/spoiled_zhukovsky_3071': { recvfrom: 71233, write: 45799, writev: 50630, sendfile64: 13716487 },
  'test/normal_and_attack/defeated_chandrasekhar_3584': { recvfrom: 101331, write: 92413, writev: 101497, sendfile64: 16521348 },
};
const DATA_CALLS = ['recvfrom', 'write', 'writev', 'sendfile64'];
const TRACED = new Set(TRACED_CALLS);

interface Truth {
  lines: number;
  bytes: Record<string, number>;
  exits: Record<string, number>;
  pairs: number;
}

/** independent reading of `babeltrace2 --clock-seconds DIR` */
function babeltraceTruth(dir: string): Truth {
  const text = execFileSync('babeltrace2', ['--clock-seconds', dir], { maxBuffer: 1 << 28 }).toString('utf8');
  const lines = text.split('\n').filter((l) => l !== '');
  const bytes: Record<string, number> = Object.fromEntries(DATA_CALLS.map((c) => [c, 0]));
  const exits: Record<string, number> = {};
  const openEntry = new Map<string, string>();
  let pairs = 0;
  for (const l of lines) {
    const m = /^\[\d+\.\d+\] \(\+[?.\d]+\) \S+ syscall_(entry|exit)_(\w+): .*?\btid = (\d+)/.exec(l);
    if (m === null) continue;
    const [, kind, call, tid] = m;
    if (!TRACED.has(call)) continue;
    if (kind === 'entry') {
      openEntry.set(tid, call);
      continue;
    }
    if (openEntry.get(tid) === call) pairs++;
    openEntry.delete(tid);
    exits[call] = (exits[call] ?? 0) + 1;
    const ret = Number(/\}, \{ ret = (-?\d+)/.exec(l)?.[1]);
    if (call in bytes && ret > 0) bytes[call] += ret;
  }
  return { lines: lines.length, bytes, exits, pairs };
}

async function collect(c: LttngCollector): Promise<SyscallEvent[]> {
  const out: SyscallEvent[] = [];
  for await (const batch of c.events()) {
    expect(batch.length).toBeGreaterThan(0);
    for (const e of batch) out.push(e);
  }
  return out;
}

describe('LTTng import of the LID-DS nginx recordings', () => {
  it.for(RECORDINGS)('%s: bytes per call and event counts equal babeltrace2\'s own output', async (rec, ctx) => {
    ctx.skip(skipReason !== undefined, skipReason);
    const dir = join(DATA, rec);
    const truth = babeltraceTruth(dir);
    const problems: CollectorProblem[] = [];
    const collector = new LttngCollector({ path: dir, onProblem: (p) => problems.push(p) });
    const events = await collect(collector);
    const c = collector.counters();

    const bytes: Record<string, number> = Object.fromEntries(DATA_CALLS.map((k) => [k, 0]));
    const counts: Record<string, number> = {};
    for (const e of events) {
      counts[e.call] = (counts[e.call] ?? 0) + 1;
      if (e.call in bytes) bytes[e.call] += e.bytes;
    }
    expect(bytes).toEqual(truth.bytes);
    expect(bytes).toEqual(PINNED[rec]);
    // one event per traced exit (no exit without entry in these recordings), paired as a naive scan pairs them
    expect(counts).toEqual(truth.exits);
    expect(c.paired).toBe(truth.pairs);
    expect(c.events).toBe(events.length);
    expect(c.lines).toBe(truth.lines);
    expect(c.babeltraceLines).toBe(truth.lines);
    expect(c.malformed).toBe(0);
    expect(c.entries + c.exits + c.ignoredCall + c.otherEvent).toBe(c.lines);
    expect(problems.filter((p) => p.kind === 'malformed')).toEqual([]);

    // in time order (exit times), epoch ms within the recording
    for (let i = 1; i < events.length; i++) expect(events[i].ts).toBeGreaterThanOrEqual(events[i - 1].ts);
    expect(events[0].ts).toBeGreaterThan(Date.UTC(2022, 9, 21));
    expect(events.at(-1)!.ts - events[0].ts).toBeLessThan(60_000);

    // host pids, nginx threads, accepted peers are the recording's client containers
    const meta = JSON.parse(readFileSync(`${dir}.json`, 'utf8')) as { container: { ip: string; role: string }[] };
    const clients = new Set(meta.container.filter((x) => x.role !== 'victim').map((x) => x.ip));
    expect(new Set(events.map((e) => e.comm))).toEqual(new Set(['nginx']));
    expect(events.every((e) => e.pid > 1000)).toBe(true);
    const accepts = events.filter((e) => e.call === 'accept4' && e.ret >= 0);
    expect(accepts.length).toBeGreaterThan(0);
    for (const a of accepts) {
      expect(clients.has(a.addr!.ip)).toBe(true);
      expect(a.addr!.port).toBeGreaterThan(1023);
    }
    expect(events.filter((e) => e.call === 'open' && e.ret >= 0).every((e) => e.path?.startsWith('/etc/nginx/'))).toBe(true);
  });

  it('finds the CTF folder from the recording, its kernel/ folder, its metadata file or a parent folder', (ctx) => {
    ctx.skip(!haveData, skipReason);
    const rec = join(DATA, RECORDINGS[0]);
    expect(findCtfTraces(rec)).toEqual([join(rec, 'kernel')]);
    expect(findCtfTraces(join(rec, 'kernel'))).toEqual([join(rec, 'kernel')]);
    expect(findCtfTraces(join(rec, 'kernel', 'metadata'))).toEqual([join(rec, 'kernel')]);
    expect(findCtfTraces(join(DATA, 'test'))).toEqual([join(DATA, RECORDINGS[2], 'kernel'), join(DATA, RECORDINGS[3], 'kernel')]);
  });

  it('says clearly what is wrong: not a trace, no babeltrace2, babeltrace2 failing', async (ctx) => {
    const empty = mkdtempSync(join(tmpdir(), 'lttng-none-'));
    expect(() => findCtfTraces(empty)).toThrow(/not a CTF trace/);
    expect(() => findCtfTraces(join(empty, 'missing'))).toThrow(/not found/);
    await expect(collect(new LttngCollector({ path: empty }))).rejects.toThrow(/not a CTF trace/);

    ctx.skip(!haveData, skipReason);
    const missing = new LttngCollector({ path: join(DATA, RECORDINGS[0]), babeltrace: '/nonexistent/babeltrace2' });
    const err = await collect(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CollectorUnavailable);
    expect((err as Error).message).toMatch(/apt-get install babeltrace2/);

    ctx.skip(!haveBabeltrace, skipReason);
    const bogus = mkdtempSync(join(tmpdir(), 'lttng-bogus-'));
    writeFileSync(join(bogus, 'metadata'), '/* CTF 1.8 */\ntrace { this is not TSDL };\n');
    const failed = await collect(new LttngCollector({ path: bogus }))
      .catch((e: unknown) => e)
      .finally(() => rmSync(bogus, { recursive: true, force: true }));
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toMatch(/babeltrace2 failed .*exit code \d+/);
    expect((failed as Error).message.split('\n').length).toBeGreaterThan(1); // with its stderr
  });

  it('stops early on request, or when the consumer breaks off, leaving no babeltrace2 behind', async (ctx) => {
    ctx.skip(skipReason !== undefined, skipReason);
    const alive = (pid: number | undefined): boolean => {
      try {
        process.kill(pid!, 0);
        return true;
      } catch {
        return false;
      }
    };
    const collector = new LttngCollector({ path: join(DATA, RECORDINGS[3]), batchSize: 10 });
    let batches = 0;
    let pid: number | undefined;
    for await (const batch of collector.events()) {
      expect(batch).toHaveLength(10);
      pid = collector.pid;
      if (++batches === 2) await collector.stop();
    }
    expect(batches).toBe(2);
    expect(collector.counters().events).toBeLessThan(100);
    expect(alive(pid)).toBe(false);

    const breaker = new LttngCollector({ path: join(DATA, RECORDINGS[3]), batchSize: 10 });
    for await (const batch of breaker.events()) {
      expect(batch).toHaveLength(10);
      pid = breaker.pid;
      break;
    }
    expect(pid).toBeGreaterThan(0);
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(pid)).toBe(false);
  });
});
