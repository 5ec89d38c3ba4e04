/**
 * The spool's promise under SIGKILL: a child process (the compiled module from dist/, built
 * by `npx tsc -p .` or `npm test`) appends 8 KiB windows in a loop and prints each seq once
 * `append` has returned; it is killed at a random point, several times over on the same
 * file. After every kill the parent reopens the spool and checks that every reported append
 * is there, intact, that seqs are contiguous above the ack level, and that they continue
 * across the restarts. Also measures the append rate with both sync levels.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const DIST = join(ROOT, 'dist/agent/spool.js');
const BODY = 8192;
const ACK_EVERY = 50; // the child acks seq - ACK_LAG after every ACK_EVERY-th seq
const ACK_LAG = 20;

// Runs in the child. It fills each body from windowStart = expected seq * 1000, so the parent
// can tell a lost, swapped or torn entry from a good one.
const CHILD = `
import { Spool } from ${JSON.stringify(pathToFileURL(DIST).href)};
const [file, synchronous] = process.argv.slice(2);
const spool = Spool.open(file, { maxBytes: 2 ** 40, maxAgeMs: 1e12 }, { synchronous });
const body = new Uint8Array(${BODY});
for (;;) {
  const windowStart = (spool.lastSeq() + 1) * 1000;
  for (let k = 0; k < body.length; k++) body[k] = (windowStart / 1000 * 7 + k) & 0xff;
  const { seq } = spool.append(windowStart, body);
  process.stdout.write(seq + '\\n'); // synchronous on a pipe (Linux): printed means returned
  if (seq % ${ACK_EVERY} === 0) {
    spool.ack(seq - ${ACK_LAG});
    process.stdout.write('a ' + (seq - ${ACK_LAG}) + '\\n');
  }
}
`;

interface ChildReport {
  seqs: number[];
  acks: number[];
}

/** Starts the child on `file`, SIGKILLs it once it has reported `killAfter` appends. */
function runAndKill(script: string, file: string, synchronous: string, killAfter: number): Promise<ChildReport> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [script, file, synchronous], { stdio: ['ignore', 'pipe', 'pipe'] });
    const report: ChildReport = { seqs: [], acks: [] };
    let partial = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!; // an unterminated line was not fully reported: ignore it
      for (const l of lines) {
        if (l.startsWith('a ')) report.acks.push(Number(l.slice(2)));
        else report.seqs.push(Number(l));
      }
      if (report.seqs.length >= killAfter && child.exitCode === null) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') fail(new Error(`child ended with code ${code} signal ${signal}: ${stderr}`));
      else done(report);
    });
  });
}

describe.skipIf(!existsSync(DIST))('spool survives SIGKILL (dist/agent/spool.js)', () => {
  let dir: string;
  let Spool: typeof import('../../agent/spool.js').Spool;
  let measureAppendRate: typeof import('../../bench/spool.js').measureAppendRate;

  beforeAll(async () => {
    for (const m of ['agent/spool', 'agent/spool-open', 'bench/spool']) {
      const src = statSync(join(ROOT, `${m}.ts`)).mtimeMs;
      const out = join(ROOT, `dist/${m}.js`);
      if (!existsSync(out) || statSync(out).mtimeMs < src) throw new Error(`dist/${m}.js is older than ${m}.ts: run npx tsc -p . first`);
    }
    // the parent uses the same compiled code as the child
    ({ Spool } = (await import(pathToFileURL(DIST).href)) as typeof import('../../agent/spool.js'));
    ({ measureAppendRate } = (await import(pathToFileURL(join(ROOT, 'dist/bench/spool.js')).href)) as typeof import('../../bench/spool.js'));
    dir = mkdtempSync(join(tmpdir(), 'dag-spool-crash-'));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every append the child saw return, over repeated kills with FULL and NORMAL sync', async () => {
    const script = join(dir, 'child.mjs');
    writeFileSync(script, CHILD);
    const file = join(dir, 'spool.db');
    let lastSeqBefore = 0;
    let ackLevel = 0;
    const rounds = ['FULL', 'NORMAL', 'FULL', 'NORMAL', 'FULL'];
    for (const [round, sync] of rounds.entries()) {
      const killAfter = 100 + Math.floor(Math.random() * 500);
      const r = await runAndKill(script, file, sync, killAfter);
      const ctx = `round ${round} (${sync}, kill after ${killAfter}, reported ${r.seqs.length})`;
      expect(r.seqs.length, ctx).toBeGreaterThanOrEqual(killAfter);
      // the child reported a contiguous run continuing where the last round's file ended
      expect(r.seqs[0], ctx).toBe(lastSeqBefore + 1);
      r.seqs.forEach((s, i) => expect(s, ctx).toBe(r.seqs[0] + i));
      const maxReported = r.seqs[r.seqs.length - 1];

      const spool = Spool.open(file, { maxBytes: 2 ** 40, maxAgeMs: 1e12 }, { synchronous: sync as 'FULL' | 'NORMAL' });
      try {
        expect(spool.recovered, ctx).toBeUndefined();
        const last = spool.lastSeq();
        // at most one append committed without being reported: the kill fell in between
        expect([maxReported, maxReported + 1], ctx).toContain(last);
        const held = spool.pending();
        const seqs = held.map((e) => e.seq);
        const lo = seqs[0];
        // contiguous up to lastSeq: nothing lost in the middle or at the end
        expect(seqs, ctx).toEqual(Array.from({ length: last - lo + 1 }, (_, i) => lo + i));
        // everything below lo was acked: by an ack the child reported, or by the one it was
        // making when killed (after appending a multiple of ACK_EVERY)
        const reportedAck = Math.max(ackLevel, ...r.acks);
        const possible = [reportedAck];
        for (const s of [maxReported, maxReported + 1]) if (s % ACK_EVERY === 0) possible.push(s - ACK_LAG);
        expect(possible, ctx).toContain(lo - 1);
        for (const e of held) {
          expect(e.windowStart, ctx).toBe(e.seq * 1000);
          expect(e.body.length, ctx).toBe(BODY);
          for (let k = 0; k < BODY; k += 509) expect(e.body[k], `${ctx} seq ${e.seq} byte ${k}`).toBe((e.seq * 7 + k) & 0xff);
        }
        lastSeqBefore = last;
        ackLevel = lo - 1;
      } finally {
        spool.close();
      }
    }
  });

  it('appends 8 KiB windows far faster than windows close, with either sync level', () => {
    // Figures for the record come from `node dist/bench/spool.js`; this only guards
    // against a regression to something unusable (the agent needs ~1 append/s).
    for (const sync of ['FULL', 'NORMAL'] as const) {
      const r = measureAppendRate(sync, 500, BODY);
      console.log(`spool append rate ${sync}: ${Math.round(r.perSecond)}/s (${r.count} × ${r.bodyBytes} B)`);
      expect(r.perSecond).toBeGreaterThan(50);
    }
  });
});
