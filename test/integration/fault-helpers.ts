/**
 * Helpers for the fault tests (faults.test.ts): processes from dist/ with their JSON logs,
 * a certificate authority made with openssl, a unix-socket proxy that can cut a stream
 * without closing it, a read-only look at an agent's spool, and the "every window stored
 * exactly once" check over the aggregator's SQLite file.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../aggregator/store/index.js';
import { spawnIn, type NsHost } from '../../cli/netns.js';

export const MAIN = resolve(import.meta.dirname, '../../dist/cli/main.js');
const ENV = { ...process.env, NO_PRETTY: '1' };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, pred: () => boolean, timeoutMs: number, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: number; time?: number };

/** A process from dist/cli/main.js, in its own process group (so cleanup reaches its children). */
export class Proc {
  out = '';
  readonly exited: Promise<number | string>;
  constructor(
    readonly name: string,
    readonly p: ChildProcess,
  ) {
    p.stdout?.on('data', (d) => (this.out += d));
    p.stderr?.on('data', (d) => (this.out += d));
    this.exited = new Promise((res) => p.once('exit', (code, sig) => res(code ?? sig ?? -1)));
  }
  get pid(): number {
    return this.p.pid!;
  }
  get running(): boolean {
    return this.p.exitCode === null && this.p.signalCode === null;
  }
  /** JSON log lines (pino), other lines skipped */
  lines(): LogLine[] {
    const r: LogLine[] = [];
    for (const l of this.out.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        r.push(JSON.parse(l) as LogLine);
      } catch {
        /* a line cut by the buffer: skip */
      }
    }
    return r;
  }
  has(msg: string | RegExp): boolean {
    return this.lines().some((l) => (typeof msg === 'string' ? l.msg?.startsWith(msg) : msg.test(l.msg ?? '')));
  }
  /** signal only the process itself (for an agent: not its strace and traced programs) */
  signal(sig: NodeJS.Signals): void {
    if (this.running) process.kill(this.pid, sig);
  }
  /** SIGKILL the whole process group: the process, strace, the traced programs */
  killGroup(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  tail(n = 3000): string {
    return `--- ${this.name} ---\n${this.out.slice(-n)}`;
  }
}

/** Every process started, for cleanup even when a test fails. */
export const started: Proc[] = [];

export function killAll(): void {
  for (const p of started) p.killGroup();
}

