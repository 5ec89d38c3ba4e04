/**
 * Real hosts on one machine: three network namespaces joined by veth links, an agent in each
 * tracing real programs with strace (the client on two hosts, the server on the third),
 * talking across namespaces over TCP and UDP; the aggregator in the root namespace on a unix
 * socket. The merged graph must have the cross-host edges between the right thread roles,
 * with the bytes the clients sent in each window.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWorkload } from '../../cli/workload.js';
import { Store } from '../../aggregator/store/index.js';
import { PartialWindowSchema } from '../../shared/gen/distappguard/v1/agent_pb.js';
import { fromWireWindow, PROTOCOL_VERSION } from '../../shared/wire.js';
import { makeHosts, netnsUnavailable, spawnIn, type NsNet } from './netns.js';
import { DEFAULT_TRUTH } from './workload-run.js';

const MAIN = resolve(import.meta.dirname, '../../dist/cli/main.js');
const why = netnsUnavailable();
if (why) console.warn(`multi-host test skipped: ${why}`);

function exited(p: ChildProcess): Promise<number> {
  return new Promise((res) => (p.exitCode !== null ? res(p.exitCode) : p.once('exit', (c) => res(c ?? -1))));
}

async function waitListening(net: NsNet, host: number, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const out = execFileSync('ip', ['netns', 'exec', net.hosts[host].ns, 'ss', '-Hltn', `sport = :${port}`]).toString();
    if (out.trim()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on port ${port} in ${net.hosts[host].ns}`);
}

describe.skipIf(why !== undefined)('three hosts in network namespaces', () => {
  let net: NsNet;
  let dir: string;
  beforeAll(() => {
    net = makeHosts(['h1', 'h2', 'h3']);
    dir = mkdtempSync(join(tmpdir(), 'dag-multi-'));
  });
  afterAll(() => net?.cleanup());

  it('joins the hosts into one graph with cross-host edges between thread roles', async () => {
    const w = buildWorkload();
    const t = { ...DEFAULT_TRUTH, rounds: 3, intervalMs: 700 };
    const [h1, h2, h3] = net.hosts;
    const sock = join(dir, 'agg.sock');
    const db = join(dir, 'agg.db');
    const env = { ...process.env, NO_PRETTY: '1' };
    const agg = spawn(process.execPath, [MAIN, 'aggregator', '--listen', `unix:${sock}`, '--db', db, '--grace', '2s'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let aggLog = '';
    agg.stderr!.on('data', (d) => (aggLog += d));
    await new Promise((r) => setTimeout(r, 800));

    const agent = (h: typeof h1, cmd: string[]) =>
      spawnIn(h, [process.execPath, MAIN, 'agent', '--aggregator', `unix:${sock}`, '--host-id', h.name, '--app', 'shop', '--window', '1s',
        '--collector', 'strace', '--spool', join(dir, `${h.name}.spool`), '--', ...cmd], { env });
    const logs: Record<string, string> = {};
    const watch = (name: string, p: ChildProcess) => {
      logs[name] = '';
      p.stderr!.on('data', (d) => (logs[name] += d));
      p.stdout!.on('data', (d) => (logs[name] += d));
      return p;
    };
    const ports = ['--tcp-port', '7001', '--udp-port', '7002'];
    const server = watch('h2', agent(h2, [w.server, '--host', h2.ip, ...ports, '--tcp-conns', '2', '--udp-senders', '2']));
    await waitListening(net, 1, 7001);
    const client = (h: typeof h1) =>
      agent(h, [w.client, '--host', h2.ip, ...ports, '--file', join(dir, `${h.name}.dat`), '--rounds', String(t.rounds), '--interval-ms', String(t.intervalMs),
        '--file-bytes', String(t.fileBytes), '--tcp-bytes', String(t.tcpBytes), '--udp-bytes', String(t.udpBytes), '--mem-bytes', String(t.memBytes)]);
    const c1 = watch('h1', client(h1));
    const c3 = watch('h3', client(h3));
    const codes = await Promise.all([exited(c1), exited(c3), exited(server)]);
    expect(codes, JSON.stringify(logs, null, 1).slice(0, 4000)).toEqual([0, 0, 0]);
    await new Promise((r) => setTimeout(r, 2500)); // the last windows' grace
    agg.kill('SIGTERM');
    await exited(agg);

    const store = Store.open(db, { readonly: true });
    const windows = store.listWindows({ app: 'shop' });
    const graphs = windows.map((r) => store.windowGraph('shop', r.windowStart)!);
    const sum = (label: string) => graphs.flatMap((g) => g.edges).filter((e) => `${e.src} -> ${e.dst}` === label).reduce((a, e) => a + e.bytes, 0);
    const msg = `${aggLog.slice(-2000)}\n${graphs.map((g) => g.edges.map((e) => `${e.src} -> ${e.dst} ${e.bytes}`).join('\n')).join('\n--\n')}`;
    expect(sum('dag-client/tcp-send -> dag-server/tcp-recv'), msg).toBe(2 * t.tcpBytes);
    expect(sum('dag-client/udp-send -> dag-server/udp-recv'), msg).toBe(2 * t.udpBytes);
    // nothing of the cross-host traffic is left on external roles
    expect(graphs.flatMap((g) => g.edges).filter((e) => /ext:.*700[12]/.test(e.src + e.dst)), msg).toEqual([]);
    // per window: what the clients' agents saw leave their hosts is what the merged edge carries
    for (const r of windows) {
      const g = store.windowGraph('shop', r.windowStart)!;
      let sent = 0;
      for (const p of store.partialsOf('shop', r.windowStart)) {
        const hello = { agentId: p.agentId, host: p.host, app: 'shop', agentVersion: '', protocolVersion: PROTOCOL_VERSION, windowMs: 1000, collector: '' };
        const d = fromWireWindow(fromBinary(PartialWindowSchema, p.body), hello);
        if (!d.ok) throw new Error(d.error.message);
        sent += d.value.window.edges.filter((e) => e.src === 'dag-client/tcp-send' && e.dst.startsWith('net:tcp/private:7001')).reduce((a, e) => a + e.bytes, 0);
      }
      const merged = g.edges.filter((e) => e.src === 'dag-client/tcp-send' && e.dst === 'dag-server/tcp-recv').reduce((a, e) => a + e.bytes, 0);
      expect(merged, new Date(r.windowStart).toISOString()).toBe(sent);
      expect(r.hosts.length).toBeGreaterThanOrEqual(1);
    }
    expect(windows.some((r) => r.hosts.length === 3)).toBe(true);
    store.close();
  }, 120_000);
});
