/**
 * What the syscall-sequence baselines see of a window (pure): the bag of system calls and
 * the bag of thread-aware n-grams (each thread's own call sequence, as LID-DS's thread-aware
 * n-grams; the thread id is not part of the n-gram).
 */
import type { SyscallEvent } from '../shared/event.js';

export interface SyscallBag {
  calls: Map<string, number>;
  ngrams: Map<string, number>;
}

export const newBag = (): SyscallBag => ({ calls: new Map(), ngrams: new Map() });

const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);

/** Folds events into per-window bags; each thread's last n−1 calls carry across windows. */
export class BagFolder {
  readonly windows = new Map<number, SyscallBag>();
  private readonly history = new Map<number, string[]>();

  constructor(
    private readonly windowMs: number,
    private readonly n = 3,
  ) {}

  push(events: readonly SyscallEvent[]): void {
    for (const e of events) {
      const start = Math.floor(e.ts / this.windowMs) * this.windowMs;
      let bag = this.windows.get(start);
      if (!bag) this.windows.set(start, (bag = newBag()));
      const count = e.count ?? 1;
      add(bag.calls, e.call, count);
      let h = this.history.get(e.tid);
      if (!h) this.history.set(e.tid, (h = []));
      // an aggregated event (count > 1) is the same call repeated
      for (let i = 0; i < Math.min(count, this.n); i++) {
        h.push(e.call);
        if (h.length > this.n) h.shift();
        if (h.length === this.n) add(bag.ngrams, h.join(' '), 1);
      }
      if (count > this.n) add(bag.ngrams, h.join(' '), count - this.n);
    }
  }
}
