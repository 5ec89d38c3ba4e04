/**
 * Alerts as syslog messages (RFC 5424) over UDP (RFC 5426: one datagram per alert, cut to a
 * safe size), TCP (RFC 6587 octet counting: `LEN SP MSG`) or TLS (RFC 5425, the same framing).
 * Hand-written over node:dgram, node:net and node:tls: the format is small and fixed.
 *
 *   <130>1 2026-11-26T12:00:05.120Z aggr01 distappguard 4242 INCIDENT [distappguard@32473 id="17"
 *   incident="5" app="epc" source="aggregator" window="2026-11-26T12:00:00.000Z" windowMs="5000"
 *   severity="high" score="3.41" threshold="1.02" anomalous="true" model="3" microservice="mme"
 *   newEdges="0"] high alert 17 in epc: ...
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import type { Severity } from '../store/detection.js';
import { DeliveryError, type AlertEvent, type AlertOutput } from './outputs.js';

/** RFC 5424 §6.2.1 facility codes by their usual names. */
export const FACILITIES: Readonly<Record<string, number>> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11, ntp: 12,
  security: 13, console: 14, clock: 15, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};

/** Alert severity → syslog severity: high 2 (critical), medium 4 (warning), low 5 (notice). */
export const SYSLOG_SEVERITY: Readonly<Record<Severity, number>> = { high: 2, medium: 4, low: 5 };

/** The SD-ID of the alert's structured data (32473: the example enterprise number of RFC 5612). */
export const SD_ID = 'distappguard@32473';

export type SyslogTransport = 'udp' | 'tcp' | 'tls';
const DEFAULT_PORT: Record<SyslogTransport, number> = { udp: 514, tcp: 601, tls: 6514 };
/** UDP: what every receiver takes (RFC 5426 §3.2); TCP and TLS: rsyslog's default limit. */
export const DEFAULT_MAX_BYTES: Record<SyslogTransport, number> = { udp: 2048, tcp: 8192, tls: 8192 };

export function facilityCode(f: string | number | undefined): number {
  if (f === undefined) return FACILITIES.local0;
  if (typeof f === 'number' || /^\d+$/.test(f)) {
    const n = Number(f);
    if (Number.isInteger(n) && n >= 0 && n <= 23) return n;
  } else if (f.toLowerCase() in FACILITIES) return FACILITIES[f.toLowerCase()];
  throw new Error(`facility '${f}' is not a syslog facility (0–23, or a name: ${Object.keys(FACILITIES).join(', ')})`);
}

export function parseSyslogUrl(url: string): { transport: SyslogTransport; host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`'${url}' is not a URL: give udp://HOST:514, tcp://HOST:601 or tls://HOST:6514`);
  }
  const transport = u.protocol.slice(0, -1) as SyslogTransport;
  if (!(transport in DEFAULT_PORT)) throw new Error(`'${url}': the scheme must be udp, tcp or tls`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new Error(`'${url}' names no host`);
  if (u.pathname.replace(/^\/$/, '') || u.search || u.username) throw new Error(`'${url}': give only the scheme, host and port`);
  return { transport, host, port: u.port ? Number(u.port) : DEFAULT_PORT[transport] };
}

// ------------------------------------------------------------------ the message

export interface SyslogFields {
  facility: number;
  hostname: string;
  appName: string;
  procId: string;
  /** the whole message (without TCP framing) is cut to this many bytes */
  maxBytes: number;
}

/** A header field: printable US-ASCII without spaces, at most `max` characters; `-` when empty. */
function headerField(v: string, max: number): string {
  const s = v.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return s || '-';
}

