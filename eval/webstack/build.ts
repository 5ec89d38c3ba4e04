/**
 * The web-stack testbed's own program (workload/webstack/webstack-app.c), compiled on first use
 * with the machine's C compiler against Debian's libpq and hiredis, into a cache folder named
 * by the source's hash (as cli/workload.ts does for the ground-truth workload; that builder
 * takes no link flags, hence this one).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheDir } from '../../cli/workload.js';
import { projectRoot } from '../../shared/project-root.js';

export interface WebstackFiles {
  /** the application tier */
  app: string;
  /** wrk script for the load and the cache-abuse attack */
  loadLua: string;
  /** psql script that creates and fills the shop database */
  seedSql: string;
}

export function webstackSourceDir(): string {
  return join(projectRoot(), 'workload', 'webstack');
}

function pgIncludeDir(): string {
  try {
    return execFileSync('pg_config', ['--includedir'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return '/usr/include/postgresql'; // Debian's libpq-dev puts libpq-fe.h here
  }
}

export function buildWebstack(cacheDir = defaultCacheDir()): WebstackFiles {
  const src = webstackSourceDir();
  const cfile = join(src, 'webstack-app.c');
  const files = { loadLua: join(src, 'load.lua'), seedSql: join(src, 'seed.sql') };
  const hash = createHash('sha256').update(readFileSync(cfile)).digest('hex').slice(0, 12);
  const dir = join(cacheDir, `webstack-${hash}`);
  const app = join(dir, 'webstack-app');
  if (existsSync(app)) return { app, ...files };
  mkdirSync(dir, { recursive: true });
  const cc = process.env.CC ?? 'cc';
  const tmp = `${app}.tmp${process.pid}`;
  try {
    execFileSync(cc, ['-O2', '-Wall', '-pthread', `-I${pgIncludeDir()}`, '-o', tmp, cfile, '-lpq', '-lhiredis'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer };
    if (err.code === 'ENOENT') throw new Error(`no C compiler found ('${cc}'): install gcc (Debian: apt-get install gcc) or set CC`);
    throw new Error(`compiling ${cfile} failed (needs libpq-dev and libhiredis-dev):\n${err.stderr?.toString() ?? String(e)}`);
  }
  renameSync(tmp, app); // atomic: a parallel build never sees half a binary
  return { app, ...files };
}
