import { describe, expect, it } from 'vitest';
import {
  addressClass,
  compileGlob,
  fileRole,
  interpretedProgram,
  netRole,
  normalisePath,
  processRole,
  roleId,
  socketSide,
  threadRole,
} from '../../agent/roles.js';

describe('role ids', () => {
  it('are 64-bit hex, stable, and differ by key', () => {
    expect(roleId('a')).toMatch(/^[0-9a-f]{16}$/);
    expect(roleId('a')).toBe(roleId('a'));
    expect(roleId('a')).not.toBe(roleId('b'));
    // a fixed value: a change of the hash function would silently re-key every stored model
    expect(roleId('proc')).toBe('38b5e99819552be8');
  });
});

describe('process and thread roles', () => {
  const hashA = 'a'.repeat(64);
  it('identify a process by the executable hash, labelled by its name', () => {
    const r = processRole({ exeHash: hashA, exePath: '/usr/sbin/nginx', comm: 'nginx' });
    expect(r.label).toBe('nginx');
    expect(r.key).toContain(hashA);
    expect(r.key).not.toContain('/usr/sbin'); // the path does not matter when the hash is known
    // same binary under another path (another host, another container): same role
    expect(processRole({ exeHash: hashA, exePath: '/opt/nginx/sbin/nginx' }).key).toBe(r.key);
    // different binary, same name: different role
    expect(processRole({ exeHash: 'b'.repeat(64), exePath: '/usr/sbin/nginx' }).key).not.toBe(r.key);
  });

  it('add the service name and, for interpreters, the script', () => {
    const py = (script: string, ...rest: string[]) =>
      processRole({ exeHash: hashA, exePath: '/usr/bin/python3.11', argv: ['python3', '-u', script, ...rest] });
    expect(py('/srv/app/api.py', '--port', '8001').label).toBe('python3.11[api.py]');
    expect(py('/srv/app/api.py', '--port', '8001').key).toBe(py('/srv/app/api.py', '--port', '8002').key);
    expect(py('/srv/app/api.py').key).not.toBe(py('/srv/app/worker.py').key);
    expect(processRole({ exeHash: hashA, exePath: '/usr/bin/redis', service: 'cache' }).label).toBe('cache:redis');
  });

  it('read interpreter command lines', () => {
    expect(interpretedProgram('/usr/bin/python3', ['python3', '-m', 'http.server', '8000'])).toBe('module:http.server');
    expect(interpretedProgram('/usr/bin/node', ['node', '--max-old-space-size', '512', 'dist/main.js'])).toBe('dist/main.js');
    expect(interpretedProgram('/usr/bin/java', ['java', '-cp', 'a.jar', 'com.example.Main'])).toBe('class:com.example.Main');
    expect(interpretedProgram('/usr/bin/java', ['java', '-Xmx1g', '-jar', '/opt/app-1.2.jar'])).toBe('jar:/opt/app-#.#.jar');
    expect(interpretedProgram('/usr/sbin/nginx', ['nginx', '-g', 'daemon off;'])).toBeUndefined();
  });

  it('name threads after the process, folding unnamed threads into the main role', () => {
    const p = processRole({ exeHash: hashA, exePath: '/usr/bin/mme' });
    expect(threadRole(p, 'ITTI 3', 'mme').label).toBe('mme/ITTI 3');
    expect(threadRole(p, 'mme', 'mme')).toEqual(threadRole(p, undefined, 'mme'));
    expect(threadRole(p, 'mme', 'mme').label).toBe('mme');
    expect(threadRole(p, 'worker-123456', 'mme').label).toBe('mme/worker-#');
  });
});

