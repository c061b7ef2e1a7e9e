import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { kongProblems, kongResources, renderKongConf, renderKongDeclarative, renderKongYaml } from '../../../recipes/kong.js';
import { fakeSecrets, platformFrom } from '../helpers.js';
import { FRONTDOOR, SECRETS } from './frontdoor-fixture.js';

const EXPECTED_KONG_PROBLEMS = [
  '/_format_version: "4.0" is not one of "1.1", "2.1", "3.0"',
  'route "bare": an http route needs at least one of methods, hosts, headers, paths, snis',
  'route "bare": service "nope" does not exist',
  'plugin rate-limiting: config/policy: "cluster" is not one of "local", "redis"',
  'plugin rate-limiting: the limit for minute must not be lower than for second',
];
const KONG = FRONTDOOR.replace('engine: haproxy', 'engine: kong');
const p = platformFrom(KONG, fakeSecrets(SECRETS));
const h1 = p.hosts[0]!;

describe('gateway engine kong', () => {
  it('renders kong.conf: DB-less, declarative config, Admin API on localhost only, Consul DNS', () => {
    expect(renderKongConf(p, h1)).toBe(`# rtctl: rendered for h1
database = off
declarative_config = /etc/kong/kong.yml
proxy_listen = 198.18.1.11:8000
admin_listen = 127.0.0.1:8001
status_listen = 127.0.0.1:8007
dns_resolver = 127.0.0.1:8600
dns_order = LAST,SRV,A,CNAME
`);
  });

  it('renders the declarative config from the same routes, consumers and plugins; it passes Kong\'s entity rules', () => {
    const d = renderKongDeclarative(p);
    expect(kongProblems(d)).toEqual([]);
    expect(parse(renderKongYaml(p))).toEqual(d);
    expect(d._format_version).toBe('3.0');
    expect(d.routes).toContainEqual({ name: 'orders', service: { name: 'orders' }, protocols: ['http', 'https'], hosts: ['api.lab'], paths: ['/orders'], methods: ['GET', 'POST'], strip_path: false, preserve_host: true });
    expect(d.services).toContainEqual({ name: 'orders', protocol: 'http', port: 80, host: 'orders.service.consul' });
    expect(d.plugins).toContainEqual({ name: 'rate-limiting', instance_name: 'orders-rate-limiting', route: 'orders', config: { second: 5, minute: 100, limit_by: 'consumer', policy: 'local', error_code: 429 } });
    expect(d.consumers).toEqual([
      { username: 'alice', keyauth_credentials: [{ key: '${file:alice.key}' }] },
      { username: 'bob', jwt_secrets: [{ key: 'bob-iss', algorithm: 'HS256', secret: '${file:bob.jwt}' }] },
    ]);
  });

  it('the entity rules catch what Kong would reject', () => {
    const d = structuredClone(renderKongDeclarative(p)) as Record<string, unknown> & { routes: Record<string, unknown>[]; plugins: { name: string; config: Record<string, unknown> }[] };
    d._format_version = '4.0';
    d.routes[0] = { name: 'bare', service: { name: 'nope' } };
    const rl = d.plugins.find((x) => x.name === 'rate-limiting')!;
    rl.config.policy = 'cluster';
    rl.config.minute = 1;
    expect(kongProblems(d)).toEqual(EXPECTED_KONG_PROBLEMS);
  });

  it('resources: kong.conf, kong.yml (sensitive, checked by `kong config parse`), unit, POST /config', () => {
    const rs = kongResources(p, h1);
    expect(rs.map((r) => r.id)).toEqual(['directory:/etc/kong', 'file:/etc/kong/kong.conf', 'file:/etc/kong/kong.yml', 'unit:kong.service', 'exec:kong-config']);
    expect(rs[2]).toMatchObject({ sensitive: true, mode: '0600', check: 'kong config parse {} -c /etc/kong/kong.conf' });
    expect((rs[4] as { run: string }).run).toContain("-X POST 'http://127.0.0.1:8001/config?check_hash=1&flatten_errors=1'");
  });
});
