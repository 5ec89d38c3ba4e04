import { describe, expect, it } from 'vitest';
import { FlowRegistry, correlate } from '../../aggregator/correlate.js';
import { roleId } from '../../shared/role-id.js';
import type { Edge, Flow, PartialWindow } from '../../shared/graph.js';

const r = (label: string) => ({ id: roleId(label), label });
const edge = (src: string, dst: string, kind: Edge['kind'], bytes: number, count = 1): Edge => ({
  srcId: r(src).id, dstId: r(dst).id, src, dst, kind, bytes, count,
});
const flow = (proto: 'tcp' | 'udp', local: string, remote: string, role: string, endpoint: string, out: number, inn: number, side: Flow['side'] = 'unknown'): Flow => {
  const [lip, lp] = local.split(/:(?=\d+$)/);
  const [rip, rp] = remote.split(/:(?=\d+$)/);
  return {
    proto, local: { ip: lip, port: Number(lp) }, remote: { ip: rip, port: Number(rp) }, side,
    roleId: r(role).id, role, endpointId: r(endpoint).id, endpoint,
    bytesOut: out, bytesIn: inn, countOut: out ? 1 : 0, countIn: inn ? 1 : 0,
  };
};
const partial = (host: string, edges: Edge[], flows: Flow[]): PartialWindow => ({
  app: 'shop', host, windowStart: 5000, windowMs: 5000, edges, flows,
  stats: { events: 0, unknownFdCalls: 0, unknownFdBytes: 0, lateEvents: 0 },
});
const view = (es: Edge[]) => es.map((e) => `${e.src} -> ${e.dst} ${e.kind} ${e.bytes}`);

