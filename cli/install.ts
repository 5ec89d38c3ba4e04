/**
 * `distappguard install agent|aggregator`: lays out the systemd unit, the configuration file
 * (from the documented defaults, or --config-from; an existing one is never overwritten), the
 * state directory and, for the aggregator, its system user. With --root DIR everything goes
 * under DIR (packaging, tests) and no user is created. systemctl is not run: the next step is
 * printed.
 */
import { Argument, Command, Option } from 'commander';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { projectRoot } from '../shared/project-root.js';
import { ConfigError, DEFAULT_CONFIG_DIR, defaultYaml, readConfigFile, resolveConfig, type Kind } from '../shared/config/index.js';
import { CliError } from './distributed.js';

export const SERVICE_USER = 'distappguard';
export const STATE_ROOT = '/var/lib/distappguard';
export const UNIT_DIR = '/etc/systemd/system';
export const DEFAULT_PREFIX = '/opt/distappguard';

export interface InstallOptions {
  kind: Kind;
  /** lay everything out under this directory (default /) */
  root: string;
  /** where the program lives on the target system: PREFIX/bin/distappguard (the bundle) or PREFIX/dist/cli/main.js */
  prefix: string;
  /** node on the target system, for PREFIX/dist/cli/main.js (the bundle's launcher brings its own) */
  node: string;
  /** a prepared configuration file to install instead of the defaults */
  configFrom?: string;
  /** agent: ebpf (the unit as shipped) or strace (plus the drop-in) */
  collector: 'ebpf' | 'strace';
}

/** the units as shipped (deploy/systemd/) run the bundle's launcher at /opt/distappguard; `exec` replaces it */
export function renderUnit(template: string, exec: string): string {
  return template.replace(/^ExecStart=\/opt\/distappguard\/bin\/distappguard /m, `ExecStart=${exec} `);
}

/**
 * What the unit runs: the bundle's launcher PREFIX/bin/distappguard (it picks the current
 * release and its node, so an upgrade needs no new unit), else NODE PREFIX/dist/cli/main.js
 * (the program copied there as it is).
 */
function programOf(o: InstallOptions, onTarget: (p: string) => string): { exec: string; present: boolean; schemaDir: string } {
  const launcher = join(o.prefix, 'bin/distappguard');
  const main = join(o.prefix, 'dist/cli/main.js');
  const schemaDir = [join(o.prefix, 'current/deploy/schema'), join(o.prefix, 'deploy/schema')].find((d) => existsSync(onTarget(d))) ?? join(o.prefix, 'deploy/schema');
  if (existsSync(onTarget(launcher))) return { exec: launcher, present: true, schemaDir };
  if (existsSync(onTarget(main))) return { exec: `${o.node} ${main}`, present: true, schemaDir };
  return { exec: launcher, present: false, schemaDir };
}

function deployFile(...parts: string[]): string {
  const p = join(projectRoot(), 'deploy', ...parts);
  if (!existsSync(p)) throw new CliError(`${p} is missing: this installation of distappguard lacks its deploy/ folder`);
  return p;
}

