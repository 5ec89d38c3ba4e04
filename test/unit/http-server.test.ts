/**
 * The shared HTTP server over real sockets on loopback: where it may listen, handlers in
 * order, 404, a throwing handler (500, logged, the server carries on), and the limits —
 * header size, body size, slow clients, slow handlers — plus a close that does not wait for
 * idle keep-alive connections.
 */
import { connect } from 'node:net';
import * as http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { checkHttpListen, HttpError, readBody, route, sendJson, startHttpServer, type HttpServer, type HttpServerOptions } from '../../shared/http/server.js';
import { metricsHandler } from '../../shared/metrics/http.js';
import { counterOf, createRegistry } from '../../shared/metrics/registry.js';

function capture() {
  const out: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => out.push(JSON.parse(s)) });
  return { out, log };
}

const servers: HttpServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function start(o: Partial<HttpServerOptions> = {}) {
  const { out, log } = capture();
  const s = await startHttpServer({ listen: '127.0.0.1:0', log, ...o });
  servers.push(s);
  return { s, out };
}

function request(url: string, o: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; path?: string } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + (o.path ?? ''), { method: o.method ?? 'GET', headers: o.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Writes raw bytes on a TCP connection; resolves with everything the server sent until it closed. */
function raw(address: string, data: string, hold = false): Promise<{ text: string; ms: number }> {
  const [host, port] = [address.replace(/:\d+$/, ''), Number(address.replace(/^.*:/, ''))];
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s = connect(port, host, () => s.write(data));
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d) => (text += d));
    s.on('close', () => resolve({ text, ms: Date.now() - t0 }));
    s.on('error', (e) => (hold ? resolve({ text, ms: Date.now() - t0 }) : reject(e)));
  });
}

describe('where the HTTP server may listen', () => {
  it('listens beyond loopback only with TLS, with an error naming the key', () => {
    for (const ok of ['127.0.0.1:9443', 'localhost:9464', '[::1]:0', 'unix:/run/x.sock']) expect(() => checkHttpListen(ok, false)).not.toThrow();
    expect(() => checkHttpListen('0.0.0.0:9443', false)).toThrow(/http\.listen '0\.0\.0\.0:9443' is reachable from other machines: give a TLS certificate/);
    expect(() => checkHttpListen('[::]:9443', false, 'agent http.listen')).toThrow(/^agent http\.listen/);
    expect(() => checkHttpListen('10.0.0.5:9443', false)).toThrow(/reachable from other machines/);
    expect(() => checkHttpListen('0.0.0.0:9443', true)).not.toThrow();
    expect(() => checkHttpListen('9443', false)).toThrow(/expected HOST:PORT/);
    expect(() => checkHttpListen('host:port', false)).toThrow(/expected HOST:PORT/);
  });

  it('refuses to start on 0.0.0.0 without TLS', async () => {
    await expect(startHttpServer({ listen: '0.0.0.0:0', log: capture().log })).rejects.toThrow(/reachable from other machines/);
  });

  it('says which address is taken', async () => {
    const { s } = await start();
    await expect(startHttpServer({ listen: s.address, log: capture().log })).rejects.toThrow(new RegExp(`http\\.listen '${s.address}': .*EADDRINUSE`));
  });

  it('serves on a unix socket', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'dag-http-')), 'h.sock');
    const { s } = await start({ listen: `unix:${path}`, handlers: [route('GET', '/x', (_q, r) => sendJson(r, 200, { ok: 1 }))] });
    expect(s.address).toBe(`unix:${path}`);
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ socketPath: path, path: '/x' }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    expect(JSON.parse(body)).toEqual({ ok: 1 });
  });
});

