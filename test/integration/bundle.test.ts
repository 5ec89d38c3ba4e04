/**
 * The air-gapped bundle as an operator uses it. `npm run bundle` makes one archive; on a host
 * with no network (a fresh network namespace holding only lo, made with `unshare -n`) the
 * archive is unpacked and installed under a prefix, and the installed copy alone — its own
 * Node, cwd elsewhere, a bare environment — runs an aggregator and an agent replaying a
 * recorded strace log, lists the stored windows, trains a model on the TensorFlow.js wasm
 * backend and draws a window with Graphviz in wasm. A bundle with one byte changed, or one
 * file added, is refused by install.sh, which names the file. With --root and --role, the
 * release and the role's systemd unit are laid out in an image.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsUnavailable } from './netns.js';

const ROOT = resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const NAME = `distappguard-${pkg.version}-linux-${process.arch}-node${process.versions.node.split('.')[0]}`;
const run = promisify(execFile);
const why = process.platform !== 'linux' ? 'Linux only' : netnsUnavailable();

interface Result { code: number; stdout: string; stderr: string }

/** dist/ is fresh when no TypeScript source is newer than its entry point */
function distIsFresh(): boolean {
  const main = join(ROOT, 'dist/cli/main.js');
  if (!existsSync(main)) return false;
  const built = statSync(main).mtimeMs;
  const newer = (dir: string): boolean =>
    existsSync(dir) &&
    readdirSync(dir, { withFileTypes: true }).some((e) =>
      e.isDirectory() ? newer(join(dir, e.name)) : e.name.endsWith('.ts') && statSync(join(dir, e.name)).mtimeMs > built,
    );
  return !['agent', 'aggregator', 'shared', 'cli', 'bench', 'eval'].some((d) => newer(join(ROOT, d)));
}

/**
 * A recorded strace log (strace -f -ttt -yy): a web process querying a database process over
 * loopback TCP and writing an access log, once a second for 40 s.
 */
function writeTrace(file: string): { windows: number; bytes: number } {
  const T0 = 1_800_000_000;
  const lines: string[] = [];
  const l = (pid: number, t: number, s: string) => lines.push(`${pid}  ${(T0 + t).toFixed(6)} ${s}`);
  l(100, 0, 'execve("/usr/bin/shop-web", ["shop-web"], 0x7ffc5d1e0a10 /* 3 vars */) = 0');
  l(200, 0, 'execve("/usr/bin/shop-db", ["shop-db"], 0x7ffc5d1e0a10 /* 3 vars */) = 0');
  let bytes = 0;
  for (let s = 0; s < 40; s++) {
    const b = 1000 + ((s * 37) % 11) * 50;
    l(100, s + 0.1, `sendto(5<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, "q"..., ${b}, 0, NULL, 0) = ${b}`);
    l(200, s + 0.2, `recvfrom(6<TCP:[127.0.0.1:5432->127.0.0.1:40000]>, "q"..., 65536, 0, NULL, NULL) = ${b}`);
    l(200, s + 0.3, `sendto(6<TCP:[127.0.0.1:5432->127.0.0.1:40000]>, "r"..., ${4 * b}, 0, NULL, 0) = ${4 * b}`);
    l(100, s + 0.4, `recvfrom(5<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, "r"..., 65536, 0, NULL, NULL) = ${4 * b}`);
    l(100, s + 0.5, 'write(7</var/log/shop/access.log>, "GET /"..., 120) = 120');
    bytes += b + 4 * b + 120;
  }
  writeFileSync(file, lines.join('\n') + '\n');
  return { windows: 40, bytes };
}

