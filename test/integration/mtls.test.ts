/**
 * Mutual TLS between agents and aggregator, for real: certificates made by `distappguard certs`
 * (the built program, Debian's openssl), the aggregator and agents over gRPC on loopback.
 * An agent speaks only for the host its certificate names; clients without a certificate, with
 * an expired one or one from another CA are refused at the handshake; the aggregator's
 * certificate is replaced on disk and taken without a restart; and the good agent is served
 * throughout.
 */
import * as grpc from '@grpc/grpc-js';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AggregatorServer } from '../../aggregator/server.js';
import { Store } from '../../aggregator/store/index.js';
import { AgentLink } from '../../agent/link.js';
import { Spool } from '../../agent/spool.js';
import { PROTOCOL_VERSION } from '../../shared/wire.js';
import type { PartialWindow } from '../../shared/graph.js';
import { roleId } from '../../shared/role-id.js';
import { clientConstructor, messages } from '../../shared/grpc-service.js';
import { AgentService } from '../../shared/gen/distappguard/v1/agent_pb.js';
import type { TlsFiles } from '../../shared/tls.js';
import { loadOrCreateSigningKey, sameKey } from '../../shared/model/signing.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/cli/main.js');
const run = promisify(execFile);

async function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN, ...args], { cwd, env: { ...process.env, NO_PRETTY: '1' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

async function ok(args: string[], cwd: string): Promise<string> {
  const r = await cli(args, cwd);
  if (r.code !== 0) throw new Error(`certs ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r.stdout;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function window(host: string, start: number): PartialWindow {
  const e = [{ srcId: roleId('svc/w'), dstId: roleId('file:/data/x'), src: 'svc/w', dst: 'file:/data/x', kind: 'file' as const, bytes: 100, count: 1 }];
  return { app: 'shop', host, windowStart: start, windowMs: 1000, edges: e, flows: [], stats: { events: 1, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 } };
}

/** A certificate whose validity ended in 2020, signed by the CA in `caDir` (openssl ca sets both dates). */
function expiredCert(dir: string, caDir: string, host: string): TlsFiles {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'ca.cnf'), [
    '[ca]', 'default_ca = d', '[d]', 'database = index.txt', 'new_certs_dir = .', `certificate = ${caDir}/ca.pem`, `private_key = ${caDir}/ca.key`,
    'default_md = sha256', 'policy = p', 'rand_serial = yes', 'unique_subject = no', '[p]', 'commonName = supplied',
    '[ext]', 'extendedKeyUsage = clientAuth', `subjectAltName = URI:distappguard:host:${host}`, '',
  ].join('\n'));
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'old.key', '-out', 'old.csr', '-subj', `/CN=${host}`);
  ssl('ca', '-batch', '-config', 'ca.cnf', '-in', 'old.csr', '-out', 'old.pem', '-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-extensions', 'ext', '-notext');
  return { cert: join(dir, 'old.pem'), key: join(dir, 'old.key'), ca: join(caDir, 'ca.pem') };
}

const Client = clientConstructor(AgentService);

/** One stream with the given credentials: how it ended (a handshake refusal is UNAVAILABLE). */
async function tryStream(addr: string, creds: grpc.ChannelCredentials): Promise<{ code: number; details: string }> {
  const client = new Client(addr, creds, { 'grpc.use_local_subchannel_pool': 1 });
  try {
    const call = client.connect();
    try {
      for await (const _ of messages(call)) {
        /* a welcome would mean it got through */
        return { code: grpc.status.OK, details: 'welcomed' };
      }
      return { code: grpc.status.OK, details: 'ended' };
    } catch (e) {
      const err = e as grpc.ServiceError;
      return { code: err.code, details: err.details };
    }
  } finally {
    client.close();
  }
}

/** The certificate the aggregator presents to a new connection. */
async function presented(addr: string, client: TlsFiles): Promise<string> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((res, rej) => {
    const s = tlsConnect({ host, port, servername: 'localhost', ca: readFileSync(client.ca), cert: readFileSync(client.cert), key: readFileSync(client.key), ALPNProtocols: ['h2'] }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      res(fp);
    });
    s.once('error', rej);
  });
}

const SKIP = !existsSync(MAIN) || (() => {
  try {
    execFileSync('openssl', ['version']);
    return false;
  } catch {
    return true;
  }
})();

describe.skipIf(SKIP)('mutual TLS between agents and aggregator', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dag-mtls-'));
  const ca = join(dir, 'ca');
  const files = (host: string, caDir = ca): TlsFiles => ({ cert: join(caDir, host, `${host}.pem`), key: join(caDir, host, `${host}.key`), ca: join(caDir, host, 'ca.pem') });
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const said = (re: RegExp) => lines.filter((l) => re.test(String(l.msg)));
  let store: Store;
  let server: AggregatorServer;
  let addr: string;
  let good: AgentLink;
  let goodSpool: Spool;
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 600_000;
  let sent = 0;
  const links: AgentLink[] = [];

  function agent(id: string, host: string, tls: TlsFiles): { link: AgentLink; spool: Spool } {
    const spool = Spool.open(join(dir, `${id}.spool`), { maxBytes: 1 << 24, maxAgeMs: 3_600_000 });
    const link = new AgentLink({
      aggregator: addr, spool, log, tls, tlsReloadMs: 100, initialBackoffMs: 100, maxBackoffMs: 300,
      hello: { agentId: id, host, app: 'shop', agentVersion: 't', protocolVersion: PROTOCOL_VERSION, windowMs: 1000, collector: 'test' },
    });
    links.push(link);
    link.start();
    return { link, spool };
  }

  /** The good agent sends one more window and it is committed: it is being served. */
  async function goodStillServed(): Promise<void> {
    good.enqueue(window('h1', t0 + sent++ * 1000));
    expect(await good.waitDrained(10_000)).toBe(true);
    expect(store.agentLastSeq('h1')).toBe(sent);
  }

  beforeAll(async () => {
    await Promise.all([ok(['certs', 'init', '--dir', 'ca', '--model-key', 'agg/model-key.pem'], dir), ok(['certs', 'init', '--dir', 'other', '--name', 'Someone Else'], dir)]);
    await Promise.all([
      ok(['certs', 'issue', '--dir', 'ca', '--host', 'h1'], dir),
      ok(['certs', 'issue', '--dir', 'ca', '--host', 'h2'], dir),
      ok(['certs', 'issue', '--dir', 'ca', '--server', '--host', 'aggregator', '--san', '127.0.0.1', '--san', 'localhost'], dir),
      ok(['certs', 'issue', '--dir', 'other', '--host', 'h1'], dir),
    ]);
    store = Store.open(join(dir, 'agg.db'));
    server = new AggregatorServer({ listen: '127.0.0.1:0', store, log, graceMs: 500, tls: files('aggregator'), tlsReloadMs: 100 });
    addr = await server.start();
    ({ link: good, spool: goodSpool } = agent('h1', 'h1', files('h1')));
  }, 120_000);

  afterAll(async () => {
    for (const l of links) await l.stop();
    await server?.stop();
    store?.close();
    goodSpool?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('certs init and issue lay out a CA and per-host certificates, and refuse what they should', async () => {
    expect(statSync(join(ca, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(files('h1').key).mode & 0o777).toBe(0o600);
    const h1 = new X509Certificate(readFileSync(files('h1').cert));
    expect(h1.subject).toBe('CN=h1');
    expect(h1.subjectAltName).toBe('URI:distappguard:host:h1');
    expect(h1.checkIssued(new X509Certificate(readFileSync(join(ca, 'ca.pem'))))).toBe(true);
    const agg = new X509Certificate(readFileSync(files('aggregator').cert));
    expect(agg.subjectAltName).toBe('IP Address:127.0.0.1, DNS:localhost');
    expect(readFileSync(files('h1').ca)).toEqual(readFileSync(join(ca, 'ca.pem')));
    // the aggregator's model key was created (as the aggregator would) and its public part
    // travels with every certificate, for the agents' --model-key
    expect(statSync(join(dir, 'agg/model-key.pem')).mode & 0o777).toBe(0o600);
    const pub = loadOrCreateSigningKey(join(dir, 'agg/model-key.pem')).publicPem;
    expect(sameKey(readFileSync(join(ca, 'h1', 'model-key.pub.pem'), 'utf8'), pub)).toBe(true);

    const before = readFileSync(files('h1').cert);
    const [again, bad, noCa, caAgain] = await Promise.all([
      cli(['certs', 'issue', '--dir', 'ca', '--host', 'h1'], dir),
      cli(['certs', 'issue', '--dir', 'ca', '--host', 'h1/../x'], dir),
      cli(['certs', 'issue', '--dir', 'nowhere', '--host', 'h1'], dir),
      cli(['certs', 'init', '--dir', 'ca'], dir),
    ]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/h1\.pem, .*h1\.key already exist: nothing was written .*--force replaces them/);
    expect(readFileSync(files('h1').cert)).toEqual(before);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--host 'h1\/\.\.\/x': a host id for a certificate is/);
    expect(noCa.code).toBe(2);
    expect(noCa.stderr).toMatch(/no CA in .*nowhere .*run `distappguard certs init/);
    expect(caAgain.code).toBe(2);
    expect(caAgain.stderr).toMatch(/ca\.key, .*ca\.pem already exist: nothing was written/);
    for (const r of [again, bad, noCa, caAgain]) expect(r.stderr.trim().split('\n')).toHaveLength(1);
  }, 120_000);

  it("accepts an agent with its host's certificate and stores its windows", async () => {
    for (let i = 0; i < 3; i++) good.enqueue(window('h1', t0 + sent++ * 1000));
    expect(await good.waitDrained(10_000)).toBe(true);
    expect(store.agentLastSeq('h1')).toBe(3);
    expect(said(/agent connected/).some((l) => l.host === 'h1')).toBe(true);
  });

  it("refuses an agent presenting h1's certificate while claiming host h2", async () => {
    const { link, spool } = agent('h2', 'h2', files('h1'));
    link.enqueue(window('h2', t0));
    await waitFor('refusal', () => server.counters.identityRefused >= 1 && /PERMISSION_DENIED/.test(link.counters.lastError));
    await link.stop();
    expect(link.counters.lastError).toMatch(/PERMISSION_DENIED: agent h2 claims host 'h2' but its certificate is for host 'h1'/);
    const line = said(/claims host/)[0];
    expect(line).toMatchObject({ claimedHost: 'h2', certificateHost: 'h1', code: 'PERMISSION_DENIED', level: 40 });
    expect(store.agentLastSeq('h2')).toBe(-1);
    expect(spool.stats().entriesHeld).toBe(1); // kept for when it is fixed, never accepted
    spool.close();
    await goodStillServed();
  });

  it('refuses at the handshake a client without a certificate, with an expired one, one from another CA, or a server certificate', async () => {
    const caPem = readFileSync(join(ca, 'ca.pem'));
    const expired = expiredCert(mkdtempSync(join(dir, 'expired-')), ca, 'h1');
    const other = files('h1', join(dir, 'other'));
    const cases = [
      { name: 'none', creds: grpc.credentials.createSsl(caPem), says: 'the client sent no certificate' },
      { name: 'expired', creds: grpc.credentials.createSsl(caPem, readFileSync(expired.key), readFileSync(expired.cert)), says: 'the client certificate has expired' },
      // the other CA's h1 trusts our aggregator (its ca.pem is ours) but is signed by its own CA
      { name: 'other CA', creds: grpc.credentials.createSsl(caPem, readFileSync(other.key), readFileSync(other.cert)), says: 'the client certificate is not signed by this CA' },
      // the aggregator's own certificate is signed by the right CA but for servers only
      { name: 'server certificate', creds: grpc.credentials.createSsl(caPem, readFileSync(files('aggregator').key), readFileSync(files('aggregator').cert)), says: 'the certificate is not a client certificate (extendedKeyUsage)' },
    ];
    for (const c of cases) {
      const before = server.counters.handshakeRefused;
      const r = await tryStream(addr, c.creds);
      expect(r.code, `${c.name}: ${r.details}`).toBe(grpc.status.UNAVAILABLE);
      await waitFor(`${c.name} logged`, () => said(/TLS handshake refused/).some((l) => l.msg === `TLS handshake refused: ${c.says}`)).catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(said(/TLS handshake refused/).map((l) => [l.code, l.err]))}`);
      });
      expect(server.counters.handshakeRefused).toBeGreaterThan(before);
      expect(said(/TLS handshake refused/).find((l) => l.msg === `TLS handshake refused: ${c.says}`)?.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    }
    expect(server.counters.streams).toBe(2); // only h1 and the impostor reached the service
    await goodStillServed();
    expect(good.counters.reconnects).toBe(0);
  });

  it("takes a new aggregator certificate from disk without a restart, and keeps the old one when the new files are bad", async () => {
    const oldFp = new X509Certificate(readFileSync(files('aggregator').cert)).fingerprint256;
    expect(await presented(addr, files('h1'))).toBe(oldFp);
    await ok(['certs', 'issue', '--dir', 'ca', '--server', '--host', 'aggregator', '--san', '127.0.0.1', '--san', 'localhost', '--force'], dir);
    const newFp = new X509Certificate(readFileSync(files('aggregator').cert)).fingerprint256;
    expect(newFp).not.toBe(oldFp);
    await waitFor('reload', () => server.tlsFiles!.counters.reloads >= 1);
    expect(await presented(addr, files('h1'))).toBe(newFp);
    expect(said(/aggregator TLS files reloaded/)).toHaveLength(1);
    // still mutual: the reloaded context asks for a client certificate as the first did
    expect((await tryStream(addr, grpc.credentials.createSsl(readFileSync(join(ca, 'ca.pem'))))).code).toBe(grpc.status.UNAVAILABLE);

    // a new agent connects with the new certificate in place; the old stream carries on
    const h2 = agent('h2b', 'h2', files('h2'));
    h2.link.enqueue(window('h2', t0));
    expect(await h2.link.waitDrained(10_000)).toBe(true);
    expect(store.agentLastSeq('h2b')).toBe(1);
    await h2.link.stop();
    h2.spool.close();
    await goodStillServed();

    // garbage where the key was: not loaded, one clear line, connections still work
    writeFileSync(files('aggregator').key, 'not a key\n');
    await waitFor('reload failure', () => server.tlsFiles!.counters.reloadFailures >= 1);
    const line = said(/TLS files changed but cannot be used/)[0];
    expect(line.msg).toMatch(/aggregator TLS files changed but cannot be used, the previous certificate stays in use: the TLS key .*aggregator\.key is not a usable PEM private key/);
    expect(await presented(addr, files('h1'))).toBe(newFp);
    await goodStillServed();
  }, 120_000);

  it("an agent's own certificate is reloaded too, and the good agent was never cut off", async () => {
    const before = good.tlsFiles!.current.serial;
    await ok(['certs', 'issue', '--dir', 'ca', '--host', 'h1', '--force'], dir);
    await waitFor('agent reload', () => good.tlsFiles!.counters.reloads >= 1);
    expect(good.tlsFiles!.current.serial).not.toBe(before);
    expect(good.tlsFiles!.current.serial).toBe(new X509Certificate(readFileSync(files('h1').cert)).serialNumber);
    await goodStillServed();
    expect(good.counters).toMatchObject({ reconnects: 0, refused: 0, connects: 1 });
    expect(store.agentLastSeq('h1')).toBe(sent);
  }, 120_000);
});
