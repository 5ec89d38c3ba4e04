/**
 * npx tsc -p . && node dist/bench/store.js [--dir DIR] — the aggregator store alone, on a
 * real file (default: the OS temp dir; pass --dir to measure the disk the store will live on).
 * Prints its figures; asserts nothing.
 *
 *   partial commits   batches of 1,000 partials (8 KiB bodies, 100 roles each) — the target
 *                     load is one such batch per second (1,000 agents, 1 s windows)
 *   merged windows    saveMergedWindow rows/s for windows of 200, 2,000 and 200,000 edges
 *                     (200,000 = 1,000 agents × 200 edges with no edge shared: the worst case)
 *   re-merge          the same window saved again (a late partial): delete + insert
 *   steady state      one second of target load: one batch + its merged window of 2,000 edges
 *   file size         bytes on disk per edge row and per partial
 *   peak memory       max RSS of this process
 * Each section runs with synchronous=FULL and NORMAL, to show what durability costs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../aggregator/store/index.js';
import type { PartialIn, RoleInfo } from '../aggregator/store/index.js';
import type { Edge, MergedWindow } from '../shared/graph.js';

const AGENTS = 1000;
const BODY = 8 * 1024;
const ROLES_PER_PARTIAL = 100;
const ROLE_POOL = 5000;

const argDir = process.argv.indexOf('--dir');
const base = mkdtempSync(join(argDir > 0 ? process.argv[argDir + 1] : tmpdir(), 'dag-store-bench-'));
const nf = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

function report(what: string, value: string): void {
  process.stdout.write(`  ${what.padEnd(52)} ${value}\n`);
}

function ms(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const hex = (n: number): string => n.toString(16).padStart(16, '0');
/** ids spread over the whole 64-bit range (half of them ≥ 2^63), like real hashes */
const roleIds = Array.from({ length: ROLE_POOL * 4 }, () => randomBytes(8).toString('hex'));
const roles: RoleInfo[] = roleIds.slice(0, ROLE_POOL).map((id, i) => ({ id, label: `svc${i % 50}/thread-${i}`, kind: 'thread' }));
const bodies = Array.from({ length: 64 }, () => randomBytes(BODY));

function batch(seq: number): PartialIn[] {
  const out: PartialIn[] = [];
  for (let a = 0; a < AGENTS; a++) {
    const r0 = (a * 37) % (ROLE_POOL - ROLES_PER_PARTIAL);
    out.push({
      agentId: `agent-${a}`, seq, app: 'bench', host: `host-${a}`, windowStart: seq * 1000, windowMs: 1000,
      body: bodies[(a + seq) % bodies.length], roles: roles.slice(r0, r0 + ROLES_PER_PARTIAL),
    });
  }
  return out;
}

function window(start: number, n: number): MergedWindow & { latePartials: number } {
  const edges: Edge[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const s = roleIds[i % roleIds.length];
    const d = roleIds[(i * 7 + Math.floor(i / roleIds.length) + 1) % roleIds.length];
    edges[i] = { srcId: s, dstId: d, src: `r${i % roleIds.length}`, dst: `r${(i * 7 + 1) % roleIds.length}`, kind: i % 5 === 0 ? 'file' : 'net', bytes: 1000 + i, count: 3 };
  }
  // distinct (src, dst, kind) for n up to roleIds.length²; check anyway
  const keys = new Set(edges.map((e) => `${e.srcId}${e.dstId}${e.kind}`));
  if (keys.size !== n) throw new Error(`bench window of ${n} edges has duplicate edges`);
  return { app: 'bench', windowStart: start, windowMs: 1000, hosts: ['h'], edges, matchedFlows: 0, unmatchedFlows: 0, latePartials: 0 };
}

function fileBytes(file: string): number {
  let n = 0;
  for (const f of [file, `${file}-wal`]) n += statSync(f, { throwIfNoEntry: false })?.size ?? 0;
  return n;
}

