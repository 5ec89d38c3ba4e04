import { createHash } from 'node:crypto';

/** 64-bit stable id: first 8 bytes of sha256(key), as 16 hex digits (JSON-safe, sortable). */
export function roleId(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
