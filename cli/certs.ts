/**
 * `distappguard certs init|issue`: a small CA for mutual TLS between agents and aggregator.
 * Keys and certificates are made by Debian's openssl (no ASN.1 of our own); this file only
 * checks what it is given, lays the files out, and never overwrites one unless told to.
 *
 *   DIR/ca.key, DIR/ca.pem                    the CA (key 0600); stays where it was made
 *   DIR/model-key.pub.pem                     (init --model-key) the aggregator's model public key
 *   OUT/<id>.pem, OUT/<id>.key, OUT/ca.pem    one host's certificate, key (0600) and the CA,
 *   (+ OUT/model-key.pub.pem)                 what gets copied to that host (OUT: DIR/<id>)
 *
 * An agent's certificate says which host it speaks for: CN=<id> and the subject alternative
 * name URI:distappguard:host:<id>, with extendedKeyUsage clientAuth only. The aggregator's
 * (--server) has its DNS names and IP addresses and serverAuth only, so neither kind can
 * stand in for the other.
 */
import { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { loadOrCreateSigningKey } from '../shared/model/signing.js';
import { CERT_HOST_ID, HOST_URI_PREFIX } from '../shared/tls.js';
import { CliError } from './distributed.js';

export const DEFAULT_CA_DIR = 'distappguard-ca';
export const MODEL_PUBLIC_KEY_FILE = 'model-key.pub.pem';
const CA_DAYS = 3650;
const CERT_DAYS = 365;

export interface InitOptions {
  dir: string;
  days: number;
  /** the CA's common name */
  name: string;
  force: boolean;
  /** the aggregator's model signing key (created when missing): its public part goes beside the CA */
  modelKey?: string;
}

export interface IssueOptions {
  dir: string;
  /** the host id (client), or the aggregator's name (server) */
  host: string;
  /** default DIR/<host> */
  out?: string;
  days: number;
  server: boolean;
  /** --server: DNS names and IP addresses the agents reach the aggregator by */
  san: string[];
  force: boolean;
}

export interface Written {
  files: string[];
  serial: string;
  notAfter: string;
  subjectAltName?: string;
}

function openssl(args: string[], cwd: string): string {
  try {
    return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new CliError('openssl was not found: install it (Debian: apt-get install openssl)');
    const why = (err.stderr ?? '').trim().split('\n').slice(-3).join(' / ') || err.message;
    throw new CliError(`openssl ${args[0]} failed: ${why}`);
  }
}

function days(text: string | number, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 36500) throw new CliError(`${what} '${text}': a whole number of days from 1 to 36500`);
  return n;
}

function fsError(e: unknown, what: string): CliError {
  return new CliError(`${what}: ${(e as Error).message}`);
}

/** A working folder beside the outputs (same file system: the results are renamed into place). */
function workDir(beside: string): string {
  try {
    mkdirSync(beside, { recursive: true, mode: 0o700 });
    return mkdtempSync(join(beside, '.certs-'));
  } catch (e) {
    throw fsError(e, `cannot write in ${beside}`);
  }
}

/** Refuses, before anything is made, when any output exists and --force was not given. */
function checkFree(paths: string[], force: boolean, hint: string): void {
  if (force) return;
  const taken = paths.filter((p) => existsSync(p));
  if (taken.length > 0) throw new CliError(`${taken.join(', ')} already exist${taken.length === 1 ? 's' : ''}: nothing was written (${hint}; --force replaces them)`);
}

/** Moves a finished file into place: atomically replacing it with --force, else only if absent. */
function publish(tmp: string, dest: string, force: boolean): void {
  try {
    if (force) renameSync(tmp, dest);
    else {
      linkSync(tmp, dest);
      unlinkSync(tmp);
    }
  } catch (e) {
    throw fsError(e, `cannot write ${dest}`);
  }
}

const REQ_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

function newKey(work: string, name: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name], work);
  chmodSync(join(work, name), 0o600);
}

