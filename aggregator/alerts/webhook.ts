/**
 * Alerts as HTTP(S) POSTs of the alert JSON (the JSON Lines object), signed with a shared
 * secret so the receiver knows they come from this aggregator and were not replayed late:
 *
 *   X-DistAppGuard-Timestamp: 1795089605                      (unix seconds, when sent)
 *   X-DistAppGuard-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>
 *   X-DistAppGuard-Alert-Id:  17                              (deduplicate on it: at-least-once)
 *
 * 2xx: delivered. Network errors, timeouts, 408, 429 and 5xx: retried (Retry-After is
 * respected). Other answers (3xx, 4xx): refused, not retried. node:http/https (not fetch) so
 * that a private CA can be given per webhook.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parseDuration } from '../../shared/duration.js';
import { alertJson } from './jsonl.js';
import { DeliveryError, type AlertEvent, type AlertOutput } from './outputs.js';

export const SIGNATURE_HEADER = 'x-distappguard-signature';
export const TIMESTAMP_HEADER = 'x-distappguard-timestamp';
export const ALERT_ID_HEADER = 'x-distappguard-alert-id';
/** the longest Retry-After waited for; a longer one is cut to this */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;

/** `sha256=` + hex HMAC-SHA256 of `${timestamp}.${body}` with the shared secret. */
export function signature(secret: string | Buffer, timestamp: string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/**
 * The receiver's check (the recipe in docs/operations.md, Alert outputs, runnable): the signature
 * matches the raw body and the timestamp is within `toleranceS` of now.
 */
export function verifySignature(
  secret: string | Buffer,
  headers: { timestamp: string | undefined; signature: string | undefined },
  rawBody: string | Buffer,
  o: { toleranceS?: number; nowS?: number } = {},
): boolean {
  const { timestamp, signature: sig } = headers;
  if (!timestamp || !sig || !/^\d+$/.test(timestamp)) return false;
  const now = o.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > (o.toleranceS ?? 300)) return false;
  const want = Buffer.from(signature(secret, timestamp, rawBody));
  const got = Buffer.from(sig);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Retry-After: seconds or an HTTP date → ms (undefined when absent or unreadable). */
export function parseRetryAfter(v: string | undefined, now = Date.now()): number | undefined {
  if (!v) return undefined;
  const ms = /^\s*\d+\s*$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

export interface WebhookOutputOptions {
  /** http:// or https:// */
  url: string;
  /** file holding the shared secret (surrounding white space ignored) */
  secretFile: string;
  /** each POST gives up after this long: ms, or a duration ("5s"); default 5 s */
  timeout?: number | string;
  /** quick retries of one alert before the output counts as down (default 5) */
  retries?: number;
  /** https: the CA file (PEM) that signed the receiver's certificate (default: the system's CAs) */
  ca?: string;
}

export class WebhookAlertOutput implements AlertOutput {
  readonly name: string;
  readonly retries: number | undefined;
  private readonly url: URL;
  private readonly secret: Buffer;
  private readonly timeoutMs: number;
  private readonly ca: Buffer | undefined;

  constructor(o: WebhookOutputOptions) {
    try {
      this.url = new URL(o.url);
    } catch {
      throw new Error(`'${o.url}' is not a URL`);
    }
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new Error(`'${o.url}': the scheme must be http or https`);
    // the name is in logs and metrics: no credentials or query string (either may hold a token)
    this.name = `webhook:${this.url.protocol}//${this.url.host}${this.url.pathname}`;
    try {
      this.secret = Buffer.from(readFileSync(o.secretFile, 'utf8').trim());
    } catch (e) {
      throw new Error(`cannot read the secret file ${o.secretFile}: ${(e as Error).message}`);
    }
    if (this.secret.length < 16) throw new Error(`the secret in ${o.secretFile} is shorter than 16 bytes: use e.g. \`openssl rand -hex 32\``);
    this.timeoutMs = o.timeout === undefined ? 5000 : typeof o.timeout === 'number' ? o.timeout : parseDuration(o.timeout, 'timeout');
    if (!(this.timeoutMs > 0)) throw new Error(`timeout ${o.timeout}: must be greater than zero`);
    if (o.retries !== undefined && !(Number.isInteger(o.retries) && o.retries >= 0)) throw new Error(`retries ${o.retries}: a whole number ≥ 0`);
    this.retries = o.retries;
    if (o.ca !== undefined) {
      if (this.url.protocol !== 'https:') throw new Error(`ca is for https:// only (${o.url})`);
      try {
        this.ca = readFileSync(o.ca);
      } catch (e) {
        throw new Error(`cannot read the CA file ${o.ca}: ${(e as Error).message}`);
      }
    }
  }

  async deliver(e: AlertEvent, signal: AbortSignal): Promise<void> {
    const body = Buffer.from(JSON.stringify(alertJson(e.alert, e.incident)));
    const ts = String(Math.floor(Date.now() / 1000));
    const headers = {
      'content-type': 'application/json',
      'content-length': String(body.length),
      'user-agent': 'distappguard',
      [TIMESTAMP_HEADER]: ts,
      [SIGNATURE_HEADER]: signature(this.secret, ts, body),
      [ALERT_ID_HEADER]: String(e.alert.id),
    };
    const res = await this.post(body, headers, signal);
    const status = res.status;
    if (status >= 200 && status < 300) return;
    const why = `HTTP ${status}${res.text ? `: ${res.text}` : ''}`;
    if (status === 408 || status === 429 || status >= 500) throw new DeliveryError(why, { retryAfterMs: parseRetryAfter(res.retryAfter) });
    if (status >= 300 && status < 400) throw new DeliveryError(`${why} (redirect${res.location ? ` to ${res.location}` : ''} not followed: give the final URL)`, { permanent: true });
    throw new DeliveryError(why, { permanent: true });
  }

  private post(
    body: Buffer,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ status: number; text: string; retryAfter?: string; location?: string }> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    const request = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((res, rej) => {
      const fail = (err: Error) =>
        rej(new DeliveryError(timeout.aborted ? `no answer after ${this.timeoutMs} ms` : signal.aborted ? 'shutting down' : err.message, { cause: err }));
      const req = request(this.url, { method: 'POST', headers, signal: both, ca: this.ca, agent: false }, (r: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        r.on('data', (c: Buffer) => {
          // keep the start of an error page for the log line; read and drop the rest
          if (size < 512) chunks.push(c);
          size += c.length;
        });
        r.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8', 0, Math.min(200, size)).replace(/\s+/g, ' ').trim();
          const h = (n: string) => (typeof r.headers[n] === 'string' ? (r.headers[n] as string) : undefined);
          res({ status: r.statusCode ?? 0, text, retryAfter: h('retry-after'), location: h('location') });
        });
        r.on('error', fail);
      });
      req.on('error', fail);
      req.end(body);
    });
  }

  close(): void {}
}