function benchDurability(durability: 'full' | 'normal'): void {
  process.stdout.write(`\nsynchronous=${durability.toUpperCase()}\n`);

  // ------------------------------------------------ partial commits
  {
    const file = join(base, `partials-${durability}.db`);
    const s = Store.open(file, { durability });
    for (let a = 0; a < AGENTS; a++) s.upsertAgent({ agentId: `agent-${a}`, host: `host-${a}`, app: 'bench', agentVersion: '0.1.0', windowMs: 1000 });
    const first = ms(() => s.commitPartials(batch(0))); // inserts the 5,000 roles
    const times: number[] = [];
    const N = 30;
    for (let b = 1; b <= N; b++) {
      const items = batch(b);
      times.push(ms(() => s.commitPartials(items)));
    }
    const dupTime = ms(() => s.commitPartials(batch(N))); // a whole batch resent
    const total = times.reduce((x, y) => x + y, 0);
    report('partials committed/s (1,000 × 8 KiB per batch)', `${nf.format((N * AGENTS) / (total / 1000))}  (${nf1.format((N * AGENTS * BODY) / (total / 1000) / 2 ** 20)} MiB/s)`);
    report('batch commit ms p50 / p99 / max', `${nf1.format(pct(times, 50))} / ${nf1.format(pct(times, 99))} / ${nf1.format(Math.max(...times))}`);
    report('first batch (5,000 new roles) ms', nf1.format(first));
    report('resent batch (1,000 duplicates) ms', nf1.format(dupTime));
    s.close();
    report('file bytes per partial', nf.format(fileBytes(file) / ((N + 1) * AGENTS)));
  }

  // ------------------------------------------------ merged windows
  {
    const file = join(base, `edges-${durability}.db`);
    const s = Store.open(file, { durability });
    let start = 0;
    let rows = 0;
    for (const [edges, count] of [[200, 500], [2_000, 100], [200_000, 4]] as const) {
      const ws = Array.from({ length: count }, () => window((start += 1000), edges));
      const t = ms(() => {
        for (const w of ws) s.saveMergedWindow(w, 'closed');
      });
      rows += edges * count;
      report(`merged edge rows/s, windows of ${nf.format(edges)} edges`, `${nf.format((edges * count) / (t / 1000))}  (${nf1.format(t / count)} ms/window)`);
    }
    const again = window(start, 2_000);
    const t = ms(() => {
      for (let i = 0; i < 100; i++) s.saveMergedWindow(again, 'closed');
    });
    report('re-merge of a 2,000-edge window (replace) ms', nf1.format(t / 100));
    const q = ms(() => s.windowGraph('bench', start));
    report('windowGraph of a 2,000-edge window (labels) ms', nf1.format(q));
    const l = ms(() => s.listWindows({ limit: 100 }));
    report('listWindows, 100 newest ms', nf1.format(l));
    s.close();
    report('file bytes per edge row', nf1.format(fileBytes(file) / rows));
  }

  // ------------------------------------------------ steady state at the target
  {
    const file = join(base, `steady-${durability}.db`);
    const s = Store.open(file, { durability });
    const per: number[] = [];
    s.commitPartials(batch(0));
    for (let sec = 1; sec <= 20; sec++) {
      const items = batch(sec);
      const w = window(sec * 1000, 2_000);
      per.push(ms(() => {
        s.commitPartials(items);
        s.saveMergedWindow(w, 'closed');
      }));
    }
    report('one second of target load (batch + 2,000-edge window) ms', `p50 ${nf1.format(pct(per, 50))}, max ${nf1.format(Math.max(...per))}`);
    s.close();
  }
}

try {
  process.stdout.write(`store bench in ${base} (${AGENTS} agents, ${BODY} B bodies, ${ROLES_PER_PARTIAL} roles per partial)\n`);
  benchDurability('full');
  benchDurability('normal');
  process.stdout.write('\n');
  report('peak RSS (MiB)', nf.format(process.resourceUsage().maxRSS / 1024));
} finally {
  rmSync(base, { recursive: true, force: true });
}