function describe(pem: string): { serial: string; notAfter: string; subjectAltName?: string } {
  const c = new X509Certificate(pem);
  return { serial: c.serialNumber, notAfter: new Date(c.validTo).toISOString(), subjectAltName: c.subjectAltName };
}

/** `certs init`: a new CA in `dir`. */
export function initCa(o: InitOptions): Written {
  const dir = resolve(o.dir);
  const name = o.name.trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/.test(name)) throw new CliError(`--name '${o.name}': letters, digits, spaces, '.', '_' and '-' only (at most 64)`);
  const caKey = join(dir, 'ca.key');
  const caPem = join(dir, 'ca.pem');
  const pub = join(dir, MODEL_PUBLIC_KEY_FILE);
  checkFree([caKey, caPem], o.force, `${dir} already holds a CA; replacing it makes every certificate it issued unusable`);
  let modelPem: string | undefined;
  if (o.modelKey !== undefined) {
    modelPem = modelPublicKey(o.modelKey);
    if (!o.force && existsSync(pub) && readFileSync(pub, 'utf8') !== modelPem) throw new CliError(`${pub} holds another model key: nothing was written (--force replaces it)`);
  }
  const work = workDir(dir);
  try {
    writeFileSync(join(work, 'req.cnf'), REQ_CONFIG);
    newKey(work, 'ca.key');
    openssl(['req', '-x509', '-new', '-config', 'req.cnf', '-extensions', 'v3_ca', '-key', 'ca.key', '-subj', `/CN=${name}`, '-days', String(o.days), '-sha256', '-out', 'ca.pem'], work);
    const info = describe(readFileSync(join(work, 'ca.pem'), 'utf8'));
    publish(join(work, 'ca.key'), caKey, o.force);
    publish(join(work, 'ca.pem'), caPem, o.force);
    const files = [caKey, caPem];
    if (modelPem !== undefined) {
      writeFileSync(join(work, MODEL_PUBLIC_KEY_FILE), modelPem);
      publish(join(work, MODEL_PUBLIC_KEY_FILE), pub, true);
      files.push(pub);
    }
    return { files, serial: info.serial, notAfter: info.notAfter };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The aggregator's model public key (SPKI PEM) from its key file, created when missing. */
function modelPublicKey(file: string): string {
  try {
    if (!existsSync(file)) return loadOrCreateSigningKey(file).publicPem;
    const key = createPublicKey(readFileSync(file)); // a private key gives its public part
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an ${key.asymmetricKeyType} key; the aggregator signs models with Ed25519`);
    return key.export({ type: 'spki', format: 'pem' }).toString();
  } catch (e) {
    throw new CliError(`--model-key ${file}: ${(e as Error).message}`);
  }
}

/** The CA in `dir`, checked: present, a CA, its key, still valid. */
function loadCa(dir: string): { pem: string; cert: X509Certificate; keyPath: string; pemPath: string } {
  const pemPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca.key');
  if (!existsSync(pemPath) || !existsSync(keyPath)) {
    throw new CliError(`no CA in ${dir} (ca.pem and ca.key): run \`distappguard certs init --dir ${dir}\` first, or give --dir`);
  }
  let pem: string;
  let cert: X509Certificate;
  try {
    pem = readFileSync(pemPath, 'utf8');
    cert = new X509Certificate(pem);
  } catch (e) {
    throw fsError(e, `${pemPath} is not a readable PEM certificate`);
  }
  if (!cert.ca) throw new CliError(`${pemPath} is not a CA certificate`);
  try {
    if (!cert.checkPrivateKey(createPrivateKey(readFileSync(keyPath)))) throw new Error('it is not the key of ca.pem');
  } catch (e) {
    throw fsError(e, `the CA key ${keyPath} cannot be used`);
  }
  if (Date.now() > Date.parse(cert.validTo)) throw new CliError(`the CA ${pemPath} expired on ${new Date(cert.validTo).toISOString()}: make a new one (certs init --force) and issue every certificate again`);
  return { pem, cert, keyPath, pemPath };
}

