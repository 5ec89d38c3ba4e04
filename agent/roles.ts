/**
 * Entities → roles (DESIGN §2). Pure functions: each returns the identity key a role id is
 * hashed from and the readable label. Pids, tids, fds, ephemeral ports, container ids and
 * replica counts never enter a key or a label.
 */
import type { SockAddr } from '../shared/event.js';
import type { EdgeKind } from '../shared/graph.js';

export type RoleKind = 'proc' | 'thread' | 'file' | 'mem' | 'net' | 'ipc';

export interface RoleSpec {
  kind: RoleKind;
  /** full identity: what the 64-bit id is hashed from */
  key: string;
  /** readable: `nginx/worker`, `file:/var/lib/pgw/state-#`, `net:tcp/private:443` */
  label: string;
}

export { roleId } from '../shared/role-id.js';

// ---------------------------------------------------------------- processes and threads

export interface ProcessIdentity {
  /** sha256 of the executable's contents (live); absent when the file is not reachable */
  exeHash?: string;
  /** executable path (execve, /proc/PID/exe) */
  exePath?: string;
  /** main thread's name, the last resort when neither hash nor path is known (LTTng) */
  comm?: string;
  /** container image or service name (never the container id) */
  service?: string;
  /** argv, to tell interpreter scripts apart */
  argv?: string[];
}

const INTERPRETERS =
  /^(python[0-9.]*|pypy[0-9.]*|node|nodejs|deno|bun|java|ruby[0-9.]*|perl[0-9.]*|php[0-9.]*|php-fpm[0-9.]*|bash|sh|dash|zsh|ksh|lua[0-9.]*|Rscript|erl|beam\.smp|dotnet|mono)$/;

export function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

/**
 * For an interpreter, the program it runs: script path, `-m module`, `-jar x.jar`, or a Java
 * main class. Options and their values are skipped; arguments after the program are not
 * part of the identity (they vary per replica: ports, ids).
 */
export function interpretedProgram(exe: string, argv: readonly string[]): string | undefined {
  const name = baseName(exe);
  if (!INTERPRETERS.test(name)) return undefined;
  const isJava = name === 'java';
  // options of these interpreters that take a separate value
  const withValue = new Set(
    isJava ? ['-cp', '-classpath', '--class-path', '-p', '--module-path', '--add-opens', '--add-exports']
      : ['-r', '--require', '--import', '--loader', '-W', '-X', '-I', '--inspect-port', '-O', '--max-old-space-size'],
  );
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (isJava && a === '-jar' && i + 1 < argv.length) return `jar:${normalisePath(argv[i + 1])}`;
    if (isJava && (a === '-m' || a === '--module') && i + 1 < argv.length) return `module:${argv[i + 1]}`;
    if (!isJava && a === '-m' && i + 1 < argv.length) return `module:${argv[i + 1]}`;
    if (!isJava && (a === '-c' || a === '-e' || a === '--eval')) return 'inline';
    if (a.startsWith('-')) {
      if (withValue.has(a)) i++;
      continue;
    }
    return isJava ? `class:${a}` : normalisePath(a);
  }
  return undefined;
}

export function processRole(p: ProcessIdentity): RoleSpec {
  const exeName = p.exePath ? baseName(p.exePath) : (p.comm ?? '?');
  const program = p.exePath && p.argv ? interpretedProgram(p.exePath, p.argv) : undefined;
  // Identity: content hash when we have it (replicas on any host agree); else the path;
  // else the thread name the kernel reports (LTTng replay knows nothing more).
  const what = p.exeHash ? `sha256:${p.exeHash}` : p.exePath ? `path:${p.exePath}` : `comm:${p.comm ?? '?'}`;
  const key = ['proc', p.service ?? '', what, program ?? ''].join('\u0000');
  let label = p.service ? `${p.service}:${exeName}` : exeName;
  if (program) label += `[${program.startsWith('/') ? baseName(program) : program}]`;
  return { kind: 'proc', key, label };
}

/**
 * Thread role: process role + thread name. A thread without a name of its own (its name is
 * still the one inherited from the process) folds into the process's main role.
 */
