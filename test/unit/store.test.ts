/**
 * The aggregator's SQLite store on real files in a temp dir: schema and migrations, files it
 * must refuse, partial batches (resends, atomicity, late), merged windows, 64-bit ids, queries.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, Store, StoreError, idFromSql, idToSql, type PartialIn } from '../../aggregator/store/index.js';
import { migrate } from '../../aggregator/store/migrate.js';
import type { Edge, Flow, MergedWindow } from '../../shared/graph.js';

const dir = mkdtempSync(join(tmpdir(), 'dag-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(dir, `s${n++}.db`);

function raw(file: string): Database.Database {
  return new Database(file);
}

function partial(agentId: string, seq: number, over: Partial<PartialIn> = {}): PartialIn {
  return {
    agentId,
    seq,
    app: 'shop',
    host: `h-${agentId}`,
    windowStart: 1_000,
    windowMs: 1_000,
    body: new Uint8Array([seq & 255, 1, 2, 3]),
    roles: [{ id: '00000000000000aa', label: 'api/worker', kind: 'thread' }],
    ...over,
  };
}

function edge(srcId: string, dstId: string, bytes: number, kind: Edge['kind'] = 'net'): Edge {
  return { srcId, dstId, src: `role-${srcId}`, dst: `role-${dstId}`, kind, bytes, count: 1 };
}

function merged(edges: Edge[], over: Partial<MergedWindow> = {}): MergedWindow & { latePartials: number } {
  return { app: 'shop', windowStart: 1_000, windowMs: 1_000, hosts: ['a', 'b'], edges, matchedFlows: 2, unmatchedFlows: 1, latePartials: 0, ...over };
}

function expectStoreError(f: () => unknown, file: string, pattern: RegExp): StoreError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(StoreError);
  const se = err as StoreError;
  expect(se.message).toContain(file);
  expect(se.message).toMatch(pattern);
  return se;
}

describe('store schema and migrations', () => {
  it('creates the schema in a new file: WAL, FULL sync, version and application id', () => {
    const f = fresh();
    const s = Store.open(f);
    s.close();
    const db = raw(f);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma('application_id', { simple: true })).toBe(APPLICATION_ID);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const tables = (db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    expect(tables).toEqual(['accepted_edges', 'agents', 'alert_deliveries', 'alerts', 'edges', 'flows', 'incidents', 'models', 'partials', 'roles', 'scores', 'windows']);
    // edges: WITHOUT ROWID and no index besides its primary key
    expect((db.prepare(`SELECT count(*) AS n FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'edges' AND sql IS NOT NULL`).get() as { n: number }).n).toBe(0);
    expect(db.prepare(`SELECT sql FROM sqlite_schema WHERE name = 'edges'`).pluck().get()).toMatch(/WITHOUT ROWID/);
    db.close();
  });

  it('uses synchronous=FULL by default and NORMAL on request', () => {
    const f = fresh();
    for (const [durability, level] of [[undefined, 2], ['normal', 1]] as const) {
      const s = Store.open(f, { durability });
      expect((s as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true })).toBe(level);
      s.close();
    }
  });

  it('re-opens a store with its data and does not migrate again', () => {
    const f = fresh();
    const s = Store.open(f);
    s.upsertAgent({ agentId: 'a1', host: 'h1', app: 'shop', agentVersion: '0.1.0', windowMs: 1000 });
    s.commitPartials([partial('a1', 7)]);
    s.close();
    const db = raw(f);
    const schema = db.prepare('SELECT group_concat(sql) FROM sqlite_schema').pluck().get();
    db.close();
    const again = Store.open(f);
    expect(again.agentLastSeq('a1')).toBe(7);
    expect(again.partialsOf('shop', 1_000)).toHaveLength(1);
    again.close();
    const db2 = raw(f);
    expect(db2.prepare('SELECT group_concat(sql) FROM sqlite_schema').pluck().get()).toBe(schema);
    db2.close();
  });

  it('applies newer migrations in order to an older file, in one transaction', () => {
    const f = fresh();
    Store.open(f).close();
    const next = [...MIGRATIONS, { version: SCHEMA_VERSION + 1, name: 'agent notes', sql: 'ALTER TABLE agents ADD COLUMN note TEXT' }];
    const db = raw(f);
    expect(migrate(db, f, next)).toEqual([SCHEMA_VERSION + 1]);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
    expect(migrate(db, f, next)).toEqual([]);
    db.close();
  });

  it('upgrades a version-1 file (the first release) to the detection tables, keeping its data', () => {
    const f = fresh();
    const db = raw(f);
    db.pragma('journal_mode = WAL');
    migrate(db, f, MIGRATIONS.slice(0, 1));
    db.prepare(`INSERT INTO windows (app, window_start, window_ms, status) VALUES ('a', 1000, 1000, 'closed')`).run();
    db.close();
    const s = Store.open(f);
    expect(s.listWindows()).toHaveLength(1);
    s.connection.prepare(`SELECT count(*) FROM models`).pluck().get();
    s.close();
    const after = raw(f);
    expect(after.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    after.close();
  });

  it('leaves the file untouched when a migration fails', () => {
    const f = fresh();
    Store.open(f).close();
    const next = [
      ...MIGRATIONS,
      { version: SCHEMA_VERSION + 1, name: 'fine', sql: 'CREATE TABLE extra (x INTEGER)' },
      { version: SCHEMA_VERSION + 2, name: 'broken', sql: 'ALTER TABLE nowhere ADD COLUMN y' },
    ];
    const db = raw(f);
    expectStoreError(() => migrate(db, f, next), f, new RegExp(`migration .* \\(broken\\) failed.*left at version ${SCHEMA_VERSION}`));
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.prepare(`SELECT count(*) FROM sqlite_schema WHERE name = 'extra'`).pluck().get()).toBe(0);
    db.close();
  });

  it('refuses a file written by a newer version, and leaves it unchanged', () => {
    const f = fresh();
    Store.open(f).close();
    const db = raw(f);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const before = readFileSync(f);
    expectStoreError(() => Store.open(f), f, new RegExp(`newer DistAppGuard \\(store schema version ${SCHEMA_VERSION + 1}; this version knows up to ${SCHEMA_VERSION}\\)`));
    expectStoreError(() => Store.open(f, { readonly: true }), f, /newer DistAppGuard/);
    expect(readFileSync(f).equals(before)).toBe(true);
  });

  it('refuses a file that is not SQLite, naming it, without crashing', () => {
    const f = fresh();
    writeFileSync(f, 'this is a text file, not a database\n'.repeat(200));
    const before = readFileSync(f);
    expectStoreError(() => Store.open(f), f, /not an SQLite database, or corrupt/);
    expect(readFileSync(f).equals(before)).toBe(true);
  });

  it('refuses a store whose schema page is damaged', () => {
    const f = fresh();
    const s = Store.open(f);
    s.close();
    const b = readFileSync(f);
    // keep the 100-byte header (valid magic), scribble over the rest of page 1: sqlite_schema
    for (let i = 100; i < 4096; i++) b[i] = (i * 7) & 255;
    writeFileSync(f, b);
    rmSync(`${f}-wal`, { force: true });
    expectStoreError(() => Store.open(f), f, /not an SQLite database, or corrupt|malformed/);
  });

  it('refuses an SQLite database that belongs to something else', () => {
    const f = fresh();
    const db = raw(f);
    db.exec('CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)');
    db.close();
    expectStoreError(() => Store.open(f), f, /not a DistAppGuard store/);
    const db2 = raw(f);
    expect(db2.prepare(`SELECT count(*) FROM sqlite_schema WHERE name = 'agents'`).pluck().get()).toBe(0);
    db2.close();
  });

  it('read-only: the file must exist, queries work, writes are refused', () => {
    const missing = join(dir, 'missing.db');
    expectStoreError(() => Store.open(missing, { readonly: true }), missing, /no such file/);
    expectStoreError(() => Store.open(dir), dir, /is a directory/);
    const noDir = join(dir, 'no-such-dir', 'x.db');
    expectStoreError(() => Store.open(noDir), noDir, /directory does not exist/);
    const f = fresh();
    const w = Store.open(f);
    w.saveMergedWindow(merged([edge('0000000000000001', '0000000000000002', 10)]), 'closed');
    // the writer stays open (WAL): a reader sees what it committed
    const r = Store.open(f, { readonly: true });
    expect(r.listWindows()).toHaveLength(1);
    expect(() => r.upsertAgent({ agentId: 'x', host: 'h', app: 'a', agentVersion: '', windowMs: 1 })).toThrow(/readonly/);
    r.close();
    w.close();
    // and after the writer closed cleanly (no -wal/-shm files left)
    const r2 = Store.open(f, { readonly: true });
    expect(r2.windowGraph('shop', 1_000)!.edges).toHaveLength(1);
    r2.close();
  });
});

describe('store: partial batches', () => {
  it('commits a batch, recognises resends as duplicates, and tracks each agent\'s last seq', () => {
    const s = Store.open(fresh());
    s.upsertAgent({ agentId: 'a1', host: 'h1', app: 'shop', agentVersion: '0.1.0', windowMs: 1000 });
    expect(s.agentLastSeq('a1')).toBe(-1);
    expect(s.commitPartials([partial('a1', 0), partial('a1', 1), partial('a2', 5)])).toEqual({ committed: 3, duplicates: 0, late: 0 });
    // a resend after a reconnect: the same two plus a new one
    expect(s.commitPartials([partial('a1', 1), partial('a1', 2), partial('a2', 5)])).toEqual({ committed: 1, duplicates: 2, late: 0 });
    // the same (agent, seq) twice in one batch
    expect(s.commitPartials([partial('a1', 3), partial('a1', 3)])).toEqual({ committed: 1, duplicates: 1, late: 0 });
    expect(s.agentLastSeq('a1')).toBe(3);
    expect(s.agentLastSeq('a2')).toBe(5); // no hello: a row is made from the partial
    expect(s.agentLastSeq('nobody')).toBe(-1);
    expect(s.partialsOf('shop', 1_000).map((p) => [p.agentId, p.seq])).toEqual([['a1', 0], ['a1', 1], ['a1', 2], ['a1', 3], ['a2', 5]]);
    s.close();
  });

  it('writes the hellos given with a batch in its transaction, before its partials', () => {
    const f = fresh();
    const s = Store.open(f);
    const hello = { agentId: 'a1', host: 'h1', app: 'shop', agentVersion: '0.2.0', windowMs: 1000 };
    // hellos alone are a commit too (agents that have not sent a window yet)
    expect(s.commitPartials([], [{ ...hello, agentId: 'a0' }])).toEqual({ committed: 0, duplicates: 0, late: 0 });
    expect(s.commitPartials([partial('a1', 4)], [hello])).toEqual({ committed: 1, duplicates: 0, late: 0 });
    expect(s.agentLastSeq('a1')).toBe(4);
    expect(s.agentLastSeq('a0')).toBe(-1);
    const r = raw(f);
    expect(r.prepare('SELECT agent_id, host, agent_version, last_seq FROM agents ORDER BY agent_id').all()).toEqual([
      { agent_id: 'a0', host: 'h1', agent_version: '0.2.0', last_seq: null },
      { agent_id: 'a1', host: 'h1', agent_version: '0.2.0', last_seq: 4 }, // the hello's version, not the '' of a row made from a partial
    ]);
    r.close();
    s.close();
  });

  it('keeps the body bytes exactly as received', () => {
    const s = Store.open(fresh());
    const body = new Uint8Array(8192);
    for (let i = 0; i < body.length; i++) body[i] = (i * 131) & 255;
    // a view into a larger buffer, as a protobuf decoder hands it over
    const big = new Uint8Array(body.length + 10);
    big.set(body, 5);
    s.commitPartials([partial('a', 1, { body: big.subarray(5, 5 + body.length) })]);
    const [p] = s.partialsOf('shop', 1_000);
    expect(Buffer.from(p.body).equals(Buffer.from(body))).toBe(true);
    s.close();
  });

  it('is all or nothing: a refused item leaves no partial, seq or role behind', () => {
    const f = fresh();
    const s = Store.open(f);
    const newRole = { id: '00000000000000bb', label: 'db/main', kind: 'thread' };
    const bad = partial('a1', 2, { windowStart: 1_000.5 });
    expect(() => s.commitPartials([partial('a1', 1, { roles: [newRole] }), bad])).toThrow(/REAL value in INTEGER column/);
    expect(s.agentLastSeq('a1')).toBe(-1);
    expect(s.partialsOf('shop', 1_000)).toEqual([]);
    expect(s.apps()).toEqual([]);
    // the role of the rolled-back batch must still be inserted by the next one (no stale cache)
    s.commitPartials([partial('a1', 1, { roles: [newRole] })]);
    s.saveMergedWindow(merged([edge('00000000000000bb', '00000000000000aa', 5)]), 'closed');
    const g = s.windowGraph('shop', 1_000)!;
    expect(g.edges[0].src).toBe('db/main');
    s.close();
  });

  it('stores roles once, and marks partials for a closed window late', () => {
    const f = fresh();
    const s = Store.open(f);
    s.commitPartials([partial('a1', 1), partial('a2', 1)]);
    expect(s.listWindows()[0]).toMatchObject({ status: 'open', edges: 0 });
    expect(s.openWindows()).toEqual([{ app: 'shop', windowStart: 1_000, windowMs: 1_000, agents: ['a1', 'a2'] }]);
    s.saveMergedWindow(merged([]), 'closed');
    expect(s.openWindows()).toEqual([]);
    expect(s.commitPartials([partial('a3', 1), partial('a4', 1, { windowStart: 2_000, late: true })])).toEqual({ committed: 2, duplicates: 0, late: 2 });
    expect(s.partialsOf('shop', 1_000).map((p) => [p.agentId, p.late])).toEqual([['a1', false], ['a2', false], ['a3', true]]);
    s.close();
    const db = raw(f);
    expect(db.prepare('SELECT count(*) FROM roles').pluck().get()).toBe(1);
    db.close();
  });
});

describe('store: merged windows', () => {
  it('a second merge of a window replaces its edges, counts and flows', () => {
    const t = { v: 5_000 };
    const s = Store.open(fresh(), { now: () => t.v });
    const A = '0000000000000001';
    const B = '0000000000000002';
    const C = '0000000000000003';
    const flow = (port: number): Flow => ({
      proto: 'tcp', local: { ip: '10.0.0.1', port }, remote: { ip: '10.0.0.2', port: 80 }, side: 'client',
      roleId: A, role: 'role-A', endpointId: C, endpoint: 'net:tcp/private:80', bytesOut: 1, bytesIn: 2, countOut: 1, countIn: 1,
    });
    s.saveMergedWindow(merged([edge(A, B, 100), edge(B, A, 50), edge(A, C, 7, 'file')]), 'closed', [
      { host: 'a', flows: [flow(40000), flow(40001)], matched: [true, false] },
    ]);
    expect(s.listWindows()[0]).toMatchObject({ edges: 3, bytes: 157, closedAt: 5_000, mergedAt: 5_000, latePartials: 0 });
    expect(s.flowsOf('shop', 1_000)).toEqual([{ host: 'a', flows: 2, matched: 1, unmatched: [flow(40001)] }]);

    t.v = 9_000;
    s.saveMergedWindow(merged([edge(A, B, 130), edge(C, B, 1)], { hosts: ['a', 'b', 'c'], matchedFlows: 4, unmatchedFlows: 0, latePartials: 1 }), 'closed', [
      { host: 'a', flows: [flow(40000)], matched: [true] },
      { host: 'c', flows: [flow(40002)], matched: [true] },
    ]);
    const g = s.windowGraph('shop', 1_000)!;
    expect(g.edges.map((e) => [e.src, e.dst, e.kind, e.bytes])).toEqual([
      ['role-0000000000000001', 'role-0000000000000002', 'net', 130],
      ['role-0000000000000003', 'role-0000000000000002', 'net', 1],
    ]);
    expect(g).toMatchObject({ hosts: ['a', 'b', 'c'], matchedFlows: 4, unmatchedFlows: 0 });
    // closed_at is when it first closed; merged_at moves with each merge
    expect(s.listWindows()[0]).toMatchObject({ edges: 2, bytes: 131, closedAt: 5_000, mergedAt: 9_000, latePartials: 1 });
    expect(s.flowsOf('shop', 1_000).map((r) => [r.host, r.flows, r.matched])).toEqual([['a', 1, 1], ['c', 1, 1]]);
    s.close();
  });

  it('refuses a merged window with the same edge twice, keeping the previous one', () => {
    const s = Store.open(fresh());
    const A = '0000000000000001';
    const B = '0000000000000002';
    s.saveMergedWindow(merged([edge(A, B, 1)]), 'closed');
    expect(() => s.saveMergedWindow(merged([edge(A, B, 2), edge(A, B, 3)]), 'closed')).toThrow(/UNIQUE/);
    expect(s.windowGraph('shop', 1_000)!.edges.map((e) => e.bytes)).toEqual([1]);
    s.close();
  });

  it('64-bit role ids, above 2^63 too, come back exactly', () => {
    const f = fresh();
    const s = Store.open(f);
    const ids = ['ffffffffffffffff', '8000000000000000', '7fffffffffffffff', '0000000000000000', '0000000000000001', 'deadbeefcafebabe'];
    const edges = ids.map((id, i) => ({ ...edge(id, ids[(i + 1) % ids.length], i + 1), src: `r:${id}`, dst: `r:${ids[(i + 1) % ids.length]}` }));
    s.commitPartials([partial('a', 1, { roles: ids.map((id) => ({ id, label: `r:${id}`, kind: 'thread' })) })]);
    s.saveMergedWindow(merged(edges), 'closed');
    const g = s.windowGraph('shop', 1_000)!;
    expect(g.edges.map((e) => [e.srcId, e.dstId, e.src, e.dst])).toEqual(
      [...edges].sort((x, y) => (x.src < y.src ? -1 : 1)).map((e) => [e.srcId, e.dstId, e.src, e.dst]),
    );
    s.close();
    // in the file: signed integers, and the hex view a user sees in the sqlite3 shell
    const db = raw(f);
    expect(db.prepare(`SELECT id FROM roles WHERE label = 'r:ffffffffffffffff'`).pluck().get()).toBe(-1);
    const stored = db.prepare('SELECT src FROM edges ORDER BY src').pluck().safeIntegers(true).all() as bigint[];
    expect(stored.map(idFromSql).sort()).toEqual([...ids].sort());
    expect(db.prepare(`SELECT src_id FROM edges_view WHERE src = 'r:8000000000000000'`).pluck().get()).toBe('8000000000000000');
    db.close();
    expect(idToSql('ffffffffffffffff')).toBe(-1n);
    expect(idToSql('8000000000000000')).toBe(-(2n ** 63n));
    expect(() => idToSql('fff')).toThrow(/16 lowercase hex/);
    expect(() => idToSql('zzzzzzzzzzzzzzzz')).toThrow(/16 lowercase hex/);
  });

  it('labels roles that only the correlator made (external roles) from the edges', () => {
    const s = Store.open(fresh());
    s.saveMergedWindow(merged([{ srcId: '00000000000000aa', src: 'api/worker', dstId: '00000000000000ee', dst: 'ext:tcp/public:443', kind: 'net', bytes: 9, count: 1 }]), 'closed');
    expect(s.windowGraph('shop', 1_000)!.edges[0]).toMatchObject({ src: 'api/worker', dst: 'ext:tcp/public:443', dstId: '00000000000000ee' });
    s.close();
  });

  it('lists windows newest first, by app and time range, and the apps', () => {
    const s = Store.open(fresh());
    for (const app of ['shop', 'epc']) {
      for (let w = 0; w < 5; w++) {
        const edges = Array.from({ length: w + 1 }, (_, i) => edge(i.toString(16).padStart(16, '0'), 'ffffffffffffffff', 10));
        s.saveMergedWindow(merged(edges, { app, windowStart: w * 1000 }), w < 4 ? 'closed' : 'open');
      }
    }
    expect(s.apps()).toEqual(['epc', 'shop']);
    expect(s.listWindows().map((r) => [r.app, r.windowStart])).toEqual(
      [4000, 3000, 2000, 1000, 0].flatMap((t) => [['epc', t], ['shop', t]]),
    );
    expect(s.listWindows({ app: 'shop', from: 1000, to: 3000 }).map((r) => [r.windowStart, r.edges, r.bytes, r.status])).toEqual([
      [2000, 3, 30, 'closed'],
      [1000, 2, 20, 'closed'],
    ]);
    expect(s.listWindows({ app: 'shop', limit: 1 })[0]).toMatchObject({ windowStart: 4000, status: 'open', closedAt: null });
    expect(s.windowGraph('shop', 999)).toBeUndefined();
    s.close();
  });
});
