/**
 * Which command-line flag (and so which environment variable) sets which key, and the two
 * layers built from them: the environment (DISTAPPGUARD_<FLAG_NAME>) and the flags a person
 * actually typed. Commander knows where each option value came from
 * (`getOptionValueSource`): only values from the command line itself count as flags, so a
 * flag's own default never hides the file.
 */
import type { Command } from 'commander';
import type { Kind } from './schema.js';

export type FlagType = 'string' | 'int' | 'number' | 'bool' | 'negbool' | 'list-int';

export interface FlagKey {
  /** the long flag without dashes, e.g. "tls-cert" */
  flag: string;
  /** the key path in the file, e.g. "tls.cert" */
  path: string;
  type: FlagType;
}

const tls: FlagKey[] = [
  { flag: 'tls-cert', path: 'tls.cert', type: 'string' },
  { flag: 'tls-key', path: 'tls.key', type: 'string' },
  { flag: 'tls-ca', path: 'tls.ca', type: 'string' },
];

export const FLAG_KEYS: Record<Kind, FlagKey[]> = {
  aggregator: [
    { flag: 'listen', path: 'listen', type: 'string' },
    { flag: 'db', path: 'db', type: 'string' },
    { flag: 'grace', path: 'grace', type: 'string' },
    ...tls,
    { flag: 'alerts', path: 'alerts.jsonl', type: 'string' },
    { flag: 'learn-after', path: 'detection.learnAfter', type: 'int' },
    { flag: 'retrain-every', path: 'detection.retrainEvery', type: 'string' },
    { flag: 'history', path: 'detection.history', type: 'string' },
    { flag: 'model', path: 'detection.model', type: 'string' },
    { flag: 'target-fpr', path: 'detection.targetFpr', type: 'number' },
    { flag: 'model-key', path: 'detection.modelKey', type: 'string' },
    { flag: 'http-listen', path: 'http.listen', type: 'string' },
  ],
  agent: [
    { flag: 'aggregator', path: 'aggregator', type: 'string' },
    { flag: 'host-id', path: 'hostId', type: 'string' },
    { flag: 'app', path: 'app', type: 'string' },
    { flag: 'agent-id', path: 'agentId', type: 'string' },
    { flag: 'spool', path: 'spool.path', type: 'string' },
    { flag: 'spool-max', path: 'spool.maxBytes', type: 'string' },
    { flag: 'spool-max-age', path: 'spool.maxAge', type: 'string' },
    { flag: 'window', path: 'window', type: 'string' },
    { flag: 'lateness', path: 'lateness', type: 'string' },
    { flag: 'drain-timeout', path: 'drainTimeout', type: 'string' },
    { flag: 'collector', path: 'collector', type: 'string' },
    { flag: 'pid', path: 'target.pids', type: 'list-int' },
    { flag: 'container', path: 'target.container', type: 'string' },
    ...tls,
    { flag: 'model-dir', path: 'model.dir', type: 'string' },
    { flag: 'model-key', path: 'model.key', type: 'string' },
    { flag: 'no-local-detection', path: 'model.localDetection', type: 'negbool' },
    { flag: 'http-listen', path: 'http.listen', type: 'string' },
  ],
};

export const ENV_PREFIX = 'DISTAPPGUARD_';

/** "tls-cert" → "DISTAPPGUARD_TLS_CERT" */
export function envName(flag: string): string {
  return ENV_PREFIX + flag.replace(/-/g, '_').toUpperCase();
}

/** commander's attribute name: "learn-after" → "learnAfter", "no-local-detection" → "localDetection" */
export function attributeName(flag: string): string {
  return flag.replace(/^no-/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function flagFor(kind: Kind, path: string): FlagKey | undefined {
  return FLAG_KEYS[kind].find((f) => f.path === path);
}

/**
 * One source of settings. `data` has the file's shape; each value remembers the label it
 * came from (a flag, a variable) so an error names what the person wrote.
 */
export class Layer {
  readonly data: Record<string, unknown> = {};
  private readonly labels: Array<[string, string]> = [];
  constructor(
    readonly source: 'env' | 'flags',
    readonly name: string,
  ) {}

  set(path: string, value: unknown, label: string): void {
    const keys = path.split('.');
    let o = this.data;
    for (const k of keys.slice(0, -1)) {
      if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
      o = o[k] as Record<string, unknown>;
    }
    o[keys[keys.length - 1]] = value;
    this.labels.push([path, label]);
  }

  has(path: string): boolean {
    return this.labels.some(([p]) => p === path || p.startsWith(path + '.'));
  }

  /** the flag or variable that set this path (or the longest prefix of it) */
  labelOf(path: string): string | undefined {
    let best: [string, string] | undefined;
    for (const l of this.labels) if ((path === l[0] || path.startsWith(l[0] + '.') || path.startsWith(l[0] + '[')) && (!best || l[0].length > best[0].length)) best = l;
    return best?.[1];
  }

  get empty(): boolean {
    return this.labels.length === 0;
  }
}

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off)$/i;

/** a text (or list, from commander) → the value the schema expects; what does not convert is left for the schema to name */
function convert(type: FlagType, raw: unknown): unknown {
  if (type === 'string') return raw;
  if (type === 'int') return typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw) ? Number(raw) : raw;
  if (type === 'number') return typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  if (type === 'list-int') {
    const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(/[\s,]+/).filter(Boolean);
    return list.map((x) => (/^\d+$/.test(x) ? Number(x) : x));
  }
  // bool / negbool: commander hands a boolean; the environment a word
  let b: unknown = raw;
  if (typeof raw === 'string') b = TRUE.test(raw.trim()) ? true : FALSE.test(raw.trim()) ? false : raw;
  if (type === 'negbool' && typeof b === 'boolean' && typeof raw === 'string') return !b;
  return b;
}

/** DISTAPPGUARD_* variables of this component's flags (others, like DISTAPPGUARD_LOG_LEVEL, are not keys) */
export function envLayer(kind: Kind, env: NodeJS.ProcessEnv = process.env): Layer {
  const layer = new Layer('env', 'the environment');
  for (const f of FLAG_KEYS[kind]) {
    const name = envName(f.flag);
    const v = env[name];
    // set but empty counts as not set (VAR= in a unit or a compose file)
    if (v === undefined || v === '') continue;
    layer.set(f.path, convert(f.type, v), name);
  }
  return layer;
}

/** the flags given on the command line itself (not commander defaults, not the environment) */
export function flagLayer(kind: Kind, cmd: Command): Layer {
  const layer = new Layer('flags', 'the command line');
  for (const f of FLAG_KEYS[kind]) {
    const attr = attributeName(f.flag);
    if (cmd.getOptionValueSource(attr) !== 'cli') continue;
    layer.set(f.path, convert(f.type, cmd.getOptionValue(attr)), `--${f.flag}`);
  }
  return layer;
}