function userExists(name: string): boolean {
  try {
    execFileSync('getent', ['passwd', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function userIds(name: string): { uid: number; gid: number } {
  const line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).split(':');
  return { uid: Number(line[2]), gid: Number(line[3]) };
}

/** writes a file we own (a unit): "written", "updated" or "unchanged" */
function writeOwned(path: string, text: string, mode: number): string {
  mkdirSync(dirname(path), { recursive: true });
  const before = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (before === text) return 'unchanged';
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  return before === undefined ? 'written' : 'updated';
}

export function install(o: InstallOptions, out: (line: string) => void = (l) => process.stdout.write(l + '\n')): void {
  if (!isAbsolute(o.prefix)) throw new CliError(`--prefix '${o.prefix}': give an absolute path`);
  const root = resolve(o.root);
  const onTarget = (p: string): string => (root === '/' ? p : join(root, p));
  const realInstall = root === '/' && process.geteuid?.() === 0;
  const unitName = `distappguard-${o.kind}.service`;
  const configPath = join(DEFAULT_CONFIG_DIR, `${o.kind}.yaml`);
  const stateDir = join(STATE_ROOT, o.kind);
  const next: string[] = [];
  const program = programOf(o, onTarget);

  // 1. the configuration given must be valid before anything is laid out
  let configText: string;
  if (o.configFrom) {
    try {
      resolveConfig(o.kind, { file: readConfigFile(o.configFrom) }, { requireTarget: true });
    } catch (e) {
      if (e instanceof ConfigError) throw new CliError(`--config-from: ${e.message}`);
      throw e;
    }
    configText = readFileSync(o.configFrom, 'utf8');
  } else {
    configText = defaultYaml(o.kind, { schemaPath: join(program.schemaDir, `${o.kind}.schema.json`) });
  }

  // 2. the user (aggregator), before anything is given to it
  let owner: { uid: number; gid: number } | undefined;
  if (o.kind === 'aggregator') {
    const cmd = ['--system', '--user-group', '--home-dir', stateDir, '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'DistAppGuard aggregator', SERVICE_USER];
    if (!realInstall) {
      const shown = cmd.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ');
      out(`user     ${SERVICE_USER}: not created (${root === '/' ? 'not running as root' : '--root'}); on the target: useradd ${shown}`);
    } else if (userExists(SERVICE_USER)) {
      owner = userIds(SERVICE_USER);
      out(`user     ${SERVICE_USER}: exists (uid ${owner.uid})`);
    } else {
      try {
        execFileSync('useradd', cmd, { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (e) {
        throw new CliError(`useradd ${SERVICE_USER}: ${((e as { stderr?: Buffer }).stderr?.toString() ?? (e as Error).message).trim()}`);
      }
      owner = userIds(SERVICE_USER);
      out(`user     ${SERVICE_USER}: created (useradd --system, uid ${owner.uid})`);
    }
  }

  // 3. units
  const unit = renderUnit(readFileSync(deployFile('systemd', unitName), 'utf8'), program.exec);
  out(`unit     ${onTarget(join(UNIT_DIR, unitName))}: ${writeOwned(onTarget(join(UNIT_DIR, unitName)), unit, 0o644)}`);
  if (o.kind === 'agent') {
    const dropIn = join(UNIT_DIR, `${unitName}.d`, 'strace.conf');
    if (o.collector === 'strace') {
      out(`drop-in  ${onTarget(dropIn)}: ${writeOwned(onTarget(dropIn), readFileSync(deployFile('systemd', `${unitName}.d`, 'strace.conf'), 'utf8'), 0o644)} (strace collector, narrower capabilities)`);
    } else if (existsSync(onTarget(dropIn))) {
      out(`drop-in  ${onTarget(dropIn)}: left in place (it selects the strace collector; remove it for eBPF)`);
    }
  }

  // 4. configuration: never overwritten
  const cfg = onTarget(configPath);
  mkdirSync(dirname(cfg), { recursive: true, mode: 0o755 });
  const cfgMode = o.kind === 'aggregator' ? (owner ? 0o640 : 0o644) : 0o640;
  if (existsSync(cfg)) {
    if (o.configFrom && readFileSync(cfg, 'utf8') !== configText) {
      writeFileSync(`${cfg}.new`, configText, { mode: cfgMode });
      out(`config   ${cfg}: kept as it is; the one from --config-from is at ${cfg}.new (compare, merge, then distappguard config check ${configPath})`);
    } else out(`config   ${cfg}: kept as it is`);
  } else {
    writeFileSync(cfg, configText, { mode: cfgMode });
    chmodSync(cfg, cfgMode);
    // the aggregator reads it as its own user: root-owned, group-readable
    if (owner) chownSync(cfg, 0, owner.gid);
    out(`config   ${cfg}: written (${o.configFrom ? `from ${o.configFrom}` : 'the documented defaults'})`);
    if (!o.configFrom && o.kind === 'agent') next.push(`set aggregator: and target: in ${configPath}`);
  }
  next.push(`distappguard config check ${configPath}`);

  // 5. state directory (systemd's StateDirectory= makes and owns it too; this makes it visible now)
  const state = onTarget(stateDir);
  const existed = existsSync(state);
  mkdirSync(onTarget(STATE_ROOT), { recursive: true, mode: 0o755 });
  mkdirSync(state, { recursive: true });
  chmodSync(state, o.kind === 'aggregator' ? 0o750 : 0o700);
  if (owner) chownSync(state, owner.uid, owner.gid);
  out(`state    ${state}: ${existed ? 'exists' : 'created'}${owner ? `, owned by ${SERVICE_USER}` : ''}`);

  // 6. the program the unit runs
  if (!program.present) {
    out(`note     ExecStart runs ${program.exec}, which is not there yet: install the bundle with --prefix ${o.prefix}, or give --prefix where the program is (PREFIX/bin/distappguard or PREFIX/dist/cli/main.js)`);
  }

  out('next:');
  for (const n of next) out(`  ${n}`);
  out(`  systemctl daemon-reload && systemctl enable --now ${unitName}`);
  out(`  journalctl -u ${unitName} -f`);
}

export function addInstallCommand(program: Command): void {
  program
    .command('install')
    .description('lay out the systemd unit, /etc/distappguard/KIND.yaml (never overwritten), the state directory and (aggregator) the system user; prints the systemctl step')
    .addArgument(new Argument('<kind>', 'agent or aggregator').choices(['agent', 'aggregator']))
    .option('--root <dir>', 'lay everything out under this directory instead of / (packaging, tests)', '/')
    .option('--prefix <dir>', "where the program is on the target system: the unit runs the bundle's PREFIX/bin/distappguard, else NODE PREFIX/dist/cli/main.js", DEFAULT_PREFIX)
    .option('--config-from <file>', 'install this configuration (validated first) instead of the defaults')
    .option('--node <path>', 'node on the target system, for PREFIX/dist/cli/main.js (default: the node running this command)')
    .addOption(new Option('--collector <name>', 'agent: ebpf (the unit as shipped) or strace (adds the drop-in with narrower capabilities)').choices(['ebpf', 'strace']).default('ebpf'))
    .action((kind: Kind, o: { root: string; prefix: string; configFrom?: string; node?: string; collector: 'ebpf' | 'strace' }) => {
      let node = o.node ?? process.execPath;
      if (o.node === undefined) {
        try {
          node = realpathSync(node);
        } catch {
          /* as it is */
        }
      }
      install({ kind, root: o.root, prefix: o.prefix.replace(/\/+$/, '') || '/', node, configFrom: o.configFrom, collector: o.collector });
    });
}
