import { describe, expect, it } from 'vitest';
import { gateway, orderedRoutes, renderApiKeys, renderHaproxyGateway, renderHaproxySecrets } from '../../../recipes/gateway.js';
import { fakeSecrets, platformFrom } from '../helpers.js';
import { FRONTDOOR, SECRETS, problems } from './frontdoor-fixture.js';

const p = platformFrom(FRONTDOOR, fakeSecrets(SECRETS));
const h1 = p.hosts[0]!;

describe('gateway: validation at the line of the problem', () => {
  it('accepts the fixture', () => {
    expect(problems(FRONTDOOR)).toEqual([]);
  });

  it('a route to an unknown service', () => {
    expect(problems(FRONTDOOR.replace('- { name: web, paths: [/web/], service: web }', '- { name: web, paths: [/web/], service: webb }'))).toEqual([
      '18:45: gateway/routes/0/service: unknown service "webb" (known: web, orders)',
    ]);
  });

  it('two routes that collide (same host, path and an overlapping method)', () => {
    expect(problems(FRONTDOOR.replace('    - name: jwt\n      paths: [/jwt/]', '    - name: jwt\n      paths: [/web/]'))).toEqual([
      '28:7: gateway/routes/2: route "jwt" collides with route "web" (gateway/routes/0): same host, path and method',
    ]);
    // Same path on different hosts, or disjoint methods, is fine.
    expect(problems(FRONTDOOR.replace('    - name: jwt\n      paths: [/jwt/]', '    - name: jwt\n      hosts: [other.lab]\n      paths: [/web/]'))).toEqual([]);
  });

  it('a plugin option out of range', () => {
    expect(problems(FRONTDOOR.replace('rate-limiting: { second: 5, minute: 100 }', 'rate-limiting: { second: 0, minute: 100 }'))).toEqual([
      '26:34: gateway/routes/1/plugins/rate-limiting/second: must be at least 1, not 0',
    ]);
    expect(problems(FRONTDOOR.replace('cors: { origins: [https://app.lab], max_age: 60 }', 'cors: { origins: [https://app.lab], max_age: 100000 }'))).toEqual([
      '31:72: gateway/routes/2/plugins/cors/max_age: must be at most 86400, not 100000',
    ]);
    expect(problems(FRONTDOOR.replace('rate-limiting: { second: 5, minute: 100 }', 'rate-limiting: { second: 50, minute: 10 }'))).toEqual([
      "26:46: gateway/routes/1/plugins/rate-limiting/minute: the limit per minute (10) can't be lower than the limit per second (50)",
    ]);
  });

  it('a service needs exactly one of servers or consul', () => {
    expect(problems(FRONTDOOR.replace('orders: { consul: orders }', 'orders: { consul: orders, servers: [a:1] }'))).toEqual([
      '16:5: gateway/services/orders: service "orders" needs exactly one of `servers` or `consul`',
    ]);
  });
});

describe('gateway: haproxy engine rendering', () => {
  it('orders routes most specific first', () => {
    expect(orderedRoutes(p.doc.gateway!.routes).map((r) => r.name)).toEqual(['orders', 'web', 'jwt']);
  });

  it('routes by host, path and method; first match wins; no match is 404', () => {
    const cfg = renderHaproxyGateway(p, h1);
    expect(cfg).toContain('  bind 198.18.1.11:8000\n  monitor-uri /rtctl-health\n');
    expect(cfg).toContain('  http-request set-var(txn.route) str(orders) if !{ var(txn.route) -m found } { var(txn.host) -m str api.lab } { path_beg /orders } { method GET POST }\n');
    expect(cfg).toContain(`  http-request return status 404 content-type application/json string '{"message":"no Route matched with those values"}' if !{ var(txn.route) -m found }\n`);
    expect(cfg).toContain('  use_backend svc_web if { var(txn.route) -m str jwt }\n');
  });

  it('key-auth through the map; missing and wrong keys → 401', () => {
    const cfg = renderHaproxyGateway(p, h1);
    expect(cfg).toContain('  http-request set-var(txn.key_consumer) var(txn.apikey),map(/etc/haproxy/gateway/apikeys.map) if { var(txn.route) -m str orders }\n');
    expect(cfg).toContain(`  http-request return status 401 content-type application/json string '{"message":"Invalid authentication credentials"}' if { var(txn.route) -m str orders } !{ var(txn.key_consumer) -m found }\n`);
    expect(renderApiKeys(p)).toBe('${file:alice.key} alice\n');
  });

  it('jwt: signature with the secret from an environment variable set in the sensitive secrets.cfg; exp checked', () => {
    const cfg = renderHaproxyGateway(p, h1);
    expect(cfg).toContain('{ var(txn.jwt),jwt_verify("HS256","${RTCTL_JWT_1_0}") -m int 1 }\n');
    expect(cfg).toContain('{ var(txn.jwt_exp),sub(txn.now) -m int lt 0 }\n');
    expect(cfg).not.toContain('file:');
    expect(renderHaproxySecrets(p)).toBe('# rtctl: secrets for haproxy.cfg (as environment variables); do not edit\nglobal\n  setenv RTCTL_JWT_1_0 "${file:bob.jwt}"\n');
  });

  it('rate limits with one stick table per period → 429; body size → 413', () => {
    const cfg = renderHaproxyGateway(p, h1);
    expect(cfg).toContain('backend rl_orders_minute\n  stick-table type string len 128 size 100k expire 60s store http_req_rate(60s)\n');
    expect(cfg).toContain(`  http-request return status 429 content-type application/json string '{"message":"API rate limit exceeded"}' hdr Retry-After 60 if { var(txn.route) -m str orders } { sc_http_req_rate(1) gt 100 }\n`);
    expect(cfg).toContain('{ req.hdr_val(content-length) gt 2048 } || { var(txn.route) -m str orders } { req.body_size gt 2048 }\n');
  });

  it('engine haproxy adds no resources of its own (they are part of the haproxy recipe)', () => {
    expect(gateway.resources(p, h1)).toEqual([]);
  });
});
