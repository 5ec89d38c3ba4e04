/**
 * npm run bench:capture — throughput of the capture path on real traces, and the slowdown
 * of a syscall-heavy program under each live collector. Prints its figures; asserts nothing
 * (timed tests flake on a busy machine; the README records what this printed).
 *
 *   strace text parsing      lines/s over a real strace log of the bundled workload
 *   babeltrace2 text parsing lines/s over the LID-DS LTTng recordings' text
 *   folding                  events/s through state → roles → windows (the Tracker)
 *   peak memory              max RSS of this process
 *   live slowdown            dd with small blocks: untraced, under strace, under eBPF
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StraceParser } from '../agent/collectors/strace-parser.js';
import { LttngParser } from '../agent/collectors/lttng-parser.js';
import { openCollector } from '../agent/collectors/open.js';
import { ebpfAvailable } from '../agent/collectors/ebpf.js';
import { runCollector } from '../agent/run.js';
import { Tracker } from '../agent/tracker.js';
import { LocalFilesAttribution, ProcAttribution } from '../agent/state/attribution.js';
import type { SyscallEvent } from '../shared/event.js';
import { projectRoot } from '../shared/project-root.js';
import { buildWorkload } from '../cli/workload.js';

const nf = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const rows: [string, string][] = [];
function report(what: string, value: string): void {
  rows.push([what, value]);
  process.stderr.write(`  ${what}: ${value}\n`);
}

/** best of n runs: the figure least disturbed by whatever else the machine does */
function best(n: number, f: () => number): number {
  let b = Infinity;
  for (let i = 0; i < n; i++) b = Math.min(b, f());
  return b;
}

function ms(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function recordStraceLog(dir: string): Promise<string> {
  const w = buildWorkload();
  const raw = join(dir, 'workload.strace');
  const port = 23000 + (process.pid % 1000) * 2;
  const opened = await openCollector({
    choice: 'strace',
    rawOut: raw,
    target: {
      command: [
        w.server, '--tcp-port', String(port), '--udp-port', String(port + 1), '--',
        w.client, '--tcp-port', String(port), '--udp-port', String(port + 1), '--file', join(dir, 'out.dat'),
        '--chunk', '64', '--file-bytes', '3200000', '--tcp-bytes', '3200000', '--udp-bytes', '400000', '--udp-size', '100',
        '--rounds', '4', '--interval-ms', '100',
      ],
    },
  });
  await runCollector(opened.collector, { tracker: { app: 'bench', host: 'h', windowMs: 1000, attribution: new ProcAttribution() }, live: true }, () => {});
  return raw;
}

function parseStrace(lines: string[]): SyscallEvent[] {
  const p = new StraceParser();
  const out: SyscallEvent[] = [];
  for (let i = 0; i < lines.length; i++) {
    const ev = p.parseLine(lines[i], i + 1);
    if (ev !== undefined) out.push(ev);
  }
  p.finish();
  return out;
}

function lidDsText(): string[] {
  const root = join(projectRoot(), '..', 'shared', 'data', 'lid-ds-ctf-nginx');
  if (!existsSync(root)) return [];
  const dirs: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = join(d, e.name);
      if (e.name === 'kernel') dirs.push(p);
      else walk(p);
    }
  };
  walk(root);
  return dirs.flatMap((d) => execFileSync('babeltrace2', ['--clock-seconds', d], { maxBuffer: 1 << 28 }).toString().split('\n').filter(Boolean));
}

