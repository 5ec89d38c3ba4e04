/**
 * Migration 3: alert delivery cursors. Every alert is in the `alerts` table before any output
 * sees it; an output (syslog, webhook, JSON Lines) keeps here how far it got, so after a
 * restart, or once a receiver that was down is back, it sends what it has not delivered yet.
 */
export const DELIVERIES_SQL = /* sql */ `
-- One row per configured alert output, named by kind and destination ('webhook:https://siem/hook',
-- 'syslog:tls://siem:6514', 'jsonl:/var/log/distappguard/alerts.jsonl'). Alert ids only grow
-- (alerts are never deleted), so one number says what is done: every alert with
-- id <= delivered_through was delivered or given up (refused by the receiver, or over the
-- output's backlog bound: both logged and counted).
CREATE TABLE alert_deliveries (
  output            TEXT PRIMARY KEY,
  delivered_through INTEGER NOT NULL,   -- alerts.id
  updated_at        INTEGER NOT NULL
) STRICT;

-- "is this alert the first of its incident" for alerts sent from the backlog; also the
-- console's alerts of one incident
CREATE INDEX alerts_incident ON alerts (incident_id, id);
`;
