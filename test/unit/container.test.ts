import { describe, expect, it } from 'vitest';
import { cgroupPathFromCgroup, containerIdFromCgroup } from '../../agent/state/container.js';

const ID = '8cb628873fbc4cbd0123456789abcdef0123456789abcdef0123456789abcdef';

describe('container attribution from /proc/PID/cgroup', () => {
  it('reads cgroup v2 runtimes', () => {
    expect(containerIdFromCgroup(`0::/system.slice/docker-${ID}.scope\n`)).toBe(ID);
    expect(containerIdFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-${ID}.scope\n`)).toBe(ID);
    expect(containerIdFromCgroup(`0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope/container\n`)).toBe(ID);
  });
  it('reads cgroup v1', () => {
    expect(containerIdFromCgroup(`12:pids:/docker/${ID}\n11:memory:/docker/${ID}\n`)).toBe(ID);
    expect(containerIdFromCgroup(`4:cpu:/kubepods/besteffort/pod1234/${ID}\n`)).toBe(ID);
  });
  it('finds none for host processes', () => {
    expect(containerIdFromCgroup('0::/user.slice/user-0.slice/session-1.scope\n')).toBeUndefined();
    expect(containerIdFromCgroup('0::/\n')).toBeUndefined();
    expect(cgroupPathFromCgroup('0::/system.slice/nginx.service\n')).toBe('/system.slice/nginx.service');
    expect(cgroupPathFromCgroup('3:memory:/docker/x\n2:cpu:/docker/x\n')).toBe('/docker/x');
  });
});
