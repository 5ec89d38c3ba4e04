/**
 * Alert outputs from the aggregator's configuration (`alerts:` in aggregator.yaml):
 *
 *   alerts:
 *     jsonl: /var/log/distappguard/alerts.jsonl
 *     syslog: [ { url: tls://siem.example:6514, ca: /etc/distappguard/siem-ca.pem, facility: local0, appName: distappguard } ]
 *     webhook: [ { url: https://soar.example/hooks/distappguard, secretFile: /etc/distappguard/webhook.secret, timeout: 5s, retries: 5 } ]
 *
 * Hand the result to `new DetectionService({ …, outputs })`; the fan-out (outputs.ts) is made
 * there, on the store's connection.
 */
import type { Logger } from '../../shared/log.js';
import { JsonlAlertOutput } from './jsonl.js';
import type { AlertOutput } from './outputs.js';
import { SyslogAlertOutput, type SyslogOutputOptions } from './syslog.js';
import { WebhookAlertOutput, type WebhookOutputOptions } from './webhook.js';

export { alertJson, JsonlAlertOutput } from './jsonl.js';
export { AlertOutputs, DeliveryError, type AlertEvent, type AlertOutput, type AlertOutputsOptions, type OutputCounters } from './outputs.js';
export { SyslogAlertOutput, formatSyslog, octetFrame, type SyslogOutputOptions } from './syslog.js';
export { WebhookAlertOutput, signature, verifySignature, type WebhookOutputOptions } from './webhook.js';

export interface AlertsConfig {
  /** JSON Lines file */
  jsonl?: string;
  syslog?: readonly Omit<SyslogOutputOptions, 'timeoutMs'>[];
  webhook?: readonly WebhookOutputOptions[];
}

/**
 * The outputs `alerts` asks for. Throws an Error naming the key (`alerts.webhook[0].secretFile:
 * cannot read …`) for a destination that cannot work: a bad URL or facility, an unreadable
 * secret or CA file. Logs one line per output.
 */
export function alertOutputsFromConfig(alerts: AlertsConfig | undefined, o: { log: Logger }): AlertOutput[] {
  const out: AlertOutput[] = [];
  if (!alerts) return out;
  const at = <T>(key: string, make: () => T): T => {
    try {
      return make();
    } catch (e) {
      throw new Error(`${key}: ${(e as Error).message}`);
    }
  };
  if (alerts.jsonl) out.push(at('alerts.jsonl', () => new JsonlAlertOutput(alerts.jsonl!)));
  (alerts.syslog ?? []).forEach((s, i) => out.push(at(`alerts.syslog[${i}]`, () => new SyslogAlertOutput(s))));
  (alerts.webhook ?? []).forEach((w, i) => out.push(at(`alerts.webhook[${i}]`, () => new WebhookAlertOutput(w))));
  const names = new Set<string>();
  for (const x of out) {
    if (names.has(x.name)) throw new Error(`alerts: ${x.name} is configured twice`);
    names.add(x.name);
  }
  for (const x of out) o.log.info({ output: x.name }, 'alert output configured');
  return out;
}
