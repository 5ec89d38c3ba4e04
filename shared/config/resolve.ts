/**
 * From sources to one validated configuration: built-in defaults < YAML file < environment
 * < command-line flags. Each source is checked on its own first, so an error names where the
 * bad value was written (the file and key with its line, the variable, or the flag); then the
 * merged result is checked for what no single source has to give (required keys, keys that
 * only make sense together).
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { LineCounter, parseDocument, isMap, isScalar, type Document, type Node as YamlNode } from 'yaml';
import * as z from 'zod';
import { isLocalOnly } from '../address.js';
import { FLAG_KEYS, Layer, envName, flagFor } from './flags.js';
import { SCHEMAS, type AgentConfig, type AgentParsed, type AggregatorConfig, type AggregatorParsed, type ConfigOf, type Kind, type TargetConfig } from './schema.js';

/** Everything wrong with a configuration, one line each. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0] : `${problems.length} problems in the configuration:\n  ${problems.join('\n  ')}`);
  }
}

export const DEFAULT_CONFIG_DIR = '/etc/distappguard';
export const defaultConfigPath = (kind: Kind): string => join(DEFAULT_CONFIG_DIR, `${kind}.yaml`);

/** A parsed YAML configuration file, with what is needed to point at lines. */
export interface ConfigFile {
  /** the path as given (named in errors) */
  name: string;
  data: Record<string, unknown>;
  doc: Document;
  lines: LineCounter;
}

/** YAML text → a mapping; syntax errors name the line and column */
export function parseConfigText(text: string, name: string): ConfigFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const what = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
        return `${name}:${at ? ` line ${at.line}, column ${at.col}:` : ''} ${what} (YAML syntax)`;
      }),
    );
  }
  const data = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (data === null || data === undefined) return { name, data: {}, doc, lines };
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError([`${name}: expected a mapping of keys (key: value lines), got ${Array.isArray(data) ? 'a list' : JSON.stringify(data)}`]);
  }
  return { name, data: data as Record<string, unknown>, doc, lines };
}

export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError([`${path}: cannot read the configuration file: ${err.code === 'ENOENT' ? 'no such file' : err.message}`]);
  }
  return parseConfigText(text, path);
}

/**
 * The file to read: the one named (--config or DISTAPPGUARD_CONFIG; it must exist), else
 * /etc/distappguard/KIND.yaml when it exists, else none (built-in defaults).
 */
export function findConfigFile(kind: Kind, given: string | undefined, defaultPath = defaultConfigPath(kind)): ConfigFile | undefined {
  if (given !== undefined && given !== '') return readConfigFile(given);
  return existsSync(defaultPath) ? readConfigFile(defaultPath) : undefined;
}

// ---------------------------------------------------------------------------------------
// Messages

type Path = ReadonlyArray<PropertyKey>;

export function pathText(path: Path): string {
  let s = '';
  for (const k of path) s += typeof k === 'number' ? `[${k}]` : s === '' ? String(k) : `.${String(k)}`;
  return s;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
};

/** zod's generic issues in words (fields.ts and schema.ts give their own for the rest) */
function genericMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      return `expected ${TYPE_NAMES[iss.expected] ?? iss.expected}`;
    case 'invalid_value':
      return iss.values.length === 1 ? `expected ${JSON.stringify(iss.values[0])}` : `expected one of ${iss.values.map(String).join(', ')}`;
    case 'too_small':
      return iss.origin === 'array' ? `expected at least ${String(iss.minimum)} item(s)` : `expected at least ${String(iss.minimum)}`;
    case 'too_big':
      return iss.origin === 'array' ? `expected at most ${String(iss.maximum)} item(s)` : `expected at most ${String(iss.maximum)}`;
    default:
      return undefined;
  }
}

function shown(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'nothing (null)';
  if (typeof v === 'object') return 'a mapping';
  return JSON.stringify(v);
}

/** the schema's keys at a path (for unknown-key hints) */
function keysAt(schema: z.ZodType, path: Path): string[] {
  let s: z.core.$ZodType = schema;
  const unwrap = (): void => {
    for (;;) {
      const d = s._zod.def as { type: string; innerType?: z.core.$ZodType };
      if ((d.type === 'optional' || d.type === 'default' || d.type === 'prefault' || d.type === 'nullable') && d.innerType) s = d.innerType;
      else return;
    }
  };
  unwrap();
  for (const k of path) {
    const d = s._zod.def as { type: string; shape?: Record<string, z.core.$ZodType>; element?: z.core.$ZodType };
    if (d.type === 'object' && typeof k === 'string' && d.shape?.[k]) s = d.shape[k];
    else if (d.type === 'array' && typeof k === 'number' && d.element) s = d.element;
    else return [];
    unwrap();
  }
  const d = s._zod.def as { type: string; shape?: Record<string, unknown> };
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : [];
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
      prev = t;
    }
  }
  return dp[b.length];
}

