/**
 * Configuration files: schema errors that name the key and the problem (and the line), YAML
 * syntax errors with line and column, unknown keys refused, durations, the precedence
 * defaults < file < environment < flags, and the generated files (documented defaults, JSON
 * Schema) in step with the schema.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  FLAG_KEYS,
  Layer,
  SCHEMAS,
  defaultValues,
  defaultYaml,
  envLayer,
  flagLayer,
  jsonSchemaText,
  parseConfigText,
  resolveConfig,
  type Kind,
} from '../../shared/config/index.js';

const ROOT = resolve(import.meta.dirname, '../..');

function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

const aggregator = (yaml: string, env: NodeJS.ProcessEnv = {}, flags?: Layer) =>
  resolveConfig('aggregator', { file: parseConfigText(yaml, 'aggregator.yaml'), env: envLayer('aggregator', env), flags });
const agent = (yaml: string, env: NodeJS.ProcessEnv = {}, flags?: Layer) =>
  resolveConfig('agent', { file: parseConfigText(yaml, 'agent.yaml'), env: envLayer('agent', env), flags }, { requireTarget: true, hostname: 'box' });

function flags(kind: Kind, set: Array<[string, unknown]>): Layer {
  const l = new Layer('flags', 'the command line');
  for (const [flag, v] of set) l.set(FLAG_KEYS[kind].find((f) => f.flag === flag)!.path, v, `--${flag}`);
  return l;
}

describe('schema errors', () => {
  it('name the file, the key path, the problem, the value and the line', () => {
    const yaml = ['listen: 127.0.0.1:7443', 'alerts:', '  webhook:', '    - url: "ftp://x"', '      secretFile: /etc/distappguard/hook.secret'].join('\n');
    expect(problems(() => aggregator(yaml))).toEqual(['aggregator.yaml: alerts.webhook[0].url: expected an https:// or http:// URL, got "ftp://x" (line 4)']);
  });

  it('report every problem at once, in the order of the file', () => {
    const yaml = ['grace: soon', 'detection:', '  model: forest', '  targetFpr: 2', '  learnAfter: -1', 'alerts:', '  syslog:', '    - url: udp://siem:514', '      facility: local9', '      ca: /x.pem'].join('\n');
    expect(problems(() => aggregator(yaml))).toEqual([
      'aggregator.yaml: grace: expected a duration such as 500ms, 5s, 1m or 2h, got "soon" (line 1)',
      'aggregator.yaml: detection.model: expected one of msae, dense, got "forest" (line 3)',
      'aggregator.yaml: detection.targetFpr: expected a rate between 0 and 1, got 2 (line 4)',
      'aggregator.yaml: detection.learnAfter: expected a whole number (0 or more), got -1 (line 5)',
      'aggregator.yaml: alerts.syslog[0].facility: expected one of kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0, local1, local2, local3, local4, local5, local6, local7, got "local9" (line 9)',
    ]);
  });

  it('name wrong types and missing keys inside lists', () => {
    expect(problems(() => aggregator('alerts:\n  syslog:\n    - facility: local0\n  webhook: {url: "https://x"}\ntls: yes\n'))).toEqual([
      'aggregator.yaml: alerts.syslog[0].url: required (line 3)',
      'aggregator.yaml: alerts.webhook: expected a list of webhooks (- url: …), got a mapping (line 4)',
      'aggregator.yaml: tls: expected a mapping (key: value), got "yes" (line 5)',
    ]);
  });

  it('refuse unknown keys, with the likely one meant', () => {
    expect(problems(() => aggregator('detection:\n  learnAfer: 10\nlisten: 127.0.0.1:1\nfrobnicate: true\n'))).toEqual([
      'aggregator.yaml: detection.learnAfer: unknown key (did you mean "learnAfter"?) (line 2)',
      'aggregator.yaml: frobnicate: unknown key (known keys: listen, db, grace, tls, detection, alerts, http) (line 4)',
    ]);
    expect(problems(() => agent('aggregator: a:1\ntarget: {pid: [1]}\n'))).toEqual(['agent.yaml: target.pid: unknown key (did you mean "pids"?) (line 2)']);
  });

  it('check addresses and URLs', () => {
    expect(problems(() => aggregator('listen: "7443"\n'))).toEqual(['aggregator.yaml: listen: expected HOST:PORT (e.g. 127.0.0.1:7443) or unix:/path/to.sock, got "7443" (line 1)']);
    expect(problems(() => aggregator('listen: 127.0.0.1:70000\n'))).toEqual(['aggregator.yaml: listen: the port must be 0 to 65535, got "127.0.0.1:70000" (line 1)']);
    expect(problems(() => aggregator('alerts: {syslog: [{url: "http://siem:514"}]}\n'))[0]).toBe('aggregator.yaml: alerts.syslog[0].url: expected udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT, got "http://siem:514" (line 1)');
    expect(aggregator('listen: unix:/run/dag.sock\nhttp: {listen: "off"}\n').config).toMatchObject({ listen: 'unix:/run/dag.sock', http: { listen: 'off' } });
  });

  it('check keys that only make sense together', () => {
    expect(problems(() => aggregator('listen: 0.0.0.0:7443\n'))).toEqual([
      'listen: 0.0.0.0:7443 is reachable from other machines: set tls (cert, key, ca; agents must present certificates), or listen on 127.0.0.1 or a unix: socket',
    ]);
    expect(aggregator('listen: 0.0.0.0:7443\ntls: {cert: a.pem, key: a.key, ca: ca.pem}\n').config.tls).toEqual({ cert: 'a.pem', key: 'a.key', ca: 'ca.pem' });
    expect(problems(() => aggregator('http: {listen: "0.0.0.0:9443"}\n'))[0]).toMatch(/^http\.listen: 0\.0\.0\.0:9443 is reachable from other machines: set http\.tls and http\.token/);
    expect(problems(() => aggregator('alerts: {syslog: [{url: "udp://siem:514", ca: /ca.pem}]}\n'))).toEqual(['alerts.syslog[0].ca: only for tls:// URLs, not udp://siem:514']);
    expect(problems(() => agent('aggregator: a:1\ntarget: {pids: [1], container: abc}\n'))).toEqual(['target: give exactly one of command, pids, container (got pids, container)']);
  });

  it('say how to give a required key', () => {
    expect(problems(() => agent('target: {pids: [1]}\n'))).toEqual(['aggregator: required (set "aggregator" in agent.yaml, --aggregator or DISTAPPGUARD_AGGREGATOR)']);
    expect(problems(() => agent('aggregator: a:1\n'))[0]).toMatch(/^target: required: what to trace/);
    // half of the TLS files in the file, the rest nowhere
    expect(problems(() => aggregator('tls: {cert: a.pem}\n'))).toEqual([
      'tls.key: required (set "tls.key" in aggregator.yaml, --tls-key or DISTAPPGUARD_TLS_KEY)',
      'tls.ca: required (set "tls.ca" in aggregator.yaml, --tls-ca or DISTAPPGUARD_TLS_CA)',
    ]);
  });
});

describe('YAML', () => {
  it('syntax errors name the line and column', () => {
    expect(problems(() => parseConfigText('listen: 127.0.0.1:7443\ndetection:\n  model: [msae\n', 'aggregator.yaml'))).toEqual([
      'aggregator.yaml: line 4, column 1: Flow sequence in block collection must be sufficiently indented and end with a ] (YAML syntax)',
    ]);
    expect(problems(() => parseConfigText('grace: 5s\ngrace: 6s\n', 'aggregator.yaml'))).toEqual(['aggregator.yaml: line 2, column 1: Map keys must be unique (YAML syntax)']);
    expect(problems(() => parseConfigText('- listen\n', 'x.yaml'))).toEqual(['x.yaml: expected a mapping of keys (key: value lines), got a list']);
  });

  it('an empty file means all defaults', () => {
    expect(aggregator('').effective).toEqual({ ...defaultValues('aggregator'), detection: { ...defaultValues('aggregator').detection as object, modelKey: '/var/lib/distappguard/aggregator/distappguard.db.model-key.pem' } });
    expect(aggregator('# nothing but comments\n').config.listen).toBe('127.0.0.1:7443');
  });

  it('keeps YAML 1.2 core types: "no" and "on" are strings, not booleans', () => {
    expect(agent('aggregator: a:1\napp: no\ntarget: {container: on}\n').config).toMatchObject({ app: 'no', target: { container: 'on' } });
  });
});

describe('durations', () => {
  it('are milliseconds in the resolved configuration', () => {
    const c = agent('aggregator: a:1\ntarget: {pids: [1]}\nwindow: 500ms\nlateness: 2\ndrainTimeout: 1m\nspool: {maxAge: 2h, maxBytes: 64MiB}\n').config;
    expect([c.window, c.lateness, c.drainTimeout, c.spool.maxAge, c.spool.maxBytes]).toEqual([500, 2000, 60_000, 7_200_000, 64 << 20]);
  });

  it('refuse zero, fractions of a millisecond and words, except where 0 means never', () => {
    expect(problems(() => aggregator('grace: 0\n'))).toEqual(['aggregator.yaml: grace: expected a duration such as 500ms, 5s, 1m or 2h greater than zero, got 0 (line 1)']);
    expect(problems(() => aggregator('grace: 0.5ms\n'))).toEqual(['aggregator.yaml: grace: expected a whole number of milliseconds, got "0.5ms" (line 1)']);
    expect(problems(() => aggregator('detection: {retrainEvery: weekly}\n'))).toEqual([
      'aggregator.yaml: detection.retrainEvery: expected a duration such as 500ms, 5s, 1m or 2h, or 0 (never), got "weekly" (line 1)',
    ]);
    const c = aggregator('detection: {retrainEvery: 0, history: 7d}\n'.replace('7d', '168h')).config;
    expect([c.detection.retrainEvery, c.detection.history]).toEqual([0, 168 * 3_600_000]);
  });

  it('print back in the file form', () => {
    expect(aggregator('grace: 90s\ndetection: {retrainEvery: 1440m}\n').effective).toMatchObject({ grace: '90s', detection: { retrainEvery: '24h', history: 0 } });
  });
});

describe('precedence: defaults < file < environment < flags', () => {
  it('each source overrides the one before, key by key', () => {
    const yaml = 'listen: 127.0.0.1:1111\ngrace: 3s\ndb: /file.db\ndetection: {model: dense, learnAfter: 5}\n';
    expect(aggregator('').config).toMatchObject({ listen: '127.0.0.1:7443', grace: 5000, db: '/var/lib/distappguard/aggregator/distappguard.db' });
    expect(aggregator(yaml).config).toMatchObject({ listen: '127.0.0.1:1111', grace: 3000, db: '/file.db', detection: { model: 'dense', learnAfter: 5, targetFpr: 0.0001 } });
    const env = { DISTAPPGUARD_LISTEN: '127.0.0.1:2222', DISTAPPGUARD_GRACE: '4s', DISTAPPGUARD_LEARN_AFTER: '7', DISTAPPGUARD_LOG_LEVEL: 'debug', DISTAPPGUARD_DB: '' };
    expect(aggregator(yaml, env).config).toMatchObject({ listen: '127.0.0.1:2222', grace: 4000, db: '/file.db', detection: { model: 'dense', learnAfter: 7 } });
    const f = flags('aggregator', [['listen', '127.0.0.1:3333'], ['learn-after', 9]]);
    expect(aggregator(yaml, env, f).config).toMatchObject({ listen: '127.0.0.1:3333', grace: 4000, db: '/file.db', detection: { model: 'dense', learnAfter: 9 } });
  });

  it('TLS files combine across sources; a target is replaced whole', () => {
    const c = aggregator('tls: {cert: /f/cert.pem, key: /f/key.pem, ca: /f/ca.pem}\n', { DISTAPPGUARD_TLS_KEY: '/e/key.pem' }, flags('aggregator', [['tls-cert', '/c/cert.pem']])).config;
    expect(c.tls).toEqual({ cert: '/c/cert.pem', key: '/e/key.pem', ca: '/f/ca.pem' });
    const f = new Layer('flags', 'the command line');
    f.set('target.command', ['nginx', '-g', 'daemon off;'], '-- COMMAND');
    expect(agent('aggregator: a:1\ntarget: {pids: [1, 2]}\n', {}, f).config.target).toEqual({ command: ['nginx', '-g', 'daemon off;'] });
    expect(agent('aggregator: a:1\ntarget: {pids: [1, 2]}\n', { DISTAPPGUARD_CONTAINER: 'abc' }).config.target).toEqual({ container: 'abc' });
  });

  it('environment values are converted like flags and named in errors', () => {
    const c = agent('aggregator: a:1\n', { DISTAPPGUARD_PID: '10, 11 12', DISTAPPGUARD_NO_LOCAL_DETECTION: 'true', DISTAPPGUARD_SPOOL_MAX: '1GiB' }).config;
    expect(c.target).toEqual({ pids: [10, 11, 12] });
    expect(c.model.localDetection).toBe(false);
    expect(c.spool.maxBytes).toBe(1 << 30);
    expect(agent('aggregator: a:1\ntarget: {pids: [1]}\nmodel: {localDetection: false}\n', { DISTAPPGUARD_NO_LOCAL_DETECTION: '0' }).config.model.localDetection).toBe(true);
    expect(problems(() => agent('aggregator: a:1\n', { DISTAPPGUARD_PID: '10 x', DISTAPPGUARD_WINDOW: '5 seconds', DISTAPPGUARD_COLLECTOR: 'dtrace' }))).toEqual([
      'DISTAPPGUARD_WINDOW: expected a duration such as 500ms, 5s, 1m or 2h, got "5 seconds"',
      'DISTAPPGUARD_COLLECTOR: expected one of auto, ebpf, strace, got "dtrace"',
      'DISTAPPGUARD_PID: expected a process id, got "x"',
    ]);
  });

  it('only flags typed on the command line count: a flag default never hides the file', async () => {
    const cmd = new Command('aggregator')
      .exitOverride()
      .option('--listen <addr>', '', '127.0.0.1:7443')
      .option('--grace <d>', '', '5s')
      .addOption(new Option('--model <kind>').choices(['msae', 'dense']).default('msae'))
      .action(() => undefined);
    await cmd.parseAsync(['--grace', '9s'], { from: 'user' });
    const l = flagLayer('aggregator', cmd);
    expect(l.data).toEqual({ grace: '9s' });
    expect(aggregator('listen: 127.0.0.1:1111\ngrace: 3s\ndetection: {model: dense}\n', {}, l).config).toMatchObject({ listen: '127.0.0.1:1111', grace: 9000, detection: { model: 'dense' } });
    expect(problems(() => aggregator('', {}, flags('aggregator', [['grace', 'x']])))).toEqual(['--grace: expected a duration such as 500ms, 5s, 1m or 2h, got "x"']);
  });

  it('fills the keys whose defaults come from others', () => {
    const c = agent('aggregator: unix:/run/dag.sock\ntarget: {pids: [1]}\nspool: {path: /srv/dag/spool.db}\n').config;
    expect([c.hostId, c.agentId, c.model.dir]).toEqual(['box', 'box', '/srv/dag/model']);
    expect(agent('aggregator: a:1\ntarget: {pids: [1]}\nhostId: web-1\n').config.agentId).toBe('web-1');
    expect(aggregator('db: /srv/a.db\n').config.detection.modelKey).toBe('/srv/a.db.model-key.pem');
  });

  it('the effective configuration resolves to itself', () => {
    for (const [kind, yaml] of [['aggregator', 'grace: 2s\nalerts: {webhook: [{url: "https://h/x", secretFile: /s}]}\n'], ['agent', 'aggregator: a:1\ntarget: {command: [sleep, "1"]}\nwindow: 1s\n']] as const) {
      const r = resolveConfig(kind, { file: parseConfigText(yaml, 'x.yaml') }, { hostname: 'box' });
      const again = resolveConfig(kind, { file: parseConfigText(JSON.stringify(r.effective), 'x.yaml') }, { hostname: 'other' });
      expect(again.config).toEqual(r.config);
    }
  });
});

/** every key path of a schema (objects walked, lists and leaves named) */
function keyPaths(s: unknown, prefix = ''): string[] {
  let t = s as { _zod: { def: { type: string; innerType?: unknown; shape?: Record<string, unknown> } } };
  while (['optional', 'default', 'prefault'].includes(t._zod.def.type)) t = t._zod.def.innerType as typeof t;
  if (t._zod.def.type !== 'object') return [prefix];
  return Object.entries(t._zod.def.shape!).flatMap(([k, v]) => keyPaths(v, prefix ? `${prefix}.${k}` : k));
}

