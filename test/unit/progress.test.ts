/**
 * Progress of long commands: at a terminal one line redrawn with \r (bar, %, rate, ETA) and a
 * newline at the end, never wider than the terminal; elsewhere nothing on the stream and
 * structured log lines at most once per interval plus one at the end.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { formatBar, formatBytes, formatSeconds, startProgress } from '../../shared/progress.js';

function fakeTty(columns = 100) {
  const out: string[] = [];
  return { stream: { isTTY: true, columns, write: (s: string) => out.push(s) }, out, text: () => out.join('') };
}

function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: 'info' }, dest), lines };
}

/** A clock the test moves. */
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('formatBar', () => {
  it('shows the bar, the amounts, the percentage, the rate and the ETA', () => {
    const line = formatBar({ label: 'replay', done: 25, total: 100, unit: 'windows', rate: 5, etaS: 15, columns: 120, note: 'mme' });
    expect(line).toBe(`replay [${'#'.repeat(8)}${'.'.repeat(22)}] 25/100 windows  25%  5.0 windows/s  ETA 15s  mme`);
  });

  it('formats bytes and durations, slow rates per minute, and a finished line with its time', () => {
    const line = formatBar({ label: 'x', done: 3 * 1024 * 1024, total: 12 * 1024 * 1024, unit: 'B', rate: 1536 * 1024, etaS: 6, columns: 200 });
    expect(line).toContain('3.0 MiB/12.0 MiB  25%  1.5 MiB/s  ETA 6s');
    expect(formatBar({ label: 'eval', done: 2, total: 10, unit: 'steps', rate: 0.01, etaS: 800, columns: 200 })).toContain('0.6 steps/min  ETA 13m20s');
    expect(formatBar({ label: 'rec', done: 90, total: 600, unit: 's', rate: 1, showRate: false, etaS: 510, columns: 200 })).toContain('1m30s/10m00s  15%  ETA 8m30s');
    expect(formatBar({ label: 'x', done: 10, total: 10, rate: 2, elapsedS: 5, finished: true, columns: 200 })).toMatch(/\[#{30}\] 10\/10  100%  2\.0\/s  in 5s$/);
    expect(formatBytes(512)).toBe('512 B');
    expect(formatSeconds(3725)).toBe('1h02m');
  });

  it('without a total: a counter, its rate and the elapsed time, no bar', () => {
    const line = formatBar({ label: 'import', done: 1234, unit: 'windows', rate: 56, elapsedS: 12, columns: 100 });
    expect(line).toBe('import 1234 windows  56 windows/s  12s');
  });

  it('never reaches the last column of a narrow terminal', () => {
    const f = { label: 'a rather long label for a progress line', done: 40, total: 100, unit: 'windows', rate: 3, etaS: 20, note: 'a note that goes on and on and on' };
    for (const columns of [10, 20, 40, 60, 80]) {
      const line = formatBar({ ...f, columns });
      expect(line.length).toBeLessThanOrEqual(columns - 1);
      expect(line).not.toMatch(/[\r\n\x1b]/);
    }
    expect(formatBar({ ...f, columns: 60 })).toContain('40%');
    expect(formatBar({ ...f, columns: 200 })).toContain('[############');
  });
});

describe('startProgress at a terminal', () => {
  it('redraws one line with \\r, throttled, and ends it with a newline', () => {
    const c = clock();
    const { stream, out, text } = fakeTty(120);
    const { log, lines } = memoryLogger();
    const p = startProgress({ label: 'replay', total: 100, unit: 'windows', log, stream, now: c.now });
    expect(p.tty).toBe(true);
    p.update(0);
    c.advance(1000);
    p.update(10, 'mme.strace');
    const drawn = out.length;
    for (let i = 0; i < 50; i++) p.tick(1); // same instant: no redraw
    expect(out.length).toBe(drawn);
    c.advance(150);
    p.tick(1);
    expect(out.length).toBe(drawn + 1);
    c.advance(2000);
    p.update(100);
    p.end('done');
    const all = text();
    expect(all).toContain('\r');
    expect(all).toMatch(/\[#+\.*\]/);
    expect(all).toMatch(/\d+%/);
    expect(all).toContain('ETA ');
    expect(all).toContain('windows/s');
    expect(all).toContain('mme.strace');
    expect(all.endsWith('\n')).toBe(true);
    expect(all.split('\n').length).toBe(2); // one line only
    expect(all).toMatch(/\r[^\r]*100\/100 windows  100%[^\r]*in 3s  done *\n$/);
    expect(lines).toEqual([]); // nothing logged: the line is the progress
    // after the end, nothing more
    const n = out.length;
    p.update(5);
    p.end();
    expect(out.length).toBe(n);
  });

  it('blanks the line for other output and draws it again at the next update', () => {
    const c = clock();
    const { stream, text } = fakeTty(80);
    const p = startProgress({ label: 'x', stream, now: c.now });
    p.update(1);
    p.clear();
    expect(text()).toMatch(/\r {5,}\r$/);
    p.update(2); // at once, not throttled
    expect(text()).toMatch(/\rx 2 {2}/);
    p.end();
  });

  it('stays within a narrow terminal', () => {
    const c = clock();
    const { stream, text } = fakeTty(24);
    const p = startProgress({ label: 'a long label for a narrow screen', total: 10, stream, now: c.now });
    c.advance(1000);
    p.update(3, 'with a long note as well');
    p.end();
    for (const l of text().split(/[\r\n]/)) expect(l.length).toBeLessThanOrEqual(23);
  });
});

describe('startProgress elsewhere', () => {
  it('writes nothing to the stream and logs at most once per interval, plus the end', () => {
    const c = clock();
    const out: string[] = [];
    const stream = { isTTY: false, write: (s: string) => out.push(s) };
    const { log, lines } = memoryLogger();
    const p = startProgress({ label: 'training shop', total: 200, unit: 'epochs', log, stream, everyMs: 5000, now: c.now });
    expect(p.tty).toBe(false);
    for (let e = 1; e <= 120; e++) {
      c.advance(250); // 30 s in all
      p.update(e, `loss ${(1 / e).toFixed(4)}`);
    }
    p.clear();
    p.end('stopped early at epoch 120');
    expect(out).toEqual([]);
    const progress = lines.filter((l) => l.progress === 'training shop');
    expect(progress.length).toBe(lines.length);
    expect(lines.length).toBe(7); // 30 s / 5 s, and the end
    for (const l of lines) {
      expect(l.msg).toBe('training shop');
      expect(l.level).toBe(30);
      expect(JSON.stringify(l)).not.toMatch(/\\r|\\u001b/);
    }
    expect(lines[0]).toMatchObject({ progress: 'training shop', done: 20, total: 200, unit: 'epochs', pct: 10, rate: 4, etaS: 45, note: 'loss 0.0500' });
    const last = lines[lines.length - 1];
    expect(last).toMatchObject({ done: 120, total: 200, pct: 60, finished: true, note: 'stopped early at epoch 120', elapsedS: 30 });
    expect(last.etaS).toBeUndefined();
  });

  it('logs once at the end of a short job', () => {
    const c = clock();
    const { log, lines } = memoryLogger();
    const p = startProgress({ label: 'replay', log, stream: { write: () => { throw new Error('not at a terminal'); } }, now: c.now });
    p.tick(3);
    c.advance(100);
    p.tick(2);
    p.end();
    expect(lines).toEqual([expect.objectContaining({ progress: 'replay', done: 5, finished: true })]);
  });
});
