/** Readiness checks shared by the aggregator (its store) and the agent (its spool). */
import { accessSync, constants, existsSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Check } from './http.js';

/**
 * The file (when it exists) and its directory are writable, and the file system has at least
 * `minFreeBytes` available. (Root passes permission checks whatever the mode; free space and
 * failing commits are what catch a full disk.)
 */
export function writableFileCheck(name: string, file: string, minFreeBytes: number): Check {
  const dir = dirname(file);
  try {
    if (existsSync(file)) accessSync(file, constants.W_OK);
    accessSync(dir, constants.W_OK);
  } catch (e) {
    return { name, ok: false, reason: `${file} is not writable: ${(e as Error).message}` };
  }
  try {
    const s = statfsSync(dir);
    const free = Number(s.bavail) * Number(s.bsize);
    if (free < minFreeBytes) return { name, ok: false, reason: `only ${free} bytes free on the file system of ${file} (needs ${minFreeBytes})` };
  } catch (e) {
    return { name, ok: false, reason: `cannot stat the file system of ${file}: ${(e as Error).message}` };
  }
  return { name, ok: true };
}
