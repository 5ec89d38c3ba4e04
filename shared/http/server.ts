/**
 * One small HTTP(S) server per process for /metrics, /healthz, /readyz and the aggregator's
 * console. Same rule as the gRPC listener (shared/address.ts): without TLS it listens only on
 * loopback or a unix socket. Handlers are tried in order — each says whether it answered —
 * so features mount themselves without a router; nothing answered is a 404. A handler that
 * throws gets a 500 and a log line, never a crashed process. Requests are bounded: header
 * size, body size, time to send the headers and the whole request, time to answer,
 * connections.
 */
import { readFileSync, statSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../log.js';
import { isLocalOnly } from '../address.js';

/** Answers the request and returns true, or returns false to let the next handler try. */
export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse) => boolean | Promise<boolean>;

export interface HttpTlsFiles {
  /** certificate chain (PEM file) */
  cert: string;
  /** private key (PEM file) */
  key: string;
  /** when given, clients must present a certificate signed by this CA (PEM file) */
  ca?: string;
}

export interface HttpLimits {
  /** bytes of request line + headers (431 beyond) */
  maxHeaderBytes: number;
  /** bytes of a request body a handler may read with readBody (413 beyond) */
  maxBodyBytes: number;
  /** time for the client to send the headers */
  headersTimeoutMs: number;
  /** time for the client to send the whole request */
  requestTimeoutMs: number;
  /** time a handler has to answer before the client gets a 503 */
  handlerTimeoutMs: number;
  /** idle keep-alive connections are closed after this */
  keepAliveTimeoutMs: number;
  /** connections open at once; more are refused */
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 1024 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  handlerTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 128,
};

export interface HttpServerOptions {
  /** HOST:PORT (port 0: any free port) or unix:/path */
  listen: string;
  tls?: HttpTlsFiles;
  handlers?: HttpHandler[];
  log: Logger;
  limits?: Partial<HttpLimits>;
  /** how the listen address is named in errors (the config key), default 'http.listen' */
  what?: string;
  /** how often the TLS files are looked at for a renewed certificate (default 5 s; 0: never) */
  tlsReloadMs?: number;
}

export interface HttpServer {
  /** HOST:PORT actually bound (the real port when 0 was asked), or unix:/path */
  readonly address: string;
  /** base URL, e.g. https://127.0.0.1:9443 (unix sockets: unix:/path) */
  readonly url: string;
  /** adds a handler after the ones given at start (tried in the order added) */
  use(handler: HttpHandler): void;
  /** re-reads the TLS files now (they are also watched, see tlsReloadMs); throws, keeping the old ones, when they are unusable */
  reloadTls(): void;
  /** stops listening, lets requests in progress finish (up to `graceMs`), then closes every connection */
  close(graceMs?: number): Promise<void>;
}

/** A handler throws this for a 4xx/5xx other than 500 (bad request, too large…): sent as JSON {error}. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** sent with the answer (e.g. www-authenticate, retry-after) */
    readonly headers: http.OutgoingHttpHeaders = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/**
 * Where an HTTP server may listen: HOST:PORT or unix:/path; beyond loopback only with TLS.
 * The rule is shared/address.ts's (the gRPC listener's), the message names the HTTP keys.
 */
export function checkHttpListen(listen: string, tls: boolean, what = 'http.listen'): void {
  if (!/^unix:.+|^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):\d{1,5}$/.test(listen)) {
    throw new Error(`${what} '${listen}': expected HOST:PORT (e.g. 127.0.0.1:9443) or unix:/path/to.sock`);
  }
  if (!tls && !isLocalOnly(listen)) {
    throw new Error(`${what} '${listen}' is reachable from other machines: give a TLS certificate and key for it (http.tls.cert, http.tls.key), or listen on 127.0.0.1 or a unix: socket`);
  }
}

function splitListen(listen: string): { path: string } | { host: string; port: number } {
  if (listen.startsWith('unix:')) {
    let path = listen.slice('unix:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    return { path };
  }
  const m = /^(.*):(\d+)$/.exec(listen)!;
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

function readTls(t: HttpTlsFiles): { cert: Buffer; key: Buffer; ca?: Buffer } {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new Error(`cannot read the HTTP TLS ${what} ${path}: ${(e as Error).message}`);
    }
  };
  return { cert: read(t.cert, 'certificate'), key: read(t.key, 'key'), ca: t.ca === undefined ? undefined : read(t.ca, 'CA') };
}

