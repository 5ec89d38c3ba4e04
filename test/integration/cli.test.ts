/**
 * The distappguard program as a user runs it (built into dist/ by `npm test`): subcommands,
 * JSON Lines output, and bad input answered by one clear line, never a stack trace.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildWorkload } from '../../cli/workload.js';
import { freshPorts } from './workload-run.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/cli/main.js');
const LIDDS = resolve(ROOT, '../shared/data/lid-ds-ctf-nginx/training/aggressive_galois_5453');
const run = promisify(execFile);

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN, ...args], { env: { ...process.env, NO_PRETTY: '1', ...env }, maxBuffer: 1 << 26 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe.skipIf(!existsSync(MAIN))('distappguard command line', () => {
  it('lists its subcommands', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['capture', 'import', 'demo']) expect(r.stdout).toContain(c);
  });

  it('captures a command with strace into JSON Lines, one window per line', async () => {
    const w = buildWorkload();
    const { tcpPort, udpPort } = freshPorts();
    const out = join(mkdtempSync(join(tmpdir(), 'dag-cli-')), 'windows.jsonl');
    const file = join(tmpdir(), `dag-cli-${process.pid}.dat`);
    const r = await cli([
      'capture', '--collector', 'strace', '--window', '1s', '--app', 'shop', '--host', 'web-1', '--out', out, '--',
      w.server, '--tcp-port', String(tcpPort), '--udp-port', String(udpPort), '--',
      w.client, '--tcp-port', String(tcpPort), '--udp-port', String(udpPort), '--file', file, '--file-bytes', '5000',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const windows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(windows.length).toBeGreaterThan(0);
    for (const win of windows) {
      expect(win).toMatchObject({ app: 'shop', host: 'web-1', windowMs: 1000 });
      expect(win.windowStart % 1000).toBe(0);
      for (const e of win.edges) {
        expect(Object.keys(e).sort()).toEqual(['bytes', 'count', 'dst', 'dstId', 'kind', 'src', 'srcId']);
        expect(e.srcId).toMatch(/^[0-9a-f]{16}$/);
      }
    }
    const edges = windows.flatMap((w2) => w2.edges);
    expect(edges.filter((e) => e.src === 'dag-client/file-writer' && e.kind === 'file').reduce((a, e) => a + e.bytes, 0)).toBe(5000);
    // the summary names what was read
    expect(r.stderr).toMatch(/"msg":"done/);
  });

  it.skipIf(!existsSync(LIDDS))('imports an LTTng recording', async () => {
    const r = await cli(['import', 'lttng', LIDDS, '--format', 'json', '--window', '5s']);
    expect(r.code, r.stderr).toBe(0);
    const windows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(windows.length).toBeGreaterThanOrEqual(4); // a 20 s recording
    expect(windows.flatMap((w) => w.edges).some((e) => e.src === 'nginx' && e.kind === 'net')).toBe(true);
  });

  it('imports a damaged strace log: reports the bad lines by number, keeps the good ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dag-cli-'));
    const log = join(dir, 'damaged.strace');
    writeFileSync(
      log,
      [
        '4242 1700000000.100000 openat(AT_FDCWD</root>, "/etc/hosts", O_RDONLY) = 3</etc/hosts>',
        '4242 1700000000.200000 read(3</etc/hosts>, "", 4096) = 180',
        'this line is not strace output',
        '4242 1700000000.300000 write(1</dev/pts/0>, "", 10) = 10',
        '4242 1700000001.400000 read(3</etc/hosts>, "", 4096',
      ].join('\n'),
    );
    const r = await cli(['import', 'strace', log, '--format', 'json', '--window', '1s']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/"line":3/);
    const edges = r.stdout.trim().split('\n').flatMap((l) => JSON.parse(l).edges);
    expect(edges.find((e: { src: string }) => e.src === 'file:/etc/hosts')?.bytes).toBe(180);
    expect(edges.find((e: { dst: string }) => e.dst === 'file:/dev/pts/#')?.bytes).toBe(10);
    expect(r.stderr).toMatch(/malformed=1/);
  });

  it.each([
    [['capture'], /give exactly one of/],
    [['capture', '--window', 'soon', '--', 'true'], /--window: 'soon' is not a duration/],
    [['capture', '--pid', 'abc'], /--pid 'abc': not a process id/],
    [['capture', '--collector', 'strace', '--strace', '/nonexistent/strace', '--', 'true'], /strace not found/],
    [['import', 'strace', '/nonexistent.log'], /nonexistent\.log/],
    [['import', 'pcap', '/x'], /format must be 'strace' or 'lttng'/],
    [['import', 'lttng', '/proc/self'], /trace|CTF/i],
  ])('refuses %j with a clear message', async (args, message) => {
    const r = await cli(args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('says so when it may not trace', async () => {
    // as an unprivileged user, attaching to init is refused by the kernel
    const r = await run('runuser', ['-u', 'nobody', '--', process.execPath, MAIN, 'capture', '--collector', 'strace', '--pid', '1', '--duration', '2s'], {
      env: { ...process.env, NO_PRETTY: '1' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Operation not permitted.*(root|CAP_SYS_PTRACE)/);
  });
});
