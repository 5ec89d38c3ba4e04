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

export function defaultCacheDir(): string {
  return process.env.DISTAPPGUARD_CACHE ?? join(tmpdir(), 'distappguard-cache');
}

/** C programs built from one source folder: each program is `<name>.c` there, and every
 *  file of `sources` (headers included) goes into the hash that names the cache folder. */
export interface BuildSpec {
  /** the cache folder is `<tag>-<hash>` */
  tag: string;
  srcDir: string;
  sources: string[];
  programs: string[];
  cacheDir?: string;
  /** extra compiler flags before the source (include paths) and after it (libraries) */
  cflags?: string[];
  libs?: string[];
  /** said when compiling fails (what to install) */
  hint?: string;
}

/** Compile (once per source hash) and return each program's path by name. */
export function buildPrograms(spec: BuildSpec): Record<string, string> {
  const h = createHash('sha256');
  for (const f of spec.sources) h.update(readFileSync(join(spec.srcDir, f)));
  const dir = join(spec.cacheDir ?? defaultCacheDir(), `${spec.tag}-${h.digest('hex').slice(0, 12)}`);
  const out = Object.fromEntries(spec.programs.map((p) => [p, join(dir, p)]));
  if (spec.programs.every((p) => existsSync(out[p]))) return out;
  mkdirSync(dir, { recursive: true });
  const cc = process.env.CC ?? 'cc';
  for (const prog of spec.programs) {
    const tmp = join(dir, `${prog}.tmp${process.pid}`);
    try {
      execFileSync(cc, ['-O2', '-Wall', '-pthread', ...(spec.cflags ?? []), '-o', tmp, join(spec.srcDir, `${prog}.c`), ...(spec.libs ?? [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      const err = e as { code?: string; stderr?: Buffer };
      if (err.code === 'ENOENT') throw new Error(`no C compiler found ('${cc}'): install gcc (Debian: apt-get install gcc) or set CC`);
      throw new Error(`compiling ${join(spec.srcDir, prog)}.c failed${spec.hint ? ` (${spec.hint})` : ''}:\n${err.stderr?.toString() ?? String(e)}`);
    }
    renameSync(tmp, join(dir, prog)); // atomic: a parallel build never sees half a binary
  }
  return out;
}

export function buildWorkload(cacheDir = defaultCacheDir()): Workload {
  const p = buildPrograms({ tag: 'workload', srcDir: join(projectRoot(), 'workload'), sources: SOURCES, programs: ['dag-client', 'dag-server'], cacheDir });
  return { client: p['dag-client'], server: p['dag-server'] };
}
