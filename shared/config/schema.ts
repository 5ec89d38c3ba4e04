/**
 * The two configuration files, /etc/distappguard/aggregator.yaml and agent.yaml, as zod
 * schemas: what each key holds, its default, and its description (the descriptions become
 * the comments of `distappguard config defaults` and the JSON Schema for editors).
 *
 * Every object is strict: a key the program does not know is an error, not silently ignored
 * (a typo in a security setting must not pass). Durations are written "5s", "500ms", "1m",
 * "2h" and are milliseconds (numbers) in the resolved configuration.
 *
 * Keys without a static default (the aggregator's model key, the agent's host id, agent id,
 * model folder) are filled in by resolve.ts from other keys or the machine.
 */
import * as z from 'zod';
import { SYSLOG_FACILITIES, count, duration, file, grpcAddress, httpListen, httpUrl, nonEmpty, syslogUrl } from './fields.js';

export type Kind = 'agent' | 'aggregator';

/** "256MiB", "1GiB", "500KB" or a number of bytes → bytes */
function bytes() {
  const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1 << 20, mb: 1e6, mib: 1 << 20, g: 1 << 30, gb: 1e9, gib: 1 << 30 };
  const hint = 'a size in bytes such as 268435456, 256MiB or 1GiB';
  return z
    .codec(z.union([z.string(), z.number()], { error: `expected ${hint}` }), z.number(), {
      decode: (v, ctx) => {
        const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(String(v));
        const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
        const n = m && unit !== undefined ? Number(m[1]) * unit : NaN;
        if (!(n > 0) || !Number.isSafeInteger(n)) {
          ctx.issues.push({ code: 'custom', message: `expected ${hint}, greater than zero`, input: v });
          return 0;
        }
        return n;
      },
      encode: (n) => (n % (1 << 30) === 0 ? `${n / (1 << 30)}GiB` : n % (1 << 20) === 0 ? `${n / (1 << 20)}MiB` : String(n)),
    })
    .meta({ pattern: '^\\s*\\d+\\s*([kKmMgG]i?[bB]?|[bB])?\\s*$' });
}

const tlsFiles = (other: string) =>
  z.strictObject({
    cert: file('a PEM certificate file').describe("this side's certificate chain (PEM)"),
    key: file('a PEM private key file').describe("this side's private key (PEM)"),
    ca: file('a PEM CA certificate file').describe(`the CA that signs the ${other}' certificates (PEM)`),
  });

const syslogOutput = z.strictObject({
  url: syslogUrl.describe('udp://HOST:514, tcp://HOST:601 or tls://HOST:6514 (RFC 5424; TCP and TLS with octet counting, RFC 6587/5425)'),
  ca: file('a PEM CA certificate file').optional().describe('tls:// only: the CA that signs the syslog server certificate (default: the system CAs)'),
  facility: z.enum(SYSLOG_FACILITIES).default('local0').describe('syslog facility'),
  appName: z
    .string({ error: 'expected an APP-NAME of 1 to 48 printable ASCII characters' })
    .regex(/^[!-~]{1,48}$/, { error: 'expected an APP-NAME of 1 to 48 printable ASCII characters, no spaces' })
    .default('distappguard')
    .describe('RFC 5424 APP-NAME'),
});

const webhookOutput = z.strictObject({
  url: httpUrl.describe('where alerts are POSTed as JSON'),
  secretFile: file().describe('file holding the HMAC-SHA256 secret that signs each request (a header carries the signature)'),
  ca: file('a PEM CA certificate file').optional().describe('https:// only: the CA that signs the receiver certificate (default: the system CAs)'),
  timeout: duration().prefault('5s').describe('how long one request may take'),
  retries: count().default(5).describe('attempts after the first one fails, with growing pauses'),
});

