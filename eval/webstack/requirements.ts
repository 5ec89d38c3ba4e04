/**
 * What the web-stack testbed needs from the machine (Debian 12 packages, root, namespaces),
 * so a test can say why it is skipped instead of failing halfway through a start.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { netnsUnavailable } from '../../cli/netns.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

const FILES: [string, string][] = [
  ['/usr/sbin/nginx', 'nginx'],
  ['/usr/bin/redis-server', 'redis-server'],
  ['/usr/bin/redis-cli', 'redis-tools'],
  [`${PG_BIN}/postgres`, 'postgresql (15)'],
  [`${PG_BIN}/initdb`, 'postgresql (15)'],
  ['/usr/bin/psql', 'postgresql-client'],
  ['/usr/bin/wrk', 'wrk'],
  ['/usr/include/postgresql/libpq-fe.h', 'libpq-dev'],
  ['/usr/include/hiredis/hiredis.h', 'libhiredis-dev'],
  ['/usr/sbin/runuser', 'util-linux (runuser)'],
];

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the testbed cannot run here (undefined when it can). */
export function webstackUnavailable(): string | undefined {
  const ns = netnsUnavailable();
  if (ns) return ns;
  const missing = [...new Set(FILES.filter(([f]) => !existsSync(f)).map(([, pkg]) => pkg))];
  if (!onPath(process.env.CC ?? 'cc')) missing.push('gcc');
  if (!onPath('ss')) missing.push('iproute2 (ss)');
  if (missing.length) return `missing Debian packages: ${missing.join(', ')} (scripts/setup.sh installs them)`;
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
  } catch {
    return "no 'postgres' user (created by the postgresql package)";
  }
  return undefined;
}
