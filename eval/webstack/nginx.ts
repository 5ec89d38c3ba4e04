/**
 * The front tier: nginx from Debian as a reverse proxy to the application, run in the
 * foreground (daemon off) with a config, pid file, logs and temp folders of its own in the
 * run's folder, so nothing of the system's nginx is read or written.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NsHost } from '../../cli/netns.js';
import { launch, listening, stopProc, waitFor, type Proc } from './proc.js';

export interface NginxOptions {
  host: NsHost;
  dir: string;
  port: number;
  /** "ip:port" of the application tier */
  upstream: string;
  workers?: number;
  wrap?: (argv: string[]) => string[];
}

export interface AccessEntry {
  /** ms since the epoch (nginx's $msec) */
  t: number;
  status: number;
  method: string;
  uri: string;
  requestBytes: number;
  bytesSent: number;
  bodyBytes: number;
}

export interface Nginx {
  proc: Proc;
  /** the master (its workers are its children) */
  pid: number;
  port: number;
  accessLog: string;
  entries(): AccessEntry[];
  stop(): Promise<void>;
}

export function nginxConfig(o: NginxOptions): string {
  const d = o.dir;
  return `# written by eval/webstack/nginx.ts for one run
daemon off;
master_process on;
worker_processes ${o.workers ?? 2};
user www-data;
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events { worker_connections 1024; }
http {
  log_format shop '$msec $status $request_method $uri $request_length $bytes_sent $body_bytes_sent';
  access_log ${d}/access.log shop;
  client_body_temp_path ${d}/tmp/body;
  proxy_temp_path ${d}/tmp/proxy;
  fastcgi_temp_path ${d}/tmp/fastcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi;
  scgi_temp_path ${d}/tmp/scgi;
  keepalive_timeout 30s;
  keepalive_requests 100000;
  upstream app {
    server ${o.upstream};
    keepalive 32;
  }
  server {
    listen ${o.host.ip}:${o.port};
    listen 127.0.0.1:${o.port};
    server_name shop;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_buffers 16 16k;
    }
  }
}
`;
}

export function parseAccessLog(text: string): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 7) continue;
    out.push({
      t: Math.round(Number(f[0]) * 1000),
      status: Number(f[1]),
      method: f[2],
      uri: f[3],
      requestBytes: Number(f[4]),
      bytesSent: Number(f[5]),
      bodyBytes: Number(f[6]),
    });
  }
  return out;
}

export async function startNginx(o: NginxOptions): Promise<Nginx> {
  mkdirSync(join(o.dir, 'tmp'), { recursive: true });
  const conf = join(o.dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(o));
  // -e: the error log before the config is read (else /var/log/nginx/error.log)
  const argv = ['nginx', '-c', conf, '-p', o.dir + '/', '-e', join(o.dir, 'error.log')];
  const proc = launch('nginx', o.host, o.wrap ? o.wrap(argv) : argv);
  await waitFor(`nginx on port ${o.port}`, () => listening(o.host, o.port), 15_000, proc).catch(async (e) => {
    await stopProc(proc, 'SIGKILL', 2000);
    throw e;
  });
  const accessLog = join(o.dir, 'access.log');
  return {
    proc,
    pid: proc.pid,
    port: o.port,
    accessLog,
    entries: () => (existsSync(accessLog) ? parseAccessLog(readFileSync(accessLog, 'utf8')) : []),
    stop: () => stopProc(proc, 'SIGQUIT', 5000), // graceful: workers finish their requests
  };
}