export const aggregatorSchema = z
  .strictObject({
    listen: grpcAddress.default('127.0.0.1:7443').describe('where agents connect: HOST:PORT or unix:/path; beyond loopback only with tls'),
    db: file().default('/var/lib/distappguard/aggregator/distappguard.db').describe('SQLite file: windows, models, alerts'),
    grace: duration().prefault('5s').describe('how long after a window ends to wait for missing agents'),
    tls: tlsFiles('agents')
      .optional()
      .meta({
        description: 'mutual TLS with the agents: all three files, or none (then listen only on loopback or a unix: socket)',
        examples: [{ cert: '/etc/distappguard/tls/aggregator.pem', key: '/etc/distappguard/tls/aggregator.key', ca: '/etc/distappguard/tls/ca.pem' }],
      }),
    detection: z
      .strictObject({
        learnAfter: count().default(0).describe('train automatically once an application without a model has this many windows (0: only `distappguard train`)'),
        retrainEvery: duration('never').prefault('0').describe('retrain a model older than this (0: never)'),
        history: duration('all windows').prefault('0').describe('automatic and scheduled trainings use the windows of this last stretch (0: all)'),
        model: z.enum(['msae', 'dense']).default('msae').describe('the model trained automatically'),
        targetFpr: z
          .number({ error: 'expected a rate between 0 and 1' })
          .gt(0, { error: 'expected a rate between 0 and 1' })
          .lt(1, { error: 'expected a rate between 0 and 1' })
          .default(0.0001)
          .describe('false alarms per window to calibrate the threshold for'),
        modelKey: file()
          .optional()
          .meta({ description: "Ed25519 key that signs models for the agents, created (0600) when missing (default: the db path + '.model-key.pem')", examples: ['/var/lib/distappguard/aggregator/model-key.pem'] }),
      })
      .prefault({})
      .describe('anomaly detection'),
    alerts: z
      .strictObject({
        jsonl: file()
          .optional()
          .meta({ description: 'also write alerts as JSON Lines to this file (under systemd: in /var/log/distappguard or the state directory, the rest is read-only)', examples: ['/var/log/distappguard/alerts.jsonl'] }),
        syslog: z
          .array(syslogOutput, { error: 'expected a list of syslog outputs (- url: …)' })
          .default([])
          .meta({ description: 'syslog receivers (RFC 5424)', examples: [[{ url: 'tls://siem.example.org:6514', ca: '/etc/distappguard/tls/siem-ca.pem', facility: 'local0' }]] }),
        webhook: z
          .array(webhookOutput, { error: 'expected a list of webhooks (- url: …)' })
          .default([])
          .meta({ description: 'HTTP endpoints that receive each alert as a signed JSON POST', examples: [[{ url: 'https://soc.example.org/hooks/distappguard', secretFile: '/etc/distappguard/webhook.secret', timeout: '5s', retries: 5 }]] }),
      })
      .prefault({})
      .describe('where alerts go besides the database; each output can fail without holding up detection'),
    http: z
      .strictObject({
        listen: httpListen.default('127.0.0.1:9443').describe('web console, /metrics, /healthz and /readyz: HOST:PORT, unix:/path, or off; beyond loopback only with http.tls and http.token'),
        token: file()
          .optional()
          .meta({ description: 'file holding the bearer token the console and API ask for', examples: ['/etc/distappguard/console.token'] }),
        tls: z
          .strictObject({
            cert: file('a PEM certificate file').describe('the server certificate (PEM)'),
            key: file('a PEM private key file').describe('its private key (PEM)'),
            ca: file('a PEM CA certificate file').optional().describe('when set, clients must present a certificate signed by this CA'),
          })
          .optional()
          .meta({ description: 'HTTPS for the console and metrics', examples: [{ cert: '/etc/distappguard/tls/console.pem', key: '/etc/distappguard/tls/console.key' }] }),
      })
      .prefault({})
      .describe('the HTTP(S) server'),
  })
  .meta({ title: 'DistAppGuard aggregator configuration (/etc/distappguard/aggregator.yaml)' });

