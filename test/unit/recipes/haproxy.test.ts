import { describe, expect, it } from 'vitest';
import { haproxy, inSubnet, renderHaproxyCfg, UNIT_CONTENT } from '../../../recipes/haproxy.js';
import { leafSecret } from '../../../recipes/haproxy-certs.js';
import { fakeSecrets, platformFrom } from '../helpers.js';
import { FRONTDOOR, SECRETS, problems } from './frontdoor-fixture.js';

const p = platformFrom(FRONTDOOR, fakeSecrets(SECRETS));
const host = (n: string) => p.hosts.find((h) => h.name === n)!;

describe('loadbalancer: validation', () => {
  it('a VIP outside the LB hosts\' subnet, at its line', () => {
    expect(problems(FRONTDOOR.replace('vip: 198.18.1.100/24', 'vip: 198.18.2.100/24'))).toEqual([
      '8:8: loadbalancer/vip: the virtual IP 198.18.2.100/24 is outside the subnet of host h1 (198.18.1.11)',
      '8:8: loadbalancer/vip: the virtual IP 198.18.2.100/24 is outside the subnet of host h2 (198.18.1.12)',
    ]);
  });

  it('a VIP equal to a host address; a VIP without prefix', () => {
    expect(problems(FRONTDOOR.replace('vip: 198.18.1.100/24', 'vip: 198.18.1.12/24'))).toEqual([
      '8:8: loadbalancer/vip: the virtual IP 198.18.1.12 is the address of host h2',
    ]);
    expect(problems(FRONTDOOR.replace('vip: 198.18.1.100/24', 'vip: 198.18.1.100'))).toEqual([
      '8:8: loadbalancer/vip: "198.18.1.100" must be an IPv4 address with its prefix length, e.g. 198.18.1.100/24',
    ]);
  });

  it('a listener to an unknown service, and two listeners on one port', () => {
    expect(problems(FRONTDOOR.replace('- { name: http, port: 80, to: gateway }', '- { name: http, port: 443, to: nope }'))).toEqual([
      '10:36: loadbalancer/listeners/0/to: unknown service "nope" (use `gateway` or a service in gateway.services)',
      '11:28: loadbalancer/listeners/1/port: port 443 is also used by listener loadbalancer/listeners/0',
    ]);
  });

  it('subnet arithmetic', () => {
    expect(inSubnet('198.18.1.11', '198.18.1.100', 24)).toBe(true);
    expect(inSubnet('198.18.1.11', '198.18.1.100', 30)).toBe(false);
    expect(inSubnet('10.0.0.1', '198.18.1.100', 0)).toBe(true);
  });
});

describe('haproxy recipe', () => {
  it('LB hosts: package, dirs, secrets first (checked alone), map, cert, haproxy.cfg checked with haproxy -c, unit, exec', () => {
    const rs = haproxy.resources(p, host('h1'));
    expect(rs.map((r) => r.id)).toEqual([
      'package:haproxy', 'directory:/etc/haproxy/certs', 'directory:/etc/haproxy/gateway', 'file:/etc/haproxy/secrets.cfg',
      'file:/etc/haproxy/gateway/apikeys.map', 'file:/etc/haproxy/certs/https.pem', 'file:/etc/haproxy/haproxy.cfg', 'unit:haproxy.service',
      'exec:haproxy-runs-rtctl-unit',
    ]);
    const byId = new Map(rs.map((r) => [r.id, r]));
    expect(byId.get('file:/etc/haproxy/haproxy.cfg')).toMatchObject({ check: 'haproxy -c -q -f /etc/haproxy/secrets.cfg -f {}', sensitive: false, notify: ['unit:haproxy.service'] });
    expect(byId.get('file:/etc/haproxy/secrets.cfg')).toMatchObject({ sensitive: true, mode: '0600' });
    expect(byId.get('file:/etc/haproxy/certs/https.pem')).toMatchObject({ content: '${file:.rtctl/secrets/haproxy/https.pem}', sensitive: true, mode: '0600' });
    expect(byId.get('unit:haproxy.service')).toMatchObject({ reload: true });
    expect(haproxy.resources(p, host('h3'))).toEqual([]);
  });

  it('master-worker unit: -Ws, reload checks then USR2', () => {
    expect(UNIT_CONTENT).toContain('ExecStart=/usr/sbin/haproxy -Ws -f /etc/haproxy/secrets.cfg -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S /run/haproxy-master.sock\n');
    expect(UNIT_CONTENT).toContain('ExecReload=/usr/sbin/haproxy -c -q -f /etc/haproxy/secrets.cfg -f /etc/haproxy/haproxy.cfg\nExecReload=/bin/kill -USR2 $MAINPID\n');
  });

  it('stats and metrics on the host address only; listeners on every address; gateway hosts health-checked', () => {
    const cfg = renderHaproxyCfg(p, host('h1'));
    expect(cfg).toContain('frontend stats\n  bind 198.18.1.11:8404\n  stats enable\n  stats uri /stats\n  stats refresh 10s\n  http-request use-service prometheus-exporter if { path /metrics }\n');
    expect(cfg).toContain('frontend lb_https\n  bind :443 ssl crt /etc/haproxy/certs/https.pem alpn http/1.1\n');
    expect(cfg).toContain('backend lb_http_gateway\n  balance roundrobin\n  option httpchk GET /rtctl-health\n  default-server check inter 1s fall 2 rise 2\n  server h1 198.18.1.11:8000\n  server h2 198.18.1.12:8000\n');
  });

  it('static servers and Consul DNS SRV slots, with active health checks and the resolvers section', () => {
    const cfg = renderHaproxyCfg(p, host('h2'));
    expect(cfg).toContain('backend svc_web\n  balance roundrobin\n  option httpchk GET /health\n  http-check expect rstatus ^[23]\n  default-server check inter 2s fall 3 rise 2\n  server web1 198.18.1.13:8080\n');
    expect(cfg).toContain('  server-template orders 10 _orders._tcp.service.consul resolvers consul resolve-prefer ipv4 init-addr last,libc,none\n');
    expect(cfg).toContain('resolvers consul\n  nameserver consul 127.0.0.1:8600\n  accepted_payload_size 8192\n');
  });

  it('internal certificates: CA + one leaf per TLS listener; renewed when due or when names change', async () => {
    const secrets = haproxy.secrets!(p);
    expect(secrets.map((s) => s.path)).toEqual(['.rtctl/secrets/haproxy/ca.key', '.rtctl/secrets/haproxy/ca.crt', '.rtctl/secrets/haproxy/https.pem']);
    const store = new Map<string, string>();
    const now = new Date('2026-01-01T00:00:00Z');
    const read = async (path: string) => {
      if (!store.has(path)) store.set(path, await secrets.find((s) => s.path === path)!.generate(read, now));
      return store.get(path)!;
    };
    const pem = await read('.rtctl/secrets/haproxy/https.pem');
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN PRIVATE KEY-----/);
    const leaf = secrets[2]!;
    expect(leaf.stale!(pem, new Date('2026-02-01T00:00:00Z'))).toBe(false); // 59 days left
    expect(leaf.stale!(pem, new Date('2026-03-05T00:00:00Z'))).toBe(true); // 27 days left < 30
    const other = leafSecret({ path: 'x', commonName: 'api.lab', dnsNames: ['api.lab', 'new.lab'], ips: ['198.18.1.100'], validityDays: 90, renewBeforeDays: 30 });
    expect(other.stale!(pem, now)).toBe(true);
  });
});
