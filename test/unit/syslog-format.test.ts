/**
 * RFC 5424 messages of alerts: header fields, PRI from facility and severity, structured data
 * with its escaping (`"`, `\`, `]`), the summary, cutting to a size without breaking UTF-8 or
 * the structured data, and RFC 6587 octet-counting frames. Each message is parsed back with an
 * RFC 5424 parser written from the grammar here.
 */
import { describe, expect, it } from 'vitest';
import type { AlertEvent } from '../../aggregator/alerts/outputs.js';
import { FACILITIES, SD_ID, facilityCode, formatSyslog, octetFrame, parseSyslogUrl, sdEscape, type SyslogFields } from '../../aggregator/alerts/syslog.js';
import type { AlertRow } from '../../aggregator/store/detection.js';

const T = Date.UTC(2026, 10, 26, 12, 0, 5, 120);

function alert(over: Partial<AlertRow> = {}): AlertRow {
  return {
    id: 17,
    app: 'epc',
    windowStart: T - 5120,
    windowMs: 5000,
    source: 'aggregator',
    modelId: 3,
    score: 3.4123456,
    threshold: 1.02,
    anomalous: true,
    severity: 'high',
    explanation: {
      groups: [{ name: 'mme', error: 0.4, ratio: 7.25 }],
      edges: [{ srcId: '01', dstId: '02', src: 'mme/ITTI 3', dst: 'hss/diameter', kind: 'net', group: 'mme', observedBytes: 6000, expectedBytes: 1500, error: 2.1 }],
      newEdges: [],
    },
    incidentId: 5,
    createdAt: T,
    label: null,
    labelledAt: null,
    ...over,
  };
}
const ev = (a: AlertRow, isNew = true): AlertEvent => ({ alert: a, incident: { id: a.incidentId, isNew } });
const F: SyslogFields = { facility: FACILITIES.local0, hostname: 'aggr01', appName: 'distappguard', procId: '4242', maxBytes: 8192 };

interface Parsed {
  pri: number;
  version: string;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  sd: { id: string; params: [string, string][] }[];
  msg: string;
}

/** RFC 5424 §6: HEADER SP STRUCTURED-DATA [SP MSG], SD-PARAM values with \" \\ \] escapes. */
function parse(buf: Buffer): Parsed {
  const s = buf.toString('utf8');
  const h = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(s);
  if (!h) throw new Error(`bad header: ${s}`);
  for (const [f, max] of [[h[4], 255], [h[5], 48], [h[6], 128], [h[7], 32]] as const) {
    expect(f.length).toBeLessThanOrEqual(max);
    expect(f).toMatch(/^[\x21-\x7e]+$/);
  }
  let i = h[0].length;
  const sd: Parsed['sd'] = [];
  if (s[i] === '-') i++;
  else {
    while (s[i] === '[') {
      i++;
      const id = /^[^ =\]"]{1,32}/.exec(s.slice(i))![0];
      i += id.length;
      const params: [string, string][] = [];
      while (s[i] === ' ') {
        i++;
        const name = /^[^ =\]"]{1,32}/.exec(s.slice(i))![0];
        i += name.length;
        expect(s.slice(i, i + 2)).toBe('="');
        i += 2;
        let v = '';
        for (;;) {
          const c = s[i++];
          if (c === undefined) throw new Error('unterminated PARAM-VALUE');
          if (c === '\\' && ['"', '\\', ']'].includes(s[i])) v += s[i++];
          else if (c === '"') break;
          else {
            // an unescaped ']' or '"' inside a value would end it early
            expect(c).not.toBe(']');
            v += c;
          }
        }
        params.push([name, v]);
      }
      expect(s[i]).toBe(']');
      i++;
      sd.push({ id, params });
    }
  }
  let msg = '';
  if (i < s.length) {
    expect(s[i]).toBe(' ');
    msg = s.slice(i + 1);
  }
  return { pri: Number(h[1]), version: h[2], timestamp: h[3], hostname: h[4], appName: h[5], procId: h[6], msgId: h[7], sd, msg };
}