export const agentSchema = z
  .strictObject({
    aggregator: grpcAddress
      .optional()
      .meta({ description: 'the aggregator: HOST:PORT or unix:/path (required)', examples: ['aggregator.example.org:7443'] }),
    hostId: nonEmpty('a host id')
      .optional()
      .meta({ description: "this host's id (default: the machine's hostname)", examples: ['web-1'] }),
    app: nonEmpty('an application name').default('default').describe('the application this agent traces'),
    agentId: nonEmpty('an agent id')
      .optional()
      .meta({ description: 'agent id (default: the host id)', examples: ['web-1'] }),
    spool: z
      .strictObject({
        path: file().default('/var/lib/distappguard/agent/spool.db').describe('durable spool of windows the aggregator has not acknowledged yet'),
        maxBytes: bytes().prefault('256MiB').describe('size bound: the oldest windows go first'),
        maxAge: duration().prefault('24h').describe('age bound'),
      })
      .prefault({})
      .describe('the spool'),
    window: duration().prefault('5s').describe('window length'),
    lateness: duration().prefault('1s').describe('how long a window waits for late events'),
    drainTimeout: duration().prefault('30s').describe('at the end, how long to wait for the aggregator to acknowledge everything'),
    collector: z.enum(['auto', 'ebpf', 'strace']).default('auto').describe('ebpf (bpftrace), strace, or auto: eBPF when it works, else strace'),
    target: z
      .strictObject({
        command: z
          .array(nonEmpty('a command word'), { error: 'expected a list of command words' })
          .min(1, { error: 'expected a command and its arguments, not an empty list' })
          .optional()
          .describe('run this command and trace it'),
        pids: z
          .array(z.int({ error: 'expected a process id' }).positive({ error: 'expected a process id' }), { error: 'expected a list of process ids' })
          .min(1, { error: 'expected at least one process id' })
          .optional()
          .describe('attach to these running processes'),
        container: nonEmpty('a container id or cgroup path').optional().describe('attach to every process of this container (id or cgroup path)'),
      })
      .optional()
      .meta({ description: 'what to trace: exactly one of command, pids, container (required unless given on the command line)', examples: [{ container: 'f3a9c2d1e0b4' }, { pids: [1234] }, { command: ['/usr/sbin/nginx', '-g', 'daemon off;'] }] }),
    tls: tlsFiles('aggregator')
      .optional()
      .meta({
        description: 'mutual TLS with the aggregator: all three files, or none',
        examples: [{ cert: '/etc/distappguard/tls/agent.pem', key: '/etc/distappguard/tls/agent.key', ca: '/etc/distappguard/tls/ca.pem' }],
      }),
    model: z
      .strictObject({
        dir: file()
          .optional()
          .meta({ description: 'where the model pushed by the aggregator is kept (default: model/ beside spool.path)', examples: ['/var/lib/distappguard/agent/model'] }),
        key: file()
          .optional()
          .meta({ description: "the aggregator's model public key (PEM) to trust (default: the first key seen is pinned)", examples: ['/etc/distappguard/model-key.pub.pem'] }),
        localDetection: z.boolean({ error: 'expected true or false' }).default(true).describe('score windows on this host too'),
      })
      .prefault({})
      .describe('the model the aggregator pushes'),
    http: z
      .strictObject({
        listen: httpListen.default('127.0.0.1:9464').describe('/metrics, /healthz and /readyz: HOST:PORT, unix:/path, or off'),
      })
      .prefault({})
      .describe('the HTTP server'),
  })
  .meta({ title: 'DistAppGuard agent configuration (/etc/distappguard/agent.yaml)' });

export const SCHEMAS = { agent: agentSchema, aggregator: aggregatorSchema } as const;

/** what the schema alone gives (before resolve.ts fills the keys that depend on others) */
export type AggregatorParsed = z.output<typeof aggregatorSchema>;
export type AgentParsed = z.output<typeof agentSchema>;

/** exactly one kind of target */
export type TargetConfig = { command: string[] } | { pids: number[] } | { container: string };

/**
 * The aggregator's resolved configuration: defaults < YAML file < environment < flags,
 * validated. Durations are milliseconds; the model key path is filled in.
 */
export type AggregatorConfig = Omit<AggregatorParsed, 'detection'> & {
  detection: Omit<AggregatorParsed['detection'], 'modelKey'> & { modelKey: string };
};

/** The agent's resolved configuration; host id, agent id and model folder filled in. */
export type AgentConfig = Omit<AgentParsed, 'aggregator' | 'hostId' | 'agentId' | 'target' | 'model'> & {
  aggregator: string;
  hostId: string;
  agentId: string;
  /** undefined only when the command line replays a recorded trace instead */
  target?: TargetConfig;
  model: Omit<AgentParsed['model'], 'dir'> & { dir: string };
};

export type ConfigOf<K extends Kind> = K extends 'agent' ? AgentConfig : AggregatorConfig;