/** `--san` values: DNS names and IP addresses, with or without a DNS:/IP: prefix. */
export function sanEntries(values: string[]): string[] {
  const label = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
  const dns = new RegExp(`^${label}(?:\\.${label})*$`);
  return values.map((raw) => {
    const v = raw.trim().replace(/^(dns|ip):/i, '');
    const kind = /^ip:/i.test(raw.trim()) ? 'IP' : /^dns:/i.test(raw.trim()) ? 'DNS' : isIP(v) ? 'IP' : 'DNS';
    if (kind === 'IP' && !isIP(v)) throw new CliError(`--san '${raw}': not an IP address`);
    if (kind === 'DNS' && (!dns.test(v) || v.length > 253)) throw new CliError(`--san '${raw}': not a DNS name or an IP address`);
    return `${kind}:${v}`;
  });
}

/** `certs issue`: a host's client certificate, or (--server) the aggregator's. */
export function issueCert(o: IssueOptions): Written {
  const dir = resolve(o.dir);
  if (!CERT_HOST_ID.test(o.host)) {
    throw new CliError(`--host '${o.host}': a host id for a certificate is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it must equal the agent's --host-id)`);
  }
  if (!o.server && o.san.length > 0) throw new CliError('--san is for --server certificates; an agent\'s certificate names only its host id');
  const ca = loadCa(dir);
  const caEnd = Date.parse(ca.cert.validTo);
  if (Date.now() + o.days * 86_400_000 > caEnd) {
    throw new CliError(`--days ${o.days}: the certificate would outlive the CA, which expires on ${new Date(caEnd).toISOString()}; give fewer days`);
  }
  const out = resolve(o.out ?? join(dir, o.host));
  const certPath = join(out, `${o.host}.pem`);
  const keyPath = join(out, `${o.host}.key`);
  const caCopy = join(out, 'ca.pem');
  const pubSrc = join(dir, MODEL_PUBLIC_KEY_FILE);
  const pubCopy = join(out, MODEL_PUBLIC_KEY_FILE);
  const copies: [string, string][] = [];
  if (resolve(caCopy) !== ca.pemPath) copies.push([ca.pemPath, caCopy]);
  if (existsSync(pubSrc) && resolve(pubCopy) !== pubSrc) copies.push([pubSrc, pubCopy]);
  // a copy that is already there and the same is fine; a different one is not replaced silently
  const differing = copies.filter(([src, dst]) => existsSync(dst) && !readFileSync(dst).equals(readFileSync(src))).map(([, dst]) => dst);
  checkFree([certPath, keyPath, ...differing], o.force, `a certificate for ${o.host} was issued before`);

  const sans = o.server ? sanEntries(o.san.length > 0 ? o.san : [o.host]) : [`URI:${HOST_URI_PREFIX}${o.host}`];
  const ext = [
    '[ext]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    `extendedKeyUsage = ${o.server ? 'serverAuth' : 'clientAuth'}`,
    `subjectAltName = ${sans.join(', ')}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '',
  ].join('\n');
  const work = workDir(out);
  try {
    writeFileSync(join(work, 'req.cnf'), REQ_CONFIG);
    writeFileSync(join(work, 'ext.cnf'), ext);
    newKey(work, 'cert.key');
    openssl(['req', '-new', '-config', 'req.cnf', '-key', 'cert.key', '-subj', `/CN=${o.host}`, '-out', 'cert.csr'], work);
    // no serial file: openssl 3 picks a random serial
    openssl(['x509', '-req', '-in', 'cert.csr', '-CA', ca.pemPath, '-CAkey', ca.keyPath, '-days', String(o.days), '-sha256', '-extfile', 'ext.cnf', '-extensions', 'ext', '-out', 'cert.pem'], work);
    const pem = readFileSync(join(work, 'cert.pem'), 'utf8');
    if (!new X509Certificate(pem).verify(ca.cert.publicKey)) throw new CliError('openssl made a certificate the CA\'s key did not sign');
    const info = describe(pem);
    // key first: a process that reloads these files finds a pair that matches once both are in place
    publish(join(work, 'cert.key'), keyPath, o.force);
    publish(join(work, 'cert.pem'), certPath, o.force);
    const files = [certPath, keyPath];
    for (const [src, dst] of copies) {
      if (!existsSync(dst) || !readFileSync(dst).equals(readFileSync(src))) {
        const tmp = join(work, 'copy');
        writeFileSync(tmp, readFileSync(src), { mode: 0o644 });
        publish(tmp, dst, true);
      }
      files.push(dst);
    }
    return { files, ...info };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function warnLooseKey(log: Logger, keyPath: string): void {
  try {
    if ((statSync(keyPath).mode & 0o077) !== 0) log.warn({ file: keyPath }, `${keyPath} can be read by other users: chmod 600 it`);
  } catch {
    /* checked where it is used */
  }
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

export function addCertsCommands(program: Command, log: Logger): void {
  const certs = program.command('certs').description('a CA and certificates for mutual TLS between agents and aggregator (made with openssl)');

  certs
    .command('init')
    .description('create a CA: DIR/ca.key (0600) and DIR/ca.pem')
    .option('--dir <dir>', 'where the CA is kept', DEFAULT_CA_DIR)
    .option('--days <n>', 'how long the CA is valid', String(CA_DAYS))
    .option('--name <cn>', "the CA's common name", 'DistAppGuard CA')
    .option('--model-key <file>', "the aggregator's model signing key (created when missing): its public key is written to DIR/" + MODEL_PUBLIC_KEY_FILE + ' and copied with every certificate')
    .option('--force', 'replace an existing CA (every certificate it issued stops being accepted)')
    .action((o) => {
      const w = initCa({ dir: o.dir, days: days(o.days, '--days'), name: o.name, force: Boolean(o.force), modelKey: o.modelKey });
      log.debug({ files: w.files, serial: w.serial, notAfter: w.notAfter }, 'CA created');
      process.stdout.write(`CA created, valid until ${w.notAfter}:\n${w.files.map((f) => `  ${f}`).join('\n')}\nKeep ca.key off the hosts; issue certificates with \`distappguard certs issue --dir ${o.dir} --host ID\`.\n`);
    });

  certs
    .command('issue')
    .description("issue a host's client certificate (identity: CN and URI SAN distappguard:host:ID), or with --server the aggregator's")
    .requiredOption('--host <id>', "the agent's host id (its --host-id); with --server, the aggregator's name")
    .option('--dir <dir>', 'the CA made by `certs init`', DEFAULT_CA_DIR)
    .option('--out <dir>', 'where the certificate, its key and ca.pem go (default: DIR/<id>)')
    .option('--days <n>', 'how long the certificate is valid', String(CERT_DAYS))
    .option('--server', "the aggregator's server certificate")
    .option('--san <name>', '--server: a DNS name or IP address agents connect to (repeatable; default: --host)', collect)
    .option('--force', 'replace existing files (processes using them reload them)')
    .action((o) => {
      const w = issueCert({ dir: o.dir, host: o.host, out: o.out, days: days(o.days, '--days'), server: Boolean(o.server), san: o.san ?? [], force: Boolean(o.force) });
      warnLooseKey(log, join(resolve(o.dir), 'ca.key'));
      const kind = o.server ? `server certificate for ${o.host}` : `client certificate for host ${o.host}`;
      log.debug({ files: w.files, serial: w.serial, notAfter: w.notAfter, subjectAltName: w.subjectAltName }, `${kind} issued`);
      process.stdout.write(`${kind} issued (${w.subjectAltName}), serial ${w.serial}, valid until ${w.notAfter}:\n${w.files.map((f) => `  ${f}`).join('\n')}\n`);
    });
}
