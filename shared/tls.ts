/**
 * Mutual TLS between agents and aggregator, from PEM files (made with `distappguard certs` or
 * any CA). The files are watched: a certificate, key or CA replaced on disk is used for new
 * connections without a restart. Files that cannot be used (unreadable, not PEM, a key that is
 * not the certificate's, a certificate outside its validity) are not loaded: the previous ones
 * stay in use and one log line says why.
 *
 * grpc-js takes reloadable credentials through its (experimental) certificate providers; the
 * provider here is ours rather than grpc-js's FileWatcherCertificateProvider, which passes on
 * whatever the files hold and drops the credentials when a read fails.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type PeerCertificate } from 'node:tls';
import type { Logger } from 'pino';

export interface TlsFiles {
  /** this side's certificate chain (PEM) */
  cert: string;
  key: string;
  /** the CA that signs the other side's certificates */
  ca: string;
}

export interface TlsWatchOptions {
  /** where reloads and unusable files are reported */
  log?: Logger;
  /** how often the files are looked at (default 5 s) */
  intervalMs?: number;
  /** names this side in log lines, e.g. 'aggregator' or 'agent' */
  name?: string;
}

export const DEFAULT_TLS_RELOAD_MS = 5000;

/** A certificate this close to its end is reported at every load. */
const EXPIRY_WARNING_MS = 14 * 86_400_000;

/** What is loaded now, for logs and metrics. */
export interface LoadedTls {
  serial: string;
  subject: string;
  /** sha256 fingerprint, as openssl prints it (AA:BB:…) */
  fingerprint256: string;
  notBefore: number;
  notAfter: number;
  loadedAt: number;
}

interface Loaded {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  info: LoadedTls;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${(e as Error).message}`);
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Every certificate of a PEM bundle. */
function pemCertificates(pem: Buffer, path: string, what: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`the TLS ${what} ${path} holds no PEM certificate`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new Error(`the TLS ${what} ${path}: certificate ${i + 1} does not parse (${(e as Error).message})`);
    }
  });
}

/**
 * Reads the three files and checks that they can serve: parseable, the key is the
 * certificate's, TLS accepts them. `validity` also asks that the certificate be valid now.
 */
function loadFiles(t: TlsFiles, validity: boolean, now = Date.now()): Loaded {
  const cert = read(t.cert, 'certificate');
  const key = read(t.key, 'key');
  const ca = read(t.ca, 'CA');
  const leaf = pemCertificates(cert, t.cert, 'certificate')[0];
  pemCertificates(ca, t.ca, 'CA');
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new Error(`the TLS key ${t.key} is not a usable PEM private key (encrypted keys are not supported): ${(e as Error).message}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new Error(`the TLS key ${t.key} is not the key of the certificate ${t.cert}`);
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (validity && now < notBefore) throw new Error(`the TLS certificate ${t.cert} is not valid before ${iso(notBefore)}`);
  if (validity && now > notAfter) throw new Error(`the TLS certificate ${t.cert} expired on ${iso(notAfter)}`);
  try {
    createSecureContext({ cert, key, ca });
  } catch (e) {
    throw new Error(`TLS refuses ${t.cert} / ${t.key} / ${t.ca}: ${(e as Error).message}`);
  }
  return { cert, key, ca, info: { serial: leaf.serialNumber, subject: leaf.subject.replace(/\n/g, ', '), fingerprint256: leaf.fingerprint256, notBefore, notAfter, loadedAt: now } };
}

