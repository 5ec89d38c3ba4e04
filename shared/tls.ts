/** Mutual TLS between agents and aggregator, from PEM files (made with openssl or `certs`). */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';

export interface TlsFiles {
  /** this side's certificate chain (PEM) */
  cert: string;
  key: string;
  /** the CA that signs the other side's certificates */
  ca: string;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${(e as Error).message}`);
  }
}

/** The aggregator asks every agent for a certificate signed by the CA. */
export function serverCredentials(t: TlsFiles): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(read(t.ca, 'CA'), [{ cert_chain: read(t.cert, 'certificate'), private_key: read(t.key, 'key') }], true);
}

export function clientCredentials(t: TlsFiles): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(read(t.ca, 'CA'), read(t.key, 'key'), read(t.cert, 'certificate'));
}
