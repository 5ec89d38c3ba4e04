/**
 * Alert outputs against real receivers on loopback: syslog over UDP, TCP and TLS (a CA and a
 * server certificate made with openssl), webhooks over HTTP and HTTPS that check the HMAC
 * signature, and the JSON Lines file. Alerts are real: recorded in a real store by a
 * DetectionService (scored from windows by a trained model in the fault test). Faults: a webhook
 * answering 500 then 200, 429 with Retry-After, 400; a webhook with nothing listening that comes
 * up later; a syslog TCP receiver that goes away and comes back; an aggregator restart with
 * undelivered alerts; a backlog over its bound.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { pino } from 'pino';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DetectionService, type DetectionOptions } from '../../aggregator/detect.js';
import { alertOutputsFromConfig, type AlertsConfig } from '../../aggregator/alerts/index.js';
import { SD_ID } from '../../aggregator/alerts/syslog.js';
import { ALERT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, verifySignature } from '../../aggregator/alerts/webhook.js';
import { trainFromStore } from '../../aggregator/model/trainer.js';
import { DeliveryCursors } from '../../aggregator/store/deliveries.js';
import { severityOf, type AlertIn } from '../../aggregator/store/detection.js';
import { Store } from '../../aggregator/store/store.js';
import type { Edge, MergedWindow } from '../../shared/graph.js';
import { generate, type Template } from '../../bench/load-windows.js';
import { makeCerts, sleep, waitFor, type TlsPaths } from './fault-helpers.js';

const W = 1000;
const T0 = 1_800_000_000_000;
const FAST = { retries: 2, backoffMs: 20, maxBackoffMs: 100, downRetryMs: 150, drainMs: 500 };

// ------------------------------------------------------------------ receivers

/** Frees a port and returns it: a destination with nothing listening (until a receiver takes it). */
async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

class UdpReceiver {
  readonly messages: string[] = [];
  private sock!: DgramSocket;
  port = 0;
  async start(): Promise<this> {
    this.sock = createSocket('udp4');
    this.sock.on('message', (m) => this.messages.push(m.toString('utf8')));
    await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', r));
    this.port = this.sock.address().port;
    return this;
  }
  stop(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

/** Syslog over TCP or TLS with RFC 6587 octet counting; anything else in the stream fails the test. */
class StreamReceiver {
  readonly messages: string[] = [];
  readonly framingErrors: string[] = [];
  readonly connections: number[] = [];
  private server: NetServer | undefined;
  private readonly socks = new Set<Socket>();
  constructor(private readonly tls?: { key: Buffer; cert: Buffer }) {}
  port = 0;

  async start(port = 0): Promise<this> {
    const onConn = (s: Socket) => {
      this.socks.add(s);
      this.connections.push(Date.now());
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const sp = buf.indexOf(0x20);
          if (sp < 0) break;
          const n = Number(buf.subarray(0, sp).toString());
          if (!Number.isInteger(n) || n <= 0 || sp > 6) {
            this.framingErrors.push(buf.toString());
            buf = Buffer.alloc(0);
            break;
          }
          if (buf.length < sp + 1 + n) break;
          this.messages.push(buf.subarray(sp + 1, sp + 1 + n).toString('utf8'));
          buf = buf.subarray(sp + 1 + n);
        }
      });
      s.on('error', () => {});
      s.on('close', () => this.socks.delete(s));
    };
    this.server = this.tls ? createTlsServer({ key: this.tls.key, cert: this.tls.cert }, onConn) : createNetServer(onConn);
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Goes away: listener closed, connections cut. */
  async stop(): Promise<void> {
    for (const s of this.socks) s.destroy();
    await new Promise((r) => this.server?.close(r));
    this.server = undefined;
  }
}

interface Hit {
  id: number;
  headerId: string;
  status: number;
  verified: boolean;
  at: number;
  body: Record<string, unknown>;
}

