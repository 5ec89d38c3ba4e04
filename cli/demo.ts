/**
 * The demo a new user runs first: three hosts on this machine (network namespaces joined by
 * a bridge), an agent on each tracing the bundled workload live — a client on h1 and h3, the
 * server on h2 — and the aggregator in this process with an embedded SQLite file, printing
 * each window's application-wide graph as it is merged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorServer } from '../aggregator/server.js';
import { Store } from '../aggregator/store/index.js';
import { mergedTable } from './format.js';
import { makeHosts, netnsUnavailable, spawnIn, type NsHost } from './netns.js';
import { buildWorkload } from './workload.js';

export interface DemoOptions {
  db: string;
  collector: string;
  rounds: number;
  window: string;
  log: Logger;
}

function exited(p: ChildProcess): Promise<number> {
  return new Promise((res) => (p.exitCode !== null ? res(p.exitCode) : p.once('exit', (c) => res(c ?? 1))));
}

export async function distributedDemo(o: DemoOptions): Promise<number> {
  const why = netnsUnavailable();
  if (why) throw new Error(`the demo makes three hosts with network namespaces and ${why}; run it as root, or try 'distappguard demo --local'`);
  const w = buildWorkload();
  const dir = mkdtempSync(join(tmpdir(), 'distappguard-demo-'));
  const main = resolve(fileURLToPath(import.meta.url), '..', 'main.js');
  const net = makeHosts(['h1', 'h2', 'h3']);
  const store = Store.open(o.db);
  const server = new AggregatorServer({ listen: `unix:${join(dir, 'aggregator.sock')}`, store, log: o.log.child({ c: 'aggregator' }), graceMs: 2000,
    onWindow: (m) => process.stdout.write(mergedTable(m)),
  });
  const children: ChildProcess[] = [];
  try {
    await server.start();
    const [h1, h2, h3] = net.hosts;
    const agent = (h: NsHost, cmd: string[]): ChildProcess => {
      const p = spawnIn(h, [process.execPath, main, 'agent', '--aggregator', `unix:${join(dir, 'aggregator.sock')}`, '--host-id', h.name, '--app', 'demo',
        '--window', o.window, '--collector', o.collector, '--spool', join(dir, `${h.name}.spool`), '--', ...cmd], { env: { ...process.env, NO_PRETTY: '1' } });
      const logFile = createWriteStream(join(dir, `${h.name}.log`));
      p.stdout!.pipe(logFile);
      p.stderr!.pipe(logFile);
      children.push(p);
      return p;
    };
    const ports = ['--tcp-port', '7001', '--udp-port', '7002'];
    o.log.info({ hosts: net.hosts.map((h) => `${h.name}=${h.ip}`), db: o.db, logs: dir }, 'demo: three hosts, an agent on each; server on h2, clients on h1 and h3');
    const srv = agent(h2, [w.server, '--host', h2.ip, ...ports, '--tcp-conns', '2', '--udp-senders', '2']);
    await new Promise((r) => setTimeout(r, 1500)); // the server listens before the clients connect
    const client = (h: NsHost) =>
      agent(h, [w.client, '--host', h2.ip, ...ports, '--file', join(dir, `${h.name}.dat`), '--rounds', String(o.rounds), '--interval-ms', '1000',
        '--file-bytes', String(100_000 * o.rounds), '--tcp-bytes', String(400_000 * o.rounds), '--udp-bytes', String(30_000 * o.rounds)]);
    const codes = await Promise.all([exited(client(h1)), exited(client(h3)), exited(srv)]);
    await new Promise((r) => setTimeout(r, 2500)); // the last windows' grace
    const windows = store.listWindows({ app: 'demo' }).length;
    o.log.info({ windows, db: o.db, agentExitCodes: codes }, `demo done: ${windows} windows stored; try: distappguard windows --db ${o.db}`);
    return codes.every((c) => c === 0) ? 0 : 1;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await server.stop();
    store.close();
    net.cleanup();
    rmSync(join(dir, 'aggregator.sock'), { force: true });
  }
}