async function slowdown(): Promise<void> {
  const count = Number(process.env.BENCH_DD_COUNT ?? 100_000);
  const dd = ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64', `count=${count}`, 'status=none'];
  const plain = best(3, () => {
    const t = Date.now();
    spawnSync(dd[0], dd.slice(1));
    return Date.now() - t;
  });
  report(`dd ${count}×(read+write) untraced`, `${plain} ms`);
  for (const choice of ['strace', 'ebpf'] as const) {
    if (choice === 'ebpf') {
      const ok = await ebpfAvailable();
      if (!ok.ok) {
        report('dd under eBPF', `skipped: ${ok.reason}`);
        continue;
      }
    }
    const opened = await openCollector({ choice, target: { command: dd }, intervalMs: 1000 });
    // time the traced program itself, from the moment tracing began (bpftrace takes seconds
    // to compile its probes first) to the moment the program exited
    await opened.collector.start?.();
    const t = Date.now();
    let ended: number | undefined;
    const poll = setInterval(() => {
      if (ended === undefined && opened.exitCode?.() !== undefined) ended = Date.now();
    }, 2);
    let calls = 0;
    await runCollector(opened.collector, { tracker: { app: 'bench', host: 'h', windowMs: 1000, attribution: new ProcAttribution() }, live: true }, (w) => {
      for (const e of w.edges) if (e.src.startsWith('file:/dev/zero') || e.dst.startsWith('file:/dev/null')) calls += e.count;
    });
    clearInterval(poll);
    const took = (ended ?? Date.now()) - t;
    report(`dd under ${choice}`, `${took} ms = ${(took / plain).toFixed(1)}× untraced; ${nf.format(calls)} of ${nf.format(2 * count)} dd calls on its edges`);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dag-bench-'));
  try {
    process.stderr.write('recording a real strace log of the bundled workload…\n');
    const raw = await recordStraceLog(dir);
    const lines = readFileSync(raw, 'latin1').split('\n').filter(Boolean);
    report('strace log', `${nf.format(lines.length)} lines, ${nf.format(statSync(raw).size / 1024)} KiB`);

    let events: SyscallEvent[] = [];
    const tStrace = best(5, () => ms(() => (events = parseStrace(lines))));
    report('strace text parsing', `${nf.format((lines.length / tStrace) * 1000)} lines/s (${nf.format(events.length)} events)`);

    const bt = lidDsText();
    if (bt.length > 0) {
      const reps = 20;
      const big = Array.from({ length: reps }, () => bt).flat();
      const tBt = best(5, () =>
        ms(() => {
          // a fresh parser per recording copy: each copy is a trace of its own
          for (let r = 0; r < reps; r++) {
            const p = new LttngParser();
            for (let i = 0; i < bt.length; i++) p.push(big[r * bt.length + i]);
            p.finish();
          }
        }),
      );
      report('babeltrace2 text parsing', `${nf.format((big.length / tBt) * 1000)} lines/s (LID-DS text ×${reps})`);
    } else report('babeltrace2 text parsing', 'skipped: ../shared/data/lid-ds-ctf-nginx not found');

    // folding: the same real events, repeated with shifted time so windows keep advancing
    const reps = Math.max(1, Math.ceil(1_000_000 / events.length));
    const span = events[events.length - 1].ts - events[0].ts + 1000;
    const many: SyscallEvent[] = [];
    for (let r = 0; r < reps; r++) for (const e of events) many.push({ ...e, ts: e.ts + r * span });
    let windows = 0;
    const tFold = best(5, () =>
      ms(() => {
        const tr = new Tracker({ app: 'b', host: 'h', windowMs: 1000, attribution: new LocalFilesAttribution() }, () => windows++);
        for (let i = 0; i < many.length; i += 4096) tr.push(many.slice(i, i + 4096));
        tr.end();
      }),
    );
    report('folding (state → roles → windows)', `${nf.format((many.length / tFold) * 1000)} events/s (${nf.format(many.length)} events)`);
    report('peak memory of this benchmark (all events held at once)', `${nf.format(process.resourceUsage().maxRSS / 1024)} MiB`);

    // the import path end to end, streaming, in its own process: throughput and peak memory
    const main = join(projectRoot(), 'dist', 'cli', 'main.js');
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [main, 'import', 'strace', raw, '--window', '1s', '--out', '/dev/null'], {
      env: { ...process.env, NO_PRETTY: '1' },
      encoding: 'utf8',
    });
    const took = Date.now() - t0;
    const done = r.stderr.split('\n').map((l) => { try { return JSON.parse(l); } catch { return undefined; } }).find((j) => j?.msg?.startsWith('done'));
    if (done) {
      report('distappguard import strace (whole pipeline, own process)', `${nf.format((lines.length / took) * 1000)} lines/s incl. start-up, peak RSS ${done.maxRssMiB} MiB`);
    } else report('distappguard import strace', `failed: ${r.stderr.slice(0, 300)}`);

    if (process.env.BENCH_SKIP_LIVE !== '1') await slowdown();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write('\n| measure | figure |\n|---|---|\n' + rows.map(([a, b]) => `| ${a} | ${b} |`).join('\n') + '\n');
}

await main();
