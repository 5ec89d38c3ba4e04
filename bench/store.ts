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
 * Each section runs with synchronous=FULL and NORMAL, to show what durability costs, three
 * times on fresh files: the best run is printed (and the median), with the load average, since
 * the machine may be shared.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
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

/** Edge lists are built once per size and shared by every window of that size (the store only reads them). */
const edgeLists = new Map<number, Edge[]>();

function edgesOf(n: number): Edge[] {
  let edges = edgeLists.get(n);
  if (edges) return edges;
  edges = new Array<Edge>(n);
  const P = roleIds.length;
  for (let i = 0; i < n; i++) {
    // distinct (src, dst) for n up to P²
    const si = i % P;
    const di = (i * 7 + Math.floor(i / P) + 1) % P;
    edges[i] = { srcId: roleIds[si], dstId: roleIds[di], src: `r${si}`, dst: `r${di}`, kind: i % 5 === 0 ? 'file' : 'net', bytes: 1000 + i, count: 3 };
  }
  if (new Set(edges.map((e) => `${e.srcId}${e.dstId}${e.kind}`)).size !== n) throw new Error(`bench window of ${n} edges has duplicate edges`);
  edgeLists.set(n, edges);
  return edges;
}

function window(start: number, n: number): MergedWindow & { latePartials: number } {
  return { app: 'bench', windowStart: start, windowMs: 1000, hosts: ['h'], edges: edgesOf(n), matchedFlows: 0, unmatchedFlows: 0, latePartials: 0 };
}

function fileBytes(file: string): number {
  let n = 0;
  for (const f of [file, `${file}-wal`]) n += statSync(f, { throwIfNoEntry: false })?.size ?? 0;
  return n;
}

/** Runs f `n` times on fresh files; the machine is shared, so the best run is the figure least disturbed by others. */
function runs<T>(n: number, f: (run: number) => T): T[] {
  return Array.from({ length: n }, (_, i) => f(i));
}
const best = (xs: number[]): number => Math.max(...xs);
const least = (xs: number[]): number => Math.min(...xs);

function partialCommits(durability: 'full' | 'normal', run: number) {
  const file = join(base, `partials-${durability}-${run}.db`);
  const s = Store.open(file, { durability });
  for (let a = 0; a < AGENTS; a++) s.upsertAgent({ agentId: `agent-${a}`, host: `host-${a}`, app: 'bench', agentVersion: '0.1.0', windowMs: 1000 });
  const first = ms(() => s.commitPartials(batch(0))); // inserts the 5,000 roles
  const times: number[] = [];
  const N = 20;
  for (let b = 1; b <= N; b++) {
    const items = batch(b);
    times.push(ms(() => s.commitPartials(items)));
  }
  const dup = ms(() => s.commitPartials(batch(N))); // a whole batch resent
  s.close();
  const total = times.reduce((x, y) => x + y, 0);
  return { rate: (N * AGENTS) / (total / 1000), p50: pct(times, 50), max: Math.max(...times), first, dup, perPartial: fileBytes(file) / ((N + 1) * AGENTS) };
}

function mergedWindows(durability: 'full' | 'normal', run: number) {
  const file = join(base, `edges-${durability}-${run}.db`);
  const s = Store.open(file, { durability });
  let start = 0;
  let rows = 0;
  const rate: Record<number, number> = {};
  for (const [edges, count] of [[200, 300], [2_000, 60], [200_000, 2]] as const) {
    const ws = Array.from({ length: count }, () => window((start += 1000), edges));
    const t = ms(() => {
      for (const w of ws) s.saveMergedWindow(w, 'closed');
    });
    rows += edges * count;
    rate[edges] = (edges * count) / (t / 1000);
  }
  const again = window(start, 2_000);
  const remerge = ms(() => {
    for (let i = 0; i < 50; i++) s.saveMergedWindow(again, 'closed');
  }) / 50;
  const graph = ms(() => s.windowGraph('bench', start));
  const list = ms(() => s.listWindows({ limit: 100 }));
  s.close();
  return { rate, remerge, graph, list, perRow: fileBytes(file) / rows };
}

function steady(durability: 'full' | 'normal', run: number) {
  const s = Store.open(join(base, `steady-${durability}-${run}.db`), { durability });
  const per: number[] = [];
  s.commitPartials(batch(0));
  for (let sec = 1; sec <= 15; sec++) {
    const items = batch(sec);
    const w = window(sec * 1000, 2_000);
    per.push(ms(() => {
      s.commitPartials(items);
      s.saveMergedWindow(w, 'closed');
    }));
  }
  s.close();
  return { p50: pct(per, 50), max: Math.max(...per) };
}

function benchDurability(durability: 'full' | 'normal'): void {
  const RUNS = 3;
  process.stdout.write(`\nsynchronous=${durability.toUpperCase()} (best of ${RUNS} runs; medians in brackets)\n`);
  const p = runs(RUNS, (r) => partialCommits(durability, r));
  const med = (xs: number[]): number => pct(xs, 50);
  report('partials committed/s (1,000 × 8 KiB per batch)', `${nf.format(best(p.map((x) => x.rate)))}  [${nf.format(med(p.map((x) => x.rate)))}]  = ${nf1.format((best(p.map((x) => x.rate)) * BODY) / 2 ** 20)} MiB/s`);
  report('batch commit ms, p50 / max (best run)', `${nf1.format(least(p.map((x) => x.p50)))} / ${nf1.format(least(p.map((x) => x.max)))}`);
  report('first batch (5,000 new roles) ms', nf1.format(least(p.map((x) => x.first))));
  report('resent batch (1,000 duplicates) ms', nf1.format(least(p.map((x) => x.dup))));
  report('file bytes per partial', nf.format(p[0].perPartial));
  const m = runs(RUNS, (r) => mergedWindows(durability, r));
  for (const edges of [200, 2_000, 200_000]) {
    const rs = m.map((x) => x.rate[edges]);
    report(`merged edge rows/s, windows of ${nf.format(edges)} edges`, `${nf.format(best(rs))}  [${nf.format(med(rs))}]  = ${nf1.format((edges / best(rs)) * 1000)} ms/window`);
  }
  report('re-merge of a 2,000-edge window (replace) ms', nf1.format(least(m.map((x) => x.remerge))));
  report('windowGraph of a 2,000-edge window (labels) ms', nf1.format(least(m.map((x) => x.graph))));
  report('listWindows, 100 newest ms', nf1.format(least(m.map((x) => x.list))));
  report('file bytes per edge row', nf1.format(m[0].perRow));
  const st = runs(RUNS, (r) => steady(durability, r));
  report('1 s of target load (batch + 2,000-edge window) ms', `p50 ${nf1.format(least(st.map((x) => x.p50)))}, max ${nf1.format(least(st.map((x) => x.max)))}`);
}

try {
  process.stdout.write(`store bench in ${base} (${AGENTS} agents, ${BODY} B bodies, ${ROLES_PER_PARTIAL} roles per partial)\n`);
  process.stdout.write(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')} on ${availableParallelism()} CPUs\n`);
  benchDurability('full');
  benchDurability('normal');
  process.stdout.write('\n');
  report('peak RSS (MiB)', nf.format(process.resourceUsage().maxRSS / 1024));
  report('load average after', loadavg().map((x) => x.toFixed(2)).join(' '));
} finally {
  rmSync(base, { recursive: true, force: true });
}