/** Changes when any of the files is replaced or rewritten. */
function tlsStamp(t: HttpTlsFiles): string {
  return [t.cert, t.key, t.ca ?? '']
    .map((p) => {
      if (!p) return '';
      try {
        const s = statSync(p);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

/** The request's path, without the query string. */
export function pathOf(req: http.IncomingMessage): string {
  const u = req.url ?? '/';
  const q = u.indexOf('?');
  return q < 0 ? u : u.slice(0, q);
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A handler for one path: GET (and HEAD) only unless `methods` says otherwise; 405 for other methods. */
export function route(methods: string | string[], path: string, fn: (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>): HttpHandler {
  const allowed = new Set((Array.isArray(methods) ? methods : [methods]).map((m) => m.toUpperCase()));
  if (allowed.has('GET')) allowed.add('HEAD');
  return async (req, res) => {
    if (pathOf(req) !== path) return false;
    if (!allowed.has(req.method ?? '')) {
      sendJson(res, 405, { error: `${req.method} is not allowed on ${path}` }, { allow: [...allowed].join(', ') });
      return true;
    }
    await fn(req, res);
    return true;
  };
}

/** Reads a request body, refusing (413) more than `maxBytes`. */
export function readBody(req: http.IncomingMessage, maxBytes = DEFAULT_HTTP_LIMITS.maxBodyBytes): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      reject(new HttpError(413, `request body of ${declared} bytes is over the limit of ${maxBytes}`));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (b: Buffer): void => {
      size += b.length;
      if (size > maxBytes) {
        req.off('data', onData);
        req.resume(); // drain the rest; the response says why
        reject(new HttpError(413, `request body is over the limit of ${maxBytes} bytes`));
        return;
      }
      parts.push(b);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(parts)));
    req.once('error', reject);
  });
}

/** Whether the request carries `Authorization: Bearer <token>` (compared in constant time). */
export function hasBearer(req: http.IncomingMessage, token: string): boolean {
  const h = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(h);
  if (!m) return false;
  const a = Buffer.from(m[1].trim());
  const b = Buffer.from(token);
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export async function startHttpServer(o: HttpServerOptions): Promise<HttpServer> {
  const tls = o.tls;
  checkHttpListen(o.listen, tls !== undefined, o.what);
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...o.limits };
  const handlers: HttpHandler[] = [...(o.handlers ?? [])];
  const log = o.log;
  const baseOpts: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => void dispatch(req, res);
  const server: http.Server = tls
    ? https.createServer(
        {
          ...baseOpts,
          ...readTls(tls),
          minVersion: 'TLSv1.2',
          requestCert: tls.ca !== undefined,
          rejectUnauthorized: tls.ca !== undefined,
        },
        onRequest,
      )
    : http.createServer(baseOpts, onRequest);
  server.maxConnections = limits.maxConnections;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  // requests that never reach a handler: too-large headers, malformed, timed out, TLS failures
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const code = err.code ?? '';
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    log.debug({ err: err.message, code, peer: socket.remoteAddress }, 'http: bad request');
    if (socket.writable && code !== 'ECONNRESET') {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    } else socket.destroy();
  });
  server.on('tlsClientError', (err: Error, socket: Socket) => {
    log.debug({ err: err.message, peer: socket.remoteAddress }, 'http: TLS handshake failed');
  });

  async function dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = performance.now();
    res.setHeader('x-content-type-options', 'nosniff');
    const timer = setTimeout(() => {
      log.error({ method: req.method, path: pathOf(req), ms: limits.handlerTimeoutMs }, 'http: handler did not answer in time');
      if (!res.headersSent) sendJson(res, 503, { error: 'the server took too long to answer' }, { connection: 'close' });
      else res.destroy();
    }, limits.handlerTimeoutMs);
    try {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > limits.maxBodyBytes) {
        throw new HttpError(413, `request body of ${declared} bytes is over the limit of ${limits.maxBodyBytes}`);
      }
      for (const h of handlers) {
        if (res.writableEnded) return;
        if (await h(req, res)) return;
      }
      if (!res.headersSent) sendJson(res, 404, { error: `nothing at ${pathOf(req)}` });
    } catch (e) {
      const err = e as Error;
      const status = err instanceof HttpError ? err.status : 500;
      if (status >= 500) log.error({ method: req.method, path: pathOf(req), err: err.message, stack: err.stack }, 'http: handler failed');
      else log.debug({ method: req.method, path: pathOf(req), status, err: err.message }, 'http: request refused');
      const headers = { ...(err instanceof HttpError ? err.headers : {}), ...(status === 413 ? { connection: 'close' } : {}) };
      if (!res.headersSent) sendJson(res, status, { error: status === 500 ? 'internal error (see the server log)' : err.message }, headers);
      else res.destroy();
    } finally {
      clearTimeout(timer);
      log.trace({ method: req.method, path: pathOf(req), status: res.statusCode, ms: +(performance.now() - t0).toFixed(2) }, 'http request');
    }
  }

  const where = splitListen(o.listen);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => reject(Object.assign(new Error(`${o.what ?? 'http.listen'} '${o.listen}': ${e.message}`), { code: e.code }));
    server.once('error', onError);
    const ready = (): void => {
      server.off('error', onError);
      resolve();
    };
    if ('path' in where) server.listen(where.path, ready);
    else server.listen(where.port, where.host, ready);
  });
  server.on('error', (e) => log.error({ err: e.message }, 'http server error'));

  let address: string;
  if ('path' in where) address = `unix:${where.path}`;
  else {
    const a = server.address() as AddressInfo;
    address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }
  const url = 'path' in where ? address : `${tls ? 'https' : 'http'}://${address}`;
  log.info({ listen: address, tls: tls !== undefined, clientCerts: tls?.ca !== undefined }, 'http listening');

  const reloadTls = (): void => {
    if (!tls) throw new Error('this HTTP server has no TLS to reload');
    (server as https.Server).setSecureContext({ ...readTls(tls), minVersion: 'TLSv1.2' });
    log.info({ cert: tls.cert }, 'http: TLS certificate reloaded');
  };
  // renewed certificates are picked up from the next connection on; unusable files are not
  // loaded (the server keeps the previous ones), and said so once per change
  let stamp = tls ? tlsStamp(tls) : '';
  const reloadMs = o.tlsReloadMs ?? 5000;
  const watcher =
    tls && reloadMs > 0
      ? setInterval(() => {
          const now = tlsStamp(tls);
          if (now === stamp) return;
          stamp = now;
          try {
            reloadTls();
          } catch (e) {
            log.error({ err: (e as Error).message, cert: tls.cert, key: tls.key }, 'http: the TLS files changed but cannot be used; the previous certificate stays in use');
          }
        }, reloadMs).unref()
      : undefined;

  let closing: Promise<void> | undefined;
  return {
    address,
    url,
    use: (h) => void handlers.push(h),
    reloadTls,
    close: (graceMs = 2000) => {
      if (watcher) clearInterval(watcher);
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.closeAllConnections();
          for (const s of sockets) s.destroy();
        }, graceMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
