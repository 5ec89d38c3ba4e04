/**
 * The ground-truth workload that ships with the project (workload/*.c): two programs with
 * named threads that move known numbers of bytes. Compiled on first use with the machine's
 * C compiler into a cache folder named by the sources' hash, so a change rebuilds it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../shared/project-root.js';

export interface Workload {
  client: string;
  server: string;
}

const SOURCES = ['common.h', 'dag-client.c', 'dag-server.c'];

export function buildWorkload(cacheDir = process.env.DISTAPPGUARD_CACHE ?? join(tmpdir(), 'distappguard-cache')): Workload {
  const src = join(projectRoot(), 'workload');
  const h = createHash('sha256');
  for (const f of SOURCES) h.update(readFileSync(join(src, f)));
  const dir = join(cacheDir, `workload-${h.digest('hex').slice(0, 12)}`);
  const out = { client: join(dir, 'dag-client'), server: join(dir, 'dag-server') };
  if (existsSync(out.client) && existsSync(out.server)) return out;
  mkdirSync(dir, { recursive: true });
  const cc = process.env.CC ?? 'cc';
  for (const prog of ['dag-client', 'dag-server']) {
    const tmp = join(dir, `${prog}.tmp${process.pid}`);
    try {
      execFileSync(cc, ['-O2', '-Wall', '-pthread', '-o', tmp, join(src, `${prog}.c`)], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      const err = e as { code?: string; stderr?: Buffer };
      if (err.code === 'ENOENT') throw new Error(`no C compiler found ('${cc}'): install gcc (Debian: apt-get install gcc) or set CC`);
      throw new Error(`compiling workload/${prog}.c failed:\n${err.stderr?.toString() ?? String(e)}`);
    }
    renameSync(tmp, join(dir, prog)); // atomic: a parallel build never sees half a binary
  }
  return out;
}
