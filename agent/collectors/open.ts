/**
 * Picks and opens a collector. Live capture prefers eBPF (low overhead) and falls back to
 * strace with a message saying why; replay opens the reader for the trace's format.
 */
import type { Logger } from 'pino';
import type { Collector } from './collector.js';
import { CollectorUnavailable } from './collector.js';
import { EbpfCollector, ebpfAvailable } from './ebpf.js';
import { LttngCollector } from './lttng.js';
import { problemLogger } from './problem-log.js';
import { StraceCollector } from './strace.js';
import { StraceFileCollector } from './strace-file.js';

export type CollectorChoice = 'auto' | 'ebpf' | 'strace' | 'strace-file' | 'lttng';

export type TraceTarget = { command: string[] } | { pids: number[] } | { container: string };

export interface OpenOptions {
  choice: CollectorChoice;
  /** live collectors */
  target?: TraceTarget;
  /** replay collectors */
  path?: string;
  /** strace: keep the raw text for replay */
  rawOut?: string;
  /** eBPF: how often the kernel maps are dumped (≤ the window length) */
  intervalMs?: number;
  stracePath?: string;
  log?: Logger;
}

export interface OpenedCollector {
  collector: Collector;
  /** the traced command's exit code, once it has ended */
  exitCode?: () => number | undefined;
}

export async function openCollector(o: OpenOptions): Promise<OpenedCollector> {
  const onProblem = problemLogger(o.log, o.choice);
  switch (o.choice) {
    case 'strace-file':
      return { collector: new StraceFileCollector(need(o.path, 'path'), { onProblem }) };
    case 'lttng':
      return { collector: new LttngCollector({ path: need(o.path, 'path'), onProblem }) };
    case 'strace':
      return strace(o, onProblem);
    case 'ebpf': {
      const ok = await ebpfAvailable();
      if (!ok.ok) throw new CollectorUnavailable('ebpf', `eBPF collector unavailable: ${ok.reason}`);
      return ebpf(o, onProblem);
    }
    case 'auto': {
      const ok = await ebpfAvailable();
      if (ok.ok && o.rawOut === undefined) return ebpf(o, onProblem);
      o.log?.warn(
        { reason: ok.ok ? '--raw-out needs strace' : ok.reason },
        `eBPF collector not used (${ok.ok ? 'a raw trace was asked for, which only strace writes' : ok.reason}); tracing with strace instead (slower: each traced call stops the thread)`,
      );
      return strace(o, onProblem);
    }
  }
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`collector needs a ${what}`);
  return v;
}

function strace(o: OpenOptions, onProblem: ReturnType<typeof problemLogger>): OpenedCollector {
  const t = need(o.target, 'target');
  const c = new StraceCollector({
    target: 'container' in t ? { cgroup: t.container } : t,
    stracePath: o.stracePath,
    rawOut: o.rawOut,
    onProblem,
  });
  return { collector: c, exitCode: () => c.exitCode() };
}

function ebpf(o: OpenOptions, onProblem: ReturnType<typeof problemLogger>): OpenedCollector {
  const t = need(o.target, 'target');
  const c = new EbpfCollector({
    target: 'container' in t ? { cgroup: t.container } : t,
    intervalMs: o.intervalMs,
    onProblem,
  });
  return { collector: c, exitCode: () => c.exitCode() };
}