/** Changes when any of the files is replaced or rewritten. */
function stamp(t: TlsFiles): string {
  return [t.cert, t.key, t.ca]
    .map((p) => {
      try {
        const s = statSync(p);
        return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

/**
 * One side's certificate, key and CA, watched on disk. A grpc-js certificate provider for both
 * the identity (certificate + key) and the CA; each credentials object built on it takes every
 * good reload. The first load throws on unusable files; later ones keep the previous files.
 */
export class TlsFileWatcher implements grpc.experimental.CertificateProvider {
  readonly counters = { reloads: 0, reloadFailures: 0 };
  private loaded: Loaded;
  private loadedStamp: string;
  /** files that failed to load once: reported when they fail again unchanged */
  private failedStamp = '';
  private reportedStamp = '';
  private timer: NodeJS.Timeout | undefined;
  private readonly identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();

  constructor(readonly files: TlsFiles, private readonly o: TlsWatchOptions = {}) {
    this.loadedStamp = stamp(files);
    this.loaded = loadFiles(files, false);
    this.reportValidity(this.loaded.info);
  }

  /** The certificate in use now. */
  get current(): LoadedTls {
    return this.loaded.info;
  }

  private get who(): string {
    return this.o.name ? `${this.o.name} ` : '';
  }

  private reportValidity(i: LoadedTls): void {
    const now = Date.now();
    const f = { cert: this.files.cert, serial: i.serial, notAfter: iso(i.notAfter) };
    if (now > i.notAfter) this.o.log?.error(f, `the ${this.who}TLS certificate ${this.files.cert} expired on ${iso(i.notAfter)}: the other side will refuse it; replace the file (it is reloaded without a restart)`);
    else if (now < i.notBefore) this.o.log?.error(f, `the ${this.who}TLS certificate ${this.files.cert} is not valid before ${iso(i.notBefore)}: check the clocks`);
    else if (i.notAfter - now < EXPIRY_WARNING_MS) this.o.log?.warn(f, `the ${this.who}TLS certificate ${this.files.cert} expires on ${iso(i.notAfter)}: issue a new one`);
  }

  /** Looks at the files once; loads them if they changed and can be used. */
  check(): void {
    const s = stamp(this.files);
    if (s === this.loadedStamp) {
      this.failedStamp = '';
      return;
    }
    let next: Loaded;
    try {
      next = loadFiles(this.files, true);
    } catch (e) {
      // files are often replaced one after the other (key, then certificate): report only
      // what is still wrong at the next look, when nothing changed in between
      if (s === this.failedStamp && s !== this.reportedStamp) {
        this.reportedStamp = s;
        this.counters.reloadFailures++;
        const i = this.loaded.info;
        this.o.log?.error(
          { cert: this.files.cert, key: this.files.key, ca: this.files.ca, err: (e as Error).message, keptSerial: i.serial, keptNotAfter: iso(i.notAfter) },
          `${this.who}TLS files changed but cannot be used, the previous certificate stays in use: ${(e as Error).message}`,
        );
      }
      this.failedStamp = s;
      return;
    }
    const before = this.loaded.info;
    this.loaded = next;
    this.loadedStamp = s;
    this.failedStamp = '';
    this.counters.reloads++;
    this.o.log?.info(
      { cert: this.files.cert, serial: next.info.serial, previousSerial: before.serial, notAfter: iso(next.info.notAfter), fingerprint256: next.info.fingerprint256 },
      `${this.who}TLS files reloaded: new connections use them`,
    );
    this.reportValidity(next.info);
    this.emit();
  }

  private emit(): void {
    const l = this.loaded;
    for (const f of this.identityListeners) f({ certificate: l.cert, privateKey: l.key });
    for (const f of this.caListeners) f({ caCertificate: l.ca });
  }

  /** Before a first listener: the files may have changed while nobody watched them. */
  private watch(): void {
    if (this.timer) return;
    this.check();
    this.timer = setInterval(() => this.check(), this.o.intervalMs ?? DEFAULT_TLS_RELOAD_MS);
    this.timer.unref();
  }

  private unwatchIfIdle(): void {
    if (this.identityListeners.size === 0 && this.caListeners.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  addIdentityCertificateListener(f: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.watch();
    this.identityListeners.add(f);
    const l = this.loaded;
    process.nextTick(f, { certificate: l.cert, privateKey: l.key });
  }

  removeIdentityCertificateListener(f: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(f);
    this.unwatchIfIdle();
  }

  addCaCertificateListener(f: grpc.experimental.CaCertificateUpdateListener): void {
    this.watch();
    this.caListeners.add(f);
    process.nextTick(f, { caCertificate: this.loaded.ca });
  }

  removeCaCertificateListener(f: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(f);
    this.unwatchIfIdle();
  }

  /** Stops looking at the files (credentials keep what they have). */
  close(): void {
    this.identityListeners.clear();
    this.caListeners.clear();
    this.unwatchIfIdle();
  }
}

/**
 * The aggregator's side: it asks every agent for a certificate signed by the CA and refuses
 * the handshake without one. The same watcher serves as identity and CA provider.
 */
export function serverCredentials(t: TlsFiles | TlsFileWatcher, o: TlsWatchOptions = {}): grpc.ServerCredentials {
  const w = t instanceof TlsFileWatcher ? t : new TlsFileWatcher(t, o);
  return grpc.experimental.createCertificateProviderServerCredentials(w, w, true);
}

/** An agent's side: its certificate for the aggregator, and the CA the aggregator's is signed by. */
export function clientCredentials(t: TlsFiles | TlsFileWatcher, o: TlsWatchOptions = {}): grpc.ChannelCredentials {
  const w = t instanceof TlsFileWatcher ? t : new TlsFileWatcher(t, o);
  return grpc.experimental.createCertificateProviderChannelCredentials(w, w);
}

/** The URI subject alternative name that carries a host id: `distappguard:host:<id>`. */
export const HOST_URI_PREFIX = 'distappguard:host:';

/** Host ids that `certs issue` accepts: they go into a URI and a CN unescaped. */
export const CERT_HOST_ID = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?$/;

/** Names and values of a subjectAltName as Node prints it (`DNS:a, URI:"b,c", IP Address:1.2.3.4`). */
export function parseSubjectAltName(text: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  if (!text) return out;
  const re = /\s*([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text))) {
    let value = m[2];
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        /* as printed */
      }
    }
    out.push({ type: m[1].trim(), value });
  }
  return out;
}

/**
 * The host a client certificate speaks for: its one `URI:distappguard:host:<id>` name; a
 * certificate without such a name (one from another CA tool), its subject's one CN.
 */
export function certificateHostId(cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'>): { ok: true; host: string; from: 'uri' | 'cn' } | { ok: false; reason: string } {
  const uris = parseSubjectAltName(cert.subjectaltname).filter((n) => n.type === 'URI' && n.value.startsWith(HOST_URI_PREFIX));
  if (uris.length > 1) return { ok: false, reason: `the certificate names ${uris.length} hosts (${uris.map((u) => u.value).join(', ')})` };
  if (uris.length === 1) {
    const host = uris[0].value.slice(HOST_URI_PREFIX.length);
    return host ? { ok: true, host, from: 'uri' } : { ok: false, reason: 'the certificate\'s host name is empty' };
  }
  const cn = (cert.subject as Record<string, string | string[]> | undefined)?.CN;
  if (typeof cn === 'string' && cn.length > 0) return { ok: true, host: cn, from: 'cn' };
  if (Array.isArray(cn)) return { ok: false, reason: `the certificate has ${cn.length} common names and no ${HOST_URI_PREFIX} name` };
  return { ok: false, reason: `the certificate has neither a URI:${HOST_URI_PREFIX}<id> name nor a common name` };
}
