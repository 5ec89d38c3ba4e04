/**
 * The web console: a request handler for the aggregator's HTTP server. It answers
 *
 *   GET  /                         → redirect to /console/
 *   GET  /console/                 the page (index.html, app.js, app.css: plain files, no build step, no CDN)
 *   GET  /api/v1/status            counts, how the API is protected, detection counters
 *   GET  /api/v1/agents            agents and their health (connected, last seen, model acknowledged)
 *   GET  /api/v1/incidents         incidents, newest first            ?app=&limit=
 *   GET  /api/v1/alerts            alerts, newest first (summaries)   ?app=&incident=&limit=
 *   GET  /api/v1/alerts/ID         one alert with its whole explanation
 *   GET  /api/v1/alerts/ID/graph   its window's MSDEG as SVG, the explaining edges highlighted
 *   POST /api/v1/alerts/ID/label   {"label": "benign" | "malicious"}: what `distappguard label` does
 *   GET  /api/v1/windows           windows, newest first              ?app=&limit=
 *   GET  /api/v1/windows/graph     one window's MSDEG as SVG          ?app=&start=
 *   GET  /api/v1/models            models with their training and calibration figures
 *
 * and returns false for every other path, so the server can try its next handler (/metrics…).
 *
 * Protection. With a token, every API call needs `Authorization: Bearer TOKEN` (compared in
 * constant time); the page itself holds no data and is served to anyone who can reach it.
 * Without a token the API answers only loopback peers that name a loopback host (a web page
 * elsewhere cannot reach it by DNS rebinding). A POST also needs a JSON body, the console's
 * own request header and, when the browser says where it comes from (Origin, Sec-Fetch-Site),
 * the console's own origin: another site cannot make a browser label an alert. Every response
 * carries a Content-Security-Policy that allows only the console's own script and style, and
 * the page builds its DOM from text (role labels come from traced programs: hostile input).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../shared/log.js';
import { GraphNotFound, alertGraph, renderGraph, trimWindow } from '../alert-graph.js';
import type { DetectionService } from '../detect.js';
import { DetectionStore, type Label } from '../store/detection.js';
import type { Store } from '../store/store.js';
import { agentsView, alertDetail, alertSummary, incidentsView, modelView, windowsView } from './views.js';

export interface ConsoleOptions {
  store: Store;
  /** the aggregator's detection service: its counters are shown, its store connection used */
  detection?: DetectionService;
  /** when set, every API call needs `Authorization: Bearer <token>` */
  token?: string;
  log: Logger;
  /**
   * Agents on a stream right now: ids, or hellos (`() => server.connectedAgents()` of AggregatorServer).
   * Without it, health comes from last-seen times only.
   */
  connectedAgents?: () => Iterable<string | { agentId: string }>;
  /** a window graph draws at most this many edges (the highlighted ones first); default 400 */
  maxGraphEdges?: number;
  now?: () => number;
}

export interface ConsoleCounters {
  requests: number;
  /** API calls refused: no or wrong token, not loopback, failed CSRF checks */
  refused: number;
  labels: number;
  graphs: number;
  errors: number;
}