export function threadRole(proc: RoleSpec, threadName: string | undefined, processComm: string | undefined): RoleSpec {
  if (!threadName || threadName === processComm) return { kind: 'thread', key: `thread\u0000${proc.key}`, label: proc.label };
  const name = normaliseThreadName(threadName);
  return { kind: 'thread', key: `thread\u0000${proc.key}\u0000${name}`, label: `${proc.label}/${name}` };
}

/** Thread pools number their threads (`worker-3`, `ITTI 12`): keep the number, it names a role
 *  in OAI-style code; collapse only what looks like an id (long numbers, hex). */
export function normaliseThreadName(name: string): string {
  return name.replace(/[0-9a-f]{8,}/gi, '#').replace(/[0-9]{5,}/g, '#');
}

export function memRole(proc: RoleSpec): RoleSpec {
  return { kind: 'mem', key: `mem\u0000${proc.key}`, label: `mem:${proc.label}` };
}

// ---------------------------------------------------------------- files

const KEEP_TOKENS = ['x86_64', 'x86-64', 'aarch64', 'i386', 'i686', 'arm64', 'amd64', 'ppc64le', 's390x'];
const KEEP_RE = new RegExp(KEEP_TOKENS.join('|'), 'g');
const TEMP_DIRS = /^\/(tmp|var\/tmp|dev\/shm|run\/user\/[0-9]+)\//;

/**
 * Normalised file path: runs of digits → `#`, hashes/uuids → `#`, random temp-file names → `*`.
 * `globs` (configured) win: a path matching one is named by the glob itself.
 */
