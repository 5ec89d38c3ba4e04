import { describe, expect, it } from 'vitest';
import { WindowFolder, type WindowAcc, KIND_FILE } from '../../agent/window.js';
import { RoleTable } from '../../agent/role-table.js';
import { fileRole, processRole, threadRole } from '../../agent/roles.js';

function folder(windowMs: number, latenessMs = 0, emitEmpty = true) {
  const closed: WindowAcc[] = [];
  const f = new WindowFolder({ windowMs, latenessMs, emitEmpty }, (w) => closed.push(w));
  return { f, closed };
}

describe('window folding', () => {
  const roles = new RoleTable();
  const t = roles.intern(threadRole(processRole({ exePath: '/bin/a' }), 'w', 'a'));
  const file = roles.intern(fileRole('/x'));

  it('aligns windows to multiples of the length since the epoch', () => {
    const { f, closed } = folder(5000);
    f.addEdge(f.at(1_700_000_003_210), t, file, KIND_FILE, 10, 1);
    f.addEdge(f.at(1_700_000_004_999), t, file, KIND_FILE, 5, 1);
    f.addEdge(f.at(1_700_000_005_000), t, file, KIND_FILE, 7, 1);
    f.flush();
    expect(closed.map((w) => w.start)).toEqual([1_700_000_000_000, 1_700_000_005_000]);
    expect([...closed[0].edges.values()][0]).toMatchObject({ bytes: 15, count: 2 });
    expect([...closed[1].edges.values()][0]).toMatchObject({ bytes: 7, count: 1 });
  });

  it('emits the quiet windows in between, in order', () => {
    const { f, closed } = folder(1000);
    f.at(10_500);
    f.at(13_200);
    f.flush();
    expect(closed.map((w) => [w.start, w.edges.size])).toEqual([[10_000, 0], [11_000, 0], [12_000, 0], [13_000, 0]]);
  });

  it('closes a window only after the lateness, and folds later stragglers into the oldest open window', () => {
    const { f, closed } = folder(1000, 500);
    f.addEdge(f.at(1_200), t, file, KIND_FILE, 1, 1);
    f.advance(2_400); // 1000..2000 ended 400 ms ago: still open
    expect(closed).toHaveLength(0);
    f.addEdge(f.at(1_900), t, file, KIND_FILE, 1, 1);
    f.advance(2_600);
    expect(closed.map((w) => w.start)).toEqual([1_000]);
    const late = f.at(1_950);
    expect(late.start).toBe(2_000);
    f.addEdge(late, t, file, KIND_FILE, 3, 1);
    f.flush();
    expect(closed[1].lateEvents).toBe(1);
    expect([...closed[1].edges.values()][0].bytes).toBe(3);
    expect([...closed[0].edges.values()][0].bytes).toBe(2);
  });

  it('starts live windows at begin() even before events', () => {
    const { f, closed } = folder(1000);
    f.begin(5_300);
    f.advance(8_100);
    expect(closed.map((w) => w.start)).toEqual([5_000, 6_000, 7_000]);
  });

  it('gives an event traced just before begin() its own window, until the first window closes', () => {
    const { f, closed } = folder(1000);
    f.begin(5_300);
    // the traced program ran before the collector was ready: its first event is at 4,950
    expect(f.at(4_950).start).toBe(4_000);
    f.advance(6_100);
    expect(closed.map((w) => [w.start, w.lateEvents])).toEqual([[4_000, 0], [5_000, 0]]);
    // once windows have closed, an event before them is late, folded into the oldest open one
    const late = f.at(3_500);
    expect(late.start).toBe(6_000);
    expect(late.lateEvents).toBe(1);
  });

  it('refuses a zero window', () => {
    expect(() => folder(0)).toThrow(/window length/);
  });
});