describe('RFC 5424 alert messages', () => {
  it('has the header, PRI from facility and severity, and the alert as structured data', () => {
    const buf = formatSyslog(ev(alert()), F);
    const p = parse(buf);
    expect(p).toMatchObject({ pri: 16 * 8 + 2, version: '1', timestamp: '2026-11-26T12:00:05.120Z', hostname: 'aggr01', appName: 'distappguard', procId: '4242', msgId: 'INCIDENT' });
    expect(p.sd).toHaveLength(1);
    expect(p.sd[0].id).toBe(SD_ID);
    expect(Object.fromEntries(p.sd[0].params)).toEqual({
      id: '17', incident: '5', app: 'epc', source: 'aggregator', window: '2026-11-26T12:00:00.000Z', windowMs: '5000', severity: 'high',
      score: '3.41235', threshold: '1.02', anomalous: 'true', model: '3', microservice: 'mme', newEdges: '0',
    });
    expect(p.msg).toBe(
      'high alert 17 in epc (new incident 5, aggregator): window 2026-11-26T12:00:00.000Z, score 3.41235 over threshold 1.02; ' +
        'microservice mme (7.25x its usual error); edges mme/ITTI 3 -> hss/diameter (net) 6000 B vs 1500 B expected',
    );
    // the exact bytes, once, so that a change of format is a visible decision
    expect(buf.toString()).toBe(
      '<130>1 2026-11-26T12:00:05.120Z aggr01 distappguard 4242 INCIDENT [distappguard@32473 id="17" incident="5" app="epc" ' +
        'source="aggregator" window="2026-11-26T12:00:00.000Z" windowMs="5000" severity="high" score="3.41235" threshold="1.02" ' +
        'anomalous="true" model="3" microservice="mme" newEdges="0"] ' + p.msg,
    );
  });

  it('maps severities and facilities; later alerts of an incident are ALERT', () => {
    const sev = (s: AlertRow['severity']) => parse(formatSyslog(ev(alert({ severity: s }), false), { ...F, facility: FACILITIES.authpriv }));
    expect(sev('high')).toMatchObject({ pri: 10 * 8 + 2, msgId: 'ALERT' });
    expect(sev('medium').pri).toBe(10 * 8 + 4);
    expect(sev('low').pri).toBe(10 * 8 + 5);
    expect(facilityCode(undefined)).toBe(16);
    expect(facilityCode('LOCAL7')).toBe(23);
    expect(facilityCode(4)).toBe(4);
    expect(facilityCode('13')).toBe(13);
    expect(() => facilityCode('local8')).toThrow(/not a syslog facility/);
    expect(() => facilityCode(24)).toThrow(/not a syslog facility/);
  });

  it('escapes ", \\ and ] in SD-PARAM values and keeps header fields printable', () => {
    expect(sdEscape('a"b\\c]d')).toBe('a\\"b\\\\c\\]d');
    expect(sdEscape('line\nbreak')).toBe('line?break');
    const nasty = 'we"b]\\app';
    const p = parse(formatSyslog(ev(alert({ app: nasty, source: 'agent:h]1', explanation: { ...alert().explanation, groups: [{ name: 'x"]y', error: 1, ratio: 2 }] } })), {
      ...F,
      hostname: 'host with spaces',
      appName: '',
    }));
    const params = Object.fromEntries(p.sd[0].params);
    expect(params.app).toBe(nasty);
    expect(params.source).toBe('agent:h]1');
    expect(params.microservice).toBe('x"]y');
    expect(p.hostname).toBe('host_with_spaces');
    expect(p.appName).toBe('-');
  });

  it('lists never-seen edges and keeps the message on one line', () => {
    const a = alert({
      severity: 'low',
      anomalous: false,
      score: 0.5,
      explanation: {
        groups: [],
        edges: [],
        newEdges: Array.from({ length: 7 }, (_, i) => ({ src: `sgw/s11\n${i}`, dst: 'rogue/main', srcId: '1', dstId: '2', kind: 'net' as const, bytes: 500 + i, count: 1 })),
      },
    });
    const p = parse(formatSyslog(ev(a), F));
    expect(p.msg).toContain('score 0.5 under threshold 1.02');
    expect(p.msg).toContain('never seen: sgw/s11 0 -> rogue/main (net) 500 B, sgw/s11 1');
    expect(p.msg).toContain('and 2 more');
    expect(p.msg).not.toMatch(/[\r\n]/);
    expect(Object.fromEntries(p.sd[0].params).newEdges).toBe('7');
  });

  it('cuts a long message to maxBytes without splitting a UTF-8 character or the structured data', () => {
    const edges = Array.from({ length: 3 }, (_, i) => ({ ...alert().explanation.edges[0], src: `ü→€${'é'.repeat(300)}${i}` }));
    const a = alert({ explanation: { ...alert().explanation, edges } });
    for (const max of [480, 600, 1001, 2048]) {
      const buf = formatSyslog(ev(a), { ...F, maxBytes: max });
      expect(buf.length).toBeLessThanOrEqual(max);
      expect(buf.length).toBeGreaterThan(max - 4);
      expect(Buffer.from(buf.toString('utf8')).equals(buf)).toBe(true); // no broken character
      expect(Object.fromEntries(parse(buf).sd[0].params).id).toBe('17');
    }
    // structured data too big for the size: its last parameters go, the id stays
    const huge = alert({ app: 'a'.repeat(200), source: 'agent:' + 'h'.repeat(190), explanation: { ...alert().explanation, groups: [{ name: 'g'.repeat(300), error: 1, ratio: 1 }] } });
    const buf = formatSyslog(ev(huge), { ...F, maxBytes: 480 });
    expect(buf.length).toBeLessThanOrEqual(480);
    const p = parse(buf);
    expect(p.sd[0].params[0]).toEqual(['id', '17']);
    expect(p.sd[0].params.length).toBeLessThan(13);
  });

  it('frames with octet counting (RFC 6587): the byte length, a space, the message', () => {
    const msg = formatSyslog(ev(alert({ app: 'épc' })), F);
    const frame = octetFrame(msg);
    const sp = frame.indexOf(0x20);
    expect(Number(frame.subarray(0, sp).toString())).toBe(msg.length);
    expect(msg.length).toBeGreaterThan(msg.toString().length); // counted in bytes, not characters
    expect(frame.subarray(sp + 1).equals(msg)).toBe(true);
    // two frames back to back split apart again
    const two = Buffer.concat([frame, octetFrame(Buffer.from('<13>1 - - - - - - hi'))]);
    const out: string[] = [];
    for (let i = 0; i < two.length; ) {
      const s = two.indexOf(0x20, i);
      const n = Number(two.subarray(i, s).toString());
      out.push(two.subarray(s + 1, s + 1 + n).toString());
      i = s + 1 + n;
    }
    expect(out).toEqual([msg.toString(), '<13>1 - - - - - - hi']);
  });

  it('reads udp, tcp and tls URLs with their default ports and refuses the rest', () => {
    expect(parseSyslogUrl('udp://siem')).toEqual({ transport: 'udp', host: 'siem', port: 514 });
    expect(parseSyslogUrl('tcp://10.0.0.5')).toEqual({ transport: 'tcp', host: '10.0.0.5', port: 601 });
    expect(parseSyslogUrl('tls://[::1]:7000')).toEqual({ transport: 'tls', host: '::1', port: 7000 });
    expect(parseSyslogUrl('tls://siem.example')).toMatchObject({ port: 6514 });
    expect(() => parseSyslogUrl('http://siem')).toThrow(/udp, tcp or tls/);
    expect(() => parseSyslogUrl('siem:514')).toThrow(/udp, tcp or tls|not a URL/);
    expect(() => parseSyslogUrl('tcp://siem:601/path')).toThrow(/only the scheme, host and port/);
  });
});