export type ConsoleHandler = ((req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>) & { readonly counters: ConsoleCounters };

/** The header the page sends with every POST; a cross-site form cannot set it. */
export const CONSOLE_REQUEST_HEADER = 'x-distappguard-console';

const STATIC: Record<string, { file: string; type: string }> = {
  '/console/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/console/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const MAX_BODY = 4096;
const MIN_TOKEN = 16;
const GRAPH_CACHE = 32;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** 127.0.0.0/8, ::1, and the IPv4-mapped form of 127/8; a unix socket (no address) is local too. */
export function isLoopbackAddress(addr: string | undefined): boolean {
  if (addr === undefined) return true;
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  if (isIP(a) === 4) return a.startsWith('127.');
  return a === '::1';
}

/** A Host header naming this machine: localhost (and *.localhost), 127/8 or [::1], any port. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(host.trim().toLowerCase());
  if (!m) return false;
  const name = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return isIP(name) !== 0 && isLoopbackAddress(name);
}

function staticDir(): string {
  return fileURLToPath(new URL('./static/', import.meta.url));
}

function loadStatic(): Map<string, { body: Buffer; type: string }> {
  const dir = staticDir();
  const out = new Map<string, { body: Buffer; type: string }>();
  for (const [path, f] of Object.entries(STATIC)) {
    try {
      out.set(path, { body: readFileSync(dir + f.file), type: f.type });
    } catch (e) {
      throw new Error(`console: cannot read ${dir}${f.file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); \`npm run build\` copies the console's files to dist/`);
    }
  }
  return out;
}

function positiveInt(text: string | null, what: string, fallback?: number, max = Number.MAX_SAFE_INTEGER): number {
  if (text === null || text === '') {
    if (fallback === undefined) throw new HttpError(400, `${what} is required`);
    return fallback;
  }
  if (!/^\d{1,16}$/.test(text)) throw new HttpError(400, `${what}: '${text.slice(0, 40)}' is not a whole number`);
  const n = Number(text);
  if (n > max) throw new HttpError(400, `${what}: at most ${max}`);
  return n;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.removeAllListeners('data');
        req.resume(); // drain the rest; the answer says why
        reject(new HttpError(413, `request body over ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function consoleHandler(o: ConsoleOptions): ConsoleHandler {
  if (o.token !== undefined) {
    const t = o.token.trim();
    if (t === '') throw new Error('console: the token is empty');
    if (/\s/.test(t)) throw new Error('console: the token must be one word (no spaces)');
    if (t.length < MIN_TOKEN) throw new Error(`console: the token is too short (${MIN_TOKEN} characters at least; make one with \`openssl rand -hex 32\`)`);
  }
  const files = loadStatic();
  const store = o.store;
  const det = o.detection?.det ?? new DetectionStore(store.connection);
  const now = o.now ?? Date.now;
  const maxEdges = o.maxGraphEdges ?? 400;
  const wanted = o.token === undefined ? undefined : createHash('sha256').update(o.token.trim()).digest();
  const counters: ConsoleCounters = { requests: 0, refused: 0, labels: 0, graphs: 0, errors: 0 };
  // SVGs by what they show; rendering is serialized (Graphviz runs on this thread)
  const graphs = new Map<string, string>();
  let renderChain: Promise<unknown> = Promise.resolve();
  let lastRefusalLog = 0;
  const counts = store.connection.prepare(`SELECT (SELECT count(*) FROM agents) AS agents, (SELECT count(*) FROM alerts) AS alerts,
    (SELECT count(*) FROM alerts WHERE label IS NULL) AS unlabelled, (SELECT count(*) FROM incidents) AS incidents, (SELECT count(*) FROM models) AS models`);

  function refuse(req: IncomingMessage, status: number, message: string, headers: Record<string, string> = {}): never {
    counters.refused++;
    const t = now();
    if (t - lastRefusalLog > 60_000) {
      lastRefusalLog = t;
      o.log.warn({ peer: req.socket.remoteAddress, path: req.url?.slice(0, 200), status, refusedSoFar: counters.refused }, `console: API call refused: ${message}`);
    }
    throw new HttpError(status, message, headers);
  }

  function authorize(req: IncomingMessage): void {
    if (wanted === undefined) {
      if (!isLoopbackAddress(req.socket.remoteAddress)) refuse(req, 403, 'without a token the console answers loopback only');
      if (!isLoopbackHost(req.headers.host)) refuse(req, 403, 'without a token the console answers only requests for a loopback host name');
      return;
    }
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    const given = createHash('sha256').update(m ? m[1] : '').digest();
    // both sides are 32-byte digests: the comparison takes the same time whatever was sent
    if (!timingSafeEqual(given, wanted) || !m) refuse(req, 401, 'a valid token is required', { 'www-authenticate': 'Bearer realm="distappguard"' });
  }

  function checkWriteRequest(req: IncomingMessage): void {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) refuse(req, 415, 'a JSON body is required');
    if (req.headers[CONSOLE_REQUEST_HEADER] !== '1') refuse(req, 403, `the ${CONSOLE_REQUEST_HEADER} header is required`);
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') refuse(req, 403, 'cross-site request');
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch {
        host = undefined;
      }
      if (host === undefined || host !== req.headers.host) refuse(req, 403, 'cross-origin request');
    }
  }

  function send(res: ServerResponse, status: number, body: string | Buffer, type: string, extra: Record<string, string> = {}, head = false): void {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': String(buf.length), ...extra });
    res.end(head ? undefined : buf);
  }

  function json(res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void {
    send(res, status, JSON.stringify(value), 'application/json; charset=utf-8', { 'cache-control': 'no-store', ...extra });
  }

  async function svgOf(key: string, make: () => Promise<string>): Promise<string> {
    const hit = graphs.get(key);
    if (hit !== undefined) {
      graphs.delete(key);
      graphs.set(key, hit);
      return hit;
    }
    const p = renderChain.then(make);
    renderChain = p.catch(() => undefined);
    const svg = await p;
    counters.graphs++;
    graphs.set(key, svg);
    if (graphs.size > GRAPH_CACHE) graphs.delete(graphs.keys().next().value!);
    return svg;
  }

  async function api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    authorize(req);
    const path = url.pathname;
    const q = url.searchParams;
    const app = q.get('app') ?? undefined;
    const method = req.method ?? 'GET';
    const isGet = method === 'GET' || method === 'HEAD';
    let m: RegExpExecArray | null;

    if ((m = /^\/api\/v1\/alerts\/(\d{1,16})\/label$/.exec(path))) {
      if (method !== 'POST') throw new HttpError(405, 'use POST', { allow: 'POST' });
      checkWriteRequest(req);
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req));
      } catch (e) {
        if (e instanceof HttpError) throw e;
        throw new HttpError(400, 'the body is not JSON');
      }
      const label = (body as { label?: unknown } | null)?.label;
      if (label !== 'benign' && label !== 'malicious') throw new HttpError(400, 'label must be "benign" or "malicious"');
      const id = Number(m[1]);
      if (!det.alert(id)) throw new HttpError(404, `no alert ${id}`);
      // the same call as `distappguard label`: benign accepts the alert's new edges for the next training
      const a = det.label(id, label as Label);
      counters.labels++;
      o.log.info({ alert: a.id, label: a.label, app: a.app, peer: req.socket.remoteAddress, acceptedEdges: a.label === 'benign' ? a.explanation.newEdges.length : 0 }, 'alert labelled from the console');
      return json(res, 200, { alert: alertSummary(a), acceptedEdges: a.label === 'benign' ? a.explanation.newEdges.length : 0 });
    }
    if (!isGet) throw new HttpError(405, 'use GET', { allow: 'GET, HEAD' });

    if (path === '/api/v1/status') {
      const c = counts.get() as { agents: number; alerts: number; unlabelled: number; incidents: number; models: number };
      return json(res, 200, {
        now: now(),
        auth: wanted === undefined ? 'loopback' : 'token',
        apps: store.apps(),
        ...c,
        detection: o.detection ? { ...o.detection.counters } : null,
      });
    }
    if (path === '/api/v1/agents') {
      const live = o.connectedAgents ? new Set([...o.connectedAgents()].map((a) => (typeof a === 'string' ? a : a.agentId))) : undefined;
      return json(res, 200, agentsView(store, det, now(), live));
    }
    if (path === '/api/v1/incidents') return json(res, 200, incidentsView(det, app, positiveInt(q.get('limit'), 'limit', 100, 10_000)));
    if (path === '/api/v1/alerts') {
      const incident = q.get('incident');
      const rows = det.listAlerts({ app, incident: incident === null ? undefined : positiveInt(incident, 'incident'), limit: positiveInt(q.get('limit'), 'limit', 500, 10_000) });
      return json(res, 200, rows.map(alertSummary));
    }
    if ((m = /^\/api\/v1\/alerts\/(\d{1,16})$/.exec(path))) {
      const a = det.alert(Number(m[1]));
      if (!a) throw new HttpError(404, `no alert ${m[1]}`);
      return json(res, 200, alertDetail(store, det, a));
    }
    if ((m = /^\/api\/v1\/alerts\/(\d{1,16})\/graph$/.exec(path))) {
      let g: ReturnType<typeof alertGraph>;
      try {
        g = alertGraph(store, det, Number(m[1]));
      } catch (e) {
        if (e instanceof GraphNotFound) throw new HttpError(404, e.message);
        throw e;
      }
      const row = store.window(g.alert.app, g.alert.windowStart);
      const { window, dropped } = trimWindow(g.window, g.highlight, maxEdges);
      const key = `a${g.alert.id}:${row?.mergedAt}:${g.alert.score}:${g.alert.explanation.newEdges.length}`;
      const svg = await svgOf(key, () => renderGraph(window, g.highlight, 'svg'));
      return json(res, 200, { svg, edges: g.window.edges.length, dropped });
    }
    if (path === '/api/v1/windows') return json(res, 200, windowsView(store, det, app, positiveInt(q.get('limit'), 'limit', 200, 10_000)));
    if (path === '/api/v1/windows/graph') {
      if (app === undefined) throw new HttpError(400, 'app is required');
      const start = positiveInt(q.get('start'), 'start');
      const row = store.window(app, start);
      const w = row && store.windowGraph(app, start);
      if (!row || !w) throw new HttpError(404, `no window of app '${app}' starts at ${new Date(start).toISOString()}`);
      const { window, dropped } = trimWindow(w, {}, maxEdges);
      const svg = await svgOf(`w${JSON.stringify([app, start])}:${row.mergedAt}`, () => renderGraph(window, {}, 'svg'));
      return json(res, 200, { svg, edges: w.edges.length, dropped });
    }
    if (path === '/api/v1/models') return json(res, 200, det.listModels(app).map(modelView));
    throw new HttpError(404, 'no such API');
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      await api(req, res, url);
    } catch (e) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (e instanceof HttpError) return json(res, e.status, { error: e.message }, e.headers);
      counters.errors++;
      o.log.error({ err: (e as Error).message, path: url.pathname }, 'console: API call failed');
      json(res, 500, { error: 'internal error; see the aggregator log' });
    }
  }

  const handler = (req: IncomingMessage, res: ServerResponse): boolean | Promise<boolean> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://console.invalid');
    } catch {
      return false;
    }
    const path = url.pathname;
    const isGet = req.method === 'GET' || req.method === 'HEAD';
    if (path === '/' || path === '/console') {
      if (!isGet) return false;
      counters.requests++;
      send(res, 302, '', 'text/plain', { location: '/console/' }, true);
      return true;
    }
    const file = files.get(path);
    if (file) {
      counters.requests++;
      if (!isGet) send(res, 405, 'use GET\n', 'text/plain; charset=utf-8', { allow: 'GET, HEAD' });
      else send(res, 200, file.body, file.type, { 'cache-control': 'no-cache' }, req.method === 'HEAD');
      return true;
    }
    if (!path.startsWith('/api/v1/') && path !== '/api/v1') return false;
    counters.requests++;
    return handle(req, res, url).then(() => true);
  };
  return Object.assign(handler, { counters });
}