export interface TlsPaths {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/**
 * A CA, a server certificate for `ip` (SAN IP:ip) and a client certificate for the agent whose
 * host id is `clientHost` (its CN: the aggregator binds the certificate to that host), made with openssl.
 */
export function makeCerts(dir: string, ip: string, clientHost = 'agent'): TlsPaths {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=distappguard-test-ca');
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth\n`);
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [['server', 'aggregator'], ['client', clientHost]]) {
    ssl('req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  }
  return { ca: join(dir, 'ca.pem'), serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server.key'), clientCert: join(dir, 'client.pem'), clientKey: join(dir, 'client.key') };
}

export function startAggregator(name: string, listen: string, db: string, extra: string[] = []): Proc {
  const p = spawn(process.execPath, [MAIN, 'aggregator', '--listen', listen, '--db', db, '--grace', '2s', ...extra], {
    env: ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const proc = new Proc(name, p);
  started.push(proc);
  return proc;
}

export async function aggregatorUp(a: Proc, timeoutMs = 10_000): Promise<void> {
  await waitFor(`${a.name} listening`, () => a.has('aggregator listening') || !a.running, timeoutMs, 50);
  if (!a.running) throw new Error(`${a.name} did not start\n${a.tail()}`);
}

export interface AgentSpec {
  host: NsHost;
  /** agent and host id */
  id: string;
  aggregator: string;
  spool: string;
  command: string[];
  extra?: string[];
}

export function startAgent(name: string, s: AgentSpec): Proc {
  const p = spawnIn(
    s.host,
    [
      process.execPath, MAIN, 'agent', '--aggregator', s.aggregator, '--host-id', s.id, '--app', 'shop', '--window', '1s',
      '--collector', 'strace', '--spool', s.spool, ...(s.extra ?? []), '--', ...s.command,
    ],
    { env: ENV, detached: true },
  );
  const proc = new Proc(name, p);
  started.push(proc);
  return proc;
}

export interface AgentDone {
  windows: number;
  link: { sent: number; resent: number; acked: number; connects: number; reconnects: number; droppedEntries: number; droppedBytes: number; lastError: string };
  spool: { lastSeq: number; entriesHeld: number; appended: number; acked: number; dropped: { size: { entries: number; bytes: number }; age: { entries: number; bytes: number } } };
  drained: boolean;
}

/** The agent's final `agent done…` line. */
export function agentDone(a: Proc): AgentDone {
  const l = a.lines().find((x) => x.msg?.startsWith('agent done'));
  if (!l) throw new Error(`${a.name} logged no 'agent done' line\n${a.tail()}`);
  return l as unknown as AgentDone;
}

export function listening(h: NsHost, port: number): boolean {
  return execFileSync('ip', ['netns', 'exec', h.ns, 'ss', '-Hltn', `sport = :${port}`]).toString().trim() !== '';
}

/** What an agent's spool file holds, read without opening it as a Spool (no recovery, no writes). */
export function readSpool(file: string): { lastSeq: number; appended: number; held: number[] } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const st = db.prepare('SELECT last_seq AS lastSeq, appended FROM state WHERE id = 1').get() as { lastSeq: number; appended: number };
    const held = (db.prepare('SELECT seq FROM entries ORDER BY seq').all() as { seq: number }[]).map((r) => r.seq);
    return { ...st, held };
  } finally {
    db.close();
  }
}

export interface StoredFigures {
  /** seqs stored per agent, ascending */
  seqs: Map<string, number[]>;
  partials: number;
  windows: number;
  /** windows whose partials are there but which are not closed with a merged graph over all their hosts */
  problems: string[];
}

/**
 * Everything the aggregator's file holds for `app`, window by window (listWindows,
 * partialsOf), checked: every window closed, its merged graph there, merged over the hosts
 * of all its stored partials; and the partials table holds nothing outside those windows.
 */
export function stored(dbFile: string, app = 'shop'): StoredFigures {
  const store = Store.open(dbFile, { readonly: true });
  const seqs = new Map<string, number[]>();
  const problems: string[] = [];
  let partials = 0;
  let windows = 0;
  try {
    for (const w of store.listWindows({ app })) {
      windows++;
      const at = new Date(w.windowStart).toISOString();
      const ps = store.partialsOf(app, w.windowStart);
      for (const p of ps) {
        partials++;
        const l = seqs.get(p.agentId) ?? [];
        l.push(p.seq);
        seqs.set(p.agentId, l);
      }
      if (w.status !== 'closed') problems.push(`${at}: status ${w.status}`);
      const g = store.windowGraph(app, w.windowStart);
      if (!g) problems.push(`${at}: no merged graph`);
      const hosts = [...new Set(ps.map((p) => p.host))].sort();
      if (g && JSON.stringify(g.hosts) !== JSON.stringify(hosts)) problems.push(`${at}: merged over ${g.hosts.join(',')} but partials from ${hosts.join(',')}`);
      if (ps.length === 0) problems.push(`${at}: a window without partials`);
    }
  } finally {
    store.close();
  }
  const raw = new Database(dbFile, { readonly: true });
  try {
    const n = (raw.prepare('SELECT count(*) AS n FROM partials WHERE app = ?').get(app) as { n: number }).n;
    if (n !== partials) problems.push(`${n} partials in the table, ${partials} reachable through the windows`);
  } finally {
    raw.close();
  }
  for (const l of seqs.values()) l.sort((a, b) => a - b);
  return { seqs, partials, windows, problems };
}

export const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** Every window of an app closed (none left 'open'): read-only, while the aggregator runs. */
export function allClosed(dbFile: string, app = 'shop'): boolean {
  if (!existsSync(dbFile)) return false;
  const store = Store.open(dbFile, { readonly: true });
  try {
    const ws = store.listWindows({ app });
    return ws.length > 0 && ws.every((w) => w.status === 'closed');
  } finally {
    store.close();
  }
}

/**
 * A unix-socket proxy between agents and the aggregator standing in for a network that can
 * fail silently: `cut()` makes every open connection swallow what it is sent, in both
 * directions, without closing (a partition: nothing arrives, nobody is told). When the
 * agent's end then closes, the aggregator's end is closed too, and what was swallowed is
 * gone. New connections after `heal()` pass normally.
 */
export class CutProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<{ a: Socket; b: Socket; cut: boolean }>();
  private isCut = false;
  swallowedBytes = 0;
  connections = 0;

  constructor(
    readonly path: string,
    private readonly target: string,
  ) {}

  async start(): Promise<void> {
    if (existsSync(this.path)) unlinkSync(this.path);
    this.server = createServer((a) => {
      this.connections++;
      const b = connect(this.target);
      const pair = { a, b, cut: this.isCut };
      this.pairs.add(pair);
      const pipe = (from: Socket, to: Socket) =>
        from.on('data', (d) => {
          if (pair.cut) this.swallowedBytes += d.length;
          else to.write(d);
        });
      pipe(a, b);
      pipe(b, a);
      const end = () => {
        this.pairs.delete(pair);
        a.destroy();
        b.destroy();
      };
      a.on('close', end).on('error', end);
      b.on('close', end).on('error', end);
    });
    await new Promise<void>((res) => this.server!.listen(this.path, res));
  }

  cut(): void {
    this.isCut = true;
    for (const p of this.pairs) p.cut = true;
  }

  heal(): void {
    this.isCut = false; // connections already cut stay cut, as their streams are broken
  }

  async stop(): Promise<void> {
    for (const p of this.pairs) {
      p.a.destroy();
      p.b.destroy();
    }
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
  }
}

/** When each partial of an agent was committed (received_at), for the outage test's timeline. */
export function partialTimes(dbFile: string, agentId: string): { seq: number; windowStart: number; windowMs: number; receivedAt: number }[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare('SELECT seq, window_start AS windowStart, window_ms AS windowMs, received_at AS receivedAt FROM partials WHERE agent_id = ? ORDER BY seq')
      .all(agentId) as { seq: number; windowStart: number; windowMs: number; receivedAt: number }[];
  } finally {
    db.close();
  }
}
