/**
 * Window assembly per application: a window closes when every expected agent has reported
 * it, or once its grace period after the window's end has passed. A partial for a window
 * that has closed is late: still stored, counted, and the window is merged again.
 *
 * Expected agents are those connected for the application now; one that drops out stops
 * holding windows up, and what it sends after reconnecting arrives as late partials.
 * No I/O, no timers: the caller feeds it events and the clock.
 */

export interface WindowKey {
  app: string;
  windowStart: number;
  windowMs: number;
}

export type CloseReason = 'complete' | 'grace';

interface Pending {
  key: WindowKey;
  reported: Set<string>;
  deadline: number;
}

export class WindowAssembler {
  private readonly expected = new Map<string, Set<string>>();
  private readonly open = new Map<string, Pending>();
  /** windows closed per app (by start), so a partial for one of them is known late */
  private readonly closed = new Map<string, Map<number, true>>();

  constructor(
    private readonly graceMs: number,
    private readonly onClose: (key: WindowKey, reason: CloseReason, reported: string[]) => void,
  ) {}

  expect(app: string, agentId: string): void {
    let s = this.expected.get(app);
    if (!s) this.expected.set(app, (s = new Set()));
    s.add(agentId);
  }

  /** An agent went away: the windows it held up may now be complete. */
  forget(app: string, agentId: string): void {
    this.expected.get(app)?.delete(agentId);
    for (const [k, p] of this.open) if (p.key.app === app) this.maybeClose(k, p);
  }

  expectedAgents(app: string): string[] {
    return [...(this.expected.get(app) ?? [])];
  }

  /** A partial was committed. Returns 'late' when its window had already closed. */
  add(key: WindowKey, agentId: string): 'open' | 'late' {
    const k = `${key.app}\u0000${key.windowStart}`;
    if (this.isClosed(key.app, key.windowStart)) return 'late';
    let p = this.open.get(k);
    if (!p) {
      p = { key, reported: new Set(), deadline: key.windowStart + key.windowMs + this.graceMs };
      this.open.set(k, p);
    }
    p.reported.add(agentId);
    this.maybeClose(k, p);
    return 'open';
  }

  /** Close every window whose grace has run out by `now`. */
  tick(now: number): void {
    for (const [k, p] of [...this.open].sort((a, b) => a[1].key.windowStart - b[1].key.windowStart)) {
      if (p.deadline <= now) this.close(k, p, 'grace');
    }
  }

  /** Windows recovered from storage after a restart: held open until their grace runs out. */
  restore(key: WindowKey, reported: string[], now: number): void {
    const k = `${key.app}\u0000${key.windowStart}`;
    const p: Pending = { key, reported: new Set(reported), deadline: Math.max(now, key.windowStart + key.windowMs + this.graceMs) };
    this.open.set(k, p);
    this.maybeClose(k, p);
  }

  get openWindows(): number {
    return this.open.size;
  }

  private maybeClose(k: string, p: Pending): void {
    const exp = this.expected.get(p.key.app);
    if (!exp || exp.size === 0) return; // nobody to wait for: the grace decides
    for (const a of exp) if (!p.reported.has(a)) return;
    this.close(k, p, 'complete');
  }

  private close(k: string, p: Pending, reason: CloseReason): void {
    this.open.delete(k);
    let c = this.closed.get(p.key.app);
    if (!c) this.closed.set(p.key.app, (c = new Map()));
    c.set(p.key.windowStart, true);
    // remember a bounded number of closed windows; older ones are found closed in the store
    if (c.size > 10_000) c.delete(c.keys().next().value!);
    this.onClose(p.key, reason, [...p.reported]);
  }

  isClosed(app: string, windowStart: number): boolean {
    return this.closed.get(app)?.has(windowStart) === true;
  }
}