/** a near key not already written is a likely typo; else the list of keys */
function unknownKeyHint(key: string, known: string[], present: ReadonlySet<string>): string {
  if (known.length === 0) return '';
  const near = known
    .filter((k) => !present.has(k))
    .map((k) => [k, editDistance(key, k)] as const)
    .sort((x, y) => x[1] - y[1])[0];
  if (near && near[1] <= Math.max(2, Math.floor(key.length / 3))) return ` (did you mean "${near[0]}"?)`;
  return ` (known keys: ${known.join(', ')})`;
}

/** where a path is in the file: " (line N)", or "" */
function lineOf(file: ConfigFile, path: Path, keyOnly = false): string {
  let node: unknown;
  try {
    if (keyOnly && path.length > 0) {
      const parent = path.length === 1 ? file.doc.contents : file.doc.getIn(path.slice(0, -1) as unknown[], true);
      if (isMap(parent)) node = parent.items.find((p) => isScalar(p.key) && p.key.value === path[path.length - 1])?.key;
    } else node = path.length === 0 ? file.doc.contents : file.doc.getIn(path as unknown[], true);
  } catch {
    return '';
  }
  const range = (node as YamlNode | undefined)?.range;
  return range ? ` (line ${file.lines.linePos(range[0]).line})` : '';
}

interface Source {
  /** prefix of each line: "aggregator.yaml: " or "" */
  prefix: string;
  /** the label of a key path: itself in a file, "--flag" or "DISTAPPGUARD_X" otherwise */
  label: (path: Path) => string;
  line: (path: Path, keyOnly?: boolean) => string;
}

function issueLines(schema: z.ZodType, iss: z.core.$ZodIssue, src: Source): string[] {
  if (iss.code === 'unrecognized_keys') {
    const known = keysAt(schema, iss.path);
    const present = new Set(Object.keys(isPlain(iss.input) ? iss.input : {}));
    return iss.keys.map((k) => `${src.prefix}${src.label([...iss.path, k])}: unknown key${unknownKeyHint(k, known, present)}${src.line([...iss.path, k], true)}`);
  }
  if (isMissing(iss)) return [`${src.prefix}${src.label(iss.path)}: required${src.line(iss.path.slice(0, -1))}`];
  const input = (iss as { input?: unknown }).input;
  const got = input === undefined ? '' : `, got ${shown(input)}`;
  return [`${src.prefix}${src.label(iss.path)}: ${iss.message}${got}${src.line(iss.path)}`];
}

const isMissing = (iss: z.core.$ZodIssue): boolean => iss.code === 'invalid_type' && (iss as { input?: unknown }).input === undefined;

// ---------------------------------------------------------------------------------------
// Merging and resolving

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** b over a; lists are replaced, not joined; a target is replaced whole (it names one kind of thing) */
function merge(a: Record<string, unknown>, b: Record<string, unknown>, atomic: ReadonlySet<string>, at = ''): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const path = at ? `${at}.${k}` : k;
    out[k] = isPlain(v) && isPlain(out[k]) && !atomic.has(path) ? merge(out[k] as Record<string, unknown>, v, atomic, path) : v;
  }
  return out;
}

export interface Sources {
  file?: ConfigFile;
  env?: Layer;
  flags?: Layer;
}

export interface ResolveOptions {
  /** agent: a target must be configured (false when the command line replays a trace) */
  requireTarget?: boolean;
  /** for tests: the machine's hostname */
  hostname?: string;
}

export interface Resolved<K extends Kind> {
  config: ConfigOf<K>;
  /** the configuration in the file's form (durations as "5s"): what `config check` prints */
  effective: Record<string, unknown>;
}

function howToSet(kind: Kind, path: Path): string {
  const p = pathText(path);
  const f = typeof path[path.length - 1] === 'number' ? undefined : flagFor(kind, p);
  return f ? `set "${p}" in ${kind}.yaml, --${f.flag} or ${envName(f.flag)}` : `set "${p}" in ${kind}.yaml`;
}

/** flags.ts paths as zod paths, for "can another source give this?" */
function settableElsewhere(kind: Kind, path: Path): boolean {
  return FLAG_KEYS[kind].some((f) => f.path === pathText(path));
}