describe('handlers', () => {
  it('tries handlers in order, answers 404 when none does, 405 for a wrong method, HEAD like GET without a body', async () => {
    const seen: string[] = [];
    const { s } = await start({
      handlers: [
        (req) => (seen.push(`first ${req.url}`), false),
        route('GET', '/a', (_q, r) => sendJson(r, 200, { a: 1 })),
      ],
    });
    s.use(route(['GET', 'POST'], '/b', (q, r) => sendJson(r, 200, { b: q.method })));
    expect(await request(s.url, { path: '/a' })).toMatchObject({ status: 200, body: '{"a":1}' });
    expect(await request(s.url, { path: '/b?x=1', method: 'POST' })).toMatchObject({ status: 200, body: '{"b":"POST"}' });
    const nf = await request(s.url, { path: '/nothing' });
    expect(nf.status).toBe(404);
    expect(JSON.parse(nf.body)).toEqual({ error: 'nothing at /nothing' });
    const wrong = await request(s.url, { path: '/a', method: 'DELETE' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('GET, HEAD');
    const head = await request(s.url, { path: '/a', method: 'HEAD' });
    expect(head).toMatchObject({ status: 200, body: '' });
    expect(head.headers['x-content-type-options']).toBe('nosniff');
    expect(seen).toContain('first /a');
  });

  it('turns a throwing handler into a 500 with a log line, and keeps serving', async () => {
    const { s, out } = await start({
      handlers: [
        route('GET', '/sync', () => {
          throw new Error('boom');
        }),
        route('GET', '/async', async () => {
          await new Promise((r) => setTimeout(r, 5));
          throw new Error('later boom');
        }),
        route('GET', '/bad', () => {
          throw new HttpError(400, 'no such thing');
        }),
        route('GET', '/ok', (_q, r) => sendJson(r, 200, {})),
      ],
    });
    for (const p of ['/sync', '/async']) {
      const r = await request(s.url, { path: p });
      expect(r.status).toBe(500);
      expect(JSON.parse(r.body)).toEqual({ error: 'internal error (see the server log)' });
    }
    expect(await request(s.url, { path: '/bad' })).toMatchObject({ status: 400, body: '{"error":"no such thing"}' });
    expect(out.filter((l) => l.msg === 'http: handler failed').map((l) => [l.path, l.err])).toEqual([
      ['/sync', 'boom'],
      ['/async', 'later boom'],
    ]);
    expect((await request(s.url, { path: '/ok' })).status).toBe(200);
  });
});

describe('limits', () => {
  it('refuses headers over the limit with 431', async () => {
    const { s } = await start({ limits: { maxHeaderBytes: 2048 }, handlers: [route('GET', '/', (_q, r) => sendJson(r, 200, {}))] });
    expect((await request(s.url, { path: '/', headers: { 'x-small': 'a'.repeat(100) } })).status).toBe(200);
    const r = await raw(s.address, `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(4096)}\r\n\r\n`, true);
    expect(r.text).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('refuses bodies over the limit with 413, declared or streamed', async () => {
    const echo = route('POST', '/echo', async (q, r) => {
      const b = await readBody(q, 1000);
      sendJson(r, 200, { bytes: b.length });
    });
    const { s } = await start({ limits: { maxBodyBytes: 4000 }, handlers: [echo] });
    expect(await request(s.url, { path: '/echo', method: 'POST', body: 'x'.repeat(999) })).toMatchObject({ status: 200, body: '{"bytes":999}' });
    // declared over the server's limit: refused before any handler
    const big = await request(s.url, { path: '/echo', method: 'POST', body: 'x'.repeat(5000) });
    expect(big.status).toBe(413);
    // declared under the server's limit, over the handler's
    expect((await request(s.url, { path: '/echo', method: 'POST', body: 'x'.repeat(1500) })).status).toBe(413);
    // chunked (no length): counted as it comes
    const chunked = await request(s.url, { path: '/echo', method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: 'y'.repeat(3000) });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).error).toMatch(/over the limit of 1000 bytes/);
  });

  it('drops a client that does not finish its headers in time', async () => {
    const { s } = await start({ limits: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
    const r = await raw(s.address, 'GET / HTTP/1.1\r\nhost: x\r\n', true); // never ends the headers
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.ms).toBeLessThan(5000);
  });

  it('answers 503 for a handler that takes too long, and logs it', async () => {
    const { s, out } = await start({ limits: { handlerTimeoutMs: 200 }, handlers: [route('GET', '/slow', () => new Promise((r) => setTimeout(r, 1500)))] });
    const t0 = Date.now();
    const r = await request(s.url, { path: '/slow' });
    expect(r.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(1400);
    expect(out.some((l) => l.msg === 'http: handler did not answer in time')).toBe(true);
  });

  it('closes at once with idle keep-alive connections open', async () => {
    const { log } = capture();
    const s = await startHttpServer({ listen: '127.0.0.1:0', log, handlers: [route('GET', '/', (_q, r) => sendJson(r, 200, {}))] });
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve) => http.get(`${s.url}/`, { agent }, (res) => (res.resume(), res.on('end', () => resolve()))));
    const t0 = Date.now();
    await s.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    await expect(request(s.url, { path: '/' })).rejects.toThrow(/ECONNREFUSED/);
    agent.destroy();
    await s.close(); // twice: nothing happens
  });
});

describe('/metrics', () => {
  it('serves a registry of its own, behind a bearer token when given', async () => {
    const reg = createRegistry({ processMetrics: false });
    let n = 3;
    counterOf(reg, 'distappguard_test_things_total', 'things', () => n);
    const { s } = await start({ handlers: [metricsHandler(reg, { token: 's3cret' })] });
    expect((await request(s.url, { path: '/metrics' })).status).toBe(401);
    expect((await request(s.url, { path: '/metrics', headers: { authorization: 'Bearer wrong!' } })).status).toBe(401);
    const ok = await request(s.url, { path: '/metrics', headers: { authorization: 'Bearer s3cret' } });
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe(reg.contentType);
    expect(ok.body).toContain('distappguard_test_things_total 3');
    n = 7;
    expect((await request(s.url, { path: '/metrics', headers: { authorization: 'Bearer s3cret' } })).body).toContain('distappguard_test_things_total 7');
    expect(() => counterOf(reg, 'distappguard_test_bad', 'x', () => 1)).toThrow(/end with _total/);
    expect(() => counterOf(reg, 'other_total', 'x', () => 1)).toThrow(/start with distappguard_/);
  });
});
