/**
 * The cache tier: redis-server from Debian with a generated config (no persistence, LRU
 * eviction, listening on the host's address and loopback of its namespace). The same starter
 * makes the rogue replica of the attack, with `replicaof` and loopback only.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NsHost } from '../../cli/netns.js';
import { launch, listening, runIn, stopProc, waitFor, type Proc } from './proc.js';

export interface RedisOptions {
  host: NsHost;
  dir: string;
  port: number;
  /** bind the host's address too (the cache tier); the rogue replica keeps to loopback */
  public: boolean;
  maxmemoryMb?: number;
  /** "ip:port" of a master to replicate */
  replicaOf?: string;
  wrap?: (argv: string[]) => string[];
}

export interface Redis {
  proc: Proc;
  pid: number;
  port: number;
  /** INFO of one section as key → value, asked with redis-cli inside the host over loopback */
  info(section: string): Record<string, string>;
  cli(args: string[]): string;
  stop(): Promise<void>;
}

export function redisConfig(o: RedisOptions): string {
  return [
    `bind ${o.public ? `${o.host.ip} ` : ''}127.0.0.1`,
    `port ${o.port}`,
    'protected-mode no',
    'daemonize no',
    `pidfile ${join(o.dir, 'redis.pid')}`,
    `dir ${o.dir}`,
    'logfile ""',
    'loglevel notice',
    // a cache: nothing to persist
    'save ""',
    'appendonly no',
    `maxmemory ${o.maxmemoryMb ?? 32}mb`,
    'maxmemory-policy allkeys-lru',
    // full syncs start at once (the default waits 5 s for more replicas to join)
    'repl-diskless-sync-delay 0',
    ...(o.replicaOf ? [`replicaof ${o.replicaOf.replace(':', ' ')}`, 'replica-read-only yes'] : []),
    '',
  ].join('\n');
}

export async function startRedis(o: RedisOptions): Promise<Redis> {
  mkdirSync(o.dir, { recursive: true });
  const conf = join(o.dir, 'redis.conf');
  writeFileSync(conf, redisConfig(o));
  const argv = ['redis-server', conf];
  const proc = launch(o.replicaOf ? 'redis-replica' : 'redis', o.host, o.wrap ? o.wrap(argv) : argv);
  await waitFor(`redis on port ${o.port}`, () => listening(o.host, o.port), 15_000, proc).catch(async (e) => {
    await stopProc(proc, 'SIGKILL', 2000);
    throw e;
  });
  const cli = (args: string[]) => runIn(o.host, ['redis-cli', '-h', '127.0.0.1', '-p', String(o.port), ...args]);
  return {
    proc,
    pid: proc.pid, // ip netns exec execs redis-server in place
    port: o.port,
    cli,
    info: (section) => parseInfo(cli(['INFO', section])),
    stop: () => stopProc(proc, 'SIGTERM', 5000),
  };
}

export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}
