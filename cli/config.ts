/**
 * `distappguard config check FILE`: is this file a valid configuration, and what would the
 * component run with (defaults filled in)? `config defaults KIND`: the documented default
 * file. `config schema KIND`: the JSON Schema, for editors.
 */
import { Argument, Command, Option } from 'commander';
import { basename } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, defaultYaml, envLayer, jsonSchemaText, readConfigFile, resolveConfig, type ConfigFile, type Kind } from '../shared/config/index.js';

const KINDS = ['agent', 'aggregator'] as const;

const AGENT_KEYS = ['aggregator', 'hostId', 'agentId', 'app', 'spool', 'window', 'lateness', 'drainTimeout', 'collector', 'target', 'model'];
const AGGREGATOR_KEYS = ['listen', 'db', 'grace', 'detection', 'alerts'];

/** from the file's name (agent.yaml, aggregator.yaml, …), else from the keys it has */
export function guessKind(file: ConfigFile): Kind | undefined {
  const name = basename(file.name).toLowerCase();
  if (name.includes('aggregator')) return 'aggregator';
  if (name.includes('agent')) return 'agent';
  const keys = Object.keys(file.data);
  const agent = keys.filter((k) => AGENT_KEYS.includes(k)).length;
  const aggregator = keys.filter((k) => AGGREGATOR_KEYS.includes(k)).length;
  if (agent > aggregator) return 'agent';
  if (aggregator > agent) return 'aggregator';
  return undefined;
}

function fail(lines: string[]): void {
  for (const l of lines) process.stderr.write(l + '\n');
  process.exitCode = 2;
}

export function addConfigCommands(program: Command): void {
  const config = program.command('config').description('check a configuration file; print the documented defaults or the JSON Schema');

  config
    .command('check')
    .description('validate an agent.yaml or aggregator.yaml; print "ok" and the effective configuration (defaults filled in), or every problem (exit 2)')
    .argument('<file>', 'the YAML file')
    .addOption(new Option('--kind <kind>', 'which component the file is for (default: from the file name, else its keys)').choices([...KINDS]))
    .addOption(new Option('--format <format>', 'how to print the effective configuration').choices(['yaml', 'json']).default('yaml'))
    .option('--env', 'also apply the DISTAPPGUARD_* variables of this environment, as the service would')
    .action((path: string, o: { kind?: Kind; format: 'yaml' | 'json'; env?: boolean }) => {
      let file: ConfigFile;
      try {
        file = readConfigFile(path);
      } catch (e) {
        if (e instanceof ConfigError) return fail(e.problems);
        throw e;
      }
      const kind = o.kind ?? guessKind(file);
      if (!kind) return fail([`${path}: cannot tell an agent from an aggregator configuration: give --kind agent or --kind aggregator`]);
      try {
        const r = resolveConfig(kind, { file, env: o.env ? envLayer(kind) : undefined }, { requireTarget: true });
        process.stdout.write(o.format === 'json' ? JSON.stringify(r.effective, null, 2) + '\n' : stringify(r.effective, { lineWidth: 0 }));
        process.stderr.write(`ok: ${path} is a valid ${kind} configuration\n`);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        fail([...e.problems, `${path}: ${e.problems.length} problem${e.problems.length === 1 ? '' : 's'} (${kind} configuration)`]);
      }
    });

  config
    .command('defaults')
    .description('print the default configuration file, every key documented')
    .addArgument(new Argument('<kind>', 'agent or aggregator').choices([...KINDS]))
    .option('--schema-path <path>', 'add a yaml-language-server comment pointing editors at this JSON Schema')
    .action((kind: Kind, o: { schemaPath?: string }) => {
      process.stdout.write(defaultYaml(kind, { schemaPath: o.schemaPath }));
    });

  config
    .command('schema')
    .description('print the JSON Schema of the file (for editors; also in deploy/schema/)')
    .addArgument(new Argument('<kind>', 'agent or aggregator').choices([...KINDS]))
    .action((kind: Kind) => {
      process.stdout.write(jsonSchemaText(kind));
    });
}
