/**
 * Container attribution from /proc/PID/cgroup (v1 and v2). Pure: text in, id out.
 * The id is used to look up a service name; it never becomes part of a role itself.
 */

// docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope,
// /docker/<id>, /kubepods/.../<id>, /lxc.payload.<name>
const ID_PATTERNS = [
  /(?:docker|cri-containerd|crio|libpod|containerd)-([0-9a-f]{64})\.scope/,
  /\/(?:docker|libpod|crio|containerd|actions_job)\/([0-9a-f]{64})(?:\/|$)/,
  /\/kubepods[^\s]*\/(?:pod[^/]+\/)?([0-9a-f]{64})(?:\/|$)/,
  /\/([0-9a-f]{64})(?:\/|$)/,
];
const LXC = /\/lxc(?:\.payload)?[./]([^/\s]+)/;

export function containerIdFromCgroup(text: string): string | undefined {
  for (const line of text.split('\n')) {
    // v1: "4:memory:/docker/<id>"; v2: "0::/system.slice/docker-<id>.scope"
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    if (!path) continue;
    for (const re of ID_PATTERNS) {
      const m = re.exec(path);
      if (m) return m[1];
    }
    const l = LXC.exec(path);
    if (l) return `lxc:${l[1]}`;
  }
  return undefined;
}

/** The cgroup path of a process (v2 unified line, else the first v1 line with a path). */
export function cgroupPathFromCgroup(text: string): string | undefined {
  let v1: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('0::')) return line.slice(3);
    const parts = line.split(':');
    if (parts.length >= 3 && parts[2] && parts[2] !== '/' && !v1) v1 = parts.slice(2).join(':');
  }
  return v1;
}