describe('file roles', () => {
  it('collapse numbers, hashes and temp names', () => {
    expect(normalisePath('/var/lib/pgw/state-17')).toBe('/var/lib/pgw/state-#');
    expect(normalisePath('/proc/4242/task/4243/comm')).toBe('/proc/#/task/#/comm');
    expect(normalisePath('/var/lib/docker/containers/0123456789abcdef0123/log')).toBe('/var/lib/docker/containers/#/log');
    expect(normalisePath('/tmp/tmpa8Xk2Q/data.db')).toBe('/tmp/*/data.db');
    expect(normalisePath('/tmp/session.aZbYcX')).toBe('/tmp/session.*');
    expect(normalisePath('/tmp/dag-abcdef/out.dat')).toBe('/tmp/dag-*/out.dat');
    expect(normalisePath('/tmp/dag-a1b2Z3/out.dat')).toBe('/tmp/dag-*/out.dat');
    expect(normalisePath('/tmp/systemd-private/x')).toBe('/tmp/systemd-private/x');
    expect(normalisePath('/etc/nginx/nginx.conf')).toBe('/etc/nginx/nginx.conf');
    expect(normalisePath('/data/deleted-file (deleted)')).toBe('/data/deleted-file');
    expect(fileRole('/var/log/app.1.log').label).toBe('file:/var/log/app.#.log');
  });

  it('honour configured globs first', () => {
    const g = [compileGlob('/var/log/nginx/*.log'), compileGlob('/srv/**/cache/*')];
    expect(normalisePath('/var/log/nginx/access.log', g)).toBe('/var/log/nginx/*.log');
    expect(normalisePath('/srv/a/b/cache/x1', g)).toBe('/srv/**/cache/*');
    expect(normalisePath('/var/log/nginx/sub/access.log', g)).toBe('/var/log/nginx/sub/access.log');
  });
});

describe('network roles', () => {
  it('classify addresses', () => {
    expect(addressClass('127.0.0.1')).toBe('loopback');
    expect(addressClass('10.1.2.3')).toBe('private');
    expect(addressClass('172.21.0.6')).toBe('private');
    expect(addressClass('172.32.0.1')).toBe('public');
    expect(addressClass('192.168.192.2')).toBe('private');
    expect(addressClass('8.8.8.8')).toBe('public');
    expect(addressClass('::1')).toBe('loopback');
    expect(addressClass('::ffff:10.0.0.1')).toBe('private');
    expect(addressClass('fe80::1')).toBe('link-local');
    expect(addressClass('0.0.0.0')).toBe('any');
    expect(addressClass('')).toBe('unknown');
  });

  it('never carry an ephemeral port', () => {
    const client = netRole('tcp', 'client', { ip: '10.0.0.2', port: 45678 }, { ip: '10.0.0.3', port: 5432 });
    expect(client.label).toBe('net:tcp/private:5432');
    const server = netRole('tcp', 'server', { ip: '10.0.0.3', port: 5432 }, { ip: '10.0.0.2', port: 45678 });
    expect(server.label).toBe('net:tcp/private:*→:5432');
    expect(server.label).not.toContain('45678');
    expect(netRole('udp', 'unknown', { ip: '127.0.0.1', port: 40000 }, { ip: '127.0.0.1', port: 50000 }).label).toBe('net:udp/loopback:ephemeral');
  });

  it('tell the side from the fd origin, else from the ports', () => {
    const a = { ip: '127.0.0.1', port: 17001 };
    const b = { ip: '127.0.0.1', port: 45000 };
    expect(socketSide('server', b, a)).toBe('server');
    expect(socketSide('unknown', b, a)).toBe('client');
    expect(socketSide('unknown', a, b)).toBe('server');
    expect(socketSide('unknown', { ip: '', port: 0 }, a)).toBe('client');
  });
});

describe('file roles keep numbers that name things', () => {
  it('keeps architecture names and short numbers inside words', () => {
    expect(normalisePath('/usr/lib/x86_64-linux-gnu/libc.so.6')).toBe('/usr/lib/x86_64-linux-gnu/libc.so.#');
    expect(normalisePath('/usr/lib/python3/dist-packages/a.py')).toBe('/usr/lib/python3/dist-packages/a.py');
    expect(normalisePath('/var/lib/app/session12345678')).toBe('/var/lib/app/session#');
  });
});
