/**
 * A full disk under the aggregator's database, then under an agent's spool (small tmpfs
 * mounts filled by a file): each side logs it, keeps running, and once space is back every
 * window reaches the store — nothing accepted is lost.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const main = resolve(import.meta.dirname, '../../dist/cli/main.js');
const root = process.getuid?.() === 0;
const hasStrace = spawnSync('strace', ['-V']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'dag-diskfull-'));
const mounts: string[] = [];

function tmpfs(name: string, size: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', d], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount tmpfs: ${r.stderr}`);
  mounts.push(d);
  return d;
}

/** Fills the file system holding `d` to the last block; returns the filler's path. */
function fill(d: string): string {
  const f = join(d, 'filler');
  const fd = openSync(f, 'w');
  const chunk = Buffer.alloc(64 << 10);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  }
  try {
    for (;;) writeSync(fd, chunk, 0, 512);
  } catch {
    /* full */
  } finally {
    closeSync(fd);
  }
  const s = statfsSync(d);
  expect(s.bavail).toBe(0);
  return f;
}

afterAll(() => {
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  rmSync(dir, { recursive: true, force: true });
});

interface Proc { p: ChildProcess; out: () => string; exited: Promise<number | null> }
function start(args: string[]): Proc {
  const p = spawn(process.execPath, [main, ...args], { env: { ...process.env, NO_PRETTY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  p.stdout!.on('data', (b) => (text += b));
  p.stderr!.on('data', (b) => (text += b));
  return { p, out: () => text, exited: new Promise((res) => p.on('exit', (c) => res(c))) };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms: number, log: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${log().slice(-4000)}`);
    await sleep(100);
  }
}
const windows = (db: string, app: string): number[] =>
  spawnSync(process.execPath, [main, 'windows', '--db', db, '--app', app, '--json'], { encoding: 'utf8' })
    .stdout.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { windowStart: number }).windowStart).sort((a, b) => a - b);
const agentWindows = (log: string): number => {
  const done = log.split('\n').filter((l) => l.includes('agent done')).pop();
  return done ? (JSON.parse(done) as { windows: number }).windows : -1;
};

/** An aggregator on a unix socket, ready. */
async function aggregator(db: string, sock: string): Promise<Proc> {
  const agg = start(['aggregator', '--db', db, '--listen', `unix:${sock}`, '--grace', '1s', '--http-listen', 'off']);
  await until('the aggregator', () => agg.out().includes('aggregator listening'), 20_000, agg.out);
  return agg;
}

/** A live agent: strace on a small shell loop, 1 s windows. */
const liveAgent = (sock: string, host: string, app: string, spool: string): Proc =>
  start(['agent', '--aggregator', `unix:${sock}`, '--host-id', host, '--app', app, '--window', '1s', '--collector', 'strace',
    '--spool', spool, '--drain-timeout', '60s', '--http-listen', 'off', '--no-local-detection',
    '--', 'sh', '-c', 'while true; do echo x > /dev/null; sleep 0.05; done']);

describe.skipIf(!root || !hasStrace)('a full disk', () => {
  it("under the aggregator's database: commits fail and are logged, the agent keeps its windows, all arrive once space is back", async () => {
    const dbDir = tmpfs('db', '6m');
    const sock = join(dir, 'agg.sock');
    const db = join(dbDir, 'agg.db');
    const agg = await aggregator(db, sock);
    try {
      const filler = fill(dbDir);
      const agent = liveAgent(sock, 'h1', 'full', join(dir, 'a1.spool')); // its spool on the normal disk
      await until('a failed commit', () => /disk is full|SQLITE_FULL/i.test(agg.out()), 30_000, () => agg.out() + agent.out());
      await sleep(3000);
      expect(agg.p.exitCode, 'the aggregator is still running').toBeNull();
      expect(agent.p.exitCode, 'the agent is still running').toBeNull();
      rmSync(filler);
      await sleep(4000);
      agent.p.kill('SIGTERM');
      expect(await agent.exited, agent.out().slice(-3000)).toBe(0);
      expect(agent.out()).toContain('every window acknowledged');
      const produced = agentWindows(agent.out());
      expect(produced).toBeGreaterThan(5);
      await sleep(2500); // the last window's grace
      const stored = windows(db, 'full');
      expect(stored.length, agg.out().slice(-3000)).toBe(produced);
      // one window a second, none missing
      for (let i = 1; i < stored.length; i++) expect(stored[i] - stored[i - 1]).toBe(1000);
    } finally {
      agg.p.kill('SIGTERM');
      await agg.exited;
    }
  }, 120_000);

  it("under an agent's spool: the agent logs it, keeps tracing with windows in memory, and delivers them once space is back", async () => {
    const spoolDir = tmpfs('spool', '4m');
    const sock = join(dir, 'agg2.sock');
    const db = join(dir, 'agg2.db');
    const agg = await aggregator(db, sock);
    try {
      const agent = liveAgent(sock, 'h2', 'spoolfull', join(spoolDir, 'a2.spool'));
      await until('the first window delivered', () => windows(db, 'spoolfull').length > 0, 30_000, () => agg.out() + agent.out());
      const filler = fill(spoolDir);
      await until('a failed spool write', () => agent.out().includes('cannot write the spool'), 30_000, agent.out);
      await sleep(3000);
      expect(agent.p.exitCode, 'the agent is still running').toBeNull();
      rmSync(filler);
      await until('the spool taking writes again', () => agent.out().includes('the spool takes writes again'), 15_000, agent.out);
      agent.p.kill('SIGTERM');
      expect(await agent.exited, agent.out().slice(-3000)).toBe(0);
      expect(agent.out()).toContain('every window acknowledged');
      const produced = agentWindows(agent.out());
      await sleep(2500);
      const stored = windows(db, 'spoolfull');
      expect(stored.length).toBe(produced);
      for (let i = 1; i < stored.length; i++) expect(stored[i] - stored[i - 1]).toBe(1000);
    } finally {
      agg.p.kill('SIGTERM');
      await agg.exited;
    }
  }, 120_000);
});
