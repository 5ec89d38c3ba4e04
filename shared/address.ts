/**
 * Where the aggregator may listen. Security by default: without TLS only on loopback or a
 * unix socket (neither is reachable from another machine); anything else needs --tls-*.
 */
import { isIP } from 'node:net';

export function isLocalOnly(listen: string): boolean {
  if (listen.startsWith('unix:')) return true;
  const host = listen.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

export function checkListenAddress(listen: string, tls: boolean): void {
  if (!/^unix:.+|^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(listen)) {
    throw new Error(`--listen '${listen}': expected HOST:PORT (e.g. 127.0.0.1:7443) or unix:/path/to.sock`);
  }
  if (!tls && !isLocalOnly(listen)) {
    throw new Error(`--listen '${listen}' is reachable from other machines: give --tls-cert, --tls-key and --tls-ca (agents must present certificates), or listen on 127.0.0.1 or a unix: socket`);
  }
}
