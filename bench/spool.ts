/**
 * Append rate of the spool with each sync level: `npx tsc -p . && node dist/bench/spool.js
 * [count] [bodyBytes] [dir]`. Appends go into a fresh file in a temp directory (or `dir`, to
 * measure another disk); the spool's limits are set so nothing is dropped during the run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Spool, type SyncLevel } from '../agent/spool.js';

export interface AppendRate {
  synchronous: SyncLevel;
  count: number;
  bodyBytes: number;
  seconds: number;
  perSecond: number;
}

export function measureAppendRate(synchronous: SyncLevel, count: number, bodyBytes: number, dir?: string): AppendRate {
  const base = mkdtempSync(join(dir ?? tmpdir(), 'dag-spool-bench-'));
  try {
    const spool = Spool.open(join(base, 'spool.db'), { maxBytes: Infinity, maxAgeMs: Infinity }, { synchronous });
    const body = new Uint8Array(bodyBytes);
    for (let i = 0; i < bodyBytes; i++) body[i] = (i * 131) & 0xff; // not all zeros
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) spool.append(i * 1000, body);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    spool.close();
    return { synchronous, count, bodyBytes, seconds, perSecond: count / seconds };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const count = Number(process.argv[2] ?? 2000);
  const bodyBytes = Number(process.argv[3] ?? 8192);
  for (const sync of ['FULL', 'NORMAL'] as const) {
    const r = measureAppendRate(sync, count, bodyBytes, process.argv[4]);
    console.log(`${sync.padEnd(6)} ${r.count} appends of ${r.bodyBytes} B in ${r.seconds.toFixed(2)} s: ${Math.round(r.perSecond)} appends/s`);
  }
}
