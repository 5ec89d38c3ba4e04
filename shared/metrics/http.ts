/**
 * The observability endpoints, as handlers for shared/http/server.ts:
 * - GET /metrics: the registry in Prometheus text format (behind a bearer token when one is set);
 * - GET /healthz: 200 while the process runs and its event loop answers;
 * - GET /readyz: 200 when every readiness check passes, else 503 with a JSON reason.
 */
import type { Registry } from 'prom-client';
import { hasBearer, route, sendJson, startHttpServer, type HttpHandler, type HttpLimits, type HttpServer, type HttpTlsFiles } from '../http/server.js';
import type { Logger } from '../log.js';
import { createRegistry } from './registry.js';

export interface Check {
  name: string;
  ok: boolean;
  /** why not (shown when not ok) */
  reason?: string;
}

export type Readiness = () => Check[] | Promise<Check[]>;

/** A component's running HTTP server and its metrics registry. */
export interface ObservabilityHttp {
  http: HttpServer;
  registry: Registry;
  close(): Promise<void>;
}

export function metricsHandler(reg: Registry, o: { path?: string; token?: string } = {}): HttpHandler {
  return route('GET', o.path ?? '/metrics', async (req, res) => {
    if (o.token !== undefined && !hasBearer(req, o.token)) {
      sendJson(res, 401, { error: 'a bearer token is required' }, { 'www-authenticate': 'Bearer realm="distappguard"' });
      return;
    }
    const text = await reg.metrics();
    res.writeHead(200, { 'content-type': reg.contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
}

export function healthHandlers(ready: Readiness): HttpHandler[] {
  const started = Date.now();
  return [
    route('GET', '/healthz', (_req, res) => sendJson(res, 200, { status: 'alive', uptimeSeconds: Math.round((Date.now() - started) / 1000) })),
    route('GET', '/readyz', async (_req, res) => {
      let checks: Check[];
      try {
        checks = await ready();
      } catch (e) {
        checks = [{ name: 'readiness', ok: false, reason: `the readiness check failed: ${(e as Error).message}` }];
      }
      const failed = checks.filter((c) => !c.ok);
      const body = {
        status: failed.length === 0 ? 'ready' : 'not ready',
        ...(failed.length > 0 ? { reason: failed.map((c) => `${c.name}: ${c.reason ?? 'not ok'}`).join('; ') } : {}),
        checks: Object.fromEntries(checks.map((c) => [c.name, c.ok ? { ok: true } : { ok: false, reason: c.reason ?? 'not ok' }])),
      };
      sendJson(res, failed.length === 0 ? 200 : 503, body);
    }),
  ];
}

/** Where and how a component serves /metrics, /healthz and /readyz (config http.*). */
export interface ObservabilityHttpOptions {
  /** HOST:PORT or unix:/path; beyond loopback only with tls */
  listen: string;
  tls?: HttpTlsFiles;
  log: Logger;
  /** when given, GET /metrics needs `Authorization: Bearer <token>` (/healthz and /readyz stay open for probes) */
  metricsToken?: string;
  /** tried after /metrics, /healthz, /readyz, in order (the aggregator's console) */
  extraHandlers?: HttpHandler[];
  limits?: Partial<HttpLimits>;
  /** Node.js process metrics too (default true) */
  processMetrics?: boolean;
}

/** One component's HTTP(S) server: its metrics registered on a fresh registry, its readiness checks. */
export async function startObservabilityHttp(o: ObservabilityHttpOptions, register: (reg: Registry) => void, readiness: Readiness, onClose?: () => void): Promise<ObservabilityHttp> {
  const registry = createRegistry({ processMetrics: o.processMetrics });
  register(registry);
  const http = await startHttpServer({
    listen: o.listen,
    tls: o.tls,
    log: o.log,
    limits: o.limits,
    handlers: [metricsHandler(registry, { token: o.metricsToken }), ...healthHandlers(readiness), ...(o.extraHandlers ?? [])],
  });
  return {
    http,
    registry,
    close: async () => {
      onClose?.();
      await http.close();
    },
  };
}
