/**
 * Progress of a long command (replay, training, evaluation, recording). A person at a
 * terminal sees one line redrawn in place (`\r`): label, bar, done/total, %, rate, ETA.
 * Anywhere else (a pipe, a file, journald) the same figures go out as a structured log line
 * at most every `everyMs` and once at the end — never escape codes or carriage returns.
 */
import type { Logger } from 'pino';

/** What progress writes to: process.stderr, or a test double. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  label: string;
  /** the amount at the end; without it, a counter and its rate */
  total?: number;
  /** what is counted: 'B' (shown as KiB/MiB/GiB), 's' (shown as a duration), or a word ("windows", "epochs") */
  unit?: string;
  log?: Pick<Logger, 'info'>;
  stream?: ProgressStream;
  /** not at a terminal: at most one log line this often (ms) */
  everyMs?: number;
  /** show the rate (default true; pointless for a clock, unit 's') */
  rate?: boolean;
  /** clock in ms (tests) */
  now?: () => number;
}

export interface Progress {
  /** whether a person is watching (the line is drawn at a terminal) */
  readonly tty: boolean;
  /** `done` so far (may be fractional); `note` says what is happening now and stays until replaced */
  update(done: number, note?: string): void;
  tick(n?: number, note?: string): void;
  /** terminal: wipe the line before something else is written there (it is drawn again at the next update) */
  clear(): void;
  /** the final figures: a finished line and a newline at a terminal, one log line otherwise. Idempotent. */
  end(note?: string): void;
}

/** At most this many redraws a second at a terminal. */
const REDRAWS_PER_S = 10;
const BAR_WIDTH = 30;

