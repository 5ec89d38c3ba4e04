/**
 * Where each alert output got to (schema-deliveries.ts): its cursor, and the undelivered
 * alerts after it, read back from the `alerts` table in id order. Shares the store's connection.
 */
import type Database from 'better-sqlite3';
import { DetectionStore, type AlertRow } from './detection.js';

export interface StoredAlert {
  alert: AlertRow;
  incident: { id: number; isNew: boolean };
}

export class DeliveryCursors {
  private readonly det: DetectionStore;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {
    this.det = new DetectionStore(db, now);
  }

  /**
   * The output's cursor. An output seen for the first time starts after the newest alert:
   * adding a webhook does not replay the store's whole history to it.
   */
  init(output: string): number {
    return this.db
      .transaction(() => {
        const row = this.db.prepare('SELECT delivered_through AS n FROM alert_deliveries WHERE output = ?').get(output) as { n: number } | undefined;
        if (row) return row.n;
        const n = (this.db.prepare('SELECT coalesce(max(id), 0) AS n FROM alerts').get() as { n: number }).n;
        this.db.prepare('INSERT INTO alert_deliveries (output, delivered_through, updated_at) VALUES (?, ?, ?)').run(output, n, this.now());
        return n;
      })
      .immediate();
  }

  save(output: string, through: number): void {
    this.db
      .prepare(
        `INSERT INTO alert_deliveries (output, delivered_through, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (output) DO UPDATE SET delivered_through = max(delivered_through, excluded.delivered_through), updated_at = excluded.updated_at`,
      )
      .run(output, through, this.now());
  }

  /** Every output's cursor (operators, the console). */
  list(): { output: string; deliveredThrough: number; updatedAt: number }[] {
    return this.db.prepare('SELECT output, delivered_through AS deliveredThrough, updated_at AS updatedAt FROM alert_deliveries ORDER BY output').all() as {
      output: string;
      deliveredThrough: number;
      updatedAt: number;
    }[];
  }

  /** How many alerts are newer than `after`. */
  countAfter(after: number): number {
    return (this.db.prepare('SELECT count(*) AS n FROM alerts WHERE id > ?').get(after) as { n: number }).n;
  }

  /** The id after which exactly `keep` alerts remain (the backlog bound drops the ones up to it). */
  keepNewest(after: number, keep: number): number {
    const r = this.db.prepare('SELECT id FROM alerts WHERE id > ? ORDER BY id DESC LIMIT 1 OFFSET ?').get(after, keep) as { id: number } | undefined;
    return r?.id ?? after;
  }

  /** The next `limit` alerts after `after`, oldest first, each with "first alert of its incident". */
  after(after: number, limit: number): StoredAlert[] {
    const rows = this.db
      .prepare(
        `SELECT a.id, a.incident_id AS incident,
                NOT EXISTS (SELECT 1 FROM alerts b WHERE b.incident_id = a.incident_id AND b.id < a.id) AS first
         FROM alerts a WHERE a.id > ? ORDER BY a.id LIMIT ?`,
      )
      .all(after, limit) as { id: number; incident: number; first: number }[];
    const out: StoredAlert[] = [];
    for (const r of rows) {
      const alert = this.det.alert(r.id);
      if (alert) out.push({ alert, incident: { id: r.incident, isNew: r.first === 1 } });
    }
    return out;
  }
}
