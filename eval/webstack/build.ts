/**
 * The web-stack testbed's own program (workload/webstack/webstack-app.c), compiled on first use
 * with the machine's C compiler against Debian's libpq and hiredis, into a cache folder named
 * by the source's hash (cli/workload.ts's builder, with libpq's include path and the libraries).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildPrograms, defaultCacheDir } from '../../cli/workload.js';
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
  const built = buildPrograms({
    tag: 'webstack', srcDir: src, sources: ['webstack-app.c'], programs: ['webstack-app'], cacheDir,
    cflags: [`-I${pgIncludeDir()}`], libs: ['-lpq', '-lhiredis'], hint: 'needs libpq-dev and libhiredis-dev',
  });
  return { app: built['webstack-app'], loadLua: join(src, 'load.lua'), seedSql: join(src, 'seed.sql') };
}
