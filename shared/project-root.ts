import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The installed package's root, from source (vitest, tsx) or from dist/ alike. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'distappguard') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the distappguard package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}
