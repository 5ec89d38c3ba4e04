/**
 * Where facts about processes come from besides the events themselves: /proc when live,
 * the local file system when replaying a trace recorded on this host, nothing otherwise.
 * Effects live here; the state module calls it once per process or thread, never per event.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { dirname, posix } from 'node:path';
import { containerIdFromCgroup } from './container.js';

export interface ProcessFacts {
  exePath?: string;
  exeHash?: string;
  argv?: string[];
  /** the main thread's name */
  comm?: string;
  containerId?: string;
}

export interface Attribution {
  /** facts about a live process; undefined when it is gone or unknown */
  process(pid: number): ProcessFacts | undefined;
  threadName(pid: number, tid: number): string | undefined;
  /** the process a thread belongs to */
  tgid(tid: number): number | undefined;
  /** sha256 of an executable named by an execve path (pid given so containers resolve) */
  hashExe(path: string, pid: number): string | undefined;
  /**
   * The path a process opened, made absolute and free of symlinks where we can see its file
   * system, so every collector names a file the same way (strace -y prints resolved paths;
   * open() arguments may be relative or go through /lib → /usr/lib).
   */
  resolvePath(pid: number, path: string): string;
}

/** Replay of a foreign trace: the events are all we know. */
export const noAttribution: Attribution = {
  process: () => undefined,
  threadName: () => undefined,
  tgid: () => undefined,
  hashExe: () => undefined,
  resolvePath: (_pid, path) => path,
};

/** Hashes executables, cached by device+inode+mtime+size so a rebuilt binary is hashed anew. */
export class ExeHasher {
  private readonly cache = new Map<string, string>();
  hits = 0;
  misses = 0;

  hash(path: string): string | undefined {
    let st;
    try {
      st = statSync(path);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const k = `${st.dev}:${st.ino}:${st.mtimeMs}:${st.size}`;
    const hit = this.cache.get(k);
    if (hit) {
      this.hits++;
      return hit;
    }
    this.misses++;
    const h = createHash('sha256');
    let fd: number | undefined;
    try {
      fd = openSync(path, 'r');
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n <= 0) break;
        h.update(buf.subarray(0, n));
      }
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    const digest = h.digest('hex');
    this.cache.set(k, digest);
    return digest;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Live attribution from /proc. */
export class ProcAttribution implements Attribution {
  constructor(
    private readonly hasher = new ExeHasher(),
    private readonly procRoot = '/proc',
  ) {}

  process(pid: number): ProcessFacts | undefined {
    const base = `${this.procRoot}/${pid}`;
    const comm = readText(`${base}/comm`)?.trimEnd();
    if (comm === undefined) return undefined;
    let exePath: string | undefined;
    try {
      exePath = readlinkSync(`${base}/exe`).replace(/ \(deleted\)$/, '');
    } catch {
      exePath = undefined; // kernel thread, or no permission
    }
    const cmdline = readText(`${base}/cmdline`);
    const argv = cmdline ? cmdline.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1) : undefined;
    // /proc/PID/exe opens the very file that runs, also inside another mount namespace
    const exeHash = exePath ? this.hasher.hash(`${base}/exe`) : undefined;
    const cg = readText(`${base}/cgroup`);
    return { exePath, exeHash, argv, comm, containerId: cg ? containerIdFromCgroup(cg) : undefined };
  }

  threadName(pid: number, tid: number): string | undefined {
    return readText(`${this.procRoot}/${pid}/task/${tid}/comm`)?.trimEnd();
  }

  tgid(tid: number): number | undefined {
    const st = readText(`${this.procRoot}/${tid}/status`);
    const m = st ? /^Tgid:\s*(\d+)/m.exec(st) : null;
    return m ? Number(m[1]) : undefined;
  }

  hashExe(path: string, pid: number): string | undefined {
    // inside a container the path is relative to the process's root
    return this.hasher.hash(`${this.procRoot}/${pid}/root${path}`) ?? this.hasher.hash(path);
  }

  private readonly resolved = new Map<string, string>();
  private ownMntNs: string | undefined;

  resolvePath(pid: number, path: string): string {
    let abs = path;
    if (!path.startsWith('/')) {
      let cwd: string;
      try {
        cwd = readlinkSync(`${this.procRoot}/${pid}/cwd`);
      } catch {
        return path; // the process is gone: keep what it said
      }
      abs = posix.resolve(cwd, path);
    } else abs = posix.normalize(path);
    // symlinks are only ours to follow when the process sees our file system
    if (!this.sameMountNs(pid)) return abs;
    const hit = this.resolved.get(abs);
    if (hit !== undefined) return hit;
    let real: string;
    try {
      real = realpathSync(abs);
    } catch {
      try {
        real = posix.join(realpathSync(dirname(abs)), posix.basename(abs)); // file already deleted
      } catch {
        real = abs;
      }
    }
    if (this.resolved.size > 50_000) this.resolved.clear();
    this.resolved.set(abs, real);
    return real;
  }

  private sameMountNs(pid: number): boolean {
    try {
      this.ownMntNs ??= readlinkSync(`${this.procRoot}/self/ns/mnt`);
      return readlinkSync(`${this.procRoot}/${pid}/ns/mnt`) === this.ownMntNs;
    } catch {
      return false;
    }
  }
}

/** Replay of a trace recorded on this host: executables named by execve can still be hashed. */
export class LocalFilesAttribution implements Attribution {
  constructor(private readonly hasher = new ExeHasher()) {}
  process(): ProcessFacts | undefined {
    return undefined;
  }
  threadName(): string | undefined {
    return undefined;
  }
  tgid(): number | undefined {
    return undefined;
  }
  hashExe(path: string): string | undefined {
    return this.hasher.hash(path);
  }
  resolvePath(_pid: number, path: string): string {
    return path; // strace logs carry resolved paths in their fd annotations
  }
}