export function normalisePath(path: string, globs: readonly CompiledGlob[] = []): string {
  for (const g of globs) if (g.re.test(path)) return g.glob;
  let p = path.endsWith(' (deleted)') ? path.slice(0, -10) : path;
  // uuids and long hex (hashes, container ids) before plain numbers
  p = p.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '#');
  p = p.replace(/(?<![A-Za-z])[0-9a-f]{12,}(?![A-Za-z])/gi, '#');
  if (TEMP_DIRS.test(p)) {
    // mkstemp/mkdtemp names: the 6-character suffix after a separator ("dag-Xa9kQz"), or any
    // 6+ character token mixing cases, or letters and digits ("tmpa8Xk2Q")
    p = p.replace(/(?<=([/._-]))[A-Za-z0-9#]{6,}(?=$|[/._-])/g, (tok: string, sep: string) =>
      (sep !== '/' && tok.length === 6) || Number(/[a-z]/.test(tok)) + Number(/[A-Z]/.test(tok)) + Number(/[0-9#]/.test(tok)) >= 2 ? '*' : tok,
    );
  }
  // numbers that vary (pids, rotations, sequence numbers) → `#`; short numbers that are part
  // of a word (lib64, python3, ipv6) and architecture names (x86_64) name the thing and stay
  p = p.replace(KEEP_RE, (t) => `\u0001${String.fromCharCode(65 + KEEP_TOKENS.indexOf(t))}\u0002`);
  p = p.replace(/[0-9]+/g, (d: string, off: number, all: string) => (off > 0 && /[A-Za-z]/.test(all[off - 1]) && d.length <= 4 ? d : '#'));
  p = p.replace(/\u0001([A-Z])\u0002/g, (_m, c: string) => KEEP_TOKENS[c.charCodeAt(0) - 65]);
  return p;
}

export function fileRole(path: string, globs: readonly CompiledGlob[] = []): RoleSpec {
  const p = normalisePath(path, globs);
  return { kind: 'file', key: `file\u0000${p}`, label: `file:${p}` };
}

export interface CompiledGlob {
  glob: string;
  re: RegExp;
}

/** `*` within a path segment, `**` across segments, `?` one character. */
export function compileGlob(glob: string): CompiledGlob {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return { glob, re: new RegExp(`^${re}$`) };
}

// ---------------------------------------------------------------- network

export type AddressClass = 'loopback' | 'private' | 'link-local' | 'multicast' | 'any' | 'public' | 'unknown';

export function addressClass(ip: string): AddressClass {
  if (!ip) return 'unknown';
  let a = ip.toLowerCase();
  if (a.startsWith('::ffff:') && a.includes('.')) a = a.slice(7);
  if (a.includes('.')) {
    const o = a.split('.').map(Number);
    if (o.length !== 4 || o.some((x) => !(x >= 0 && x <= 255))) return 'unknown';
    if (o[0] === 127) return 'loopback';
    if (o[0] === 0) return 'any';
    if (o[0] === 10 || (o[0] === 172 && o[1] >= 16 && o[1] <= 31) || (o[0] === 192 && o[1] === 168)) return 'private';
    if (o[0] === 100 && o[1] >= 64 && o[1] <= 127) return 'private'; // carrier-grade NAT, overlay networks
    if (o[0] === 169 && o[1] === 254) return 'link-local';
    if (o[0] >= 224 && o[0] <= 239) return 'multicast';
    return 'public';
  }
  if (a === '::1') return 'loopback';
  if (a === '::') return 'any';
  if (/^f[cd]/.test(a)) return 'private';
  if (/^fe[89ab]/.test(a)) return 'link-local';
  if (a.startsWith('ff')) return 'multicast';
  return 'public';
}

/** Which end of a connection this socket is, as far as the agent knows. */
export type SocketSide = 'client' | 'server' | 'unknown';

export interface PortRange {
  lo: number;
  hi: number;
}

/** Linux default net.ipv4.ip_local_port_range; the agent reads the real one when live. */
export const DEFAULT_EPHEMERAL: PortRange = { lo: 32768, hi: 60999 };

export function isEphemeral(port: number, range: PortRange = DEFAULT_EPHEMERAL): boolean {
  return port >= range.lo && port <= range.hi;
}

/**
 * The side a socket is on: known from how the fd came to be (accept → server, connect →
 * client), else guessed from which port is ephemeral.
 */
export function socketSide(origin: SocketSide, local: SockAddr | undefined, remote: SockAddr | undefined, range: PortRange = DEFAULT_EPHEMERAL): SocketSide {
  if (origin !== 'unknown') return origin;
  const lp = local?.port ?? 0;
  const rp = remote?.port ?? 0;
  const lEph = lp === 0 || isEphemeral(lp, range);
  const rEph = rp === 0 || isEphemeral(rp, range);
  if (lEph && !rEph) return 'client';
  if (rEph && !lEph) return 'server';
  if (!lEph && !rEph) return lp < rp ? 'server' : 'client';
  return 'unknown';
}

/**
 * The network endpoint seen from this thread, before the aggregator resolves it to a peer's
 * thread role: the service port and the peer's address class, never an ephemeral port.
 *   client:  `net:tcp/private:5432`      (the service we talk to)
 *   server:  `net:tcp/private:*→:8080`   (the clients of our port 8080)
 */
export function netRole(proto: 'tcp' | 'udp', side: SocketSide, local: SockAddr | undefined, remote: SockAddr | undefined): RoleSpec {
  const cls = addressClass(remote?.ip ?? '');
  let what: string;
  if (side === 'client') what = `${cls}:${remote && remote.port ? remote.port : '?'}`;
  else if (side === 'server') what = `${cls}:*→:${local && local.port ? local.port : '?'}`;
  else what = `${cls}:ephemeral`;
  const label = `net:${proto}/${what}`;
  return { kind: 'net', key: label, label };
}

export type IpcKind = 'pipe' | 'unix' | 'eventfd' | 'stdio' | 'anon' | 'netlink' | 'socket';

/** An IPC endpoint whose peer is not (yet) known on this host. */
export function ipcRole(kind: IpcKind, detail?: string, globs: readonly CompiledGlob[] = []): RoleSpec {
  const d = !detail ? '' : kind === 'unix' ? `:${normalisePath(detail, globs)}` : kind === 'stdio' || kind === 'anon' ? `:${detail}` : '';
  const label = `ipc:${kind}${d}`;
  return { kind: 'ipc', key: label, label };
}

/** Edge kind from the non-thread end of an edge. */
export function edgeKindOf(other: RoleKind): EdgeKind {
  switch (other) {
    case 'file':
      return 'file';
    case 'mem':
      return 'mem';
    case 'net':
      return 'net';
    default:
      return 'ipc';
  }
}
