// tsc copies no non-TS files: put the bpftrace scripts next to the compiled collectors.
import { cpSync, existsSync } from 'node:fs';
const src = 'agent/collectors/bpftrace';
if (existsSync(src)) cpSync(src, 'dist/agent/collectors/bpftrace', { recursive: true });
