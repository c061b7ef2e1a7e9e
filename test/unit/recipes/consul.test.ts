import { describe, expect, it } from 'vitest';
import { agentConfig, consul, kvPairs, renderResolvedDropin, servers } from '../../../recipes/consul.js';
import { platformFrom, problemsOf } from '../helpers.js';

const SHA = 'a'.repeat(64);
const yaml = (version: string, extra = '') => `version: 1
hosts:
  - { name: s1, address: 198.18.1.11, labels: [srv] }
  - { name: s2, address: 198.18.1.12, labels: [srv] }
  - { name: s3, address: 198.18.1.13, labels: [srv] }
  - { name: c1, address: 198.18.1.14 }
artifacts:
  consul: { url: "https://example.invalid/consul", sha256: ${SHA}, version: ${version} }
consul:
  artifact: consul
  servers: [srv]
${extra}`;

const problems = (src: string) => problemsOf(src);

describe('consul recipe', () => {
  it('renders 1.8 configuration with top-level TLS keys and acl.tokens.master', () => {
    const p = platformFrom(yaml('1.8.7'));
    const s1 = agentConfig(p, p.hosts[0]!);
    expect(s1).toMatchObject({
      server: true, bootstrap_expect: 3, node_name: 's1', bind_addr: '198.18.1.11', client_addr: '127.0.0.1',
      retry_join: ['198.18.1.11', '198.18.1.12', '198.18.1.13'],
      encrypt: '${file:.rtctl/secrets/consul/gossip.key}',
      ca_file: '/etc/consul.d/tls/ca.pem', verify_incoming_rpc: true, verify_outgoing: true, verify_server_hostname: true,
      acl: { enabled: true, default_policy: 'deny', tokens: { master: '${file:.rtctl/secrets/consul/management.token}', agent: '${file:.rtctl/secrets/consul/agent-s1.token}', default: '${file:.rtctl/secrets/consul/dns.token}' } },
    });
    expect(s1).not.toHaveProperty('tls');
    const c1 = agentConfig(p, p.hosts[3]!);
    expect(c1).not.toHaveProperty('server');
    expect((c1.acl as { tokens: Record<string, string> }).tokens).not.toHaveProperty('master');
  });

  it('renders 1.12+ configuration with the tls stanza and initial_management', () => {
    const p = platformFrom(yaml('1.17.1'));
    const s1 = agentConfig(p, p.hosts[0]!);
    expect(s1.tls).toEqual({
      defaults: { ca_file: '/etc/consul.d/tls/ca.pem', cert_file: '/etc/consul.d/tls/agent.pem', key_file: '/etc/consul.d/tls/agent-key.pem', verify_outgoing: true },
      internal_rpc: { verify_incoming: true, verify_server_hostname: true },
    });
    expect(s1).not.toHaveProperty('verify_incoming_rpc');
    expect((s1.acl as { tokens: Record<string, string> }).tokens.initial_management).toBe('${file:.rtctl/secrets/consul/management.token}');
  });

  it('orders servers before ACL setup before clients, and restarts servers one at a time behind a quorum gate', () => {
    const p = platformFrom(yaml('1.8.7'));
    const s1 = consul.resources(p, p.hosts[0]!);
    const unit = s1.find((r) => r.id === 'unit:consul.service')!;
    expect(unit).toMatchObject({ stage: 10, serial: 'restarts', gate: { what: 'a Consul leader and 3 voters' } });
    expect(s1.find((r) => r.id === 'exec:consul-acl-tokens')).toMatchObject({ stage: 11, want: 'ok' });
    expect(consul.resources(p, p.hosts[3]!).find((r) => r.id === 'unit:consul.service')).toMatchObject({ stage: 12 });
    expect(consul.resources(p, p.hosts[1]!).some((r) => r.id === 'exec:consul-acl-tokens')).toBe(false);
    // The CA key is never a resource: only ca.crt is sent.
    expect(JSON.stringify(s1)).not.toContain('ca.pem}');
    expect(servers(p).map((h) => h.name)).toEqual(['s1', 's2', 's3']);
  });

  it('keeps KV keys under config/, values as references, and generates every secret once', () => {
    const p = platformFrom(yaml('1.8.7', 'config:\n  global: { level: info }\n  services:\n    web: { token: "${file:.rtctl/secrets/consul/gossip.key}" }\n'));
    expect(kvPairs(p)).toEqual([['config/global/level', 'info'], ['config/web/token', '${file:.rtctl/secrets/consul/gossip.key}']]);
    const kv = consul.resources(p, p.hosts[0]!).find((r) => r.id === 'exec:consul-kv:config/web/token')!;
    expect(kv).toMatchObject({ description: 'set config/web/token = (sensitive)' });
    expect(consul.secrets!(p).map((g) => g.path)).toEqual(expect.arrayContaining([
      '.rtctl/secrets/consul/gossip.key', '.rtctl/secrets/consul/management.token', '.rtctl/secrets/consul/dns.token',
      '.rtctl/secrets/consul/agent-c1.token', '.rtctl/secrets/consul/service-web.token', '.rtctl/secrets/consul/ca.pem',
      '.rtctl/secrets/consul/server-s1.pem', '.rtctl/secrets/consul/client-c1.pem',
    ]));
  });

  it('reports a bad server count, an unknown server and a bad KV key at their lines', () => {
    expect(problems(yaml('1.8.7').replace('servers: [srv]', 'servers: [s1, s2]'))).toEqual(['11:12: consul/servers: select 3 or 5 servers (a Raft quorum that survives a failure), not 2']);
    expect(problems(yaml('1.8.7').replace('servers: [srv]', 'servers: [s1, s2, nope]'))).toEqual(['11:21: consul/servers/2: "nope" is not a declared host or label']);
    expect(problems(yaml('1.8.7', 'config:\n  global: { "Bad Key": x }\n'))).toEqual(['13:13: config/global/Bad Key: "Bad Key" is not a valid key: lower-case letters, digits, `.`, `_`, `-` (at most 64)']);
  });

  it('forwards *.consul through systemd-resolved on every host when dns_forwarding is on, and nothing otherwise', () => {
    const off = platformFrom(yaml('1.8.7'));
    expect(consul.resources(off, off.hosts[3]!).some((r) => r.id === 'package:systemd-resolved')).toBe(false);
    expect(agentConfig(off, off.hosts[0]!)).not.toHaveProperty('recursors');
    const p = platformFrom(yaml('1.8.7').replace('  servers: [srv]\n', '  servers: [srv]\n  dns_forwarding: true\n  recursors: [192.0.2.53]\n'));
    for (const h of p.hosts) {
      const rs = consul.resources(p, h);
      const ids = rs.map((r) => r.id);
      // The drop-in is in place before the package starts resolved; the exec restarts it and proves a lookup.
      expect(ids.indexOf('file:/etc/systemd/resolved.conf.d/rtctl-consul.conf')).toBeLessThan(ids.indexOf('package:systemd-resolved'));
      const exec = rs.find((r) => r.id === 'exec:consul-dns-forwarding');
      expect(exec?.gate?.script).toBe('getent hosts consul.service.consul >/dev/null');
      expect(exec?.stage).toBe(13);
    }
    expect(renderResolvedDropin()).toContain('DNS=127.0.0.1:8600\nDomains=~consul\n');
    expect(agentConfig(p, p.hosts[0]!)).toMatchObject({ recursors: ['192.0.2.53'] });
    expect(problems(yaml('1.8.7').replace('  servers: [srv]\n', '  servers: [srv]\n  recursors: [dns.example]\n'))).toEqual(['12:15: consul/recursors/0: "dns.example" must be an IPv4 address, e.g. 192.0.2.53']);
  });
});
