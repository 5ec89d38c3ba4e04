/**
 * Role ids are 64-bit hashes written as 16 hex digits (shared/role-id.ts). SQLite's INTEGER
 * is a signed 64-bit integer, so an id is stored as the two's-complement reading of its bits:
 * 'ffffffffffffffff' ↔ -1, '8000000000000000' ↔ -2^63. 8 bytes instead of a 16-character
 * string on every edge row, and `roles.id` can be the rowid (INTEGER PRIMARY KEY: no second
 * index). JavaScript numbers hold only 53 bits, so the conversion goes through BigInt.
 *
 * Reading back needs no BigInt: SQLite's printf('%016x', id) formats the bits as unsigned
 * hex, which is also how a user sees the ids in the sqlite3 shell (see the `edges_view`).
 */

const HEX16 = /^[0-9a-f]{16}$/;

/**
 * Memo of conversions. Parsing costs ~0.5 µs an id (regex + BigInt), two per edge row — a
 * third of the row's cost in bench/store.ts; a Map hit costs ~0.1 µs. Role ids are few and
 * repeat on every window, so the hit rate is ~100 %. Capped, then started over.
 */
const memo = new Map<string, bigint>();
const MEMO_MAX = 1 << 20;

/** '00000000000000ff' → 255n; ids ≥ 2^63 become negative. Throws on anything but 16 lowercase hex digits. */
export function idToSql(hex: string): bigint {
  let v = memo.get(hex);
  if (v !== undefined) return v;
  // a wrong id stored silently would join to the wrong role forever: refuse it here
  if (!HEX16.test(hex)) throw new TypeError(`role id must be 16 lowercase hex digits, got ${JSON.stringify(hex)}`);
  v = BigInt.asIntN(64, BigInt('0x' + hex));
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(hex, v);
  return v;
}

/** The inverse of idToSql, for values read with safeIntegers (tests; queries use printf). */
export function idFromSql(v: bigint | number): string {
  return BigInt.asUintN(64, BigInt(v)).toString(16).padStart(16, '0');
}

/** SQL expression giving the 16-hex-digit id of an INTEGER column. */
export function hexOf(column: string): string {
  return `printf('%016x', ${column})`;
}