export function resolveConfig<K extends Kind>(kind: K, sources: Sources, opts: ResolveOptions = {}): Resolved<K> {
  const schema = SCHEMAS[kind] as z.ZodType;
  const parseOpts = { reportInput: true, error: genericMessage } as const;
  const problems: string[] = [];

  // 1. each source on its own: wrong values and unknown keys, named where they were written
  const file = sources.file;
  if (file) {
    const r = schema.safeParse(file.data, parseOpts);
    const src: Source = { prefix: `${file.name}: `, label: pathText, line: (p, keyOnly) => lineOf(file, p, keyOnly) };
    const lines: string[] = [];
    for (const iss of r.error?.issues ?? []) if (!(isMissing(iss) && settableElsewhere(kind, iss.path))) lines.push(...issueLines(schema, iss, src));
    // in the order of the file
    const lineNo = (l: string): number => Number(/\(line (\d+)\)$/.exec(l)?.[1] ?? 0);
    problems.push(...lines.sort((a, b) => lineNo(a) - lineNo(b)));
  }
  for (const layer of [sources.env, sources.flags]) {
    if (!layer || layer.empty) continue;
    const r = schema.safeParse(layer.data, parseOpts);
    const src: Source = { prefix: '', label: (p) => layer.labelOf(pathText(p)) ?? pathText(p), line: () => '' };
    for (const iss of r.error?.issues ?? []) if (!isMissing(iss)) problems.push(...issueLines(schema, iss, src));
  }
  if (problems.length > 0) throw new ConfigError(problems);

  // 2. merged, with the defaults: what no single source has to give
  const atomic = new Set(['target']);
  const merged = [sources.env, sources.flags].reduce((acc, l) => (l ? merge(acc, l.data, atomic) : acc), file?.data ?? {});
  const r = schema.safeParse(merged, parseOpts);
  if (!r.success) {
    for (const iss of r.error.issues) {
      problems.push(...issueLines(schema, iss, { prefix: '', label: pathText, line: () => '' }).map((l) => (isMissing(iss) ? `${l} (${howToSet(kind, iss.path)})` : l)));
    }
    throw new ConfigError(problems);
  }

  // 3. keys that depend on each other, and the defaults that come from other keys
  const config = (kind === 'agent' ? completeAgent(r.data as AgentParsed, opts, problems) : completeAggregator(r.data as AggregatorParsed, problems)) as ConfigOf<K>;
  if (problems.length > 0) throw new ConfigError(problems);
  return { config, effective: z.encode(schema, config as never) as Record<string, unknown> };
}

function completeAggregator(c: AggregatorParsed, problems: string[]): AggregatorConfig {
  if (!c.tls && !isLocalOnly(c.listen)) {
    problems.push(`listen: ${c.listen} is reachable from other machines: set tls (cert, key, ca; agents must present certificates), or listen on 127.0.0.1 or a unix: socket`);
  }
  if (c.http.listen !== 'off' && !isLocalOnly(c.http.listen) && (!c.http.tls || !c.http.token)) {
    problems.push(`http.listen: ${c.http.listen} is reachable from other machines: set http.tls and http.token, or listen on 127.0.0.1`);
  }
  c.alerts.syslog.forEach((s, i) => {
    if (s.ca !== undefined && !s.url.startsWith('tls://')) problems.push(`alerts.syslog[${i}].ca: only for tls:// URLs, not ${s.url}`);
  });
  c.alerts.webhook.forEach((w, i) => {
    if (w.ca !== undefined && !w.url.startsWith('https://')) problems.push(`alerts.webhook[${i}].ca: only for https:// URLs, not ${w.url}`);
  });
  return { ...c, detection: { ...c.detection, modelKey: c.detection.modelKey ?? `${c.db}.model-key.pem` } };
}

function completeAgent(c: AgentParsed, opts: ResolveOptions, problems: string[]): AgentConfig {
  if (c.aggregator === undefined) problems.push(`aggregator: required (${howToSet('agent', ['aggregator'])})`);
  let target: TargetConfig | undefined;
  if (c.target) {
    const given = (['command', 'pids', 'container'] as const).filter((k) => c.target![k] !== undefined);
    if (given.length !== 1) problems.push(`target: give exactly one of command, pids, container${given.length ? ` (got ${given.join(', ')})` : ''}`);
    else target = { [given[0]]: c.target[given[0]] } as TargetConfig;
  } else if (opts.requireTarget) {
    problems.push('target: required: what to trace (set "target:" in agent.yaml with command, pids or container; or on the command line -- COMMAND…, --pid PID…, --container ID)');
  }
  const hostId = c.hostId ?? opts.hostname ?? hostname();
  return {
    ...c,
    aggregator: c.aggregator ?? '',
    hostId,
    agentId: c.agentId ?? hostId,
    target,
    model: { ...c.model, dir: c.model.dir ?? join(dirname(c.spool.path), 'model') },
  };
}
