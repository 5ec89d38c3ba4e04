/**
 * Ground truth on real processes: the bundled workload (two C programs, named threads)
 * moves known byte counts through a file, TCP, UDP and memory; each live collector must
 * report exactly those counts on edges between the right roles.
 */
import { describe, expect, it } from 'vitest';
import { normalisePath } from '../../agent/roles.js';
import { ebpfAvailable } from '../../agent/collectors/ebpf.js';
import { DEFAULT_TRUTH, edgeTotals, freshPorts, runWorkload } from './workload-run.js';

const ebpf = await ebpfAvailable();
if (!ebpf.ok) console.warn(`eBPF ground-truth test skipped: ${ebpf.reason}`);

describe.each([
  { collector: 'strace' as const, skip: false },
  { collector: 'ebpf' as const, skip: !ebpf.ok },
])('live capture with $collector', ({ collector, skip }) => {
  it.skipIf(skip)('puts exactly the bytes the programs moved on the right edges', async () => {
    const t = DEFAULT_TRUTH;
    const run = await runWorkload(collector, t);
    expect(run.exitCode).toBe(0);
    const totals = edgeTotals(run.windows);
    const bytes = (k: string) => totals.get(k)?.bytes;
    const file = `file:${normalisePath(run.file)}`;
    const msg = `edges seen:\n${[...totals].map(([k, v]) => `${k} = ${v.bytes}`).join('\n')}`;

    expect(bytes(`dag-client/file-writer -> ${file} file`), msg).toBe(t.fileBytes);
    expect(bytes(`dag-client/tcp-send -> net:tcp/loopback:${run.tcpPort} net`), msg).toBe(t.tcpBytes);
    expect(bytes(`net:tcp/loopback:*→:${run.tcpPort} -> dag-server/tcp-recv net`), msg).toBe(t.tcpBytes);
    expect(bytes(`dag-client/udp-send -> net:udp/loopback:${run.udpPort} net`), msg).toBe(t.udpBytes);
    // one call per datagram that carried data (the empty end-of-stream datagram moves nothing)
    const datagrams = Array.from({ length: t.rounds }, (_, r) => Math.ceil((Math.floor(t.udpBytes / t.rounds) + (r < t.udpBytes % t.rounds ? 1 : 0)) / t.udpSize)).reduce((a, b) => a + b, 0);
    expect(totals.get(`dag-client/udp-send -> net:udp/loopback:${run.udpPort} net`)?.count, msg).toBe(datagrams);
    expect(bytes(`net:udp/loopback:*→:${run.udpPort} -> dag-server/udp-recv net`), msg).toBe(t.udpBytes);
    expect(bytes('dag-client/mem-release -> mem:dag-client mem'), msg).toBe(t.memBytes);
    expect(bytes('mem:dag-client -> dag-client/mem-release mem'), msg).toBe(t.memBytes);

    // windows are aligned and consecutive
    for (const w of run.windows) expect(w.windowStart % 1000).toBe(0);
    for (let i = 1; i < run.windows.length; i++) expect(run.windows[i].windowStart - run.windows[i - 1].windowStart).toBe(1000);
    // the traffic spans two rounds 300 ms apart: it is spread over the windows it happened in
    expect(run.windows.filter((w) => w.edges.length > 0).length).toBeGreaterThanOrEqual(1);

    // flows for the aggregator: the TCP connection seen from both ends, with real ports
    const flows = run.windows.flatMap((w) => w.flows);
    const sent = flows.filter((f) => f.proto === 'tcp' && f.remote.port === run.tcpPort && f.role === 'dag-client/tcp-send');
    expect(sent.reduce((a, f) => a + f.bytesOut, 0)).toBe(t.tcpBytes);
    const got = flows.filter((f) => f.proto === 'tcp' && f.local.port === run.tcpPort && f.role === 'dag-server/tcp-recv');
    expect(got.reduce((a, f) => a + f.bytesIn, 0)).toBe(t.tcpBytes);
    expect(got[0].remote.port).toBe(sent[0].local.port);
  });
});

describe.skipIf(!ebpf.ok)('strace and eBPF agree', () => {
  it('give the same edges with the same byte counts for the same programs', async () => {
    const ports = freshPorts();
    const s = edgeTotals((await runWorkload('strace', DEFAULT_TRUTH, ports)).windows);
    const e = edgeTotals((await runWorkload('ebpf', DEFAULT_TRUTH, ports)).windows);
    const view = (m: typeof s) => [...m].map(([k, v]) => `${k} = ${v.bytes} [${v.srcId}>${v.dstId}]`).sort();
    expect(view(e)).toEqual(view(s));
  });
});