/** A webhook receiver that checks the signature the documented way and answers from a script. */
class WebhookReceiver {
  readonly hits: Hit[] = [];
  /** answers for the next requests, in order; then 200 */
  script: { status: number; headers?: Record<string, string> }[] = [];
  private server: HttpServer | undefined;
  port = 0;
  constructor(
    private readonly secret: string,
    private readonly tls?: { key: Buffer; cert: Buffer },
  ) {}

  async start(port = 0): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const verified = verifySignature(this.secret, { timestamp: req.headers[TIMESTAMP_HEADER] as string, signature: req.headers[SIGNATURE_HEADER] as string }, raw);
        const body = JSON.parse(raw.toString()) as Record<string, unknown>;
        const answer = this.script.shift() ?? { status: verified ? 200 : 401 };
        this.hits.push({ id: body.id as number, headerId: req.headers[ALERT_ID_HEADER] as string, status: answer.status, verified, at: Date.now(), body });
        res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
        res.end(answer.status >= 400 ? `nope ${answer.status}` : 'ok');
      });
    };
    this.server = this.tls ? createHttpsServer({ key: this.tls.key, cert: this.tls.cert }, handler) : createHttpServer(handler);
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** ids answered 2xx, in order */
  accepted(): number[] {
    return this.hits.filter((h) => h.status < 300).map((h) => h.id);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
    this.server = undefined;
  }
}

// ------------------------------------------------------------------ alerts

const id = (n: number) => n.toString(16).padStart(16, '0');
const e = (s: number, src: string, d: number, dst: string, bytes: number, kind: Edge['kind'] = 'net'): Edge => ({ srcId: id(s), dstId: id(d), src, dst, kind, bytes, count: 1 });

/** An alert as the scoring raises it: window i (consecutive windows share an incident). */
function alertIn(i: number, over: Partial<AlertIn> = {}): AlertIn {
  const score = 3 + i / 10;
  const newEdges = over.explanation?.newEdges ?? [];
  return {
    app: 'epc',
    windowStart: T0 + i * W,
    windowMs: W,
    source: 'aggregator',
    modelId: null,
    score,
    threshold: 1.2,
    anomalous: true,
    severity: severityOf(score, 1.2, newEdges.length),
    explanation: {
      groups: [{ name: 'mme', error: 0.8, ratio: 6.5 }],
      edges: [{ srcId: id(2), dstId: id(3), src: 'mme/ITTI 3', dst: 'hss/diameter', kind: 'net', group: 'mme', observedBytes: 6000, expectedBytes: 1500, error: 2.4 }],
      newEdges,
    },
    ...over,
  };
}

/** Splits RFC 5424 messages into the fields the tests look at. */
function syslogFields(m: string): { pri: number; msgId: string; params: Record<string, string>; msg: string } {
  const h = /^<(\d+)>1 \S+ \S+ distappguard \d+ (\S+) \[(\S+) (.*?)\] (.*)$/.exec(m);
  if (!h) throw new Error(`not an alert message: ${m}`);
  expect(h[3]).toBe(SD_ID);
  const params: Record<string, string> = {};
  for (const p of h[4].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) params[p[1]] = p[2].replace(/\\(.)/g, '$1');
  return { pri: Number(h[1]), msgId: h[2], params, msg: h[5] };
}

// ------------------------------------------------------------------ fixtures

let certs: TlsPaths;
let certDir: string;
let dir: string;
let secretFile: string;
let secret: string;
let logs: Record<string, unknown>[];
let stops: (() => Promise<unknown> | unknown)[];

const log = () => pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
const logged = (re: RegExp) => logs.filter((l) => re.test(String(l.msg)));
const tlsKeys = () => ({ key: readFileSync(certs.serverKey), cert: readFileSync(certs.serverCert) });

beforeAll(() => {
  certDir = mkdtempSync(join(tmpdir(), 'dag-alert-certs-'));
  certs = makeCerts(certDir, '127.0.0.1');
  return () => rmSync(certDir, { recursive: true, force: true });
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dag-alert-out-'));
  secret = randomBytes(32).toString('hex');
  secretFile = join(dir, 'webhook.secret');
  writeFileSync(secretFile, secret + '\n', { mode: 0o600 });
  logs = [];
  stops = [];
});

