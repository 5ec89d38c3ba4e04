/**
 * The agent's delivery spool on real SQLite files in temp directories: order, persistence,
 * cumulative acks, the size and age bounds (exactly the oldest go, and are reported), and
 * what happens with a corrupt, newer, foreign or locked file.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool, SpoolError, type SpoolLimits } from '../../agent/spool.js';

const BIG: SpoolLimits = { maxBytes: 1 << 30, maxAgeMs: 86_400_000 };

let dir: string;
let file: string;
const open: Spool[] = [];

function openSpool(limits: SpoolLimits = BIG, clock?: () => number): Spool {
  const s = Spool.open(file, limits, clock ? { clock } : {});
  open.push(s);
  return s;
}

/** A body that says which append it was, so a lost or swapped entry shows. */
function body(i: number, size = 100): Uint8Array {
  const b = new Uint8Array(size);
  for (let k = 0; k < size; k++) b[k] = (i * 7 + k) & 0xff;
  return b;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dag-spool-'));
  file = join(dir, 'sub', 'spool.db');
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Spool: order and persistence', () => {
  it('numbers appends from 1 and gives them back in seq order, bodies intact', () => {
    const s = openSpool();
    expect(s.lastSeq()).toBe(0);
    for (let i = 0; i < 5; i++) expect(s.append(1000 * i, body(i))).toEqual({ seq: i + 1, dropped: [] });
    const all = s.pending();
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    all.forEach((e, i) => {
      expect(e.windowStart).toBe(1000 * i);
      expect(Buffer.from(e.body).equals(Buffer.from(body(i)))).toBe(true);
    });
    expect(s.pending(2).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(s.pending(1, 2).map((e) => e.seq)).toEqual([2, 3]);
    expect(s.pending(5)).toEqual([]);
    expect(s.stats()).toMatchObject({ lastSeq: 5, entriesHeld: 5, bytesHeld: 500, oldestSeq: 1, appended: 5, appendedBytes: 500 });
  });

  it('keeps entries, counters and the sequence across close and reopen', () => {
    const a = openSpool();
    a.append(0, body(0));
    a.append(1, body(1));
    a.append(2, body(2));
    a.ack(1);
    a.close();
    const b = openSpool();
    expect(b.lastSeq()).toBe(3);
    expect(b.pending().map((e) => e.seq)).toEqual([2, 3]);
    expect(b.append(3, body(3)).seq).toBe(4);
    expect(b.stats()).toMatchObject({ appended: 4, acked: 1, ackedBytes: 100, entriesHeld: 3, bytesHeld: 300 });
  });

  it('never reuses a seq, even when every entry was acked before the restart', () => {
    const a = openSpool();
    for (let i = 0; i < 3; i++) a.append(i, body(i));
    a.ack(3);
    expect(a.stats().entriesHeld).toBe(0);
    a.close();
    const b = openSpool();
    expect(b.append(9, body(9)).seq).toBe(4);
  });

  it('stores a body given as a view into a larger buffer, exactly the view', () => {
    const s = openSpool();
    const whole = body(1, 64);
    s.append(0, whole.subarray(10, 20));
    expect([...s.pending()[0].body]).toEqual([...whole.subarray(10, 20)]);
  });

  it('refuses bad arguments without changing anything', () => {
    const s = openSpool();
    expect(() => s.append(Number.NaN, body(0))).toThrow(TypeError);
    expect(() => s.append(0, 'x' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => s.ack(1.5)).toThrow(TypeError);
    expect(s.lastSeq()).toBe(0);
    expect(() => Spool.open(join(dir, 'x.db'), { maxBytes: 0, maxAgeMs: 1 })).toThrow(RangeError);
    expect(() => Spool.open(join(dir, 'x.db'), { maxBytes: 1, maxAgeMs: 1, maxEntries: -1 })).toThrow(RangeError);
  });

  it('fails clearly once closed', () => {
    const s = openSpool();
    s.close();
    s.close();
    expect(() => s.append(0, body(0))).toThrow(/closed/);
  });
});

describe('Spool: acknowledgements', () => {
  it('deletes everything up to the acked seq, is idempotent, and counts acks of seqs never issued', () => {
    const s = openSpool();
    for (let i = 0; i < 6; i++) s.append(i, body(i));
    expect(s.ack(3)).toEqual({ removed: 3, bytes: 300, ignored: false });
    expect(s.pending().map((e) => e.seq)).toEqual([4, 5, 6]);
    expect(s.ack(3)).toEqual({ removed: 0, bytes: 0, ignored: false });
    expect(s.ack(2)).toEqual({ removed: 0, bytes: 0, ignored: false });
    expect(s.ack(0)).toEqual({ removed: 0, bytes: 0, ignored: false });
    expect(s.ack(7)).toEqual({ removed: 0, bytes: 0, ignored: true });
    expect(s.pending().map((e) => e.seq)).toEqual([4, 5, 6]);
    expect(s.ack(5)).toEqual({ removed: 2, bytes: 200, ignored: false });
    expect(s.stats()).toMatchObject({ acked: 5, ackedBytes: 500, ackUnknown: 1, entriesHeld: 1, bytesHeld: 100, oldestSeq: 6 });
    s.close();
    expect(openSpool().stats()).toMatchObject({ acked: 5, ackUnknown: 1 });
  });
});

describe('Spool: bounds', () => {
  it('over maxBytes, drops exactly the oldest entries needed and reports them; nothing else is lost', () => {
    const s = openSpool({ maxBytes: 1000, maxAgeMs: 86_400_000 });
    for (let i = 0; i < 10; i++) expect(s.append(i * 10, body(i)).dropped).toEqual([]);
    // 1000 held + 250 = 1250: seqs 1..3 (300 B) must go to get back to 950
    const r = s.append(100, body(10, 250));
    expect(r.seq).toBe(11);
    expect(r.dropped).toEqual([
      { seq: 1, windowStart: 0, bytes: 100, reason: 'size' },
      { seq: 2, windowStart: 10, bytes: 100, reason: 'size' },
      { seq: 3, windowStart: 20, bytes: 100, reason: 'size' },
    ]);
    const held = s.pending();
    expect(held.map((e) => e.seq)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    held.forEach((e) => expect(Buffer.from(e.body).equals(Buffer.from(body(e.seq - 1, e.seq === 11 ? 250 : 100)))).toBe(true));
    expect(s.stats()).toMatchObject({ bytesHeld: 950, entriesHeld: 8, dropped: { size: { entries: 3, bytes: 300 }, age: { entries: 0, bytes: 0 } } });
  });

  it('over maxEntries, drops the oldest one per append', () => {
    const s = openSpool({ maxBytes: 1 << 20, maxAgeMs: 86_400_000, maxEntries: 3 });
    for (let i = 0; i < 3; i++) s.append(i, body(i));
    expect(s.append(3, body(3)).dropped).toEqual([{ seq: 1, windowStart: 0, bytes: 100, reason: 'size' }]);
    expect(s.append(4, body(4)).dropped.map((d) => d.seq)).toEqual([2]);
    expect(s.pending().map((e) => e.seq)).toEqual([3, 4, 5]);
  });

  it('drops a body larger than maxBytes by itself instead of emptying the spool for it', () => {
    const s = openSpool({ maxBytes: 1000, maxAgeMs: 86_400_000 });
    s.append(0, body(0));
    s.append(1, body(1));
    const r = s.append(2, body(2, 1001));
    expect(r).toEqual({ seq: 3, dropped: [{ seq: 3, windowStart: 2, bytes: 1001, reason: 'size' }] });
    expect(s.pending().map((e) => e.seq)).toEqual([1, 2]);
    expect(s.append(3, body(3)).seq).toBe(4);
    expect(s.stats()).toMatchObject({ entriesHeld: 3, bytesHeld: 300, dropped: { size: { entries: 1, bytes: 1001 } } });
  });

  it('drops entries older than maxAgeMs, on append and on expire(now), by time of append', () => {
    let now = 1_000_000;
    const s = openSpool({ maxBytes: 1 << 20, maxAgeMs: 1500 }, () => now);
    s.append(5, body(1)); // appended at t=0 (relative), window start is irrelevant to age
    now += 1000;
    s.append(6, body(2)); // t=1000
    now += 1000;
    s.append(7, body(3)); // t=2000: seq 1 is 2000 old > 1500
    expect(s.pending().map((e) => e.seq)).toEqual([2, 3]);
    now += 400; // t=2400: seq 2 is 1400 old, kept
    expect(s.expire()).toEqual([]);
    expect(s.expire(now + 101)).toEqual([{ seq: 2, windowStart: 6, bytes: 100, reason: 'age' }]);
    expect(s.pending().map((e) => e.seq)).toEqual([3]);
    expect(s.stats()).toMatchObject({ entriesHeld: 1, dropped: { age: { entries: 2, bytes: 200 }, size: { entries: 0 } } });
  });

  it('reports the age drops of an append in its result', () => {
    let now = 0;
    const s = openSpool({ maxBytes: 1 << 20, maxAgeMs: 100 }, () => now);
    s.append(1, body(1));
    s.append(2, body(2));
    now = 500;
    expect(s.append(3, body(3))).toEqual({
      seq: 3,
      dropped: [
        { seq: 1, windowStart: 1, bytes: 100, reason: 'age' },
        { seq: 2, windowStart: 2, bytes: 100, reason: 'age' },
      ],
    });
  });
});

describe('Spool: damaged and unexpected files', () => {
  it('moves a garbage file aside, starts a fresh spool and says so', () => {
    const s0 = openSpool();
    s0.close();
    const garbage = Buffer.alloc(10_000, 0x5a);
    writeFileSync(file, garbage);
    const now = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
    const s = openSpool(BIG, () => now);
    expect(s.recovered).toBeDefined();
    expect(s.recovered!.error).toMatch(/not a database/);
    expect(s.recovered!.movedTo).toBe(`${file}.corrupt-20250102T030405-678Z`);
    expect(readFileSync(s.recovered!.movedTo).equals(garbage)).toBe(true);
    // seqs start above any the old file can have issued (see Spool.open)
    expect(s.recovered!.firstSeq).toBe(now);
    expect(s.append(0, body(0)).seq).toBe(now);
    expect(s.pending().length).toBe(1);
    s.close();
    expect(openSpool().recovered).toBeUndefined();
  });

  it('moves aside a file whose pages are damaged behind a valid header', () => {
    const s0 = openSpool();
    for (let i = 0; i < 50; i++) s0.append(i, body(i, 4000));
    s0.close();
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(8 * 4096);
    // overwrite pages 2..7 (page 1 holds the header and the schema)
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(6 * 4096, 0xa5), 0, 6 * 4096, 4096);
    closeSync(fd);
    const s = openSpool();
    expect(s.recovered).toBeDefined();
    expect(existsSync(s.recovered!.movedTo)).toBe(true);
    expect(s.stats().entriesHeld).toBe(0);
  });

  it('refuses a file from a newer schema and leaves it alone', () => {
    openSpool().append(0, body(0));
    open.pop()!.close();
    const db = new Database(file);
    db.pragma('user_version = 99');
    db.close();
    let err: unknown;
    try {
      Spool.open(file, BIG);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as SpoolError).code).toBe('newer-schema');
    expect((err as Error).message).toMatch(/schema version 99.*knows up to 1/);
    expect(readdirSync(join(dir, 'sub')).filter((f) => f.includes('corrupt'))).toEqual([]);
  });

  it("refuses another program's SQLite database", () => {
    const other = join(dir, 'other.db');
    const db = new Database(other);
    db.exec('CREATE TABLE windows (x)');
    db.close();
    expect(() => Spool.open(other, BIG)).toThrow(expect.objectContaining({ code: 'not-a-spool' }));
  });

  it('refuses a spool that another connection holds', () => {
    openSpool().append(0, body(0));
    expect(() => Spool.open(file, BIG)).toThrow(expect.objectContaining({ code: 'in-use' }));
  });
});
