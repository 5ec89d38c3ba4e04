/**
 * Load on the web stack: a schedule of wrk runs (Debian's wrk with workload/webstack/load.lua)
 * against nginx, each with its own connection count, target rate (Poisson arrivals per
 * connection), endpoint mix and key skew, seeded so the same seed sends the same requests.
 * The default schedule is a steady trickle plus back-to-back phases whose rate follows a slow
 * wave with noise and occasional bursts, and whose connection count jumps between phases.
 */
import type { NsHost } from '../../cli/netns.js';
import { launch, signalGroup, type Proc } from './proc.js';

export interface EndpointMix {
  product: number;
  category: number;
  user: number;
  order: number;
  top: number;
}

export const DEFAULT_MIX: EndpointMix = { product: 70, category: 12, user: 10, order: 5, top: 3 };

export interface LoadPhase {
  /** ms after t0 */
  startMs: number;
  durationMs: number;
  connections: number;
  /** target requests per second over all connections (0: as fast as the stack answers) */
  rate: number;
  threads?: number;
  /** relative weights of the endpoints (default DEFAULT_MIX) */
  mix?: Partial<EndpointMix>;
  /** zipf exponent of key popularity (default 1.1; 0: uniform) */
  zipfS?: number;
  /** product ids are drawn from 1..productRange (default: the catalogue; larger: ids that do not exist) */
  productRange?: number;
}

export interface Catalogue {
  products: number;
  categories: number;
  users: number;
}

export interface WrkResult {
  label: string;
  startedAt: number;
  endedAt: number;
  connections: number;
  targetRate: number;
  requests: number;
  bytes: number;
  durationUs: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyMeanUs: number;
  latencyP99Us: number;
  /** "Non-2xx or 3xx responses" of wrk's summary */
  non2xx: number;
}

/** mulberry32: small, seedable, good enough for schedules */
export function prng(seed: number): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ScheduleOptions {
  /** mean requests per second of the foreground phases (default 220) */
  baseRate?: number;
  /** period of the rate wave (default 40 s) */
  periodMs?: number;
}

export function defaultLoadSchedule(durationMs: number, seed: number, o: ScheduleOptions = {}): LoadPhase[] {
  const rnd = prng(seed * 7919 + 17);
  const base = o.baseRate ?? 220;
  const period = o.periodMs ?? 40_000;
  const phases: LoadPhase[] = [{ startMs: 0, durationMs, connections: 2, rate: Math.round(base * 0.15) }];
  const conns = [2, 4, 6, 8, 12, 16];
  for (let t = 0; t < durationMs - 1000; ) {
    const len = Math.round(2500 + rnd() * 3500);
    const burst = rnd() < 0.15 ? 2 : 1;
    const rate = base * (1 + 0.5 * Math.sin((2 * Math.PI * t) / period)) * (0.7 + 0.6 * rnd()) * burst;
    phases.push({ startMs: t, durationMs: Math.min(len, durationMs - t), connections: conns[Math.floor(rnd() * conns.length)], rate: Math.round(rate) });
    t += len + Math.round(rnd() * 400); // a short gap: connections are closed and reopened
  }
  return phases;
}

export interface WrkRun {
  proc: Proc;
  startedAt: number;
  /** resolves when wrk has exited, with its summary (undefined if it printed none) */
  result: Promise<WrkResult | undefined>;
  /** end it now (SIGINT: wrk stops and still prints its summary) */
  stop(): void;
}

export function wrkArgs(url: string, luaScript: string, phase: LoadPhase, seed: number, cat: Catalogue): string[] {
  const mix = { ...DEFAULT_MIX, ...phase.mix };
  const threads = Math.max(1, Math.min(phase.threads ?? 2, phase.connections));
  const meanDelay = phase.rate > 0 ? (phase.connections * 1000) / phase.rate : 0;
  // -d past the planned end: the runner ends it with SIGINT at the exact time
  const secs = Math.ceil(phase.durationMs / 1000) + 2;
  return [
    'wrk', '-t', String(threads), '-c', String(phase.connections), '-d', `${secs}s`, '--timeout', '5s', '-s', luaScript, url, '--',
    String(seed), meanDelay.toFixed(3), String(cat.products), String(cat.categories), String(cat.users), String(phase.zipfS ?? 1.1),
    String(phase.productRange ?? cat.products), String(mix.product), String(mix.category), String(mix.user), String(mix.order), String(mix.top),
  ];
}

export function parseWrk(out: string): Omit<WrkResult, 'label' | 'startedAt' | 'endedAt' | 'connections' | 'targetRate'> | undefined {
  const m = /^WRKJSON (.*)$/m.exec(out);
  if (!m) return undefined;
  const j = JSON.parse(m[1]);
  const non2xx = /Non-2xx or 3xx responses:\s*(\d+)/.exec(out);
  return { ...j, non2xx: non2xx ? Number(non2xx[1]) : 0 };
}

export function startWrk(host: NsHost, label: string, args: string[], phase: LoadPhase, wrap?: (argv: string[]) => string[]): WrkRun {
  const proc = launch(label, host, wrap ? wrap(args) : args);
  const startedAt = Date.now();
  const timer = setTimeout(() => signalGroup(proc.pid, 'SIGINT'), phase.durationMs);
  const result = proc.exited.then(() => {
    clearTimeout(timer);
    const r = parseWrk(proc.out());
    return r && { label, startedAt, endedAt: Date.now(), connections: phase.connections, targetRate: phase.rate, ...r };
  });
  return {
    proc,
    startedAt,
    result,
    stop: () => {
      clearTimeout(timer);
      signalGroup(proc.pid, 'SIGINT');
    },
  };
}