afterEach(async () => {
  for (const s of stops.reverse()) await s();
  rmSync(dir, { recursive: true, force: true });
});

/** A store and a DetectionService with the outputs of `alerts` (as the aggregator makes them from its config). */
function service(alerts: AlertsConfig, extra: Partial<DetectionOptions> = {}): { store: Store; svc: DetectionService; close: () => Promise<void> } {
  const store = Store.open(join(dir, 'agg.db'));
  const l = log();
  const svc = new DetectionService({ store, log: l, outputs: alertOutputsFromConfig(alerts, { log: l }), outputOptions: FAST, ...extra });
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= svc.close().then(() => store.close()));
  stops.push(close);
  return { store, svc, close };
}

describe('alert outputs', () => {
  it('delivers each alert once to JSON Lines, syslog over UDP, TCP and TLS, and signed webhooks over HTTP and HTTPS', async () => {
    const udp = await new UdpReceiver().start();
    const tcp = await new StreamReceiver().start();
    const tls = await new StreamReceiver(tlsKeys()).start();
    const hook = await new WebhookReceiver(secret).start();
    const hooks = await new WebhookReceiver(secret, tlsKeys()).start();
    stops.push(() => udp.stop(), () => tcp.stop(), () => tls.stop(), () => hook.stop(), () => hooks.stop());
    const jsonl = join(dir, 'out', 'alerts.jsonl');
    const { store, svc } = service({
      jsonl,
      syslog: [
        { url: `udp://127.0.0.1:${udp.port}` },
        { url: `tcp://127.0.0.1:${tcp.port}`, facility: 'authpriv' },
        { url: `tls://127.0.0.1:${tls.port}`, ca: certs.ca, appName: 'distappguard' },
      ],
      webhook: [
        { url: `http://127.0.0.1:${hook.port}/hooks/dag?token=abc`, secretFile, timeout: '2s', retries: 3 },
        { url: `https://127.0.0.1:${hooks.port}/hooks/dag`, secretFile, ca: certs.ca },
      ],
    });
    expect(svc.outputs!.names).toEqual([
      `jsonl:${jsonl}`,
      `syslog:udp://127.0.0.1:${udp.port}`,
      `syslog:tcp://127.0.0.1:${tcp.port}`,
      `syslog:tls://127.0.0.1:${tls.port}`,
      `webhook:http://127.0.0.1:${hook.port}/hooks/dag`, // no query string: it may hold a token
      `webhook:https://127.0.0.1:${hooks.port}/hooks/dag`,
    ]);
    // two consecutive windows (one incident), then a window with a never-seen edge (another)
    const rogue = { src: 'sgw/s11', dst: 'rogue/main', srcId: id(9), dstId: id(8), kind: 'net' as const, bytes: 500, count: 1 };
    const raised = [
      svc.raise(alertIn(0)),
      svc.raise(alertIn(1)),
      svc.raise(alertIn(5, { score: 0.4, anomalous: false, severity: 'low', explanation: { groups: [], edges: [], newEdges: [rogue] } })),
    ];
    const ids = raised.map((a) => a.id);
    await svc.idle();
    await waitFor('the UDP datagrams', () => udp.messages.length === 3, 10_000, 10);

    for (const c of Object.values(svc.outputs!.counters)) expect(c).toEqual({ delivered: 3, retried: 0, failed: 0, dropped: 0, queued: 0, up: 1 });
    const lines = readFileSync(jsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.id, l.incident, l.newIncident])).toEqual([
      [ids[0], raised[0].incidentId, true],
      [ids[1], raised[0].incidentId, false],
      [ids[2], raised[2].incidentId, true],
    ]);

    for (const [r, facility] of [[udp, 16], [tcp, 10], [tls, 16]] as const) {
      const m = r.messages.map(syslogFields);
      expect(m.map((x) => Number(x.params.id))).toEqual(ids);
      expect(m.map((x) => x.msgId)).toEqual(['INCIDENT', 'ALERT', 'INCIDENT']);
      expect(m.map((x) => x.pri)).toEqual([facility * 8 + 2, facility * 8 + 2, facility * 8 + 5]);
      expect(m[0].params).toMatchObject({ app: 'epc', severity: 'high', threshold: '1.2', microservice: 'mme', window: new Date(T0).toISOString() });
      expect(m[2].msg).toContain('never seen: sgw/s11 -> rogue/main (net) 500 B');
    }
    expect([tcp.framingErrors, tls.framingErrors]).toEqual([[], []]);
    expect(tcp.connections).toHaveLength(1); // one connection for all alerts

    for (const r of [hook, hooks]) {
      expect(r.hits.map((h) => [h.id, h.headerId, h.verified])).toEqual(ids.map((i) => [i, String(i), true]));
      expect(r.hits[2].body).toMatchObject({ type: 'distappguard.alert', severity: 'low', newEdges: [expect.objectContaining({ dst: 'rogue/main' })] });
    }
    // the recipe refuses a changed body, another secret, and an old timestamp
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = signature(secret, ts, '{"id":1}');
    expect(verifySignature(secret, { timestamp: ts, signature: sig }, '{"id":1}')).toBe(true);
    expect(verifySignature(secret, { timestamp: ts, signature: sig }, '{"id":2}')).toBe(false);
    expect(verifySignature('another secret', { timestamp: ts, signature: sig }, '{"id":1}')).toBe(false);
    expect(verifySignature(secret, { timestamp: ts, signature: sig }, '{"id":1}', { nowS: Number(ts) + 3600 })).toBe(false);

    // every output's cursor is at the last alert
    const cursors = new DeliveryCursors(store.connection).list();
    expect(cursors.map((c) => c.deliveredThrough)).toEqual(Array(6).fill(ids[2]));
    expect(logged(/alert output configured/)).toHaveLength(6);
  });

  it('refuses a configuration that cannot work, naming the key', () => {
    const l = log();
    expect(() => alertOutputsFromConfig({ webhook: [{ url: 'https://x/h', secretFile: join(dir, 'missing') }] }, { log: l })).toThrow(
      /^alerts\.webhook\[0\]: cannot read the secret file .*missing: ENOENT/,
    );
    writeFileSync(join(dir, 'short'), 'abc');
    expect(() => alertOutputsFromConfig({ webhook: [{ url: 'https://x/h', secretFile: join(dir, 'short') }] }, { log: l })).toThrow(/shorter than 16 bytes/);
    expect(() => alertOutputsFromConfig({ webhook: [{ url: 'ftp://x/h', secretFile }] }, { log: l })).toThrow(/alerts\.webhook\[0\]: .*http or https/);
    expect(() => alertOutputsFromConfig({ webhook: [{ url: 'https://x/h', secretFile, timeout: 'soon' }] }, { log: l })).toThrow(/timeout: 'soon' is not a duration/);
    expect(() => alertOutputsFromConfig({ syslog: [{ url: 'tcp://siem' }, { url: 'tcp://siem:99', facility: 'local9' }] }, { log: l })).toThrow(
      /alerts\.syslog\[1\]: facility 'local9' is not a syslog facility/,
    );
    expect(() => alertOutputsFromConfig({ syslog: [{ url: 'udp://siem', ca: certs.ca }] }, { log: l })).toThrow(/alerts\.syslog\[0\]: ca is for tls:\/\/ only/);
    expect(() => alertOutputsFromConfig({ syslog: [{ url: 'tcp://siem' }, { url: 'tcp://siem:601' }] }, { log: l })).toThrow(/syslog:tcp:\/\/siem:601 is configured twice/);
  });

  it('retries a webhook that answers 500 twice then 200 (delivered once), waits out a 429 Retry-After, and does not retry a 400', async () => {
    const hook = await new WebhookReceiver(secret).start();
    stops.push(() => hook.stop());
    const { svc } = service({ webhook: [{ url: `http://127.0.0.1:${hook.port}/h`, secretFile, retries: 3 }] });
    const name = `webhook:http://127.0.0.1:${hook.port}/h`;
    const c = svc.outputs!.counters[name];

    hook.script = [{ status: 500 }, { status: 503 }];
    const a1 = svc.raise(alertIn(0));
    await waitFor('the third try', () => c.delivered === 1, 10_000, 10);
    expect(hook.hits.map((h) => [h.id, h.status])).toEqual([[a1.id, 500], [a1.id, 503], [a1.id, 200]]);
    expect(c).toMatchObject({ delivered: 1, retried: 2, failed: 0, dropped: 0, up: 1 });
    expect(logged(/alert delivery to .* failed: HTTP 500: nope 500; retrying/)).toHaveLength(1);

    hook.script = [{ status: 429, headers: { 'retry-after': '1' } }];
    const a2 = svc.raise(alertIn(1));
    await waitFor('the try after Retry-After', () => c.delivered === 2, 10_000, 10);
    const [busy, ok] = hook.hits.slice(3);
    expect([busy.id, busy.status, ok.id, ok.status]).toEqual([a2.id, 429, a2.id, 200]);
    expect(ok.at - busy.at).toBeGreaterThanOrEqual(950);

    hook.script = [{ status: 400 }];
    const a3 = svc.raise(alertIn(2));
    const a4 = svc.raise(alertIn(3));
    await svc.idle();
    expect(hook.hits.slice(5).map((h) => [h.id, h.status])).toEqual([[a3.id, 400], [a4.id, 200]]);
    expect(c).toMatchObject({ delivered: 3, retried: 3, failed: 1, dropped: 1, queued: 0, up: 1 });
    expect(logged(/refused by webhook:.*HTTP 400: nope 400; not retried/)[0]).toMatchObject({ output: name, alert: a3.id, reason: 'HTTP 400: nope 400' });
    expect(svc.counters.outputFailures).toBe(1);
    // the refused alert is still in the store
    expect(svc.det.alert(a3.id)).toBeDefined();
  });

  it('a webhook with nothing listening: scoring goes on, retries and failures are counted, the backlog goes out once it listens', async () => {
    // a small trained model, so that alerts come from scoring windows
    const template: Template = {
      edges: [e(1, 'enb/s1ap', 2, 'mme/ITTI 3', 4000), e(2, 'mme/ITTI 3', 3, 'hss/diameter', 1500), e(3, 'hss/diameter', 2, 'mme/ITTI 3', 2500), e(2, 'mme/ITTI 3', 4, 'sgw/s11', 1200)],
    };
    const merged = (w: { windowStart: number; edges: Edge[] }): MergedWindow & { latePartials: number } => ({ app: 'epc', windowStart: w.windowStart, windowMs: W, hosts: ['h1'], edges: w.edges, matchedFlows: 0, unmatchedFlows: 0, latePartials: 0 });
    const port = await freePort();
    const jsonl = join(dir, 'alerts.jsonl');
    const { store, svc } = service({ jsonl, webhook: [{ url: `http://127.0.0.1:${port}/h`, secretFile, timeout: 1000 }] });
    for (const w of generate(template, 30, T0, W, { seed: 1 })) store.saveMergedWindow(merged(w), 'closed');
    await trainFromStore(store, svc.det, { app: 'epc', seed: 1, epochs: 3, hostModels: false });

    const name = `webhook:http://127.0.0.1:${port}/h`;
    const c = svc.outputs!.counters[name];
    // windows with an edge never seen: each one an alert
    const rogue = generate(template, 5, T0 + 100 * W, W, { seed: 4 }, () => 1).map((w) => merged({ ...w, edges: [...w.edges, e(9, 'sgw/s11', 8, 'rogue/main', 500)] }));
    for (const w of rogue) svc.onWindow(w);
    await svc.idle(); // scored, JSON Lines written; the webhook is waiting to retry
    expect(svc.counters.scored).toBe(5);
    expect(c.delivered).toBe(0);
    const ids = svc.det.listAlerts({ app: 'epc' }).map((a) => a.id).sort((a, b) => a - b);
    expect(ids).toHaveLength(5);
    expect(readFileSync(jsonl, 'utf8').trim().split('\n')).toHaveLength(5);
    await waitFor('the webhook output to be down', () => c.up === 0, 10_000, 10);
    expect(c).toMatchObject({ delivered: 0, failed: 1, dropped: 0, queued: 5 });
    expect(c.retried).toBeGreaterThanOrEqual(FAST.retries + 1);
    expect(logged(/is down: .*ECONNREFUSED/)[0]).toMatchObject({ output: name, retries: FAST.retries });
    expect(svc.counters.outputFailures).toBe(1);

    // scoring still goes on while it is down
    const more = generate(template, 2, T0 + 200 * W, W, { seed: 5 }, () => 1).map((w) => merged({ ...w, edges: [...w.edges, e(9, 'sgw/s11', 8, 'rogue/main', 700)] }));
    for (const w of more) svc.onWindow(w);
    await svc.idle();
    expect(svc.counters.scored).toBe(7);
    expect(c.queued).toBe(7);

    const hook = await new WebhookReceiver(secret).start(port);
    stops.push(() => hook.stop());
    await waitFor('the backlog', () => c.delivered === 7, 10_000, 10);
    const all = svc.det.listAlerts({ app: 'epc' }).map((a) => a.id).sort((a, b) => a - b);
    expect(hook.accepted()).toEqual(all); // in order, each once
    expect(c).toMatchObject({ delivered: 7, failed: 1, dropped: 0, queued: 0, up: 1 });
    expect(logged(/is back: sending the alerts that waited/)).toHaveLength(1);
  });

  it('syslog over TCP: a receiver that goes away and comes back gets every alert after the reconnection', async () => {
    const tcp = await new StreamReceiver().start();
    const port = tcp.port;
    stops.push(() => tcp.stop());
    const { svc } = service({ syslog: [{ url: `tcp://127.0.0.1:${port}` }] });
    const c = svc.outputs!.counters[`syslog:tcp://127.0.0.1:${port}`];
    const a1 = svc.raise(alertIn(0));
    await svc.idle();
    await waitFor('the first message', () => tcp.messages.length === 1, 10_000, 10);

    await tcp.stop(); // the SIEM restarts: connection cut, nothing listening
    await sleep(50);
    const a2 = svc.raise(alertIn(1));
    const a3 = svc.raise(alertIn(2));
    await waitFor('the syslog output to be down', () => c.up === 0, 10_000, 10);
    expect(c).toMatchObject({ delivered: 1, failed: 1, queued: 2 });
    expect(logged(/syslog:tcp:.* is down: .*ECONNREFUSED/)).toHaveLength(1);

    await tcp.start(port);
    await waitFor('the messages after the reconnection', () => tcp.messages.length === 3, 10_000, 10);
    expect(tcp.messages.map((m) => Number(syslogFields(m).params.id))).toEqual([a1.id, a2.id, a3.id]);
    expect(tcp.framingErrors).toEqual([]);
    expect(tcp.connections).toHaveLength(2);
    await waitFor('the counters', () => c.delivered === 3 && c.up === 1, 10_000, 10);
  });

  it('JSON Lines that cannot be written is retried and catches up, in order, without a broken line', async () => {
    const jsonl = join(dir, 'alerts.jsonl');
    const { svc } = service({ jsonl });
    const c = svc.outputs!.counters[`jsonl:${jsonl}`];
    const a1 = svc.raise(alertIn(0));
    await svc.idle();
    // someone puts a directory where the file was (as good as a full disk: every write fails)
    renameSync(jsonl, `${jsonl}.old`);
    mkdirSync(jsonl);
    const a2 = svc.raise(alertIn(1));
    const a3 = svc.raise(alertIn(2));
    await waitFor('the JSON Lines output to be down', () => c.up === 0, 10_000, 10);
    expect(logged(/jsonl:.* is down: .*EISDIR/)).toHaveLength(1);
    rmSync(jsonl, { recursive: true });
    await waitFor('the lines', () => c.delivered === 3, 10_000, 10);
    const ids = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { id: number }).id);
    expect([...ids(`${jsonl}.old`), ...ids(jsonl)]).toEqual([a1.id, a2.id, a3.id]);
  });

  it('after an aggregator restart the alerts not delivered before are sent, none twice', async () => {
    const port = await freePort();
    const tls = await new StreamReceiver(tlsKeys()).start();
    stops.push(() => tls.stop());
    const config: AlertsConfig = {
      syslog: [{ url: `tls://127.0.0.1:${tls.port}`, ca: certs.ca }],
      webhook: [{ url: `http://127.0.0.1:${port}/h`, secretFile }],
    };
    const before = await new WebhookReceiver(secret).start(port);
    const first = service(config);
    const a1 = first.svc.raise(alertIn(0));
    await first.svc.idle();
    expect(before.accepted()).toEqual([a1.id]);
    await before.stop(); // the SOAR goes down
    const a2 = first.svc.raise(alertIn(1));
    const a3 = first.svc.raise(alertIn(5));
    await waitFor('the webhook output to be down', () => first.svc.outputs!.counters[`webhook:http://127.0.0.1:${port}/h`].up === 0, 10_000, 10);
    await first.close(); // stops retrying; the store keeps what is undelivered
    expect(logged(/is down/)).toHaveLength(1);

    const hook = await new WebhookReceiver(secret).start(port);
    stops.push(() => hook.stop());
    const second = service(config);
    expect(logged(/sending the alerts it had not delivered before the restart/)[0]).toMatchObject({ output: `webhook:http://127.0.0.1:${port}/h`, backlog: 2 });
    await waitFor('the backlog', () => hook.accepted().length === 2, 10_000, 10);
    const a4 = second.svc.raise(alertIn(6));
    await second.svc.idle();
    expect([...before.accepted(), ...hook.accepted()]).toEqual([a1.id, a2.id, a3.id, a4.id]);
    // from the backlog too, an incident's later alerts are not "new"
    expect(hook.hits.map((h) => h.body.newIncident)).toEqual([false, true, false]);
    await waitFor('the TLS messages', () => tls.messages.length === 4, 10_000, 10);
    expect(tls.messages.map((m) => Number(syslogFields(m).params.id))).toEqual([a1.id, a2.id, a3.id, a4.id]);
  });

  it('bounds the backlog: beyond maxBacklog the oldest undelivered alerts are skipped, logged and counted', async () => {
    const port = await freePort();
    const config: AlertsConfig = { webhook: [{ url: `http://127.0.0.1:${port}/h`, secretFile, retries: 0 }] };
    const name = `webhook:http://127.0.0.1:${port}/h`;
    // a queue of 2 in memory: the rest is read back from the store
    const first = service(config, { outputOptions: { ...FAST, queueMax: 2, maxBacklog: 3 } });
    const ids = [0, 1, 2, 3, 4, 5].map((i) => first.svc.raise(alertIn(i * 3)).id);
    await waitFor('the output to be down', () => first.svc.outputs!.counters[name].up === 0, 10_000, 10);
    expect(first.svc.outputs!.counters[name].queued).toBe(6);
    await first.close();

    const hook = await new WebhookReceiver(secret).start(port);
    stops.push(() => hook.stop());
    const second = service(config, { outputOptions: { ...FAST, queueMax: 2, maxBacklog: 3 } });
    const c = second.svc.outputs!.counters[name];
    await waitFor('the newest three', () => c.delivered === 3, 10_000, 10);
    expect(hook.accepted()).toEqual(ids.slice(3));
    expect(c).toMatchObject({ dropped: 3, queued: 0 });
    expect(logged(/backlog over 3 alerts: the oldest 3 are not sent/)[0]).toMatchObject({ output: name, dropped: 3, from: ids[0], through: ids[2] });
  });
});
