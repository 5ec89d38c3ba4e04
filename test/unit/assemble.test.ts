import { describe, expect, it } from 'vitest';
import { WindowAssembler, type CloseReason, type WindowKey } from '../../aggregator/assemble.js';

function setup(graceMs = 2000) {
  const closed: [number, CloseReason, string[]][] = [];
  const a = new WindowAssembler(graceMs, (k: WindowKey, r, rep) => closed.push([k.windowStart, r, rep.sort()]));
  return { a, closed };
}
const w = (windowStart: number): WindowKey => ({ app: 'shop', windowStart, windowMs: 1000 });

describe('window assembly', () => {
  it('closes a window as soon as every expected agent reported it', () => {
    const { a, closed } = setup();
    a.expect('shop', 'h1');
    a.expect('shop', 'h2');
    expect(a.add(w(1000), 'h1')).toBe('open');
    expect(closed).toEqual([]);
    a.add(w(1000), 'h2');
    expect(closed).toEqual([[1000, 'complete', ['h1', 'h2']]]);
  });

  it('closes after the grace when an agent is silent, and calls later partials late', () => {
    const { a, closed } = setup(2000);
    a.expect('shop', 'h1');
    a.expect('shop', 'h2');
    a.add(w(1000), 'h1');
    a.tick(3999);
    expect(closed).toEqual([]);
    a.tick(4000);
    expect(closed).toEqual([[1000, 'grace', ['h1']]]);
    expect(a.add(w(1000), 'h2')).toBe('late');
    expect(a.add(w(2000), 'h2')).toBe('open');
  });

  it('stops waiting for an agent that disconnected', () => {
    const { a, closed } = setup();
    a.expect('shop', 'h1');
    a.expect('shop', 'h2');
    a.add(w(1000), 'h1');
    a.forget('shop', 'h2');
    expect(closed).toEqual([[1000, 'complete', ['h1']]]);
  });

  it('keeps applications apart', () => {
    const { a, closed } = setup();
    a.expect('shop', 'h1');
    a.expect('epc', 'h9');
    a.add({ app: 'epc', windowStart: 1000, windowMs: 1000 }, 'h9');
    expect(closed.length).toBe(1);
    a.add(w(1000), 'h9'); // an agent of another app does not complete shop's window
    expect(closed.length).toBe(1);
  });

  it('holds restored windows until their grace runs out', () => {
    const { a, closed } = setup(2000);
    a.restore(w(1000), ['h1'], 10_000);
    a.tick(9_999);
    expect(closed).toEqual([]);
    a.tick(10_000);
    expect(closed).toEqual([[1000, 'grace', ['h1']]]);
  });
});