export interface BarFields {
  label: string;
  done: number;
  total?: number;
  unit?: string;
  /** per second */
  rate?: number;
  etaS?: number;
  elapsedS?: number;
  note?: string;
  /** the terminal's width (the line stays shorter by one, so it never wraps) */
  columns?: number;
  finished?: boolean;
  showRate?: boolean;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** 42s, 3m05s, 1h02m */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

function amount(n: number, unit: string | undefined, whole: boolean): string {
  if (unit === 'B') return formatBytes(n);
  if (unit === 's') return formatSeconds(n);
  if (whole || Number.isInteger(n)) return String(Math.floor(n));
  return n.toFixed(1);
}

function rateText(rate: number, unit: string | undefined): string {
  if (unit === 'B') return `${formatBytes(rate)}/s`;
  const u = unit ? ` ${unit}` : '';
  if (rate > 0 && rate < 0.1) return `${(rate * 60).toFixed(1)}${u}/min`;
  return `${rate < 10 ? rate.toFixed(1) : Math.round(rate)}${u}/s`;
}

/** Cut to `max` characters, with … when something was cut. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  return max <= 0 ? '' : text.slice(0, max - 1) + '…';
}

/**
 * The terminal line (no `\r`, no newline, no escape codes):
 * `label [#########.....] 12.0/40.0 MiB  30%  1.2 MiB/s  ETA 23s  note`, or without a
 * total `label 1234 windows  56/s  12s  note`. Never longer than columns − 1: on a narrow
 * terminal the rate, then the amounts, then the ETA go; the label is cut; the bar shrinks
 * (or goes); the note gets what room is left.
 */
export function formatBar(f: BarFields): string {
  const max = Math.max(1, (f.columns ?? 80) - 1);
  const hasTotal = f.total !== undefined && f.total >= 0;
  const frac = hasTotal ? (f.total! > 0 ? Math.min(1, Math.max(0, f.done / f.total!)) : 1) : undefined;
  const wordUnit = f.unit && f.unit !== 'B' && f.unit !== 's' ? ` ${f.unit}` : '';
  const count = hasTotal ? `${amount(f.done, f.unit, true)}/${amount(f.total!, f.unit, true)}${wordUnit}` : `${amount(f.done, f.unit, false)}${wordUnit}`;
  // figures in the order shown; on a narrow terminal the least useful go first (highest drop)
  const figures: { text: string; drop: number }[] = [{ text: count, drop: hasTotal ? 2 : 0 }];
  if (frac !== undefined) figures.push({ text: `${Math.floor(frac * 100)}%`, drop: 0 });
  if (f.showRate !== false && f.rate !== undefined && Number.isFinite(f.rate)) figures.push({ text: rateText(f.rate, f.unit), drop: 3 });
  if (f.finished) figures.push({ text: `in ${formatSeconds(f.elapsedS ?? 0)}`, drop: 1 });
  else if (hasTotal) figures.push({ text: `ETA ${f.etaS === undefined ? '?' : formatSeconds(f.etaS)}`, drop: 1 });
  else if (f.elapsedS !== undefined) figures.push({ text: formatSeconds(f.elapsedS), drop: 1 });
  const minLabel = Math.min(f.label.length, 8);
  let kept = figures;
  const width = (fs: typeof figures) => fs.reduce((n, x) => n + x.text.length, 0) + 2 * (fs.length - 1);
  while (kept.length > 1 && minLabel + 1 + width(kept) > max) {
    const worst = Math.max(...kept.map((x) => x.drop));
    kept = kept.filter((x, i) => x.drop !== worst || i !== kept.findIndex((y) => y.drop === worst));
  }
  const tail = kept.map((x) => x.text).join('  ');

  // the label keeps at least a little room; the figures come first, then the bar, then the note
  let label = f.label;
  const labelRoom = Math.max(minLabel, max - tail.length - 1);
  if (label.length > labelRoom) label = cut(label, labelRoom);
  let line = `${label} ${tail}`;
  if (frac !== undefined) {
    const room = max - line.length - 3; // brackets and a space
    const width = Math.min(BAR_WIDTH, room);
    if (width >= 5) {
      const filled = Math.round(frac * width);
      line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${tail}`;
    }
  }
  if (f.note) {
    const room = max - line.length - 2;
    if (room >= 4) line += `  ${cut(f.note.replace(/\s+/g, ' '), room)}`;
  }
  return line.length > max ? line.slice(0, max) : line;
}

/** Starts a progress line (terminal) or periodic progress logs (elsewhere). */
export function startProgress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const now = o.now ?? Date.now;
  const everyMs = o.everyMs ?? 5000;
  const t0 = now();
  let done = 0;
  let note: string | undefined;
  let lastDraw = -Infinity;
  let lastLog = t0;
  let drawnLength = 0; // characters on the terminal line now
  let ended = false;

  const figures = (t: number) => {
    const elapsedS = Math.max(0, (t - t0) / 1000);
    const rate = elapsedS >= 0.2 && done > 0 ? done / elapsedS : undefined;
    const etaS = o.total !== undefined && rate !== undefined && rate > 0 ? Math.max(0, (o.total - done) / rate) : undefined;
    return { elapsedS, rate, etaS };
  };

  const draw = (t: number, finished: boolean) => {
    const fig = figures(t);
    const line = formatBar({ label: o.label, done, total: o.total, unit: o.unit, note, columns: stream.columns, finished, showRate: o.rate, ...fig });
    // spaces over what is left of a longer previous line (no escape codes needed)
    const pad = drawnLength > line.length ? ' '.repeat(drawnLength - line.length) : '';
    stream.write(`\r${line}${pad}`);
    drawnLength = line.length;
    lastDraw = t;
  };

  const logLine = (t: number, finished: boolean) => {
    const { elapsedS, rate, etaS } = figures(t);
    const round = (v: number | undefined, digits: number) => (v === undefined ? undefined : Number(v.toFixed(digits)));
    o.log?.info(
      {
        progress: o.label,
        done: round(done, 3),
        total: o.total,
        unit: o.unit,
        pct: o.total !== undefined ? round(o.total > 0 ? Math.min(100, (100 * done) / o.total) : 100, 1) : undefined,
        rate: round(rate, 3),
        etaS: finished ? undefined : round(etaS, 0),
        elapsedS: round(elapsedS, 1),
        note,
        ...(finished ? { finished: true } : {}),
      },
      o.label,
    );
    lastLog = t;
  };

  const update = (d: number, n?: string) => {
    if (ended) return;
    done = d;
    if (n !== undefined) note = n;
    const t = now();
    if (tty) {
      if (t - lastDraw >= 1000 / REDRAWS_PER_S) draw(t, false);
    } else if (t - lastLog >= everyMs) logLine(t, false);
  };

  return {
    tty,
    update,
    tick: (n = 1, nt) => update(done + n, nt),
    clear: () => {
      if (!tty || ended || drawnLength === 0) return;
      stream.write(`\r${' '.repeat(drawnLength)}\r`);
      drawnLength = 0;
      lastDraw = -Infinity; // the next update draws at once
    },
    end: (n) => {
      if (ended) return;
      if (n !== undefined) note = n;
      const t = now();
      if (tty) {
        draw(t, true);
        stream.write('\n');
      } else logLine(t, true);
      ended = true;
    },
  };
}
