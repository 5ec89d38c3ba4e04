/**
 * Model signatures: the aggregator signs a model's sha256 with its Ed25519 key; agents verify
 * with the public key they trust. Node's crypto, no hand-written cryptography.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface SigningKey {
  privateKey: KeyObject;
  /** SPKI PEM, what agents pin */
  publicPem: string;
}

/** Loads the aggregator's model key, creating it (mode 0600) on first use. */
export function loadOrCreateSigningKey(file: string): SigningKey {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(file));
  } catch (e) {
    throw new Error(`model signing key ${file}: not a PEM private key (${(e as Error).message})`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`model signing key ${file}: an ${privateKey.asymmetricKeyType} key; an Ed25519 key is needed`);
  return { privateKey, publicPem: createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString() };
}

export function signDigest(key: SigningKey, sha256Hex: string): string {
  return sign(null, Buffer.from(sha256Hex, 'hex'), key.privateKey).toString('base64');
}

/** True when `signature` is the signer's over the digest. Never throws on malformed input. */
export function verifyDigest(publicPem: string, sha256Hex: string, signature: string): boolean {
  try {
    const key = createPublicKey(publicPem);
    if (key.asymmetricKeyType !== 'ed25519') return false;
    return verify(null, Buffer.from(sha256Hex, 'hex'), key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/** The same key whatever the PEM's line breaks: compare keys by their DER bytes. */
export function sameKey(a: string, b: string): boolean {
  try {
    const der = (p: string) => createPublicKey(p).export({ type: 'spki', format: 'der' });
    return der(a).equals(der(b));
  } catch {
    return false;
  }
}
