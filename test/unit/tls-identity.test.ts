/** Which host a client certificate speaks for (shared/tls.ts), from the fields Node gives. */
import { describe, expect, it } from 'vitest';
import { CERT_HOST_ID, certificateHostId, parseSubjectAltName } from '../../shared/tls.js';

describe('client certificate identity', () => {
  it('reads subjectAltName as Node prints it, quoted values included', () => {
    expect(parseSubjectAltName('DNS:a.example, URI:distappguard:host:h1, IP Address:10.0.0.1')).toEqual([
      { type: 'DNS', value: 'a.example' },
      { type: 'URI', value: 'distappguard:host:h1' },
      { type: 'IP Address', value: '10.0.0.1' },
    ]);
    expect(parseSubjectAltName('URI:"distappguard:host:a,b", DNS:x')).toEqual([
      { type: 'URI', value: 'distappguard:host:a,b' },
      { type: 'DNS', value: 'x' },
    ]);
    expect(parseSubjectAltName(undefined)).toEqual([]);
  });

  it('takes the host from the distappguard URI name before the common name', () => {
    expect(certificateHostId({ subject: { CN: 'other' } as never, subjectaltname: 'URI:distappguard:host:h1' })).toEqual({ ok: true, host: 'h1', from: 'uri' });
    expect(certificateHostId({ subject: { CN: 'h2' } as never, subjectaltname: 'DNS:h2.example' })).toEqual({ ok: true, host: 'h2', from: 'cn' });
    expect(certificateHostId({ subject: { CN: 'h2' } as never, subjectaltname: undefined as never })).toEqual({ ok: true, host: 'h2', from: 'cn' });
  });

  it('names no host for an ambiguous certificate', () => {
    const two = certificateHostId({ subject: { CN: 'h1' } as never, subjectaltname: 'URI:distappguard:host:h1, URI:distappguard:host:h2' });
    expect(two).toMatchObject({ ok: false, reason: expect.stringMatching(/names 2 hosts/) });
    expect(certificateHostId({ subject: { CN: ['a', 'b'] } as never, subjectaltname: '' })).toMatchObject({ ok: false, reason: expect.stringMatching(/2 common names/) });
    expect(certificateHostId({ subject: {} as never, subjectaltname: 'DNS:x' })).toMatchObject({ ok: false, reason: expect.stringMatching(/neither/) });
    expect(certificateHostId({ subject: { CN: 'h1' } as never, subjectaltname: 'URI:distappguard:host:' })).toMatchObject({ ok: false });
  });

  it('accepts for certificates only host ids that need no escaping', () => {
    for (const ok of ['h1', 'web-01.dc1', 'a', 'node_7']) expect(CERT_HOST_ID.test(ok), ok).toBe(true);
    for (const bad of ['', '-x', 'a b', 'a/b', 'a,b', 'é', 'x.', 'a'.repeat(65)]) expect(CERT_HOST_ID.test(bad), bad).toBe(false);
  });
});