describe.skipIf(why !== undefined)('air-gapped bundle', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'dag-bundle-'));
  const out = join(tmp, 'out');
  const archive = join(out, `${NAME}.tar.gz`);
  const spare = join(tmp, 'spare');
  let holder: ChildProcess | undefined;
  let aggregator: ChildProcess | undefined;
  let bundleLog = '';

  /**
   * A bare environment: no NODE_PATH, nothing from the project on PATH, a fresh HOME. The
   * system's node (/usr/bin) stays on PATH: the launcher must still run the bundled one.
   */
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: join(tmp, 'home'), LANG: 'C', NO_PRETTY: '1' };

  /** Run a command inside the network namespace with no network. */
  async function offline(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Result> {
    try {
      const r = await run('nsenter', ['-t', String(holder!.pid), '-n', '--', ...cmd], {
        cwd: opts.cwd ?? join(tmp, 'elsewhere'),
        env: { ...env, ...opts.env },
        maxBuffer: 1 << 26,
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }

  /** An unpacked copy of the archive (the one the install test used, or a fresh one). */
  async function spareTree(): Promise<string> {
    if (!existsSync(spare)) {
      mkdirSync(spare);
      expect((await offline(['tar', '-xzf', archive, '-C', spare])).code).toBe(0);
    }
    return join(spare, NAME);
  }

  beforeAll(async () => {
    // one bundle for the whole file; the build only when dist/ is older than the sources
    const fresh = distIsFresh();
    const [cmd, args] = fresh
      ? [process.execPath, [join(ROOT, 'scripts/bundle.mjs'), '--skip-build', '--out', out]]
      : ['npm', ['run', 'bundle', '--', '--out', out]];
    const r = await run(cmd, args as string[], { cwd: ROOT, maxBuffer: 1 << 26 });
    bundleLog = r.stdout + r.stderr;
    process.stdout.write(`bundle (${fresh ? 'dist/ was fresh: --skip-build' : 'npm run bundle'}):\n${r.stdout}`);
    mkdirSync(join(tmp, 'home'));
    mkdirSync(join(tmp, 'elsewhere'));
    // a process holding a new network namespace; every step below enters it with nsenter
    holder = spawn('unshare', ['-n', 'sleep', 'infinity'], { stdio: 'ignore' });
    const ours = readlinkSync('/proc/self/ns/net');
    const deadline = Date.now() + 10_000;
    const inNewNs = () => {
      try {
        return readlinkSync(`/proc/${holder!.pid}/ns/net`) !== ours;
      } catch {
        return false;
      }
    };
    while (!inNewNs() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    expect(inNewNs(), 'unshare -n did not make a network namespace').toBe(true);
  }, 400_000);

  afterAll(() => {
    if (aggregator?.exitCode === null) aggregator.kill('SIGKILL');
    if (holder?.exitCode === null) holder.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  it('is one reproducible archive with its checksum, the runtime dependencies and no dev ones', async () => {
    expect(readdirSync(out).filter((f) => !f.startsWith('.')).sort()).toEqual([`${NAME}.tar.gz`, `${NAME}.tar.gz.sha256`]);
    const sum = await run('sha256sum', ['--check', `${NAME}.tar.gz.sha256`], { cwd: out });
    expect(sum.stdout).toContain(`${NAME}.tar.gz: OK`);
    const size = statSync(archive).size;
    process.stdout.write(`bundle size: ${(size / 1048576).toFixed(1)} MiB\n`);
    expect(bundleLog).toMatch(/MiB archive/);

    // gzip -n: no name, mtime 0 in the gzip header
    const head = Buffer.alloc(10);
    const fd = openSync(archive, 'r');
    readSync(fd, head, 0, 10, 0);
    closeSync(fd);
    expect(head.readUInt32LE(4)).toBe(0);
    expect(head[3] & 0x08).toBe(0); // FNAME not set

    const listing = (await run('tar', ['--numeric-owner', '-tvzf', archive], { maxBuffer: 1 << 26 })).stdout.trim().split('\n');
    const entries = listing.map((line) => {
      const f = line.split(/\s+/);
      return { owner: f[1], date: `${f[3]} ${f[4]}`, path: f.slice(5).join(' ') };
    });
    expect(new Set(entries.map((e) => e.owner))).toEqual(new Set(['0/0']));
    expect(new Set(entries.map((e) => e.date)).size).toBe(1); // one mtime for all
    const paths = entries.map((e) => e.path);
    expect(paths.every((p) => p.startsWith(`${NAME}/`))).toBe(true);
    // name order: tar --sort=name sorts the entries of each folder
    const byFolder = new Map<string, string[]>();
    for (const p of paths) {
      const full = p.replace(/\/$/, '');
      const cut = full.lastIndexOf('/');
      const parent = full.slice(0, Math.max(cut, 0));
      if (!byFolder.has(parent)) byFolder.set(parent, []);
      byFolder.get(parent)!.push(full.slice(cut + 1));
    }
    for (const [, group] of byFolder) expect(group).toEqual([...group].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    const files = new Set(paths.map((p) => p.slice(NAME.length + 1)));
    for (const f of [
      'install.sh', 'SHA256SUMS', 'MANIFEST', 'package.json', 'bin/node', 'bin/distappguard', 'dist/cli/main.js',
      'dist/agent/collectors/bpftrace/syscalls.bt', 'agent/collectors/bpftrace/syscalls.bt', 'proto/distappguard/v1/agent.proto',
      'workload/dag-client.c',
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      'node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm',
      'node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm',
      'node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm',
      'node_modules/@hpcc-js/wasm-graphviz/dist/index.js',
    ]) expect(files.has(f), f).toBe(true);
    if (existsSync(join(ROOT, 'deploy'))) expect([...files].some((f) => f.startsWith('deploy/'))).toBe(true);
    // no devDependencies, no junk
    for (const dev of ['typescript', 'vitest', 'playwright-core', '@types/better-sqlite3', '@bufbuild/buf', 'vite']) {
      expect([...files].some((f) => f.startsWith(`node_modules/${dev}/`)), dev).toBe(false);
    }
    expect([...files].filter((f) => f.endsWith('.map') || f.endsWith('.d.ts'))).toEqual([]);
    expect([...files].some((f) => f.startsWith('node_modules/.bin/'))).toBe(false);
  });

  it('installs and runs with networking off: aggregator and agent from the installed copy only', async () => {
    // the namespace has no network: lo only, and it starts down
    const links = await offline(['ip', '-o', 'link', 'show']);
    expect(links.code, links.stderr).toBe(0);
    expect(links.stdout.trim().split('\n').map((l) => l.split(':')[1].trim())).toEqual(['lo']);
    expect((await offline(['ip', 'link', 'set', 'lo', 'up'])).code).toBe(0);
    const routes = await offline(['ip', 'route', 'show']);
    expect(routes.stdout.trim()).toBe(''); // no default route, nothing but loopback

    const unpack = join(tmp, 'unpack');
    mkdirSync(unpack);
    expect((await offline(['tar', '-xzf', archive, '-C', unpack])).code).toBe(0);
    const prefix = join(tmp, 'opt');
    const inst = await offline([join(unpack, NAME, 'install.sh'), '--prefix', prefix]);
    expect(inst.code, inst.stderr).toBe(0);
    expect(inst.stderr).toMatch(/installed distappguard \d+\.\d+\.\d+/);
    const release = join(prefix, 'releases', NAME);
    expect(existsSync(join(release, 'bin/node'))).toBe(true);
    expect(readFileSync(join(prefix, 'current/MANIFEST'), 'utf8')).toContain(`name: ${NAME}`);
    // installing the same bundle again finds it in place and intact
    const again = await offline([join(unpack, NAME, 'install.sh'), '--prefix', prefix]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('already installed and intact');
    // from here on, only the installed copy (the unpacked tree is moved out of reach; the next
    // tests tamper with it and install it into an image)
    renameSync(unpack, spare);

    const dag = join(prefix, 'bin/distappguard');
    const state = join(tmp, 'state');
    mkdirSync(state);
    const trace = join(tmp, 'trace.strace');
    const want = writeTrace(trace);
    const db = join(state, 'agg.db');
    const port = 20_000 + (process.pid % 20_000);

    aggregator = spawn('nsenter', ['-t', String(holder!.pid), '-n', '--', dag, 'aggregator', '--listen', `127.0.0.1:${port}`, '--db', db, '--grace', '1s'], {
      cwd: join(tmp, 'elsewhere'),
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let aggLog = '';
    aggregator.stderr!.on('data', (b: Buffer) => (aggLog += b.toString()));
    const deadline = Date.now() + 60_000;
    while (!aggLog.includes('aggregator listening') && aggregator.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(aggLog, aggLog).toContain('aggregator listening');
    // nsenter and the launcher exec: the process is the bundled node
    const exe = readFileSync(`/proc/${aggregator.pid}/cmdline`, 'utf8').split('\0')[0];
    expect(readlinkSync(`/proc/${aggregator.pid}/exe`)).toBe(join(release, 'bin/node'));
    expect(exe).toBe(join(release, 'bin/node'));

    const agent = await offline([dag, 'agent', '--aggregator', `127.0.0.1:${port}`, '--replay', `strace:${trace}`, '--window', '1s', '--app', 'shop', '--host-id', 'h1', '--spool', join(state, 'spool.db')]);
    expect(agent.code, agent.stderr).toBe(0);
    expect(agent.stderr).toContain('every window acknowledged');
    aggregator.kill('SIGTERM');
    await new Promise((res) => (aggregator!.exitCode !== null ? res(null) : aggregator!.once('exit', res)));
    expect(aggregator.exitCode, aggLog).toBe(0);

    const windows = await offline([dag, 'windows', '--db', db, '--json']);
    expect(windows.code, windows.stderr).toBe(0);
    const rows = windows.stdout.trim().split('\n').map((l) => JSON.parse(l) as { app: string; hosts: string[]; bytes: number; status: string });
    expect(rows).toHaveLength(want.windows);
    expect(rows.every((r) => r.app === 'shop' && r.hosts.join() === 'h1' && r.status === 'closed')).toBe(true);
    expect(rows.reduce((a, r) => a + r.bytes, 0)).toBe(want.bytes);

    // TensorFlow.js on its wasm backend, the .wasm files read from the installed bundle
    const train = await offline([dag, 'train', '--db', db, '--app', 'shop', '--no-host-models', '--epochs', '10'], { env: { DISTAPPGUARD_TF_BACKEND: 'wasm' } });
    expect(train.code, train.stderr).toBe(0);
    expect(train.stdout).toMatch(/^\s+1 \* shop\s+\(app\)\s+msae .* 40\s+3 /);
    const models = await offline([dag, 'models', '--db', db, '--json']);
    expect(JSON.parse(models.stdout.trim().split('\n')[0]).metrics.training.backend).toBe('wasm');

    // Graphviz compiled to wasm
    const svg = await offline([dag, 'graph', '--db', db, '--app', 'shop', '--window', String(1_800_000_010_500), '--format', 'svg']);
    expect(svg.code, svg.stderr).toBe(0);
    // (Graphviz writes '-' in labels as &#45;)
    expect(svg.stdout).toMatch(/<svg[\s\S]*shop&#45;web[\s\S]*file:\/var\/log\/shop\/access\.log[\s\S]*<\/svg>/);
  }, 400_000);

  it('refuses a bundle with one byte changed or one file added, naming the file', async () => {
    const tree = await spareTree();
    const victim = join(tree, 'dist/cli/main.js');
    const original = readFileSync(victim);
    const changed = Buffer.from(original);
    changed[100] ^= 0x01;
    writeFileSync(victim, changed);
    const prefix = join(tmp, 'opt-tampered');
    const r1 = await offline([join(tree, 'install.sh'), '--prefix', prefix]);
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toMatch(/dist\/cli\/main\.js: FAILED/);
    expect(r1.stderr).toMatch(/refusing to install/);
    expect(existsSync(join(prefix, 'releases', NAME))).toBe(false);
    expect(existsSync(join(prefix, 'current'))).toBe(false);

    writeFileSync(victim, original);
    const extra = join(tree, 'node_modules/pino/extra.js');
    writeFileSync(extra, 'process.exit(0)\n');
    const r2 = await offline([join(tree, 'install.sh'), '--prefix', prefix]);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/node_modules\/pino\/extra\.js/);
    expect(r2.stderr).toMatch(/not listed in SHA256SUMS/);
    expect(existsSync(join(prefix, 'current'))).toBe(false);
    rmSync(extra);

    // and the archive's own checksum catches a changed archive before anything is unpacked
    const copy = join(tmp, 'copy');
    mkdirSync(copy);
    copyFileSync(archive, join(copy, `${NAME}.tar.gz`));
    copyFileSync(`${archive}.sha256`, join(copy, `${NAME}.tar.gz.sha256`));
    const fd = openSync(join(copy, `${NAME}.tar.gz`), 'r+');
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, 4096);
    b[0] ^= 0xff;
    writeSync(fd, b, 0, 1, 4096);
    closeSync(fd);
    await expect(run('sha256sum', ['--check', `${NAME}.tar.gz.sha256`], { cwd: copy })).rejects.toMatchObject({ stdout: expect.stringContaining('FAILED') });
  }, 180_000);

  it.skipIf(!existsSync(join(ROOT, 'cli/install.ts')))('with --root and --role, lays out the release and the role\'s systemd unit in an image', async () => {
    const tree = await spareTree();
    const image = join(tmp, 'image');
    const r = await offline([join(tree, 'install.sh'), '--root', image, '--role', 'agent']);
    expect(r.code, r.stderr).toBe(0);
    // the default prefix, inside the image; every link relative or pointing at the target's paths
    expect(readlinkSync(join(image, 'opt/distappguard/current'))).toBe(`releases/${NAME}`);
    expect(readlinkSync(join(image, 'opt/distappguard/bin/distappguard'))).toBe('../current/bin/distappguard');
    expect(readlinkSync(join(image, 'usr/local/bin/distappguard'))).toBe('/opt/distappguard/bin/distappguard');
    const unit = readFileSync(join(image, 'etc/systemd/system/distappguard-agent.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/opt\/distappguard\/bin\/distappguard agent /m);
    expect(existsSync(join(image, 'etc/distappguard/agent.yaml'))).toBe(true);
    const v = await offline([join(image, 'opt/distappguard/bin/distappguard'), '--version']);
    expect(v.stdout.trim()).toBe(pkg.version);
  }, 180_000);
});
