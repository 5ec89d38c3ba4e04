/**
 * Real hosts on one machine for tests: network namespaces joined by veth links to a bridge
 * in the root namespace (which plays the network). Made and removed by the test itself.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface NsHost {
  name: string;
  ns: string;
  ip: string;
  /** the veth end in the root namespace: take it down to cut the host off */
  link: string;
}

export interface NsNet {
  hosts: NsHost[];
  bridge: string;
  bridgeIp: string;
  cleanup(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'the ip command (iproute2) is missing';
  }
  return undefined;
}

export function makeHosts(names: string[]): NsNet {
  // a /24 of 10.200-254.x.0 picked per process so parallel test files do not collide
  const n = 1 + (process.pid % 250);
  const tag = (process.pid % 100000).toString(36);
  const bridge = `dagbr${tag}`;
  const bridgeIp = `10.213.${n}.1`;
  const hosts: NsHost[] = [];
  const cleanup = (): void => {
    for (const h of hosts) {
      try {
        ip('netns', 'del', h.ns);
      } catch {
        /* already gone */
      }
    }
    try {
      ip('link', 'del', bridge);
    } catch {
      /* already gone */
    }
  };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${bridgeIp}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    names.forEach((name, i) => {
      const h: NsHost = { name, ns: `dag-${tag}-${name}`, ip: `10.213.${n}.${11 + i}`, link: `v${tag}${i}` };
      hosts.push(h);
      ip('netns', 'add', h.ns);
      ip('link', 'add', h.link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns);
      ip('link', 'set', h.link, 'master', bridge);
      ip('link', 'set', h.link, 'up');
      ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0');
      ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
      ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    });
  } catch (e) {
    cleanup();
    throw e;
  }
  return { hosts, bridge, bridgeIp, cleanup };
}

/** Run a program inside a host's namespace. */
export function spawnIn(h: NsHost, cmd: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', h.ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

export function setLink(h: NsHost, up: boolean): void {
  ip('link', 'set', h.link, up ? 'up' : 'down');
}