describe('documented defaults and JSON Schema', () => {
  for (const kind of ['agent', 'aggregator'] as const) {
    it(`${kind}: the default file parses back to the built-in defaults and documents every key`, () => {
      const text = defaultYaml(kind);
      const env = envLayer(kind, { DISTAPPGUARD_AGGREGATOR: 'a:1' }); // the one key without a default
      expect(resolveConfig(kind, { file: parseConfigText(text, `${kind}.yaml`), env }, { hostname: 'box' }).effective).toEqual(
        resolveConfig(kind, { file: parseConfigText('', `${kind}.yaml`), env }, { hostname: 'box' }).effective,
      );
      const uncommented = text
        .split('\n')
        .map((l) => l.replace(/^(\s*)# /, '$1'))
        .join('\n');
      for (const path of keyPaths(SCHEMAS[kind])) {
        const last = path.split('.').pop()!;
        expect(uncommented, path).toMatch(new RegExp(`^\\s*(- )?${last}:`, 'm'));
      }
      expect(parse(text)).toBeTypeOf('object');
    });

    it(`${kind}: deploy/ holds the generated files (npm run build && npm run config:files)`, () => {
      expect(readFileSync(join(ROOT, `deploy/schema/${kind}.schema.json`), 'utf8')).toBe(jsonSchemaText(kind));
      expect(readFileSync(join(ROOT, `deploy/config/${kind}.yaml`), 'utf8')).toBe(defaultYaml(kind, { schemaPath: `../schema/${kind}.schema.json` }));
    });

    it(`${kind}: the operations guide names every key`, () => {
      const doc = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
      for (const path of keyPaths(SCHEMAS[kind])) expect(doc, path).toContain(`\`${path}\``);
    });
  }

  it('the JSON Schema refuses unknown keys and carries the defaults', () => {
    const s = JSON.parse(jsonSchemaText('aggregator'));
    expect(s.additionalProperties).toBe(false);
    expect(s.properties.grace).toMatchObject({ default: '5s', type: ['string', 'number'] });
    expect(s.properties.alerts.properties.webhook.items.required).toEqual(['url', 'secretFile']);
  });
});
