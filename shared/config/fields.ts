/**
 * The leaf types of the configuration files: durations, addresses, URLs, files. Each says
 * what it expects in words; the loader adds the key path and the value it got.
 */
import * as z from 'zod';
import { formatDuration, parseDuration } from '../duration.js';

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/;
const DURATION_HINT = 'a duration such as 500ms, 5s, 1m or 2h';

function durationMs(v: string | number, zeroMeans: string | undefined, ctx: { issues: z.core.$ZodRawIssue[] }): number {
  const text = typeof v === 'number' ? String(v) : v;
  const fail = (message: string): number => {
    ctx.issues.push({ code: 'custom', message, input: v });
    return 0;
  };
  if (zeroMeans !== undefined && /^\s*0+(\.0*)?\s*(ms|s|m|h)?\s*$/.test(text)) return 0;
  if (!DURATION.test(text)) return fail(`expected ${DURATION_HINT}${zeroMeans ? `, or 0 (${zeroMeans})` : ''}`);
  try {
    return parseDuration(text);
  } catch (e) {
    const m = (e as Error).message;
    return fail(/greater than zero/.test(m) ? `expected ${DURATION_HINT} greater than zero` : 'expected a whole number of milliseconds');
  }
}

/**
 * "5s", "500ms", "1m", "2h" (or a bare number of seconds) in the file; milliseconds in the
 * resolved configuration. `zeroMeans`: 0 is allowed and means this (e.g. "never").
 */
export function duration(zeroMeans?: string) {
  return z.codec(z.union([z.string(), z.number()], { error: `expected ${DURATION_HINT}` }), z.number(), {
    decode: (v, ctx) => durationMs(v, zeroMeans, ctx),
    encode: (ms) => (ms === 0 ? 0 : formatDuration(ms)),
  }).meta({ pattern: DURATION.source });
}

/** the value 0 or more; a whole number */
export const count = (what = 'a whole number') => z.int({ error: `expected ${what}` }).min(0, { error: `expected ${what} (0 or more)` });

export const nonEmpty = (what: string) => z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}, not an empty string` });

/** a file path (not checked for existence here: the component reading it says when it is missing) */
export const file = (what = 'a file path') => nonEmpty(what);

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9._-]*):(\d{1,5})$/;
const portOk = (s: string): boolean => {
  const m = HOST_PORT.exec(s);
  return m !== null && Number(m[2]) <= 65535;
};

/** HOST:PORT (port 0: any free port), or unix:/path/to.sock */
export const grpcAddress = z
  .string({ error: 'expected HOST:PORT (e.g. 127.0.0.1:7443) or unix:/path/to.sock' })
  .regex(/^unix:.+$|^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9._-]*):\d{1,5}$/, { error: 'expected HOST:PORT (e.g. 127.0.0.1:7443) or unix:/path/to.sock', abort: true })
  .refine((s) => s.startsWith('unix:') || portOk(s), { error: 'the port must be 0 to 65535' });

/** HOST:PORT (port 0: any free port) or unix:/path for an HTTP(S) server, or "off" */
export const httpListen = z
  .string({ error: 'expected HOST:PORT (e.g. 127.0.0.1:9443), unix:/path or off' })
  .regex(/^off$|^unix:.+$|^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9._-]*):\d{1,5}$/, { error: 'expected HOST:PORT (e.g. 127.0.0.1:9443), unix:/path or off', abort: true })
  .refine((s) => s === 'off' || s.startsWith('unix:') || portOk(s), { error: 'the port must be 0 to 65535' });

/** udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT */
export const syslogUrl = z
  .string({ error: 'expected udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT' })
  .regex(/^(udp|tcp|tls):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9._-]*):\d{1,5}$/, { error: 'expected udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT', abort: true })
  .refine((s) => portOk(s.replace(/^[a-z]+:\/\//, '')), { error: 'the port must be 0 to 65535' });

/** an http:// or https:// URL */
export const httpUrl = z
  .string({ error: 'expected an https:// or http:// URL' })
  .regex(/^https?:\/\/\S+$/, { error: 'expected an https:// or http:// URL', abort: true })
  .refine(
    (s) => {
      try {
        return new URL(s).hostname !== '';
      } catch {
        return false;
      }
    },
    { error: 'expected an https:// or http:// URL with a host' },
  );

export const SYSLOG_FACILITIES = [
  'kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp',
  'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7',
] as const;