/** An SD-PARAM value: `"`, `\` and `]` escaped (RFC 5424 §6.3.3); control characters made visible. */
export function sdEscape(v: string): string {
  // eslint-disable-next-line no-control-regex
  return v.replace(/[\\"\]]/g, (c) => `\\${c}`).replace(/[\x00-\x1f\x7f]/g, '?');
}

const num = (x: number) => (Number.isFinite(x) ? String(Number(x.toPrecision(6))) : String(x));
const MAX_SD_VALUE = 200;

/** The SD-PARAMs of an alert, in order; values unescaped. */
export function alertParams(e: AlertEvent): [string, string][] {
  const a = e.alert;
  return [
    ['id', String(a.id)],
    ['incident', String(e.incident.id)],
    ['app', a.app],
    ['source', a.source],
    ['window', new Date(a.windowStart).toISOString()],
    ['windowMs', String(a.windowMs)],
    ['severity', a.severity],
    ['score', num(a.score)],
    ['threshold', num(a.threshold)],
    ['anomalous', String(a.anomalous)],
    ['model', a.modelId === null ? '' : String(a.modelId)],
    ['microservice', a.explanation.groups[0]?.name ?? ''],
    ['newEdges', String(a.explanation.newEdges.length)],
  ];
}

/** One line a person reads: what, where, how far over, and the edges that explain it. */
export function alertSummary(e: AlertEvent): string {
  const a = e.alert;
  const x = a.explanation;
  const parts = [
    `${a.severity} alert ${a.id} in ${a.app} (${e.incident.isNew ? 'new incident' : 'incident'} ${e.incident.id}, ${a.source}): ` +
      `window ${new Date(a.windowStart).toISOString()}, score ${num(a.score)} ${a.anomalous ? 'over' : 'under'} threshold ${num(a.threshold)}`,
  ];
  if (x.groups[0]) parts.push(`microservice ${x.groups[0].name} (${num(x.groups[0].ratio)}x its usual error)`);
  if (x.edges.length > 0) {
    parts.push(`edges ${x.edges.slice(0, 3).map((d) => `${d.src} -> ${d.dst} (${d.kind}) ${Math.round(d.observedBytes)} B vs ${Math.round(d.expectedBytes)} B expected`).join(', ')}`);
  }
  if (x.newEdges.length > 0) {
    const more = x.newEdges.length > 5 ? ` and ${x.newEdges.length - 5} more` : '';
    parts.push(`never seen: ${x.newEdges.slice(0, 5).map((d) => `${d.src} -> ${d.dst} (${d.kind}) ${d.bytes} B`).join(', ')}${more}`);
  }
  // one line: no control characters (a receiver with newline framing would split it)
  // eslint-disable-next-line no-control-regex
  return parts.join('; ').replace(/[\x00-\x1f\x7f]+/g, ' ');
}

/** Cuts `b` to at most `max` bytes without splitting a UTF-8 character. */
function cutUtf8(b: Buffer, max: number): Buffer {
  if (b.length <= max) return b;
  let end = Math.max(0, max);
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

/**
 * The RFC 5424 message of one alert: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.
 * MSGID is INCIDENT for the alert that opens an incident, ALERT for the ones after. The MSG
 * (plain UTF-8, no BOM, as most senders do) is the summary, cut to fit `maxBytes`; if even
 * the structured data does not fit, its last parameters go first (the id always stays).
 */
export function formatSyslog(e: AlertEvent, f: SyslogFields): Buffer {
  const pri = f.facility * 8 + SYSLOG_SEVERITY[e.alert.severity];
  const header = [
    `<${pri}>1`,
    new Date(e.alert.createdAt).toISOString(),
    headerField(f.hostname, 255),
    headerField(f.appName, 48),
    headerField(f.procId, 128),
    e.incident.isNew ? 'INCIDENT' : 'ALERT',
  ].join(' ');
  const params = alertParams(e).map(([k, v]) => `${k}="${sdEscape(v.length > MAX_SD_VALUE ? v.slice(0, MAX_SD_VALUE) : v)}"`);
  let head = Buffer.from(`${header} [${SD_ID} ${params.join(' ')}] `);
  while (head.length > f.maxBytes && params.length > 1) {
    params.pop();
    head = Buffer.from(`${header} [${SD_ID} ${params.join(' ')}] `);
  }
  const msg = cutUtf8(Buffer.from(alertSummary(e)), f.maxBytes - head.length);
  return cutUtf8(Buffer.concat([head, msg]), f.maxBytes);
}

/** RFC 6587 §3.4.1 octet counting: the message's length in bytes, a space, the message. */
export function octetFrame(msg: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${msg.length} `), msg]);
}

// ------------------------------------------------------------------ the output

export interface SyslogOutputOptions {
  /** udp://HOST[:514], tcp://HOST[:601], tls://HOST[:6514] */
  url: string;
  /** TLS: the CA file (PEM) that signed the receiver's certificate (default: the system's CAs) */
  ca?: string;
  /** name (local0, auth, …) or code 0–23; default local0 */
  facility?: string | number;
  /** APP-NAME; default distappguard */
  appName?: string;
  /** HOSTNAME; default this machine's name */
  hostname?: string;
  /** largest message in bytes (default: 2048 over UDP, 8192 over TCP and TLS) */
  maxBytes?: number;
  /** connecting and writing each give up after this long (default 5 s) */
  timeoutMs?: number;
  retries?: number;
}

export class SyslogAlertOutput implements AlertOutput {
  readonly name: string;
  readonly retries: number | undefined;
  readonly transport: SyslogTransport;
  private readonly host: string;
  private readonly port: number;
  private readonly fields: SyslogFields;
  private readonly ca: Buffer | undefined;
  private readonly timeoutMs: number;
  private sock: Socket | undefined;
  private udp: { socket: DgramSocket; family: number } | undefined;
  /** messages sent (each alert once per successful delivery) */
  sent = 0;

  constructor(o: SyslogOutputOptions) {
    const u = parseSyslogUrl(o.url);
    this.transport = u.transport;
    this.host = u.host;
    this.port = u.port;
    this.name = `syslog:${u.transport}://${isIP(u.host) === 6 ? `[${u.host}]` : u.host}:${u.port}`;
    this.retries = o.retries;
    this.timeoutMs = o.timeoutMs ?? 5000;
    if (o.ca !== undefined) {
      if (u.transport !== 'tls') throw new Error(`ca is for tls:// only (${o.url})`);
      try {
        this.ca = readFileSync(o.ca);
      } catch (e) {
        throw new Error(`cannot read the CA file ${o.ca}: ${(e as Error).message}`);
      }
    }
    const maxBytes = o.maxBytes ?? DEFAULT_MAX_BYTES[u.transport];
    if (!Number.isInteger(maxBytes) || maxBytes < 480) throw new Error(`maxBytes ${maxBytes}: at least 480 (RFC 5426)`);
    this.fields = {
      facility: facilityCode(o.facility),
      hostname: o.hostname ?? osHostname(),
      appName: o.appName ?? 'distappguard',
      procId: String(process.pid),
      maxBytes,
    };
  }

  format(e: AlertEvent): Buffer {
    return formatSyslog(e, this.fields);
  }

  async deliver(e: AlertEvent, signal: AbortSignal): Promise<void> {
    const msg = this.format(e);
    if (this.transport === 'udp') await this.sendDatagram(msg);
    else await this.write(await this.connected(signal), octetFrame(msg));
    this.sent++;
  }

  private async sendDatagram(msg: Buffer): Promise<void> {
    let address: string;
    let family: number;
    try {
      ({ address, family } = await lookup(this.host));
    } catch (e) {
      throw new DeliveryError(`cannot resolve ${this.host}: ${(e as Error).message}`, { cause: e });
    }
    if (this.udp?.family !== family) {
      this.udp?.socket.close();
      const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
      socket.on('error', () => {}); // send errors come back through the callback
      socket.unref();
      this.udp = { socket, family };
    }
    const socket = this.udp.socket;
    await new Promise<void>((res, rej) =>
      socket.send(msg, this.port, address, (err) => (err ? rej(new DeliveryError(`udp ${address}:${this.port}: ${err.message}`, { cause: err })) : res())),
    );
  }

  /** The open connection, or a new one (TLS: verified against `ca` and the host name). */
  private async connected(signal: AbortSignal): Promise<Socket> {
    if (this.sock && !this.sock.destroyed && this.sock.writable) return this.sock;
    this.sock = undefined;
    const where = `${this.transport}://${this.host}:${this.port}`;
    const s = await new Promise<Socket>((res, rej) => {
      const s =
        this.transport === 'tls'
          ? tlsConnect({ host: this.host, port: this.port, ca: this.ca, servername: isIP(this.host) ? undefined : this.host })
          : netConnect({ host: this.host, port: this.port });
      const fail = (err: Error) => {
        cleanup();
        s.destroy();
        rej(new DeliveryError(`${where}: ${err.message}`, { cause: err }));
      };
      const onAbort = () => fail(new Error('shutting down'));
      const timer = setTimeout(() => fail(new Error(`no connection after ${this.timeoutMs} ms`)), this.timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        s.off('error', fail);
        signal.removeEventListener('abort', onAbort);
      };
      s.once('error', fail);
      signal.addEventListener('abort', onAbort);
      s.once(this.transport === 'tls' ? 'secureConnect' : 'connect', () => {
        cleanup();
        res(s);
      });
    });
    s.on('error', () => {}); // seen as a failed write, or as 'close'
    // a receiver that closes its side is gone: the next alert connects again
    s.on('end', () => s.destroy());
    s.on('close', () => {
      if (this.sock === s) this.sock = undefined;
    });
    s.on('data', () => {}); // syslog receivers send nothing; drain whatever comes
    s.setKeepAlive(true, 30_000);
    s.setNoDelay(true);
    s.unref();
    this.sock = s;
    return s;
  }

  private write(s: Socket, frame: Buffer): Promise<void> {
    const where = `${this.transport}://${this.host}:${this.port}`;
    return new Promise<void>((res, rej) => {
      // a receiver that stops reading fills the buffers: give up on this connection
      const timer = setTimeout(() => s.destroy(new Error(`write not done after ${this.timeoutMs} ms`)), this.timeoutMs);
      s.write(frame, (err) => {
        clearTimeout(timer);
        if (err) {
          s.destroy();
          rej(new DeliveryError(`${where}: ${err.message}`, { cause: err }));
        } else res();
      });
    });
  }

  close(): void {
    this.sock?.end();
    this.sock?.destroy();
    this.sock = undefined;
    this.udp?.socket.close();
    this.udp = undefined;
  }
}
