/**
 * Configuration and install through the built program: `config check` on good and bad files
 * (exit 0 / 2), `install --root TMP` laying out units that `systemd-analyze verify` accepts,
 * install as root in a private mount namespace (the system user, ownership), and an
 * aggregator and agent started from --config files: the file decides, the environment and a
 * flag override it.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/cli/main.js');
const TRACE = join(ROOT, 'test/fixtures/strace/features.log');
const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'dag-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  // the test's own DISTAPPGUARD_* variables must not leak into the program
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DISTAPPGUARD_')));
  try {
    const r = await run(process.execPath, [MAIN, ...args], { env: { ...base, NO_PRETTY: '1', ...env }, maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as { port: number }).port;
  await new Promise((res) => s.close(res));
  return port;
}

describe.skipIf(!existsSync(MAIN))('config check', () => {
  it('prints ok and the effective configuration, defaults filled in (exit 0)', async () => {
    const p = file('aggregator.yaml', 'listen: 127.0.0.1:7443\ngrace: 2s\nalerts:\n  webhook:\n    - url: https://soc.example.org/hook\n      secretFile: /etc/distappguard/hook.secret\n');
    const r = await cli(['config', 'check', p]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(`ok: ${p} is a valid aggregator configuration\n`);
    const eff = parse(r.stdout);
    expect(eff).toMatchObject({ listen: '127.0.0.1:7443', grace: '2s', db: '/var/lib/distappguard/aggregator/distappguard.db', detection: { model: 'msae', retrainEvery: 0 } });
    expect(eff.alerts.webhook[0]).toEqual({ url: 'https://soc.example.org/hook', secretFile: '/etc/distappguard/hook.secret', timeout: '5s', retries: 5 });
    const json = await cli(['config', 'check', '--format', 'json', p]);
    expect(JSON.parse(json.stdout)).toEqual(eff);
  });

  it('names every problem with its key and line (exit 2)', async () => {
    const p = file('aggregator.yaml', 'listen: 127.0.0.1:7443\nalerts:\n  webhook:\n    - url: ftp://x\n      secretFile: /s\ndetection: {learnAftr: 3}\n');
    const r = await cli(['config', 'check', p]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      `${p}: alerts.webhook[0].url: expected an https:// or http:// URL, got "ftp://x" (line 4)`,
      `${p}: detection.learnAftr: unknown key (did you mean "learnAfter"?) (line 6)`,
      `${p}: 2 problems (aggregator configuration)`,
      '',
    ]);
  });

  it('YAML syntax errors, missing files and unknown kinds (exit 2)', async () => {
    const bad = await cli(['config', 'check', file('agent.yaml', 'aggregator: a:1\ntarget: {pids: [1}\n')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/agent\.yaml: line 2, column \d+: .+ \(YAML syntax\)/);
    const missing = await cli(['config', 'check', join(tmp, 'nope.yaml')]);
    expect([missing.code, missing.stderr]).toEqual([2, `${join(tmp, 'nope.yaml')}: cannot read the configuration file: no such file\n`]);
    const which = await cli(['config', 'check', file('x.yaml', 'tls: {cert: a, key: b, ca: c}\n')]);
    expect(which.code).toBe(2);
    expect(which.stderr).toContain('give --kind agent or --kind aggregator');
    // the kind from the keys, or given
    expect((await cli(['config', 'check', file('x.yaml', 'aggregator: a:1\ntarget: {container: abc}\n')])).stderr).toContain('valid agent configuration');
    expect((await cli(['config', 'check', '--kind', 'aggregator', file('y.yaml', 'aggregator: a:1\n')])).stderr).toContain('aggregator: unknown key');
  });

  it('--env applies the environment as the service would see it', async () => {
    const p = file('aggregator.yaml', 'grace: 2s\n');
    const r = await cli(['config', 'check', '--env', p], { DISTAPPGUARD_GRACE: '3s' });
    expect(parse(r.stdout).grace).toBe('3s');
    expect(parse((await cli(['config', 'check', p], { DISTAPPGUARD_GRACE: '3s' })).stdout).grace).toBe('2s');
  });

  it('the documented defaults pass the check (the agent once told its aggregator and target)', async () => {
    const agg = await cli(['config', 'defaults', 'aggregator']);
    expect((await cli(['config', 'check', file('aggregator.yaml', agg.stdout)])).code).toBe(0);
    const agent = await cli(['config', 'defaults', 'agent']);
    const r = await cli(['config', 'check', file('agent.yaml', agent.stdout)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('aggregator: required');
    expect((await cli(['config', 'check', file('agent.yaml', `${agent.stdout}aggregator: agg:7443\ntarget: {container: abc}\n`)])).code).toBe(0);
    expect(JSON.parse((await cli(['config', 'schema', 'agent'])).stdout).additionalProperties).toBe(false);
  });
});

const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

function verify(...units: string[]): { status: number | null; stderr: string } {
  const r = spawnSync('systemd-analyze', ['verify', ...units], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe.skipIf(!existsSync(MAIN))('install --root', () => {
  it('lays out units, configuration and state; never overwrites a configuration', async () => {
    const root = join(tmp, 'root');
    const r = await cli(['install', 'aggregator', '--root', root, '--prefix', '/opt/dag']);
    expect(r.code, r.stderr).toBe(0);
    const unit = readFileSync(join(root, 'etc/systemd/system/distappguard-aggregator.service'), 'utf8');
    // nothing at the prefix yet: the bundle's launcher, and a note
    expect(unit).toMatch(/^ExecStart=\/opt\/dag\/bin\/distappguard aggregator --config \/etc\/distappguard\/aggregator\.yaml$/m);
    expect(r.stdout).toContain('note     ExecStart runs /opt/dag/bin/distappguard, which is not there yet');
    for (const line of ['User=distappguard', 'StateDirectory=distappguard/aggregator', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=', 'SystemCallFilter=@system-service', 'Restart=on-failure', 'StandardOutput=journal']) {
      expect(unit.split('\n'), line).toContain(line);
    }
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=/m);
    const cfg = join(root, 'etc/distappguard/aggregator.yaml');
    expect(readFileSync(cfg, 'utf8')).toMatch(/^# yaml-language-server: \$schema=\/opt\/dag\/deploy\/schema\/aggregator\.schema\.json$/m);
    expect((statSync(join(root, 'var/lib/distappguard/aggregator')).mode & 0o777).toString(8)).toBe('750');
    expect(r.stdout).toContain('user     distappguard: not created (--root)');
    expect(r.stdout).toContain('systemctl daemon-reload && systemctl enable --now distappguard-aggregator.service');

    // an edited configuration survives a second install; a prepared one goes beside it
    writeFileSync(cfg, 'grace: 9s\n');
    const again = await cli(['install', 'aggregator', '--root', root, '--prefix', '/opt/dag', '--config-from', file('prepared.yaml', 'grace: 7s\n')]);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(cfg, 'utf8')).toBe('grace: 9s\n');
    expect(readFileSync(`${cfg}.new`, 'utf8')).toBe('grace: 7s\n');
    expect(again.stdout).toMatch(/unit {5}\S+distappguard-aggregator\.service: unchanged/);

    // the program copied to the prefix as it is: node runs its main.js
    mkdirSync(join(root, 'opt/plain/dist/cli'), { recursive: true });
    writeFileSync(join(root, 'opt/plain/dist/cli/main.js'), '');
    const plain = await cli(['install', 'aggregator', '--root', root, '--prefix', '/opt/plain', '--node', '/usr/local/bin/node']);
    expect(plain.stdout).not.toContain('not there yet');
    expect(readFileSync(join(root, 'etc/systemd/system/distappguard-aggregator.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/local\/bin\/node \/opt\/plain\/dist\/cli\/main\.js aggregator --config/m);

    // a bad prepared configuration: refused before anything is laid out
    const root2 = join(tmp, 'root2');
    const bad = await cli(['install', 'agent', '--root', root2, '--config-from', file('agent.yaml', 'aggregator: a:1\ncollector: dtrace\ntarget: {pids: [1]}\n')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('collector: expected one of auto, ebpf, strace, got "dtrace"');
    expect(existsSync(root2)).toBe(false);
  });

  it('the agent: eBPF unit, strace drop-in, bounded capabilities', async () => {
    const root = join(tmp, 'root-agent');
    const r = await cli(['install', 'agent', '--root', root, '--collector', 'strace', '--config-from', file('agent.yaml', 'aggregator: agg.example.org:7443\ntarget: {container: abc}\n')]);
    expect(r.code, r.stderr).toBe(0);
    const unit = readFileSync(join(root, 'etc/systemd/system/distappguard-agent.service'), 'utf8');
    expect(unit).toMatch(/^CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_SYS_RESOURCE CAP_SYS_PTRACE CAP_DAC_READ_SEARCH$/m);
    expect(unit).not.toMatch(/^User=/m);
    const dropIn = readFileSync(join(root, 'etc/systemd/system/distappguard-agent.service.d/strace.conf'), 'utf8');
    expect(dropIn).toMatch(/^CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH$/m);
    expect(dropIn).toContain('Environment=DISTAPPGUARD_COLLECTOR=strace');
    expect(readFileSync(join(root, 'etc/distappguard/agent.yaml'), 'utf8')).toContain('agg.example.org:7443');
    expect((statSync(join(root, 'var/lib/distappguard/agent')).mode & 0o777).toString(8)).toBe('700');
  });

  it.skipIf(!hasAnalyze)('systemd-analyze verify accepts the units as laid out (with the drop-in), without a warning', async () => {
    // the bundle's layout: PREFIX/bin/distappguard, on the target (under --root) and here, where verify looks for it
    const root = join(tmp, 'root-verify');
    const prefix = join(tmp, 'opt-dag');
    for (const dir of [join(prefix, 'bin'), join(root, prefix, 'bin')]) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'distappguard'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    }
    const agg = await cli(['install', 'aggregator', '--root', root, '--prefix', prefix]);
    expect(agg.stdout).not.toContain('not there yet');
    expect((await cli(['install', 'agent', '--root', root, '--prefix', prefix, '--collector', 'strace'])).code).toBe(0);
    expect(readFileSync(join(root, 'etc/systemd/system/distappguard-agent.service'), 'utf8')).toContain(`\nExecStart=${prefix}/bin/distappguard agent --config /etc/distappguard/agent.yaml\n`);
    const units = join(root, 'etc/systemd/system');
    const v = verify(join(units, 'distappguard-aggregator.service'), join(units, 'distappguard-agent.service'));
    expect(v.stderr).toBe('');
    expect(v.status).toBe(0);
    // it does look: a misspelt key in the drop-in is reported
    writeFileSync(join(units, 'distappguard-agent.service.d/typo.conf'), '[Service]\nCapabiltyBoundingSet=CAP_BPF\n');
    expect(verify(join(units, 'distappguard-agent.service')).stderr).toContain("Unknown key 'CapabiltyBoundingSet'");
  });
});

// root, in a private mount namespace over a copy of /etc and an empty /var/lib: the real
// install path (useradd, ownership) without touching this machine
const canUnshare = process.geteuid?.() === 0 && spawnSync('unshare', ['-m', 'true']).status === 0 && spawnSync('useradd', ['--help']).status === 0;

describe.skipIf(!existsSync(MAIN) || !canUnshare)('install as root', () => {
  it('creates the system user and gives it the state directory and the configuration', () => {
    const ns = join(tmp, 'ns');
    const script = [
      'set -e',
      `mount -t tmpfs none ${ns}`,
      `cp -a /etc ${ns}/etc && mkdir ${ns}/varlib`,
      `mount --bind ${ns}/etc /etc && mount --bind ${ns}/varlib /var/lib`,
      `${process.execPath} ${MAIN} install aggregator --prefix ${ROOT}`,
      `${process.execPath} ${MAIN} install aggregator --prefix ${ROOT}`,
      'getent passwd distappguard',
      'stat -c "%U:%G %a %n" /var/lib/distappguard/aggregator /etc/distappguard/aggregator.yaml /etc/systemd/system/distappguard-aggregator.service',
    ].join('\n');
    spawnSync('mkdir', ['-p', ns]);
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8', env: { ...process.env, NO_PRETTY: '1' } });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/user {5}distappguard: created \(useradd --system, uid \d+\)/);
    expect(r.stdout).toMatch(/user {5}distappguard: exists/);
    expect(r.stdout).toMatch(/^distappguard:x:\d+:\d+:DistAppGuard aggregator:\/var\/lib\/distappguard\/aggregator:\/usr\/sbin\/nologin$/m);
    expect(r.stdout).toContain('distappguard:distappguard 750 /var/lib/distappguard/aggregator');
    expect(r.stdout).toContain('root:distappguard 640 /etc/distappguard/aggregator.yaml');
    expect(r.stdout).toContain('root:root 644 /etc/systemd/system/distappguard-aggregator.service');
    expect(r.stdout).not.toContain('not there yet');
    // and this machine is untouched
    expect(spawnSync('getent', ['passwd', 'distappguard']).status).not.toBe(0);
  });
});

describe.skipIf(!existsSync(MAIN))('components started with --config', () => {
  const procs: ChildProcess[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });

  /** start an aggregator and return the address it logged once listening */
  async function aggregator(args: string[], env: Record<string, string> = {}): Promise<{ p: ChildProcess; listen: string; log: () => string }> {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DISTAPPGUARD_')));
    const p = spawn(process.execPath, [MAIN, 'aggregator', ...args], { env: { ...base, NO_PRETTY: '1', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(p);
    let out = '';
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 20_000;
    while (!out.includes('aggregator listening') && p.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const line = out.split('\n').find((l) => l.includes('aggregator listening'));
    if (!line) throw new Error(`the aggregator did not start:\n${out}`);
    return { p, listen: (JSON.parse(line) as { listen: string }).listen, log: () => out };
  }

  async function stop(p: ChildProcess): Promise<number | null> {
    p.kill('SIGTERM');
    if (p.exitCode === null) await new Promise((r) => p.once('exit', r));
    return p.exitCode;
  }

  it('listens where the file says; the environment and then a flag override it', async () => {
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    const cfg = file('listen.yaml', `listen: 127.0.0.1:${a}\ndb: ${join(tmp, 'listen.db')}\ngrace: 1s\nhttp: {listen: "off"}\n`);
    const fromFile = await aggregator(['--config', cfg]);
    expect(fromFile.listen).toBe(`127.0.0.1:${a}`);
    expect(fromFile.log()).toContain(`"configFile":"${cfg}"`);
    expect(await stop(fromFile.p)).toBe(0);
    const fromEnv = await aggregator(['--config', cfg], { DISTAPPGUARD_LISTEN: `127.0.0.1:${b}` });
    expect(fromEnv.listen).toBe(`127.0.0.1:${b}`);
    expect(await stop(fromEnv.p)).toBe(0);
    const fromFlag = await aggregator(['--config', cfg, '--listen', `127.0.0.1:${c}`], { DISTAPPGUARD_LISTEN: `127.0.0.1:${b}` });
    expect(fromFlag.listen).toBe(`127.0.0.1:${c}`);
    expect(await stop(fromFlag.p)).toBe(0);
  });

  it('refuses a bad or missing --config before starting (exit 2)', async () => {
    const bad = await cli(['aggregator', '--config', file('bad.yaml', 'listen: 127.0.0.1:1\ngrace: never\n')]);
    expect([bad.code, bad.stderr.trim()]).toEqual([2, `distappguard: ${join(tmp, 'bad.yaml')}: grace: expected a duration such as 500ms, 5s, 1m or 2h, got "never" (line 2)`]);
    const missing = await cli(['agent', '--config', join(tmp, 'missing.yaml')]);
    expect([missing.code, missing.stderr.trim()]).toEqual([2, `distappguard: ${join(tmp, 'missing.yaml')}: cannot read the configuration file: no such file`]);
    const flag = await cli(['aggregator', '--config', file('ok.yaml', 'listen: 127.0.0.1:1\n'), '--grace', '0']);
    expect([flag.code, flag.stderr.trim()]).toEqual([2, 'distappguard: --grace: expected a duration such as 500ms, 5s, 1m or 2h greater than zero, got "0"']);
  });

  it('an agent takes its aggregator, host, application and spool from its file', async () => {
    const sock = join(tmp, 'agg.sock');
    const db = join(tmp, 'agent-run.db');
    const agg = await aggregator(['--config', file('agg-unix.yaml', `listen: unix:${sock}\ndb: ${db}\ngrace: 1s\nhttp: {listen: "off"}\n`)]);
    expect(agg.listen).toBe(`unix:${sock}`);
    const agentCfg = file(
      'agent-run.yaml',
      `aggregator: unix:${sock}\nhostId: web-7\napp: shop\nwindow: 1s\nspool: {path: ${join(tmp, 'agent-state/spool.db')}}\nmodel: {localDetection: false}\nhttp: {listen: "off"}\ntarget: {pids: [1]}\n`,
    );
    const r = await cli(['agent', '--config', agentCfg, '--replay', `strace:${TRACE}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('every window acknowledged');
    expect(await stop(agg.p)).toBe(0);
    const rows = (await cli(['windows', '--db', db, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { app: string; hosts: string[] });
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((w) => w.app === 'shop' && w.hosts.join() === 'web-7')).toBe(true);
    expect(existsSync(join(tmp, 'agent-state/spool.db'))).toBe(true);
  });
});