describe('cross-host correlation', () => {
  it('turns the two ends of a TCP connection into one edge each way between thread roles', () => {
    const web = partial('web', [
      edge('api/http', 'net:tcp/private:5432', 'net', 300),
      edge('net:tcp/private:5432', 'api/http', 'net', 7000),
      edge('api/http', 'file:/var/log/api.log', 'file', 50),
    ], [flow('tcp', '10.0.0.2:41000', '10.0.0.3:5432', 'api/http', 'net:tcp/private:5432', 300, 7000, 'client')]);
    const db = partial('db', [
      edge('net:tcp/private:*→:5432', 'postgres', 'net', 300),
      edge('postgres', 'net:tcp/private:*→:5432', 'net', 7000),
    ], [flow('tcp', '10.0.0.3:5432', '10.0.0.2:41000', 'postgres', 'net:tcp/private:*→:5432', 7000, 300, 'server')]);
    const m = correlate('shop', 5000, 5000, [web, db]);
    expect(view(m.edges)).toEqual([
      'api/http -> file:/var/log/api.log file 50',
      'api/http -> postgres net 300',
      'postgres -> api/http net 7000',
    ]);
    expect(m).toMatchObject({ hosts: ['db', 'web'], matchedFlows: 2, unmatchedFlows: 0 });
    expect(m.edges[1].dstId).toBe(roleId('postgres'));
  });

  it('pairs a UDP server bound to the wildcard address with its clients on other hosts', () => {
    const enb = partial('enb', [edge('enb/gtpu', 'net:udp/private:2152', 'net', 900)], [
      flow('udp', '0.0.0.0:40001', '10.0.0.5:2152', 'enb/gtpu', 'net:udp/private:2152', 900, 0),
      flow('tcp', '10.0.0.4:40100', '10.0.0.9:36412', 'enb/s1ap', 'net:tcp/private:36412', 10, 0), // gives enb's address
    ]);
    const sgw = partial('sgw', [edge('net:udp/private:*→:2152', 'sgw/gtpu', 'net', 900)], [
      flow('udp', '0.0.0.0:2152', '10.0.0.4:40001', 'sgw/gtpu', 'net:udp/private:*→:2152', 0, 900),
    ]);
    const m = correlate('epc', 0, 1000, [enb, sgw]);
    expect(view(m.edges)).toContain('enb/gtpu -> sgw/gtpu net 900');
    expect(view(m.edges).some((l) => l.includes('2152') && l.includes('ext:'))).toBe(false);
  });

  it('leaves what nobody else reported on an external role without ephemeral ports', () => {
    const web = partial('web', [edge('nginx', 'net:tcp/public:443', 'net', 120), edge('net:tcp/public:*→:80', 'nginx', 'net', 800)], [
      flow('tcp', '10.0.0.2:45000', '93.184.216.34:443', 'nginx', 'net:tcp/public:443', 120, 0, 'client'),
      flow('tcp', '10.0.0.2:80', '198.51.100.7:51234', 'nginx', 'net:tcp/public:*→:80', 0, 800, 'server'),
    ]);
    const m = correlate('shop', 0, 1000, [web]);
    expect(view(m.edges)).toEqual(['ext:tcp/public:*→:80 -> nginx net 800', 'nginx -> ext:tcp/public:443 net 120']);
    expect(m.edges.every((e) => !/5\d{4}|45000/.test(e.src + e.dst))).toBe(true);
    expect(m.unmatchedFlows).toBe(2);
  });

  it('never joins loopback sockets of different hosts', () => {
    const a = partial('a', [edge('x', 'net:tcp/loopback:6379', 'net', 5)], [flow('tcp', '127.0.0.1:50000', '127.0.0.1:6379', 'x', 'net:tcp/loopback:6379', 5, 0)]);
    const b = partial('b', [edge('net:tcp/loopback:*→:6379', 'redis', 'net', 5)], [flow('tcp', '127.0.0.1:6379', '127.0.0.1:50000', 'redis', 'net:tcp/loopback:*→:6379', 0, 5)]);
    expect(correlate('k', 0, 1000, [a, b]).matchedFlows).toBe(0);
    // on one host they are one connection
    const same = partial('a', [...a.edges, ...b.edges], [...a.flows, ...b.flows]);
    expect(view(correlate('k', 0, 1000, [same]).edges)).toEqual(['x -> redis net 5']);
  });

  it('sums replicas of the same role across hosts', () => {
    const w1 = partial('w1', [edge('worker', 'file:/data/x', 'file', 10)], []);
    const w2 = partial('w2', [edge('worker', 'file:/data/x', 'file', 15)], []);
    expect(view(correlate('k', 0, 1000, [w1, w2]).edges)).toEqual(['worker -> file:/data/x file 25']);
  });

  it('joins a connection whose other end was quiet in this window but reported before', () => {
    const reg = new FlowRegistry();
    const srvFlow = (inn: number) => flow('tcp', '10.0.0.3:5432', '10.0.0.2:41000', 'postgres', 'net:tcp/private:*→:5432', 0, inn, 'server');
    const cliFlow = (out: number) => flow('tcp', '10.0.0.2:41000', '10.0.0.3:5432', 'api/http', 'net:tcp/private:5432', out, 0, 'client');
    // window 1: both ends report the connection
    correlate('shop', 0, 1000, [
      partial('web', [edge('api/http', 'net:tcp/private:5432', 'net', 10)], [cliFlow(10)]),
      partial('db', [edge('net:tcp/private:*→:5432', 'postgres', 'net', 10)], [srvFlow(10)]),
    ], reg);
    // window 2: the client sends, the server reads nothing yet
    const w2 = correlate('shop', 1000, 1000, [partial('web', [edge('api/http', 'net:tcp/private:5432', 'net', 99)], [cliFlow(99)])], reg);
    expect(view(w2.edges)).toEqual(['api/http -> postgres net 99']);
    // window 3: the server reads it; the bytes were counted when sent, and none are left over
    const w3 = correlate('shop', 2000, 1000, [partial('db', [edge('net:tcp/private:*→:5432', 'postgres', 'net', 99)], [srvFlow(99)])], reg);
    expect(view(w3.edges)).toEqual([]);
  });
});
