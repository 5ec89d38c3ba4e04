// tsc copies no non-TS files: put the bpftrace scripts next to the compiled collectors,
// and the web console's page (HTML, CSS, JS) next to its compiled handler.
import { cpSync, existsSync } from 'node:fs';
const src = 'agent/collectors/bpftrace';
if (existsSync(src)) cpSync(src, 'dist/agent/collectors/bpftrace', { recursive: true });
if (existsSync('aggregator/console/static')) cpSync('aggregator/console/static', 'dist/aggregator/console/static', { recursive: true });
