/**
 * The database tier: a throwaway PostgreSQL 15 cluster (initdb into the run's folder) started
 * from Debian's binaries in its namespace host as the `postgres` user (it refuses root),
 * listening on the host's address only, with pg_stat_statements loaded; then the shop
 * database is created and seeded (workload/webstack/seed.sql).
 */
import { execFile } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { NsHost } from '../../cli/netns.js';
import { PG_BIN } from './requirements.js';
import { descendants, launch, sleep, stopProc, waitFor, type Proc } from './proc.js';

const run = promisify(execFile);

export interface SeedSizes {
  products: number;
  users: number;
  orders: number;
}

export const DEFAULT_SEED_SIZES: SeedSizes = { products: 20_000, users: 10_000, orders: 20_000 };

export interface PostgresOptions {
  host: NsHost;
  dir: string;
  port: number;
  /** password of the application's role `shop` */
  password: string;
  seed: number;
  sizes: SeedSizes;
  seedSql: string;
  wrap?: (argv: string[]) => string[];
}

export interface Postgres {
  proc: Proc;
  /** the postmaster */
  pid: number;
  port: number;
  dataDir: string;
  /** libpq connection string for the application role, from any host of the subnet */
  conninfo: string;
  /** the role's password: pass it as PGPASSWORD, not on a command line anyone can read */
  password: string;
  /** run SQL as the superuser in database shop; unaligned, tuples only */
  query(sql: string): Promise<string>;
  stop(): Promise<void>;
}

async function asPostgres(argv: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run('runuser', ['-u', 'postgres', '--', ...argv], { timeout: timeoutMs, maxBuffer: 64 << 20 });
  return stdout;
}

async function ids(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function subnet(ip: string): string {
  return ip.split('.').slice(0, 3).join('.') + '.0/24';
}

export async function startPostgres(o: PostgresOptions): Promise<Postgres> {
  const { uid, gid } = await ids();
  const dataDir = join(o.dir, 'data');
  const sockDir = join(o.dir, 'sock');
  mkdirSync(sockDir, { recursive: true });
  chownSync(o.dir, uid, gid);
  chownSync(sockDir, uid, gid);
  try {
    await asPostgres(['test', '-x', o.dir]);
  } catch {
    throw new Error(`the postgres user cannot reach ${o.dir}: every folder above it must be searchable by others (chmod o+x)`);
  }
  // -N: no fsync of a cluster that lives for one run
  await asPostgres([join(PG_BIN, 'initdb'), '-D', dataDir, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-locale', '-E', 'UTF8', '-N']);
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    [
      `listen_addresses = '${o.host.ip}'`,
      `port = ${o.port}`,
      `unix_socket_directories = '${sockDir}'`,
      `shared_preload_libraries = 'pg_stat_statements'`,
      `pg_stat_statements.track = all`,
      `max_connections = 60`,
      `shared_buffers = 64MB`,
      // a testbed, not a store: durability costs only disk writes here
      `fsync = off`,
      `synchronous_commit = off`,
      `full_page_writes = off`,
      `logging_collector = off`,
      `log_min_messages = warning`,
      '',
    ].join('\n'),
  );
  appendFileSync(join(dataDir, 'pg_hba.conf'), `host shop shop ${subnet(o.host.ip)} scram-sha-256\n`);

  const argv = ['runuser', '-u', 'postgres', '--', join(PG_BIN, 'postgres'), '-D', dataDir];
  const proc = launch('postgres', o.host, o.wrap ? o.wrap(argv) : argv);
  let pid = 0;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      // backends run in their own sessions: remember them to make sure none is left
      const family = pid ? descendants(pid) : [];
      try {
        if (pid) process.kill(pid, 'SIGINT'); // fast shutdown: ends sessions, no waiting for clients
      } catch {
        /* gone */
      }
      await stopProc(proc, 'SIGINT', 10_000);
      for (const p of family) {
        if (commOf(p) !== 'postgres') continue; // exited (and the pid perhaps reused)
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(50);
    })());

  const psql = (db: string, args: string[]) =>
    asPostgres(['psql', '-X', '-q', '-h', sockDir, '-p', String(o.port), '-d', db, '-v', 'ON_ERROR_STOP=1', ...args]);
  try {
    // postmaster.pid: line 1 the pid, line 8 the status ("ready" once it accepts connections)
    const pidFile = join(dataDir, 'postmaster.pid');
    pid = await waitFor(
      'postgresql to accept connections',
      () => {
        if (!existsSync(pidFile)) return undefined;
        const lines = readFileSync(pidFile, 'utf8').split('\n');
        return lines[7]?.trim() === 'ready' ? Number(lines[0]) : undefined;
      },
      30_000,
      proc,
    );
    await psql('postgres', ['-c', `CREATE ROLE shop LOGIN PASSWORD '${o.password}'`, '-c', 'CREATE DATABASE shop OWNER shop']);
    await psql('shop', ['-v', `seed=${o.seed}`, '-v', `products=${o.sizes.products}`, '-v', `users=${o.sizes.users}`, '-v', `orders=${o.sizes.orders}`, '-f', o.seedSql]);
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    proc,
    pid,
    port: o.port,
    dataDir,
    conninfo: `host=${o.host.ip} port=${o.port} dbname=shop user=shop connect_timeout=5`,
    password: o.password,
    query: (sql) => psql('shop', ['-At', '-c', sql]),
    stop,
  };
}
